"""One LM beam search: its workspace, the kernel calls and what happens between them.

:func:`run` builds the bundles of :mod:`fastctc.kernels.lm_state` for one utterance
(:func:`setup`, :func:`workspace`); :func:`drive` calls
:func:`fastctc.kernels.lm_beam.lm_beam_search` and acts on its status until it is ``DONE``:
it grows the text-node or candidate pool (``GROW_*``), answers queries the resolver
declined and passes tables that grew (``PENDING``, :mod:`fastctc.lm.queries`), or raises
:class:`SearchAborted` (``ABORTED``). It returns the final beams as the kernel leaves them
(:class:`Found`); :mod:`fastctc.lm.decoder` turns them into pyctcdecode's tuples.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import _scratch
from ..kernels import lm_beam as kb
from ..kernels import lm_state as ks
from ..kernels.lm_cache import FNV_OFFSET
from ..kernels.lm_score import rebuild_text_table
from .queries import RESOLVER, SearchQueries
from .scoring import ScorePath, kernel_modes
from .tables import EMPTY_TABLE, KernelTables

#: Entries of the per-search cache of partial-word scores (a power of two).
PARTIAL_CACHE = 4096


class SearchAborted(RuntimeError):
    """The LM search stopped early because another thread set its abort flag (Ctrl-C)."""


class SearchSizes(NamedTuple):
    """First sizes of a search's pools: text nodes per frame and candidates per beam, and the
    smallest pool. A search that outgrows a pool stops, the pool grows and the frame is
    redone, so these trade memory for restarts and never change results."""

    text_per_frame: int = 16
    cand_per_beam: int = 20
    min_pool: int = 1024


class SearchArgs(NamedTuple):
    """The validated arguments of one search (see ``decode_beams``)."""

    beam_width: int
    beam_prune_logp: float
    token_min_logp: float
    prune_history: bool
    hotwords: tuple[np.ndarray, np.ndarray, np.ndarray]  # see tables.hotword_tables
    hotword_weight: float
    lm_start_state: Any
    keep: int  # beams to return (0: all)
    path: ScorePath  # how LM scores are obtained (fastctc.lm.scoring.choose)
    hotword_names: tuple[str, ...] = ()  # the hotwords, normalised


class Found(NamedTuple):
    """The final beams of one search, best first: ``out_i[:n, O_*]``, ``out_f[:n]``
    (acoustic, combined score), and the chains and text nodes they point into."""

    n: int
    out_i: np.ndarray
    out_f: np.ndarray
    chains: ks.Chains
    text: ks.TextNodes


#: Tables standing for "no n-gram tables" (order 0) and "no score cache".
NO_NGRAMS = ks.Ngrams(
    np.zeros(1, dtype=np.int64),
    np.zeros((1, 2), dtype=np.float32),
    np.zeros(1, dtype=np.uint64),
    np.zeros((1, 2), dtype=np.float32),
    np.zeros(4, dtype=np.int64),
    np.zeros(2, dtype=np.float64),
)
_NO_CACHE = ks.ScoreCache(
    EMPTY_TABLE[0],
    EMPTY_TABLE[1],
    EMPTY_TABLE[0],
    np.zeros(1),
    EMPTY_TABLE[1],
    EMPTY_TABLE[0],
    np.zeros(1),
    EMPTY_TABLE[0],
)


def text_pool(cap: int, held: list[np.ndarray] | None = None) -> ks.TextNodes:
    """An empty pool of ``cap`` text nodes with its (parent, word) table."""
    tcap = 1 << (2 * cap - 1).bit_length()
    return ks.TextNodes(
        _scratch.take_held(held, (cap, ks.N_COLS), np.int64),
        _scratch.take_held(held, (cap,), np.uint64),
        _scratch.take_held(held, (cap,), np.uint64),
        _scratch.take_held(held, (cap,), np.float64),
        _scratch.take_held(held, (tcap,), np.uint64, zero=True),
        _scratch.take_held(held, (tcap,), np.int64),
    )


def _grow_text(
    old: ks.TextNodes, n_used: int, cap: int, held: list[np.ndarray] | None
) -> ks.TextNodes:
    new = text_pool(cap, held)
    for a, b in zip(new[:4], old[:4], strict=True):
        a[:n_used] = b[:n_used]
    rebuild_text_table(new.i, new.word, n_used, new.table_keys, new.table_vals)
    return new


def cand_pool(cap: int, held: list[np.ndarray] | None = None) -> ks.Candidates:
    """An empty pool of ``cap`` candidates with its merge table."""
    mcap = 1 << (2 * cap - 1).bit_length()
    return ks.Candidates(
        _scratch.take_held(held, (cap, ks.C_COLS), np.int64),
        _scratch.take_held(held, (cap,), np.float64),
        _scratch.take_held(held, (cap,), np.float64),
        _scratch.take_held(held, (cap,), np.uint64),
        _scratch.take_held(held, (cap,), np.float64),
        _scratch.take_held(held, (cap,), np.float64),
        _scratch.take_held(held, (mcap,), np.uint64, zero=True),
        _scratch.take_held(held, (mcap,), np.int64),
    )


def _beams(K: int) -> ks.Beams:
    return ks.Beams(
        np.full((K, ks.B_COLS), -1, dtype=np.int64),
        np.zeros(K),
        np.zeros(K, dtype=np.uint64),
        np.zeros(K),
        np.zeros(K),
    )


def workspace(
    T: int, K: int, start_state: int, held: list[np.ndarray] | None, sizes: SearchSizes
) -> ks.Workspace:
    """The workspace of a search of ``T`` frames and ``K`` beams, holding the start beam."""
    beams = _beams(K)
    beams.i[0, ks.B_TEXT] = 0
    beams.i[0, ks.B_PLEN] = 0
    beams.i[0, ks.B_PNTOK] = 0
    beams.phash[0] = FNV_OFFSET
    text = text_pool(max(sizes.min_pool, sizes.text_per_frame * T + 4 * K), held)
    text.i[0] = (-1, start_state, -1, 0, 0)  # the root: no word
    text.word[0] = 0
    text.hist[0] = FNV_OFFSET
    text.lm[0] = 0.0
    chains = ks.Chains(
        _scratch.take_held(held, ((T + 1) * K + 1, 3), np.int64),
        _scratch.take_held(held, (T * K + 1, 3), np.int64),
    )
    queries = ks.Queries(
        np.empty((4 * K + 64, ks.Q_COLS), dtype=np.int64), np.empty(4 * K + 64, dtype=np.uint64)
    )
    io = np.zeros(ks.IO_COLS, dtype=np.int64)
    io[ks.IO_NBEAMS] = 1
    io[ks.IO_NTEXT] = 1
    return ks.Workspace(
        beams,
        text,
        cand_pool(max(sizes.min_pool, sizes.cand_per_beam * K), held),
        chains,
        queries,
        np.zeros(PARTIAL_CACHE, dtype=np.uint64),
        np.empty(PARTIAL_CACHE),
        io,
        np.empty((K, ks.O_COLS), dtype=np.int64),
        np.empty((K, 2)),
    )


def _params(args: SearchArgs, vocab: Any, tables: KernelTables | None, path: ScorePath) -> Any:
    lm = tables.lm if tables is not None else None
    modes = kernel_modes(path, lm)
    native = tables is not None and tables.native
    return ks.SearchParams(
        int(vocab.blank),
        int(args.beam_width),
        float(args.beam_prune_logp),
        float(args.token_min_logp),
        bool(args.prune_history),
        max(1, int(lm.order) - 1) if lm is not None else 1,
        float(args.hotword_weight),
        int(modes.score_path),
        int(modes.partial_mode),
        bool(tables is not None and tables.have_unigrams),
        int(tables.n_unigrams) if native else 0,  # type: ignore[union-attr]
        float(getattr(lm, "unk_score_offset", 0.0)) if lm is not None else 0.0,
        bool(modes.can_bound),
        float(modes.alpha_ln10),
        float(modes.beta),
    )


def _ngrams(tables: KernelTables | None, path: ScorePath) -> ks.Ngrams:
    if path.name != "ngram":
        return NO_NGRAMS
    assert tables is not None and tables.ngram is not None
    lm: Any = tables.lm
    uni, keys, vals, meta = tables.ngram.arrays(bool(lm.score_boundary))
    ab = np.array([lm.alpha, lm.beta], dtype=np.float64)
    return ks.Ngrams(tables.w_info, uni, keys, vals, meta, ab)


class Setup(NamedTuple):
    """What the kernel reads of one search's vocabulary, model and arguments, and the id of
    its start LM state (-1 without a model)."""

    tokens: ks.Tokens
    params: Any
    ngrams: ks.Ngrams
    hotwords: ks.Hotwords
    start: int


def setup(vocab: Any, tables: KernelTables | None, args: SearchArgs) -> Setup:
    """The :class:`Setup` of a search with ``args`` (see :func:`run` for ``vocab`` and
    ``tables``); drops cached scores that the model's parameters outdated."""
    path = args.path
    start = -1
    if tables is not None:
        tables.check_version()
        start = tables.start_state_id(args.lm_start_state)
    tokens = ks.Tokens(vocab.kinds, vocab.codes, vocab.offsets)
    params = _params(args, vocab, tables, path)
    return Setup(tokens, params, _ngrams(tables, path), ks.Hotwords(*args.hotwords), start)


