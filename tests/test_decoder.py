"""The LM-fused decoder against pyctcdecode 0.5.0 (the reference implementation of the same
search), plus batch/thread equivalence, persistence, custom models and every input error."""

from __future__ import annotations

import logging
from pathlib import Path

import kenlm
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc
from fastctc.kernels.lm_beam import sort_desc, sort_groups_desc
from tests.conftest import BUNDLED_LM, bundled_unigrams, demo_sentences, random_log_probs
from tests.simulate import CHAR_LABELS, simulate_char

logging.getLogger("pyctcdecode").setLevel(logging.ERROR)

TINY = str(Path(__file__).parent / "data" / "tiny.arpa")
TINY_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog"]
CHARS = ["", " ", "a", "c", "t", "h", "e", "o", "d", "g"]
BPE = ["", "\u2581the", "\u2581ca", "t", "\u2581a", "s", "\u2581dog", "o"]


def _same_beams(ours, ref, batch=False, rel=1e-5):
    """Equal texts, frames and scores, beam by beam (scores to float32 precision)."""
    assert [b.text for b in ours] == [r[0] for r in ref]
    for b, r in zip(ours, ref, strict=True):
        frames, logit, score = (r[1], r[2], r[3]) if batch else (r[2], r[3], r[4])
        assert b.text_frames == frames
        assert b.logit_score == pytest.approx(logit, rel=rel, abs=1e-3)
        assert b.lm_score == pytest.approx(score, rel=rel, abs=1e-3)


@pytest.fixture(scope="module")
def sim_utts():
    """Simulated outputs of six English sentences that the bundled model never saw."""
    sents = demo_sentences()[:6]
    return CHAR_LABELS, [simulate_char(s, i) for i, s in enumerate(sents)], sents


@pytest.fixture(scope="module")
def unigrams():
    return list(bundled_unigrams())


@pytest.mark.reference
@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="heavy: interpreted kernels too slow")
@pytest.mark.parametrize("mode", ["lm", "nolm", "hotwords"])
def test_simulated_utterances_match_pyctcdecode(sim_utts, unigrams, mode):
    import pyctcdecode

    labels, lps, sents = sim_utts
    kw = {}
    if mode != "nolm":
        kw = dict(kenlm_model_path=str(BUNDLED_LM), unigrams=unigrams)
    hot = ["jewels", "van goghs", "chivas"] if mode == "hotwords" else None
    assert hot is None or all(h in sents[0] for h in hot)
    ref = pyctcdecode.build_ctcdecoder(labels, **kw)
    ours = fastctc.build_ctcdecoder(labels, **kw)
    width = 24 if mode == "nolm" else 32
    for lp in lps:
        r = ref.decode_beams(lp, beam_width=width, hotwords=hot)
        o = ours.decode_beams(lp, beam_width=width, hotwords=hot)
        _same_beams(o, r)
        assert ours.decode(lp, beam_width=width, hotwords=hot) == ref.decode(
            lp, beam_width=width, hotwords=hot
        )
        if mode == "lm":
            # the final LM state is a real kenlm.State equal to the reference's
            assert o[0].last_lm_state == r[0][1]


@pytest.mark.reference
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    T=st.integers(1, 14),
    lm=st.booleans(),
    hot=st.booleans(),
    prune_history=st.booleans(),
)
def test_random_logits_match_pyctcdecode(seed, T, lm, hot, prune_history):
    rng = np.random.default_rng(seed)
    lp = random_log_probs(rng, T, len(CHARS), scale=3.0)
    hotwords = ["cat", "dog the"] if hot else None
    ref = _cached_ref(tuple(CHARS), lm)
    ours = _cached_ours(tuple(CHARS), lm)
    r = ref.decode_beams(
        lp, beam_width=8, token_min_logp=-4.0, hotwords=hotwords, prune_history=prune_history
    )
    o = ours.decode_beams(
        lp, beam_width=8, token_min_logp=-4.0, hotwords=hotwords, prune_history=prune_history
    )
    _same_beams(o, r)


_DECODERS: dict = {}


