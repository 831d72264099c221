"""fastctc.torch against torch.nn.functional.ctc_loss, finite differences and autograd."""

from __future__ import annotations

import sys

import pytest
import torch

import fastctc.torch as ft

F = torch.nn.functional


def _batch(seed, T=8, N=3, C=5, S=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=g, dtype=dtype) * 2
    targets = torch.randint(1, C, (N, S), generator=g)
    il = torch.tensor([T, T - 2, T - 1][:N])
    tl = torch.tensor([S, S - 1, 0][:N])
    return logits, targets, il, tl


def test_import_fastctc_does_not_import_torch_or_numba_cuda():
    import subprocess

    code = (
        "import sys, fastctc; "
        "bad = [m for m in ('torch', 'numba.cuda', 'kenlm') if m in sys.modules]; "
        "import torch, fastctc.torch; "
        "fastctc.torch.ctc_loss(torch.zeros(3, 1, 2).log_softmax(-1), [[1]], [3], [1]); "
        "bad += ['numba.cuda'] if 'numba.cuda' in sys.modules else []; "
        "sys.exit(1 if bad else 0)"
    )
    # CPU tensors never need numba.cuda either
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.reference
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("layout", ["padded", "concat"])
def test_loss_equals_torch(reduction, layout):
    logits, targets, il, tl = _batch(1)
    lp = logits.log_softmax(-1)
    tg = targets if layout == "padded" else torch.cat([targets[n, : tl[n]] for n in range(3)])
    ours = ft.ctc_loss(lp, tg, il, tl, reduction=reduction)
    ref = F.ctc_loss(lp, tg, il, tl, reduction=reduction)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=0)


@pytest.mark.reference
def test_float32_loss_and_module():
    logits, targets, il, tl = _batch(2, dtype=torch.float32)
    lp = logits.log_softmax(-1)
    crit = ft.CTCLoss(blank=0, reduction="mean")
    ours = crit(lp, targets, il, tl)
    ref = torch.nn.CTCLoss(blank=0, reduction="mean")(lp, targets, il, tl)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)
    assert "reduction='mean'" in repr(crit)


@pytest.mark.reference
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gradient_through_log_softmax_equals_torch(reduction):
    logits, targets, il, tl = _batch(3)
    weights = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    grads = []
    for fn in (ft.ctc_loss, F.ctc_loss):
        x = logits.clone().requires_grad_()
        loss = fn(x.log_softmax(-1), targets, il, tl, reduction=reduction)
        (loss * weights).sum().backward() if reduction == "none" else loss.backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)


@pytest.mark.reference
def test_gradient_on_log_probs_is_exact_not_torchs():
    logits, targets, il, tl = _batch(4, T=5, N=2, C=4, S=2)
    lp = logits.log_softmax(-1).detach()
    ours = lp.clone().requires_grad_()
    ft.ctc_loss(ours, targets, il, tl, reduction="sum").backward()
    theirs = lp.clone().requires_grad_()
    F.ctc_loss(theirs, targets, il, tl, reduction="sum").backward()
    # torch's lp-gradient is exp(lp) - occupancy; ours is -occupancy
    valid = torch.arange(5)[:, None, None] < il[None, :, None]
    torch.testing.assert_close(ours.grad, theirs.grad - lp.exp() * valid, rtol=1e-9, atol=1e-12)
    # and ours is the derivative: central differences on one entry
    eps = 1e-6
    up, dn = lp.clone(), lp.clone()
    up[1, 0, 2] += eps
    dn[1, 0, 2] -= eps
    fd = (
        F.ctc_loss(up, targets, il, tl, reduction="sum")
        - F.ctc_loss(dn, targets, il, tl, reduction="sum")
    ) / (2 * eps)
    assert ours.grad[1, 0, 2].item() == pytest.approx(fd.item(), rel=1e-6)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradcheck_float64_unnormalised_inputs(reduction):
    g = torch.Generator().manual_seed(5)
    lp = torch.randn(5, 2, 4, generator=g, dtype=torch.float64).requires_grad_()
    targets = torch.tensor([[1, 2], [3, 3]])
    il, tl = torch.tensor([5, 5]), torch.tensor([2, 2])
    assert torch.autograd.gradcheck(
        lambda x: ft.ctc_loss(x, targets, il, tl, reduction=reduction), (lp,)
    )


@pytest.mark.reference
def test_zero_infinity_and_infinite_loss_match_torch():
    logits, _, _, _ = _batch(6, T=3, N=2, C=4)
    targets = torch.tensor([[1, 1, 2], [1, 2, 3]])  # first needs 4 frames
    il, tl = torch.tensor([3, 3]), torch.tensor([3, 2])
    for zero_infinity in (False, True):
        grads, losses = [], []
        for fn in (ft.ctc_loss, F.ctc_loss):
            x = logits.clone().requires_grad_()
            loss = fn(
                x.log_softmax(-1), targets, il, tl, reduction="sum", zero_infinity=zero_infinity
            )
            loss.backward()
            losses.append(loss.detach())
            grads.append(x.grad)
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-10, atol=0)
        if zero_infinity:
            torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)
        else:
            assert torch.isinf(losses[0]) and torch.isnan(grads[0][:, 0]).all()


@pytest.mark.reference
def test_unbatched_input():
    logits, targets, _, _ = _batch(7, N=1)
    lp = logits[:, 0].log_softmax(-1).requires_grad_()
    ours = ft.ctc_loss(lp, targets[0], torch.tensor(8), torch.tensor(3), reduction="none")
    ref = F.ctc_loss(lp, targets[0], torch.tensor(8), torch.tensor(3), reduction="none")
    assert ours.shape == ref.shape == ()
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=0)
    ours.backward()
    assert lp.grad.shape == lp.shape


def test_no_grad_needed_skips_gradient():
    logits, targets, il, tl = _batch(8)
    with torch.no_grad():
        loss = ft.ctc_loss(logits.log_softmax(-1), targets, il, tl)
    assert not loss.requires_grad


def test_bad_targets_raise_value_error():
    lp = torch.zeros(4, 1, 3, dtype=torch.float64).log_softmax(-1)
    with pytest.raises(ValueError, match=r"targets\[0, 1\] == blank \(0\)"):
        ft.ctc_loss(lp, torch.tensor([[1, 0]]), [4], [2])


@pytest.mark.reference
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for torch")
def test_cuda_tensors_match_torch_cuda():  # pragma: no cover - runs on GPU machines only
    logits, targets, il, tl = _batch(9, dtype=torch.float32)
    grads, losses = [], []
    for fn in (ft.ctc_loss, F.ctc_loss):
        x = logits.cuda().requires_grad_()
        loss = fn(x.log_softmax(-1), targets.cuda(), il, tl, reduction="mean")
        loss.backward()
        losses.append(loss.detach().cpu())
        grads.append(x.grad.cpu())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
