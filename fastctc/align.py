"""CTC forced alignment (Viterbi through the trellis of a known target) and token spans."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from . import _validate as v
from .batch import balanced_chunks, run_chunks
from .kernels.align import viterbi_batch


class Alignment(NamedTuple):
    """Frame-level alignment of a target.

    Attributes
    ----------
    tokens : ndarray of int64, shape (T,) or (N, T)
        Label of every frame on the best path (blank included). Batched results are padded
        with -1 after each utterance's ``input_lengths[n]`` frames.
    scores : ndarray of float64, shape (T,) or (N, T)
        ``log_probs[t, tokens[t]]`` for every frame (0.0 in the padding); their sum is the
        log-probability of the best path. ``np.exp`` gives per-frame probabilities.
    """

    tokens: np.ndarray
    scores: np.ndarray


class TokenSpan(NamedTuple):
    """One target token on an alignment: frames ``start_frame <= t < end_frame``.

    ``score`` is the mean of the per-frame scores over the span (mean log-probability when
    given :attr:`Alignment.scores`; pass ``np.exp(scores)`` for the mean probability).
    """

    token: int
    start_frame: int
    end_frame: int
    score: float


def _min_frames(target: np.ndarray) -> int:
    """Frames needed to emit ``target``: one per token plus a blank between repeats."""
    if target.size == 0:
        return 0
    return int(target.size + np.count_nonzero(target[1:] == target[:-1]))


def _one_length(x: npt.ArrayLike | None, name: str) -> np.ndarray | None:
    """The length of a single utterance as shape (1,); ``ValueError`` for several."""
    if x is None:
        return None
    arr = np.asarray(x)
    if arr.size != 1:
        raise ValueError(
            f"{name} must be one length (an int) for 2-D log_probs, a single utterance; "
            f"got {arr.size} values, shape {tuple(arr.shape)}. Pass 3-D (N, T, V) log_probs "
            "to align a batch."
        )
    return arr.reshape(1)


def forced_align(
    log_probs: npt.ArrayLike,
    targets: npt.ArrayLike,
    input_lengths: npt.ArrayLike | None = None,
    target_lengths: npt.ArrayLike | None = None,
    blank: int = 0,
    num_threads: int | None = None,
) -> Alignment:
    """Best CTC path that emits a known target (Viterbi), for one utterance or a batch.

    Like ``torchaudio.functional.forced_align``, but on CPU for whole batches on threads.
    When several paths share the best score, a trellis state prefers staying, then moving
    from the previous state, then skipping a blank; at the last frame the final blank state
    wins unless ending on the last token is strictly better.

    Parameters
    ----------
    log_probs : array_like of shape (T, V) or (N, T, V)
        Per-frame log-probabilities; column ``blank`` is the CTC blank.
    targets : array_like of int, shape (S,) or (N, S)
        Target labels without blanks (batched: padded rows, see ``target_lengths``).
    input_lengths : array_like of int, shape (N,), optional
        Valid frames per utterance (default: all ``T``). For one utterance, an int.
    target_lengths : array_like of int, shape (N,), optional
        Valid target labels per utterance (default: all ``S``). For one utterance, an int.
    blank : int
        Index of the blank label; negative values count from the end.
    num_threads : int, optional
        Worker threads for batches (default: every available core). Results do not depend
        on it.

    Returns
    -------
    Alignment
        ``tokens`` and ``scores`` of shape (T,) for one utterance (its first
        ``input_lengths`` frames) or (N, T) for a batch (padded with -1 / 0.0).

    Raises
    ------
    TypeError
        Non-floating ``log_probs``, non-integer targets or lengths.
    ValueError
        Wrong shapes, ``blank`` out of range, lengths out of range, targets outside
        ``[0, V)`` or equal to ``blank``, an utterance too short for its target (``S`` frames
        plus one per repeated token are needed), NaN in a column the alignment reads, or no
        path of finite probability.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> lp = np.log(np.array([[.7, .2, .1], [.2, .7, .1], [.6, .2, .2], [.1, .1, .8]]))
    >>> a = fastctc.forced_align(lp, [1, 2])
    >>> a.tokens.tolist()
    [0, 1, 0, 2]
    >>> [tuple(s)[:3] for s in fastctc.merge_tokens(a.tokens, a.scores)]
    [(1, 1, 2), (2, 3, 4)]
    """
    lp = v.as_float_array(log_probs, "log_probs")
    v.check_ndim(lp, "log_probs", (2, 3), "2-D (T, V) or 3-D (N, T, V)")
    single = lp.ndim == 2
    tg = v.as_int_array(targets, "targets")
    if single:
        if tg.ndim != 1:
            raise ValueError(
                f"targets must be 1-D (S,) for 2-D log_probs; got shape {tuple(tg.shape)}."
            )
        lp = lp[None]
        tg = tg[None]
        input_lengths = _one_length(input_lengths, "input_lengths")
        target_lengths = _one_length(target_lengths, "target_lengths")
    elif tg.ndim != 2 or tg.shape[0] != lp.shape[0]:
        raise ValueError(
            f"targets must be 2-D (N, S) with N = {lp.shape[0]} for 3-D log_probs; "
            f"got shape {tuple(tg.shape)}."
        )
    N, T, V = lp.shape
    S = tg.shape[1]
    b = v.check_blank(blank, V)
    in_lens = v.as_lengths(input_lengths, "input_lengths", N, T, "T")
    tg_lens = v.as_lengths(target_lengths, "target_lengths", N, S, "S")
    tg = np.ascontiguousarray(tg, dtype=np.int64)
    for n in range(N):
        row = tg[n, : tg_lens[n]]
        v.check_labels_range(row, f"targets[{n}]" if not single else "targets", V, b)
        need = _min_frames(row)
        if need > in_lens[n]:
            raise ValueError(
                f"utterance {n} cannot be aligned: its {row.size} target tokens need at least "
                f"{need} frames (one per token, plus a blank between repeats), "
                f"but it has {int(in_lens[n])}."
            )
    paths = np.full((N, T), -1, dtype=np.int64)
    scores = np.zeros((N, T), dtype=np.float64)
    status = np.full(N, -1, dtype=np.int64)
    chunks = balanced_chunks(in_lens * (2 * tg_lens + 1), v.resolve_num_threads(num_threads, N))
    run_chunks(
        lambda items: viterbi_batch(lp, in_lens, tg, tg_lens, b, items, paths, scores, status),
        chunks,
    )
    v.check_status(
        status,
        bad_frame="log_probs[{n}, {t}] contains NaN; cannot align utterance {n}.",
        no_path="utterance {n} cannot be aligned: every path emitting its target has "
        "probability zero (-inf log-probabilities on the way).",
    )
    if single:
        L = int(in_lens[0])
        return Alignment(paths[0, :L].copy(), scores[0, :L].copy())
    return Alignment(paths, scores)


def merge_tokens(tokens: npt.ArrayLike, scores: npt.ArrayLike, blank: int = 0) -> list[TokenSpan]:
    """Merge a frame-level path into token spans (runs of one non-blank label).

    Parameters
    ----------
    tokens : array_like of int, shape (T,)
        Per-frame labels, e.g. :attr:`Alignment.tokens` of one utterance. Frames holding
        ``blank`` or a negative value (batch padding) separate spans and belong to none.
    scores : array_like of float, shape (T,)
        Per-frame scores, e.g. :attr:`Alignment.scores`.
    blank : int
        The blank label.

    Returns
    -------
    list of TokenSpan
        In time order; ``end_frame`` is exclusive, ``score`` the mean of ``scores`` over the
        span.

    Raises
    ------
    TypeError
        Non-integer ``tokens`` or non-floating ``scores``.
    ValueError
        ``tokens`` and ``scores`` not 1-D of the same length.

    Examples
    --------
    >>> import fastctc
    >>> fastctc.merge_tokens([0, 3, 3, 0, 3], [-.1, -.2, -.4, -.1, -.5])[0]
    TokenSpan(token=3, start_frame=1, end_frame=3, score=-0.30000000000000004)
    """
    tk = v.as_int_array(tokens, "tokens")
    sc = np.asarray(scores)
    if sc.dtype.kind not in "fiu":
        raise TypeError(f"scores must be a real-valued array; got dtype {sc.dtype}.")
    sc = sc.astype(np.float64)
    if tk.ndim != 1 or sc.shape != tk.shape:
        raise ValueError(
            "tokens and scores must be 1-D of the same length; got shapes "
            f"{tuple(tk.shape)} and {tuple(sc.shape)}."
        )
    b = v.as_int(blank, "blank")
    spans: list[TokenSpan] = []
    T = tk.shape[0]
    t = 0
    while t < T:
        c = int(tk[t])
        if c == b or c < 0:
            t += 1
            continue
        e = t + 1
        while e < T and tk[e] == c:
            e += 1
        spans.append(TokenSpan(c, t, e, float(np.mean(sc[t:e]))))
        t = e
    return spans
