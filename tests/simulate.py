"""A seeded stand-in for a character CTC acoustic model: text in, ``(T, 29)`` log-probabilities
out, peaky like a trained model's output and wrong in the ways a trained model is wrong.

Labels are :data:`CHAR_LABELS` (blank ``""`` at 0, space at 1 as the word delimiter, apostrophe,
``a``-``z``), the pyctcdecode convention. :func:`simulate_char` builds the output in three steps:

1. *Hard errors* on the spelled text: a letter replaced by a similar one, dropped or doubled by
   a neighbour, a space dropped (two words run together).
2. *Timing*: each symbol holds 1-4 frames, separated by 0-3 blank frames (at least one between
   two equal symbols, or CTC would merge them); about half the frames are blank.
3. *Posteriors*: Gaussian logits with the frame's symbol raised well above the rest; some
   frames give a similar letter nearly as much (a soft error, sometimes more), some are
   uncertain, and the frames at the edges of a symbol leak mass to the blank. Rows are
   log-softmaxed and returned as float32.

The same ``(sentence, seed)`` always gives the same matrix. Greedy decoding of the test
sentences makes roughly one character error in ten; a beam search with a word model fixes part
of them (``python -m tests.simulate`` prints both rates on the small model's sentences).
"""

from __future__ import annotations

import zlib

import numpy as np

CHAR_LABELS: list[str] = ["", " ", "'", *"abcdefghijklmnopqrstuvwxyz"]
BLANK = 0
SPACE = 1
_INDEX = {c: i for i, c in enumerate(CHAR_LABELS) if c}

#: Letters a model mixes up (by sound or by shape); every letter has at least one.
SIMILAR: dict[str, str] = dict(
    pair.split(":")
    for pair in (
        "a:eo b:pd c:ks d:tb e:ai f:vp g:kq h:n i:ey j:gi k:cg l:ri m:nw n:mh o:au p:bf q:gk "
        "r:l s:zc t:d u:ov v:fw w:vm x:ks y:i z:s ':s"
    ).split()
)


def encode_chars(text: str) -> list[int]:
    """Label indices of ``text`` (characters outside the labels raise ``KeyError``)."""
    return [_INDEX[c] for c in text]


def _hard_errors(rng: np.random.Generator, text: str, rate: float) -> str:
    out: list[str] = []
    for c in text:
        u = rng.random()
        if c == " ":
            if u >= 0.8 * rate:  # a dropped space runs two words together
                out.append(c)
            continue
        if u < 0.4 * rate:
            out.append(rng.choice(list(SIMILAR[c])))
        elif u < 0.6 * rate:
            continue  # deleted
        elif u < 0.75 * rate:
            out.extend([c, rng.choice(list(SIMILAR[c]))])  # inserted after
        else:
            out.append(c)
    return "".join(out).strip() or text


def simulate_char(
    sentence: str,
    seed: int,
    *,
    error_rate: float = 0.05,
    soft_rate: float = 0.12,
    noise: float = 1.0,
) -> np.ndarray:
    """Simulated CTC log-probabilities of ``sentence``.

    Parameters
    ----------
    sentence : str
        Lowercase text over the labels (space, apostrophe, a-z).
    seed : int
        With the sentence, fixes every random choice.
    error_rate : float
        Probability of a hard error per character.
    soft_rate : float
        Probability that a symbol frame also gives a similar letter a high score.
    noise : float
        Standard deviation of the Gaussian logits under the peaks.

    Returns
    -------
    ndarray of shape (T, 29), float32
        Log-softmax rows; column 0 is the blank.
    """
    rng = np.random.default_rng([seed, zlib.crc32(sentence.encode())])
    spoken = _hard_errors(rng, sentence, error_rate)
    symbols = encode_chars(spoken)
    frames: list[tuple[int, int]] = []  # (label, position in symbol: 0 middle, 1 edge)
    frames += [(BLANK, 0)] * int(rng.integers(0, 4))
    for k, s in enumerate(symbols):
        hold = int(rng.choice([1, 2, 3, 4], p=[0.4, 0.35, 0.17, 0.08]))
        frames += [(s, int(j == 0 or j == hold - 1)) for j in range(hold)]
        nxt = symbols[k + 1] if k + 1 < len(symbols) else None
        gap = int(rng.choice([0, 1, 2, 3], p=[0.1, 0.3, 0.35, 0.25]))
        if nxt == s:
            gap = max(gap, 1)
        frames += [(BLANK, 0)] * gap
    frames += [(BLANK, 0)] * int(rng.integers(1, 4))

    V = len(CHAR_LABELS)
    logits = rng.normal(0.0, noise, (len(frames), V))
    for t, (s, edge) in enumerate(frames):
        peak = rng.uniform(5.0, 10.0) if rng.random() > 0.04 else rng.uniform(2.5, 4.5)
        logits[t, s] += peak
        if s == BLANK:
            continue
        if rng.random() < soft_rate:
            other = _INDEX[rng.choice(list(SIMILAR.get(CHAR_LABELS[s], "e")))]
            logits[t, other] += peak - rng.uniform(-0.5, 3.0)
        if edge:
            logits[t, BLANK] += peak - rng.uniform(0.5, 4.0)
    logits -= logits.max(axis=1, keepdims=True)
    logits -= np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return logits.astype(np.float32)


def _error_rates() -> None:  # pragma: no cover - a report for people, not a test
    import fastctc
    from tests import small_lm

    sents = small_lm.dev_sentences()[:50]
    lps = [simulate_char(s, i) for i, s in enumerate(sents)]
    greedy = fastctc.build_ctcdecoder(CHAR_LABELS)
    lm = fastctc.build_ctcdecoder(
        CHAR_LABELS, kenlm_model_path=str(small_lm.ARPA), unigrams=small_lm.unigrams()
    )
    blank = np.mean([np.mean(lp.argmax(1) == BLANK) for lp in lps])
    for name, dec in (("greedy", greedy), ("beam + small LM", lm)):
        hyps = [dec.decode(lp, beam_width=32) for lp in lps]
        print(
            f"{name:16s} CER {fastctc.cer(list(sents), hyps):.3f}  "
            f"WER {fastctc.wer(list(sents), hyps):.3f}"
        )
    print(f"blank frames {blank:.2f}")


if __name__ == "__main__":
    _error_rates()
