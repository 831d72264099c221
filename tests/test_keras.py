"""fastctc.keras against Keras 3 itself (torch backend): decoding, loss, gradient, training."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import fastctc  # noqa: E402
import fastctc.keras as fk  # noqa: E402

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="these tests compare on the torch backend"
)


def _logits(rng, N=6, T=8, C=4, scale=3.0):
    return (rng.standard_normal((N, T, C)) * scale).astype(np.float32)


def _keras_decode(x, lens, **kw):
    d, s = keras.ops.ctc_decode(torch.from_numpy(x), torch.from_numpy(lens), **kw)
    return d.numpy(), s.numpy()


def test_import_fastctc_does_not_import_keras():
    code = "import sys, fastctc, fastctc.keras; assert 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("merge_repeated", [True, False])
@pytest.mark.parametrize("mask_index", [0, 2, None])
def test_greedy_equals_keras(rng, merge_repeated, mask_index):
    x = _logits(rng, N=28)
    lens = rng.integers(0, 9, 28).astype(np.int32)
    kw = dict(merge_repeated=merge_repeated, mask_index=mask_index)
    dec, scores = fk.ctc_decode(x, lens, **kw)
    kdec, kscores = _keras_decode(x, lens, strategy="greedy", **kw)
    assert dec.dtype == np.int32 and dec.shape == kdec.shape == (1, 28, 8)
    np.testing.assert_array_equal(dec, kdec)
    # Keras' greedy score is minus the sum of the largest inputs; fastctc's the best path's
    # log-probability
    valid = np.arange(8)[None, :] < lens[:, None]
    np.testing.assert_allclose(kscores[:, 0], -(x.max(-1) * valid).sum(1), rtol=1e-5)
    lp = fastctc.log_softmax(x)
    np.testing.assert_allclose(scores[:, 0], (lp.max(-1) * valid).sum(1), rtol=1e-5)
    assert np.all(scores <= 0)


def test_greedy_merge_repeated_false_keeps_every_frame():
    x = np.log(np.array([[[0.1, 0.9]] * 4], dtype=np.float32))
    assert fk.ctc_decode(x, [4], merge_repeated=False)[0].tolist() == [[[1, 1, 1, 1]]]
    assert fk.ctc_decode(x, [4])[0].tolist() == [[[1, -1, -1, -1]]]


@pytest.mark.parametrize(("top_paths", "mask_index"), [(1, 0), (3, 0), (2, 3)])
def test_beam_equals_keras(rng, top_paths, mask_index):
    x = _logits(rng, N=12, T=6, C=4, scale=2.0)
    lens = rng.integers(1, 7, 12).astype(np.int32)
    kw = dict(strategy="beam_search", beam_width=64, top_paths=top_paths, mask_index=mask_index)
    dec, scores = fk.ctc_decode(x, lens, **kw)
    kdec, kscores = _keras_decode(x, lens, **kw)
    assert dec.shape == kdec.shape == (top_paths, 12, 6) and scores.shape == (12, top_paths)
    np.testing.assert_array_equal(dec, kdec)
    np.testing.assert_allclose(scores, kscores, rtol=1e-4, atol=1e-5)
    assert np.all(scores <= 0)


def test_beam_ignores_merge_repeated_like_keras(rng):
    # "1 blank 1" decodes to [1, 1] whatever merge_repeated says, in Keras 3 and here
    x = np.log(np.array([[[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]]], dtype=np.float32))
    for flag in (True, False):
        kw = dict(strategy="beam_search", merge_repeated=flag)
        np.testing.assert_array_equal(fk.ctc_decode(x, [3], **kw)[0], [[[1, 1, -1]]])
        np.testing.assert_array_equal(_keras_decode(x, np.array([3]), **kw)[0], [[[1, 1, -1]]])


def test_decode_takes_torch_tensors(rng):
    x = _logits(rng)
    a = fk.ctc_decode(torch.from_numpy(x), torch.full((6,), 8))
    b = fk.ctc_decode(x, np.full(6, 8))
    np.testing.assert_array_equal(a[0], b[0])


def test_decode_errors(rng):
    x = _logits(rng)
    with pytest.raises(ValueError, match="strategy"):
        fk.ctc_decode(x, np.full(6, 8), strategy="beam")
    with pytest.raises(ValueError, match="mask_index"):
        fk.ctc_decode(x, np.full(6, 8), mask_index=4)
    with pytest.raises(ValueError, match="3-D"):
        fk.ctc_decode(x[0], np.full(6, 8))


def test_top_level_ctc_decode_is_keras2_form():
    assert fastctc.ctc_decode is fk.ctc_decode_keras2


def _labels(rng, N=6, S=4, C=5):
    y = rng.integers(1, C, (N, S))
    for n, k in enumerate(rng.integers(0, S + 1, N)):
        y[n, k:] = 0
    return y.astype(np.int32)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", None])
def test_loss_and_gradient_equal_keras(rng, reduction):
    x = _logits(rng, N=6, T=10, C=5, scale=2.0)
    y = _labels(rng)
    values, grads = [], []
    for loss_fn in (fk.CTCLoss(reduction=reduction), keras.losses.CTC(reduction=reduction)):
        xt = torch.from_numpy(x).requires_grad_()
        loss = loss_fn(torch.from_numpy(y), xt)
        loss.sum().backward()
        values.append(loss.detach().numpy())
        grads.append(xt.grad.numpy())
    np.testing.assert_allclose(values[0], values[1], rtol=1e-5)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_loss_is_fastctc_sum_over_n(rng):
    x = _logits(rng, N=6, T=10, C=5)
    y = _labels(rng)
    got = float(fk.CTCLoss()(y, x))
    lp = fastctc.log_softmax(x)
    want = fastctc.ctc_loss(lp, y, None, (y != 0).sum(1), reduction="sum", batch_first=True)
    assert got == pytest.approx(float(want) / 6, rel=1e-5)


def test_loss_log_probs_and_pad_value(rng):
    x = _logits(rng, N=6, T=10, C=5)
    y = _labels(rng)
    ref = float(fk.CTCLoss()(y, x))
    lp = torch.from_numpy(fastctc.log_softmax(x)).requires_grad_()
    got = fk.CTCLoss(input_kind="log_probs", pad_value=-1)(np.where(y == 0, -1, y), lp)
    assert got.item() == pytest.approx(ref, rel=1e-5)
    got.backward()
    assert lp.grad.shape == x.shape


def test_loss_input_kind_is_explicit():
    with pytest.raises(ValueError, match="input_kind"):
        fk.CTCLoss(input_kind="probs")


def test_loss_config_round_trip():
    loss = fk.CTCLoss(input_kind="log_probs", pad_value=-1, reduction="sum")
    again = fk.CTCLoss.from_config(loss.get_config())
    assert (again.input_kind, again.pad_value, again.reduction) == ("log_probs", -1, "sum")


def _model(C=5, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((12, 3)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(C)]
    )


def test_training_curve_equals_keras(rng):
    x = rng.standard_normal((16, 12, 3)).astype(np.float32)
    y = _labels(rng, N=16)
    curves = []
    for loss in (fk.CTCLoss(), keras.losses.CTC()):
        model = _model()
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
        h = model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
        curves.append(h.history["loss"])
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-4)
    assert curves[0][-1] < curves[0][0]


def test_callback_logs_cer_and_wer(rng):
    x = rng.standard_normal((8, 12, 3)).astype(np.float32)
    y = _labels(rng, N=8)
    labels = ["", "a", "b", " ", "c"]
    model = _model()
    model.compile(optimizer="adam", loss=fk.CTCLoss())
    cb = fk.ErrorRateCallback(x, y, labels)
    beam = fk.ErrorRateCallback(x, y, labels, strategy="beam_search", beam_width=8, prefix="b_")
    dec = fastctc.build_ctcdecoder(labels)
    lm = fk.ErrorRateCallback(x, y, labels, decoder=dec, beam_width=8, prefix="lm_")
    h = model.fit(x, y, epochs=2, verbose=0, callbacks=[cb, beam, lm])
    for p in ("val_", "b_", "lm_"):
        assert len(h.history[f"{p}cer"]) == 2 and len(h.history[f"{p}wer"]) == 2
    refs = [cb.text(r[r != 0]) for r in y]
    assert h.history["val_cer"][-1] == pytest.approx(fastctc.cer(refs, cb.transcribe()))
    assert cb.references == refs


_OTHER_BACKEND = """
import numpy as np, keras, fastctc.keras as fk
rng = np.random.default_rng(0)
x = rng.standard_normal((6, 10, 5)).astype(np.float32) * 2
y = rng.integers(1, 5, (6, 4)).astype(np.int32)
y[0, 2:] = 0
y[3, 1:] = 0
curves = []
for loss in (fk.CTCLoss(), keras.losses.CTC()):
    assert np.allclose(keras.ops.convert_to_numpy(loss(y, x)), 12.368258, rtol=1e-5)
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((10, 5)), keras.layers.Dense(5)])
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    cb = fk.ErrorRateCallback(x, y, ["", "a", "b", "c", " "])
    h = m.fit(x, y, batch_size=3, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
    assert len(h.history["val_cer"]) == 3
    curves.append(h.history["loss"])
np.testing.assert_allclose(curves[0], curves[1], rtol=1e-4)
d, s = fk.ctc_decode(keras.ops.convert_to_tensor(x), np.full(6, 10), strategy="beam_search")
kd, ks = keras.ops.ctc_decode(x, np.full(6, 10), strategy="beam_search")
np.testing.assert_array_equal(d, keras.ops.convert_to_numpy(kd))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_other_backends(backend):
    """Loss, training curve and beam search on jax and tensorflow, where installed."""
    import importlib.util

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend)
    proc = subprocess.run(
        [sys.executable, "-c", _OTHER_BACKEND], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_loss_zero_infinity_and_label_shape(rng):
    x = _logits(rng, N=2, T=3, C=5)
    y = np.array([[1, 2, 3, 4], [1, 0, 0, 0]], dtype=np.int32)  # 4 labels cannot fit 3 frames
    assert np.isinf(fk.CTCLoss(reduction=None)(y, x).numpy()[0])
    xt = torch.from_numpy(x).requires_grad_()
    loss = fk.CTCLoss(reduction=None, zero_infinity=True)(y, xt)
    assert loss[0].item() == 0.0 and loss[1].item() > 0
    loss.sum().backward()
    assert not xt.grad[0].any()
    with pytest.raises(ValueError, match="y_true must be 2-D"):
        fk.CTCLoss()(y[:, :, None], x)
