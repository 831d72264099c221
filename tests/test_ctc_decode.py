"""Keras-compatible ctc_decode against hand-computed values and the documented Keras semantics.

Keras (``keras.backend.ctc_decode``): softmax input (N, T, C), blank = C - 1, per-sample
``input_length``; ``decoded`` is a list of ``top_paths`` dense int arrays (N, max_len) padded
with -1, max_len being the longest decoded sequence of that rank in the batch; greedy mode
returns the negated best-path log-probability sum (>= 0), which fastctc returns un-negated.
TensorFlow is not a test dependency, so the expected values are computed here by hand and
by the NumPy reference decoder.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc
from tests.brute import labelling_log_probs
from tests.reference_decode import prefix_beam_ref


def softmax_batch(rng, N, T, C):
    x = rng.normal(size=(N, T, C)) * 2
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def test_greedy_by_hand():
    # blank = 2; sample 0: 0 0 b 1 -> [0, 1]; sample 1 (3 valid frames): 1 b b -> [1]
    y = np.array(
        [
            [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]],
            [[0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.3, 0.1, 0.6], [0.9, 0.05, 0.05]],
        ]
    )
    decoded, log_probs = fastctc.ctc_decode(y, np.array([4, 3]), greedy=True)
    assert len(decoded) == 1
    assert decoded[0].tolist() == [[0, 1], [1, -1]]
    assert decoded[0].dtype == np.int64
    best_path = [math.log(0.7 * 0.6 * 0.8 * 0.5), math.log(0.6 * 0.6 * 0.6)]
    np.testing.assert_allclose(log_probs[:, 0], best_path, rtol=1e-6)
    # Keras' greedy log_prob is the negated sum of the per-frame max log-probabilities
    keras_greedy = [
        -sum(math.log(p) for p in (0.7, 0.6, 0.8, 0.5)),
        -sum(math.log(p) for p in (0.6, 0.6, 0.6)),
    ]
    np.testing.assert_allclose(-log_probs[:, 0], keras_greedy, rtol=1e-6)
    assert (log_probs <= 0).all()


def test_all_blank_gives_zero_width_array():
    y = np.zeros((2, 3, 4))
    y[..., 3] = 1.0
    decoded, log_probs = fastctc.ctc_decode(y, [3, 2])
    assert decoded[0].shape == (2, 0)
    np.testing.assert_array_equal(log_probs, [[0.0], [0.0]])
    decoded, log_probs = fastctc.ctc_decode(y, [3, 2], greedy=False, beam_width=3, top_paths=2)
    assert decoded[0].shape == (2, 0) and log_probs[:, 0].tolist() == [0.0, 0.0]
    # the only prefix with non-zero probability is the empty one: rank 2 is missing
    assert (decoded[1] == -1).all() and np.isneginf(log_probs[:, 1]).all()


def test_beam_by_hand():
    # two frames, blank = 1: P([0]) = .4*.4 + .4*.6 + .6*.4 = .64, P([]) = .36
    y = np.array([[[0.4, 0.6], [0.4, 0.6]]])
    decoded, log_probs = fastctc.ctc_decode(y, [2], greedy=False, beam_width=2, top_paths=2)
    assert decoded[0].tolist() == [[0]]
    assert decoded[1].shape == (1, 0)
    np.testing.assert_allclose(np.exp(log_probs), [[0.64, 0.36]])
    # greedy picks the blank path: log(.36) for the empty result
    decoded, log_probs = fastctc.ctc_decode(y, [2])
    assert decoded[0].shape == (1, 0)
    np.testing.assert_allclose(np.exp(log_probs), [[0.36]])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(2, 3), st.integers(0, 2**32 - 1))
def test_beam_exact_on_tiny_inputs(N, T, C, seed):
    rng = np.random.default_rng(seed)
    y = softmax_batch(rng, N, T, C)
    lens = rng.integers(0, T + 1, size=N)
    P = 3
    decoded, log_probs = fastctc.ctc_decode(y, lens, greedy=False, beam_width=C**T + 1, top_paths=P)
    assert len(decoded) == P and log_probs.shape == (N, P)
    for n in range(N):
        table = labelling_log_probs(np.log(y[n, : lens[n]]), C - 1) if lens[n] else {(): 0.0}
        want = sorted(table.items(), key=lambda kv: -kv[1])[:P]
        for j in range(P):
            if j < len(want):
                row = decoded[j][n]
                lab = tuple(row[row >= 0].tolist())
                assert log_probs[n, j] == pytest.approx(want[j][1], rel=1e-9, abs=1e-12)
                assert table[lab] == pytest.approx(log_probs[n, j], rel=1e-9, abs=1e-12)
                assert (row[len(lab) :] == -1).all()
            else:
                assert np.isneginf(log_probs[n, j]) and (decoded[j][n] == -1).all()
    for j in range(P):  # max_len is the longest sequence of that rank
        longest = max(int((decoded[j][n] >= 0).sum()) for n in range(N))
        assert decoded[j].shape == (N, longest)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(2, 5),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
)
def test_beam_matches_reference(N, T, C, K, seed):
    rng = np.random.default_rng(seed)
    y = softmax_batch(rng, N, T, C)
    lens = rng.integers(1, T + 1, size=N)
    decoded, log_probs = fastctc.ctc_decode(
        y, lens[:, None], greedy=False, beam_width=K, top_paths=K
    )
    for n in range(N):
        ref = prefix_beam_ref(np.log(y[n, : lens[n]]), K, C - 1, K, -math.inf, -math.inf)
        for j, (tokens, _times, score) in enumerate(ref):
            row = decoded[j][n]
            assert tuple(row[row >= 0].tolist()) == tokens
            assert log_probs[n, j] == pytest.approx(score, rel=1e-9, abs=1e-12)
        scores = log_probs[n].tolist()
        assert scores == sorted(scores, reverse=True)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 15), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_greedy_matches_numpy(N, T, C, seed):
    rng = np.random.default_rng(seed)
    y = softmax_batch(rng, N, T, C)
    lens = rng.integers(0, T + 1, size=N)
    decoded, log_probs = fastctc.ctc_decode(y, lens)
    for n in range(N):
        best = y[n, : lens[n]].argmax(-1)
        keep = np.ones(best.size, bool)
        keep[1:] = best[1:] != best[:-1]
        labels = [int(c) for c in best[keep] if c != C - 1]
        row = decoded[0][n]
        assert row[row >= 0].tolist() == labels
        assert log_probs[n, 0] == pytest.approx(np.log(y[n, : lens[n]].max(-1)).sum())


def test_merge_repeated_like_keras_beam_output():
    # blank = 2; frames "0 b 0" dominate: the prefix is [0, 0]
    y = np.array([[[0.9, 0.05, 0.05], [0.05, 0.05, 0.9], [0.9, 0.05, 0.05]]])
    decoded, lp_plain = fastctc.ctc_decode(y, [3], greedy=False, beam_width=4)
    assert decoded[0].tolist() == [[0, 0]]
    decoded, lp_merged = fastctc.ctc_decode(y, [3], greedy=False, beam_width=4, merge_repeated=True)
    assert decoded[0].tolist() == [[0]]
    assert lp_merged.tolist() == lp_plain.tolist()
    # greedy merges by the CTC rule only: "0 b 0" stays [0, 0], as in Keras
    decoded, _ = fastctc.ctc_decode(y, [3], merge_repeated=True)
    assert decoded[0].tolist() == [[0, 0]]


def _one_hot_path(path, C, p=0.94):
    y = np.full((1, len(path), C), (1 - p) / (C - 1))
    y[0, np.arange(len(path)), path] = p
    return y


def test_pruning_thresholds_pass_through():
    rng = np.random.default_rng(4)
    y = softmax_batch(rng, 2, 15, 6)
    decoded, log_probs = fastctc.ctc_decode(
        y,
        [15, 11],
        greedy=False,
        beam_width=3,
        top_paths=2,
        beam_prune_logp=-2.0,
        token_min_logp=-1.5,
    )
    for n, L in enumerate((15, 11)):
        ref = prefix_beam_ref(np.log(y[n, :L]), 3, 5, 2, -2.0, -1.5)
        for j, (tokens, _times, score) in enumerate(ref):
            row = decoded[j][n]
            assert tuple(row[row >= 0].tolist()) == tokens
            assert log_probs[n, j] == pytest.approx(score, rel=1e-9)


def test_tensorflow_documented_examples():
    # TensorFlow's docs: with '*' the blank, the frame sequence "A B B * B * B" decodes to
    # "A B B B" greedily (merge_repeated=True), and the v1 beam decoder used by Keras returns
    # "A B" (its merge_repeated=True also merges the emitted labels).
    A, B, blank = 0, 1, 2
    y = _one_hot_path([A, B, B, blank, B, blank, B], C=3)
    decoded, _ = fastctc.ctc_decode(y, [7])
    assert decoded[0].tolist() == [[A, B, B, B]]
    decoded, _ = fastctc.ctc_decode(y, [7], greedy=False, beam_width=8)
    assert decoded[0].tolist() == [[A, B, B, B]]
    decoded, _ = fastctc.ctc_decode(y, [7], greedy=False, beam_width=8, merge_repeated=True)
    assert decoded[0].tolist() == [[A, B]]


# ---- errors: one test per message


def test_error_negative_probabilities():
    with pytest.raises(ValueError, match="y_pred must hold probabilities"):
        fastctc.ctc_decode(np.full((1, 2, 3), -1.0), [2])


def test_error_ndim():
    with pytest.raises(ValueError, match=r"y_pred must be 3-D \(N, T, C\)"):
        fastctc.ctc_decode(np.ones((2, 3)), [2])


def test_error_input_length():
    with pytest.raises(ValueError, match=r"input_length\[0\] = 5 exceeds T = 2"):
        fastctc.ctc_decode(np.ones((1, 2, 3)) / 3, [5])
    with pytest.raises(ValueError, match=r"input_length must have shape \(1,\)"):
        fastctc.ctc_decode(np.ones((1, 2, 3)) / 3, [2, 2])


def test_error_top_paths():
    with pytest.raises(ValueError, match=r"top_paths must be in \[1, beam_width\]"):
        fastctc.ctc_decode(np.ones((1, 2, 3)) / 3, [2], greedy=False, beam_width=2, top_paths=3)


def test_error_greedy_flag():
    with pytest.raises(TypeError, match="greedy must be a bool"):
        fastctc.ctc_decode(np.ones((1, 2, 3)) / 3, [2], greedy="no")
    with pytest.raises(TypeError, match="merge_repeated must be a bool"):
        fastctc.ctc_decode(np.ones((1, 2, 3)) / 3, [2], merge_repeated=1)