def _cached_ref(labels, lm):
    import pyctcdecode

    key = ("ref", labels, lm)
    if key not in _DECODERS:
        kw = dict(kenlm_model_path=TINY, alpha=0.8, beta=1.0) if lm else {}
        _DECODERS[key] = pyctcdecode.build_ctcdecoder(list(labels), **kw)
    return _DECODERS[key]


def _cached_ours(labels, lm):
    key = ("ours", labels, lm)
    if key not in _DECODERS:
        kw = dict(kenlm_model_path=TINY, alpha=0.8, beta=1.0) if lm else {}
        _DECODERS[key] = fastctc.build_ctcdecoder(list(labels), **kw)
    return _DECODERS[key]


@pytest.mark.reference
@pytest.mark.parametrize("lm", [False, True])
def test_bpe_vocabulary_matches_pyctcdecode(rng, lm):
    ref = _cached_ref(tuple(BPE), lm)
    ours = _cached_ours(tuple(BPE), lm)
    for _ in range(6):
        lp = random_log_probs(rng, 12, len(BPE), scale=3.0)
        r = ref.decode_beams(lp, beam_width=10)
        o = ours.decode_beams(lp, beam_width=10)
        _same_beams(o, r)


@pytest.mark.reference
def test_batch_form_matches_pyctcdecode(rng):
    ref = _cached_ref(tuple(CHARS), True)
    ours = _cached_ours(tuple(CHARS), True)
    lps = [random_log_probs(rng, n, len(CHARS), scale=3.0) for n in (5, 9, 3)]
    r = ref.decode_beams_batch(None, lps, beam_width=6)
    o = ours.decode_beams_batch(None, lps, beam_width=6, num_threads=2)
    for ob, rb in zip(o, r, strict=True):
        assert all(len(b) == 4 for b in ob)
        _same_beams(ob, rb, batch=True)
    assert ours.decode_batch(None, lps, beam_width=6) == ref.decode_batch(None, lps, beam_width=6)


@pytest.mark.reference
def test_reset_params_matches_pyctcdecode(rng):
    import pyctcdecode

    ref = pyctcdecode.build_ctcdecoder(CHARS, kenlm_model_path=TINY)
    ours = fastctc.build_ctcdecoder(CHARS, kenlm_model_path=TINY)
    lp = random_log_probs(rng, 10, len(CHARS), scale=3.0)
    ours.decode_beams(lp, beam_width=8)  # fill the score cache with the old parameters
    ref.reset_params(alpha=1.3, beta=-0.5, unk_score_offset=-4.0, lm_score_boundary=False)
    ours.reset_params(alpha=1.3, beta=-0.5, unk_score_offset=-4.0, lm_score_boundary=False)
    _same_beams(ours.decode_beams(lp, beam_width=8), ref.decode_beams(lp, beam_width=8))


class _CountLM:
    """A custom model in the AbstractLanguageModel shape: each word scores -len(word)."""

    order = 2

    def get_start_state(self):
        return ()

    def score_partial_token(self, partial_token):
        return -0.5 * ("q" in partial_token)

    def score(self, prev_state, word, is_last_word=False):
        return -0.3 * len(word) - (0.7 if is_last_word else 0.0), (word,)


@pytest.mark.reference
def test_custom_language_model_matches_pyctcdecode(rng):
    from pyctcdecode.alphabet import Alphabet as RefAlphabet
    from pyctcdecode.decoder import BeamSearchDecoderCTC as RefDecoder

    labels = ["", " ", "a", "q", "b"]
    ref = RefDecoder(RefAlphabet.build_alphabet(labels), _CountLM())
    alphabet = fastctc.alphabet.Alphabet.build_alphabet(labels)
    ours = fastctc.BeamSearchDecoderCTC(alphabet, _CountLM())
    for _ in range(4):
        lp = random_log_probs(rng, 10, len(labels), scale=3.0)
        _same_beams(ours.decode_beams(lp, beam_width=8), ref.decode_beams(lp, beam_width=8))


