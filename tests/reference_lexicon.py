"""Brute-force reference of the lexicon-constrained search, in plain Python with KenLM.

Every alignment (one label per frame) of a tiny input is walked depth first; an alignment is
kept while the word it is spelling stays a prefix of some spelling, and scored in full at
the end: acoustic log-probabilities, then per finished word ``alpha * ln 10 * log10 P(word |
history)`` from KenLM (plus ``unk_offset`` for a lexicon word KenLM does not know),
``beta``, the word's hotword bonus, ``unk_score`` for an out-of-lexicon word (scored as
``<unk>``), ``sil_score`` per delimiter that ends no word, and the sentence end.

Each result carries the key by which the lexicon search merges paths, for a bigram model:
the last word as the model knows it (``<unk>`` for unknown words, ``<s>`` before the first),
the spelled part of the unfinished word, the last label and whether a blank followed it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kenlm
import numpy as np

LN10 = math.log(10.0)


@dataclass
class Setup:
    labels: list[str]  # "" is the blank, " " the delimiter, "▁x" word-starting pieces
    spellings: dict[str, str]  # spelling -> word
    model: kenlm.Model | None
    alpha: float = 0.5
    beta: float = 1.0
    unk_offset: float = -10.0
    unk_score: float = -math.inf
    sil_score: float = 0.0
    bonus: dict[str, float] | None = None

    def prefixes(self) -> set[str]:
        out = {""}
        for s in self.spellings:
            out.update(s[:i] for i in range(1, len(s) + 1))
        return out


def _word_score(setup: Setup, state, word: str | None, spelled: str):
    """(score, next state, model word) of finishing ``spelled``; None if not allowed."""
    if word is None:
        if setup.unk_score == -math.inf:
            return None
        lm_word, extra, offset = "<unk>", setup.beta + setup.unk_score, 0.0
    else:
        known = setup.model is not None and word in setup.model
        lm_word = word if known else "<unk>"
        extra = setup.beta + (setup.bonus or {}).get(word, 0.0)
        offset = 0.0 if known else setup.unk_offset
    if setup.model is None:
        return extra, state, lm_word
    nxt = kenlm.State()
    p = setup.model.BaseScore(state, word if word is not None else "<unk>", nxt)
    return setup.alpha * LN10 * (p + offset) + extra, nxt, lm_word


def brute_force(logp: np.ndarray, setup: Setup) -> list[tuple[float, str, tuple]]:
    """``(total score, text, merge key)`` of every alignment the lexicon allows."""
    T, C = logp.shape
    labels = setup.labels
    prefixes = setup.prefixes()
    out: list[tuple[float, str, tuple]] = []

    def walk(t, am, last, blank_after, toks):
        if t == T:
            res = _score_tokens(toks, setup)
            if res is not None:
                lm, text, last_word, spelled = res
                key = (last_word, spelled, last, blank_after)
                out.append((am + lm, text, key))
            return
        for c in range(C):
            if labels[c] == "":
                walk(t + 1, am + logp[t, c], last, True, toks)
                continue
            if c == last and not blank_after:
                walk(t + 1, am + logp[t, c], last, False, toks)
                continue
            new = toks + [c]
            if _current_word(new, labels) not in prefixes:
                continue
            walk(t + 1, am + logp[t, c], c, False, new)

    walk(0, 0.0, -1, False, [])
    return out


def _current_word(toks: list[int], labels: list[str]) -> str:
    cur = ""
    for c in toks:
        lab = labels[c]
        if lab == " ":
            cur = ""
        elif lab.startswith("\u2581"):
            cur = lab[1:]
        else:
            cur += lab
    return cur


def _score_tokens(toks: list[int], setup: Setup):
    """(LM part of the score, text, last model word before the unfinished word, its
    spelling) of a label sequence, or None when a word it finishes is not allowed."""
    state = kenlm.State()
    if setup.model is not None:
        setup.model.BeginSentenceWrite(state)
    total = 0.0
    words: list[str] = []
    last_word = "<s>"
    cur = ""

    def finish():
        nonlocal state, total, last_word
        res = _word_score(setup, state, setup.spellings.get(cur), cur)
        if res is None:
            return False
        s, state, last_word = res
        total += s
        words.append(setup.spellings.get(cur, cur))
        return True

    for c in toks:
        lab = setup.labels[c]
        if lab == " " or lab.startswith("\u2581"):
            if cur:
                if not finish():
                    return None
            elif lab == " ":
                total += setup.sil_score
            cur = lab[1:] if lab != " " else ""
        else:
            cur += lab
    spelled, context = cur, last_word  # the search's state at the last frame
    if cur and not finish():
        return None
    if setup.model is not None:
        total += setup.alpha * LN10 * setup.model.BaseScore(state, "</s>", kenlm.State())
    return total, " ".join(words), context, spelled


def best(results: list[tuple[float, str, tuple]]) -> tuple[float, str]:
    """The best alignment's score and text."""
    s, text, _ = max(results, key=lambda r: r[0])
    return s, text


def best_log_add(results: list[tuple[float, str, tuple]]) -> float:
    """The best merge group's score: the log-sum of its alignments' scores."""
    groups: dict[tuple, list[float]] = {}
    for s, _, key in results:
        groups.setdefault(key, []).append(s)
    return max(float(np.logaddexp.reduce(v)) for v in groups.values())
