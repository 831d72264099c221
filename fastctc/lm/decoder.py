"""pyctcdecode-compatible CTC beam search decoder with KenLM fusion, compiled with Numba.

``build_ctcdecoder(labels, kenlm_model_path, unigrams, alpha, beta)`` returns a
:class:`BeamSearchDecoderCTC` whose ``decode``, ``decode_beams``, ``decode_batch`` and
``decode_beams_batch`` take the arguments and defaults of pyctcdecode 0.5.0 and return the
same values; the search itself runs in a GIL-free kernel (:mod:`fastctc.kernels.lm_beam`), so
batches run in parallel on threads. ARPA models and KenLM trie binaries need no ``kenlm``
package (see :func:`fastctc.lm.load_model`).
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .. import _scratch
from .. import _validate as v
from ..alphabet import Alphabet
from ..batch import balanced_chunks, run_abortable
from ..defaults import (
    DEFAULT_ALPHA,
    DEFAULT_BEAM_PRUNE_LOGP,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_BETA,
    DEFAULT_HOTWORD_WEIGHT,
    DEFAULT_LEXICON_LOG_ADD,
    DEFAULT_LEXICON_SIL_SCORE,
    DEFAULT_LEXICON_UNK_SCORE,
    DEFAULT_PRUNE_BEAMS,
    DEFAULT_SCORE_LM_BOUNDARY,
    DEFAULT_TOKEN_MIN_LOGP,
    DEFAULT_UNK_LOGP_OFFSET,
    MIN_TOKEN_LOGP_CLIP,
)
from ..kernels import lexicon as kx
from ..kernels import lm_beam as kb
from ..kernels import lm_state as ks
from ..kernels import ngram as kn
from ..vocabulary import Vocabulary, encode_strings
from . import lexicon as lexmode
from . import search
from .frames import MIN_TOKEN_P, LogProbs, first_bad_row, prepare, row_max
from .lexicon import Lexicon, LexiconOptions, lexicon_entries
from .models import (
    AbstractLanguageModel,
    LanguageModel,
    LMRecipe,
    language_model_from_recipe,
    load_model,
    load_unigram_set_from_arpa,
    logger,
    model_name,
)
from .ngram import NgramModel, read_arpa_bytes
from .scoring import ScorePath, check_lm_scoring, choose
from .search import SearchAborted, SearchArgs, SearchSizes
from .stream import LMStream
from .tables import KernelTables, hotword_tables, normalise_hotwords

__all__ = [
    "DEFAULT_BEAM_WIDTH",
    "DEFAULT_HOTWORD_WEIGHT",
    "DEFAULT_MIN_TOKEN_LOGP",
    "DEFAULT_PRUNE_BEAMS",
    "DEFAULT_PRUNE_LOGP",
    "MIN_TOKEN_LOGP_CLIP",
    "BeamSearchDecoderCTC",
    "OutputBeam",
    "OutputBeamBatch",
    "SearchAborted",
    "build_ctcdecoder",
    "warmup_decoder",
]

#: pyctcdecode's names of the search defaults.
DEFAULT_PRUNE_LOGP = DEFAULT_BEAM_PRUNE_LOGP
DEFAULT_MIN_TOKEN_LOGP = DEFAULT_TOKEN_MIN_LOGP
#: Searches of fewer frames run on the calling thread: starting a worker thread (which lets
#: Ctrl-C stop a long search within a frame) costs about as much as a short utterance's search.
_INLINE_FRAMES = 4096


WordFrames = tuple[str, tuple[int, int]]


class _OutputBeamFields(NamedTuple):
    text: str
    last_lm_state: Any
    text_frames: list[WordFrames]
    logit_score: float
    lm_score: float


class _BeamExtras:
    """fastctc's additions to pyctcdecode's beams, as attributes outside the tuple."""

    tokens: np.ndarray
    token_frames: np.ndarray
    _word_probs: Any

    @property
    def word_confidences(self) -> list[float]:
        """Per word of ``text_frames``: mean posterior of the word's labels at their start
        frames (0..1)."""
        return self._word_probs()


class OutputBeam(_OutputBeamFields, _BeamExtras):
    """One beam of :meth:`BeamSearchDecoderCTC.decode_beams`.

    A tuple ``(text, last_lm_state, text_frames, logit_score, lm_score)`` exactly as
    pyctcdecode's, with named fields, plus attributes ``tokens`` (label ids, repeats collapsed,
    blanks removed, int64), ``token_frames`` (start frame of each token) and
    ``word_confidences``. When several paths end in the same text they are merged;
    ``text_frames`` then come from the last merged path (as pyctcdecode) and ``tokens`` from
    the best one.

    ``text_frames`` pairs each word with ``(start_frame, end_frame)`` (end exclusive);
    ``logit_score`` is the acoustic log-score, ``lm_score`` the combined score
    (acoustic + LM + hotwords) the beams are ranked by.
    """


class _OutputBeamBatchFields(NamedTuple):
    text: str
    text_frames: list[WordFrames]
    logit_score: float
    lm_score: float


class OutputBeamBatch(_OutputBeamBatchFields, _BeamExtras):
    """One beam of :meth:`BeamSearchDecoderCTC.decode_beams_batch`: pyctcdecode's
    ``(text, text_frames, logit_score, lm_score)`` plus the attributes of :class:`OutputBeam`."""


def _lm_hint(tables: Any) -> str:
    """`` (name)`` of the tables' language model for an error message, or nothing."""
    if tables is None:
        return ""
    return " (" + model_name(tables.lm).removeprefix("the language model ") + ")"


def _check_errors(errors: Any) -> str:
    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return'; got {errors!r}.")
    return errors


def _check_max_beams(max_beams: Any) -> int:
    """``max_beams`` as the search's ``keep`` argument (0: every beam)."""
    if max_beams is None:
        return 0
    m = v.as_int(max_beams, "max_beams")
    if m < 1:
        raise ValueError(f"max_beams must be >= 1 or None; got {m}.")
    return m


def _replay_state(tables: Any, tn_i: np.ndarray, node: int, last_word: int) -> Any:
    """LM state (``kenlm.State`` or ``NgramState``) after the words of text node ``node`` and
    the final word (vocabulary id ``last_word``), for a search scored from n-gram tables
    (which keeps no model states: each node holds its word's vocabulary id).

    The state holds at most the last ``order - 1`` words, so once the text is that long
    they are replayed from the null context; a shorter text is replayed from the start."""
    keep = max(int(tables.lm.kenlm_model.order) - 1, 1)
    ids = [last_word]
    while node > 0 and len(ids) < keep:
        ids.append(int(tn_i[node, ks.N_VOCAB]))
        node = int(tn_i[node, ks.N_PARENT])
    # older words than the state holds cannot reach it: replay from the null context
    return _state_after(tables, ids[::-1], from_start=node <= 0)


def _state_after(tables: Any, ids: list[int], from_start: bool) -> Any:
    """LM state after the words with vocabulary ids ``ids`` (text order), replayed from the
    model's start state, or from the null context when not ``from_start``."""
    lm = tables.lm
    model = lm.kenlm_model
    state = lm.get_start_state()
    if not from_start:
        state = type(state)()
        model.NullContextWrite(state)
    words = tables.ngram.words
    if isinstance(model, NgramModel):  # its state is the words: nothing to score
        return model.state_after(state, [words[wid] for wid in ids])
    for wid in ids:
        nxt = type(state)()
        model.BaseScore(state, words[wid], nxt)
        state = nxt
    return state


