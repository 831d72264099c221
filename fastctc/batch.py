"""Thread pool over GIL-free kernels.

Work is split into one chunk per thread; each chunk is a single kernel call, so the Python
overhead is per thread, not per utterance, and the kernels run truly in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def balanced_chunks(costs: np.ndarray, num_chunks: int) -> list[np.ndarray]:
    """Split item indices into ``num_chunks`` groups of similar total cost.

    Items are taken most expensive first and given to the lightest group (LPT scheduling);
    each group keeps its items in increasing index order. Deterministic.
    """
    order = np.argsort(-np.asarray(costs, dtype=np.float64), kind="stable")
    loads = np.zeros(num_chunks)
    groups: list[list[int]] = [[] for _ in range(num_chunks)]
    for i in order:
        g = int(np.argmin(loads))
        groups[g].append(int(i))
        loads[g] += float(costs[i]) + 1.0
    return [np.array(sorted(g), dtype=np.int64) for g in groups if g]


def run_chunks(fn: Callable[[np.ndarray], R], chunks: Sequence[np.ndarray]) -> list[R]:
    """Call ``fn(chunk)`` for every chunk, on threads when there is more than one."""
    if len(chunks) <= 1:
        return [fn(c) for c in chunks]
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return list(pool.map(fn, chunks))


def run_phases(
    phases: Sequence[tuple[Callable[[Any], object], Sequence[Any]]], threads: int
) -> None:
    """Run ``fn(part)`` for every part of each phase, phases one after another, on one pool."""
    if threads <= 1:
        for fn, parts in phases:
            for part in parts:
                fn(part)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for fn, parts in phases:
            list(pool.map(fn, parts))
