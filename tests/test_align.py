"""Forced alignment: NumPy Viterbi, brute force over paths, batches, spans, errors.

torchaudio is not a test dependency (it needs its own torch build), so the references here
are a plain NumPy Viterbi and exhaustive enumeration of paths.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc
from tests.brute import collapse
from tests.reference_decode import viterbi_ref
from tests.simulate import encode_chars, simulate_char


def random_log_probs(rng, T, V, scale=2.0):
    x = rng.normal(size=(T, V)) * scale
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def min_frames(target):
    return len(target) + sum(a == b for a, b in zip(target[:-1], target[1:], strict=True))


@st.composite
def problems(draw, max_T=30, max_V=6):
    V = draw(st.integers(2, max_V))
    blank = draw(st.integers(0, V - 1))
    labels = [c for c in range(V) if c != blank]
    target = draw(st.lists(st.sampled_from(labels), max_size=min(8, max_T // 2)))
    T = draw(st.integers(max(1, min_frames(target)), max_T))
    seed = draw(st.integers(0, 2**32 - 1))
    rounded = draw(st.booleans())
    x = np.random.default_rng(seed).normal(size=(T, V)) * 3
    if rounded:
        x = np.round(x)  # exact ties between paths
    lp = x - np.log(np.exp(x).sum(1, keepdims=True))
    return lp, np.array(target, dtype=np.int64), blank


@settings(max_examples=50, deadline=None)
@given(problems())
def test_matches_numpy_viterbi(problem):
    lp, target, blank = problem
    path, frame_scores, total = viterbi_ref(lp, target, blank)
    got = fastctc.forced_align(lp, target, blank=blank)
    assert got.tokens.tolist() == path.tolist()
    np.testing.assert_allclose(got.scores, frame_scores, rtol=0, atol=0)
    assert got.scores.sum() == pytest.approx(total, rel=1e-12, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(problems(max_T=6, max_V=3))
def test_best_path_equals_brute_force(problem):
    lp, target, blank = problem
    T, V = lp.shape
    want = tuple(target.tolist())
    best = -math.inf
    for p in itertools.product(range(V), repeat=T):
        if collapse(p, blank) == want:
            best = max(best, float(sum(lp[t, c] for t, c in enumerate(p))))
    got = fastctc.forced_align(lp, target, blank=blank)
    assert collapse(got.tokens.tolist(), blank) == want
    assert got.scores.sum() == pytest.approx(best, rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(got.scores, lp[np.arange(T), got.tokens])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_batch_equals_loop_of_singles_any_threads(N, seed):
    rng = np.random.default_rng(seed)
    T, V, S = 20, 5, 6
    lp = np.stack([random_log_probs(rng, T, V) for _ in range(N)]).astype(np.float32)
    targets = rng.integers(1, V, size=(N, S))
    tlens = rng.integers(0, S + 1, size=N)
    ilens = np.array(
        [rng.integers(min_frames(list(targets[n, : tlens[n]])), T + 1) for n in range(N)]
    )
    one = fastctc.forced_align(lp, targets, ilens, tlens, num_threads=1)
    two = fastctc.forced_align(lp, targets, ilens, tlens, num_threads=2)
    np.testing.assert_array_equal(one.tokens, two.tokens)
    np.testing.assert_array_equal(one.scores, two.scores)
    for n in range(N):
        single = fastctc.forced_align(lp[n, : ilens[n]], targets[n, : tlens[n]])
        np.testing.assert_array_equal(one.tokens[n, : ilens[n]], single.tokens)
        np.testing.assert_array_equal(one.scores[n, : ilens[n]], single.scores)
        assert (one.tokens[n, ilens[n] :] == -1).all() and (one.scores[n, ilens[n] :] == 0).all()


def test_single_with_lengths():
    rng = np.random.default_rng(0)
    lp = random_log_probs(rng, 10, 4)
    a = fastctc.forced_align(lp, [1, 2, 0, 3], input_lengths=6, target_lengths=2, blank=3)
    path, scores, _ = viterbi_ref(lp[:6], [1, 2], blank=3)
    assert a.tokens.tolist() == path.tolist() and a.tokens.shape == (6,)


def test_merge_tokens_by_hand():
    tokens = [0, 2, 2, 0, 0, 2, 1, 1, 1, 0, -1, -1]
    scores = [-0.1, -0.2, -0.4, -0.1, -0.1, -0.3, -0.5, -0.6, -0.7, -0.1, 0.0, 0.0]
    spans = fastctc.merge_tokens(tokens, scores)
    assert [s[:3] for s in spans] == [(2, 1, 3), (2, 5, 6), (1, 6, 9)]
    np.testing.assert_allclose([s.score for s in spans], [-0.3, -0.3, -0.6])
    assert fastctc.merge_tokens([], []) == []


def test_simulated_utterance_spans_follow_transcript():
    sentence = "the quick brown fox"
    lp = simulate_char(sentence, 3)
    target = np.array(encode_chars(sentence))
    a = fastctc.forced_align(lp, target)
    spans = fastctc.merge_tokens(a.tokens, a.scores)
    assert [s.token for s in spans] == target.tolist()
    starts = [s.start_frame for s in spans]
    assert starts == sorted(starts) and all(s.end_frame > s.start_frame for s in spans)
    ref_path, _, _ = viterbi_ref(lp, target)
    assert a.tokens.tolist() == ref_path.tolist()


# ---- errors: one test per message


def test_error_too_short_names_utterance():
    lp = np.log(np.full((2, 4, 3), 1 / 3))
    with pytest.raises(
        ValueError,
        match=r"utterance 1 cannot be aligned: its 3 target tokens "
        r"need at least 5 frames .* but it has 4",
    ):
        fastctc.forced_align(lp, [[1, 2, 1], [1, 1, 1]])


def test_error_zero_probability_names_utterance():
    lp = np.log(np.full((2, 4, 3), 1 / 3))
    lp[1, :, 2] = -np.inf
    with pytest.raises(ValueError, match="utterance 1 cannot be aligned: every path"):
        fastctc.forced_align(lp, [[1, 2], [1, 2]])


def test_error_target_is_blank():
    with pytest.raises(ValueError, match=r"targets\[1\] == blank \(0\)"):
        fastctc.forced_align(np.zeros((4, 3)), [1, 0])


def test_error_target_out_of_range():
    with pytest.raises(ValueError, match=r"targets\[0\]\[0\] = 5 is outside \[0, 3\)"):
        fastctc.forced_align(np.zeros((1, 4, 3)), [[5]])


def test_error_target_shape():
    with pytest.raises(ValueError, match=r"targets must be 1-D \(S,\) for 2-D log_probs"):
        fastctc.forced_align(np.zeros((4, 3)), [[1]])
    with pytest.raises(ValueError, match=r"targets must be 2-D \(N, S\) with N = 2"):
        fastctc.forced_align(np.zeros((2, 4, 3)), [1])


def test_error_log_probs_ndim_and_dtype():
    with pytest.raises(ValueError, match=r"log_probs must be 2-D \(T, V\) or 3-D"):
        fastctc.forced_align(np.zeros(4), [1])
    with pytest.raises(TypeError, match="log_probs must be a floating-point array"):
        fastctc.forced_align(np.zeros((4, 3), dtype=int), [1])


def test_error_nan_in_used_column():
    lp = np.log(np.full((4, 3), 1 / 3))
    lp[2, 1] = np.nan
    with pytest.raises(
        ValueError,
        match=r"log_probs\[0, 2\] contains NaN; cannot align "
        r"utterance 0",
    ):
        fastctc.forced_align(lp, [1])


def test_error_merge_tokens_shapes():
    with pytest.raises(ValueError, match="tokens and scores must be 1-D of the same length"):
        fastctc.merge_tokens([0, 1], [0.0])
