"""The vectorised ``exp`` kernels against NumPy's ``exp``."""

import numpy as np
import pytest

from fastctc.kernels.logmath import exp_into, exp_into_f32

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0]


def test_exp_into_float64():
    x = np.concatenate([np.linspace(-708.0, 709.0, 200_003), SPECIAL])
    out = np.empty_like(x)
    exp_into(x, out, np.empty(x.shape[0], dtype=np.int64))
    with np.errstate(over="ignore"):
        ref = np.exp(x)
    np.testing.assert_allclose(out, ref, rtol=1e-15, atol=0)


def test_exp_into_float32():
    x = np.concatenate([np.linspace(-87.0, 88.0, 200_003), SPECIAL]).astype(np.float32)
    out = np.empty_like(x)
    exp_into_f32(x, out, np.empty(x.shape[0], dtype=np.int32))
    assert out.dtype == np.float32
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=2e-7, atol=0)


@pytest.mark.parametrize("dtype,lo,hi", [(np.float64, -708.0, 709.0), (np.float32, -87.0, 88.0)])
def test_exp_into_limits(dtype, lo, hi):
    """Below the range the result flushes to zero, above it is infinite."""
    x = np.array([lo - 1.0, lo - 100.0, hi + 1.0, hi + 100.0], dtype=dtype)
    out = np.empty_like(x)
    fn, bits = (exp_into, np.int64) if dtype == np.float64 else (exp_into_f32, np.int32)
    fn(x, out, np.empty(x.shape[0], dtype=bits))
    np.testing.assert_array_equal(out, np.array([0.0, 0.0, np.inf, np.inf], dtype=dtype))
