"""Brute force over every CTC path: exact reference for tiny inputs (V**T paths)."""

from __future__ import annotations

import itertools
import math

import numpy as np


def collapse(path, blank: int) -> tuple[int, ...]:
    """Merge repeats, then drop blanks (the CTC many-to-one map)."""
    out = []
    prev = None
    for p in path:
        if p != prev and p != blank:
            out.append(int(p))
        prev = p
    return tuple(out)


def labelling_log_probs(log_probs: np.ndarray, blank: int) -> dict[tuple[int, ...], float]:
    """Log-probability of every labelling reachable in ``T`` frames, by enumerating all paths.

    ``log_probs`` is (T, V). Sums path probabilities in float64 with a running max shift.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    T, V = lp.shape
    acc: dict[tuple[int, ...], list[float]] = {}
    for path in itertools.product(range(V), repeat=T):
        score = float(sum(lp[t, c] for t, c in enumerate(path)))
        acc.setdefault(collapse(path, blank), []).append(score)
    out = {}
    for lab, scores in acc.items():
        m = max(scores)
        out[lab] = m if m == -math.inf else m + math.log(sum(math.exp(s - m) for s in scores))
    return out


def loss(log_probs: np.ndarray, target, blank: int) -> float:
    """Exact CTC negative log-likelihood of ``target`` (inf if unreachable)."""
    table = labelling_log_probs(log_probs, blank)
    return -table.get(tuple(int(x) for x in target), -math.inf)


def best_path(log_probs: np.ndarray) -> tuple[tuple[int, ...], float]:
    """The single most likely path and its log-probability."""
    lp = np.asarray(log_probs, dtype=np.float64)
    best = max(
        itertools.product(range(lp.shape[1]), repeat=lp.shape[0]),
        key=lambda p: sum(lp[t, c] for t, c in enumerate(p)),
    )
    return best, float(sum(lp[t, c] for t, c in enumerate(best)))
