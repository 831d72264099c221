"""Greedy decoding against a NumPy argmax-collapse reference."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc
from fastctc.kernels.greedy import greedy_batch
from tests import brute
from tests.conftest import random_log_probs
from tests.reference import greedy_ref


@settings(max_examples=50, deadline=None)
@given(
    N=st.integers(1, 4),
    T=st.integers(0, 25),
    V=st.integers(1, 6),
    blank_sel=st.integers(0, 5),
    seed=st.integers(0, 2**32 - 1),
    threads=st.integers(1, 3),
)
def test_batch_matches_reference(N, T, V, blank_sel, seed, threads):
    rng = np.random.default_rng(seed)
    blank = blank_sel % V
    # few distinct values so ties happen: argmax must take the first maximum, like NumPy
    lp = np.log(rng.integers(1, 4, size=(N, T, V)) / 4.0)
    lengths = rng.integers(0, T + 1, size=N)
    hyps = fastctc.greedy_decode_batch(lp, lengths, blank=blank, num_threads=threads)
    assert len(hyps) == N
    for n, h in enumerate(hyps):
        tokens, times, score = greedy_ref(lp[n, : lengths[n]], blank)
        assert h.tokens.tolist() == tokens
        assert h.timesteps.tolist() == times
        assert h.log_prob == pytest.approx(score, rel=1e-12, abs=1e-12)
        assert h.log_prob <= 0


def test_single_equals_batch_and_is_best_path(rng):
    for _ in range(5):
        lp = random_log_probs(rng, 5, 3)
        h = fastctc.greedy_decode(lp, blank=0)
        path, score = brute.best_path(lp)
        assert tuple(h.tokens.tolist()) == brute.collapse(path, 0)
        assert np.isclose(h.log_prob, score)
        hb = fastctc.greedy_decode_batch(lp[None])[0]
        assert h.tokens.tolist() == hb.tokens.tolist() and h.log_prob == hb.log_prob


def test_float32_input(rng):
    lp = random_log_probs(rng, 2, 30, 8, dtype=np.float32)
    hyps = fastctc.greedy_decode_batch(lp)
    for n in range(2):
        tokens, times, score = greedy_ref(lp[n].astype(np.float64))
        assert hyps[n].tokens.tolist() == tokens and hyps[n].timesteps.tolist() == times
        assert np.isclose(hyps[n].log_prob, score, rtol=1e-6)


def test_repeats_need_a_blank_between():
    lp = np.log(
        np.array(
            [
                [0.1, 0.8, 0.1],
                [0.1, 0.8, 0.1],
                [0.7, 0.2, 0.1],
                [0.1, 0.8, 0.1],
                [0.1, 0.1, 0.8],
            ]
        )
    )
    h = fastctc.greedy_decode(lp)
    assert h.tokens.tolist() == [1, 1, 2]
    assert h.timesteps.tolist() == [0, 3, 4]
    assert isinstance(h, fastctc.Hypothesis) and h._fields[:3] == (
        "tokens",
        "timesteps",
        "log_prob",
    )


def test_kernel_callable_from_user_jit_code(rng):
    @numba.njit
    def user_code(lp):
        N, T, _ = lp.shape
        tokens = np.zeros((N, T), np.int64)
        times = np.zeros((N, T), np.int64)
        counts = np.zeros(N, np.int64)
        scores = np.zeros(N)
        greedy_batch(lp, np.full(N, T, np.int64), 0, np.arange(N), tokens, times, counts, scores)
        return counts

    lp = random_log_probs(rng, 3, 12, 5)
    counts = user_code(lp)
    assert counts.tolist() == [len(greedy_ref(lp[n])[0]) for n in range(3)]
