"""Hostile inputs to the core API: huge utterances, odd dtypes, overflowing losses, empty
batches, out-of-range arguments, and Ctrl-C during a long decode.

Each test pins a fix: it fails on the code before the fix and passes after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastctc.kernels.align import viterbi_one
from tests.conftest import ROOT, random_log_probs

JIT_OFF = os.environ.get("NUMBA_DISABLE_JIT") == "1"


def _run_python(code: str, timeout: float) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the repository importable."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


# --- 1. forced alignment (and so beam-search timesteps) without a T x S table ---------------


def viterbi_table_ref(lp: np.ndarray, target: np.ndarray, blank: int) -> tuple[int, np.ndarray]:
    """The textbook Viterbi with a full back-pointer table and the kernel's tie rules."""
    T = lp.shape[0]
    S = target.size
    n = 2 * S + 1
    lab = np.array([blank if s % 2 == 0 else target[s // 2] for s in range(n)], dtype=np.int64)
    for t in range(T):
        if np.isnan(lp[t, lab]).any():
            return t, np.zeros(0, np.int64)
    if T == 0:
        return (-1 if S == 0 else -2), np.zeros(0, np.int64)
    back = np.zeros((T, n), np.int64)
    prev = np.full(n, -np.inf)
    prev[0] = lp[0, blank]
    if S > 0:
        prev[1] = lp[0, lab[1]]
    for t in range(1, T):
        cur = np.full(n, -np.inf)
        for s in range(n):
            best, off = prev[s], 0
            if s > 0 and prev[s - 1] > best:
                best, off = prev[s - 1], 1
            if s % 2 == 1 and s >= 3 and lab[s] != lab[s - 2] and prev[s - 2] > best:
                best, off = prev[s - 2], 2
            cur[s] = best + lp[t, lab[s]]
            back[t, s] = off
        prev = cur
    s = n - 1
    if S > 0 and prev[s - 1] > prev[s]:
        s -= 1
    if prev[s] == -np.inf:
        return -2, np.zeros(0, np.int64)
    path = np.empty(T, np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = lab[s]
        s -= back[t, s]
    return -1, path


@st.composite
def _alignment_case(draw):
    V = draw(st.integers(2, 4))
    T = draw(st.integers(0, 24))
    S = draw(st.integers(0, 10))
    target = np.array(draw(st.lists(st.integers(1, V - 1), min_size=S, max_size=S)), np.int64)
    # coarse values make ties common; -inf and NaN entries test the edge paths
    values = st.sampled_from([0.0, -0.5, -1.0, -1.0, -2.0, -np.inf, np.nan])
    weights = draw(st.sampled_from(["coarse", "random"]))
    if weights == "coarse":
        lp = np.array(draw(st.lists(values, min_size=T * V, max_size=T * V)), np.float64)
        lp = lp.reshape(T, V)
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        lp = random_log_probs(np.random.default_rng(seed), T, V)
    return lp, target


@settings(max_examples=300, deadline=None)
@given(_alignment_case())
def test_viterbi_matches_full_table(case):
    lp, target = case
    T = lp.shape[0]
    path = np.full(T, -7, np.int64)
    scores = np.zeros(T)
    status = viterbi_one(lp, T, target, 0, path, scores)
    ref_status, ref_path = viterbi_table_ref(lp, target, 0)
    assert status == ref_status
    if status == -1:
        np.testing.assert_array_equal(path, ref_path)
        np.testing.assert_array_equal(scores, lp[np.arange(T), ref_path])


def test_viterbi_long_utterance_matches_full_table():
    # long enough for many checkpoint blocks and a band that moves across the trellis
    rng = np.random.default_rng(5)
    T = 60 if JIT_OFF else 400
    lp = random_log_probs(rng, T, 5)
    for S in (1, T // 4, T // 2, T - 10):
        target = rng.integers(1, 5, S)
        target = target[: max(0, min(S, T - int(np.count_nonzero(target[1:] == target[:-1]))))]
        path = np.empty(T, np.int64)
        status = viterbi_one(lp, T, target, 0, path, np.empty(T))
        ref_status, ref_path = viterbi_table_ref(lp, target, 0)
        assert status == ref_status == -1
        np.testing.assert_array_equal(path, ref_path)


_MEMORY_SCRIPT = """
import resource, time
import numpy as np
import fastctc
rng = np.random.default_rng(0)
lp = fastctc.log_softmax(rng.standard_normal(({T}, 29)).astype(np.float32))
fastctc.beam_search(lp[:50], beam_width=16)
t0 = time.perf_counter()
h = fastctc.beam_search(lp, beam_width=16)[0]
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
assert h.timesteps.size == h.tokens.size and np.all(np.diff(h.timesteps) > 0)
print(rss, dt, h.tokens.size)
"""


@pytest.mark.slow
@pytest.mark.skipif(JIT_OFF, reason="100k frames need the compiled kernels")
def test_beam_search_100k_frames_bounded_memory():
    # the full back-pointer table took 17 GB and 100 s here
    out = _run_python(_MEMORY_SCRIPT.format(T=100_000), timeout=300)
    assert out.returncode == 0, out.stderr
    rss, seconds, n_tokens = out.stdout.split()
    assert int(rss) < 1.5e9, f"peak RSS {int(rss) / 1e9:.2f} GB"
    assert int(n_tokens) > 50_000