class BeamSearchDecoderCTC:
    """CTC beam search with optional language-model fusion and hotwords.

    Build it with :func:`build_ctcdecoder`. Method names, arguments, defaults and results
    follow pyctcdecode 0.5.0; results are NamedTuples with extra attributes.

    Parameters
    ----------
    alphabet : Alphabet
        Normalised labels.
    language_model : AbstractLanguageModel, optional
        A :class:`~fastctc.lm.LanguageModel` (word n-grams) or any object with that protocol.
    lm_scoring : {"auto", "ngram", "callback", "resume"}
        How searches get LM scores (see :attr:`lm_scoring` and :func:`build_ctcdecoder`).
    lexicon : Lexicon, True, list, dict or path, optional
        Search in the lexicon-constrained mode (:mod:`fastctc.lm.lexicon`); see
        :func:`build_ctcdecoder`.
    lexicon_options : LexiconOptions, optional
        Its scores (default: :class:`~fastctc.lm.lexicon.LexiconOptions`'s).

    Raises
    ------
    ValueError
        ``lm_scoring`` is not one of the four, or ``"ngram"`` for a model without n-gram
        tables (the message says why); a lexicon with a model fastctc cannot read as n-gram
        tables.
    """

    _ALPHABET_FILE = _ALPHABET_SERIALIZED_FILENAME = "alphabet.json"
    _LM_DIR = _LANGUAGE_MODEL_SERIALIZED_DIRECTORY = "language_model"
    #: First sizes of each search's pools (see :class:`fastctc.lm.search.SearchSizes`).
    search_sizes = SearchSizes()

    def __init__(
        self,
        alphabet: Alphabet,
        language_model: AbstractLanguageModel | None = None,
        *,
        lm_scoring: str = "auto",
        lexicon: Any = None,
        lexicon_options: LexiconOptions | None = None,
    ) -> None:
        if not isinstance(alphabet, Alphabet):
            raise TypeError(f"alphabet must be an Alphabet; got {type(alphabet).__name__}.")
        if language_model is not None and not isinstance(language_model, AbstractLanguageModel):
            missing = [
                m
                for m in ("order", "get_start_state", "score", "score_partial_token")
                if not hasattr(language_model, m)
            ]
            if missing:
                raise TypeError(
                    "language_model must implement the AbstractLanguageModel protocol; "
                    f"{type(language_model).__name__} lacks {missing}."
                )
        self._alphabet = alphabet
        self._model_key = os.urandom(16)
        self._vocab = Vocabulary.from_alphabet(alphabet)
        self._language_model = language_model
        self._tables: KernelTables | None = None
        if language_model is not None:
            self._tables = KernelTables(language_model)  # type: ignore[arg-type]
        self._lm_scoring = check_lm_scoring(lm_scoring)
        self._score_path = choose(language_model, self._lm_scoring)
        self._lexicon = self._make_lexicon(lexicon)
        if lexicon_options is None:
            lexicon_options = LexiconOptions()
        if not isinstance(lexicon_options, LexiconOptions):
            raise TypeError(
                f"lexicon_options must be a LexiconOptions; got {type(lexicon_options).__name__}."
            )
        self._lexicon_options = LexiconOptions.checked(*lexicon_options)

    def _make_lexicon(self, source: Any) -> Lexicon | None:
        """The decoder's :class:`Lexicon` from a ``lexicon`` argument (``None``: off)."""
        if source is None or source is False:
            return None
        lm = self._language_model
        ngram = None
        if lm is not None:
            tables = self._tables
            assert tables is not None
            ngram = tables.ngram
            if ngram is None:
                why = getattr(lm, "ngram_tables_missing", None) or (
                    f"{type(lm).__name__} is not a fastctc LanguageModel"
                )
                raise ValueError(
                    "the lexicon mode scores words from n-gram tables, and this language "
                    f"model has none: {why}. Use an ARPA file or a KenLM trie binary."
                )
        if isinstance(source, Lexicon):
            if source._ngram is not ngram:
                source = Lexicon(source.entries, ngram)
            return source
        unigrams: Any = None
        if source is True and lm is not None:
            unigrams = sorted(getattr(lm, "unigrams", ()) or ())
            if not unigrams and ngram is not None:
                unigrams = [w for w in ngram.words if w not in ("<s>", "</s>", "<unk>")]
        return Lexicon(lexicon_entries(source, unigrams), ngram)

    # ------------------------------------------------------------------ copying and pickling
    def __reduce__(self) -> tuple[Any, ...]:
        """A decoder pickles as its recipe (labels, the model's recipe, ``lm_scoring``) and is
        rebuilt where it is unpickled, once per process and recipe: the model file must be
        readable there at the same path. A custom language model is pickled as itself."""
        lm = self._language_model
        lm_part = lm.recipe() if isinstance(lm, LanguageModel) else lm
        lex = self._lexicon
        lex_part = None
        if lex is not None:
            entries = tuple((w, tuple(sp)) for w, sp in lex.entries.items())
            lex_part = (entries, tuple(self._lexicon_options))
        return (
            _decoder_from_recipe,
            (self._alphabet.dumps(), lm_part, self._lm_scoring, lex_part),
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> BeamSearchDecoderCTC:
        """A decoder with its own parameters and score cache; a :class:`LanguageModel`'s
        loaded model and tables, which never change, are shared."""
        lm = copy.deepcopy(self._language_model, memo)
        new = type(self)(
            self._alphabet,
            lm,
            lm_scoring=self._lm_scoring,
            lexicon=None if self._lexicon is None else dict(self._lexicon.entries),
            lexicon_options=self._lexicon_options,
        )
        if "search_sizes" in self.__dict__:
            new.search_sizes = self.search_sizes
        memo[id(self)] = new
        return new

    def _path_for(self, lm_start_state: Any) -> ScorePath:
        """The score path of a search from ``lm_start_state`` (``None``: the start state)."""
        if lm_start_state is None:
            return self._score_path
        return choose(self._language_model, self._lm_scoring, from_state=True)

    # ------------------------------------------------------------------ properties
    @property
    def labels(self) -> list[str]:
        """Normalised labels (the columns ``logits`` must have)."""
        return self._alphabet.labels

    @property
    def model_container(self) -> dict[bytes, Any]:
        """``{decoder._model_key: language_model}``, for code written against pyctcdecode's
        class-level model container."""
        return {self._model_key: self._language_model}

    @property
    def language_model(self) -> AbstractLanguageModel | None:
        """The fused language model, if any."""
        return self._language_model

    @property
    def lm_scoring(self) -> ScorePath:
        """How searches get LM scores, and why: ``(name, reason)`` with ``name`` one of
        ``"none"``, ``"ngram"`` (n-gram tables scored in the kernel), ``"callback"`` or
        ``"resume"`` (a score cache filled on demand); see :mod:`fastctc.lm.scoring`.
        A search from ``lm_start_state`` takes ``"callback"`` (or ``"resume"``).

        Examples
        --------
        >>> import fastctc
        >>> lm = fastctc.data.default_lm()
        >>> dec = fastctc.build_ctcdecoder(lm.labels, kenlm_model_path=lm.path)
        >>> dec.lm_scoring.name
        'ngram'
        """
        return self._score_path

    @property
    def lexicon(self) -> Lexicon | None:
        """The lexicon of the lexicon-constrained mode (``None``: pyctcdecode's search)."""
        return self._lexicon

    @property
    def lexicon_options(self) -> LexiconOptions:
        """The lexicon mode's scores (see :class:`~fastctc.lm.lexicon.LexiconOptions`)."""
        return self._lexicon_options

    @property
    def lm_tables(self) -> KernelTables | None:
        """The decoder's LM tables and score cache, shared by its threads (``None`` without
        a language model)."""
        return self._tables

    def reset_params(
        self,
        alpha: float | None = None,
        beta: float | None = None,
        unk_score_offset: float | None = None,
        lm_score_boundary: bool | None = None,
        *,
        unk_score: float | None = None,
        sil_score: float | None = None,
        log_add: bool | None = None,
    ) -> None:
        """Change LM parameters without reloading the model (no-op without a model), and the
        lexicon mode's scores (``unk_score``, ``sil_score``, ``log_add``: see
        :class:`~fastctc.lm.lexicon.LexiconOptions`)."""
        opts = self._lexicon_options
        lex = {"unk_score": unk_score, "sil_score": sil_score, "log_add": log_add}
        if any(x is not None for x in lex.values()):
            merged = opts._replace(**{k: x for k, x in lex.items() if x is not None})
            self._lexicon_options = LexiconOptions.checked(*merged)
        lm = self._language_model
        if lm is None:
            return
        params: dict[str, Any] = {}
        if alpha is not None:
            params["alpha"] = alpha
        if beta is not None:
            params["beta"] = beta
        if unk_score_offset is not None:
            params["unk_score_offset"] = unk_score_offset
        if lm_score_boundary is not None:
            params["score_boundary"] = lm_score_boundary
        if not params:  # transformers calls reset_params(alpha=None, ...) on every decode
            return
        lm.reset_params(**params)
        assert self._tables is not None
        self._tables.clear()

    def cleanup(self) -> None:
        """Kept for pyctcdecode compatibility; the model is freed with the decoder."""

    # ------------------------------------------------------------------ validation
    def _check_logits(
        self, logits: npt.ArrayLike, name: str = "logits"
    ) -> tuple[np.ndarray, np.ndarray]:
        """``logits`` as a C-contiguous float array, and the maximum of each row; raises
        ``TypeError`` / ``ValueError`` naming ``name``."""
        arr = self._check_shape(logits, name)
        return arr, self._check_values(arr, name)

    def _check_shape(self, logits: npt.ArrayLike, name: str) -> np.ndarray:
        """``logits`` as a C-contiguous ``(T, C)`` float array (``T >= 1``)."""
        arr = v.as_float_array(logits, name)
        C = len(self._vocab.kinds)
        if arr.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D (T, C) log-probabilities with C = {C} labels; "
                f"got shape {tuple(arr.shape)}. Use decode_batch for several utterances."
            )
        if arr.shape[1] != C:
            raise ValueError(
                f"{name} has {arr.shape[1]} columns but the decoder has {C} labels "
                f"({'blank appended, ' if C else ''}see decoder.labels); "
                f"logits must be (T, {C})."
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (T = 0 frames); nothing to decode.")
        return arr

    @staticmethod
    def _check_values(arr: np.ndarray, name: str, frame0: int | None = None) -> np.ndarray:
        """The maximum of each row of ``arr``; ``ValueError`` for NaN or ``+inf``. With
        ``frame0`` (a stream's frames so far) ``arr`` is a chunk and the message says where
        the bad row lies in the stream."""
        top = row_max(arr)
        row = first_bad_row(top)
        if row >= 0:
            where, what = "", "logits"
            if frame0 is not None:
                where, what = f" (frame {frame0 + row} of the stream)", "chunks"
            raise ValueError(
                f"{name}[{row}]{where} contains NaN or +inf; {what} must be finite (or -inf) "
                "log-probabilities, probabilities or raw logits."
            )
        return top

    def _search_args(
        self,
        beam_width: Any,
        beam_prune_logp: Any,
        token_min_logp: Any,
        prune_history: Any,
        hotwords: Iterable[str] | None,
        hotword_weight: Any,
        lm_start_state: Any,
        keep: int,
    ) -> SearchArgs:
        """The search arguments, checked (``TypeError`` / ``ValueError`` naming them)."""
        k = v.as_int(beam_width, "beam_width")
        if k < 1:
            raise ValueError(f"beam_width must be >= 1; got {k}.")
        vals = []
        for name, x in (
            ("beam_prune_logp", beam_prune_logp),
            ("token_min_logp", token_min_logp),
            ("hotword_weight", hotword_weight),
        ):
            if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number; got {type(x).__name__} {x!r}.")
            if math.isnan(float(x)):
                raise ValueError(f"{name} must not be NaN.")
            vals.append(float(x))
        if vals[0] > 0:
            raise ValueError(f"beam_prune_logp must be <= 0; got {vals[0]}.")
        if not math.isfinite(vals[2]):
            raise ValueError(
                f"hotword_weight must be finite; got {vals[2]}. An infinite weight makes the "
                "scores of the beams NaN or infinite; use a large finite weight."
            )
        path = self._path_for(lm_start_state)  # lm_scoring="ngram" cannot start from a state
        names = normalise_hotwords(hotwords)
        if self._lexicon is not None and lm_start_state is not None:
            raise ValueError(
                "lm_start_state is not supported in the lexicon mode; decode the utterances "
                "in one call, or build the decoder without a lexicon."
            )
        hw = hotword_tables(names)
        return SearchArgs(
            k,
            vals[0],
            vals[1],
            bool(prune_history),
            hw,
            vals[2],
            lm_start_state,
            keep,
            path,
            names,
        )

    # ------------------------------------------------------------------ the search
    def _interruptible(
        self, checked: tuple[np.ndarray, np.ndarray], args: SearchArgs, batch_form: bool
    ) -> list[Any]:
        """:meth:`_search` of one utterance, on a worker thread when it is long, so that
        Ctrl-C stops it within a frame (see :func:`fastctc.batch.run_abortable`)."""
        inline = checked[0].shape[0] < _INLINE_FRAMES

        def work(_: Any, abort: np.ndarray) -> list[Any]:
            return self._search(checked, args, batch_form, abort)

        return run_abortable(work, [None], inline)[0]

    def _search(
        self,
        checked: tuple[np.ndarray, np.ndarray],
        args: SearchArgs,
        batch_form: bool,
        abort: np.ndarray,
    ) -> list[Any]:
        """Search one utterance (as :meth:`_check_logits` returns it) on scratch buffers
        from the pool (handed back afterwards) and build its beams."""
        x, top = checked
        if self._lexicon is not None:
            return self._lexicon_search(pyctcdecode_log_probs(x), args, batch_form, abort)
        held: list[np.ndarray] = []
        try:
            frames, lp = prepare(x, top, args.token_min_logp, held)
            found = search.run(
                frames, self._vocab, self._tables, args, held, abort, self.search_sizes
            )
            return self._beams_of(lp, found, args.path, batch_form, args.keep)
        finally:
            for a in held:
                _scratch.give(a)

    def _lexicon_search(
        self, lp: np.ndarray, args: SearchArgs, batch_form: bool, abort: np.ndarray
    ) -> list[Any]:
        """:meth:`_search` in the lexicon mode."""
        lex = self._lexicon
        assert lex is not None
        tables = self._tables
        found = lexmode.run(lp, self._vocab, lex, self._lexicon_options, tables, args, abort)
        if found.n == 0:
            raise ValueError(
                "no path through the lexicon fits this utterance: every hypothesis left the "
                "lexicon's spellings or scored -inf. Allow out-of-lexicon words "
                "(unk_score=-10.0, say), check that the spellings use the model's labels, "
                "or widen beam_prune_logp and beam_width."
            )
        n_out = min(found.n, args.keep) if args.keep else found.n
        labels, frames, t_off, codes, starts, ends, w_off = kx.collect(
            found.chain, found.out_i, n_out
        )
        names = found.words
        lps = LogProbs.of_matrix(lp)
        bos = int(tables.ngram.meta[kn.M_BOS]) if tables is not None else -1
        beams = []
        for a in range(n_out):
            w0, w1 = int(w_off[a]), int(w_off[a + 1])
            words = [
                names[c] if c >= 0 else lex.spell_node(found.trie, -2 - c)
                for c in codes[w0:w1].tolist()
            ]
            spans = zip(starts[w0:w1].tolist(), ends[w0:w1].tolist(), strict=True)
            text_frames = list(zip(words, spans, strict=True))
            text = " ".join(words)
            logit_score = float(found.out_f[a, 1])
            lm_score = float(found.out_f[a, 0])
            if batch_form:
                beam: Any = OutputBeamBatch(text, text_frames, logit_score, lm_score)
            else:
                state = None
                if tables is not None:
                    ids = found.out_ctx[a, : found.out_i[a, kx.X_NCTX]].tolist()[::-1]
                    from_start = bool(ids) and ids[0] == bos
                    state = _state_after(tables, ids[1:] if from_start else ids, from_start)
                beam = OutputBeam(text, state, text_frames, logit_score, lm_score)
            beams.append(_with_tokens(beam, lps, labels, frames, t_off, a, starts, ends, w0, w1))
        return beams

    def _beams_of(
        self, lp: LogProbs, found: search.Found, path: ScorePath, batch_form: bool, keep: int
    ) -> list[Any]:
        tables = self._tables
        n_out = found.n
        if n_out == 0:
            raise ValueError(
                "no beam survived the search: every hypothesis scored -inf or NaN. The language "
                f"model{_lm_hint(tables)} gives every path probability 0 (log10 -inf) or a NaN "
                "(check its probabilities), or the search arguments rule every path out."
            )
        if keep:
            n_out = min(n_out, keep)
        out_i, out_f = found.out_i, found.out_f
        nodes = np.ascontiguousarray(out_i[:n_out, [ks.O_TOKNODE, ks.O_FNODE]])
        labels, frames, t_off, starts, ends, w_off = kb.collect_chains(
            0, nodes, found.chains.tokens, found.chains.frames
        )
        render = self._vocab.render
        lab_list = labels.tolist()
        st_list = starts.tolist()
        en_list = ends.tolist()
        beams = []
        for a in range(n_out):
            text = " ".join("".join([render[x] for x in lab_list[t_off[a] : t_off[a + 1]]]).split())
            w0, w1 = int(w_off[a]), int(w_off[a + 1])
            spans = zip(st_list[w0:w1], en_list[w0:w1], strict=True)
            text_frames = list(zip(text.split(), spans, strict=False))
            logit_score = float(out_f[a, 0])
            lm_score = float(out_f[a, 1])
            if batch_form:
                beam: Any = OutputBeamBatch(text, text_frames, logit_score, lm_score)
            else:
                state = None
                if path.name == "ngram":
                    node, vocab = int(out_i[a, ks.O_TEXT]), int(out_i[a, ks.O_VOCAB])
                    state = _replay_state(tables, found.text.i, node, vocab)
                elif tables is not None and out_i[a, ks.O_LMSTATE] >= 0:
                    state = tables.states[int(out_i[a, ks.O_LMSTATE])]
                beam = OutputBeam(text, state, text_frames, logit_score, lm_score)
            beams.append(_with_tokens(beam, lp, labels, frames, t_off, a, starts, ends, w0, w1))
        return beams

    # ------------------------------------------------------------------ public API
    def decode_beams(
        self,
        logits: npt.ArrayLike,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        prune_history: bool = DEFAULT_PRUNE_BEAMS,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        lm_start_state: Any = None,
        *,
        max_beams: int | None = None,
    ) -> list[OutputBeam]:
        """Beam search one utterance; return the final beams, best first.

        Parameters
        ----------
        logits : array_like of shape (T, C)
            Raw logits, log-probabilities or probabilities, ``C == len(decoder.labels)``,
            normalised exactly as pyctcdecode 0.5.0 does (:func:`pyctcdecode_log_probs`:
            rows that sum to 1 are probabilities, anything else goes through a
            log-softmax; floored at ``log(1e-15)``), so a model's output can be passed as
            it is. NaN and ``+inf`` are refused. (The lower-level
            :func:`fastctc.beam_search` takes log-probabilities only.)
        beam_width : int
            Beams kept per frame.
        beam_prune_logp : float
            Beams scoring below ``best + beam_prune_logp`` are dropped.
        token_min_logp : float
            Labels below this log-probability are not tried (the frame's best always is).
        prune_history : bool
            Keep only the best beam per (last ``order - 1`` words, word part, last label).
        hotwords : iterable of str, optional
            Words or phrases to favour; ``hotword_weight`` per matched word, partial matches
            scaled by the matched length.
        hotword_weight : float
            Score added per hotword.
        lm_start_state : optional
            LM state to start from (default: the model's start state): a beam's
            ``last_lm_state`` from this decoder, i.e. a ``kenlm.State`` or, without the
            ``kenlm`` package, a :class:`fastctc.ngram.NgramState`.
        max_beams : int, optional
            Return at most this many beams (fastctc's addition; the others are not built).

        Returns
        -------
        list of OutputBeam
            ``(text, last_lm_state, text_frames, logit_score, lm_score)`` plus ``tokens``,
            ``token_frames`` and ``word_confidences`` attributes. ``last_lm_state`` is
            ``None`` without a language model; with one it is the state after the beam's
            last word: a ``kenlm.State`` when the ``kenlm`` package is installed (as
            pyctcdecode's), else a :class:`fastctc.ngram.NgramState` holding the last
            ``order - 1`` words. Either can be passed back as ``lm_start_state``.

        Raises
        ------
        TypeError, ValueError
            Bad ``logits`` (dtype, shape, width, empty, NaN) or search arguments (a
            non-finite ``hotword_weight``, ...), or an ``lm_start_state`` of another kind than
            the model's states. A language model that returns NaN, +inf or a non-number
            as a score raises at once, naming the model and the value.
        ValueError
            No beam survived: every path scored -inf (a language model that gives every
            word probability 0). The list returned is never empty: where pyctcdecode would
            return an empty list (and its ``decode`` an ``IndexError``), this raises, and so
            do :meth:`decode` and :meth:`decode_batch` (which never raise ``IndexError``).

        Examples
        --------
        >>> import numpy as np, fastctc
        >>> dec = fastctc.build_ctcdecoder(["", " ", "a", "b"])
        >>> a, blank, b = [.01, .01, .97, .01], [.97, .01, .01, .01], [.01, .01, .01, .97]
        >>> lp = np.log(np.array([a, blank, b]))
        >>> beams = dec.decode_beams(lp)
        >>> beams[0].text, beams[0].tokens.tolist(), beams[0].token_frames.tolist()
        ('ab', [2, 3], [0, 2])
        """
        lp = self._check_logits(logits)
        args = self._search_args(
            beam_width,
            beam_prune_logp,
            token_min_logp,
            prune_history,
            hotwords,
            hotword_weight,
            lm_start_state,
            _check_max_beams(max_beams),
        )
        return self._interruptible(lp, args, False)

    def decode(
        self,
        logits: npt.ArrayLike,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        lm_start_state: Any = None,
    ) -> str:
        """Best text of one utterance (``decode_beams`` with ``prune_history=True``).

        Examples
        --------
        >>> import numpy as np, fastctc
        >>> dec = fastctc.build_ctcdecoder(["", " ", "a", "b"])
        >>> dec.decode(np.log(np.array([[.1, .1, .7, .1], [.1, .7, .1, .1], [.1, .1, .1, .7]])))
        'a b'
        """
        lp = self._check_logits(logits)
        args = self._search_args(
            beam_width,
            beam_prune_logp,
            token_min_logp,
            True,
            hotwords,
            hotword_weight,
            lm_start_state,
            1,
        )
        return self._interruptible(lp, args, False)[0].text

    def _batch(
        self,
        logits_list: Sequence[npt.ArrayLike],
        beam_width: int,
        beam_prune_logp: float,
        token_min_logp: float,
        prune_history: bool,
        hotwords: Iterable[str] | None,
        hotword_weight: float,
        num_threads: int | None,
        keep: int,
        errors: str = "raise",
    ) -> list[Any]:
        if isinstance(logits_list, np.ndarray) and logits_list.ndim == 2:
            raise ValueError(
                "logits_list must be a list of (T, C) arrays or a 3-D array; got one 2-D array "
                f"of shape {logits_list.shape}. Use decode/decode_beams for one utterance."
            )
        errors = _check_errors(errors)
        args = self._search_args(
            beam_width,
            beam_prune_logp,
            token_min_logp,
            prune_history,
            hotwords,
            hotword_weight,
            None,
            keep,
        )
        # shapes and dtypes are checked here, values (one pass over each matrix) by the worker
        # that decodes it, while the matrix is in its caches
        lps: list[Any] = []
        for i, x in enumerate(logits_list):
            try:
                lps.append(self._check_shape(x, f"logits_list[{i}]"))
            except Exception as err:
                if errors == "raise":
                    raise
                lps.append(err)
        n = len(lps)
        if n == 0:
            return []
        results: list[Any] = [[] for _ in range(n)]
        for i, x in enumerate(lps):
            if isinstance(x, Exception):
                results[i] = x

        def work(items: np.ndarray, abort: np.ndarray) -> None:
            for i in items.tolist():
                if isinstance(lps[i], Exception):
                    continue
                x = lps[i]
                try:
                    top = self._check_values(x, f"logits_list[{i}]")
                except ValueError as err:
                    if errors == "raise":
                        raise
                    results[i] = err
                    continue
                try:
                    results[i] = self._search((x, top), args, True, abort)
                except Exception as err:
                    if errors == "raise":
                        if hasattr(err, "add_note"):  # Python >= 3.11
                            err.add_note(f"(while decoding logits_list[{i}])")
                        raise
                    results[i] = err

        threads = v.resolve_num_threads(num_threads, n)
        if threads > 1:
            # compile (or load from cache) before the pool starts, on the shortest utterance
            lengths = [x.shape[0] if isinstance(x, np.ndarray) else 1 << 62 for x in lps]
            shortest = int(np.argmin(lengths))
            work(np.array([shortest]), np.zeros(1, dtype=np.int64))
            rest = np.array([i for i in range(n) if i != shortest], dtype=np.int64)
            costs = np.array([lengths[i] % (1 << 62) + 1 for i in rest], dtype=np.float64)
            chunks = [rest[c] for c in balanced_chunks(costs, threads)] if rest.size else []
        else:
            chunks = [np.arange(n, dtype=np.int64)]
        total = sum(x.shape[0] for x in lps if isinstance(x, np.ndarray))
        run_abortable(work, chunks, inline=threads <= 1 and total < _INLINE_FRAMES)
        return results

    def decode_beams_batch(
        self,
        pool: Any,
        logits_list: Sequence[npt.ArrayLike],
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        prune_history: bool = DEFAULT_PRUNE_BEAMS,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        num_threads: int | None = None,
        *,
        max_beams: int | None = None,
        errors: str = "raise",
    ) -> list[Any]:
        """``decode_beams`` over many utterances on threads.

        ``pool`` is accepted for pyctcdecode compatibility and ignored: the GIL-free kernel
        runs on ``num_threads`` threads (default: every available core). Beams have no LM
        state, as pyctcdecode's: ``(text, text_frames, logit_score, lm_score)``. ``max_beams``
        (fastctc's addition) keeps at most that many beams per utterance, best first.

        ``errors`` (fastctc's addition) says what an utterance that cannot be decoded does:
        ``"raise"`` (the default) raises its exception, with a note naming its index in
        ``logits_list``, and the other results are lost; ``"return"`` puts the exception
        object in that utterance's slot of the result and decodes the others.

        Examples
        --------
        >>> import numpy as np, fastctc
        >>> dec = fastctc.build_ctcdecoder(["", " ", "a", "b"])
        >>> lp = np.log(np.full((2, 4), 0.25))
        >>> len(dec.decode_beams_batch(None, [lp, lp], num_threads=2))
        2
        """
        return self._batch(
            logits_list,
            beam_width,
            beam_prune_logp,
            token_min_logp,
            bool(prune_history),
            hotwords,
            hotword_weight,
            num_threads,
            _check_max_beams(max_beams),
            errors,
        )

    def decode_batch(
        self,
        pool: Any,
        logits_list: Sequence[npt.ArrayLike],
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        num_threads: int | None = None,
        *,
        errors: str = "raise",
    ) -> list[Any]:
        """``decode`` over many utterances on threads (``pool`` is ignored).

        ``errors="return"`` (fastctc's addition) puts the exception of an utterance that
        cannot be decoded in its slot of the result instead of raising it (``"raise"``, the
        default, raises it with a note naming its index, as :meth:`decode` would).

        Examples
        --------
        >>> import numpy as np, fastctc
        >>> dec = fastctc.build_ctcdecoder(["", " ", "a", "b"])
        >>> lp = np.log(np.array([[.1, .1, .7, .1], [.1, .1, .1, .7]]))
        >>> dec.decode_batch(None, [lp, lp[::-1]], num_threads=1)
        ['ab', 'ba']
        """
        res = self._batch(
            logits_list,
            beam_width,
            beam_prune_logp,
            token_min_logp,
            True,
            hotwords,
            hotword_weight,
            num_threads,
            1,
            errors,
        )
        return [r if isinstance(r, Exception) else r[0].text for r in res]

    def stream(
        self,
        beam_width: int = DEFAULT_BEAM_WIDTH,
        beam_prune_logp: float = DEFAULT_PRUNE_LOGP,
        token_min_logp: float = DEFAULT_MIN_TOKEN_LOGP,
        prune_history: bool = DEFAULT_PRUNE_BEAMS,
        hotwords: Iterable[str] | None = None,
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        lm_start_state: Any = None,
    ) -> LMStream:
        """A stream decoding one utterance chunk by chunk with the arguments of
        :meth:`decode_beams` (checked the same way).

        ``stream.feed(chunk)`` searches a ``(t, C)`` chunk of frames, ``stream.partial()``
        gives the text so far, and ``stream.finish()`` returns the beams ``decode_beams``
        returns for the chunks concatenated, whatever the chunking; see
        :class:`fastctc.lm.stream.LMStream` (and its module for how the input is normalised
        and how memory stays bounded on long streams).

        Raises
        ------
        TypeError, ValueError
            As :meth:`decode_beams` for the arguments; ``ValueError`` in the lexicon mode,
            which does not stream.

        Examples
        --------
        >>> import numpy as np, fastctc
        >>> dec = fastctc.build_ctcdecoder(["", " ", "a", "b"])
        >>> a, blank, b = [.01, .01, .97, .01], [.97, .01, .01, .01], [.01, .01, .01, .97]
        >>> lp = np.log(np.array([a, blank, b]))
        >>> s = dec.stream()
        >>> s.feed(lp[:2])
        >>> s.partial().text
        'a'
        >>> s.feed(lp[2:])
        >>> s.finish()[0].text
        'ab'
        """
        if self._lexicon is not None:
            raise ValueError(
                "streaming is not supported in the lexicon mode; decode whole utterances with "
                "decode_beams, or build the decoder without a lexicon."
            )
        args = self._search_args(
            beam_width,
            beam_prune_logp,
            token_min_logp,
            prune_history,
            hotwords,
            hotword_weight,
            lm_start_state,
            0,
        )
        return LMStream(self, args)

    def feed_streams(
        self,
        streams: Sequence[LMStream],
        chunks: Sequence[npt.ArrayLike],
        num_threads: int | None = None,
    ) -> None:
        """Feed ``chunks[i]`` to ``streams[i]`` for every ``i``, the streams on ``num_threads``
        threads (default: every available core); the same as feeding them one by one.

        Streams may have been started, and may be finished, at any time; each must be this
        decoder's, open, and listed once. Every chunk is checked before any is searched.

        Raises
        ------
        TypeError, ValueError
            A bad chunk (the message names ``chunks[i]``), a stream of another decoder, or a
            stream listed twice; then no stream has been fed.
        RuntimeError
            A stream is finished or failed earlier (nothing fed).
        Exception
            Whatever a language model raised while a stream was searched (with a note naming
            the stream), or ``KeyboardInterrupt``; the other threads are then stopped, and a
            stream stopped in the middle of its chunk is unusable (its ``feed`` raises), while
            the streams not reached yet are unchanged.
        """
        streams, chunks, twice = v.stream_batch(streams, chunks)
        checked = []
        for i, (st, ch) in enumerate(zip(streams, chunks, strict=True)):
            if not isinstance(st, LMStream) or st._decoder is not self:
                raise ValueError(f"streams[{i}] is not a stream of this decoder.")
            if twice is not None and twice[1] == i:
                raise ValueError(f"streams[{i}] is listed twice; feed it one chunk per call.")
            st._check_open()
            checked.append(st._check_chunk(ch, f"chunks[{i}]"))
        if streams:
            self._run_streams(streams, checked, num_threads)

    def _run_streams(
        self, streams: list[LMStream], checked: list[Any], num_threads: int | None
    ) -> None:
        """Advance each stream by its checked chunk, on threads (see :meth:`_batch`)."""
        n = len(streams)

        def work(items: np.ndarray, abort: np.ndarray) -> None:
            for i in items.tolist():
                x, top = checked[i]
                try:
                    streams[i]._advance(x, top, abort)
                except Exception as err:
                    if n > 1 and hasattr(err, "add_note"):  # Python >= 3.11
                        err.add_note(f"(while feeding streams[{i}])")
                    raise

        threads = v.resolve_num_threads(num_threads, n)
        costs = np.array(
            [x.shape[0] * s._args.beam_width for (x, _), s in zip(checked, streams, strict=True)],
            dtype=np.float64,
        )
        chunks = balanced_chunks(costs, threads) if threads > 1 else [np.arange(n)]
        total = sum(x.shape[0] for x, _ in checked)
        run_abortable(work, chunks, inline=threads <= 1 and total < _INLINE_FRAMES)

    # ------------------------------------------------------------------ persistence
    def save_to_dir(self, filepath: str | os.PathLike[str]) -> None:
        """Write ``alphabet.json`` and, with a model, ``language_model/`` (pyctcdecode's layout)."""
        path = os.fspath(filepath)
        lm = self._language_model
        if lm is not None:  # check before writing anything
            if type(lm).save_to_dir is AbstractLanguageModel.save_to_dir:
                raise NotImplementedError(
                    f"{type(lm).__name__} cannot be saved to a directory (it does not implement "
                    f"save_to_dir); nothing was written to {path!r}."
                )
            if os.path.exists(os.path.join(path, self._LM_DIR)):
                raise FileExistsError(
                    f"{os.path.join(path, self._LM_DIR)!r} exists already; save to an empty "
                    "directory. Nothing was written."
                )
        with open(os.path.join(path, self._ALPHABET_FILE), "w", encoding="utf-8") as f:
            f.write(self._alphabet.dumps())
        if self._language_model is not None:
            lm_path = os.path.join(path, self._LM_DIR)
            os.makedirs(lm_path)
            self._language_model.save_to_dir(lm_path)

    @classmethod
    def clear_class_models(cls) -> None:
        """Kept for pyctcdecode compatibility: fastctc keeps no models at class level (each
        decoder holds its own), so there is nothing to clear."""

    @staticmethod
    def parse_directory_contents(filepath: str | os.PathLike[str]) -> dict[str, str | None]:
        """``{"alphabet": path of alphabet.json, "language_model": path of language_model/
        or None}`` of a directory written by :meth:`save_to_dir`, as pyctcdecode reads it:
        other files (a Hugging Face model's configuration, say) are allowed beside
        ``language_model/``; without it the directory must hold ``alphabet.json`` alone.

        Raises
        ------
        ValueError
            No ``alphabet.json``, or other files and no ``language_model/``.
        """
        path = os.fspath(filepath)
        contents = [c for c in os.listdir(path) if not c.startswith((".", "__"))]
        alphabet_file = BeamSearchDecoderCTC._ALPHABET_FILE
        lm_dir = BeamSearchDecoderCTC._LM_DIR
        if alphabet_file not in contents:
            raise ValueError(f"{path!r} holds no {alphabet_file}; found {sorted(contents)}.")
        contents.remove(alphabet_file)
        lm_path = None
        if contents:
            if lm_dir not in contents:
                raise ValueError(
                    f"{path!r} holds {sorted(contents)} beside {alphabet_file} but no {lm_dir}/ "
                    "directory."
                )
            lm_path = os.path.join(path, lm_dir)
        return {"alphabet": os.path.join(path, alphabet_file), "language_model": lm_path}

    @classmethod
    def load_from_dir(
        cls, filepath: str | os.PathLike[str], unigram_encoding: str | None = None
    ) -> BeamSearchDecoderCTC:
        """Load a decoder written by :meth:`save_to_dir` (ours or pyctcdecode's), also from a
        model directory that holds other files beside ``alphabet.json`` and
        ``language_model/`` (see :meth:`parse_directory_contents`); ``unigram_encoding`` is
        the encoding of ``language_model/unigrams.txt`` (default UTF-8).

        Raises
        ------
        ValueError
            ``alphabet.json`` missing, other files without ``language_model/``, or a
            malformed file.
        """
        files = cls.parse_directory_contents(filepath)
        with open(str(files["alphabet"]), encoding="utf-8") as f:
            alphabet = Alphabet.loads(f.read())
        lm = None
        if files["language_model"] is not None:
            lm = LanguageModel.load_from_dir(files["language_model"], unigram_encoding)
        return cls(alphabet, lm)

    @classmethod
    def load_from_hf_hub(
        cls, model_id: str, cache_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> BeamSearchDecoderCTC:
        """Load a decoder from a Hugging Face Hub repository holding ``alphabet.json`` and
        ``language_model/`` (pyctcdecode's layout), through ``huggingface_hub``'s
        ``snapshot_download`` (``kwargs`` are passed to it: ``revision``,
        ``local_files_only=True`` to read its cache offline, ...).

        Raises
        ------
        ImportError
            ``huggingface_hub`` is not installed.
        """
        try:
            from huggingface_hub import snapshot_download  # noqa: PLC0415
        except ImportError as err:
            raise ImportError(
                "load_from_hf_hub needs huggingface_hub: pip install huggingface_hub"
            ) from err
        if cache_dir is not None:
            kwargs["cache_dir"] = os.fspath(cache_dir)
        return cls.load_from_dir(snapshot_download(model_id, **kwargs))


def _advise_on_coverage(alphabet: Alphabet, unigrams: Collection[str]) -> None:
    """Log pyctcdecode's warning when the unigrams use many characters the labels lack."""
    chars = set("".join(unigrams))
    if chars and len(chars - set(alphabet.labels)) / len(chars) > 0.2:
        logger.warning(
            "More than a fifth of the characters of the unigrams are not labels: do the "
            "unigrams and the labels belong together?"
        )


_recipe_lock = threading.Lock()
#: Decoders rebuilt from recipes in this process (see BeamSearchDecoderCTC.__reduce__).
_from_recipes: dict[Any, BeamSearchDecoderCTC] = {}


def _decoder_from_recipe(
    alphabet_json: str, lm_part: Any, lm_scoring: str, lex_part: Any = None
) -> BeamSearchDecoderCTC:
    """The decoder of a pickled recipe: built once per process and recipe, then shared (a
    decoder is safe to use from several threads). A shared decoder whose parameters were
    changed since (``reset_params``) no longer counts as built from the recipe."""
    lex_kw: dict[str, Any] = {}
    if lex_part is not None:
        entries, options = lex_part
        lex_kw = {
            "lexicon": {w: list(sp) for w, sp in entries},
            "lexicon_options": LexiconOptions(*options),
        }
    if not isinstance(lm_part, LMRecipe):  # a custom model, pickled as itself: not shared
        return BeamSearchDecoderCTC(
            Alphabet.loads(alphabet_json), lm_part, lm_scoring=lm_scoring, **lex_kw
        )
    key = (alphabet_json, lm_part, lm_scoring, lex_part)
    with _recipe_lock:
        dec = _from_recipes.get(key)
        lm = dec.language_model if dec is not None else None
        same = dec is not None and (
            lex_part is None or dec._lexicon_options == lex_kw.get("lexicon_options")
        )
        if not (same and isinstance(lm, LanguageModel) and lm.recipe() == lm_part):
            lm = language_model_from_recipe(lm_part)
            dec = BeamSearchDecoderCTC(
                Alphabet.loads(alphabet_json), lm, lm_scoring=lm_scoring, **lex_kw
            )
            _from_recipes[key] = dec
        return dec


def pyctcdecode_log_probs(logits: np.ndarray) -> np.ndarray:
    """The log-probabilities pyctcdecode 0.5.0 decodes for ``logits`` (2-D, frames by labels):
    when the rows sum to 1 on average (``math.isclose``) they are probabilities, clipped to
    [1e-15, 1] and logged; anything else (raw logits, log-probabilities, rows padded with
    -100) goes through a log-softmax over the labels, clipped to [log(1e-15), 0]. The same
    NumPy operations in the same order and dtype, so the values are pyctcdecode's to the bit.

    Examples
    --------
    >>> import numpy as np
    >>> lp = pyctcdecode_log_probs(np.array([[2.0, 0.0], [0.0, 0.0]]))
    >>> np.round(np.exp(lp), 3).tolist()
    [[0.881, 0.119], [0.5, 0.5]]
    """
    if math.isclose(logits.sum(axis=1).mean(), 1):
        return np.log(np.clip(logits, MIN_TOKEN_P, 1))
    top = np.amax(logits, axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0
    shifted = logits - top
    with np.errstate(divide="ignore"):
        log_sum = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return np.clip(shifted - log_sum, np.log(MIN_TOKEN_P), 0)


def _with_tokens(
    beam: Any,
    lp: LogProbs,
    labels: np.ndarray,
    frames: np.ndarray,
    t_off: np.ndarray,
    a: int,
    starts: np.ndarray,
    ends: np.ndarray,
    w0: int,
    w1: int,
) -> Any:
    """``beam`` with the ``tokens``, ``token_frames`` and word confidences of final beam
    ``a`` (flat ``labels``/``frames`` with offsets ``t_off``; its words' frames
    ``starts[w0:w1]``, ``ends[w0:w1]``)."""
    toks = labels[t_off[a] : t_off[a + 1]]
    tfr = frames[t_off[a] : t_off[a + 1]]
    beam.tokens = toks
    beam.token_frames = tfr
    beam._word_probs = _WordProbs(lp, toks, tfr, starts[w0:w1], ends[w0:w1])
    return beam


class _WordProbs:
    """Lazy per-word confidence: mean posterior of the word's tokens at their start frames."""

    __slots__ = ("lp", "toks", "frames", "starts", "ends")

    def __init__(
        self,
        lp: LogProbs,
        toks: np.ndarray,
        frames: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
    ) -> None:
        self.lp, self.toks, self.frames, self.starts, self.ends = lp, toks, frames, starts, ends

    def __call__(self) -> list[float]:
        if self.starts.size == 0:
            return []
        p = np.exp(self.lp.at(self.frames, self.toks))
        cs = np.concatenate([[0.0], np.cumsum(p)])
        lo = np.searchsorted(self.frames, self.starts, side="left")
        hi = np.searchsorted(self.frames, self.ends, side="left")
        n = np.maximum(hi - lo, 1)
        return ((cs[hi] - cs[lo]) / n).tolist()


def build_ctcdecoder(
    labels: Sequence[str],
    kenlm_model_path: str | os.PathLike[str] | None = None,
    unigrams: Collection[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    unk_score_offset: float = DEFAULT_UNK_LOGP_OFFSET,
    lm_score_boundary: bool = DEFAULT_SCORE_LM_BOUNDARY,
    *,
    lm_scoring: str = "auto",
    lexicon: Any = None,
    unk_score: float = DEFAULT_LEXICON_UNK_SCORE,
    sil_score: float = DEFAULT_LEXICON_SIL_SCORE,
    log_add: bool = DEFAULT_LEXICON_LOG_ADD,
) -> BeamSearchDecoderCTC:
    """Build a decoder, as ``pyctcdecode.build_ctcdecoder``.

    Parameters
    ----------
    labels : list of str
        The model's labels, one per logits column (see :class:`fastctc.alphabet.Alphabet`
        for the blank, delimiter and BPE conventions).
    kenlm_model_path : str or path, optional
        Word n-gram model: an ARPA file (plain or gzipped) or a KenLM binary. ARPA files and
        KenLM trie binaries (``build_binary ... trie``) are read by fastctc itself; KenLM
        hash-table binaries, and ARPA files whose n-grams lack their context n-grams, need
        the ``kenlm`` package (``pip install "fastctc[kenlm]"``). When ``kenlm`` is installed
        it loads every model (see :func:`fastctc.lm.load_model`).
    unigrams : collection of str, optional
        Known words; read from the ARPA file when omitted.
    alpha, beta, unk_score_offset, lm_score_boundary
        As pyctcdecode (LM weight, word bonus, unknown-word offset, sentence boundaries).
    lm_scoring : {"auto", "ngram", "callback", "resume"}
        How the search gets LM scores (fastctc's addition, see
        :attr:`BeamSearchDecoderCTC.lm_scoring`): ``"auto"`` scores models fastctc can read
        (ARPA files, KenLM trie binaries) from n-gram tables inside the kernel, and asks
        KenLM for the others through a callback; the other values force a path, e.g. to
        compare them. All give the same results.
    lexicon : True, list of str, dict or path, optional
        Search in the lexicon-constrained mode (fastctc's addition; the default, ``None``,
        is pyctcdecode's search): words are spelled only along a trie of the lexicon's
        spellings, unfinished words are scored by the best unigram reachable below their
        trie node, and paths that reach the same LM state, trie node and label are merged.
        ``True`` spells the unigrams (or the model's words); a list gives the words, a dict
        ``word -> spelling or list of spellings`` (labels joined, or separated by spaces),
        a path a lexicon file (``word [labels...]`` a line, as flashlight's and
        torchaudio's; see :mod:`fastctc.lm.lexicon`). Needs a model read as n-gram tables
        (an ARPA file or a KenLM trie binary), or no model. Hotwords missing from the
        lexicon are added to it for the call.
    unk_score, sil_score, log_add
        The lexicon mode's scores (:class:`~fastctc.lm.lexicon.LexiconOptions`): per
        out-of-lexicon word (``-inf``: none allowed), per delimiter between words, and
        whether merged paths add their probabilities (``True``) or keep the better one.

    Returns
    -------
    BeamSearchDecoderCTC

    Raises
    ------
    ImportError
        The model needs the ``kenlm`` package, which is not installed (the message names
        the file and the install command).
    FileNotFoundError
        ``kenlm_model_path`` does not exist.
    ValueError
        Unreadable model, unigrams that the model does not know, bad labels.

    Examples
    --------
    >>> import fastctc
    >>> dec = fastctc.build_ctcdecoder(["", " ", "a", "b"])
    >>> dec.labels
    ['', ' ', 'a', 'b']

    With the bundled English 4-gram and example:

    >>> lm, demo = fastctc.data.default_lm(), fastctc.data.demo()
    >>> dec = fastctc.build_ctcdecoder(lm.labels, kenlm_model_path=lm.path, unigrams=lm.unigrams)
    >>> dec.decode(demo.log_probs[1])
    'i only know what i read in the papers'
    """
    alphabet = Alphabet.build_alphabet(labels)
    lm = None
    if kenlm_model_path is not None:
        model = load_model(kenlm_model_path)
        path = os.fspath(kenlm_model_path)
        if unigrams is None and path.endswith(".arpa"):
            unigrams = load_unigram_set_from_arpa(path)
        elif unigrams is None:
            logger.warning(
                "No unigrams given, and only an .arpa file names them: words will be scored "
                "without a unigram list, which usually makes the results worse."
            )
        if unigrams is not None:
            _advise_on_coverage(alphabet, unigrams)
        lm = LanguageModel(
            model,
            unigrams,
            alpha=alpha,
            beta=beta,
            unk_score_offset=unk_score_offset,
            score_boundary=lm_score_boundary,
        )
    options = LexiconOptions.checked(unk_score, sil_score, log_add)
    return BeamSearchDecoderCTC(
        alphabet, lm, lm_scoring=lm_scoring, lexicon=lexicon, lexicon_options=options
    )


_WARMUP_ARPA = (
    b"\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1.5\t<s>\t-0.5\n-1\ta\n\n"
    b"\\2-grams:\n-0.25\t<s> a\n\n\\end\\\n"
)


def warmup_decoder() -> None:
    """Compile (or load from the disk cache) every kernel the LM decoder uses, on tiny inputs.

    The first decode of a process otherwise pays this while it runs, spread over the first
    utterances (table resizes and pool growth reach their helpers only later).

    Examples
    --------
    >>> from fastctc.lm.decoder import warmup_decoder
    >>> warmup_decoder()
    """
    from ..kernels import lm_cache as lc

    keys = np.zeros(16, dtype=np.uint64)
    one_u = np.array([5], dtype=np.uint64)
    one_i = np.array([1], dtype=np.int64)
    lc.insert_int(keys, np.full(16, -1, dtype=np.int64), one_u, one_i)
    lc.insert_float_int(keys.copy(), np.zeros(16), np.zeros(16, np.int64), one_u, np.ones(1), one_i)
    lc.store_answers(
        keys.copy(),
        np.full(16, -1, dtype=np.int64),
        keys.copy(),
        np.zeros(16),
        np.zeros(16, np.int64),
        np.array([5, 2, 1, 2, 0]),
        1,
        np.ones(1),
    )
    kb.spell_queries(
        np.zeros((1, ks.Q_COLS), dtype=np.int64),
        np.zeros((1, 3), dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.zeros(2, dtype=np.int64),
    )
    lc.table_find(keys, np.uint64(5))
    codes, offsets = encode_strings(["ab"])
    lc.hash_strings(codes, offsets, True)
    lc.hash_strings(codes, offsets, False)
    text = search.text_pool(4)
    text.i[:2] = 0
    text.word[:2] = 1
    kb.rebuild_text_table(text.i, text.word, 2, text.table_keys, text.table_vals)
    read_arpa_bytes(_WARMUP_ARPA)
    dec = build_ctcdecoder(["", " ", "a"])
    for dtype in (np.float32, np.float64):
        lp = np.log(np.full((3, 3), 1 / 3, dtype=dtype))
        dec.decode_beams(lp, beam_width=2)
        stream = dec.stream(beam_width=2)  # the stream's kernels: feed, compaction, finish
        stream.feed(lp)
        stream.compact()
        stream.finish()
