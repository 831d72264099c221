"""The LM search's lazily normalised input (fastctc.lm.frames) against pyctcdecode's matrix.

Every value the search can read must be the value of ``pyctcdecode_log_probs`` (the same NumPy
operations pyctcdecode 0.5.0 runs) to the bit, and the columns listed per frame must hold
every label the search would try: those reaching ``token_min_logp`` and the frame's best.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastctc.lm.decoder import pyctcdecode_log_probs
from fastctc.lm.frames import LOG_MIN_TOKEN_P, prepare, row_max, row_sum

THRESHOLDS = [-5.0, -1e-6, 0.0, 1.0, -20.0, LOG_MIN_TOKEN_P, -np.inf, -40.0]


def _log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _matrices():
    rng = np.random.default_rng(7)
    out = {}
    for dt in (np.float32, np.float64):
        out[f"raw {dt.__name__}"] = rng.standard_normal((40, 30)).astype(dt) * 3
        out[f"peaked {dt.__name__}"] = rng.standard_normal((40, 30)).astype(dt) * 40
        out[f"log-probs {dt.__name__}"] = _log_softmax(rng.standard_normal((40, 30)) * 5).astype(dt)
        p = rng.dirichlet(np.full(30, 0.05), size=40).astype(dt)
        out[f"probabilities {dt.__name__}"] = p
        big = np.log(np.maximum(rng.dirichlet(np.full(6625, 0.01), size=12), 1e-12))
        out[f"large C {dt.__name__}"] = big.astype(dt)
    x = rng.standard_normal((20, 12)).astype(np.float32)
    x[3] = -np.inf  # a row of -inf: NaN in pyctcdecode's matrix
    x[5, ::2] = -np.inf
    x[7] = -100.0  # padding
    x[9, 4] = x[9].max() + 1
    x[9, 8] = x[9, 4]  # a tie for the best
    x[11, 2] = x[11].max() + 1
    x[11, 3] = np.nextafter(x[11, 2], np.float32(-np.inf))  # one step below the best
    out["edge rows"] = x
    flat = np.zeros((10, 50), dtype=np.float32)  # uniform frames: every label ties
    out["uniform"] = flat
    return out


MATRICES = _matrices()


def _check(x, tml):
    held = []
    x = np.ascontiguousarray(x)
    frames, lps = prepare(x, np.amax(x, axis=1), tml, held)
    with np.errstate(invalid="ignore"):
        want = pyctcdecode_log_probs(x)
    T, C = x.shape
    rows, cols = np.divmod(np.arange(T * C), C)
    got = lps.at(rows, cols).reshape(T, C)
    np.testing.assert_array_equal(got, want.astype(np.float64), strict=True)
    # the kernel's own view of the frames reads the same values
    assert frames.x.shape == (T, C)
    for t in range(T):
        listed = frames.cols[frames.off[t] : frames.off[t + 1]]
        assert np.all(np.diff(listed) > 0), "columns listed in increasing order"
        need = set(np.flatnonzero(want[t].astype(np.float64) >= tml).tolist())
        need.add(int(np.argmax(want[t])))
        missing = need - set(listed.tolist())
        assert not missing, f"row {t}: columns {sorted(missing)} not listed (tml {tml})"


@pytest.mark.parametrize("name", sorted(MATRICES))
@pytest.mark.parametrize("tml", THRESHOLDS)
def test_values_and_candidates_match_pyctcdecode(name, tml):
    _check(MATRICES[name], tml)


@settings(max_examples=60, deadline=None)
@given(
    T=st.integers(1, 12),
    C=st.integers(1, 300),
    scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
    form=st.sampled_from(["raw", "log-probs", "probabilities"]),
    n_inf=st.integers(0, 20),
    tml=st.sampled_from(THRESHOLDS),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_matrix(T, C, scale, dtype, form, n_inf, tml, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, C)) * scale
    if form == "log-probs":
        x = _log_softmax(x)
    elif form == "probabilities":
        x = np.exp(_log_softmax(x))
    x = x.astype(dtype)
    if form != "probabilities":
        x.flat[rng.integers(0, T * C, size=n_inf)] = -np.inf
    _check(x, tml)


def test_long_peaked_utterance():
    """20,000 frames of confident posteriors over 1,000 labels."""
    rng = np.random.default_rng(3)
    T, C = 20_000, 1000
    x = np.full((T, C), -30.0, dtype=np.float32) + rng.standard_normal((T, C)).astype(np.float32)
    x[np.arange(T), rng.integers(0, C, T)] = -1e-4
    held = []
    frames, lps = prepare(x, np.amax(x, axis=1), -5.0, held)
    want = pyctcdecode_log_probs(x)
    rows, cols = np.divmod(np.arange(T * C), C)
    np.testing.assert_array_equal(lps.at(rows, cols).reshape(T, C), want, strict=True)
    assert frames.off[-1] <= 2 * T  # about one listed column per frame


# ----------------------------------------------------------- row maxima and sums (kernels)
SPECIALS = np.array([0.0, -0.0, -1.0, 2.5, -np.inf, np.inf, np.nan, 1e-30, 3e38, 7e-8])


def _bits(a):
    return a.view(np.uint8).tolist()


@settings(max_examples=150, deadline=None)
@given(
    T=st.integers(1, 30),
    C=st.integers(1, 300),
    dtype=st.sampled_from([np.float32, np.float64]),
    form=st.sampled_from(["normal", "wide", "specials", "zeros"]),
    seed=st.integers(0, 2**31),
)
def test_row_max_and_row_sum_are_numpys(T, C, dtype, form, seed):
    """``row_max`` / ``row_sum`` (a kernel for rows up to PAIRWISE_BLOCK values) give
    ``np.amax`` / ``np.sum`` along the rows bit for bit: NaN rows, infinities, zeros of both
    signs, and sums whose rounding depends on NumPy's pairwise order (a NaN sum is NaN)."""
    rng = np.random.default_rng(seed)
    if form == "normal":
        x = rng.standard_normal((T, C))
    elif form == "wide":
        x = np.exp(rng.normal(0, 8, (T, C)))  # sums whose rounding depends on the order
    elif form == "specials":
        x = rng.choice(SPECIALS, (T, C), p=[0.2, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05])
    else:
        x = rng.choice(np.array([0.0, -0.0, -3.0]), (T, C))
    x = x.astype(dtype)
    assert row_max(x).dtype == x.dtype
    assert _bits(row_max(x)) == _bits(np.amax(x, axis=1))
    with np.errstate(invalid="ignore", over="ignore"):
        got, want = row_sum(x), np.sum(x, axis=1)
    nan = np.isnan(want)  # inf - inf: a NaN either way, its sign bit set by operand order
    assert np.isnan(got[nan]).all()
    assert _bits(got[~nan]) == _bits(want[~nan])


def test_row_sum_follows_numpys_order_where_it_matters():
    """Rows whose float32 sum differs between NumPy's pairwise order and a plain loop: the
    kernel takes NumPy's."""
    rng = np.random.default_rng(3)
    x = np.exp(rng.normal(0, 6, (2000, 100))).astype(np.float32)
    plain = np.array([np.float32(sum(row.tolist(), np.float32(0))) for row in x[:200]])
    numpy_sum = np.sum(x[:200], axis=1)
    assert (plain != numpy_sum).any()  # the order matters on these rows
    assert _bits(row_sum(x)) == _bits(np.sum(x, axis=1))
