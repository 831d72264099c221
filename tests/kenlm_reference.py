"""KenLM as the reference for n-gram scores, and the sentences the score tests run on."""

from __future__ import annotations

import random
from pathlib import Path

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


def score_sentences(data: Path) -> list[list[str]]:
    """The 200 dev sentences ending in </s>, then 200 with random vocabulary words, unknown
    words, <unk>, <s> and </s> mixed in."""
    lines = (data / "dev_sentences.txt").read_text().splitlines()
    dev = [s.split() + ["</s>"] for s in lines]
    assert len(dev) == 200
    vocab = (data / "vocab.txt").read_text().split()
    odd = ["zzqx", "qwertyuiop", "<unk>", "</s>", "<s>", "austens"]
    rnd = random.Random(7)
    mixed = []
    for i in range(200):
        base = list(dev[i][:-1])
        for _ in range(rnd.randint(1, 4)):
            w = rnd.choice(odd) if rnd.random() < 0.4 else rnd.choice(vocab)
            base.insert(rnd.randint(0, len(base)), w)
        if i % 2:
            base.append("</s>")
        mixed.append(base)
    return dev + mixed
