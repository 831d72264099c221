"""Every bad input gets a clear exception naming the argument (loss, greedy, metrics)."""

from __future__ import annotations

import numpy as np
import pytest

import fastctc

LP = np.log(np.full((6, 2, 4), 0.25))
TG = np.array([[1, 2], [3, 3]])
IL = np.array([6, 6])
TL = np.array([2, 2])


def loss(**kw):
    args = dict(log_probs=LP, targets=TG, input_lengths=IL, target_lengths=TL)
    args.update(kw)
    return fastctc.ctc_loss(**args)


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(log_probs=np.zeros((2, 3, 4, 5))), ValueError, r"log_probs must be 3-D \(T, N, V\)"),
        (dict(log_probs=np.zeros(5)), ValueError, r"got shape \(5,\)"),
        (dict(log_probs=LP.astype(np.int64)), TypeError, "log_probs must be a floating-point"),
        (dict(log_probs=np.array([["a"]])), TypeError, "log_probs must be a floating-point"),
        (dict(blank=4), ValueError, r"blank must be in \[-4, 4\).*got 4"),
        (dict(blank=-5), ValueError, r"blank must be in \[-4, 4\).*got -5"),
        (dict(blank=1.0), TypeError, "blank must be an integer"),
        (dict(input_lengths=[6, -1]), ValueError, r"input_lengths\[1\] = -1 is negative"),
        (dict(input_lengths=[6, 7]), ValueError, r"input_lengths\[1\] = 7 exceeds T = 6"),
        (
            dict(input_lengths=[6]),
            ValueError,
            r"input_lengths must have shape \(2,\).*got shape \(1,\)",
        ),
        (dict(input_lengths=[6.5, 6]), TypeError, "input_lengths must hold integers"),
        (dict(target_lengths=[3, 2]), ValueError, r"target_lengths\[0\] = 3 exceeds S"),
        (dict(target_lengths=[2, -2]), ValueError, r"target_lengths\[1\] = -2 is negative"),
        (dict(targets=np.array([[1, 0], [3, 3]])), ValueError, r"targets\[0, 1\] == blank \(0\)"),
        (
            dict(targets=np.array([[1, 2], [3, 4]])),
            ValueError,
            r"targets\[1, 1\] = 4 is outside \[0, 4\)",
        ),
        (dict(targets=np.array([[1, 2], [-1, 3]])), ValueError, r"targets\[1, 0\] = -1 is outside"),
        (dict(targets=np.array([1, 2, 3])), ValueError, r"length sum\(target_lengths\) = 4; got 3"),
        (dict(targets=np.array([1, 2, 3, 0])), ValueError, r"targets\[3\] == blank"),
        (
            dict(targets=np.zeros((3, 2), np.int64)),
            ValueError,
            r"padded targets must have shape \(N, S\) with N = 2",
        ),
        (dict(targets=np.zeros((2, 2, 2), np.int64)), ValueError, "targets must be 2-D"),
        (dict(targets=np.array([[1.5, 2.0], [3.0, 3.0]])), TypeError, "targets must hold integers"),
        (
            dict(targets=np.array([1, 2, 3, 3]), target_lengths=None),
            ValueError,
            "target_lengths is required",
        ),
        (dict(reduction="avg"), ValueError, "reduction must be one of"),
        (dict(grad_wrt="probs"), ValueError, "grad_wrt must be 'log_probs' or 'logits'"),
        (dict(num_threads=0), ValueError, "num_threads must be >= 1"),
    ],
)
def test_loss_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        loss(**kw)


def test_padding_beyond_target_length_is_not_validated():
    # padding may hold anything, e.g. -1 or the blank, as with torch
    padded = np.array([[1, 2, -1], [3, 0, 0]])
    got = fastctc.ctc_loss(LP, padded, IL, [2, 1], reduction="none")
    ref = fastctc.ctc_loss(LP, np.array([[1, 2], [3, 1]]), IL, [2, 1], reduction="none")
    np.testing.assert_array_equal(got, ref)


def test_negative_blank_counts_from_the_end():
    lp = np.log(np.full((5, 1, 4), 0.25))
    a = fastctc.ctc_loss(lp, [[0, 1]], [5], [2], blank=-1)
    b = fastctc.ctc_loss(lp, [[0, 1]], [5], [2], blank=3)
    assert a == b
    with pytest.raises(ValueError, match=r"targets\[0, 0\] == blank \(3\)"):
        fastctc.ctc_loss(lp, [[3, 1]], [5], [2], blank=-1)


@pytest.mark.parametrize(
    "args,kw,exc,match",
    [
        (
            (np.zeros((3, 4)),),
            {},
            ValueError,
            r"log_probs must be 3-D \(N, T, V\); got shape \(3, 4\)",
        ),
        ((np.zeros((1, 3, 4), np.int32),), {}, TypeError, "log_probs must be a floating-point"),
        ((np.zeros((1, 3, 4)),), dict(blank=9), ValueError, "blank must be in"),
        (
            (np.zeros((2, 3, 4)),),
            dict(lengths=[3, 4]),
            ValueError,
            r"lengths\[1\] = 4 exceeds T = 3",
        ),
        ((np.zeros((2, 3, 4)),), dict(lengths=[3]), ValueError, r"lengths must have shape \(2,\)"),
    ],
)
def test_greedy_batch_errors(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fastctc.greedy_decode_batch(*args, **kw)


def test_greedy_errors():
    with pytest.raises(ValueError, match=r"log_probs must be 2-D \(T, V\).*greedy_decode_batch"):
        fastctc.greedy_decode(np.zeros((1, 3, 4)))
    lp = np.zeros((2, 3, 4))
    lp[1, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"log_probs\[1, 2\] contains NaN"):
        fastctc.greedy_decode_batch(lp)


def test_metric_errors():
    with pytest.raises(ValueError, match="refs and hyps must have the same length; got 2 and 1"):
        fastctc.wer(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"hyps\[0\] must be a str"):
        fastctc.cer(["a"], [3])