def test_greedy_path_and_attributes():
    dec = fastctc.build_ctcdecoder(["", " ", "a", "b"])
    p = np.full((7, 4), 0.001)
    for t, c in enumerate([2, 2, 0, 1, 3, 0, 2]):  # "a" (2 frames), " ", "b", blank, "a"
        p[t, c] = 0.997
    beams = dec.decode_beams(np.log(p))
    top = beams[0]
    assert top.text == "a ba"
    assert top.text_frames == [("a", (0, 2)), ("ba", (4, 7))]
    assert top.tokens.tolist() == [2, 1, 3, 2]
    assert top.token_frames.tolist() == [0, 3, 4, 6]
    assert top.word_confidences == pytest.approx([0.997, 0.997])
    text, state, frames, logit, score = top  # pyctcdecode's positional layout
    assert (text, state, frames) == ("a ba", None, top.text_frames)
    assert logit == pytest.approx(np.log(p).max(axis=1).sum(), abs=0.01)


def test_batch_equals_single_and_threads_agree(rng):
    dec = _cached_ours(tuple(CHARS), True)
    lps = [random_log_probs(rng, n, len(CHARS), scale=3.0) for n in (4, 12, 7, 9, 1)]
    singles = [dec.decode(x, beam_width=10) for x in lps]
    assert dec.decode_batch(None, lps, beam_width=10, num_threads=1) == singles
    assert dec.decode_batch(None, lps, beam_width=10, num_threads=2) == singles
    b1 = dec.decode_beams_batch(None, lps, beam_width=10, num_threads=1)
    b2 = dec.decode_beams_batch(None, lps, beam_width=10, num_threads=2)
    assert [[tuple(b) for b in x] for x in b1] == [[tuple(b) for b in x] for x in b2]


def test_save_and_load_round_trip(tmp_path, rng):
    dec = fastctc.build_ctcdecoder(CHARS, kenlm_model_path=TINY, alpha=0.9, beta=0.4)
    dec.save_to_dir(str(tmp_path))
    back = fastctc.BeamSearchDecoderCTC.load_from_dir(str(tmp_path))
    lp = random_log_probs(rng, 10, len(CHARS), scale=3.0)
    assert [tuple(b)[::2] for b in back.decode_beams(lp)] == [
        tuple(b)[::2] for b in dec.decode_beams(lp)
    ]


@pytest.mark.reference
def test_loads_pyctcdecode_directory(tmp_path, rng):
    import pyctcdecode

    pyctcdecode.build_ctcdecoder(CHARS, kenlm_model_path=TINY, alpha=0.9).save_to_dir(str(tmp_path))
    back = fastctc.BeamSearchDecoderCTC.load_from_dir(str(tmp_path))
    assert back.labels == CHARS and back.language_model.alpha == 0.9


def test_kernel_callable_from_user_njit():
    @numba.njit
    def user(scores):
        idx = np.arange(scores.size)
        sort_desc(idx, scores.size, scores, np.empty_like(idx))
        return idx

    s = np.array([0.5, 2.0, 0.5, -1.0, 2.0])
    assert user(s).tolist() == [1, 4, 0, 2, 3]  # stable: ties keep their order


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 1.0, -1.0, 2.5, -3.0, -np.inf]), min_size=0, max_size=80),
    st.lists(st.integers(1, 79), max_size=12),
)
def test_sort_groups_desc_is_stable_sort(values, cuts):
    """The beam sort of a frame (groups insertion-sorted, then merged) is a stable sort by
    decreasing score whatever the groups: one, one per value, or any split."""
    s = np.array(values, dtype=np.float64)
    n = s.size
    bounds = sorted({0, n} | {c for c in cuts if c < n})
    bnd = np.zeros(n + 2, dtype=np.int64)
    bnd[: len(bounds)] = bounds
    idx = np.arange(n)
    sort_groups_desc(idx, n, s, np.empty_like(idx), bnd, len(bounds) - 1 if n else 0)
    assert idx.tolist() == sorted(range(n), key=lambda i: -s[i])


def test_prefetch_is_only_a_hint():
    """The search's prefetch hint leaves results alone, even for an index past the end, and
    takes only 1-D contiguous arrays (it computes the address from the index alone)."""
    from fastctc.kernels._jit import prefetch

    @numba.njit
    def gather_sum(a, idx):
        s = 0.0
        for k in range(idx.size):
            prefetch(a, idx[(k + 8) % idx.size] + (a.size if k % 3 == 0 else 0))
            s += a[idx[k]]
        return s

    a = np.random.default_rng(0).random(1000)
    idx = np.random.default_rng(1).permutation(1000)
    assert gather_sum(a, idx) == sum(a[idx].tolist())

    @numba.njit
    def on_strided(a):
        prefetch(a, 0)
        return a[0]

    if not numba.config.DISABLE_JIT:  # interpreted, the hint is a no-op with no typing
        with pytest.raises(numba.core.errors.TypingError):
            on_strided(a[::2])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, -1.0, 2.5, -3.0]), min_size=0, max_size=60))
