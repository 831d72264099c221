"""Thread pool over GIL-free kernels.

Work is split into one chunk per thread; each chunk is a single kernel call, so the Python
overhead is per thread, not per utterance, and the kernels run truly in parallel.
"""

from __future__ import annotations

import concurrent.futures
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


#: Seconds the calling thread sleeps between checks on abortable workers.
_WAIT_SLICE = 0.05


def run_abortable(
    fn: Callable[[np.ndarray, np.ndarray], R], chunks: Sequence[np.ndarray], inline: bool
) -> list[R]:
    """Call ``fn(chunk, abort)`` for every chunk on worker threads, interruptibly.

    A nogil kernel called from the main thread holds off Ctrl-C until it returns. Here the
    kernels run on workers while the calling thread waits in short slices, so
    ``KeyboardInterrupt`` (or any exception) reaches it promptly; it then sets ``abort[0]``
    (an int64 array of one element that the kernels poll every few hundred frames), waits
    for the workers to stop and re-raises.

    ``inline=True`` (the caller's estimate says the work takes well under a second) calls
    ``fn`` on the calling thread instead: starting threads costs about 0.3 ms, more than a
    short utterance's decode.
    """
    abort = np.zeros(1, np.int64)
    if inline:
        return [fn(c, abort) for c in chunks]
    pool = ThreadPoolExecutor(max_workers=max(1, len(chunks)))
    try:
        futures = [pool.submit(fn, c, abort) for c in chunks]
        for f in futures:
            while True:
                try:
                    f.result(timeout=_WAIT_SLICE)
                    break
                except concurrent.futures.TimeoutError:
                    continue
    except BaseException:
        abort[0] = 1
        raise
    finally:
        pool.shutdown(wait=True)
    return [f.result() for f in futures]


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
