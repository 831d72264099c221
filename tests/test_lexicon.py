"""The lexicon-constrained mode of the LM decoder (``build_ctcdecoder(..., lexicon=...)``).

Exactness: with a beam wide enough to keep every state and no pruning, the search is exact,
so its best score equals the best over every alignment (``log_add=False``) or the best
log-sum over the alignments that reach one state (``log_add=True``), computed by brute force
with KenLM scoring the words (:mod:`tests.reference_lexicon`).
"""

from __future__ import annotations

import copy
import math
import pickle

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastctc
from fastctc.lm.lexicon import Lexicon, LexiconOptions, read_lexicon

from . import small_lm
from .reference_lexicon import Setup, best, best_log_add, brute_force
from .simulate import CHAR_LABELS, SPACE, encode_chars, simulate_char

kenlm = pytest.importorskip("kenlm")

CHARS = ["", " ", "a", "b", "c"]
PIECES = ["", "\u2581a", "\u2581b", "\u2581ab", "a", "b", "c"]
WORDS = ["a", "ab", "ba", "cab", "abc", "bc"]
#: Every state kept, nothing pruned: the search is exact.
EXACT = {"beam_width": 4096, "beam_prune_logp": -math.inf, "token_min_logp": -math.inf}

_ARPA = """\\data\\
ngram 1=9
ngram 2=10

\\1-grams:
-1.2\t<unk>\t0
-99\t<s>\t-0.4
-1.1\t</s>\t0
-0.9\ta\t-0.3
-1.0\tab\t-0.2
-1.3\tba\t-0.25
-1.5\tcab\t-0.1
-1.4\tabc\t-0.3
-1.7\tbc\t-0.2

\\2-grams:
-0.3\t<s> a
-0.5\t<s> ab
-0.4\ta ba
-0.6\tab cab
-0.2\tba </s>
-0.7\tcab abc
-0.35\tabc </s>
-0.45\ta </s>
-0.8\tbc a
-0.5\tab ab

\\end\\
"""


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    p = tmp_path_factory.mktemp("lex") / "abc.arpa"
    p.write_text(_ARPA)
    return str(p)


def _log_probs(rng, T, C, scale=2.0):
    x = rng.normal(size=(T, C)) * scale
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


def _setup(arpa, labels, lexicon, **kw):
    spell = {w: w for w in lexicon}
    model = kenlm.Model(arpa) if arpa is not None else None
    return Setup(labels, spell, model, **kw)


def _decoder(arpa, labels, lexicon, alpha=0.5, beta=1.0, **kw):
    return fastctc.build_ctcdecoder(
        labels,
        kenlm_model_path=arpa,
        unigrams=WORDS,
        alpha=alpha,
        beta=beta,
        lexicon=lexicon,
        **kw,
    )


def _check_exact(dec, setup, lp, log_add):
    ref = brute_force(lp, setup)
    assert ref  # the all-blank path always spells nothing, which is allowed
    beams = dec.decode_beams(lp, **EXACT)
    if log_add:
        assert beams[0].lm_score == pytest.approx(best_log_add(ref), abs=1e-9)
    else:
        score, _ = best(ref)
        assert beams[0].lm_score == pytest.approx(score, abs=1e-9)
        tied = {text for s, text, _ in ref if s >= score - 1e-9}
        assert beams[0].text in tied