def test_sort_desc_is_stable_sort(values):
    s = np.array(values, dtype=np.float64)
    idx = np.arange(s.size)
    sort_desc(idx, s.size, s, np.empty_like(idx))
    assert idx.tolist() == sorted(range(s.size), key=lambda i: -s[i])


# ---------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def plain():
    return fastctc.build_ctcdecoder(["", " ", "a", "b"])


def test_width_mismatch(plain):
    with pytest.raises(ValueError, match=r"has 5 columns but the decoder has 4 labels"):
        plain.decode(np.zeros((3, 5)))


def test_missing_blank_widens_labels():
    dec = fastctc.build_ctcdecoder([" ", "a", "b"])  # blank appended, as pyctcdecode
    with pytest.raises(ValueError, match=r"logits must be \(T, 4\)"):
        dec.decode(np.log(np.full((2, 3), 1 / 3)))


def test_empty_logits(plain):
    with pytest.raises(ValueError, match=r"empty \(T = 0 frames\)"):
        plain.decode(np.zeros((0, 4)))


def test_nan_row(plain):
    lp = np.log(np.full((4, 4), 0.25))
    lp[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"logits\[2\] contains NaN"):
        plain.decode_beams(lp)


def test_not_two_dimensional(plain):
    with pytest.raises(ValueError, match=r"must be 2-D \(T, C\)"):
        plain.decode(np.zeros((2, 3, 4)))


def test_integer_logits(plain):
    with pytest.raises(TypeError, match="floating-point"):
        plain.decode(np.zeros((3, 4), dtype=np.int64))


def test_positive_infinity(plain):  # neither a log-probability, a probability nor a logit
    lp = np.zeros((2, 4))
    lp[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"logits\[1\] contains NaN or \+inf"):
        plain.decode(lp)


def test_bad_beam_width(plain):
    with pytest.raises(ValueError, match="beam_width must be >= 1"):
        plain.decode(np.zeros((2, 4)), beam_width=0)


def test_bad_prune_logp(plain):
    with pytest.raises(ValueError, match="beam_prune_logp must be <= 0"):
        plain.decode(np.zeros((2, 4)), beam_prune_logp=1.0)


def test_bad_token_min_logp_type(plain):
    with pytest.raises(TypeError, match="token_min_logp must be a number"):
        plain.decode(np.zeros((2, 4)), token_min_logp="low")


def test_batch_item_named(plain):
    good = np.log(np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"logits_list\[1\] has 3 columns"):
        plain.decode_batch(None, [good, good[:, :3]])


def test_batch_given_single_matrix(plain):
    with pytest.raises(ValueError, match="got one 2-D array"):
        plain.decode_batch(None, np.zeros((3, 4)))


def test_bad_num_threads(plain):
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        plain.decode_batch(None, [np.zeros((2, 4))], num_threads=0)


def test_bad_language_model_object():
    with pytest.raises(TypeError, match="AbstractLanguageModel protocol"):
        fastctc.BeamSearchDecoderCTC(fastctc.alphabet.Alphabet.build_alphabet(CHARS), object())


def _inputs_as_pyctcdecode_takes_them(rng, C):
    """The same utterance as raw logits, log-probabilities and probabilities (float32 and
    float64), and raw logits with rows padded with -100 (as a padded batch gives them)."""
    raw = rng.normal(0.0, 3.0, size=(14, C))
    lp = raw - np.log(np.exp(raw).sum(axis=1, keepdims=True))
    padded = np.vstack([raw, np.full((4, C), -100.0)])
    forms = {"raw": raw, "log-probs": lp, "probs": np.exp(lp), "padded": padded}
    forms.update({k + " f32": v.astype(np.float32) for k, v in list(forms.items())})
    return forms


