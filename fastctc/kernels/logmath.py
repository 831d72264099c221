"""Log-space helpers shared by the kernels."""

import math

import numpy as np

from ._jit import jit

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


@jit
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
        p = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (
            1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (
                1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (
                    1.0 / 479001600))))))))))))
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
        p = _F32(1.0) + r * (_F32(1.0) + r * (_F32(1 / 2) + r * (_F32(1 / 6) + r * (
            _F32(1 / 24) + r * (_F32(1 / 120) + r * (_F32(1 / 720) + r * _F32(1 / 5040)))))))
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
