"""Prefix beam search: brute force, the NumPy reference, batch/thread invariance, errors."""

from __future__ import annotations

import itertools
import math
import os

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc
from fastctc.kernels.prefix_beam import prefix_beam_one
from tests.brute import collapse, labelling_log_probs
from tests.reference_decode import prefix_beam_ref

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
heavy = pytest.mark.skipif(NO_JIT, reason="too slow with NUMBA_DISABLE_JIT=1")
INF = math.inf


def random_log_probs(rng, T, V, scale=2.0, dtype=np.float64):
    x = rng.normal(size=(T, V)) * scale
    return (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(dtype)


def peaky_log_probs(rng, T, V, top=0.96):
    """Every frame has one class of probability >= ``top``."""
    best = rng.integers(V, size=T)
    p = rng.random((T, V))
    p = p / p.sum(1, keepdims=True) * (1 - top)
    p[np.arange(T), best] += top
    return np.log(p)


def same(h, ref):
    tokens, times, score = ref
    return (
        tuple(h.tokens.tolist()) == tokens
        and tuple(h.timesteps.tolist()) == times
        and h.log_prob == pytest.approx(score, rel=1e-9, abs=1e-9)
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(2, 4), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_unpruned_equals_brute_force(T, V, blank, seed):
    rng = np.random.default_rng(seed)
    lp = random_log_probs(rng, T, V)
    blank %= V
    table = labelling_log_probs(lp, blank)
    got = fastctc.beam_search(
        lp,
        beam_width=V**T,
        blank=blank,
        top_paths=len(table),
        beam_prune_logp=-INF,
        token_min_logp=-INF,
    )
    assert len(got) == len(table)
    expected = sorted(table.values(), reverse=True)
    np.testing.assert_allclose([h.log_prob for h in got], expected, rtol=1e-9, atol=1e-12)
    for h in got:
        assert h.log_prob == pytest.approx(table[tuple(h.tokens.tolist())], rel=1e-9)
    assert len({tuple(h.tokens.tolist()) for h in got}) == len(got)
    # timesteps: run starts of the best path among those that collapse to the labelling
    best_paths = {}
    for path in itertools.product(range(V), repeat=T):
        score = float(sum(lp[t, c] for t, c in enumerate(path)))
        lab = collapse(path, blank)
        if lab not in best_paths or score > best_paths[lab][0]:
            best_paths[lab] = (score, path)
    for h in got:
        path = best_paths[tuple(h.tokens.tolist())][1]
        starts = [t for t, c in enumerate(path) if c != blank and (t == 0 or c != path[t - 1])]
        assert h.timesteps.tolist() == starts


def test_best_labelling_differs_from_best_path():
    # the best path is "blank blank" (0.36) but the labelling (1,) collects 0.64
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    best = fastctc.beam_search(lp, beam_width=4)[0]
    assert best.tokens.tolist() == [1]
    assert best.log_prob == pytest.approx(math.log(0.4 * 0.4 + 0.4 * 0.6 + 0.6 * 0.4))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 25),
    st.integers(2, 7),
    st.integers(1, 12),
    st.integers(1, 12),
    st.sampled_from([-1.0, -4.0, -INF]),
    st.sampled_from([-0.7, -3.0, -INF]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_pruned_matches_reference(T, V, K, P, prune, tmin, rounded, seed):
    rng = np.random.default_rng(seed)
    P = min(P, K)
    x = rng.normal(size=(T, V)) * 3
    if rounded:  # many exact ties: exercises the deterministic tie-breaking
        x = np.round(x)
    lp = x - np.log(np.exp(x).sum(1, keepdims=True))
    blank = int(rng.integers(V))
    ref = prefix_beam_ref(lp, K, blank, P, prune, tmin)
    got = fastctc.beam_search(
        lp, beam_width=K, blank=blank, top_paths=P, beam_prune_logp=prune, token_min_logp=tmin
    )
    assert len(got) == len(ref)
    for h, r in zip(got, ref, strict=True):
        assert same(h, r), (h, r)


def test_timesteps_are_forced_alignment_run_starts():
    rng = np.random.default_rng(2)
    lp = random_log_probs(rng, 60, 8)
    for h in fastctc.beam_search(lp, 16, top_paths=4, blank=2):
        a = fastctc.forced_align(lp, h.tokens, blank=2)
        spans = fastctc.merge_tokens(a.tokens, a.scores, blank=2)
        assert [s.token for s in spans] == h.tokens.tolist()
        assert [s.start_frame for s in spans] == h.timesteps.tolist()


def test_uniform_frames_ties_match_reference():
    lp = np.log(np.full((12, 4), 0.25))
    for K in (1, 3, 7):
        ref = prefix_beam_ref(lp, K, 0, K, -INF, -INF)
        got = fastctc.beam_search(lp, K, top_paths=K, beam_prune_logp=-INF, token_min_logp=-INF)
        assert len(got) == len(ref) and all(same(h, r) for h, r in zip(got, ref, strict=True))


@heavy
def test_long_unpruned_grows_tree_and_matches_reference():
    rng = np.random.default_rng(7)
    lp = random_log_probs(rng, 120, 12, scale=1.0)
    ref = prefix_beam_ref(lp, 24, 3, 5, -INF, -INF)
    got = fastctc.beam_search(
        lp, 24, blank=3, top_paths=5, beam_prune_logp=-INF, token_min_logp=-INF
    )
    assert len(got) == 5 and all(same(h, r) for h, r in zip(got, ref, strict=True))


@heavy
def test_large_vocabulary_matches_reference():
    rng = np.random.default_rng(11)
    T, V = 40, 400
    lp = np.full((T, V), -12.0)
    lp[:, 0] = np.log(0.7)
    hot = rng.integers(1, V, size=(T, 3))
    lp[np.arange(T)[:, None], hot] = np.log(rng.uniform(0.02, 0.2, size=(T, 3)))
    lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
    ref = prefix_beam_ref(lp, 16, 0, 4, -10.0, -5.0)
    got = fastctc.beam_search(lp, 16, top_paths=4)
    assert len(got) == 4 and all(same(h, r) for h, r in zip(got, ref, strict=True))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_beam_width_one_equals_greedy_on_peaky_input(T, V, seed):
    lp = peaky_log_probs(np.random.default_rng(seed), T, V)
    g = fastctc.greedy_decode(lp)
    h = fastctc.beam_search(lp, beam_width=1)[0]
    assert h.tokens.tolist() == g.tokens.tolist()
    assert h.timesteps.tolist() == g.timesteps.tolist()
    assert h.log_prob >= g.log_prob - 1e-12  # a prefix collects at least its best path


def test_frame_best_token_kept_when_all_below_token_min_logp():
    # no class reaches token_min_logp = -0.01, yet each frame's best token is still tried
    lp = np.log(np.array([[0.1, 0.6, 0.3], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]]))
    h = fastctc.beam_search(lp, beam_width=1, token_min_logp=-0.01)[0]
    assert h.tokens.tolist() == [1, 2]
    assert h.timesteps.tolist() == [0, 2]
    ref = prefix_beam_ref(lp, 1, 0, 1, -10.0, -0.01)[0]
    assert same(h, ref)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 20),
    st.integers(2, 6),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
)
def test_batch_equals_loop_of_singles_any_threads(N, T, V, K, seed):
    rng = np.random.default_rng(seed)
    lp = np.stack([random_log_probs(rng, T, V) for _ in range(N)]).astype(np.float32)
    lens = rng.integers(0, T + 1, size=N)
    P = min(3, K)
    one = fastctc.beam_search_batch(lp, lens, beam_width=K, top_paths=P, num_threads=1)
    two = fastctc.beam_search_batch(lp, lens, beam_width=K, top_paths=P, num_threads=2)
    for n in range(N):
        single = fastctc.beam_search(lp[n, : lens[n]], beam_width=K, top_paths=P)
        for a, b, c in zip(one[n], two[n], single, strict=True):
            assert a.tokens.tolist() == b.tokens.tolist() == c.tokens.tolist()
            assert a.timesteps.tolist() == b.timesteps.tolist() == c.timesteps.tolist()
            assert a.log_prob == b.log_prob == c.log_prob
        assert len(one[n]) == len(single)
        scores = [h.log_prob for h in one[n]]
        assert all(s <= 1e-6 for s in scores)
        assert scores == sorted(scores, reverse=True)