@pytest.mark.parametrize("log_add", [False, True])
@pytest.mark.parametrize("labels", [CHARS, PIECES], ids=["chars", "pieces"])
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"unk_score": -2.0},
        {"sil_score": -1.5},
        {"unk_score": 0.5, "sil_score": 0.7},
    ],
)
def test_exact_against_brute_force(arpa, labels, log_add, opts):
    rng = np.random.default_rng(len(labels) * 10 + log_add + len(opts))
    lexicon = ["a", "ab", "ba", "cab", "abc", "bb"]  # "bb": a word the model does not know
    dec = _decoder(arpa, labels, lexicon, log_add=log_add, **opts)
    setup = _setup(arpa, labels, lexicon, **opts)
    for T in (1, 3, 5, 6):
        for _ in range(3):
            _check_exact(dec, setup, _log_probs(rng, T, len(labels)), log_add)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lp=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.just(len(CHARS))),
        elements=st.floats(-6, 0, allow_nan=False),
    ),
    alpha=st.floats(0, 2),
    beta=st.floats(-2, 3),
    unk=st.sampled_from([-math.inf, -3.0, 1.0]),
    sil=st.floats(-2, 1),
    log_add=st.booleans(),
    blank=st.integers(0, len(CHARS) - 1),
)
def test_property_exact(arpa, lp, alpha, beta, unk, sil, log_add, blank):
    # any column may be the blank: move the blank label there
    labels = list(CHARS)
    labels[0], labels[blank] = labels[blank], labels[0]
    lp = lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)
    dec = _decoder(
        arpa,
        labels,
        WORDS,
        alpha=alpha,
        beta=beta,
        unk_score=unk,
        sil_score=sil,
        log_add=log_add,
    )
    setup = _setup(arpa, labels, WORDS, alpha=alpha, beta=beta, unk_score=unk, sil_score=sil)
    _check_exact(dec, setup, lp, log_add)


def test_exact_without_a_model():
    rng = np.random.default_rng(3)
    dec = fastctc.build_ctcdecoder(CHARS, lexicon=WORDS, unk_score=-1.0, sil_score=-0.5)
    setup = _setup(None, CHARS, WORDS, unk_score=-1.0, sil_score=-0.5, beta=0.0)
    for T in (2, 4, 6):
        _check_exact(dec, setup, _log_probs(rng, T, len(CHARS)), False)


def test_hotword_bonus_is_exact(arpa):
    rng = np.random.default_rng(5)
    dec = _decoder(arpa, CHARS, WORDS)
    setup = _setup(arpa, CHARS, WORDS + ["cc"], bonus={"ba": 2.5, "cc": 2.5})
    for T in (3, 5):
        for _ in range(3):
            lp = _log_probs(rng, T, len(CHARS))
            beams = dec.decode_beams(lp, hotwords=["ba", "cc"], hotword_weight=2.5, **EXACT)
            score, _ = best(brute_force(lp, setup))
            assert beams[0].lm_score == pytest.approx(score, abs=1e-9)


# ------------------------------------------------------------------------------ real inputs
@pytest.fixture(scope="module")
def sim():
    sents = small_lm.dev_sentences()[:12]
    return sents, [simulate_char(s, i) for i, s in enumerate(sents)]


@pytest.fixture(scope="module")
def small_decoder():
    return fastctc.build_ctcdecoder(
        CHAR_LABELS,
        kenlm_model_path=str(small_lm.BINARY),
        unigrams=small_lm.unigrams(),
        alpha=0.7,
        beta=2.0,
        lexicon=True,
        log_add=True,
    )


def test_only_lexicon_words(sim, small_decoder):
    lexicon = set(small_decoder.lexicon.words)
    for lp in sim[1]:
        for beam in small_decoder.decode_beams(lp, beam_width=16):
            assert set(beam.text.split()) <= lexicon
            assert [w for w, _ in beam.text_frames] == beam.text.split()


def test_fewer_errors_than_unconstrained_search(sim, small_decoder):
    sents, lps = sim
    plain = fastctc.build_ctcdecoder(
        CHAR_LABELS,
        kenlm_model_path=str(small_lm.BINARY),
        unigrams=small_lm.unigrams(),
        alpha=0.7,
        beta=2.0,
    )
    lex = [small_decoder.decode(x, beam_width=32, beam_prune_logp=-15) for x in lps]
    ref = [plain.decode(x, beam_width=32) for x in lps]
    assert fastctc.metrics.wer(sents, lex) < fastctc.metrics.wer(sents, ref)


def test_batch_and_threads_equal_decode(sim, small_decoder):
    lps = sim[1]
    one = [small_decoder.decode_beams(x, beam_width=16) for x in lps]
    for threads in (1, 2):
        batch = small_decoder.decode_beams_batch(None, lps, beam_width=16, num_threads=threads)
        for a, b in zip(one, batch, strict=True):
            assert [(x.text, x.text_frames, x.lm_score) for x in a] == [
                (x.text, x.text_frames, x.lm_score) for x in b
            ]
    assert small_decoder.decode_batch(None, lps, beam_width=16) == [b[0].text for b in one]


