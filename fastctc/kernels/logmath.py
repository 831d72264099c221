"""Log-space helpers shared by the kernels."""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import jit, jit_nocheck

NEG_INF = -np.inf


@jit
def log_add(a: float, b: float) -> float:
    """Return ``log(exp(a) + exp(b))`` without overflow; ``-inf`` is log-zero."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10


@jit_nocheck(inline="always")
def _exp_taylor(r):
    """``exp(r)`` for ``|r| <= ln(2) / 2``: Taylor polynomial to ``r**12 / 12!`` (Horner)."""
    p = 1.0 / 479001600
    p = p * r + 1.0 / 39916800
    p = p * r + 1.0 / 3628800
    p = p * r + 1.0 / 362880
    p = p * r + 1.0 / 40320
    p = p * r + 1.0 / 5040
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 1.0 / 2
    p = p * r + 1.0
    return p * r + 1.0


@jit(_nrt=False)
def exp_into(x, out, bits):
    """``out[i] = exp(x[i])`` for float64 arrays, in loops the compiler vectorises.

    Range reduction ``x = k ln2 + r`` with a degree-12 polynomial for ``exp(r)`` and ``2**k``
    built from its exponent bits (``bits`` is int64 scratch of the same length); relative error
    below 1e-15. Results below ``exp(-708)`` flush to zero; NaN stays NaN.
    """
    n = x.shape[0]
    for i in range(n):
        c = min(max(x[i], -708.0), 709.0)
        k = math.floor(c * _LOG2E + 0.5)
        r = (c - k * _LN2_HI) - k * _LN2_LO
        p = _exp_taylor(r)
        bits[i] = (np.int64(k) + 1023) << 52
        out[i] = p
    pow2 = bits.view(np.float64)
    for i in range(n):
        v = x[i]
        r = out[i] * pow2[i]
        if v < -708.0:
            r = 0.0
        if v > 709.0:
            r = np.inf
        if v != v:
            r = v
        out[i] = r


_F32 = np.float32
_LOG2E_F = _F32(1.4426950408889634)
_LN2_HI_F = _F32(0.693359375)
_LN2_LO_F = _F32(-2.12194440e-4)
#: Adding and subtracting 1.5 * 2**23 rounds a float32 of magnitude below 2**22 to an integer.
_ROUND_F = _F32(12582912.0)
#: Taylor coefficients of exp below r**7 / 7!, highest first, in float32.
_EXP_TAYLOR_F32 = tuple(_F32(1 / math.factorial(k)) for k in range(6, -1, -1))


@jit
def exp_into_f32(x, out, bits):
    """float32 twin of ``exp_into`` (``bits`` is int32 scratch): relative error below 1e-7.

    Every step stays in float32 (the rounding to an integer included), so the loop runs on
    full-width float32 vectors. Results below ``exp(-87)`` flush to zero; NaN stays NaN.
    """
    n = x.shape[0]
    for i in range(n):
        c = min(max(x[i], _F32(-87.0)), _F32(88.0))
        k = (c * _LOG2E_F + _ROUND_F) - _ROUND_F
        r = (c - k * _LN2_HI_F) - k * _LN2_LO_F
        p = _F32(1 / 5040)
        for coef in _EXP_TAYLOR_F32:  # Horner, r**6 / 6! down to 1
            p = p * r + coef
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
        out[i] = p
    pow2 = bits.view(np.float32)
    for i in range(n):
        v = x[i]
        r = out[i] * pow2[i]
        if v < _F32(-87.0):
            r = _F32(0.0)
        if v > _F32(88.0):
            r = _F32(np.inf)
        if v != v:
            r = v
        out[i] = r


@intrinsic
def _f64_from_bits(typingctx, bits):
    """Reinterpret an int64 bit pattern as float64 (a register move, so loops vectorise)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


if numba.config.DISABLE_JIT:  # kernels run as Python: an intrinsic cannot be called there

    def _f64_from_bits(bits):  # noqa: F811
        return float(np.array(bits, dtype=np.int64).view(np.float64))


@jit_nocheck(inline="always")
def exp_nonpos(x):
    """``exp(x)`` for ``x <= 0`` (``-inf`` included) as straight-line code loops vectorise.

    Inlined into the caller, like ``log_1_3`` and ``log_sum3``: compile the caller with
    ``jit_nocheck`` so that the loop around it has no division test and vectorises.

    The same reduction and polynomial as ``exp_into``; relative error below 1e-15, results
    below ``exp(-708)`` flush to zero. ``x`` must not be NaN.
    """
    c = x if x > -708.0 else -708.0
    k = math.floor(c * _LOG2E + 0.5)
    r = (c - k * _LN2_HI) - k * _LN2_LO
    p = _exp_taylor(r)
    v = p * _f64_from_bits((np.int64(k) + 1023) << 52)
    return 0.0 if x < -708.0 else v


_SQRT2 = 1.4142135623730951
_LN2 = 0.6931471805599453


@jit_nocheck(inline="always")
def log_1_3(x):
    """``log(x)`` for ``1 <= x <= 3`` (a sum of three exponentials scaled by their largest).

    ``x`` is brought into ``[sqrt(1/2), sqrt(2)]`` by halving at most twice, then
    ``log(m) = 2 atanh(s)`` with ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``, summed to
    ``s**21``: relative error below 1e-15, branch-free.
    """
    big = x > _SQRT2
    m = x * 0.5 if big else x
    k = 1.0 if big else 0.0
    big = m > _SQRT2
    m = m * 0.5 if big else m
    k = k + 1.0 if big else k
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = 1.0 / 21  # Horner over the odd reciprocals
    p = p * z + 1.0 / 19
    p = p * z + 1.0 / 17
    p = p * z + 1.0 / 15
    p = p * z + 1.0 / 13
    p = p * z + 1.0 / 11
    p = p * z + 1.0 / 9
    p = p * z + 1.0 / 7
    p = p * z + 1.0 / 5
    p = p * z + 1.0 / 3
    p = p * z + 1.0
    return k * _LN2 + 2.0 * s * p


@jit_nocheck(inline="always")
def log_sum3(a, b, c):
    """``log(exp(a) + exp(b) + exp(c))`` for values in ``[-inf, inf)``, branch-free.

    The largest term factors out exactly, so two exponentials of non-positive numbers and
    one ``log`` of a number in ``[1, 3]`` remain; ``-inf`` everywhere gives ``-inf``.
    """
    hi_ab = a if a > b else b
    lo_ab = b if a > b else a
    hi = hi_ab if hi_ab > c else c
    lo = lo_ab if lo_ab < c else c
    mid_c = lo_ab if lo_ab > c else c  # the larger of c and min(a, b) ...
    mid = mid_c if mid_c < hi_ab else hi_ab  # ... capped by max(a, b)
    base = hi if hi > NEG_INF else 0.0
    return hi + log_1_3(1.0 + exp_nonpos(mid - base) + exp_nonpos(lo - base))
