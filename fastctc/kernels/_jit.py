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

#: As ``jit``, with NumPy's error model: a float division by zero gives inf or NaN instead of
#: raising, so the division needs no test and loops around it vectorise. For code whose
#: divisors cannot be zero.
jit_nocheck = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
