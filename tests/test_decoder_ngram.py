"""The LM beam search scoring words from an ARPA model's n-gram tables in the kernel, against
the same search asking KenLM through the callback (n-gram tables switched off): identical
beams, scores and KenLM states on simulated utterances, and pyctcdecode's top texts.

The model is the suite's small 4-gram (:mod:`tests.small_lm`, ARPA and trie binary of the
same estimate) on held-out sentences of its grammar; the bundled English model (a quantised
trie read natively) is checked the same way on the demo sentences."""

from __future__ import annotations

import logging

import kenlm
import pytest

import fastctc
from fastctc.alphabet import Alphabet
from fastctc.lm import LanguageModel
from tests import small_lm
from tests.conftest import BUNDLED_LM, bundled_unigrams, demo_sentences
from tests.simulate import CHAR_LABELS, simulate_char

logging.getLogger("pyctcdecode").setLevel(logging.ERROR)

N_UTTS = 25
WIDTH = 32
#: Words and a phrase of the first sentences (checked in test_hotwords).
HOTWORDS = ["lantern", "mister price", "cupboard", "harbour"]


@pytest.fixture(scope="module")
def sim():
    """Labels, 25 simulated held-out utterances and the model's vocabulary."""
    sents = small_lm.dev_sentences()[:N_UTTS]
    lps = [simulate_char(s, i) for i, s in enumerate(sents)]
    return CHAR_LABELS, lps, small_lm.unigrams()


def _decoder(labels, unigrams, path=small_lm.ARPA, lm_scoring="auto", **kw):
    lm = LanguageModel(str(path), unigrams, **kw)
    alphabet = Alphabet.build_alphabet(labels)
    return fastctc.BeamSearchDecoderCTC(alphabet, lm, lm_scoring=lm_scoring)


def _pair(labels, unigrams, path=small_lm.ARPA, **kw):
    """(native, callback): the same model, the second scored through the callback path."""
    native = _decoder(labels, unigrams, path, **kw)
    callback = _decoder(labels, unigrams, path, lm_scoring="callback", **kw)
    assert native.lm_scoring.name == "ngram" and callback.lm_scoring.name == "callback"
    return native, callback


@pytest.fixture(scope="module")
def pairs(sim):
    """Decoder pairs by unigram setting (the full vocabulary, none, half of it), built once."""
    labels, _, vocab = sim
    cache: dict = {}

    def get(name, **kw):
        key = (name, tuple(sorted(kw.items())))
        if key not in cache:
            unigrams = {"full": vocab, "none": None, "half": vocab[::2]}[name]
            cache[key] = _pair(labels, unigrams, **kw)
        return cache[key]

    return get


def _key(beam):
    return (beam.text, beam.text_frames, beam.logit_score, beam.lm_score)


def _kenlm_state_after(lm, words):
    """KenLM state after ``words`` from the model's start state."""
    state = lm.get_start_state()
    for w in words:
        nxt = kenlm.State()
        lm.kenlm_model.BaseScore(state, w, nxt)
        state = nxt
    return state


def _final_states(lm, text):
    """The states pyctcdecode can give a beam with this text: KenLM's after its words, or
    after them and the empty word. Its end-of-utterance scores are cached by text, and a beam
    whose last word was complete (a space followed it) scores the empty word there (KenLM
    reads it as <unk>); a beam of the same text still spelling its last word then takes that
    cached state."""
    words = text.split()
    return _kenlm_state_after(lm, words), _kenlm_state_after(lm, [*words, ""])


def _assert_same(native, callback, lps, **kw):
    for i, lp in enumerate(lps):
        a = native.decode_beams(lp, **kw)
        b = callback.decode_beams(lp, **kw)
        assert [_key(x) for x in a] == [_key(x) for x in b], f"utterance {i}"
        assert [x.last_lm_state for x in a] == [x.last_lm_state for x in b], f"utterance {i}"
        assert all(isinstance(x.last_lm_state, kenlm.State) for x in a)
        if a[0].text:
            assert a[0].last_lm_state in _final_states(native.language_model, a[0].text), (
                f"utterance {i}"
            )


@pytest.mark.parametrize("unigrams", ["full", "none", "half"])
def test_native_equals_callback(sim, pairs, unigrams):
    _, lps, _ = sim
    native, callback = pairs(unigrams)
    _assert_same(native, callback, lps, beam_width=WIDTH)


def test_paths_really_differ(sim):
    """The native decoder asks KenLM nothing; the switched-off one caches KenLM's answers."""
    _, lps, _ = sim
    native, callback = _pair(sim[0], sim[2])
    for lp in lps[:3]:
        native.decode_beams(lp, beam_width=WIDTH)
        callback.decode_beams(lp, beam_width=WIDTH)
    assert native.lm_tables.n_cached_scores == 0 and len(native.lm_tables.states) == 1
    assert callback.lm_tables.n_cached_scores > 0 and len(callback.lm_tables.states) > 1


def test_no_sentence_boundary(sim, pairs):
    _, lps, _ = sim
    native, callback = pairs("full", score_boundary=False)
    _assert_same(native, callback, lps, beam_width=WIDTH)


def test_hotwords(sim, pairs):
    _, lps, _ = sim
    text = " ".join(small_lm.dev_sentences()[:N_UTTS])
    assert all(f" {h} " in f" {text} " for h in HOTWORDS)
    native, callback = pairs("full")
    _assert_same(native, callback, lps, beam_width=WIDTH, hotwords=HOTWORDS, hotword_weight=7.5)


