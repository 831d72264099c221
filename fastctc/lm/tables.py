"""Integer tables of a language model that the LM search kernel reads without the GIL.

:class:`KernelTables` numbers words and LM states, caches word scores per decoder (shared by
its threads) and answers the kernel's queries (:mod:`fastctc.lm.queries`); hotword tables are
built per call.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from .._validate import check_text
from ..kernels import lm_state as ks
from ..kernels.lm_cache import hash_strings, insert_float_int, insert_int, make_set, store_answers
from .models import (
    AbstractLanguageModel,
    LanguageModel,
    check_score,
    encode_strings,
    model_name,
    prefix_table,
    weighted_score,
    word_hashes,
)
from .ngram import NgramTables

EMPTY_TABLE = (np.zeros(1, dtype=np.uint64), np.full(1, -1, dtype=np.int64))


class KernelTables:
    """Integer tables of one language model, shared by every decoding thread.

    * words: FNV hash of a word -> word id (``WORD_EMPTY``, the empty word; ``WORD_UNKNOWN``,
      every word the model does not know; from ``FIRST_UNIGRAM`` the unigrams, then the
      model's other words when it has n-gram tables, then other words met while decoding;
      constants of :mod:`fastctc.kernels.lm_state`, whose ``oov_offset_bound`` relies on
      this order);
    * ``ngram`` and ``w_info``: the n-gram tables of an ARPA model and each word id's
      vocabulary id and OOV flag, which the kernel scores from directly;
    * scores: (state id, word id, end-of-sentence) -> (weighted score, next state id);
    * prefixes of unigrams (a set) for the partial-word score of :class:`LanguageModel`;
    * partial scores by word-part hash, for custom models.

    Readers (the kernel) take no lock; :meth:`resolve` adds entries under ``self.lock``.
    """

    def __init__(self, lm: AbstractLanguageModel) -> None:
        self.lm = lm
        self.native = isinstance(lm, LanguageModel)
        self.lock = threading.Lock()
        self.states: list[Any] = []
        self.state_ids: dict[Any, int] = {}
        self.words: list[str] = ["", ""]  # WORD_EMPTY, WORD_UNKNOWN
        self.word_ids: dict[str, int] = {"": ks.WORD_EMPTY}
        self.word_oov: list[bool] = [True, True]
        self.have_unigrams = False
        self.n_unigrams = 0
        self.prefix = EMPTY_TABLE[0]
        self.ngram: NgramTables | None = None
        self.w_info = np.zeros(1, dtype=np.int64)  # per word id: 2 * vocabulary id + oov
        if self.native:
            assert isinstance(lm, LanguageModel)
            self.have_unigrams = lm._have_unigrams
            uni = sorted(lm._unigram_set)
            self.words += uni
            self.word_oov += [False] * len(uni)
            self.n_unigrams = len(uni)
            self.prefix = prefix_table(lm)[0] if uni else EMPTY_TABLE[0]
            self.ngram = ng = lm.ngram_tables
            if ng is not None:  # every model word gets an id now: the kernel scores them all
                known = set(uni)
                rest = [w for w in ng.words if w not in known]
                self.words += rest
                self.word_oov += [self.have_unigrams] * len(rest)
                pairs = zip(self.words, self.word_oov, strict=True)
                self.w_info = np.array([2 * ng.id_of(w) + o for w, o in pairs], dtype=np.int64)
            for wid in range(ks.FIRST_UNIGRAM, len(self.words)):
                self.word_ids[self.words[wid]] = wid
        first = ks.FIRST_UNIGRAM
        ids = np.arange(first, len(self.words), dtype=np.int64)
        self.word_table = make_set(word_hashes(self.words[first:]), ids)
        self._n_words_in_table = len(self.words) - first
        self._version = getattr(lm, "_version", 0)
        if self.native:
            self._State = lm._State  # type: ignore[attr-defined]
            self._spare_state = self._State()  # KenLM writes answers' next states here
            self._scratch_state = self._State()
        self._new_score_tables()

    def _new_score_tables(self, capacity: int = 1 << 14) -> None:
        self.scores = self._empty_scores(capacity)
        self._n_scores = 0
        self.partial = (np.zeros(1 << 10, np.uint64), np.full(1 << 10, np.nan))
        self._n_partial = 0

    @staticmethod
    def _empty_scores(cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.zeros(cap, np.uint64), np.full(cap, np.nan), np.full(cap, -1, np.int64))

    @property
    def n_cached_scores(self) -> int:
        """Word scores in the cache (always 0 on the n-gram path, which needs none)."""
        return self._n_scores

    def check_version(self) -> None:
        """Drop cached scores if the model's parameters changed since they were computed."""
        v = getattr(self.lm, "_version", 0)
        if v != self._version:
            with self.lock:
                self._new_score_tables()
                self._version = v

    def clear(self, capacity: int = 1 << 14) -> None:
        """Forget every cached score (after a parameter change of a custom model); the score
        table starts with ``capacity`` slots (a power of two; it grows as needed)."""
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two >= 2; got {capacity}.")
        with self.lock:
            self._new_score_tables(capacity)
            self._version = getattr(self.lm, "_version", 0)

    def state_id(self, state: Any) -> int:
        """Integer id of an LM state (assigned on first sight)."""
        try:
            key = state
            sid = self.state_ids.get(key)
        except TypeError:  # unhashable states, e.g. lists of kenlm.State
            key = _freeze(state)
            sid = self.state_ids.get(key)
        if sid is None:
            sid = len(self.states)
            self.states.append(state)
            self.state_ids[key] = sid
        return sid

    def start_state_id(self, state: Any = None) -> int:
        """Id of ``state`` or of the model's start state.

        Raises
        ------
        TypeError
            ``state`` is not a state of the :class:`LanguageModel`'s kind (``kenlm.State`` or
            :class:`~fastctc.ngram.NgramState`).
        """
        if state is None:
            state = self.lm.get_start_state()
        elif self.native and not isinstance(state, self._State):
            kind = f"{self._State.__module__}.{self._State.__name__}"
            kind = kind.replace("fastctc.lm.ngram.", "fastctc.ngram.")  # its documented name
            backend = self.lm.backend  # type: ignore[attr-defined]
            raise TypeError(
                f"lm_start_state must be a {kind} (the {backend!r} backend's state, e.g. a "
                f"beam's last_lm_state); got {type(state).__name__}."
            )
        with self.lock:
            return self.state_id(state)

    def _word_id(self, word: str) -> int:
        """Id of a word the kernel's word table lacks (registered on first sight)."""
        wid = self.word_ids.get(word)
        return self._new_word(word) if wid is None else wid

    def _new_word(self, word: str) -> int:
        """Register a word seen for the first time and return its id."""
        if self.native and word not in self.lm.kenlm_model:  # type: ignore[attr-defined]
            wid = ks.WORD_UNKNOWN
            if not self.words[wid]:
                self.words[wid] = word  # any unknown string scores as <unk>
        else:
            wid = len(self.words)
            self.words.append(word)
            self.word_oov.append(self.have_unigrams if self.native else False)
        self.word_ids[word] = wid
        return wid

    def resolve(self, q: np.ndarray, q_hash: np.ndarray, spell: Any) -> None:
        """Answer the kernel's queries ``q[i] = (kind, state, word id, token node, n tokens,
        eos)``; ``spell(q)`` returns the text of every word and word-part query as one string
        and its offsets (see ``lm_beam.spell_queries``)."""
        rows = q.tolist()
        if self.native:
            with self.lock:
                self._resolve_kenlm(rows, q, q_hash, spell)
            return
        with self.lock:
            text = None
            todo: dict[tuple[int, int, int], None] = {}  # (state, word id, eos), first-seen order
            new_words: list[int] = []  # pairs (word hash as int64 bits, word id)
            pk: list[int] = []
            pv: list[float] = []
            for i, (kind, state, wid, _, _, eos) in enumerate(rows):
                if kind != ks.Q_LM:
                    if text is None:  # one kernel call spells every word of the batch
                        text, off = spell(q)
                        hashes = q_hash.view(np.int64).tolist()
                    word = text[off[i] : off[i + 1]]
                    if kind == ks.Q_PARTIAL:
                        pk.append(hashes[i])
                        sp = self.lm.score_partial_token(word)
                        pv.append(check_score(sp, self.lm, f"score_partial_token({word!r})"))
                        continue
                    wid = self._word_id(word)
                    new_words += (hashes[i], wid)
                todo[(state, wid, eos)] = None
            if todo:
                self._store(new_words, todo)
            if pk:
                self._insert_partial(pk, pv)

    def _resolve_kenlm(
        self, rows: list[list[int]], q: np.ndarray, q_hash: np.ndarray, spell: Any
    ) -> None:
        """:meth:`resolve` for the KenLM adapter, in one pass over the queries (the kernel
        sends each at most once per batch; a word query that turns out to repeat another
        query is scored twice, which stores the same entry twice)."""
        lm: LanguageModel = self.lm  # type: ignore[assignment]
        base = lm.kenlm_model.BaseScore
        states, words, state_ids, oovs = self.states, self.words, self.state_ids, self.word_oov
        unk, a, b, sb = lm.unk_score_offset, lm.alpha, lm.beta, lm.score_boundary
        end, scratch = self._spare_state, self._scratch_state
        new_words: list[int] = []  # pairs (word hash as int64 bits, word id)
        triples: list[int] = []  # 2 * state + eos, word id, next state
        scores: list[float] = []
        text = None
        for i, (kind, state, wid, _, _, eos) in enumerate(rows):
            if kind == ks.Q_WORD:
                if text is None:  # one kernel call spells every word of the batch
                    text, off = spell(q)
                    hashes = q_hash.view(np.int64).tolist()
                word = text[off[i] : off[i + 1]]
                wid = self._word_id(word)
                new_words += (hashes[i], wid)
            s = base(states[state], words[wid], end)
            if oovs[wid]:
                s += unk
            if eos and sb:
                s = s + base(end, "</s>", scratch)
            scores.append(weighted_score(a, b, s))
            sid = state_ids.get(end)
            if sid is None:  # a new state keeps its object; the next query gets a fresh one
                sid = len(states)
                states.append(end)
                state_ids[end] = sid
                end = self._State()
            triples += (2 * state + eos, wid, sid)
        self._spare_state = end
        if not np.all(np.array(scores) < math.inf):  # a NaN or +inf probability in the file
            i = next(k for k, x in enumerate(scores) if not x < math.inf)
            word = words[triples[3 * i + 1]]
            raise ValueError(
                f"{model_name(lm)} scored the word {word!r} as {scores[i]!r} (weighted); "
                "its probabilities must be finite or -inf (NaN or +inf found; alpha=0 times a "
                "probability of 0, log10 -inf, is NaN too)."
            )
        self._insert(new_words + triples, len(new_words) // 2, scores)

    def _store(self, new_words: list[int], todo: Collection[tuple[int, int, int]]) -> None:
        """Score the ``todo`` keys and insert them with the new words."""
        n_words = len(new_words) // 2
        ints = new_words  # the score triples follow the word pairs
        scores = self._scores_of(todo, ints)
        self._insert(ints, n_words, scores)

    def _insert(self, ints: list[int], n_words: int, scores: list[float]) -> None:
        """Insert ``n_words`` word pairs and the scores of the triples after them (see
        ``lm_cache.store_answers``) in one kernel call, growing the tables first if needed
        (into new arrays: readers keep the old ones meanwhile)."""
        wkeys, wvals = self.word_table
        need = 2 * (self._n_words_in_table + n_words)
        if need > wkeys.size:
            used = wkeys != 0
            cap = _grown(wkeys.size, need)
            old_keys, old_vals = wkeys[used], wvals[used]
            wkeys, wvals = np.zeros(cap, np.uint64), np.full(cap, -1, np.int64)
            insert_int(wkeys, wvals, old_keys, old_vals)
        keys, sc, nx = self.scores
        need = 2 * (self._n_scores + len(scores))
        if need > keys.size:
            used = keys != 0
            keys, sc, nx = self._empty_scores(_grown(keys.size, need))
            insert_float_int(keys, sc, nx, *(a[used] for a in self.scores))
        added_words, added_scores = store_answers(
            wkeys, wvals, keys, sc, nx, np.array(ints, np.int64), n_words, np.array(scores)
        )
        self._n_words_in_table += added_words
        self._n_scores += added_scores
        self.word_table = (wkeys, wvals)
        self.scores = (keys, sc, nx)

    def _scores_of(self, todo: Iterable[tuple[int, int, int]], out: list[int]) -> list[float]:
        """Scores of ``(state, word id, eos)`` keys from a custom model; appends
        ``2 * state + eos``, word id and next-state id of each to ``out``."""
        scores: list[float] = []
        states, words = self.states, self.words
        for state, wid, eos in todo:
            s, end = self.lm.score(states[state], words[wid], is_last_word=bool(eos))
            scores.append(check_score(s, self.lm, f"score(..., {words[wid]!r})"))
            out += (2 * state + eos, wid, self.state_id(end))
        return scores

    def _insert_partial(self, k: list[int], v: list[float]) -> None:
        keys, vals = self.partial
        need = 2 * (self._n_partial + len(k))
        if need > keys.size:
            cap = _grown(keys.size, need)
            nk, nv = np.zeros(cap, np.uint64), np.full(cap, np.nan)
            used = keys != 0
            _insert_float(nk, nv, keys[used], vals[used])
            keys, vals = nk, nv
        hashes = np.array(k, np.int64).view(np.uint64)  # k: hashes as int64 bits
        self._n_partial += _insert_float(keys, vals, hashes, np.array(v))
        self.partial = (keys, vals)


def _grown(cap: int, need: int) -> int:
    """``cap`` doubled until it reaches ``need``."""
    while need > cap:
        cap *= 2
    return cap


def _insert_float(keys: np.ndarray, vals: np.ndarray, k: np.ndarray, v: np.ndarray) -> int:
    dummy = np.zeros(keys.size, np.int64)
    return int(insert_float_int(keys, vals, dummy, k, v, np.zeros(len(k), np.int64)))


def _freeze(state: Any) -> Any:
    if isinstance(state, (list, tuple)):
        return tuple(_freeze(s) for s in state)
    if isinstance(state, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in state.items()))
    return state


