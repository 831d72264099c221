"""Keras bridges: Keras 3's ``ctc_decode``, a CTC loss, a CER/WER callback; Keras 2's decode.

* :func:`ctc_decode` -- ``keras.ops.ctc_decode``'s arguments and results (logits in, blank at
  ``mask_index``, ``(top_paths, N, T)`` int32 padded with -1), with natural-log scores.
* ``CTCLoss`` -- a ``keras.losses.Loss`` on fastctc's kernels, equal to ``keras.losses.CTC``.
* ``ErrorRateCallback`` -- decodes validation data after each epoch and logs CER and WER.
* :func:`ctc_decode_keras2` -- Keras 2's ``keras.backend.ctc_decode`` (softmax in, blank
  last), the form exported as ``fastctc.ctc_decode``.

``import fastctc`` does not import keras: ``CTCLoss`` and ``ErrorRateCallback`` are built on
first access (``from fastctc.keras import CTCLoss``), importing keras then. The loss runs on
the torch, jax and tensorflow backends (the gradient comes from fastctc's kernels, through
``torch.autograd.Function``, ``jax.custom_vjp`` or ``tf.custom_gradient``); the decoding
functions take NumPy arrays or any backend's tensors and return NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _validate as v
from .greedy import greedy_decode_batch
from .loss import ctc_loss
from .metrics import cer, wer
from .ops import log_softmax
from .prefix_beam import beam_search_batch, check_search_args

_STRATEGIES = ("greedy", "beam_search")
_KINDS = ("logits", "log_probs")
_built: dict[str, Any] = {}  # classes subclassing keras or torch, defined on first use


def _to_numpy(x: Any) -> Any:
    """A backend tensor (torch, jax, tensorflow) as a NumPy array; other inputs unchanged."""
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return x
    if hasattr(x, "detach"):  # torch, without importing it
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy"):  # tensorflow eager
        return x.numpy()
    return np.asarray(x)  # jax and other array-likes


def ctc_decode(
    inputs: npt.ArrayLike,
    sequence_lengths: npt.ArrayLike,
    strategy: str = "greedy",
    beam_width: int = 100,
    top_paths: int = 1,
    merge_repeated: bool = True,
    mask_index: int | None = 0,
    *,
    beam_prune_logp: float = -np.inf,
    token_min_logp: float = -np.inf,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode logits as Keras 3's ``keras.ops.ctc_decode`` does, with log-probability scores.

    Same arguments, defaults and result shapes as Keras 3: batch-first logits (softmax is
    applied here), blank at ``mask_index``, ``decoded`` of shape ``(top_paths, N, T)``
    padded with -1. Greedy decoding takes the best class per frame, merges repeats (if
    ``merge_repeated``) and drops blanks; beam search is the prefix beam search of
    :func:`fastctc.beam_search_batch`, by default without pruning thresholds (only
    ``beam_width``).

    Differences from Keras 3 (3.15), and where they agree:

    * ``scores`` are natural-log probabilities (<= 0) in both strategies: greedy, of the best
      path (the sum of each frame's largest log-softmax); beam, of the decoded labelling (the
      log of the sum over its alignments). Keras' greedy score is minus the sum of the
      per-frame largest *inputs* (on logits a number of either sign, on softmax input minus a
      sum of probabilities), not a log-probability; its beam score is a log-probability, as
      here. ``np.exp(scores)`` gives probabilities.
    * Greedy with ``merge_repeated=False`` keeps every non-blank frame ("a a a a" gives four
      labels), as Keras and TensorFlow do; beam search ignores ``merge_repeated``, as Keras 3
      does.
    * Beam search keeps the ``beam_width`` most probable prefixes after every frame; the
      tests find Keras' sequences and scores on random inputs. Keras' search seeds its paths
      from the first frame even where ``sequence_lengths`` is 0 (fastctc returns an empty
      result and score 0 there, as greedy decoding does in both); on ties between equally
      probable labellings the order can differ.
    * Where fewer than ``top_paths`` labellings exist, the missing rows are all -1 with score
      ``-inf``, as in Keras.
    * Results are NumPy arrays (Keras returns backend tensors); ``inputs`` may be either.

    Parameters
    ----------
    inputs : array_like of shape (N, T, C)
        Logits (unnormalised scores), batch first.
    sequence_lengths : array_like of int, shape (N,)
        Valid frames of each sample, in ``[0, T]``.
    strategy : {"greedy", "beam_search"}
        Best-path decoding or prefix beam search.
    beam_width : int
        Prefixes kept per frame (beam search).
    top_paths : int
        Results per sample (beam search), ``1 <= top_paths <= beam_width``; greedy returns one.
    merge_repeated : bool
        Greedy: merge equal neighbouring frames before dropping blanks (the CTC rule).
    mask_index : int or None
        The blank class; None means ``C - 1``, as Keras.
    beam_prune_logp, token_min_logp : float
        Beam search pruning thresholds of :func:`fastctc.beam_search_batch` (fastctc's
        additions; ``-10.0`` and ``-5.0`` make large alphabets fast).
    num_threads : int, optional
        Worker threads (default: every available core).

    Returns
    -------
    decoded : ndarray of int32, shape (top_paths, N, T)
        Labels of each result, best first, padded with -1 (``top_paths`` is 1 for greedy).
    scores : ndarray of shape (N, top_paths), float dtype of ``inputs`` (float32 at least)
        Natural-log probability of each result (<= 0).

    Raises
    ------
    TypeError, ValueError
        Non-floating ``inputs``, wrong shapes, ``sequence_lengths`` outside ``[0, T]``,
        ``mask_index`` outside ``[0, C)``, an unknown ``strategy``, ``beam_width < 1``,
        ``top_paths`` outside ``[1, beam_width]``.

    Examples
    --------
    >>> import numpy as np, fastctc.keras
    >>> logits = np.log(np.array([[[.1, .9], [.2, .8], [.9, .1], [.1, .9]]]))  # blank 0
    >>> decoded, scores = fastctc.keras.ctc_decode(logits, [4])
    >>> decoded.tolist(), np.round(np.exp(scores), 4).tolist()
    ([[[1, 1, -1, -1]]], [[0.5832]])
    >>> decoded, scores = fastctc.keras.ctc_decode(logits, [4], strategy="beam_search")
    >>> decoded.tolist(), np.round(np.exp(scores), 4).tolist()  # all alignments of [1, 1]
    ([[[1, 1, -1, -1]]], [[0.8118]])
    """
    x = v.as_float_array(_to_numpy(inputs), "inputs")
    v.check_ndim(x, "inputs", (3,), "3-D (N, T, C) logits, batch first")
    N, T, C = x.shape
    if C < 1:
        raise ValueError("inputs must have at least one class (the blank); got C = 0.")
    lens = v.as_lengths(_to_numpy(sequence_lengths), "sequence_lengths", N, T, "T")
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be 'greedy' or 'beam_search'; got {strategy!r}.")
    if not isinstance(merge_repeated, (bool, np.bool_)):
        raise TypeError(f"merge_repeated must be a bool; got {merge_repeated!r}.")
    blank = C - 1 if mask_index is None else mask_index
    if isinstance(blank, (bool, np.bool_)) or not isinstance(blank, (int, np.integer)):
        raise TypeError(f"mask_index must be an int or None; got {mask_index!r}.")
    if not 0 <= blank < C:
        raise ValueError(f"mask_index must be in [0, {C}) for C = {C} classes; got {blank}.")
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    lp = log_softmax(x, axis=-1)
    if strategy == "greedy":
        hyps = [[h] for h in greedy_decode_batch(lp, lens, int(blank), num_threads=num_threads)]
        paths = 1
        if not merge_repeated:
            # every non-blank frame is a label; the score (best path) is the same
            best = lp.argmax(axis=-1)
            valid = np.arange(T)[None, :] < lens[:, None]
            keep = valid & (best != blank)
            seqs = [[best[n][keep[n]]] for n in range(N)]
        else:
            seqs = [[h[0].tokens] for h in hyps]
    else:
        k, paths = check_search_args(beam_width, top_paths)
        hyps = beam_search_batch(
            lp,
            lens,
            beam_width=k,
            blank=int(blank),
            top_paths=paths,
            beam_prune_logp=beam_prune_logp,
            token_min_logp=token_min_logp,
            num_threads=num_threads,
        )
        seqs = [[h.tokens for h in hs] for hs in hyps]
    decoded = np.full((paths, N, T), -1, dtype=np.int32)
    scores = np.full((N, paths), -np.inf, dtype=lp.dtype)
    for n in range(N):
        for j, (tokens, h) in enumerate(zip(seqs[n], hyps[n], strict=True)):
            decoded[j, n, : len(tokens)] = tokens
            scores[n, j] = h.log_prob
    return decoded, scores


