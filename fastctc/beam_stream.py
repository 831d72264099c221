"""Streaming CTC prefix beam search without a language model.

A :class:`BeamStream` runs :func:`fastctc.beam_search` on frames as they arrive: the search
state (the beams and their prefix tree) persists between chunks, and :meth:`BeamStream.finish`
returns what ``beam_search`` returns for the concatenated input, whatever the chunking. The
frame loop is the offline search's own (:func:`fastctc.kernels.prefix_beam.advance`).

The tree is compacted whenever it fills up: nodes that no live beam reaches are dropped and
the prefix that every beam shares moves to a flat token list (8 bytes a token). The tree then
holds the tokens of the live beams after that shared prefix: about ``beam_width`` times the
lag of the shared prefix behind the beams' ends. The lag depends on the input, not on the
stream's length as such: with confident output it is a few tokens; two hypotheses that differ
by one old, nearly even choice stay in the beam (CTC scores them alike from then on) until
better alternatives push one out, and the search, being exact, keeps them -- on simulated
speech the lag reached a few thousand tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _validate as v
from .batch import balanced_chunks, run_abortable
from .defaults import DEFAULT_BEAM_PRUNE_LOGP, DEFAULT_BEAM_WIDTH, DEFAULT_TOKEN_MIN_LOGP
from .greedy import Hypothesis
from .kernels.prefix_beam import (
    OK,
    _write_timesteps,
    advance,
    best_and_stable,
    nbest,
    new_search,
)
from .prefix_beam import INLINE_WORK, _as_logp, check_search_args

__all__ = ["BeamStream", "PartialResult", "feed_streams"]


class PartialResult(NamedTuple):
    """The state of a stream between chunks (:meth:`BeamStream.partial`).

    Attributes
    ----------
    tokens : ndarray of int64, shape (L,)
        The best prefix after the frames fed so far (the first of equal ones).
    stable : int
        ``tokens[:stable]`` is shared by every live beam: no later frame can change it, and
        every hypothesis :meth:`BeamStream.finish` returns starts with it.
    log_prob : float
        The best prefix's log-probability so far (as ``Hypothesis.log_prob``).
    frames_fed : int
        Frames fed so far.
    """

    tokens: np.ndarray
    stable: int
    log_prob: float
    frames_fed: int

    @property
    def stable_tokens(self) -> np.ndarray:
        """``tokens[:stable]``."""
        return self.tokens[: self.stable]


class BeamStream:
    """CTC prefix beam search over frames fed in chunks.

    ``BeamStream(...)`` takes the search arguments of :func:`fastctc.beam_search`, with the
    same defaults and checks; :meth:`feed` advances the search by a ``(t, V)`` chunk of
    log-probabilities (any ``t >= 1``; the kernel runs without the GIL); :meth:`partial`
    reads the best prefix so far and the part of it that is final; :meth:`finish` returns
    exactly what ``fastctc.beam_search`` returns for all the chunks concatenated -- the same
    hypotheses, in the same order, with bit-identical scores -- for any chunking.
    :func:`feed_streams` advances many streams in one call, on worker threads.

    Parameters
    ----------
    beam_width, blank, top_paths, beam_prune_logp, token_min_logp
        As :func:`fastctc.beam_search`. A negative ``blank`` counts from the end of the
        class axis once its size is known.
    num_classes : int, optional
        ``V``, the columns of every chunk. By default the first chunk sets it.
    timesteps : bool
        Keep the frames so that :meth:`finish` can give each hypothesis' ``timesteps`` (the
        Viterbi alignment of the whole input, as ``beam_search``, which also costs what it
        costs there) -- memory grows with the stream, ``frames x V`` values. ``False`` keeps
        only the search state (see the module notes) and the shared tokens, and ``finish``
        gives ``timesteps=None``.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> lp = np.log(np.array([[.1, .9], [.8, .2], [.3, .7]]))
    >>> stream = fastctc.BeamStream(beam_width=8)
    >>> stream.feed(lp[:2])
    >>> stream.partial().tokens.tolist()
    [1]
    >>> stream.feed(lp[2:])
    >>> best = stream.finish()[0]
    >>> best.tokens.tolist(), best.timesteps.tolist()
    ([1, 1], [0, 2])
    >>> ref = fastctc.beam_search(lp, beam_width=8)[0]
    >>> best.tokens.tolist() == ref.tokens.tolist() and best.log_prob == ref.log_prob
    True
    """

    def __init__(
        self,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        blank: int = 0,
        top_paths: int = 1,
        beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP,
        *,
        num_classes: int | None = None,
        timesteps: bool = True,
    ) -> None:
        self._k, self._p = check_search_args(beam_width, top_paths)
        self._blank_arg = v.as_int(blank, "blank")
        self._prune = _as_logp(beam_prune_logp, "beam_prune_logp", 0.0)
        self._tmin = _as_logp(token_min_logp, "token_min_logp", None)
        if not isinstance(timesteps, (bool, np.bool_)):
            raise TypeError(f"timesteps must be True or False; got {timesteps!r}.")
        self._keep = bool(timesteps)
        self._V: int | None = None
        self._blank = 0
        self._dtype: np.dtype | None = None
        self._search: Any = None
        self._T = 0
        self._kept: np.ndarray | None = None  # frames, when timesteps are wanted
        self._result: list[Hypothesis] | None = None
        self._broken: str | None = None
        if num_classes is not None:
            V = v.as_int(num_classes, "num_classes")
            if V < 1:
                raise ValueError(f"num_classes must be >= 1; got {V}.")
            self._set_classes(V)

    # --- properties

    @property
    def num_classes(self) -> int | None:
        """``V``, once given or set by the first chunk."""
        return self._V

    @property
    def frames_fed(self) -> int:
        """Frames fed so far (as :attr:`fastctc.lm.LMStream.frames_fed`)."""
        return self._T

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self._result is not None

    def __repr__(self) -> str:
        state = "finished" if self.finished else "failed" if self._broken else "open"
        return (
            f"BeamStream(beam_width={self._k}, top_paths={self._p}, num_classes={self._V}, "
            f"frames_fed={self._T}, {state})"
        )

    # --- internals

    def _set_classes(self, V: int) -> None:
        self._blank = v.check_blank(self._blank_arg, V)
        self._V = V
        K = self._k
        self._search = new_search(V, K, max(1024, 4 * (K + 1)), K * min(V, 16))

    def _check_open(self) -> None:
        if self._result is not None:
            raise RuntimeError(
                "this BeamStream is finished: feed() and feed_streams() are refused after "
                "finish(); start a new BeamStream for more input."
            )
        if self._broken is not None:
            raise RuntimeError(f"this BeamStream cannot go on: {self._broken}")

    def _check_chunk(self, chunk: npt.ArrayLike, name: str) -> np.ndarray:
        """``chunk`` as a C-contiguous float array the stream can take, or an exception
        naming ``name``; changes nothing."""
        arr = v.as_float_array(chunk, name)
        v.check_ndim(arr, name, (2,), "2-D (frames, V): one row of log-probabilities a frame")
        t, V = arr.shape
        if self._V is None:
            if V == 0:
                raise ValueError(f"{name} must have at least one class (V >= 1); got V = 0.")
            v.check_blank(self._blank_arg, V)
        elif V != self._V:
            raise ValueError(
                f"{name} must have shape (frames, {self._V}): the stream's V is {self._V}; "
                f"got shape {tuple(arr.shape)}."
            )
        if t == 0:
            raise ValueError(f"{name} must hold at least one frame; got shape {tuple(arr.shape)}.")
        if self._dtype is not None and arr.dtype != self._dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but the stream's earlier chunks have "
                f"{self._dtype}; feed one dtype (the concatenated input has one)."
            )
        if not arr.max() < np.inf:  # NaN or +inf somewhere
            rows = arr.max(axis=1)
            i = int(np.flatnonzero(~(rows < np.inf))[0])
            raise ValueError(
                f"{name}[{i}] (frame {self._T + i} of the stream) contains NaN or +inf; "
                "cannot decode it."
            )
        return arr

    def _accept(self, arr: np.ndarray) -> None:
        """Fix ``V`` and the dtype from a checked chunk and keep its frames if wanted."""
        if self._V is None:
            self._set_classes(arr.shape[1])
        if self._dtype is None:
            self._dtype = arr.dtype
        if self._keep:
            t = arr.shape[0]
            kept = self._kept
            if kept is None or kept.shape[0] < self._T + t:
                cap = max(2 * (kept.shape[0] if kept is not None else 0), self._T + t, 256)
                grown = np.empty((cap, arr.shape[1]), arr.dtype)
                if kept is not None:
                    grown[: self._T] = kept[: self._T]
                self._kept = grown
            self._kept[self._T : self._T + t] = arr

    # --- public API

    def feed(self, chunk: npt.ArrayLike) -> None:
        """Advance the search by the frames of ``chunk`` (``(t, V)`` log-probabilities,
        ``t >= 1``).

        Raises
        ------
        TypeError
            Non-floating ``chunk``, or a dtype other than the earlier chunks'.
        ValueError
            ``chunk`` not 2-D, without frames, with another ``V``, or holding NaN or +inf
            (the stream is unchanged); every prefix having probability zero (the stream
            cannot go on, as ``beam_search`` would raise for the whole input).
        RuntimeError
            After :meth:`finish`, or after an error that ended the stream.
        """
        _feed([self], [chunk], 1, ["chunk"])

    def partial(self) -> PartialResult:
        """The best prefix so far and its final part (:class:`PartialResult`); changes
        nothing, so feeding goes on exactly as without the call."""
        if self._broken is not None:
            raise RuntimeError(f"this BeamStream cannot go on: {self._broken}")
        if self._search is None:
            return PartialResult(np.zeros(0, np.int64), 0, 0.0, 0)
        tokens, length, stable, score = best_and_stable(self._search)
        return PartialResult(tokens[:length].copy(), int(stable), float(score), self._T)

    def finish(self) -> list[Hypothesis]:
        """The hypotheses of the whole input: ``fastctc.beam_search(concatenated chunks,
        ...)`` to the bit (tokens, scores, timesteps, order). Feeding is refused afterwards;
        a second call returns the same list."""
        if self._result is not None:
            return list(self._result)
        if self._broken is not None:
            raise RuntimeError(f"this BeamStream cannot go on: {self._broken}")
        empty = np.zeros(0, np.int64)
        if self._T == 0:  # beam_search of no frames: the empty labelling, probability 1
            self._result = [Hypothesis(empty, empty.copy() if self._keep else None, 0.0)]
            return list(self._result)
        count, tokens, lens, scores = nbest(self._search, self._p)
        times = None
        if self._keep:
            times = np.zeros_like(tokens)
            abort = np.zeros(1, np.int64)
            _write_timesteps(self._kept, self._T, self._blank, count, tokens, times, lens, abort)
            self._kept = None
        self._result = [
            Hypothesis(
                tokens[j, : lens[j]].copy(),
                times[j, : lens[j]].copy() if times is not None else None,
                float(scores[j]),
            )
            for j in range(count)
        ]
        return list(self._result)


def _feed(
    streams: Sequence[BeamStream],
    chunks: Sequence[npt.ArrayLike],
    num_threads: int | None,
    names: Sequence[str],
) -> None:
    """Check every chunk, then advance each stream by its chunk on worker threads."""
    for s in streams:
        s._check_open()
    arrays = [s._check_chunk(c, name) for s, c, name in zip(streams, chunks, names, strict=True)]
    for s, arr in zip(streams, arrays, strict=True):
        s._accept(arr)
        s._broken = "a feed was interrupted while the search ran; its state is lost."
    results: list[Any] = [None] * len(streams)

    def work(items: np.ndarray, abort: np.ndarray) -> None:
        for i in items:
            s = streams[i]
            arr = arrays[i]
            results[i] = advance(
                arr, 0, arr.shape[0], s._T, s._blank, s._prune, s._tmin, s._search, abort, True
            )

    costs = np.array([a.shape[0] * s._k for s, a in zip(streams, arrays, strict=True)])
    groups = balanced_chunks(costs, v.resolve_num_threads(num_threads, len(streams)))
    run_abortable(work, groups, inline=int(costs.sum()) <= INLINE_WORK)
    error = None
    for s, arr, name, (r, status, search) in zip(streams, arrays, names, results, strict=True):
        s._search = search
        if status == OK:
            s._T += arr.shape[0]
            s._broken = None
            continue
        # ``status`` is -(t + 2): every prefix died at frame t (row r of the chunk); NaN and
        # +inf were refused above
        t = -int(status) - 2
        s._T += int(r)
        where = f"{name}[{int(r)}] is -inf where the beam needs it"
        s._broken = f"every prefix had probability zero after frame {t} ({where})."
        if error is None:
            error = ValueError(
                f"every prefix has probability zero after frame {t} of the stream ({where}); "
                "check the input."
            )
    if error is not None:
        raise error


def feed_streams(
    streams: Sequence[BeamStream],
    chunks: Sequence[npt.ArrayLike],
    num_threads: int | None = None,
) -> None:
    """Advance each stream by its chunk, ``streams[i].feed(chunks[i])`` for all ``i``, the
    searches spread over worker threads (GIL-free).

    Every chunk is checked first: when one is refused, no stream has moved. The result of
    each stream does not depend on the threads.

    Parameters
    ----------
    streams : sequence of BeamStream
        Distinct, open streams.
    chunks : sequence of array_like of shape (t_i, V_i)
        One chunk per stream, as :meth:`BeamStream.feed` takes it.
    num_threads : int, optional
        Worker threads (default: every available core, at most one per stream).

    Raises
    ------
    TypeError, ValueError, RuntimeError
        As :meth:`BeamStream.feed`, naming ``chunks[i]``; ``ValueError`` when the lists
        differ in length or a stream appears twice.
    """
    streams = list(streams)
    for i, s in enumerate(streams):
        if not isinstance(s, BeamStream):
            raise TypeError(f"streams[{i}] must be a BeamStream; got {type(s).__name__}.")
    streams, chunks, twice = v.stream_batch(streams, chunks)
    if twice is not None:
        raise ValueError(f"streams[{twice[0]}] and streams[{twice[1]}] are the same stream.")
    if not streams:
        return
    _feed(streams, chunks, num_threads, [f"chunks[{i}]" for i in range(len(chunks))])
