"""Scratch buffers kept between calls.

Large arrays allocated afresh on every call cost the OS a page fault and a page clear per
page each time; kernels called in a loop (one loss per training step) instead take their
scratch from here and give it back, and results lent with ``lend`` come back on their own
once the caller drops them. Buffers are handed out to one owner at a time, so concurrent
calls never share one. At most ``MAX_BYTES`` are kept.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from typing import Any

import numpy as np

MAX_BYTES = 512 * 2**20

_lock = threading.RLock()  # a release may run inside ``take`` (garbage collection)
_free: list[np.ndarray] = []  # kept buffers, by size
_sizes: list[int] = []  # their sizes in bytes, in the same order
_kept = [0]  # bytes kept


def take(n: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """An uninitialised 1-D array of ``n`` entries of ``dtype``; return it with ``give``."""
    dt = np.dtype(dtype)
    nbytes = max(n * dt.itemsize, 8)
    with _lock:
        # the smallest kept buffer that fits; it serves requests down to half its size, so a
        # small request does not tie up the memory a large one will want next
        i = bisect_left(_sizes, nbytes)
        if i < len(_sizes) and _sizes[i] <= 2 * nbytes + 2**16:
            raw = _free.pop(i)
            _kept[0] -= _sizes.pop(i)
        else:
            raw = np.empty(-(-nbytes // 8), dtype=np.uint64)
    return raw.view(dt)[:n]


#: ``take_held`` allocates arrays smaller than this instead of pooling them.
POOLED_BYTES = 1 << 17


def take_held(
    held: list[np.ndarray] | None, shape: tuple[int, ...], dtype: Any, zero: bool = False
) -> np.ndarray:
    """An array of ``shape`` for one call: a large one from the pool (a fresh one would be
    mapped and cleared page by page on every call), listed in ``held`` for the caller to
    ``give`` back; a small one, and any when ``held`` is None, allocated."""
    n = math.prod(shape)
    if held is None or n * np.dtype(dtype).itemsize < POOLED_BYTES:
        return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    a = take(n, dtype)
    held.append(a)
    a = a.reshape(shape)
    if zero:
        a.fill(0)
    return a


def give(a: np.ndarray) -> None:
    """Hand back an array from ``take``; kept for later calls while under ``MAX_BYTES``."""
    raw = a.base if a.base is not None else a
    while raw.base is not None:
        raw = raw.base
    with _lock:
        i = bisect_right(_sizes, raw.nbytes)
        _free.insert(i, raw)
        _sizes.insert(i, raw.nbytes)
        _kept[0] += raw.nbytes
        while _kept[0] > MAX_BYTES:
            _free.pop()  # drop the largest
            _kept[0] -= _sizes.pop()


class _Lease:
    """Owner of a pooled buffer lent out as a result array; the buffer returns on release."""

    def __init__(self, raw: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._raw = raw
        self.__array_interface__ = {
            "data": (raw.ctypes.data, False),
            "shape": shape,
            "typestr": dtype.str,
            "version": 3,
        }

    def __del__(self) -> None:
        try:
            give(self._raw)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def lend(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array for a result handed to the caller.

    Its memory comes from the pool and goes back to it once the array and every view of it
    are gone, so a loop that drops each result before the next call reuses mapped pages.
    """
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = take(n, dt)
    return np.asarray(_Lease(raw, tuple(int(s) for s in shape), dt))
