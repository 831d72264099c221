"""Decorator presets shared by every kernel, so options change in one place."""

import functools

import numba

#: Compiled once, cached on disk, GIL released: safe to call from worker threads.
jit = functools.partial(numba.njit, cache=True, nogil=True)
