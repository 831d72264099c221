"""fastctc.torch.forced_align and merge_tokens with torchaudio's conventions.

torchaudio itself is not installable beside this torch build, so the references are
fastctc's NumPy forced_align, exhaustive enumeration of paths, and torchaudio's documented
merge_tokens rule written out in plain Python.
"""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
import torch

import fastctc
import fastctc.torch as ft
from tests.brute import collapse


def _log_probs(seed, B, T, C, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, C, generator=g, dtype=torch.float64) * 2).log_softmax(-1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tdtype", [torch.int32, torch.int64])
def test_matches_numpy_forced_align(dtype, tdtype):
    lp = _log_probs(0, 1, 20, 6, dtype)
    targets = torch.tensor([[1, 3, 3, 5, 2]], dtype=tdtype)
    ali, scores = ft.forced_align(lp, targets)
    ref = fastctc.forced_align(lp[0].numpy(), targets[0].numpy())
    assert ali.shape == scores.shape == (1, 20)
    assert ali.dtype == tdtype and scores.dtype == dtype
    assert ali[0].tolist() == ref.tokens.tolist()
    # torchaudio's scores: log_probs gathered at the path, in log_probs' dtype
    torch.testing.assert_close(scores[0], lp[0, torch.arange(20), ali[0].long()], rtol=0, atol=0)
    np.testing.assert_allclose(scores[0].double().numpy(), ref.scores, rtol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_best_path_equals_brute_force(seed):
    T, C, blank = 6, 3, seed % 3
    labels = [c for c in range(C) if c != blank]
    rng = np.random.default_rng(seed)
    target = [int(c) for c in rng.choice(labels, size=rng.integers(1, 4))]
    lp = _log_probs(seed, 1, T, C, torch.float64)
    ali, scores = ft.forced_align(lp, torch.tensor([target]), blank=blank)
    best, best_path = -math.inf, None
    for p in itertools.product(range(C), repeat=T):
        if collapse(p, blank) == tuple(target):
            s = float(sum(lp[0, t, c] for t, c in enumerate(p)))
            if s > best:
                best, best_path = s, list(p)
    assert ali[0].tolist() == best_path  # continuous random scores: a unique best path
    assert scores.sum().item() == pytest.approx(best, rel=1e-12)


def test_batch_lengths_padding_and_device_dtype():
    lp = _log_probs(1, 3, 12, 5, torch.float16)
    targets = torch.tensor([[1, 2, 3], [4, 4, 0], [2, 0, 0]])
    il, tl = torch.tensor([12, 9, 5]), torch.tensor([3, 2, 1])
    ali, scores = ft.forced_align(lp, targets, il, tl)
    assert ali.dtype == torch.int64 and scores.dtype == torch.float16
    for b in range(3):
        one = fastctc.forced_align(lp[b, : il[b]].float().numpy(), targets[b, : tl[b]].numpy())
        assert ali[b, : il[b]].tolist() == one.tokens.tolist()
        assert (ali[b, il[b] :] == -1).all() and (scores[b, il[b] :] == 0).all()
        got = scores[b, : il[b]]
        assert torch.equal(got, lp[b, torch.arange(int(il[b])), ali[b, : il[b]]])


def _torchaudio_merge(tokens, scores, blank):
    """torchaudio's documented rule: runs between changes of label, blanks dropped."""
    spans, t = [], 0
    toks = tokens.tolist()
    while t < len(toks):
        e = t
        while e < len(toks) and toks[e] == toks[t]:
            e += 1
        if toks[t] != blank:
            spans.append((toks[t], t, e, scores[t:e].mean().item()))
        t = e
    return spans


@pytest.mark.parametrize("seed", range(5))
def test_merge_tokens_equals_torchaudio_rule(seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 4, (30,), generator=g)
    scores = -torch.rand(30, generator=g)
    blank = seed % 4
    spans = ft.merge_tokens(tokens, scores, blank=blank)
    assert [(s.token, s.start, s.end, s.score) for s in spans] == _torchaudio_merge(
        tokens, scores, blank
    )
    assert all(len(s) == s.end - s.start for s in spans)


def test_align_then_merge():
    lp = _log_probs(2, 1, 15, 5)
    ali, scores = ft.forced_align(lp, torch.tensor([[1, 2, 2, 4]], dtype=torch.int32))
    spans = ft.merge_tokens(ali[0], scores[0])
    assert [s.token for s in spans] == [1, 2, 2, 4]
    for s in spans:
        assert s.score == pytest.approx(scores[0, s.start : s.end].mean().item())


def test_errors():
    lp = _log_probs(3, 1, 5, 4)
    with pytest.raises(TypeError, match="targets must be int32 or int64"):
        ft.forced_align(lp, torch.tensor([[1.0, 2.0]]))
    with pytest.raises(TypeError, match="log_probs must be a torch.Tensor"):
        ft.forced_align(lp.numpy(), torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"3-D \(B, T, C\)"):
        ft.forced_align(lp[0], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="blank"):
        ft.forced_align(lp, torch.tensor([[1, 0]]))
    with pytest.raises(ValueError, match="at least 4 frames"):
        ft.forced_align(lp[:, :3], torch.tensor([[1, 1, 2]]))
    with pytest.raises(ValueError, match="same length"):
        ft.merge_tokens(torch.tensor([1, 2]), torch.zeros(3))


def test_docstring_examples():
    result = doctest.testmod(ft, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
