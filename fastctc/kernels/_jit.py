"""Decorator presets shared by every kernel, so options change in one place."""

import functools

import numba

#: Compiled once, cached on disk, GIL released: safe to call from worker threads.
jit = functools.partial(numba.njit, cache=True, nogil=True)

#: As ``jit``, and floating-point sums may be reassociated so reductions vectorise. No
#: ``nnan``/``ninf`` assumptions: infinities and NaN keep their meaning.
jit_reassoc = functools.partial(
    numba.njit, cache=True, nogil=True, fastmath={"reassoc", "contract"}
)
