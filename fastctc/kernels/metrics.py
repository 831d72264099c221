"""Levenshtein distance kernels for CER/WER."""

import numpy as np

from ._jit import jit


@jit
def edit_distance_int(a, b):
    """Levenshtein distance between two int64 sequences (unit costs)."""
    n = a.shape[0]
    m = b.shape[0]
    if n == 0:
        return m
    if m == 0:
        return n
    prev = np.arange(m + 1)
    cur = np.empty(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        cur[0] = i
        ai = a[i - 1]
        for j in range(1, m + 1):
            sub = prev[j - 1] + (0 if ai == b[j - 1] else 1)
            ins = cur[j - 1] + 1
            dele = prev[j] + 1
            best = sub
            if ins < best:
                best = ins
            if dele < best:
                best = dele
            cur[j] = best
        for j in range(m + 1):
            prev[j] = cur[j]
    return prev[m]


@jit
def edit_distance_many(flat_a, offs_a, flat_b, offs_b):
    """Sum of edit distances over pairs of sequences given as flat arrays plus offsets."""
    total = 0
    for i in range(offs_a.shape[0] - 1):
        total += edit_distance_int(
            flat_a[offs_a[i] : offs_a[i + 1]], flat_b[offs_b[i] : offs_b[i + 1]]
        )
    return total
