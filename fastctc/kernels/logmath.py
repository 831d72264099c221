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
