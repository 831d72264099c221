"""CTC prefix beam search without a language model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _validate as v
from .batch import balanced_chunks, run_abortable
from .defaults import DEFAULT_BEAM_PRUNE_LOGP, DEFAULT_BEAM_WIDTH, DEFAULT_TOKEN_MIN_LOGP
from .greedy import Hypothesis
from .kernels.prefix_beam import prefix_beam_batch

#: Defaults shared with pyctcdecode, so its users get the same search without edits.
#: Widest beam accepted: a search keeps ``beam_width x min(V, 16)`` candidate extensions and
#: up to ``T x beam_width`` prefixes, so wider beams only exhaust memory.
MAX_BEAM_WIDTH = 1 << 20
#: Search work (frames x beam_width) run on the calling thread; more runs on a worker, so
#: that Ctrl-C can interrupt it (see :func:`fastctc.batch.run_abortable`).
INLINE_WORK = 20_000


def _as_logp(value: Any, name: str, upper: float | None) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}.")
    x = float(value)
    if math.isnan(x):
        raise ValueError(f"{name} must not be NaN; use -inf to switch this pruning off.")
    if upper is not None and x > upper:
        raise ValueError(f"{name} must be <= {upper}; got {x}. Use -inf to switch it off.")
    return x


def check_search_args(beam_width: Any, top_paths: Any) -> tuple[int, int]:
    """Validate ``1 <= beam_width <= MAX_BEAM_WIDTH`` and ``1 <= top_paths <= beam_width``."""
    k = v.as_int(beam_width, "beam_width")
    if k < 1:
        raise ValueError(f"beam_width must be >= 1; got {k}.")
    if k > MAX_BEAM_WIDTH:
        raise ValueError(
            f"beam_width must be in [1, {MAX_BEAM_WIDTH}]; got {k}. Wider beams only "
            "exhaust memory; the default is 100, a few thousand is already very wide."
        )
    p = v.as_int(top_paths, "top_paths")
    if not 1 <= p <= k:
        raise ValueError(
            f"top_paths must be in [1, beam_width] = [1, {k}]; got {p}. "
            "Raise beam_width or lower top_paths."
        )
    return k, p


def beam_search_batch(
    log_probs: npt.ArrayLike,
    lengths: npt.ArrayLike | None = None,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    blank: int = 0,
    top_paths: int = 1,
    beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP,
    token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP,
    num_threads: int | None = None,
) -> list[list[Hypothesis]]:
    """CTC prefix beam search over a batch, utterances spread over threads.

    The textbook prefix search: every prefix keeps the log-probability of its alignments that
    end in a blank and of those that end in its last token; a repeated token extends the
    prefix only after a blank; alignments that reach the same prefix are merged at every
    frame. Per frame, the candidate tokens are those whose log-probability is at least
    ``token_min_logp`` (the frame's best token is always a candidate); prefixes more than
    ``-beam_prune_logp`` below the best are dropped, then the ``beam_width`` best are kept.
    Staying on a prefix (a blank, or a repeat of its last token) and extending a prefix to
    one already in the beam are always scored, whatever ``token_min_logp`` says.

    With ``beam_prune_logp = token_min_logp = -inf`` and ``beam_width`` at least the number
    of prefixes, the result is exact: the n-best labellings and their probabilities.

    Parameters
    ----------
    log_probs : array_like of shape (N, T, V)
        Per-frame log-probabilities (batch first); column ``blank`` is the CTC blank.
        Apply :func:`fastctc.log_softmax` to logits, ``np.log`` to probabilities.
    lengths : array_like of int, shape (N,), optional
        Valid frames of each utterance (default: all ``T``).
    beam_width : int
        Prefixes kept after each frame (``K``).
    blank : int
        Index of the blank label; negative values count from the end.
    top_paths : int
        Hypotheses returned per utterance, ``1 <= top_paths <= beam_width``.
    beam_prune_logp : float
        Drop prefixes whose log-probability is this far below the best one (<= 0; ``-inf``
        turns it off). Default -10.0, as pyctcdecode.
    token_min_logp : float
        Skip tokens whose frame log-probability is below this (``-inf`` turns it off).
        Default -5.0, as pyctcdecode.
    num_threads : int, optional
        Worker threads (default: every available core). Results do not depend on it.

    Returns
    -------
    list of list of Hypothesis
        Per utterance, up to ``top_paths`` hypotheses, best first (fewer when fewer prefixes
        survive). ``tokens``: the labelling; ``log_prob``: the prefix's total log-probability,
        log of the sum over its alignments (<= 0 for normalised input) -- exact when nothing
        was pruned, otherwise the part of that sum the search kept (a lower bound: alignments
        are lost while a prefix or its ancestors are out of the beam); ``timesteps[k]``: the
        first frame of token ``k``'s run on the hypothesis' most probable alignment (its
        Viterbi path, as :func:`fastctc.forced_align` gives it for ``tokens``). Equal scores
        are ordered deterministically (earlier beam entries first).

        Scores are kept as float64 probabilities relative to the best prefix of each frame,
        so a prefix whose probability falls below about 1e-308 times the best one's is
        dropped even with ``beam_prune_logp = -inf``.

    Raises
    ------
    TypeError
        Non-floating ``log_probs``; non-integer ``lengths``, ``blank``, ``beam_width`` or
        ``top_paths``; non-numeric pruning thresholds.
    ValueError
        Wrong shape, ``blank`` out of range, lengths outside ``[0, T]``,
        ``beam_width`` outside ``[1, MAX_BEAM_WIDTH]`` (2**20), ``top_paths`` outside
        ``[1, beam_width]``, NaN thresholds,
        ``beam_prune_logp > 0``, a frame holding NaN or +inf, or an utterance whose every
        prefix has probability zero.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> lp = np.log(np.array([[[.6, .4], [.6, .4]]]))
    >>> h = fastctc.beam_search_batch(lp, beam_width=4, top_paths=2)[0]
    >>> [(x.tokens.tolist(), round(float(np.exp(x.log_prob)), 2)) for x in h]
    [([1], 0.64), ([], 0.36)]
    """
    lp = v.as_float_array(log_probs, "log_probs")
    v.check_ndim(lp, "log_probs", (3,), "3-D (N, T, V); use beam_search for one utterance")
    N, T, V = lp.shape
    if V == 0:
        raise ValueError("log_probs must have at least one class (V >= 1); got V = 0.")
    b = v.check_blank(blank, V)
    lens = v.as_lengths(lengths, "lengths", N, T, "T")
    k, p = check_search_args(beam_width, top_paths)
    prune = _as_logp(beam_prune_logp, "beam_prune_logp", 0.0)
    tmin = _as_logp(token_min_logp, "token_min_logp", None)

    tokens = np.zeros((N, p, T), dtype=np.int64)
    times = np.zeros((N, p, T), dtype=np.int64)
    out_lens = np.zeros((N, p), dtype=np.int64)
    scores = np.zeros((N, p), dtype=np.float64)
    counts = np.zeros(N, dtype=np.int64)
    status = np.full(N, -1, dtype=np.int64)
    chunks = balanced_chunks(lens, v.resolve_num_threads(num_threads, N))
    # on worker threads, so that Ctrl-C interrupts a long search within a few hundred frames
    run_abortable(
        lambda items, abort: prefix_beam_batch(
            lp,
            lens,
            b,
            k,
            p,
            prune,
            tmin,
            items,
            tokens,
            times,
            out_lens,
            scores,
            counts,
            status,
            abort,
        ),
        chunks,
        inline=int(lens.sum()) * k <= INLINE_WORK,
    )
    check_status(status)
    return [
        [
            Hypothesis(
                tokens[n, j, : out_lens[n, j]].copy(),
                times[n, j, : out_lens[n, j]].copy(),
                float(scores[n, j]),
            )
            for j in range(counts[n])
        ]
        for n in range(N)
    ]


def beam_search(
    log_probs: npt.ArrayLike,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    blank: int = 0,
    top_paths: int = 1,
    beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP,
    token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP,
) -> list[Hypothesis]:
    """CTC prefix beam search of one utterance.

    Parameters
    ----------
    log_probs : array_like of shape (T, V)
        Per-frame log-probabilities; column ``blank`` is the CTC blank.
    beam_width, blank, top_paths, beam_prune_logp, token_min_logp
        As :func:`beam_search_batch`.

    Returns
    -------
    list of Hypothesis
        Up to ``top_paths`` hypotheses, best first; see :func:`beam_search_batch`.
        :class:`fastctc.BeamStream` gives the same result for frames fed in chunks.

    Raises
    ------
    TypeError, ValueError
        As :func:`beam_search_batch`.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> lp = np.log(np.array([[.1, .9], [.8, .2], [.3, .7]]))
    >>> best = fastctc.beam_search(lp, beam_width=8)[0]
    >>> best.tokens.tolist(), best.timesteps.tolist()
    ([1, 1], [0, 2])
    """
    lp = v.as_float_array(log_probs, "log_probs")
    v.check_ndim(lp, "log_probs", (2,), "2-D (T, V); use beam_search_batch for batches")
    return beam_search_batch(
        lp[None],
        beam_width=beam_width,
        blank=blank,
        top_paths=top_paths,
        beam_prune_logp=beam_prune_logp,
        token_min_logp=token_min_logp,
        num_threads=1,
    )[0]


def check_status(status: np.ndarray) -> None:
    """Raise for the first utterance whose search status (per utterance, -1 = fine) is bad.

    A status ``t >= 0`` is a NaN or +inf frame; ``-2 - t`` means every prefix died at frame
    ``t``. Shared by the CPU and GPU searches.
    """
    v.check_status(
        status,
        bad_frame="log_probs[{n}, {t}] contains NaN or +inf; cannot decode utterance {n}.",
        no_path="every prefix of utterance {n} has probability zero after frame {t} "
        "(log_probs[{n}, {t}] is -inf where the beam needs it); check the input.",
    )
