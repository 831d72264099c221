"""GPU kernels (fastctc.cuda) against NumPy references, brute force and the CPU kernels.

Without a GPU these tests run under numba's CUDA simulator: unless ``NUMBA_ENABLE_CUDASIM``
is already set, this module sets it to 1 before :mod:`numba.cuda` is first imported. On a
machine with a GPU, ``NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/test_cuda.py`` runs the
same tests on the device. The simulator runs every GPU thread as a Python thread: shapes are
tiny and blocks have 8 threads, so that several threads share one block's work.
"""

from __future__ import annotations

import itertools
import math
import os
import sys

if "numba.cuda" not in sys.modules and "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numba.core.config

    numba.core.config.reload_config()  # numba read its settings when it was imported

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

import fastctc
import fastctc.cuda as fc
from tests import brute
from tests.reference_decode import run_starts, viterbi_ref

SIM = bool(cuda.config.ENABLE_CUDASIM)
if not fc.is_available():  # pragma: no cover - numba.cuda imported earlier without a GPU
    raise RuntimeError(
        "fastctc.cuda tests need a GPU or numba's simulator; numba.cuda was imported before "
        "this module could enable it. Run them with NUMBA_ENABLE_CUDASIM=1."
    )
TPB = 8 if SIM else None

# ---------------------------------------------------------------------------------------------
# NumPy float64 references (textbook alpha/beta; prefix beam search)
# ---------------------------------------------------------------------------------------------


def _lse(values) -> float:
    vals = [float(x) for x in values if x != -math.inf]
    if not vals:
        return -math.inf
    m = max(vals)
    return m + math.log(sum(math.exp(x - m) for x in vals))


