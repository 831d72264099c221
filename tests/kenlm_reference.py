"""KenLM as the reference for n-gram scores, and the sentences the score tests run on."""

from __future__ import annotations

import random
from collections.abc import Sequence

import kenlm


def kenlm_scores(model, words: list[str], bos: bool = True) -> list[float]:
    """KenLM's ``BaseScore`` of each word after the previous ones."""
    state = kenlm.State()
    (model.BeginSentenceWrite if bos else model.NullContextWrite)(state)
    out = []
    for w in words:
        nxt = kenlm.State()
        out.append(model.BaseScore(state, w, nxt))
        state = nxt
    return out


def score_sentences(sentences: Sequence[str], vocab: Sequence[str]) -> list[list[str]]:
    """The sentences ending in </s>, then as many again with random ``vocab`` words, unknown
    words, <unk>, <s> and </s> mixed in."""
    dev = [s.split() + ["</s>"] for s in sentences]
    assert len(dev) >= 100
    odd = ["zzqx", "qwertyuiop", "<unk>", "</s>", "<s>", "austens"]
    rnd = random.Random(7)
    mixed = []
    for i in range(len(dev)):
        base = list(dev[i][:-1])
        for _ in range(rnd.randint(1, 4)):
            w = rnd.choice(odd) if rnd.random() < 0.4 else rnd.choice(vocab)
            base.insert(rnd.randint(0, len(base)), w)
        if i % 2:
            base.append("</s>")
        mixed.append(base)
    return dev + mixed
