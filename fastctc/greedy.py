"""Greedy (best-path) decoding and the ``Hypothesis`` record shared by every decoder."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from . import _validate as v
from .batch import balanced_chunks, run_abortable
from .kernels.greedy import greedy_items

#: Greedy work (frames x classes) decoded on the calling thread; more runs on a worker, so
#: that Ctrl-C can interrupt it (see :func:`fastctc.batch.run_abortable`).
INLINE_WORK = 10_000_000


class Hypothesis(NamedTuple):
    """One decoding result.

    Attributes
    ----------
    tokens : ndarray of int64, shape (L,)
        Emitted label ids, blanks removed and repeats collapsed.
    timesteps : ndarray of int64, shape (L,)
        Frame at which each emitted token starts.
    log_prob : float
        Natural-log score, always <= 0. Greedy: the best path's log-probability (sum of the
        chosen frames' log-probabilities). Beam search: the prefix's total log-probability.
    """

    tokens: np.ndarray
    timesteps: np.ndarray
    log_prob: float


def _check_decoding_input(log_probs: npt.ArrayLike, ndim: int, layout: str) -> np.ndarray:
    arr = v.as_float_array(log_probs, "log_probs")
    v.check_ndim(arr, "log_probs", (ndim,), layout)
    return arr


def greedy_decode_batch(
    log_probs: npt.ArrayLike,
    lengths: npt.ArrayLike | None = None,
    blank: int = 0,
    num_threads: int | None = None,
) -> list[Hypothesis]:
    """Best-path decoding of a batch: argmax per frame, collapse repeats, drop blanks.

    Parameters
    ----------
    log_probs : array_like of shape (N, T, V)
        Per-frame log-probabilities (batch first); column ``blank`` is the CTC blank.
    lengths : array_like of int, shape (N,), optional
        Valid frames of each utterance (default: all ``T``).
    blank : int
        Index of the blank label; negative values count from the end.
    num_threads : int, optional
        Worker threads (default: every available core).

    Returns
    -------
    list of Hypothesis
        One per utterance; ``log_prob`` is the best path's log-probability (<= 0 for
        normalised inputs).

    Raises
    ------
    TypeError
        Non-floating ``log_probs`` or non-integer ``lengths``/``blank``.
    ValueError
        Wrong shape, ``blank`` out of range, lengths outside ``[0, T]``, or a NaN frame.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> lp = np.log(np.array([[[.1, .9], [.1, .9], [.9, .1], [.2, .8]]]))
    >>> [h.tokens.tolist() for h in fastctc.greedy_decode_batch(lp)]
    [[1, 1]]
    """
    lp = _check_decoding_input(log_probs, 3, "3-D (N, T, V)")
    N, T, V = lp.shape
    b = v.check_blank(blank, V)
    lens = v.as_lengths(lengths, "lengths", N, T, "T")
    tokens = np.zeros((N, T), dtype=np.int64)
    times = np.zeros((N, T), dtype=np.int64)
    counts = np.zeros(N, dtype=np.int64)
    scores = np.zeros(N, dtype=np.float64)
    chunks = balanced_chunks(lens, v.resolve_num_threads(num_threads, N))
    codes = run_abortable(
        lambda items, abort: greedy_items(lp, lens, b, items, tokens, times, counts, scores, abort),
        chunks,
        inline=int(lens.sum()) * V <= INLINE_WORK,
    )
    bad = [c for c in codes if c >= 0]
    if bad:
        n, t = divmod(min(bad), T)
        raise ValueError(f"log_probs[{n}, {t}] contains NaN; cannot decode utterance {n}.")
    return [
        Hypothesis(tokens[n, : counts[n]].copy(), times[n, : counts[n]].copy(), float(scores[n]))
        for n in range(N)
    ]


def greedy_decode(log_probs: npt.ArrayLike, blank: int = 0) -> Hypothesis:
    """Best-path decoding of one utterance.

    Parameters
    ----------
    log_probs : array_like of shape (T, V)
        Per-frame log-probabilities; column ``blank`` is the CTC blank.
    blank : int
        Index of the blank label; negative values count from the end.

    Returns
    -------
    Hypothesis
        ``tokens``, ``timesteps`` (start frame of each token) and ``log_prob`` (sum of the
        chosen frames' log-probabilities).

    Raises
    ------
    TypeError, ValueError
        As :func:`greedy_decode_batch`.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> lp = np.log(np.array([[.1, .9], [.8, .2], [.3, .7]]))
    >>> h = fastctc.greedy_decode(lp)
    >>> h.tokens.tolist(), h.timesteps.tolist()
    ([1, 1], [0, 2])
    """
    lp = _check_decoding_input(log_probs, 2, "2-D (T, V); use greedy_decode_batch for batches")
    return greedy_decode_batch(lp[None], blank=blank, num_threads=1)[0]