def _check_kind(input_kind: Any) -> str:
    if input_kind not in _KINDS:
        raise ValueError(
            f"input_kind must be 'logits' or 'log_probs'; got {input_kind!r}. Probabilities "
            "(softmax outputs) are not accepted: drop the softmax and pass logits."
        )
    return str(input_kind)


def _labels_and_lengths(y_true: Any, pad_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded labels (N, S) as int64 and their lengths, counted as Keras counts them."""
    y = np.asarray(_to_numpy(y_true))
    if y.ndim != 2:
        raise ValueError(
            f"y_true must be 2-D (N, S) padded labels; got shape {y.shape}. Pad each label "
            "sequence to the longest with pad_value."
        )
    labels = np.rint(y).astype(np.int64) if y.dtype.kind == "f" else y.astype(np.int64)
    return labels, (labels != pad_value).sum(axis=1).astype(np.int64)


def _loss_and_grad(
    y_pred: np.ndarray,
    labels: np.ndarray,
    lengths: np.ndarray,
    blank: int,
    input_kind: str,
    zero_infinity: bool,
    want_grad: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-sample losses (N,) and the gradient of their sum with respect to ``y_pred``."""
    x = y_pred if y_pred.dtype in (np.float32, np.float64) else y_pred.astype(np.float32)
    lp = log_softmax(x, axis=-1) if input_kind == "logits" else x
    out = ctc_loss(
        lp,
        labels,
        None,
        lengths,
        blank,
        reduction="none",
        zero_infinity=zero_infinity,
        batch_first=True,
        return_grad=want_grad,
        grad_wrt="logits" if input_kind == "logits" else "log_probs",
    )
    return out if want_grad else (out, None)


def _torch_function() -> Any:
    """The ``torch.autograd.Function`` of the loss (defined once, on first use)."""
    if "torch" in _built:
        return _built["torch"]
    import torch

    class _KerasCTC(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, labels: Any, lengths: Any, spec: Any) -> Any:  # type: ignore[override]
            blank, _, kind, zinf = spec
            want_grad = bool(ctx.needs_input_grad[0])
            loss, grad = _loss_and_grad(
                x.detach().cpu().numpy(), labels, lengths, blank, kind, zinf, want_grad
            )
            if grad is not None:
                ctx.save_for_backward(torch.from_numpy(grad).to(device=x.device, dtype=x.dtype))
            return torch.from_numpy(np.asarray(loss)).to(device=x.device, dtype=x.dtype)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
            (grad,) = ctx.saved_tensors
            return grad * g.to(grad.dtype)[:, None, None], None, None, None

    _built["torch"] = _KerasCTC
    return _KerasCTC


def _torch_ctc(y_true: Any, y_pred: Any, spec: tuple[int, int, str, bool]) -> Any:
    """Per-sample losses as a torch tensor, differentiable through fastctc's gradient."""
    labels, lengths = _labels_and_lengths(y_true, spec[1])
    return _torch_function().apply(y_pred, labels, lengths, spec)


def _jax_ctc(y_true: Any, y_pred: Any, spec: tuple[int, int, str, bool]) -> Any:
    """Per-sample losses as a jax array: ``jax.custom_vjp`` around a ``pure_callback``."""
    import jax
    import jax.numpy as jnp

    blank, pad_value, kind, zinf = spec

    def host(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        labels, lengths = _labels_and_lengths(np.asarray(y), pad_value)
        x = np.asarray(x)
        loss, grad = _loss_and_grad(x, labels, lengths, blank, kind, zinf, True)
        return np.asarray(loss, dtype=x.dtype), np.asarray(grad, dtype=x.dtype)

    def fwd(x: Any, y: Any) -> Any:
        shapes = (
            jax.ShapeDtypeStruct(x.shape[:1], x.dtype),
            jax.ShapeDtypeStruct(x.shape, x.dtype),
        )
        loss, grad = jax.pure_callback(host, shapes, x, y)
        return loss, (grad, y)

    @jax.custom_vjp
    def ctc(x: Any, y: Any) -> Any:
        return fwd(x, y)[0]

    def bwd(res: Any, g: Any) -> Any:
        grad, y = res
        return grad * g[:, None, None], jnp.zeros_like(y)

    ctc.defvjp(fwd, bwd)
    return ctc(y_pred, y_true)


def _tensorflow_ctc(y_true: Any, y_pred: Any, spec: tuple[int, int, str, bool]) -> Any:
    """Per-sample losses as a tf tensor: ``tf.custom_gradient`` around ``tf.numpy_function``."""
    import tensorflow as tf

    blank, pad_value, kind, zinf = spec

    def host(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        labels, lengths = _labels_and_lengths(y, pad_value)
        loss, grad = _loss_and_grad(x, labels, lengths, blank, kind, zinf, True)
        return np.asarray(loss, dtype=x.dtype), np.asarray(grad, dtype=x.dtype)

    @tf.custom_gradient
    def ctc(x: Any) -> Any:
        loss, grad = tf.numpy_function(host, [x, y_true], [x.dtype, x.dtype], stateful=False)
        loss.set_shape(x.shape[:1])
        grad.set_shape(x.shape)
        return loss, lambda g: grad * tf.cast(g, grad.dtype)[:, None, None]

    return ctc(y_pred)


_BACKENDS = {"torch": _torch_ctc, "jax": _jax_ctc, "tensorflow": _tensorflow_ctc}


def _build() -> dict[str, Any]:
    """Define the classes that subclass Keras' (keras is imported here, once)."""
    if "CTCLoss" in _built:
        return _built
    import keras

    @keras.saving.register_keras_serializable(package="fastctc")
    class CTCLoss(keras.losses.Loss):
        """CTC loss for ``model.compile(loss=...)`` on fastctc's kernels.

        ``CTCLoss()`` computes what ``keras.losses.CTC()`` computes: ``y_true`` holds padded
        labels (N, S), ``y_pred`` the model's batch-first outputs (N, T, C), every sample has
        all ``T`` frames, the label length is the number of entries that differ from
        ``pad_value``, and Keras' ``reduction`` is applied to the per-sample negative
        log-likelihoods (the default ``"sum_over_batch_size"`` is fastctc's ``"sum"`` divided
        by ``N``; fastctc's and torch's ``"mean"`` divides by target lengths too, Keras does
        not). The gradient is computed with the loss, in one pass of fastctc's kernels, and
        handed to the backend's autograd (torch: ``torch.autograd.Function``; jax:
        ``jax.custom_vjp`` around ``jax.pure_callback``; tensorflow: ``tf.custom_gradient``
        around ``tf.numpy_function``). Other backends (numpy, openvino) raise
        ``NotImplementedError``.

        Parameters
        ----------
        input_kind : {"logits", "log_probs"}
            What ``y_pred`` holds: ``"logits"`` (as ``keras.losses.CTC``; log-softmax is
            applied here) or ``"log_probs"`` (a final ``log_softmax``). Nothing is guessed;
            softmax probabilities are not accepted.
        blank : int
            The blank class (Keras' ``mask_index``, 0).
        pad_value : int, optional
            The value padding ``y_true``; default ``blank``, as Keras.
        zero_infinity : bool
            Losses of samples whose labels cannot fit their frames (infinite) and their
            gradients become 0 (Keras returns inf).
        reduction, name, dtype
            As ``keras.losses.Loss``.

        Raises
        ------
        ValueError
            Unknown ``input_kind``; at call time, labels out of range or ``y_true`` not 2-D.
        NotImplementedError
            A backend other than torch, jax or tensorflow.
        """

        def __init__(
            self,
            input_kind: str = "logits",
            blank: int = 0,
            pad_value: int | None = None,
            zero_infinity: bool = False,
            reduction: str | None = "sum_over_batch_size",
            name: str = "ctc",
            dtype: Any = None,
        ) -> None:
            super().__init__(name=name, reduction=reduction, dtype=dtype)
            self.input_kind = _check_kind(input_kind)
            self.blank = int(blank)
            self.pad_value = self.blank if pad_value is None else int(pad_value)
            self.zero_infinity = bool(zero_infinity)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            name = keras.backend.backend()
            if name not in _BACKENDS:
                raise NotImplementedError(
                    "fastctc.keras.CTCLoss runs on the torch, jax and tensorflow backends; "
                    f"got {name!r}. Set KERAS_BACKEND, or use keras.losses.CTC."
                )
            spec = (self.blank, self.pad_value, self.input_kind, self.zero_infinity)
            return _BACKENDS[name](y_true, y_pred, spec)

        def get_config(self) -> dict[str, Any]:
            config = super().get_config()
            config.update(
                input_kind=self.input_kind,
                blank=self.blank,
                pad_value=self.pad_value,
                zero_infinity=self.zero_infinity,
            )
            return config

    class ErrorRateCallback(keras.callbacks.Callback):
        """Decode validation data with fastctc after each epoch; log CER and WER.

        At the end of every epoch, the model's outputs on ``x`` are decoded (greedy, prefix beam
        search, or a :class:`fastctc.BeamSearchDecoderCTC` with its language model), the
        labels are turned into text with ``labels`` and compared with the references. The
        rates go into the epoch's ``logs`` as ``{prefix}cer`` and ``{prefix}wer`` (default
        ``val_cer``, ``val_wer``), where ``History``, ``EarlyStopping``, ``ModelCheckpoint``
        and the progress bar see them (pass this callback before those that read them).

        Parameters
        ----------
        x : array_like
            Validation inputs (an array or tensor, sliced into batches of ``batch_size``).
        references : sequence of str, or array_like of int of shape (N, S)
            Reference texts, or padded label ids (``pad_value`` padding) turned into text
            with ``labels``.
        labels : sequence of str
            Text of each class; the blank's entry is ignored.
        input_kind : {"logits", "log_probs"}
            What the model outputs (softmax is applied to logits before decoding).
        strategy : {"greedy", "beam_search"}
            Decoding without a ``decoder``.
        beam_width : int
            Beam width for ``"beam_search"`` and for ``decoder``.
        decoder : BeamSearchDecoderCTC, optional
            Decode with this decoder (its own labels, blank and language model) instead.
        blank, pad_value : int
            The blank class and the padding of ``references`` (default ``blank``).
        sequence_lengths : array_like of int, shape (N,), optional
            Valid frames of each output (default: all).
        batch_size : int
            Samples per model call.
        prefix : str
            Prefix of the logged names.
        """

        def __init__(
            self,
            x: Any,
            references: Any,
            labels: Sequence[str],
            *,
            input_kind: str = "logits",
            strategy: str = "greedy",
            beam_width: int = 100,
            decoder: Any = None,
            blank: int = 0,
            pad_value: int | None = None,
            sequence_lengths: Any = None,
            batch_size: int = 32,
            prefix: str = "val_",
        ) -> None:
            super().__init__()
            self.x = x
            self.labels = list(labels)
            self.input_kind = _check_kind(input_kind)
            if strategy not in _STRATEGIES:
                raise ValueError(f"strategy must be 'greedy' or 'beam_search'; got {strategy!r}.")
            self.strategy = strategy
            self.beam_width = beam_width
            self.decoder = decoder
            self.blank = int(blank)
            self.sequence_lengths = sequence_lengths
            self.batch_size = batch_size
            self.prefix = prefix
            if len(references) and not isinstance(references[0], str):
                labels_, lengths = _labels_and_lengths(
                    references, self.blank if pad_value is None else int(pad_value)
                )
                references = [self.text(r[:n]) for r, n in zip(labels_, lengths, strict=True)]
            self.references = list(references)

        def text(self, ids: Any) -> str:
            """The text of a sequence of label ids."""
            return "".join(self.labels[i] for i in ids if i != self.blank)

        def transcribe(self) -> list[str]:
            """Decode the model's outputs on ``x`` (what each epoch compares)."""
            # the model is called batch by batch: model.predict's NumPy conversion warns on
            # the torch backend with NumPy 2
            x, bs = self.x, self.batch_size
            parts = [self.model(x[i : i + bs], training=False) for i in range(0, len(x), bs)]
            out = np.concatenate([np.asarray(_to_numpy(p)) for p in parts])
            N, T = out.shape[:2]
            lens = np.full(N, T) if self.sequence_lengths is None else self.sequence_lengths
            lens = np.asarray(_to_numpy(lens), dtype=np.int64)
            if self.decoder is not None:
                lp = log_softmax(out, axis=-1) if self.input_kind == "logits" else out
                items = [lp[n, : lens[n]] for n in range(N)]
                return list(self.decoder.decode_batch(None, items, beam_width=self.beam_width))
            decoded, _ = ctc_decode(
                out,
                lens,
                strategy=self.strategy,
                beam_width=self.beam_width,
                mask_index=self.blank,
            )
            return [self.text(row[row >= 0]) for row in decoded[0]]

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            hyps = self.transcribe()
            if logs is not None:
                logs[f"{self.prefix}cer"] = cer(self.references, hyps)
                logs[f"{self.prefix}wer"] = wer(self.references, hyps)

    _built.update(CTCLoss=CTCLoss, ErrorRateCallback=ErrorRateCallback)
    return _built


def __getattr__(name: str) -> Any:
    if name in ("CTCLoss", "ErrorRateCallback"):
        return _build()[name]
    raise AttributeError(f"module 'fastctc.keras' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "CTCLoss", "ErrorRateCallback"])


def ctc_decode_keras2(
    y_pred: npt.ArrayLike,
    input_length: npt.ArrayLike,
    greedy: bool = True,
    beam_width: int = 100,
    top_paths: int = 1,
    merge_repeated: bool = False,
    beam_prune_logp: float = -np.inf,
    token_min_logp: float = -np.inf,
    num_threads: int | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Decode softmax outputs the way Keras 2's ``keras.backend.ctc_decode`` does.

    This is the form ``fastctc.ctc_decode`` exports (for Keras 2 and tf.keras users); for
    Keras 3's ``keras.ops.ctc_decode`` (logits, blank 0) use :func:`ctc_decode`.

    Same inputs as Keras: batch-major softmax probabilities, the blank is the last class
    ``C - 1``, and ``input_length`` gives each sample's valid frames. Greedy mode takes the
    best class per frame, merges repeats and drops blanks; beam mode is the prefix beam
    search of :func:`fastctc.beam_search_batch`, by default with no pruning thresholds (only
    ``beam_width``), as TensorFlow's beam decoder.

    Differences from Keras:

    * ``log_probs`` has one meaning in both modes: the natural-log probability of the
      decoded result, always <= 0 -- greedy: of the best path (sum of the chosen frames'
      log-probabilities); beam: of the decoded prefix (log of the sum over its alignments).
      Keras' greedy mode returns the *negated* best-path sum (a positive number), its beam
      mode negative log-probabilities; so for greedy, ``fastctc == -keras``. Use
      ``np.exp(log_probs)`` for probabilities.
    * Keras takes ``log(y_pred + 1e-7)``; fastctc takes ``log(y_pred)`` (a zero probability is
      log-zero), so values differ by about ``1e-7 / p`` per frame.
    * Greedy mode returns a single path whatever ``top_paths`` is, as Keras does.
    * Keras' beam mode calls TensorFlow's v1 beam decoder with its default
      ``merge_repeated=True``, which also merges equal neighbours in the *returned* labels
      (a decoded ``[3, 3]``, i.e. "3, blank, 3", comes back as ``[3]``). fastctc returns the
      prefix as found; pass ``merge_repeated=True`` for Keras 2's output. (Keras 3's
      ``keras.ops.ctc_decode`` is another function: see :func:`ctc_decode`.)

    Parameters
    ----------
    y_pred : array_like of shape (N, T, C)
        Softmax probabilities; class ``C - 1`` is the blank.
    input_length : array_like of int, shape (N,) or (N, 1)
        Valid frames of each sample.
    greedy : bool
        Best-path decoding if true, else prefix beam search.
    beam_width : int
        Beam width (beam mode).
    top_paths : int
        Hypotheses per sample (beam mode), ``1 <= top_paths <= beam_width``.
    merge_repeated : bool
        Beam mode: merge equal neighbouring labels of each result, as Keras does
        (``log_probs`` unchanged).
    beam_prune_logp, token_min_logp : float
        Beam mode: pruning thresholds of :func:`fastctc.beam_search_batch`. The default
        ``-inf`` scores every class at every frame, as TensorFlow does (cost grows with
        ``beam_width x C``); ``-10.0`` and ``-5.0`` make large alphabets (OCR, subwords) fast.
    num_threads : int, optional
        Worker threads (default: every available core).

    Returns
    -------
    decoded : list of ndarray of int64, shape (N, max_len)
        ``top_paths`` arrays (one in greedy mode), best first; row ``n`` holds sample ``n``'s
        labels padded with -1; ``max_len`` is the longest decoded sequence of that rank in the
        batch (0 if all are empty).
    log_probs : ndarray of float64, shape (N, top_paths)
        Natural-log probability of each result (<= 0); ``-inf`` where fewer than
        ``top_paths`` prefixes survived.

    Raises
    ------
    TypeError, ValueError
        Non-floating ``y_pred``, wrong shapes, ``input_length`` outside ``[0, T]``, negative
        probabilities, ``beam_width < 1``, ``top_paths`` outside ``[1, beam_width]``.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> y = np.array([[[.1, .9], [.2, .8], [.9, .1], [.1, .9]]])  # blank is class 1
    >>> decoded, log_probs = fastctc.keras.ctc_decode_keras2(y, [4])
    >>> decoded[0].tolist(), np.round(np.exp(log_probs), 4).tolist()
    ([[0]], [[0.5832]])
    """
    y = v.as_float_array(y_pred, "y_pred")
    v.check_ndim(y, "y_pred", (3,), "3-D (N, T, C) softmax probabilities")
    N, T, C = y.shape
    if C < 1:
        raise ValueError("y_pred must have at least one class (the blank); got C = 0.")
    if np.any(y < 0):
        raise ValueError(
            "y_pred must hold probabilities (>= 0); got negative values. ctc_decode takes "
            "softmax outputs, not logits or log-probabilities."
        )
    il = v.as_int_array(input_length, "input_length")
    if il.ndim == 2 and il.shape[1] == 1:
        il = il[:, 0]
    lens = v.as_lengths(il, "input_length", N, T, "T")
    for name, flag in (("greedy", greedy), ("merge_repeated", merge_repeated)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool; got {type(flag).__name__} {flag!r}.")
    with np.errstate(divide="ignore"):
        lp = np.log(y)
    blank = C - 1
    if greedy:
        hyps = [[h] for h in greedy_decode_batch(lp, lens, blank, num_threads=num_threads)]
        paths = 1
    else:
        k, paths = check_search_args(beam_width, top_paths)
        hyps = beam_search_batch(
            lp,
            lens,
            beam_width=k,
            blank=blank,
            top_paths=paths,
            beam_prune_logp=beam_prune_logp,
            token_min_logp=token_min_logp,
            num_threads=num_threads,
        )
    decoded = []
    log_probs = np.full((N, paths), -np.inf)
    for j in range(paths):
        seqs = [h[j].tokens if j < len(h) else np.zeros(0, np.int64) for h in hyps]
        if merge_repeated and not greedy:
            seqs = [x[np.r_[True, x[1:] != x[:-1]]] if x.size else x for x in seqs]
        out = np.full((N, max((x.size for x in seqs), default=0)), -1, dtype=np.int64)
        for n, h in enumerate(hyps):
            out[n, : seqs[n].size] = seqs[n]
            if j < len(h):
                log_probs[n, j] = h[j].log_prob
        decoded.append(out)
    return decoded, log_probs