def test_prune_history(sim, pairs):
    _, lps, _ = sim
    native, callback = pairs("full")
    _assert_same(native, callback, lps, beam_width=WIDTH, prune_history=True)


def test_wide_beam_and_loose_pruning(sim, pairs):
    _, lps, _ = sim
    native, callback = pairs("half")
    _assert_same(
        native, callback, lps[:8], beam_width=100, token_min_logp=-8.0, beam_prune_logp=-20.0
    )


def test_batch_on_threads(sim, pairs):
    _, lps, _ = sim
    native, callback = pairs("full")
    texts = native.decode_batch(None, lps, beam_width=WIDTH, num_threads=2)
    assert texts == callback.decode_batch(None, lps, beam_width=WIDTH, num_threads=2)
    assert texts == [callback.decode(lp, beam_width=WIDTH) for lp in lps]
    a = native.decode_beams_batch(None, lps, beam_width=WIDTH, num_threads=2)
    b = callback.decode_beams_batch(None, lps, beam_width=WIDTH, num_threads=2)
    assert [[tuple(x) for x in r] for r in a] == [[tuple(x) for x in r] for r in b]


def test_reset_params(sim):
    labels, lps, vocab = sim
    native, callback = _pair(labels, vocab)
    before = [native.decode(lp, beam_width=WIDTH) for lp in lps[:5]]  # caches old scores
    for dec in (native, callback):
        dec.reset_params(alpha=1.1, beta=-0.4)
    _assert_same(native, callback, lps, beam_width=WIDTH)
    assert native.language_model.alpha == 1.1
    for dec in (native, callback):
        dec.reset_params(unk_score_offset=-3.0, lm_score_boundary=False)
    _assert_same(native, callback, lps[:10], beam_width=WIDTH)
    for dec in (native, callback):
        dec.reset_params(alpha=0.5, beta=1.5, unk_score_offset=-10.0, lm_score_boundary=True)
    assert [native.decode(lp, beam_width=WIDTH) for lp in lps[:5]] == before


def test_given_start_state_uses_kenlm(sim):
    """With ``lm_start_state`` the native decoder asks KenLM; from the model's own start state
    that must give the beams of the n-gram tables."""
    _, lps, _ = sim
    native, _ = _pair(sim[0], sim[2])
    start = native.language_model.get_start_state()
    for lp in lps[:5]:
        a = native.decode_beams(lp, beam_width=WIDTH)
        b = native.decode_beams(lp, beam_width=WIDTH, lm_start_state=start)
        assert [_key(x) for x in a] == [_key(x) for x in b]
        assert [x.last_lm_state for x in a] == [x.last_lm_state for x in b]
    assert native.lm_tables.n_cached_scores > 0


def test_binary_model_gives_the_same_beams(sim, pairs):
    """The KenLM trie binary of the same model scores alike, read natively and through KenLM."""
    labels, lps, vocab = sim
    native, _ = pairs("full")
    binaries = [
        fastctc.build_ctcdecoder(
            labels, kenlm_model_path=str(small_lm.BINARY), unigrams=vocab, lm_scoring=scoring
        )
        for scoring in ("auto", "callback")
    ]
    assert binaries[0].lm_scoring.name == "ngram"
    for lp in lps[:10]:
        a = native.decode_beams(lp, beam_width=WIDTH)
        b, c = (binary.decode_beams(lp, beam_width=WIDTH) for binary in binaries)
        assert [_key(x) for x in a] == [_key(x) for x in b] == [_key(x) for x in c]
        # KenLM states name words by the ids of their own model file
        assert [x.last_lm_state for x in b] == [x.last_lm_state for x in c]
    assert binaries[0].lm_tables.n_cached_scores == 0
    assert binaries[1].lm_tables.n_cached_scores > 0


@pytest.mark.reference
def test_top_text_matches_pyctcdecode(sim, pairs):
    import pyctcdecode

    labels, lps, vocab = sim
    native, _ = pairs("full")
    kw = dict(kenlm_model_path=str(small_lm.ARPA), unigrams=vocab)
    ref = pyctcdecode.build_ctcdecoder(labels, **kw)
    for lp in lps[:6]:
        r = ref.decode_beams(lp, beam_width=WIDTH)
        o = native.decode_beams(lp, beam_width=WIDTH)
        assert o[0].text == r[0][0]
        assert o[0].lm_score == pytest.approx(r[0][4], rel=1e-5)
        assert o[0].last_lm_state == r[0][1]


def test_bundled_model_native_equals_callback():
    """The bundled English model (8-bit quantised trie, read natively) on English sentences it
    never saw: the same beams as asking KenLM, with and without hotwords."""
    sents = demo_sentences()[:6]
    lps = [simulate_char(s, 100 + i) for i, s in enumerate(sents)]
    native, callback = _pair(CHAR_LABELS, list(bundled_unigrams()), BUNDLED_LM)
    _assert_same(native, callback, lps, beam_width=WIDTH)
    _assert_same(native, callback, lps[:2], beam_width=WIDTH, hotwords=["van goghs", "papers"])
    assert native.lm_tables.n_cached_scores == 0 and callback.lm_tables.n_cached_scores > 0
