"""CTC loss and gradient: brute force, NumPy reference, torch, finite differences."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc
from fastctc.kernels import fpenv
from tests import brute
from tests.conftest import random_log_probs
from tests.reference import ctc_loss_ref

torch.set_num_threads(1)


def torch_loss(lp, targets, il, tl, blank=0, reduction="mean", zero_infinity=False):
    return torch.nn.functional.ctc_loss(
        torch.tensor(lp),
        torch.tensor(np.asarray(targets)),
        torch.tensor(np.asarray(il)),
        torch.tensor(np.asarray(tl)),
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
    )


@st.composite
def tiny_problem(draw):
    T = draw(st.integers(1, 5))
    V = draw(st.integers(2, 3))
    blank = draw(st.integers(0, V - 1))
    labels = [c for c in range(V) if c != blank]
    S = draw(st.integers(0, min(T, 3)))
    target = draw(st.lists(st.sampled_from(labels), min_size=S, max_size=S))
    seed = draw(st.integers(0, 2**32 - 1))
    lp = random_log_probs(np.random.default_rng(seed), T, V)
    return lp, target, blank


@settings(max_examples=60, deadline=None)
@given(tiny_problem())
def test_loss_equals_brute_force(problem):
    lp, target, blank = problem
    expected = brute.loss(lp, target, blank)
    got = fastctc.ctc_loss(lp, target, None, None, blank=blank, reduction="sum")
    if math.isinf(expected):
        assert got == np.inf
    else:
        assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


@st.composite
def small_problem(draw):
    T = draw(st.integers(1, 30))
    V = draw(st.integers(2, 7))
    blank = draw(st.integers(0, V - 1))
    labels = [c for c in range(V) if c != blank]
    S = draw(st.integers(0, 12))
    target = draw(st.lists(st.sampled_from(labels), min_size=S, max_size=S))
    scale = draw(st.sampled_from([0.5, 3.0, 20.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    lp = random_log_probs(np.random.default_rng(seed), T, V, scale=scale)
    return lp, target, blank


@settings(max_examples=60, deadline=None)
@given(small_problem(), st.sampled_from(["log_probs", "logits"]))
def test_loss_and_gradient_match_numpy_reference(problem, grad_wrt):
    lp, target, blank = problem
    ref_loss, ref_grad = ctc_loss_ref(lp, target, blank)
    loss, grad = fastctc.ctc_loss(
        lp,
        target,
        None,
        None,
        blank=blank,
        reduction="sum",
        return_grad=True,
        grad_wrt=grad_wrt,
        zero_infinity=False,
    )
    if math.isinf(ref_loss):
        assert loss == np.inf
        assert np.isnan(grad).all()
        return
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    if grad_wrt == "logits":
        ref_grad = ref_grad + np.exp(lp)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-9)


def test_float32_close_to_float64(rng):
    lp = random_log_probs(rng, 60, 4, 9)
    targets = rng.integers(1, 9, size=(4, 15))
    l64, g64 = fastctc.ctc_loss(lp, targets, None, None, reduction="none", return_grad=True)
    l32, g32 = fastctc.ctc_loss(
        lp.astype(np.float32), targets, None, None, reduction="none", return_grad=True
    )
    assert l32.dtype == np.float32 and g32.dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, atol=1e-5)


@pytest.mark.reference
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-5), (np.float32, 1e-4)])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_loss_matches_torch(rng, dtype, rtol, reduction, layout, zero_infinity):
    T, N, V, S = 40, 5, 7, 12
    lp = random_log_probs(rng, T, N, V, dtype=dtype)
    padded = rng.integers(1, V, size=(N, S))
    il = np.array([40, 33, 6, 40, 25])
    tl = np.array([12, 9, 8, 0, 5])  # sequence 2 is infeasible (6 frames < 8 labels)
    targets = (
        padded if layout == "padded" else np.concatenate([padded[n, : tl[n]] for n in range(N)])
    )
    expected = torch_loss(
        lp, targets, il, tl, reduction=reduction, zero_infinity=zero_infinity
    ).numpy()
    got = fastctc.ctc_loss(lp, targets, il, tl, reduction=reduction, zero_infinity=zero_infinity)
    assert np.asarray(got).dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=rtol)


@pytest.mark.reference
@pytest.mark.parametrize("dtype,atol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("blank", [0, 6])
def test_logits_gradient_matches_torch_autograd(rng, dtype, atol, reduction, blank):
    T, N, V, S = 30, 4, 7, 8
    logits = rng.standard_normal((T, N, V)).astype(dtype) * 2
    targets = rng.integers(0, V - 1, size=(N, S))
    if blank == 0:
        targets += 1
    il = np.array([30, 22, 30, 17])
    tl = np.array([8, 5, 0, 8])
    x = torch.tensor(logits, requires_grad=True)
    lp_t = torch.log_softmax(x, -1)
    loss_t = torch.nn.functional.ctc_loss(
        lp_t,
        torch.tensor(targets),
        torch.tensor(il),
        torch.tensor(tl),
        blank=blank,
        reduction=reduction,
    )
    loss_t.sum().backward()
    lp = lp_t.detach().numpy()
    loss, grad = fastctc.ctc_loss(
        lp, targets, il, tl, blank=blank, reduction=reduction, return_grad=True, grad_wrt="logits"
    )
    np.testing.assert_allclose(loss, loss_t.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad, x.grad.numpy(), atol=atol)
    # the exact log_probs gradient, chained through log_softmax by hand, agrees as well
    _, g_lp = fastctc.ctc_loss(
        lp, targets, il, tl, blank=blank, reduction=reduction, return_grad=True
    )
    g_lp = g_lp.astype(np.float64)
    chained = g_lp - np.exp(lp.astype(np.float64)) * g_lp.sum(-1, keepdims=True)
    np.testing.assert_allclose(chained, x.grad.numpy(), atol=max(atol, 1e-9) * 10)


@pytest.mark.reference
def test_zero_infinity_gradient_matches_torch(rng):
    T, N, V = 6, 3, 5
    logits = rng.standard_normal((T, N, V))
    targets = np.array([[1, 2, 3, 4, 1, 2], [1, 1, 1, 0, 0, 0], [2, 3, 0, 0, 0, 0]])
    il, tl = np.array([6, 4, 6]), np.array([6, 3, 2])  # sequence 1 needs 5 frames
    x = torch.tensor(logits, requires_grad=True)
    lp_t = torch.log_softmax(x, -1)
    torch.nn.functional.ctc_loss(
        lp_t, torch.tensor(targets), torch.tensor(il), torch.tensor(tl), zero_infinity=True
    ).backward()
    loss, grad = fastctc.ctc_loss(
        lp_t.detach().numpy(),
        targets,
        il,
        tl,
        zero_infinity=True,
        return_grad=True,
        grad_wrt="logits",
    )
    np.testing.assert_allclose(grad, x.grad.numpy(), atol=1e-10)
    assert np.all(grad[:, 1] == 0)


def test_log_probs_gradient_matches_finite_differences(rng):
    # rows deliberately not normalised: the exact derivative must not assume they are
    T, V = 7, 4
    lp = rng.standard_normal((T, V)) - 1.5
    target = [1, 3, 3]
    _, grad = fastctc.ctc_loss(lp, target, None, None, reduction="sum", return_grad=True)
    eps = 1e-6
    num = np.zeros_like(lp)
    for t in range(T):
        for c in range(V):
            up, dn = lp.copy(), lp.copy()
            up[t, c] += eps
            dn[t, c] -= eps
            num[t, c] = (
                fastctc.ctc_loss(up, target, None, None, reduction="sum")
                - fastctc.ctc_loss(dn, target, None, None, reduction="sum")
            ) / (2 * eps)
    np.testing.assert_allclose(grad, num, atol=1e-6)


def test_mean_reduction_gradient_is_scaled(rng):
    lp = random_log_probs(rng, 20, 3, 5)
    targets = np.array([[1, 2, 3], [4, 0, 0], [0, 0, 0]])
    tl = np.array([3, 1, 0])
    _, g_none = fastctc.ctc_loss(lp, targets, None, tl, reduction="none", return_grad=True)
    _, g_mean = fastctc.ctc_loss(lp, targets, None, tl, reduction="mean", return_grad=True)
    factor = 1.0 / (np.maximum(tl, 1) * 3)
    np.testing.assert_allclose(g_mean, g_none * factor[None, :, None], atol=1e-14)


def test_batch_first_and_unbatched_agree_with_time_major(rng):
    lp = random_log_probs(rng, 25, 3, 6)
    targets = rng.integers(1, 6, size=(3, 7))
    il, tl = np.array([25, 20, 18]), np.array([7, 4, 6])
    ref, gref = fastctc.ctc_loss(lp, targets, il, tl, reduction="none", return_grad=True)
    bf, gbf = fastctc.ctc_loss(
        lp.transpose(1, 0, 2), targets, il, tl, reduction="none", batch_first=True, return_grad=True
    )
    np.testing.assert_array_equal(bf, ref)
    np.testing.assert_array_equal(gbf, gref.transpose(1, 0, 2))
    for n in range(3):
        one, g1 = fastctc.ctc_loss(
            lp[: il[n], n], targets[n], il[n], tl[n], reduction="none", return_grad=True
        )
        assert one.shape == ()
        assert float(one) == ref[n]
        np.testing.assert_array_equal(g1, gref[: il[n], n])


def test_results_do_not_depend_on_thread_count(rng):
    lp = random_log_probs(rng, 80, 9, 12, dtype=np.float32)
    targets = rng.integers(1, 12, size=(9, 20))
    il = rng.integers(50, 81, size=9)
    tl = rng.integers(0, 21, size=9)
    runs = [
        fastctc.ctc_loss(lp, targets, il, tl, reduction="none", return_grad=True, num_threads=k)
        for k in (1, 2, 3)
    ]
    for loss, grad in runs[1:]:
        np.testing.assert_array_equal(loss, runs[0][0])
        np.testing.assert_array_equal(grad, runs[0][1])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("grad_wrt", ["log_probs", "logits"])
def test_blocks_of_sequences_give_the_same_results_at_any_thread_count(rng, batch_first, grad_wrt):
    # each thread runs a contiguous block of sequences; more threads than cores, too
    lp = random_log_probs(rng, 60, 11, 40, dtype=np.float32)
    if batch_first:
        lp = np.ascontiguousarray(lp.transpose(1, 0, 2))
    targets = rng.integers(1, 40, size=(11, 15))
    il = rng.integers(30, 61, size=11)
    tl = rng.integers(0, 16, size=11)
    il[3] = 0
    tl[3] = 0
    runs = [
        fastctc.ctc_loss(
            lp,
            targets,
            il,
            tl,
            reduction="none",
            batch_first=batch_first,
            return_grad=True,
            grad_wrt=grad_wrt,
            num_threads=k,
        )
        for k in (1, 2, 4, 11)
    ]
    for loss, grad in runs[1:]:
        np.testing.assert_array_equal(loss, runs[0][0])
        np.testing.assert_array_equal(grad, runs[0][1])


def test_contiguous_blocks_cover_every_sequence_once():
    from fastctc.loss import _contiguous_blocks

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 32):
        costs = rng.uniform(1.0, 10.0, size=n)
        for parts in (1, 2, 3, 4, 40):
            blocks = _contiguous_blocks(costs, parts)
            assert len(blocks) == min(parts, n)
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(lo < hi for lo, hi in blocks)
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    # two parts: the split that minimises the larger share
    assert _contiguous_blocks(np.array([1.0, 1.0, 1.0, 3.0]), 2) == [(0, 3), (3, 4)]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_worker_threads_are_restarted_in_a_forked_child(rng):
    import multiprocessing

    lp = random_log_probs(rng, 20, 4, 6, dtype=np.float32)
    args = (lp, [[1, 2], [3, 3], [4, 5], [1, 1]], [20, 18, 20, 15], [2, 2, 2, 2])
    expected = fastctc.ctc_loss(*args, reduction="none", num_threads=2)  # starts the workers
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_loss_in_child, args).get(timeout=120)
    np.testing.assert_array_equal(got, expected)


def _loss_in_child(lp, targets, il, tl):
    return fastctc.ctc_loss(lp, targets, il, tl, reduction="none", num_threads=2)


def test_gradient_rows_past_input_length_are_zero(rng):
    lp = random_log_probs(rng, 10, 2, 4)
    _, grad = fastctc.ctc_loss(
        lp, [[1, 2], [3, 3]], [6, 10], [2, 2], return_grad=True, grad_wrt="logits"
    )
    assert np.all(grad[6:, 0] == 0) and np.any(grad[:6, 0] != 0)


@pytest.mark.parametrize("grad_wrt", ["log_probs", "logits"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_reused_memory_gives_the_same_gradient(
    rng, monkeypatch, grad_wrt, batch_first, zero_infinity
):
    """Gradients come from recycled buffers: every entry must be written, whatever it held.

    The batch mixes ordinary sequences, padded frames, an impossible target, a NaN input
    and a peaked sequence that takes the log-space path.
    """
    T, N, V = 30, 5, 7
    lp = random_log_probs(rng, T, N, V)
    lp[:, 3] = random_log_probs(rng, T, V, scale=5000.0)  # log-space path
    lp[4, 2, 0] = np.nan  # the blank: the loss of sequence 2 is NaN
    targets = rng.integers(1, V, size=(N, 6))
    targets[1] = [1, 1, 1, 1, 1, 1]
    il = np.array([30, 8, 25, 30, 12])  # sequence 1 cannot fit its 11 frames
    tl = np.array([6, 6, 4, 5, 3])
    if batch_first:
        lp = np.ascontiguousarray(lp.transpose(1, 0, 2))
    kw = dict(
        reduction="none",
        return_grad=True,
        grad_wrt=grad_wrt,
        batch_first=batch_first,
        zero_infinity=zero_infinity,
    )
    from fastctc import _scratch

    monkeypatch.setattr(_scratch, "_free", [])
    monkeypatch.setattr(_scratch, "_sizes", [])
    monkeypatch.setattr(_scratch, "_kept", [0])
    clean_loss, clean_grad = fastctc.ctc_loss(lp, targets, il, tl, **kw)
    del clean_grad  # goes back to the pool: reuse it, filled with garbage
    clean_loss, clean_grad = fastctc.ctc_loss(lp, targets, il, tl, **kw)
    for raw in _scratch._free:
        raw.view(np.float64)[:] = np.nan
        raw.view(np.uint8)[::3] = 0x7F
    poisoned_loss, poisoned_grad = fastctc.ctc_loss(lp, targets, il, tl, **kw)
    assert not np.shares_memory(poisoned_grad, clean_grad)
    np.testing.assert_array_equal(poisoned_loss, clean_loss)
    np.testing.assert_array_equal(poisoned_grad, clean_grad)
    frames = poisoned_grad if not batch_first else poisoned_grad.transpose(1, 0, 2)
    assert np.all(frames[12:, 4] == 0)  # padded frames
    assert np.all(np.isnan(frames[:25, 2])) and np.all(frames[25:, 2] == 0)
    assert np.all((frames[:8, 1] == 0) if zero_infinity else np.isnan(frames[:8, 1]))
    assert np.all(np.isfinite(frames[:, [0, 3, 4]]))


def test_long_input_does_not_underflow(rng):
    T, V, S = 20_000, 6, 300
    lp = random_log_probs(rng, T, V, scale=4.0)
    target = rng.integers(1, V, size=S)
    ref_loss, ref_grad = ctc_loss_ref(lp, target)
    loss, grad = fastctc.ctc_loss(lp, target, None, None, reduction="sum", return_grad=True)
    assert np.isfinite(loss) and loss > 1000  # probability far below float64's range
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-8)


@pytest.mark.parametrize("scale", [50.0, 400.0, 5000.0])
def test_peaked_posteriors(rng, scale):
    # logits scaled up: log-probabilities of thousands of nats below the frame maximum
    T, V = 60, 5
    lp = random_log_probs(rng, T, V, scale=scale)
    target = [1, 2, 2, 4, 3]
    ref_loss, ref_grad = ctc_loss_ref(lp, target)
    loss, grad = fastctc.ctc_loss(lp, target, None, None, reduction="sum", return_grad=True)
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-9)


def test_impossible_labels_give_infinite_loss():
    half = math.log(0.5)
    lp = np.array([[half, half, -np.inf]] * 3)
    assert fastctc.ctc_loss(lp, [2], None, None, reduction="sum") == np.inf
    assert fastctc.ctc_loss(lp, [2], None, None, reduction="sum", zero_infinity=True) == 0.0
    assert fastctc.ctc_loss(lp, [1], None, None, reduction="sum") == pytest.approx(
        brute.loss(lp, [1], 0)
    )


def test_nan_propagates_to_its_sequence_only(rng):
    lp = random_log_probs(rng, 12, 3, 5)
    targets = np.array([[1, 2], [3, 4], [2, 2]])
    clean = fastctc.ctc_loss(lp, targets, None, None, reduction="none")
    lp[4, 1, 3] = np.nan  # a label of sequence 1
    lp[5, 2, 4] = np.nan  # a label sequence 2 never uses: no effect on its loss (as torch)
    loss, grad = fastctc.ctc_loss(lp, targets, None, None, reduction="none", return_grad=True)
    assert np.isnan(loss[1])
    assert loss[0] == clean[0] and loss[2] == clean[2]
    assert np.isnan(grad[:, 1]).all() and np.isfinite(grad[:, 0]).all()
    assert np.isnan(fastctc.ctc_loss(lp, targets, None, None, reduction="mean"))


@pytest.mark.reference
def test_nan_matches_torch(rng):
    lp = random_log_probs(rng, 12, 3, 5)
    targets = np.array([[1, 2], [3, 4], [2, 2]])
    lp[4, 1, 3] = np.nan
    lp[5, 2, 4] = np.nan
    expected = torch_loss(lp, targets, [12] * 3, [2] * 3, reduction="none").numpy()
    got = fastctc.ctc_loss(lp, targets, None, None, reduction="none")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[[0, 2]], expected[[0, 2]], rtol=1e-10)


def test_empty_target_is_sum_of_blank_log_probs(rng):
    lp = random_log_probs(rng, 9, 4)
    assert fastctc.ctc_loss(lp, [], None, None, reduction="sum") == pytest.approx(
        -lp[:, 0].sum(), rel=1e-12
    )
    batch = random_log_probs(rng, 9, 2, 4)
    got = fastctc.ctc_loss(batch, np.zeros((2, 0), dtype=np.int64), None, None, reduction="none")
    np.testing.assert_allclose(got, -batch[:, :, 0].sum(0), rtol=1e-12)


@pytest.mark.reference
def test_zero_length_input_matches_torch(rng):
    lp = random_log_probs(rng, 5, 2, 4)
    targets = np.array([[1, 2], [1, 2]])
    il, tl = np.array([0, 0]), np.array([0, 2])
    expected = torch_loss(lp, targets, il, tl, reduction="none").numpy()
    got = fastctc.ctc_loss(lp, targets, il, tl, reduction="none")
    np.testing.assert_array_equal(got, expected)


def test_accepts_lists_and_torch_like_arrays():
    lp = fastctc.log_softmax(np.zeros((4, 1, 3))).tolist()
    loss = fastctc.ctc_loss(lp, [[1, 2]], [4], [2], reduction="sum")
    # uniform over 3 classes: every one of the 3**4 paths has probability 3**-4;
    # brute force counts the paths that collapse to (1, 2)
    count = round(math.exp(-brute.loss(np.log(np.full((4, 3), 1 / 3)), [1, 2], 0)) * 81)
    assert loss == pytest.approx(-math.log(count / 81))


@pytest.mark.skipif(not fpenv.X86, reason="flush-to-zero is set only on x86")
def test_flush_subnormals_is_scoped_to_the_kernel_call(rng):
    """The forward-backward runs with subnormals flushed; the caller's thread keeps its mode."""

    @numba.njit
    def product(a, b):
        return a * b

    assert product(1e-300, 1e-10) > 0.0  # a subnormal, without FTZ
    old = fpenv.flush_subnormals()
    try:
        assert product(1e-300, 1e-10) == 0.0
        assert fpenv.control_word() & fpenv.FTZ_DAZ == fpenv.FTZ_DAZ
    finally:
        fpenv.restore_fp(old)
    assert product(1e-300, 1e-10) > 0.0

    before = fpenv.control_word() & fpenv.FTZ_DAZ
    lp = random_log_probs(rng, 40, 2, 7, scale=8.0)
    for threads in (1, 2):
        tg, il, tl = [[1, 2, 3]] * 2, [40, 40], [3, 3]
        fastctc.ctc_loss(lp, tg, il, tl, return_grad=True, num_threads=threads)
        assert fpenv.control_word() & fpenv.FTZ_DAZ == before
        assert np.float64(1e-300) * np.float64(1e-10) > 0.0  # NumPy in this thread too
    # the worker that ran the second sequence put its mode back as well
    worker = fastctc.loss._workers(1).submit(fpenv.control_word).result()
    assert worker & fpenv.FTZ_DAZ == 0