def test_word_frames_and_tokens():
    dec = fastctc.build_ctcdecoder(["", " ", "a", "b"], lexicon=["ab", "a"])
    p = np.full((8, 4), 0.001)
    for t, c in enumerate([2, 2, 0, 3, 1, 0, 2, 0]):  # "ab", " ", "a"
        p[t, c] = 0.997
    top = dec.decode_beams(np.log(p))[0]
    assert top.text == "ab a"
    assert top.text_frames == [("ab", (0, 4)), ("a", (6, 7))]
    assert top.tokens.tolist() == [2, 3, 1, 2]
    assert top.token_frames.tolist() == [0, 3, 4, 6]
    assert len(top.word_confidences) == 2


def test_lm_state_of_beams(arpa):
    dec = _decoder(arpa, CHARS, WORDS)
    p = np.full((5, 5), 0.001)
    for t, c in enumerate([2, 0, 1, 3, 2]):  # "a ba"
        p[t, c] = 0.996
    top = dec.decode_beams(np.log(p))[0]
    assert top.text == "a ba"
    model = kenlm.Model(arpa)
    s0, s1, s2 = kenlm.State(), kenlm.State(), kenlm.State()
    model.BeginSentenceWrite(s0)
    model.BaseScore(s0, "a", s1)
    model.BaseScore(s1, "ba", s2)
    assert top.last_lm_state == s2


def test_long_confident_utterance_is_exact():
    """20,000 frames of peaked posteriors spelling a known text come back word for word."""
    words = small_lm.unigrams()[:300]
    rng = np.random.default_rng(0)
    text = []
    frames = []
    while len(frames) < 20_000:
        w = words[rng.integers(len(words))]
        text.append(w)
        for c in encode_chars(w) + [SPACE]:
            if frames and frames[-1] == c:
                frames.append(0)  # a blank between repeated labels
            frames += [c] * int(rng.integers(1, 3)) + [0] * int(rng.integers(0, 3))
    p = np.full((len(frames), len(CHAR_LABELS)), 1e-4)
    p[np.arange(len(frames)), frames] = 1.0
    p /= p.sum(axis=1, keepdims=True)
    dec = fastctc.build_ctcdecoder(
        CHAR_LABELS,
        kenlm_model_path=str(small_lm.BINARY),
        unigrams=small_lm.unigrams(),
        lexicon=True,
    )
    assert dec.decode(np.log(p), beam_width=8) == " ".join(text)


def test_long_flat_utterance(small_decoder):
    """Flat posteriors: every label everywhere; the search stays within lexicon words."""
    lp = np.full((5000, len(CHAR_LABELS)), -math.log(len(CHAR_LABELS)))
    beams = small_decoder.decode_beams(lp, beam_width=8)
    assert set(beams[0].text.split()) <= set(small_decoder.lexicon.words)
    assert beams[0].text


# ------------------------------------------------------------------------------ sources
def test_lexicon_sources(tmp_path, arpa):
    path = tmp_path / "lexicon.txt"
    path.write_text("a a |\nab a b |\ncolour c a b |\n\nba\n")
    assert read_lexicon(path) == {"a": ["a"], "ab": ["ab"], "colour": ["cab"], "ba": ["ba"]}
    p = np.full((4, 5), 0.001)
    for t, c in enumerate([4, 2, 0, 3]):  # spells "cab"
        p[t, c] = 0.996
    lp = np.log(p)
    # "colour" is not in the model: no out-of-vocabulary offset, so its acoustics win
    dec = _decoder(arpa, CHARS, str(path), unk_score=-5.0, unk_score_offset=0.0)
    assert dec.decode(lp) == "colour"
    dec = _decoder(arpa, CHARS, {"colour": "c a b", "a": ["a"]}, unk_score_offset=0.0)
    assert dec.decode(lp) == "colour"
    dec = _decoder(arpa, CHARS, {"colour": [["c", "ab"]]}, unk_score_offset=0.0)
    assert dec.decode(lp) == "colour"
    dec = _decoder(arpa, CHARS, True)
    assert sorted(dec.lexicon.words) == sorted(WORDS)
    assert dec.decode(lp) == "cab"


