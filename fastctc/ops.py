"""Small array helpers: turn model outputs into the log-probabilities every API expects."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _validate as v


def log_softmax(logits: npt.ArrayLike, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log(softmax(logits))`` along ``axis``.

    fastctc never guesses whether an array holds probabilities, logits or log-probabilities:
    call this on raw logits, or ``np.log`` on probabilities, before decoding.

    Parameters
    ----------
    logits : array_like of float
        Unnormalised scores, any shape.
    axis : int
        The class axis.

    Returns
    -------
    ndarray
        Same shape; float64 input stays float64, other floats become float32.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> np.round(np.exp(fastctc.log_softmax([[1.0, 1.0]])), 3).tolist()
    [[0.5, 0.5]]
    """
    x = v.as_float_array(logits, "logits")
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    shifted = x - m
    with np.errstate(divide="ignore"):
        return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))).astype(
            x.dtype, copy=False
        )