@functools.lru_cache(maxsize=32)
def hotword_tables(hotwords: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables for pyctcdecode-style hotwords: (whole-word set, prefix keys, shortest length).

    Phrases are split into words; a word counts when it equals a hotword word; a word part
    that begins a hotword word scores ``weight * len(part) / len(shortest such word)``.
    """
    words = [w for phrase in hotwords for w in phrase.split()]
    if not words:
        return EMPTY_TABLE[0], EMPTY_TABLE[0], EMPTY_TABLE[1]
    wkeys, _ = make_set(word_hashes(words))
    codes, offsets = encode_strings(words)
    pre, src_len = hash_strings(codes, offsets, True)
    order = np.lexsort((src_len, pre))
    pre, src_len = pre[order], src_len[order]
    first = np.ones(len(pre), dtype=bool)
    first[1:] = pre[1:] != pre[:-1]
    pkeys, pvals = make_set(pre[first], src_len[first])
    return wkeys, pkeys, pvals


def normalise_hotwords(hotwords: Iterable[str] | None) -> tuple[str, ...]:
    """Strip and drop empty hotwords; ``TypeError`` for a bare string or non-strings."""
    if hotwords is None:
        return ()
    if isinstance(hotwords, str):
        raise TypeError(
            f"hotwords must be a list of strings; got the string {hotwords!r}. Use [{hotwords!r}]."
        )
    out = []
    for i, h in enumerate(hotwords):
        check_text(h, f"hotwords[{i}]")
        if h.strip():
            out.append(h.strip())
    return tuple(out)
