"""How the LM-fused search gets missing LM scores when it has no n-gram tables (a KenLM model
it cannot read, a custom model): through the resolver callback from inside the kernel, or by
returning its queries to the caller. Both must give the same beams as each
other and as pyctcdecode, also when the tables grow mid-search, on threads, and when the
language model raises."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc
from fastctc.kernels.lm_beam import RESOLVE_DONE, RESOLVE_STALE
from fastctc.kernels.prefix_beam import kth_smallest
from fastctc.lm import AbstractLanguageModel, KernelTables
from fastctc.lm.queries import SearchQueries
from tests.conftest import BUNDLED_LM, bundled_unigrams, demo_sentences, random_log_probs
from tests.simulate import CHAR_LABELS, simulate_char

logging.getLogger("pyctcdecode").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def sim():
    """Four simulated English utterances and the bundled model. Every decoder here asks the
    model for scores (``lm_scoring="callback"`` or ``"resume"``) rather than scoring from the
    n-gram tables read off its file."""
    sents = demo_sentences()[10:14]
    lps = [simulate_char(s, 10 + i) for i, s in enumerate(sents)]
    kw = dict(kenlm_model_path=str(BUNDLED_LM), unigrams=list(bundled_unigrams()))
    return CHAR_LABELS, lps, kw


def _build(labels, kw, lm_scoring="callback"):
    dec = fastctc.build_ctcdecoder(labels, **kw, lm_scoring=lm_scoring)
    assert dec.lm_scoring.name == lm_scoring
    return dec


def _beams(dec, lps, **kw):
    return [[tuple(b)[::2] + tuple(b)[3:] for b in dec.decode_beams(x, **kw)] for x in lps]


def _count_answers(monkeypatch):
    calls = []
    orig = SearchQueries.answer

    def answer(self, n):
        calls.append(n)
        return orig(self, n)

    monkeypatch.setattr(SearchQueries, "answer", answer)
    return calls


@pytest.mark.reference
def test_callback_and_returned_queries_agree(sim, monkeypatch):
    import pyctcdecode

    labels, lps, kw = sim
    calls = _count_answers(monkeypatch)
    returned = _beams(_build(labels, kw, "resume"), lps, beam_width=32)
    assert calls == []  # queries came back to the caller
    in_kernel = _beams(_build(labels, kw), lps, beam_width=32)
    assert len(calls) > len(lps)  # answered from inside the kernel
    assert in_kernel == returned  # texts, frames and scores, exactly
    ref = pyctcdecode.build_ctcdecoder(labels, **kw)
    for x, ours in zip(lps, in_kernel, strict=True):
        beams = ref.decode_beams(x, beam_width=32)
        assert [b[0] for b in beams] == [b[0] for b in ours]
        assert [b[4] for b in beams] == pytest.approx([b[-1] for b in ours], rel=1e-5)


def _shrink(tables: KernelTables) -> None:
    """Start from the smallest score table, so that answers regrow it during the search."""
    tables.clear(capacity=16)


def test_tables_regrown_during_search(sim, monkeypatch):
    labels, lps, kw = sim
    want = _beams(_build(labels, kw, "resume"), lps[:2], beam_width=24)
    answers = []
    orig = SearchQueries.answer

    def answer(self, n):
        answers.append(orig(self, n))
        return answers[-1]

    monkeypatch.setattr(SearchQueries, "answer", answer)
    dec = _build(labels, kw)
    _shrink(dec.lm_tables)
    assert _beams(dec, lps[:2], beam_width=24) == want
    assert RESOLVE_STALE in answers and RESOLVE_DONE in answers  # regrown and not
    assert dec.lm_tables.scores[0].size > 16


def test_threads_share_growing_tables(sim):
    labels, lps, kw = sim
    one = _build(labels, kw)
    two = _build(labels, kw)
    _shrink(two.lm_tables)
    want = one.decode_batch(None, lps, beam_width=24, num_threads=1)
    assert two.decode_batch(None, lps, beam_width=24, num_threads=2) == want


def test_no_query_repeated_within_a_batch(sim, monkeypatch):
    labels, lps, kw = sim
    batches = []
    orig = KernelTables.resolve

    def resolve(self, q, q_hash, spell):
        rows = zip(q.tolist(), q_hash.tolist(), strict=True)
        batches.append([(*row[:3], row[5], h) for row, h in rows])
        return orig(self, q, q_hash, spell)

    monkeypatch.setattr(KernelTables, "resolve", resolve)
    _build(labels, kw).decode(lps[0], beam_width=24)
    assert batches
    for rows in batches:
        keys = [(k, s, w, e) if k == 1 else (k, s, w, e, h) for k, s, w, e, h in rows]
        assert len(set(keys)) == len(keys)


class _FailingLM(AbstractLanguageModel):
    """Scores words by length; raises on the word ``bad``."""

    order = 2

    def get_start_state(self):
        return ()

    def score_partial_token(self, partial_token):
        return -0.1 * len(partial_token)

    def score(self, prev_state, word, is_last_word=False):
        if word == "ba":
            raise RuntimeError("cannot score 'ba'")
        return -0.5 * len(word), (word,)


def test_language_model_error_propagates(rng):
    labels = ["", " ", "a", "b"]
    dec = fastctc.BeamSearchDecoderCTC(
        fastctc.alphabet.Alphabet.build_alphabet(labels), _FailingLM()
    )
    p = np.full((5, 4), 0.01)
    for t, c in enumerate([3, 2, 1, 2, 0]):  # "ba a"
        p[t, c] = 0.97
    with pytest.raises(RuntimeError, match="cannot score 'ba'"):
        dec.decode(np.log(p), beam_width=4)
    assert SearchQueries.n_live() == 0  # the failed search unregistered itself
    ok = np.log(np.full((3, 4), 0.25))
    ok[:, 3] = np.log(0.01)  # no "b": "ba" never appears
    assert isinstance(dec.decode(ok, beam_width=4), str)


def test_custom_model_paths_agree(rng):
    labels = ["", " ", "a", "q", "b"]
    alphabet = fastctc.alphabet.Alphabet.build_alphabet(labels)

    class LenLM(_FailingLM):
        def score(self, prev_state, word, is_last_word=False):
            return -0.3 * len(word) - (0.7 if is_last_word else 0.0), (word,)

    lps = [random_log_probs(rng, 10, len(labels), scale=3.0) for _ in range(4)]
    out = {}
    for scoring in ("resume", "callback"):
        dec = fastctc.BeamSearchDecoderCTC(alphabet, LenLM(), lm_scoring=scoring)
        out[scoring] = _beams(dec, lps, beam_width=8)
    assert out["resume"] == out["callback"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 1.0, -1.0, 2.5, -3.0, float("-inf")]), min_size=1, max_size=80),
    st.integers(0, 79),
)
def test_kth_smallest_matches_partition(values, r):
    a = np.array(values, dtype=np.float64)
    r = r % a.size
    assert kth_smallest(a.copy(), a.size, r) == np.partition(a, r)[r]


def test_setting_a_parameter_drops_cached_scores(sim):
    """``lm.alpha = ...`` (what transformers and users write) takes effect on the cache path
    as reset_params does; reset_params with nothing to set keeps the cache."""
    labels, lps, kw = sim
    dec = _build(labels, kw)
    dec.decode(lps[0], beam_width=16)
    cached = dec.lm_tables.n_cached_scores
    dec.reset_params()
    dec.reset_params(alpha=None, beta=None)
    assert dec.lm_tables.n_cached_scores == cached
    dec.language_model.alpha = 1.7
    dec.language_model.beta = 0.3
    fresh = _build(labels, dict(kw, alpha=1.7, beta=0.3))
    assert _beams(dec, lps[:2], beam_width=16) == _beams(fresh, lps[:2], beam_width=16)
    with pytest.raises(ValueError, match="alpha must be finite"):
        dec.language_model.alpha = float("nan")