def ctc_ref(lp: np.ndarray, target, blank: int):
    """(nll, d nll / d lp) for one sequence; ``lp`` is (T, V), float64 textbook recursions."""
    lp = np.asarray(lp, dtype=np.float64)
    T, V = lp.shape
    ext = [blank]
    for c in target:
        ext += [int(c), blank]
    L = len(ext)
    grad = np.zeros((T, V))
    if T == 0:
        return (0.0 if len(target) == 0 else math.inf), grad
    alpha = np.full((T, L), -math.inf)
    alpha[0, 0] = lp[0, ext[0]]
    if L > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(L):
            terms = [alpha[t - 1, s]]
            if s >= 1:
                terms.append(alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(alpha[t - 1, s - 2])
            alpha[t, s] = _lse(terms) + lp[t, ext[s]]
    log_p = _lse([alpha[T - 1, L - 1], alpha[T - 1, L - 2] if L > 1 else -math.inf])
    if log_p == -math.inf:
        return math.inf, np.full((T, V), np.nan)
    beta = np.full((T, L), -math.inf)  # excludes the emission at its own frame
    beta[T - 1, L - 1] = 0.0
    if L > 1:
        beta[T - 1, L - 2] = 0.0
    for t in range(T - 2, -1, -1):
        for s in range(L):
            terms = [beta[t + 1, s] + lp[t + 1, ext[s]]]
            if s + 1 < L:
                terms.append(beta[t + 1, s + 1] + lp[t + 1, ext[s + 1]])
            if s + 2 < L and ext[s] != blank and ext[s + 2] != ext[s]:
                terms.append(beta[t + 1, s + 2] + lp[t + 1, ext[s + 2]])
            beta[t, s] = _lse(terms)
    for t in range(T):
        for s in range(L):
            grad[t, ext[s]] -= math.exp(alpha[t, s] + beta[t, s] - log_p)
    return -log_p, grad


def batch_ref(lp, targets, il, tl, blank, reduction, zero_infinity, wrt_logits):
    """Reduced loss and its gradient for a (T, N, V) batch, from :func:`ctc_ref`."""
    T, N, V = lp.shape
    losses = np.zeros(N)
    grad = np.zeros_like(lp, dtype=np.float64)
    for n in range(N):
        nll, g = ctc_ref(lp[: il[n], n], targets[n, : tl[n]], blank)
        if wrt_logits:
            g = g + np.exp(lp[: il[n], n])
        if nll == math.inf and zero_infinity:
            nll, g = 0.0, np.zeros_like(g)
        scale = 1.0 / (max(tl[n], 1) * N) if reduction == "mean" else 1.0
        losses[n] = nll
        grad[: il[n], n] = g * scale
    if reduction == "none":
        return losses, grad
    if reduction == "sum":
        return losses.sum(), grad
    return np.mean(losses / np.maximum(tl, 1)), grad


def viterbi_starts_ref(lp, tokens, blank):
    """First frame of each token's run on the most probable alignment of ``tokens``."""
    path, _, _ = viterbi_ref(lp, tokens, blank)
    return run_starts(path, blank)


def prefix_beam_ref(lp, beam_width, blank, token_min_logp, beam_prune_logp, top_paths=1):
    """Prefix beam search on tuples, following the rules of ``fastctc.beam_search_batch``.

    Returns ``[(prefix, run starts of its Viterbi alignment, log-probability), ...]``, best
    first.
    """
    T, V = lp.shape
    order = [()]  # the beam, in entry order
    probs = {(): (0.0, -math.inf)}  # prefix -> (ending in blank, ending in its last token)
    for t in range(T):
        row = [float(x) for x in lp[t]]
        tokens = [c for c in range(V) if c != blank and row[c] >= token_min_logp]
        if not tokens and row[blank] < token_min_logp:
            c = int(np.argmax(lp[t]))
            if c != blank and row[c] > -math.inf:
                tokens = [c]
        members = set(order)
        stay = {}
        for pre in order:
            pb, pnb = probs[pre]
            stay[pre] = [_lse([pb, pnb]) + row[blank], pnb + row[pre[-1]] if pre else -math.inf]
        for pre in order:  # extensions that land on a prefix of the beam: any token
            if pre and pre[:-1] in members:
                pb, pnb = probs[pre[:-1]]
                c = pre[-1]
                base = pb if pre[:-1][-1:] == (c,) else _lse([pb, pnb])
                stay[pre][1] = _lse([stay[pre][1], base + row[c]])
        entries = [(_lse(stay[pre]), pre, tuple(stay[pre])) for pre in order]
        for pre in order:
            pb, pnb = probs[pre]
            for c in tokens:
                if pre + (c,) in members:
                    continue
                base = pb if pre and pre[-1] == c else _lse([pb, pnb])
                entries.append((base + row[c], pre + (c,), (-math.inf, base + row[c])))
        best = max(e[0] for e in entries)
        if best == -math.inf:
            raise ValueError("dead beam")
        alive = [
            i for i, e in enumerate(entries) if e[0] > -math.inf and e[0] >= best + beam_prune_logp
        ]
        alive = sorted(sorted(alive, key=lambda i: (-entries[i][0], i))[:beam_width])
        order = [entries[i][1] for i in alive]
        probs = {entries[i][1]: entries[i][2] for i in alive}
    ranked = sorted(range(len(order)), key=lambda i: (-_lse(probs[order[i]]), i))
    return [
        (order[i], viterbi_starts_ref(lp, order[i], blank) if T else (), _lse(probs[order[i]]))
        for i in ranked[:top_paths]
    ]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _batch(rng, T, N, V, S, dtype=np.float64, blank=0):
    lp = _log_softmax(rng.normal(size=(T, N, V)) * 2).astype(dtype)
    labels = [c for c in range(V) if c != blank]
    targets = rng.choice(labels, size=(N, S))
    il = rng.integers(0, T + 1, size=N)
    il[0] = T
    tl = rng.integers(0, S + 1, size=N)
    tl[0] = S
    return lp, targets, il, tl


def _host(x):
    return x.copy_to_host()


# ---------------------------------------------------------------------------------------------
# the references themselves
# ---------------------------------------------------------------------------------------------


def test_reference_matches_brute_force():
    rng = np.random.default_rng(0)
    lp = _log_softmax(rng.normal(size=(5, 3)))
    for target in [(), (1,), (1, 1), (2, 1, 2)]:
        nll, _ = ctc_ref(lp, target, 0)
        assert nll == pytest.approx(brute.loss(lp, target, 0), rel=1e-12)
    # the reference gradient matches central differences
    target = (1, 2)
    _, g = ctc_ref(lp, target, 0)
    eps = 1e-6
    for t, c in [(0, 0), (2, 1), (4, 2)]:
        up, dn = lp.copy(), lp.copy()
        up[t, c] += eps
        dn[t, c] -= eps
        fd = (ctc_ref(up, target, 0)[0] - ctc_ref(dn, target, 0)[0]) / (2 * eps)
        assert g[t, c] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_viterbi_reference_matches_brute_force():
    rng = np.random.default_rng(11)
    for target in [(1,), (1, 1), (2, 1, 2)]:
        lp = _log_softmax(rng.normal(size=(6, 3)) * 2)
        paths = [p for p in itertools.product(range(3), repeat=6) if brute.collapse(p, 0) == target]
        best = max(paths, key=lambda p: sum(lp[t, c] for t, c in enumerate(p)))
        starts = tuple(t for t, c in enumerate(best) if c != 0 and (t == 0 or c != best[t - 1]))
        assert viterbi_starts_ref(lp, target, 0) == starts


def test_beam_reference_unpruned_is_exact():
    rng = np.random.default_rng(1)
    lp = _log_softmax(rng.normal(size=(4, 3)) * 2)
    table = brute.labelling_log_probs(lp, 0)
    ranked = sorted(table, key=lambda lab: -table[lab])
    got = prefix_beam_ref(lp, 10**6, 0, -math.inf, -math.inf, top_paths=len(table))
    assert [g[0] for g in got] == ranked
    for prefix, _, score in got:
        assert score == pytest.approx(table[prefix], rel=1e-12)


# ---------------------------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------------------------


def test_is_available_is_a_bool():
    assert fc.is_available() is True


@pytest.mark.parametrize(
    "reduction, layout, grad_wrt",
    [
        ("mean", "padded", "logits"),
        ("sum", "concat", "log_probs"),
        ("none", "padded", "log_probs"),
        ("none", "concat", "logits"),
    ],
)
def test_loss_and_grad_match_reference(reduction, layout, grad_wrt):
    rng = np.random.default_rng(hash((reduction, layout, grad_wrt)) % 2**32)
    lp, targets, il, tl = _batch(rng, T=7, N=3, V=5, S=3)
    tg = targets if layout == "padded" else np.concatenate([targets[n, : tl[n]] for n in range(3)])
    loss, grad = fc.ctc_loss(
        cuda.to_device(lp),
        tg,
        il,
        tl,
        reduction=reduction,
        return_grad=True,
        grad_wrt=grad_wrt,
        threads_per_block=TPB,
    )
    ref_loss, ref_grad = batch_ref(lp, targets, il, tl, 0, reduction, False, grad_wrt == "logits")
    assert loss.shape == ((3,) if reduction == "none" else ())
    np.testing.assert_allclose(_host(loss), ref_loss, rtol=1e-10)
    np.testing.assert_allclose(_host(grad), ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tpb", [1, 3])
def test_small_odd_blocks_stride_over_states_and_classes(tpb):
    rng = np.random.default_rng(tpb)
    lp, targets, il, tl = _batch(rng, T=6, N=2, V=6, S=4)
    loss, grad = fc.ctc_loss(
        lp, targets, il, tl, reduction="sum", return_grad=True, threads_per_block=tpb
    )
    ref_loss, ref_grad = batch_ref(lp, targets, il, tl, 0, "sum", False, False)
    assert float(_host(loss)) == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(_host(grad), ref_grad, rtol=1e-9, atol=1e-12)


def test_batch_first_float32_blank_last_matches_cpu():
    rng = np.random.default_rng(3)
    lp, targets, il, tl = _batch(rng, T=6, N=2, V=4, S=2, dtype=np.float32, blank=3)
    lp_bf = np.ascontiguousarray(lp.transpose(1, 0, 2))
    loss, grad = fc.ctc_loss(
        lp_bf,
        targets,
        il,
        tl,
        blank=-1,
        batch_first=True,
        return_grad=True,
        threads_per_block=TPB,
    )
    cpu_loss, cpu_grad = fastctc.ctc_loss(
        lp_bf, targets, il, tl, blank=-1, batch_first=True, return_grad=True
    )
    assert _host(loss).dtype == np.float32 and _host(grad).dtype == np.float32
    np.testing.assert_allclose(_host(loss), cpu_loss, rtol=1e-5)
    np.testing.assert_allclose(_host(grad), cpu_grad, rtol=1e-4, atol=1e-6)


@settings(max_examples=12, deadline=None)
@given(
    T=st.integers(1, 6),
    V=st.integers(2, 4),
    S=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
    reduction=st.sampled_from(["none", "sum", "mean"]),
    wrt=st.sampled_from(["log_probs", "logits"]),
    zero_infinity=st.booleans(),
)
def test_loss_matches_cpu_kernels(T, V, S, seed, reduction, wrt, zero_infinity):
    rng = np.random.default_rng(seed)
    N = 2
    lp = rng.normal(size=(T, N, V))  # unnormalised rows: the exact gradient must still hold
    if wrt == "logits":
        lp = _log_softmax(lp)
    blank = int(rng.integers(0, V))
    labels = [c for c in range(V) if c != blank]
    targets = rng.choice(labels, size=(N, S))
    if S >= 2:
        targets[0, 1] = targets[0, 0]  # a repeat needs a blank in between
    il = rng.integers(0, T + 1, size=N)
    tl = rng.integers(0, S + 1, size=N)
    loss, grad = fc.ctc_loss(
        lp,
        targets,
        il,
        tl,
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
        return_grad=True,
        grad_wrt=wrt,
        threads_per_block=TPB,
    )
    cpu_loss, cpu_grad = fastctc.ctc_loss(
        lp,
        targets,
        il,
        tl,
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
        return_grad=True,
        grad_wrt=wrt,
    )
    np.testing.assert_allclose(_host(loss), cpu_loss, rtol=1e-9)
    np.testing.assert_allclose(_host(grad), cpu_grad, rtol=1e-8, atol=1e-12)


def test_infinite_loss_nan_gradient_and_zero_infinity():
    rng = np.random.default_rng(4)
    lp = _log_softmax(rng.normal(size=(3, 2, 4)))
    targets = np.array([[1, 1, 2], [1, 2, 0]])  # sequence 0 needs 4 frames, has 3
    tl = np.array([3, 2])
    il = np.array([3, 2])
    loss, grad = fc.ctc_loss(
        lp, targets, il, tl, reduction="none", return_grad=True, threads_per_block=TPB
    )
    g = _host(grad)
    assert _host(loss)[0] == np.inf and np.isfinite(_host(loss)[1])
    assert np.isnan(g[:, 0]).all() and np.isfinite(g[:, 1]).all()
    loss, grad = fc.ctc_loss(
        lp,
        targets,
        il,
        tl,
        reduction="sum",
        zero_infinity=True,
        return_grad=True,
        threads_per_block=TPB,
    )
    ref_loss, ref_grad = batch_ref(lp, targets, il, tl, 0, "sum", True, False)
    assert float(_host(loss)) == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(_host(grad), ref_grad, rtol=1e-9, atol=1e-12)
    assert not _host(grad)[:, 0].any()


def test_nan_input_poisons_only_its_sequence():
    rng = np.random.default_rng(5)
    lp = _log_softmax(rng.normal(size=(4, 2, 3)))
    lp[3, 1, 0] = np.nan
    loss = _host(
        fc.ctc_loss(lp, [[1, 2], [2, 1]], [4, 4], [2, 2], reduction="none", threads_per_block=TPB)
    )
    assert np.isfinite(loss[0]) and np.isnan(loss[1])
    assert loss[0] == pytest.approx(ctc_ref(lp[:, 0], [1, 2], 0)[0], rel=1e-10)


def test_unbatched_and_empty_targets():
    rng = np.random.default_rng(6)
    lp = _log_softmax(rng.normal(size=(5, 3)))
    loss, grad = fc.ctc_loss(
        lp, np.array([2, 1]), 5, 2, reduction="none", return_grad=True, threads_per_block=TPB
    )
    nll, g = ctc_ref(lp, [2, 1], 0)
    assert loss.shape == () and grad.shape == (5, 3)
    assert float(_host(loss)) == pytest.approx(nll, rel=1e-10)
    np.testing.assert_allclose(_host(grad), g, rtol=1e-9, atol=1e-12)
    loss = fc.ctc_loss(
        lp, np.zeros(0, dtype=np.int64), 5, 0, reduction="sum", threads_per_block=TPB
    )
    assert float(_host(loss)) == pytest.approx(-lp[:, 0].sum(), rel=1e-12)


def test_device_lengths_and_targets_are_accepted():
    rng = np.random.default_rng(7)
    lp, targets, il, tl = _batch(rng, T=5, N=2, V=3, S=2)
    loss = fc.ctc_loss(
        cuda.to_device(lp),
        cuda.to_device(targets),
        cuda.to_device(il),
        cuda.to_device(tl),
        reduction="sum",
        threads_per_block=TPB,
    )
    ref, _ = batch_ref(lp, targets, il, tl, 0, "sum", False, False)
    assert cuda.devicearray.is_cuda_ndarray(loss)
    assert float(_host(loss)) == pytest.approx(ref, rel=1e-10)


def test_error_threads_per_block():
    with pytest.raises(ValueError, match=r"threads_per_block must be in \[1, 1024\]; got 0"):
        fc.ctc_loss(np.zeros((2, 1, 2)), [[1]], [2], [1], threads_per_block=0)


def test_error_integer_device_log_probs():
    with pytest.raises(TypeError, match="log_probs must be a float32 or float64 device array"):
        fc.ctc_loss(cuda.to_device(np.zeros((2, 1, 2), dtype=np.int32)), [[1]], [2], [1])


def test_error_messages_shared_with_cpu():
    lp = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match=r"targets\[0, 0\] == blank \(0\)"):
        fc.ctc_loss(lp, [[0]], [2], [1])
    with pytest.raises(ValueError, match="reduction must be one of"):
        fc.ctc_loss(lp, [[1]], [2], [1], reduction="avg")
    with pytest.raises(ValueError, match="grad_wrt must be 'log_probs' or 'logits'"):
        fc.ctc_loss(lp, [[1]], [2], [1], grad_wrt="z")


# ---------------------------------------------------------------------------------------------
# greedy decoding
# ---------------------------------------------------------------------------------------------


def _greedy_ref(lp, length, blank):
    best = np.argmax(lp[:length], axis=1)
    tokens, times = [], []
    prev = -1
    for t, c in enumerate(best):
        if c != blank and c != prev:
            tokens.append(int(c))
            times.append(t)
        prev = c
    return tokens, times, float(sum(float(lp[t, c]) for t, c in enumerate(best)))


@settings(max_examples=10, deadline=None)
@given(
    N=st.integers(1, 3),
    T=st.integers(0, 8),
    V=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
    f32=st.booleans(),
)
def test_greedy_matches_reference_and_cpu(N, T, V, seed, f32):
    rng = np.random.default_rng(seed)
    lp = rng.integers(-3, 1, size=(N, T, V)).astype(np.float32 if f32 else np.float64)  # ties
    lens = rng.integers(0, T + 1, size=N)
    blank = int(rng.integers(0, V))
    got = fc.greedy_decode(cuda.to_device(lp), lens, blank=blank, threads_per_block=TPB)
    cpu = fastctc.greedy_decode_batch(lp, lens, blank=blank)
    for n in range(N):
        tokens, times, score = _greedy_ref(lp[n], lens[n], blank)
        assert got[n].tokens.tolist() == tokens == cpu[n].tokens.tolist()
        assert got[n].timesteps.tolist() == times == cpu[n].timesteps.tolist()
        assert got[n].log_prob == score == cpu[n].log_prob


def test_greedy_wide_vocabulary_uses_every_lane():
    rng = np.random.default_rng(8)
    lp = _log_softmax(rng.normal(size=(2, 3, 70)))
    got = fc.greedy_decode(lp, threads_per_block=64)
    for n in range(2):
        assert got[n].tokens.tolist() == _greedy_ref(lp[n], 3, 0)[0]


def test_greedy_nan_frame_raises():
    lp = np.zeros((2, 3, 4))
    lp[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"log_probs\[1, 2\] contains NaN"):
        fc.greedy_decode(lp, threads_per_block=TPB)


def test_greedy_error_ndim():
    with pytest.raises(ValueError, match=r"log_probs must be 3-D \(N, T, V\)"):
        fc.greedy_decode(np.zeros((3, 4)))


# ---------------------------------------------------------------------------------------------
# beam search
# ---------------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(T=st.integers(1, 4), V=st.integers(2, 3), seed=st.integers(0, 2**31 - 1))
def test_unpruned_beam_finds_brute_force_best(T, V, seed):
    rng = np.random.default_rng(seed)
    lp = _log_softmax(rng.normal(size=(1, T, V)) * 2)
    blank = int(rng.integers(0, V))
    table = brute.labelling_log_probs(lp[0], blank)
    ranked = sorted(table, key=lambda lab: -table[lab])[:2]
    hyps = fc.beam_search(
        lp,
        beam_width=V**T,
        blank=blank,
        top_paths=min(2, len(table)),
        token_min_logp=-np.inf,
        beam_prune_logp=-np.inf,
        threads_per_block=TPB,
    )[0]
    assert [tuple(h.tokens.tolist()) for h in hyps] == ranked
    for h in hyps:
        assert h.log_prob == pytest.approx(table[tuple(h.tokens.tolist())], rel=1e-10)


@pytest.mark.parametrize(
    "beam_width, token_min_logp, beam_prune_logp",
    [
        (1, -5.0, -10.0),
        (3, -1.5, -10.0),
        (4, -5.0, -2.0),
        (5, -0.5, -3.0),
    ],
)
def test_pruned_beam_matches_reference(beam_width, token_min_logp, beam_prune_logp):
    rng = np.random.default_rng(beam_width)
    lp = _log_softmax(rng.normal(size=(3, 10, 5)) * 1.5)
    lens = np.array([10, 7, 0])
    top = min(beam_width, 3)
    got = fc.beam_search(
        lp,
        lens,
        beam_width=beam_width,
        token_min_logp=token_min_logp,
        beam_prune_logp=beam_prune_logp,
        top_paths=top,
        threads_per_block=TPB,
    )
    for n in range(3):
        ref = prefix_beam_ref(lp[n, : lens[n]], beam_width, 0, token_min_logp, beam_prune_logp, top)
        assert len(got[n]) == len(ref)
        for h, (prefix, starts, score) in zip(got[n], ref, strict=True):
            assert tuple(h.tokens.tolist()) == prefix
            assert tuple(h.timesteps.tolist()) == starts
            assert h.log_prob == pytest.approx(score, rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    T=st.integers(1, 9),
    V=st.integers(2, 5),
    K=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    tmin=st.sampled_from([-np.inf, -3.0, -1.0, -0.3]),
    prune=st.sampled_from([-np.inf, -4.0, -1.0, 0.0]),
    f32=st.booleans(),
)
def test_beam_matches_reference_property(T, V, K, seed, tmin, prune, f32):
    rng = np.random.default_rng(seed)
    lp = _log_softmax(rng.normal(size=(2, T, V)) * rng.uniform(0.5, 3.0))
    lp = lp.astype(np.float32) if f32 else lp
    blank = int(rng.integers(0, V))
    top = int(rng.integers(1, K + 1))
    got = fc.beam_search(
        lp,
        beam_width=K,
        blank=blank,
        top_paths=top,
        token_min_logp=tmin,
        beam_prune_logp=prune,
        threads_per_block=TPB,
    )
    for n in range(2):
        ref = prefix_beam_ref(lp[n], K, blank, tmin, prune, top)
        assert [(tuple(h.tokens.tolist()), tuple(h.timesteps.tolist())) for h in got[n]] == [
            (r[0], r[1]) for r in ref
        ]
        np.testing.assert_allclose([h.log_prob for h in got[n]], [r[2] for r in ref], rtol=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(0, 10),
    V=st.integers(1, 6),
    K=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    f32=st.booleans(),
    tmin=st.sampled_from([-np.inf, -4.0, -1.0, -0.2]),
    prune=st.sampled_from([-np.inf, -5.0, -1.0, 0.0]),
)
def test_beam_equals_cpu_beam_search(T, V, K, seed, f32, tmin, prune):
    rng = np.random.default_rng(seed)
    lp = _log_softmax(rng.normal(size=(3, T, V)) * rng.uniform(0.5, 4.0))
    lp = lp.astype(np.float32) if f32 else lp
    lens = rng.integers(0, T + 1, size=3)
    blank = int(rng.integers(0, V))
    top = int(rng.integers(1, K + 1))
    kw = dict(beam_width=K, blank=blank, top_paths=top, beam_prune_logp=prune, token_min_logp=tmin)
    cpu = fastctc.beam_search_batch(lp, lens, **kw)
    gpu = fc.beam_search(cuda.to_device(lp), lens, threads_per_block=TPB, **kw)
    for n in range(3):
        assert [(h.tokens.tolist(), h.timesteps.tolist()) for h in gpu[n]] == [
            (h.tokens.tolist(), h.timesteps.tolist()) for h in cpu[n]
        ]
        # float32 rows: the CPU kernel run as plain Python (NUMBA_DISABLE_JIT) differs from
        # its compiled self by about 1e-8 relative; a log-probability next to zero (a certain
        # path) is compared in absolute terms
        np.testing.assert_allclose(
            [h.log_prob for h in gpu[n]],
            [h.log_prob for h in cpu[n]],
            rtol=1e-6 if f32 else 1e-10,
            atol=1e-7 if f32 else 1e-14,
        )


def test_beam_nan_frame_raises():
    lp = np.zeros((2, 3, 4))
    lp[1, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"log_probs\[1, 1\] contains NaN or \+inf"):
        fc.beam_search(lp, beam_width=2, threads_per_block=TPB)


def test_beam_dead_raises():
    lp = np.full((1, 2, 3), -np.inf)
    lp[0, 0, 1] = 0.0
    with pytest.raises(
        ValueError, match="every prefix of utterance 0 has probability zero after frame 1"
    ):
        fc.beam_search(lp, beam_width=2, threads_per_block=TPB)


def test_beam_error_width():
    with pytest.raises(ValueError, match="beam_width must be >= 1; got 0"):
        fc.beam_search(np.zeros((1, 2, 3)), beam_width=0)


def test_beam_error_top_paths():
    with pytest.raises(ValueError, match=r"top_paths must be in \[1, beam_width\]"):
        fc.beam_search(np.zeros((1, 2, 3)), beam_width=2, top_paths=3)


@pytest.mark.parametrize("scale", [50.0] if SIM else [12.0, 50.0])
def test_confident_long_input_matches_log_space_reference(scale):
    # states drift hundreds of nats apart: the GPU recursion runs in log space throughout,
    # so it needs no range check; it must agree with the NumPy reference
    from tests.reference import ctc_loss_ref

    rng = np.random.default_rng(int(scale))
    T, V, S = (90, 4, 20) if SIM else (2000, 29, 400)
    lp = _log_softmax(rng.normal(size=(T, 1, V)) * scale)
    target = rng.integers(1, V, size=(1, S))
    loss, grad = fc.ctc_loss(
        lp, target, [T], [S], reduction="sum", return_grad=True, threads_per_block=TPB
    )
    ref_loss, ref_grad = ctc_loss_ref(lp[:, 0], target[0])
    assert ref_loss > 700  # beyond the range of a rescaled float64 frame
    assert float(_host(loss)) == pytest.approx(ref_loss, rel=1e-11)
    np.testing.assert_allclose(_host(grad)[:, 0], ref_grad, atol=1e-9)