def test_empty_utterance_gives_empty_prefix_with_probability_one():
    lp = np.log(np.full((2, 3, 4), 0.25))
    out = fastctc.beam_search_batch(lp, lengths=[0, 3], beam_width=2, top_paths=2)
    assert len(out[0]) == 1 and out[0][0].tokens.size == 0 and out[0][0].log_prob == 0.0
    assert len(out[1]) == 2


def test_float32_close_to_float64():
    rng = np.random.default_rng(3)
    lp = random_log_probs(rng, 30, 6)
    a = fastctc.beam_search(lp, 8, top_paths=3)
    b = fastctc.beam_search(lp.astype(np.float32), 8, top_paths=3)
    assert [h.tokens.tolist() for h in a] == [h.tokens.tolist() for h in b]
    np.testing.assert_allclose([h.log_prob for h in a], [h.log_prob for h in b], rtol=1e-5)


def test_kernel_callable_from_user_njit_code():
    @numba.njit
    def top1(lp):
        T = lp.shape[0]
        tok = np.zeros((1, T), np.int64)
        tim = np.zeros((1, T), np.int64)
        lens = np.zeros(1, np.int64)
        sc = np.zeros(1, np.float64)
        count, status = prefix_beam_one(lp, T, 0, 4, 1, -INF, -INF, tok, tim, lens, sc)
        return tok[0, : lens[0]], sc[0], status

    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    tokens, score, status = top1(lp)
    assert status == -1 and tokens.tolist() == [1] and score == pytest.approx(math.log(0.64))


