"""The lexicon-constrained mode of the LM decoder: its lexicon, options and searches.

With a lexicon, words are spelled only along a trie of the lexicon's spellings; unfinished
words are scored by the best unigram reachable below their trie node; out-of-lexicon words
(trie prefixes that are no spelling) cost ``unk_score`` (``-inf``, the default, forbids
them); paths that reach the same state are merged by ``max`` or, with ``log_add``, by the
log-sum of their probabilities. The search is :func:`fastctc.kernels.lexicon.lexicon_search`;
this module builds its arrays and turns its hypotheses into beams.

A lexicon comes from the unigram list (``lexicon=True``), from a list of words, from a dict
of ``word -> spelling(s)``, or from a file in the format of flashlight and torchaudio: one
entry a line, the word, then (optionally, after whitespace) its spelling as labels separated
by spaces, such as ``hello h e l l o |`` or ``hello ▁he llo``. A spelling's characters are
its labels joined, without ``|`` labels and ``▁`` marks, so one trie serves every
segmentation of a word into the model's labels (characters or subword pieces).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .._validate import check_text
from ..alphabet import BPE_TOKEN
from ..defaults import (
    DEFAULT_LEXICON_LOG_ADD,
    DEFAULT_LEXICON_SIL_SCORE,
    DEFAULT_LEXICON_UNK_SCORE,
    LOG10_TO_LN,
)
from ..kernels import lexicon as kx
from ..kernels import lm_state as ks
from ..vocabulary import encode_strings
from .search import NO_NGRAMS, SearchAborted

__all__ = ["Lexicon", "LexiconOptions", "lexicon_entries", "read_lexicon"]


class LexiconOptions(NamedTuple):
    """Scores of the lexicon mode (natural logs, added to the path's log-probability).

    Attributes
    ----------
    unk_score : float
        Added per out-of-lexicon word (a trie prefix that is no word, scored by the model as
        ``<unk>``); ``-inf`` (the default) allows lexicon words only.
    sil_score : float
        Added per delimiter label that starts no word (between words).
    log_add : bool
        Merge paths that reach the same state by the log-sum of their scores (the sum of
        their probabilities) instead of keeping the better one's.
    """

    unk_score: float = DEFAULT_LEXICON_UNK_SCORE
    sil_score: float = DEFAULT_LEXICON_SIL_SCORE
    log_add: bool = DEFAULT_LEXICON_LOG_ADD

    @classmethod
    def checked(cls, unk_score: Any, sil_score: Any, log_add: Any) -> LexiconOptions:
        """The options with their types and ranges checked (``TypeError``/``ValueError``)."""
        vals = []
        for name, x in (("unk_score", unk_score), ("sil_score", sil_score)):
            if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number; got {type(x).__name__} {x!r}.")
            f = float(x)
            if math.isnan(f) or f == math.inf:
                raise ValueError(f"{name} must be a number below +inf; got {f}.")
            vals.append(f)
        if vals[1] == -math.inf:
            raise ValueError(
                "sil_score must be finite; got -inf, which would forbid delimiters between "
                "words. Use a large negative number to discourage them."
            )
        if not isinstance(log_add, (bool, np.bool_)):
            raise TypeError(f"log_add must be True or False; got {type(log_add).__name__}.")
        return cls(vals[0], vals[1], bool(log_add))


def _spelling_of(tokens: list[str]) -> str:
    return "".join(t.replace(BPE_TOKEN, "") for t in tokens if t != "|")


def read_lexicon(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """``{word: [spelling, ...]}`` from a lexicon file (one ``word [labels...]`` a line).

    A line with the word alone spells it as itself. Blank lines are skipped; a word on
    several lines has several spellings.

    Raises
    ------
    ValueError
        The file is not UTF-8 text, or holds no entry.
    """
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"lexicon file {p} is not UTF-8 text: {exc}") from None
    out: dict[str, list[str]] = {}
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        word = parts[0]
        spelling = _spelling_of(parts[1:]) if len(parts) > 1 else word
        out.setdefault(word, []).append(spelling)
    if not out:
        raise ValueError(f"lexicon file {p} holds no entry (one 'word [labels...]' a line).")
    return out


def lexicon_entries(source: Any, unigrams: Iterable[str] | None) -> dict[str, list[str]]:
    """``{word: [spellings]}`` of a ``lexicon`` argument."""
    if source is True:
        if unigrams is None:
            raise ValueError(
                "lexicon=True spells words from the unigram list, but the decoder has none: "
                "pass unigrams=[...] (or a model whose vocabulary fastctc can read), or give "
                "the lexicon itself (a list of words, a dict of spellings or a file)."
            )
        words: Iterable[str] = unigrams
    elif isinstance(source, (str, os.PathLike)):
        return read_lexicon(source)
    elif isinstance(source, Mapping):
        out: dict[str, list[str]] = {}
        for w, sp in source.items():
            check_text(w, "lexicon key")
            if isinstance(sp, str):
                sp = [sp]
            spellings = []
            for s in sp:
                if isinstance(s, str):
                    check_text(s, f"lexicon[{w!r}]")
                    spellings.append(_spelling_of(s.split()) if " " in s else s)
                else:
                    spellings.append(_spelling_of([str(x) for x in s]))
            out[w] = spellings or [w]
        return out
    elif isinstance(source, Iterable) and not isinstance(source, bytes):
        words = source
    else:
        raise TypeError(
            "lexicon must be True (the unigrams), a list of words, a dict of word -> "
            f"spelling(s) or a lexicon file path; got {type(source).__name__}."
        )
    out = {}
    for i, w in enumerate(words):
        check_text(w, f"lexicon[{i}]")
        w = w.strip()
        if w and " " not in w:
            out.setdefault(w, [w])
    return out


class Lexicon:
    """The words a lexicon-mode search may spell, with their trie and LM vocabulary ids.

    Parameters
    ----------
    entries : dict of str to list of str
        Each word and its spellings (characters, as the labels join).
    ngram : NgramTables or None
        The n-gram tables whose vocabulary ids score the words (``None`` without a model).
    """

    def __init__(self, entries: Mapping[str, list[str]], ngram: Any = None) -> None:
        words = [w for w in entries if any(s for s in entries[w])]
        if not words:
            raise ValueError("the lexicon holds no word with a non-empty spelling.")
        self.words = words
        self.entries = {w: list(entries[w]) for w in words}
        self._ngram = ngram
        self._index = {w: i for i, w in enumerate(words)}
        self._lock = threading.Lock()
        self._hot: tuple[tuple[str, ...], Any] | None = None
        self._la: tuple[Any, Any] | None = None
        self._base = self._build(words, [])

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"Lexicon({len(self.words)} words, {self._base[0].parent.size} trie nodes)"

    def _build(self, words: list[str], extra: list[str]) -> tuple[Any, np.ndarray, np.ndarray]:
        """The trie of ``words`` plus the ``extra`` words (hotwords not in the lexicon),
        and the vocabulary ids and out-of-model flags of all of them."""
        spellings: list[str] = []
        word_of: list[int] = []
        for i, w in enumerate(words):
            for s in self.entries[w]:
                if s:
                    spellings.append(s)
                    word_of.append(i)
        for j, w in enumerate(extra):
            spellings.append(w)
            word_of.append(len(words) + j)
        codes, offsets = encode_strings(spellings)
        cap = 1
        while cap < 2 * (codes.size + 1):
            cap *= 2
        keys, child, parent, code, word, _ = kx.build_trie(
            codes, offsets, np.array(word_of, dtype=np.int64), cap
        )
        trie = kx.Trie(keys, child, parent, code, word)
        all_words = words + extra
        ng = self._ngram
        if ng is None:
            vocab = np.zeros(len(all_words), dtype=np.int64)
            oov = np.zeros(len(all_words), dtype=np.bool_)
        else:
            vocab = np.array([ng.id_of(w) for w in all_words], dtype=np.int64)
            oov = np.array([w not in ng.ids for w in all_words], dtype=np.bool_)
        return trie, vocab, oov

    def arrays(self, hotwords: tuple[str, ...], weight: float) -> tuple[Any, Any, list[str]]:
        """``(trie, LexWords, words)`` for a search with ``hotwords`` (each of their words
        gets ``weight``; those missing from the lexicon are added to its trie)."""
        words = self.words
        if not hotwords:
            trie, vocab, oov = self._base
            return trie, kx.LexWords(vocab, oov, np.zeros(len(words))), words
        hw_words = list(dict.fromkeys(x for h in hotwords for x in h.split()))
        with self._lock:
            if self._hot is not None and self._hot[0] == tuple(hw_words):
                trie, vocab, oov, all_words = self._hot[1]
            else:
                extra = [w for w in hw_words if w not in self._index]
                trie, vocab, oov = self._build(words, extra)
                all_words = words + extra
                self._hot = (tuple(hw_words), (trie, vocab, oov, all_words))
        bonus = np.zeros(len(all_words))
        index = {w: i for i, w in enumerate(all_words)} if len(all_words) > len(words) else None
        for w in hw_words:
            bonus[(index or self._index)[w]] = weight
        return trie, kx.LexWords(vocab, oov, bonus), all_words

    def look_ahead(
        self,
        hotwords: tuple[str, ...],
        weight: float,
        ngrams: Any,
        alpha_ln10: float,
        unk_offset: float,
    ) -> tuple[Any, Any, list[str], np.ndarray]:
        """:meth:`arrays` and each trie node's look-ahead score
        (:func:`fastctc.kernels.lexicon.look_ahead`), kept for the next search with the
        same hotwords and weights."""
        key = (hotwords, weight, alpha_ln10, unk_offset, id(ngrams.uni))
        with self._lock:
            if self._la is not None and self._la[0] == key:
                return self._la[1]
        trie, words, names = self.arrays(hotwords, weight)
        la = np.empty(trie.parent.size)
        order = int(ngrams.meta[0])
        kx.look_ahead(trie, words, ngrams.uni, order, alpha_ln10, unk_offset, la)
        out = (trie, words, names, la)
        with self._lock:
            self._la = (key, out)
        return out

    def spell_node(self, trie: Any, node: int) -> str:
        """The characters spelled from the root to trie ``node``."""
        out = []
        while node > 0:
            out.append(chr(int(trie.code[node])))
            node = int(trie.parent[node])
        return "".join(reversed(out))


class LexFound(NamedTuple):
    """The final hypotheses of one lexicon-mode search, best first, and what their rows
    point into (see :func:`fastctc.kernels.lexicon.lexicon_search`)."""

    n: int
    out_i: np.ndarray
    out_f: np.ndarray
    out_ctx: np.ndarray
    chain: np.ndarray
    trie: Any
    words: list[str]


def run(
    lp: np.ndarray,
    vocab: Any,
    lexicon: Lexicon,
    options: LexiconOptions,
    tables: Any,
    args: Any,
    abort: np.ndarray,
) -> LexFound:
    """Search one utterance ``lp`` (validated ``(T, C)`` log-probabilities) in the lexicon
    mode with the decoder's model ``tables`` (``None`` without a model) and the checked
    search arguments ``args`` (:class:`fastctc.lm.search.SearchArgs`).

    Raises
    ------
    SearchAborted
        ``abort[0]`` was set.
    """
    lm = tables.lm if tables is not None else None
    if lm is None:
        ngrams = NO_NGRAMS
        alpha_ln10 = beta = unk_offset = 0.0
    else:
        uni, keys, vals, meta = tables.ngram.arrays(bool(lm.score_boundary))
        ngrams = ks.Ngrams(tables.w_info, uni, keys, vals, meta, np.zeros(2))
        alpha_ln10 = float(lm.alpha) * LOG10_TO_LN
        beta = float(lm.beta)
        unk_offset = float(lm.unk_score_offset)
    trie, words, names, la = lexicon.look_ahead(
        args.hotword_names, args.hotword_weight, ngrams, alpha_ln10, unk_offset
    )
    params = kx.LexParams(
        int(vocab.blank),
        int(args.beam_width),
        float(args.beam_prune_logp),
        float(args.token_min_logp),
        alpha_ln10,
        beta,
        unk_offset,
        float(options.unk_score),
        float(options.sil_score),
        bool(options.log_add),
    )
    tokens = ks.Tokens(vocab.kinds, vocab.codes, vocab.offsets)
    chain = np.empty((max(64, 4 * args.beam_width), kx.H_COLS), dtype=np.int32)
    status, n, out_i, out_f, out_ctx, chain = kx.lexicon_search(
        lp, tokens, trie, la, words, ngrams, params, chain, abort
    )
    if status == kx.LEX_ABORTED:
        raise SearchAborted("the search was asked to stop")
    return LexFound(int(n), out_i, out_f, out_ctx, chain, trie, names)
