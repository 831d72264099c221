"""The decoder's input as the LM search reads it: validated and normalised lazily.

:func:`prepare` turns one ``(T, C)`` float matrix into :class:`fastctc.kernels.lm_state.Frames`
and a :class:`LogProbs` view of the same values, so that the search reads exactly the
log-probabilities pyctcdecode 0.5.0 decodes (see
:func:`fastctc.lm.decoder.pyctcdecode_log_probs`) while only NumPy's share of that
normalisation (the exponentials summed per row, which must be NumPy's) runs over the whole
matrix; see :mod:`fastctc.kernels.lm_frames`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _scratch
from ..kernels import lm_frames as kf
from ..kernels import lm_state as ks

#: pyctcdecode's floor for probabilities (``MIN_TOKEN_CLIP_P``) and its log.
MIN_TOKEN_P = 1e-15
LOG_MIN_TOKEN_P = float(np.log(MIN_TOKEN_P))


class LogProbs:
    """Normalised log-probabilities at given ``(frame, label)`` pairs, without the matrix:
    ``at(frames, labels)`` is ``pyctcdecode_log_probs(x)[frames, labels]`` (float64)."""

    __slots__ = ("x", "top", "lse", "lo", "hi")

    def __init__(self, x: np.ndarray, top: np.ndarray, lse: np.ndarray, lo: float, hi: float):
        self.x, self.top, self.lse, self.lo, self.hi = x, top, lse, lo, hi

    @classmethod
    def of_matrix(cls, lp: np.ndarray) -> LogProbs:
        """The values of a normalised matrix ``lp`` as they are."""
        zero = np.zeros(lp.shape[0], dtype=lp.dtype)
        return cls(lp, zero, zero, -math.inf, math.inf)

    def at(self, frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # a row of -inf is NaN, as in pyctcdecode's
            v = (self.x[frames, labels] - self.top[frames]) - self.lse[frames]
        return np.clip(v.astype(np.float64), self.lo, self.hi)


def is_probabilities(x: np.ndarray, top: np.ndarray | None = None) -> bool:
    """pyctcdecode's test: the rows sum to 1 on average (``math.isclose``). With the rows'
    maxima ``top`` all <= 0 (log-probabilities) every row sums to <= 0: no. Otherwise it is
    decided from float64 sums when they are far from 1 (NumPy's own sums in ``x``'s dtype
    differ from them by far less than the margin) and from NumPy's sums when they are not."""
    if top is not None and top.max() <= 0:
        return False
    T = x.shape[0]
    total, magnitude = kf.value_totals(x)
    if abs(total / T - 1) > 1e-4 * (1 + magnitude / T):
        return False
    return math.isclose(x.sum(axis=1).mean(), 1)


def _threshold(thr: float, dtype: np.dtype) -> Any:
    """``thr`` in ``dtype``, rounded down: a value of that dtype reaching ``thr`` reaches it."""
    t = dtype.type(thr)
    return t if t <= thr else np.nextafter(t, dtype.type(-np.inf))


def row_max(x: np.ndarray) -> np.ndarray:
    """``np.amax(x, axis=1)`` of a 2-D array to the bit. Short rows go through a kernel:
    NumPy's reduction costs about 0.1 us per row on top of the values it reads."""
    T, C = x.shape
    if C > kf.PAIRWISE_BLOCK:
        return np.amax(x, axis=1)
    top = np.empty(T, x.dtype)
    odd = np.empty(T, np.int64)
    n = kf.row_maxima(x, top, odd)
    if n:  # zeros of both signs: NumPy decides which one is the maximum
        rows = odd[:n]
        top[rows] = np.amax(x[rows], axis=1)
    return top


def row_sum(a: np.ndarray) -> np.ndarray:
    """``np.sum(a, axis=1)`` of a 2-D float array to the bit (short rows: a kernel with
    NumPy's pairwise summation, see :func:`row_max`); a NaN sum may differ from NumPy's in
    the NaN's sign bit."""
    T, C = a.shape
    if C > kf.PAIRWISE_BLOCK:
        return np.sum(a, axis=1)
    return kf.row_sums(a, np.empty(T, a.dtype), a.dtype.type(-0.0))


def first_bad_row(top: np.ndarray) -> int:
    """The first row holding NaN or ``+inf``, from the rows' maxima ``top``, or -1."""
    if top.max() < np.inf:
        return -1
    return int(np.argmax(~(top < np.inf)))


def prepare(
    x: np.ndarray,
    top: np.ndarray,
    token_min_logp: float,
    held: list[np.ndarray],
    probabilities: bool | None = None,
) -> tuple[ks.Frames, LogProbs]:
    """The frames of ``x`` (2-D, C-contiguous float32/float64, finite or ``-inf``: checked by
    the caller) for a search with ``token_min_logp``; ``top`` is ``np.amax(x, axis=1)`` (it
    is overwritten). ``probabilities`` says whether ``x`` holds probabilities (None:
    pyctcdecode's test on ``x``, :func:`is_probabilities`). Scratch arrays the search reads
    are taken from the pool and listed in ``held``."""
    T, C = x.shape
    cols = _scratch.take_held(held, (T * C,), np.int32)
    off = np.empty(T + 1, dtype=np.int64)
    if probabilities is None:
        probabilities = is_probabilities(x, top)
    if probabilities:
        lp = np.log(np.clip(x, MIN_TOKEN_P, 1))
        kf.select_rows(lp, _threshold(token_min_logp, lp.dtype), cols, off)
        lps = LogProbs.of_matrix(lp)
        return ks.Frames(lp, lps.top, lps.lse, cols, off, lps.lo, lps.hi, 0), lps
    thr = _threshold(min(token_min_logp, -kf.TIE_MARGIN), x.dtype)
    every = token_min_logp <= LOG_MIN_TOKEN_P
    work: list[np.ndarray] = []
    shifted = _scratch.take_held(work, (T, C), x.dtype)
    try:
        n_inf = kf.shift_rows(x, top, thr, every, shifted, cols, off)
        sums = row_sum(np.exp(shifted, out=shifted))
        if n_inf:  # a row of -inf sums to 0: its log is -inf, as in pyctcdecode
            with np.errstate(divide="ignore"):
                lse = np.log(sums)
        else:
            lse = np.log(sums)
    finally:
        for a in work:
            _scratch.give(a)
    frames = ks.Frames(x, top, lse, cols, off, LOG_MIN_TOKEN_P, 0.0, 0)
    return frames, LogProbs(x, top, lse, LOG_MIN_TOKEN_P, 0.0)