# ---- errors: one test per message


def test_error_ndim():
    with pytest.raises(ValueError, match=r"must be 3-D \(N, T, V\)"):
        fastctc.beam_search_batch(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"must be 2-D \(T, V\)"):
        fastctc.beam_search(np.zeros((1, 3, 2)))


def test_error_dtype():
    with pytest.raises(TypeError, match="log_probs must be a floating-point array"):
        fastctc.beam_search(np.zeros((3, 2), dtype=np.int64))


def test_error_blank_range():
    with pytest.raises(ValueError, match=r"blank must be in \[-2, 2\)"):
        fastctc.beam_search(np.zeros((3, 2)), blank=2)


def test_error_lengths():
    with pytest.raises(ValueError, match=r"lengths\[0\] = 4 exceeds T = 3"):
        fastctc.beam_search_batch(np.zeros((1, 3, 2)), lengths=[4])


def test_error_beam_width():
    with pytest.raises(ValueError, match="beam_width must be >= 1; got 0"):
        fastctc.beam_search(np.zeros((3, 2)), beam_width=0)
    with pytest.raises(TypeError, match="beam_width must be an integer"):
        fastctc.beam_search(np.zeros((3, 2)), beam_width=2.5)


def test_error_top_paths():
    with pytest.raises(ValueError, match=r"top_paths must be in \[1, beam_width\] = \[1, 2\]"):
        fastctc.beam_search(np.zeros((3, 2)), beam_width=2, top_paths=3)


def test_error_prune_positive_or_nan():
    with pytest.raises(ValueError, match="beam_prune_logp must be <= 0.0"):
        fastctc.beam_search(np.zeros((3, 2)), beam_prune_logp=1.0)
    with pytest.raises(ValueError, match="token_min_logp must not be NaN"):
        fastctc.beam_search(np.zeros((3, 2)), token_min_logp=float("nan"))
    with pytest.raises(TypeError, match="beam_prune_logp must be a real number"):
        fastctc.beam_search(np.zeros((3, 2)), beam_prune_logp="-5")


def test_error_nan_frame_named():
    lp = np.log(np.full((2, 4, 3), 1 / 3))
    lp[1, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"log_probs\[1, 2\] contains NaN or \+inf"):
        fastctc.beam_search_batch(lp, token_min_logp=-INF)
    lp[1, 2, 1] = np.nan  # also found when pruning is on
    with pytest.raises(ValueError, match=r"log_probs\[1, 2\] contains NaN"):
        fastctc.beam_search_batch(lp)


def test_error_zero_probability():
    lp = np.full((4, 3), -INF)
    with pytest.raises(
        ValueError, match="every prefix of utterance 0 has probability zero after frame 0"
    ):
        fastctc.beam_search(lp)


def test_error_no_classes():
    with pytest.raises(ValueError, match="at least one class"):
        fastctc.beam_search(np.zeros((3, 0)))


def test_capacity_retry_gives_the_same_result():
    from fastctc.kernels.prefix_beam import (
        NEED_ENTRIES,
        NEED_NODES,
        OK,
        _write_nbest,
        advance,
        new_search,
    )

    rng = np.random.default_rng(5)
    lp = random_log_probs(rng, 8, 40, scale=0.5)
    T = lp.shape[0]

    def run(node_cap, e_cap):
        out = (
            np.zeros((3, T), np.int64),
            np.zeros((3, T), np.int64),
            np.zeros(3, np.int64),
            np.zeros(3),
        )
        abort = np.zeros(1, np.int64)
        # one search that may not make room: it stops with NEED_* when a capacity is short
        search = new_search(lp.shape[1], 8, node_cap, e_cap)
        _, status, search = advance(lp, 0, T, 0, 0, -INF, -INF, search, abort, False)
        if status == OK:
            _write_nbest(search, 3, out[0], out[2], out[3])
        return status, out

    assert run(2, 8 * 40)[0] == NEED_NODES
    assert run(8 * T + 1, 8)[0] == NEED_ENTRIES
    status, (tok, tim, lens, sc) = run(8 * T + 1, 8 * 40)
    assert status == -1
    got = fastctc.beam_search(lp, 8, top_paths=3, beam_prune_logp=-INF, token_min_logp=-INF)
    ref = prefix_beam_ref(lp, 8, 0, 3, -INF, -INF)
    for j, (h, r) in enumerate(zip(got, ref, strict=True)):
        assert same(h, r)
        assert h.tokens.tolist() == tok[j, : lens[j]].tolist() and h.log_prob == sc[j]