def drive(
    frames: ks.Frames,
    ws: ks.Workspace,
    su: Setup,
    vocab: Any,
    tables: KernelTables | None,
    path: ScorePath,
    held: list[np.ndarray] | None,
    abort: np.ndarray,
) -> ks.Workspace:
    """Call the kernel on ``frames`` from ``ws.io[IO_T]`` until it returns ``DONE``, acting on
    the other statuses: grow a pool, answer LM queries, raise :class:`SearchAborted`.

    Returns the workspace, whose pools may have been replaced by larger ones (taken from the
    scratch pool and listed in ``held``, or allocated when ``held`` is None). With
    ``ws.io[IO_STREAM]`` set the kernel stops after the frames instead of finishing.
    """
    tk = ws.chains.tokens

    def spell(qq: np.ndarray) -> tuple[str, list[int]]:
        codes, off = kb.spell_queries(qq, tk, vocab.codes, vocab.offsets)
        return codes.tobytes().decode("utf-32-le"), off.tolist()

    search = SearchQueries(tables, ws.queries.rows, ws.queries.hashes, spell)
    ctx = search.register() if (tables is not None and path.name == "callback") else 0
    io = ws.io
    try:
        while True:
            if tables is not None:
                word_table, scores, partial, prefix = search.snapshot()
                cache = ks.ScoreCache(*word_table, *scores, *partial, prefix)
            else:
                cache = _NO_CACHE
            model = ks.Model(cache, su.ngrams, su.hotwords)
            status = kb.lm_beam_search(
                frames, su.tokens, su.params, model, ws, RESOLVER, ctx, abort
            )
            if status == ks.DONE:
                break
            if status == ks.ABORTED:
                raise SearchAborted("the search was asked to stop")
            if status == ks.PENDING:
                assert tables is not None
                search.raise_error()
                n = int(io[ks.IO_NQ])
                if n:  # else answered already, into tables that have grown since
                    tables.resolve(ws.queries.rows[:n], ws.queries.hashes[:n], spell)
            elif status == ks.GROW_TEXT:
                cap = ws.text.i.shape[0]
                while cap < int(io[ks.IO_NEED]) + 1:
                    cap *= 2
                ws = ws._replace(text=_grow_text(ws.text, int(io[ks.IO_NTEXT]), cap, held))
            elif status == ks.GROW_CAND:
                cap = ws.cand.i.shape[0]
                while cap < int(io[ks.IO_NEED]):
                    cap *= 2
                ws = ws._replace(cand=cand_pool(cap, held))
            else:  # pragma: no cover - the kernel returns only the codes above
                raise RuntimeError(f"unexpected kernel status {status}")
    finally:
        search.unregister(ctx)
    return ws


def run(
    frames: ks.Frames,
    vocab: Any,
    tables: KernelTables | None,
    args: SearchArgs,
    held: list[np.ndarray],
    abort: np.ndarray,
    sizes: SearchSizes,
) -> Found:
    """Search one utterance (its ``frames``, see :mod:`fastctc.lm.frames`) and return its
    final beams.

    ``vocab`` has the kernel's per-label arrays (``kinds``, ``codes``, ``offsets``) and
    ``blank``; ``tables`` is the decoder's score cache (``None`` without a model); the score
    path is ``args.path``. Large arrays come from the scratch pool and are listed in ``held``.

    Raises
    ------
    SearchAborted
        ``abort[0]`` was set.
    Exception
        Whatever the language model raised while answering queries.
    """
    T = frames.t0 + frames.x.shape[0]
    su = setup(vocab, tables, args)
    ws = workspace(T, args.beam_width, su.start, held, sizes)
    ws = drive(frames, ws, su, vocab, tables, args.path, held, abort)
    io = ws.io
    return Found(int(io[ks.IO_NOUT]), ws.out_i, ws.out_f, ws.chains, ws.text)
