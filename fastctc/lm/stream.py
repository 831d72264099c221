"""Streaming LM beam search: an utterance fed in chunks of frames, decoded as one.

:meth:`fastctc.lm.decoder.BeamSearchDecoderCTC.stream` returns an :class:`LMStream`. Its
:meth:`~LMStream.feed` searches the frames of each chunk as they come (the kernel stops at
the end of the chunk instead of finishing, see ``IO_STREAM`` in
:mod:`fastctc.kernels.lm_state`), :meth:`~LMStream.partial` reads the current best text
without touching the search, and :meth:`~LMStream.finish` runs the final step and returns
exactly the beams ``decode_beams`` returns for the chunks concatenated, whatever the
chunking: the kernel's frames are numbered from the start of the stream, each chunk is
normalised row by row as pyctcdecode normalises the whole matrix, and nothing of the search
depends on where a chunk ends.

Normalisation: pyctcdecode treats the whole input as probabilities when its rows sum to 1 on
average, and as log-probabilities or raw logits (log-softmax per row) otherwise. A stream
decides from its first chunk and holds that decision; the result equals the offline one
whenever the whole input would be decided alike (log-probabilities and raw logits always in
practice, probabilities when every chunk's rows are probabilities).

Memory: between kernel calls the stream drops the text, token and word-frame nodes that no
live beam can reach any more and commits what every live beam shares (its tokens, their
frames and log-probabilities, and its words' frames, prepended at the end), so the search
state stays of the order of the beams' divergence, not of the stream's length; only the
committed output grows.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .. import _scratch
from .. import _validate as v
from ..kernels import lm_beam as kb
from ..kernels import lm_state as ks
from . import search
from .frames import LOG_MIN_TOKEN_P, is_probabilities, prepare

__all__ = ["LMStream", "StreamPartial"]

WordFrames = tuple[str, tuple[int, int]]
#: Chunks of fewer frames are searched on the calling thread, longer ones on a worker thread
#: that Ctrl-C can stop (as the decoder runs its searches).
_INLINE_FRAMES = 4096


class StreamPartial(NamedTuple):
    """What a stream has decoded so far (:meth:`LMStream.partial`).

    ``text`` is the best beam's text, its unfinished word included; ``stable_text`` the words
    no beam can change any more (the words of the text every live beam extends: a prefix of
    the final text of every beam); ``text_frames`` the best beam's words with their
    ``(start_frame, end_frame)``, the unfinished word last; ``frames_fed`` the frames searched.
    """

    text: str
    stable_text: str
    text_frames: list[WordFrames]
    frames_fed: int


class _TokenLogProbs:
    """The log-probabilities of the labels of token nodes at their frames, answering
    ``at(frames, labels)`` as :class:`fastctc.lm.frames.LogProbs` does for those pairs."""

    __slots__ = ("keys", "vals", "C")

    def __init__(self, frames: np.ndarray, labels: np.ndarray, vals: np.ndarray, C: int):
        keys = frames.astype(np.int64) * C + labels
        order = np.argsort(keys, kind="stable")
        self.keys, self.vals, self.C = keys[order], vals[order], C

    def at(self, frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        k = np.asarray(frames, dtype=np.int64) * self.C + np.asarray(labels, dtype=np.int64)
        return self.vals[np.searchsorted(self.keys, k)]


def _rows(frames: ks.Frames, a: int, b: int) -> ks.Frames:
    """Rows ``a:b`` of ``frames`` (frames ``t0 + a`` to ``t0 + b - 1``)."""
    return frames._replace(
        x=frames.x[a:b],
        top=frames.top[a:b],
        lse=frames.lse[a:b],
        off=frames.off[a : b + 1],
        t0=frames.t0 + a,
    )


class LMStream:
    """One utterance decoded as its frames arrive; made by
    :meth:`~fastctc.lm.decoder.BeamSearchDecoderCTC.stream`.

    Feed ``(t, C)`` chunks with :meth:`feed`, read the current text with :meth:`partial`,
    and end with :meth:`finish`, which returns what ``decode_beams`` returns for all the
    chunks concatenated (see the module docstring). A stream is used by one thread at a
    time; streams of one decoder are independent and may run on different threads (see
    :meth:`~fastctc.lm.decoder.BeamSearchDecoderCTC.feed_streams`).
    """

    #: Frames searched per kernel call: a longer chunk is searched in pieces of this many
    #: frames, with the pools compacted between them when they have grown.
    segment_frames = 512
    #: The pools are compacted once their nodes (text, token and word-frame nodes together)
    #: exceed this, or twice what was left after the last compaction if that is more.
    compact_min = 1 << 13

    def __init__(self, decoder: Any, args: search.SearchArgs) -> None:
        self._decoder = decoder
        self._args = args
        self._vocab = decoder._vocab
        self._tables = decoder._tables
        self._C = len(self._vocab.kinds)
        self._su = search.setup(self._vocab, self._tables, args)
        K = args.beam_width
        ws = search.workspace(1, K, self._su.start, None, decoder.search_sizes)
        ws.io[ks.IO_STREAM] = 1
        self._ws = ws
        self._tk_lp = np.empty(ws.chains.tokens.shape[0])
        lm = self._tables.lm if self._tables is not None else None
        order = int(getattr(lm, "order", 1) or 1) if lm is not None else 1
        self._keep_ctx = max(order, 2) + 1
        self._lm_version = getattr(lm, "_version", 0)
        self._dtype: np.dtype | None = None
        self._probs = False
        self._t = 0
        self._left = 0  # nodes left by the last compaction
        # committed output: tokens (labels, frames, log-probabilities) and word frames
        self._c_tok: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._c_words: list[tuple[np.ndarray, np.ndarray]] = []
        self._n_committed_tokens = 0
        self._n_committed_words = 0
        # the committed output as partial() shows it: the words its tokens complete, their
        # text, the rendered rest (a word that later tokens may continue), the committed word
        # frames and the (word, frames) pairs both of them fix
        self._t_words: list[str] = []
        self._t_text = ""
        self._t_frag = ""
        self._t_spans: list[tuple[int, int]] = []
        self._t_pairs: list[WordFrames] = []
        self._closed = False
        self._failed: BaseException | None = None

    # ------------------------------------------------------------------ state
    @property
    def frames_fed(self) -> int:
        """Frames fed (and searched) so far."""
        return self._t

    @property
    def closed(self) -> bool:
        """Whether :meth:`finish` was called (the stream takes no more frames)."""
        return self._closed

    @property
    def pool_sizes(self) -> dict[str, int]:
        """Nodes the search holds now (``text``, ``tokens``, ``word_frames``), the capacity of
        its arrays (``*_capacity``) and the output committed so far (``committed_tokens``,
        ``committed_words``)."""
        io = self._ws.io
        ws = self._ws
        return {
            "text": int(io[ks.IO_NTEXT]),
            "tokens": int(io[ks.IO_NTK]),
            "word_frames": int(io[ks.IO_NFC]),
            "text_capacity": int(ws.text.i.shape[0]),
            "tokens_capacity": int(ws.chains.tokens.shape[0]),
            "word_frames_capacity": int(ws.chains.frames.shape[0]),
            "committed_tokens": self._n_committed_tokens,
            "committed_words": self._n_committed_words,
        }

    def _check_open(self) -> None:
        if self._failed is not None:
            raise RuntimeError(
                f"the stream failed earlier ({type(self._failed).__name__}: {self._failed}); "
                "start a new stream"
            ) from self._failed
        if self._closed:
            raise RuntimeError("the stream is finished; start a new one with decoder.stream()")
        lm = self._tables.lm if self._tables is not None else None
        if getattr(lm, "_version", 0) != self._lm_version:
            raise RuntimeError(
                "the decoder's language-model parameters changed (reset_params) since the "
                "stream started; its search cannot go on with both. Start a new stream."
            )

    # ------------------------------------------------------------------ input
    def _check_chunk(self, chunk: npt.ArrayLike, name: str = "chunk") -> tuple[Any, Any]:
        """``chunk`` as the kernel reads it, and its row maxima; ``TypeError`` /
        ``ValueError`` naming ``name``."""
        arr = v.as_float_array(chunk, name)
        C = self._C
        if arr.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D (t, C) with one row per frame and C = {C} labels; got "
                f"shape {tuple(arr.shape)}"
                + (" (one frame is chunk[None, :])" if arr.ndim == 1 else "")
                + "."
            )
        if arr.shape[1] != C:
            raise ValueError(
                f"{name} has {arr.shape[1]} columns but the decoder has {C} labels "
                f"(see decoder.labels); chunks must be (t, {C})."
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (t = 0 frames); feed at least one frame.")
        if self._dtype is not None and arr.dtype != self._dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but the stream's first chunk was {self._dtype}; "
                "feed every chunk in one dtype (their concatenation is what is decoded)."
            )
        return arr, self._decoder._check_values(arr, name, self._t)

    # ------------------------------------------------------------------ search
    def _ensure_chains(self, frames: int) -> None:
        """Room in the chains for ``frames`` more frames and the final step."""
        ws = self._ws
        K = self._args.beam_width
        io = ws.io
        fc, tk = ws.chains.frames, ws.chains.tokens
        need_f = int(io[ks.IO_NFC]) + (frames + 1) * K + 1
        need_t = int(io[ks.IO_NTK]) + frames * K + 1
        if fc.shape[0] < need_f:
            new = np.empty((max(need_f, 2 * fc.shape[0]), 3), dtype=np.int64)
            new[: io[ks.IO_NFC]] = fc[: io[ks.IO_NFC]]
            fc = new
        if tk.shape[0] < need_t:
            cap = max(need_t, 2 * tk.shape[0])
            new = np.empty((cap, 3), dtype=np.int64)
            new[: io[ks.IO_NTK]] = tk[: io[ks.IO_NTK]]
            tk = new
            lp = np.empty(cap)
            lp[: io[ks.IO_NTK]] = self._tk_lp[: io[ks.IO_NTK]]
            self._tk_lp = lp
        if fc is not ws.chains.frames or tk is not ws.chains.tokens:
            self._ws = ws._replace(chains=ks.Chains(fc, tk))

    def _used(self) -> int:
        io = self._ws.io
        return int(io[ks.IO_NTEXT] + io[ks.IO_NTK] + io[ks.IO_NFC])

    def compact(self) -> None:
        """Drop the nodes no live beam reaches and commit what they all share (done by
        :meth:`feed` when the pools have grown; results never change)."""
        self._check_open()
        self._compact()

    def _compact(self) -> None:
        labels, frames, lps, starts, ends = kb.stream_compact(self._ws, self._tk_lp, self._keep_ctx)
        if labels.size:
            self._c_tok.append((labels, frames, lps))
            self._n_committed_tokens += labels.size
            render = self._vocab.render
            raw = self._t_frag + "".join([render[x] for x in labels.tolist()])
            words = raw.split()
            self._t_frag = words.pop() if words and not raw[-1].isspace() else ""
            if words:
                self._t_words += words
                self._t_text = _join(self._t_text, " ".join(words))
        if starts.size:
            self._c_words.append((starts, ends))
            self._n_committed_words += starts.size
            self._t_spans += zip(starts.tolist(), ends.tolist(), strict=True)
        k, m = len(self._t_pairs), min(len(self._t_words), len(self._t_spans))
        self._t_pairs += zip(self._t_words[k:m], self._t_spans[k:m], strict=True)
        self._left = self._used()

    def _advance(self, x: np.ndarray, top: np.ndarray, abort: np.ndarray) -> None:
        """Search the frames of a checked chunk; a failure leaves the stream unusable."""
        held: list[np.ndarray] = []
        try:
            if self._dtype is None:
                self._dtype = x.dtype
                self._probs = is_probabilities(x, top)
            tables = self._tables
            if tables is not None:
                tables.check_version()
            frames, _ = prepare(x, top, self._args.token_min_logp, held, self._probs)
            frames = frames._replace(t0=self._t)
            T = x.shape[0]
            seg = max(1, int(self.segment_frames))
            for a in range(0, T, seg):
                b = min(a + seg, T)
                self._ensure_chains(b - a)
                rows = _rows(frames, a, b)
                k0 = int(self._ws.io[ks.IO_NTK])
                self._ws = search.drive(
                    rows, self._ws, self._su, self._vocab, tables, self._args.path, None, abort
                )
                k1 = int(self._ws.io[ks.IO_NTK])
                kb.stream_token_logps(self._ws.chains.tokens, k0, k1, rows, self._tk_lp)
                self._t += b - a
                if self._used() > max(self.compact_min, 2 * self._left):
                    self._compact()
        except BaseException as err:
            self._failed = err
            raise
        finally:
            for a in held:
                _scratch.give(a)

    def feed(self, chunk: npt.ArrayLike) -> None:
        """Search the frames of ``chunk`` (``(t, C)``, any ``t >= 1``; the kernel runs
        without the GIL).

        Raises
        ------
        TypeError, ValueError
            A chunk that is not a float array, not 2-D, of another width than the decoder's
            labels, empty, of another dtype than the first chunk, or holding NaN or +inf; the
            stream is unchanged.
        RuntimeError
            The stream is finished, or failed earlier.
        """
        self._check_open()
        x, top = self._check_chunk(chunk)
        if x.shape[0] < _INLINE_FRAMES:  # short: on this thread
            self._advance(x, top, np.zeros(1, dtype=np.int64))
        else:  # on a worker thread, so that Ctrl-C stops it within a frame
            self._decoder._run_streams([self], [(x, top)], 1)

    # ------------------------------------------------------------------ output
    def _committed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[Any], i: int, dtype: Any) -> np.ndarray:
            if not parts:
                return np.empty(0, dtype=dtype)
            return np.concatenate([p[i] for p in parts])

        return (
            cat(self._c_tok, 0, np.int64),
            cat(self._c_tok, 1, np.int64),
            cat(self._c_tok, 2, np.float64),
            cat(self._c_words, 0, np.int64),
            cat(self._c_words, 1, np.int64),
        )

    def partial(self) -> StreamPartial:
        """The best beam's text so far, the stable prefix every beam shares and the best
        beam's word frames (see :class:`StreamPartial`); reads the search, changes nothing.
        Its cost grows with the beams' divergence, not with the stream's length (but for
        copying the text and the list of word frames)."""
        if self._failed is not None:
            self._check_open()
        ws = self._ws
        nb = int(ws.io[ks.IO_NBEAMS])
        b = ws.beams.i
        nodes = np.array([[b[0, ks.B_TNODE], b[0, ks.B_FNODE]]], dtype=np.int64)
        labels, _, _, starts, ends, _ = kb.collect_chains(
            0, nodes, ws.chains.tokens, ws.chains.frames
        )
        render = self._vocab.render
        live = (self._t_frag + "".join([render[x] for x in labels.tolist()])).split()
        done = self._t_words
        text = _join(self._t_text, " ".join(live))
        n_stable = int(kb.stream_common_words(ws.text.i, b, nb))
        if n_stable <= len(done):
            stable = " ".join(done[:n_stable])
        else:
            stable = _join(self._t_text, " ".join(live[: n_stable - len(done)]))
        spans = list(zip(starts.tolist(), ends.tolist(), strict=True))
        if b[0, ks.B_PLEN] > 0:
            spans.append((int(b[0, ks.B_PSTART]), int(b[0, ks.B_PEND])))
        k = len(self._t_pairs)
        if k == len(done):  # the committed word frames may go further than the words
            rest = zip(live, self._t_spans[k:] + spans, strict=False)
        else:
            rest = zip(done[k:] + live, spans, strict=False)
        return StreamPartial(text, stable, self._t_pairs + list(rest), self._t)

    def finish(self, max_beams: int | None = None) -> list[Any]:
        """End the utterance: the final beams, best first, exactly as
        ``decoder.decode_beams(np.concatenate(chunks), ...)`` returns them with the stream's
        arguments (``max_beams`` as there). The stream is closed afterwards.

        Raises
        ------
        ValueError
            No frame was fed, or no beam survived (as ``decode_beams``).
        RuntimeError
            The stream is finished already, or failed earlier.
        """
        from .decoder import _check_max_beams

        self._check_open()
        keep = _check_max_beams(max_beams)
        if self._t == 0:
            raise ValueError("the stream is empty (no frame was fed); nothing to decode.")
        self._closed = True
        ws = self._ws
        ws.io[ks.IO_STREAM] = 0
        self._ensure_chains(0)
        ws = self._ws
        dtype = self._dtype
        assert dtype is not None
        empty = np.empty(0, dtype=dtype)
        lo, hi = (-math.inf, math.inf) if self._probs else (LOG_MIN_TOKEN_P, 0.0)
        frames = ks.Frames(
            np.empty((0, self._C), dtype=dtype),
            empty,
            empty,
            np.empty(0, dtype=np.int32),
            np.zeros(1, dtype=np.int64),
            lo,
            hi,
            self._t,
        )
        tables = self._tables
        if tables is not None:
            tables.check_version()
        abort = np.zeros(1, dtype=np.int64)
        ws = search.drive(frames, ws, self._su, self._vocab, tables, self._args.path, None, abort)
        self._ws = ws
        io = ws.io
        n_tk, n_fc = int(io[ks.IO_NTK]), int(io[ks.IO_NFC])
        c_lab, c_fr, c_lp, c_st, c_en = self._committed()
        tk, out_i = _prepend(
            ws.chains.tokens[:n_tk], np.stack([c_lab, c_fr], 1), ws.out_i, ks.O_TOKNODE
        )
        fc, out_i = _prepend(ws.chains.frames[:n_fc], np.stack([c_st, c_en], 1), out_i, ks.O_FNODE)
        found = search.Found(int(io[ks.IO_NOUT]), out_i, ws.out_f, ks.Chains(fc, tk), ws.text)
        lp = _TokenLogProbs(
            np.concatenate([c_fr, ws.chains.tokens[:n_tk, 2]]),
            np.concatenate([c_lab, ws.chains.tokens[:n_tk, 1]]),
            np.concatenate([c_lp, self._tk_lp[:n_tk]]),
            self._C,
        )
        return self._decoder._beams_of(lp, found, self._args.path, False, keep)


def _prepend(
    ch: np.ndarray, committed: np.ndarray, out_i: np.ndarray, col: int
) -> tuple[np.ndarray, np.ndarray]:
    """Chain ``ch`` (parent, a, b) with the ``committed`` rows (a, b) in front as one chain its
    roots continue, and ``out_i`` with column ``col`` renumbered to match."""
    nc = committed.shape[0]
    if nc == 0:
        return np.ascontiguousarray(ch), out_i
    full = np.empty((nc + ch.shape[0], 3), dtype=np.int64)
    full[:nc, 0] = np.arange(-1, nc - 1)
    full[:nc, 1:] = committed
    full[nc:, 1:] = ch[:, 1:]
    par = ch[:, 0]
    full[nc:, 0] = np.where(par < 0, nc - 1, par + nc)
    out = out_i.copy()
    node = out[:, col]
    out[:, col] = np.where(node < 0, nc - 1, node + nc)
    return full, out


def _join(a: str, b: str) -> str:
    """``a`` and ``b`` joined by a space (either may be empty)."""
    return f"{a} {b}" if a and b else a or b