@pytest.mark.reference
@pytest.mark.parametrize("lm", [False, True])
def test_inputs_normalised_as_pyctcdecode(rng, lm):
    """Raw logits, log-probabilities, probabilities and padded rows give pyctcdecode's beams:
    the decoder normalises them exactly as pyctcdecode 0.5.0 does."""
    from pyctcdecode.decoder import _log_softmax

    ref, ours = _cached_ref(tuple(CHARS), lm), _cached_ours(tuple(CHARS), lm)
    for name, x in _inputs_as_pyctcdecode_takes_them(rng, len(CHARS)).items():
        if name.startswith("probs"):
            want = np.log(np.clip(x, 1e-15, 1))
        else:
            want = np.clip(_log_softmax(x, axis=1), np.log(1e-15), 0)
        got = fastctc.lm.decoder.pyctcdecode_log_probs(x)
        assert got.dtype == want.dtype and np.array_equal(got, want), name
        _same_beams(ours.decode_beams(x, beam_width=8), ref.decode_beams(x, beam_width=8))
        assert ours.decode(x) == ref.decode(x), name


def test_probabilities_and_logits_decode_alike(plain):
    """One utterance as probabilities, log-probabilities and shifted raw logits: one text."""
    probs = np.array([[0.1, 0.1, 0.7, 0.1], [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    texts = {plain.decode(x) for x in (probs, np.log(probs), np.log(probs) + 3.5)}
    assert texts == {"ab"}


def test_kenlm_state_is_exposed():
    dec = _cached_ours(tuple(CHARS), True)
    lp = np.log(np.full((3, len(CHARS)), 1 / len(CHARS)))
    assert isinstance(dec.decode_beams(lp, beam_width=4)[0].last_lm_state, kenlm.State)


def test_max_beams_keeps_the_best(sim_utts):
    labels, lps, _ = sim_utts
    dec = fastctc.build_ctcdecoder(labels, kenlm_model_path=TINY, unigrams=TINY_WORDS)
    full = dec.decode_beams(lps[0], beam_width=16)
    assert len(full) > 3
    part = dec.decode_beams(lps[0], beam_width=16, max_beams=3)
    assert [tuple(b)[::2] + tuple(b)[3:] for b in part] == [
        tuple(b)[::2] + tuple(b)[3:] for b in full[:3]
    ]
    batch = dec.decode_beams_batch(None, lps[:2], beam_width=16, max_beams=2, num_threads=2)
    whole = dec.decode_beams_batch(None, lps[:2], beam_width=16, num_threads=1)
    assert [[tuple(b) for b in x] for x in batch] == [[tuple(b) for b in x[:2]] for x in whole]
    with pytest.raises(ValueError, match="max_beams must be >= 1"):
        dec.decode_beams(lps[0], max_beams=0)
    with pytest.raises(TypeError, match="max_beams"):
        dec.decode_beams_batch(None, lps[:1], max_beams="2")


def _key(beam):
    """A beam without its LM state: text, frames, scores."""
    return tuple(beam)[::2] + tuple(beam)[3:]


def test_pools_grown_mid_search_give_the_same_beams(sim_utts):
    """Text-node and candidate pools that start small and grow during the search (the search
    stops, the caller reallocates, the frame restarts) change nothing."""
    from fastctc.lm.search import SearchSizes

    labels, lps, _ = sim_utts
    dec = fastctc.build_ctcdecoder(labels, kenlm_model_path=TINY, unigrams=TINY_WORDS)
    want = [dec.decode_beams(x, beam_width=100) for x in lps[:3]]
    small = fastctc.build_ctcdecoder(labels, kenlm_model_path=TINY, unigrams=TINY_WORDS)
    small.search_sizes = SearchSizes(text_per_frame=0, cand_per_beam=0, min_pool=8)
    got = [small.decode_beams(x, beam_width=100) for x in lps[:3]]
    # more than 8 beams survive: 8 candidates and 8 text nodes cannot have held them
    assert max(len(w) for w in want) > 8
    for g, w in zip(got, want, strict=True):
        assert [_key(b) for b in g] == [_key(b) for b in w]
        assert [b.tokens.tolist() for b in g] == [b.tokens.tolist() for b in w]