def test_hotword_outside_the_lexicon_is_spelled(arpa):
    p = np.full((4, 5), 0.001)
    for t, c in enumerate([4, 0, 4, 0]):  # "c" "c": "cc" is no word
        p[t, c] = 0.996
    dec = _decoder(arpa, CHARS, WORDS)
    assert dec.decode(np.log(p)) != "cc"
    assert dec.decode(np.log(p), hotwords=["cc"]) == "cc"
    assert dec.decode(np.log(p)) != "cc"  # the hotword was for that call only


def test_partial_word_at_the_end_falls_back_to_its_spelling(arpa):
    p = np.full((2, 5), 0.001)
    p[0, 2] = p[1, 3] = 0.996  # "ab" then nothing: fine; "c" alone is no word
    dec = _decoder(arpa, CHARS, ["abc"])
    assert dec.decode(np.log(p)) == "ab"


# ------------------------------------------------------------------------------ the decoder
def test_pickle_and_copy_keep_the_lexicon(arpa, sim):
    dec = _decoder(arpa, CHAR_LABELS, ["a", "the", "cat"], unk_score=-4.0, log_add=True)
    lp = sim[1][0]
    want = dec.decode_beams(lp, beam_width=8)
    for other in (pickle.loads(pickle.dumps(dec)), copy.deepcopy(dec)):
        assert other.lexicon_options == LexiconOptions(-4.0, 0.0, True)
        assert sorted(other.lexicon.words) == ["a", "cat", "the"]
        got = other.decode_beams(lp, beam_width=8)
        assert [(b.text, b.lm_score) for b in got] == [(b.text, b.lm_score) for b in want]


def test_reset_params_changes_the_lexicon_options(arpa):
    rng = np.random.default_rng(9)
    dec = _decoder(arpa, CHARS, WORDS)
    lp = _log_probs(rng, 5, len(CHARS))
    dec.reset_params(unk_score=-1.0, sil_score=0.25, log_add=True, alpha=0.9)
    assert dec.lexicon_options == LexiconOptions(-1.0, 0.25, True)
    setup = _setup(arpa, CHARS, WORDS, unk_score=-1.0, sil_score=0.25, alpha=0.9)
    _check_exact(dec, setup, lp, True)
    with pytest.raises(ValueError, match="sil_score must be finite"):
        dec.reset_params(sil_score=-math.inf)
    with pytest.raises(TypeError, match="log_add must be True or False"):
        dec.reset_params(log_add="yes")
    assert dec.lexicon_options == LexiconOptions(-1.0, 0.25, True)


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        ({"unk_score": float("nan")}, ValueError, "unk_score must be a number below"),
        ({"unk_score": math.inf}, ValueError, "unk_score must be a number below"),
        ({"sil_score": "0"}, TypeError, "sil_score must be a number"),
        ({"log_add": 1}, TypeError, "log_add must be True or False"),
        ({"lexicon": 3}, TypeError, "lexicon must be True"),
        ({"lexicon": []}, ValueError, "holds no word"),
        ({"lexicon": ["a b"]}, ValueError, "holds no word"),
    ],
)
def test_bad_arguments(arpa, kw, err, match):
    args = {"lexicon": WORDS, **kw}
    with pytest.raises(err, match=match):
        fastctc.build_ctcdecoder(CHARS, kenlm_model_path=arpa, unigrams=WORDS, **args)


def test_lexicon_needs_ngram_tables():
    from .test_decoder import _CountLM

    alphabet = fastctc.alphabet.Alphabet.build_alphabet(CHARS)
    with pytest.raises(ValueError, match="scores words from n-gram tables"):
        fastctc.BeamSearchDecoderCTC(alphabet, _CountLM(), lexicon=WORDS)


def test_true_without_unigrams_or_model():
    with pytest.raises(ValueError, match="spells words from the unigram list"):
        fastctc.build_ctcdecoder(CHARS, lexicon=True)


def test_start_state_is_refused(arpa):
    dec = _decoder(arpa, CHARS, WORDS)
    with pytest.raises(ValueError, match="lm_start_state is not supported"):
        dec.decode(np.log(np.full((2, 5), 0.2)), lm_start_state=object())


def test_lexicon_repr_and_len():
    lex = Lexicon({"ab": ["ab"], "a": ["a"]})
    assert len(lex) == 2
    assert repr(lex) == "Lexicon(2 words, 3 trie nodes)"
