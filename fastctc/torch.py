"""PyTorch adapter: fastctc's CTC loss as an autograd function and an ``nn.Module``.

``import fastctc.torch`` imports torch (``import fastctc`` never does). CPU tensors run the
Numba CPU kernels on the tensors' own memory (``tensor.numpy()`` views, results wrapped with
``torch.from_numpy``); CUDA tensors run the numba.cuda kernels of :mod:`fastctc.cuda` in place
through ``__cuda_array_interface__``, on torch's current stream, with outputs wrapped by
``torch.as_tensor`` without a copy. Only the small targets and lengths visit the host.

Gradient convention
-------------------
The backward pass returns ``grad_output`` times the exact derivative of the loss with respect
to the ``log_probs`` it was given: ``-occupancy[t, c]``, the posterior probability of class
``c`` at frame ``t``. It is correct whatever produced ``log_probs`` (rows need not sum to
one), so ``torch.autograd.gradcheck`` passes.

``torch.nn.functional.ctc_loss`` instead returns ``exp(log_probs) - occupancy`` as the
gradient of ``log_probs``: the gradient with respect to the *logits* when
``log_probs = log_softmax(logits)``, which is only a derivative of the loss after
``log_softmax``. Both conventions give the same gradient for the logits (the
``exp(log_probs)`` term is absorbed by the backward of ``log_softmax``), so training a model
ending in ``log_softmax`` is unchanged; the gradients read on ``log_probs`` itself differ.

torch.compile
-------------
The loss is the custom op ``torch.ops.fastctc.ctc_loss`` (``torch.library.custom_op``) with a
fake-tensor implementation and an autograd formula, so compiled code calls fastctc's kernels
as one opaque node: ``torch.compile(fullgraph=True)`` traces a model and its loss without graph
breaks, whether or not fastctc ran before in the process. The op returns the loss and the
gradient (computed together in the forward pass; an empty tensor when no gradient is needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import _validate as _v
from .align import forced_align as _np_forced_align
from .align import merge_tokens as _np_merge_tokens
from .loss import _REDUCTIONS
from .loss import ctc_loss as _cpu_ctc_loss

__all__ = ["CTCLoss", "TokenSpan", "ctc_loss", "forced_align", "merge_tokens"]

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _host_ints(x: Any) -> Any:
    """Targets/lengths as something NumPy reads: CPU copies of tensors, others unchanged."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


def _cuda_forward(
    lp: torch.Tensor,
    targets: Any,
    input_lengths: Any,
    target_lengths: Any,
    blank: int,
    reduction: str,
    zero_infinity: bool,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    from numba import cuda

    from . import cuda as fcuda

    device = lp.device
    index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.cuda.device(device), cuda.gpus[index]:
        stream = cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)

        def allocate(shape: tuple[int, ...], dtype: Any) -> Any:
            # workspace and outputs from torch's caching allocator, not cudaMalloc per call
            t = torch.empty(shape, dtype=_TORCH_DTYPES[np.dtype(dtype)], device=device)
            return cuda.as_cuda_array(t, sync=False)  # used on the stream that made it

        def ints(x: Any) -> Any:
            if isinstance(x, torch.Tensor) and x.is_cuda:
                return x.detach()
            return _host_ints(x)

        src = lp.detach()
        if src.dtype not in (torch.float32, torch.float64):
            src = src.float()
        if src.dim() == 2:
            src = src.contiguous()
        # the kernels run on torch's current stream, which orders them after the producer
        out = fcuda.ctc_loss(
            cuda.as_cuda_array(src, sync=False),
            ints(targets),
            ints(input_lengths),
            ints(target_lengths),
            blank=blank,
            reduction=reduction,
            zero_infinity=zero_infinity,
            return_grad=want_grad,
            stream=stream,
            _allocator=allocate,
        )
    if want_grad:
        loss, grad = out
        return (
            torch.as_tensor(loss, device=device),
            torch.as_tensor(grad, device=device).to(lp.dtype),
        )
    return torch.as_tensor(out, device=device), None


def _cpu_forward(
    lp: torch.Tensor,
    targets: Any,
    input_lengths: Any,
    target_lengths: Any,
    blank: int,
    reduction: str,
    zero_infinity: bool,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    src = lp.detach()
    if src.dtype not in (torch.float32, torch.float64):
        src = src.float()
    out = _cpu_ctc_loss(
        src.numpy(),
        _host_ints(targets),
        _host_ints(input_lengths),
        _host_ints(target_lengths),
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
        return_grad=want_grad,
        grad_wrt="log_probs",
    )
    loss, grad = out if want_grad else (out, None)
    loss_t = torch.from_numpy(np.array(loss, dtype=src.numpy().dtype))
    grad_t = torch.from_numpy(grad).to(lp.dtype) if grad is not None else None
    return loss_t, grad_t


def _as_tensor(x: Any) -> torch.Tensor:
    """Targets or lengths as a tensor for the custom op (tensors unchanged, no copy)."""
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)


@torch.library.custom_op("fastctc::ctc_loss", mutates_args=())
def _ctc_loss_op(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    reduction: str,
    zero_infinity: bool,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and, when ``want_grad``, its gradient on ``log_probs`` (else an empty tensor).

    A custom op, so that ``torch.compile`` calls it as one opaque node: Dynamo never traces
    into NumPy or Numba, and fake tensors get their shapes from :func:`_ctc_loss_fake`.
    """
    run = _cuda_forward if log_probs.is_cuda else _cpu_forward
    loss, grad = run(
        log_probs,
        targets,
        input_lengths,
        target_lengths,
        blank,
        reduction,
        zero_infinity,
        want_grad,
    )
    loss = loss.to(log_probs.dtype) if loss.dtype != log_probs.dtype else loss
    if grad is None:
        grad = log_probs.new_empty(0)
    return loss, grad


@_ctc_loss_op.register_fake
def _ctc_loss_fake(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    reduction: str,
    zero_infinity: bool,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    batched = reduction == "none" and log_probs.dim() == 3
    loss = log_probs.new_empty((log_probs.shape[1],) if batched else ())
    grad = torch.empty_like(log_probs) if want_grad else log_probs.new_empty(0)
    return loss, grad


def _ctc_setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.save_for_backward(output[1])


def _ctc_backward(ctx: Any, grad_loss: torch.Tensor, _grad_grad: Any) -> tuple[Any, ...]:
    (grad,) = ctx.saved_tensors
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        # the saved gradient is a constant here: a second derivative would be silently wrong
        raise RuntimeError(
            "fastctc.torch.ctc_loss is differentiable once; backward(create_graph=True) "
            "is not supported."
        )
    if grad_loss.dim() == 1:  # reduction "none", batched: one weight per sequence
        g = grad * grad_loss.to(grad.dtype)[None, :, None]
    else:
        g = grad * grad_loss.to(grad.dtype)
    return g, None, None, None, None, None, None, None


_ctc_loss_op.register_autograd(_ctc_backward, setup_context=_ctc_setup_context)


def ctc_loss(
    log_probs: torch.Tensor,
    targets: Any,
    input_lengths: Any,
    target_lengths: Any,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> torch.Tensor:
    """CTC loss with :func:`torch.nn.functional.ctc_loss`'s arguments, on fastctc's kernels.

    Parameters
    ----------
    log_probs : Tensor of shape (T, N, C) or (T, C)
        Log-probabilities, float32 or float64 (other floats are computed in float32), on the
        CPU or a CUDA device.
    targets : Tensor or array of int, shape (N, S) padded or (sum(target_lengths),)
        Label ids, never ``blank``.
    input_lengths, target_lengths : Tensor or array of int, shape (N,)
        Valid frames and target length of each sequence.
    blank : int
        Index of the blank class.
    reduction : {"mean", "sum", "none"}
        As torch: ``"mean"`` divides each loss by its target length (clamped to >= 1) and
        averages over the batch.
    zero_infinity : bool
        Replace infinite losses and their gradients by zeros.

    Returns
    -------
    Tensor
        The loss, on ``log_probs``' device: shape (N,) for ``"none"``, else a scalar.
        Differentiable with respect to ``log_probs``; see the module notes for how its
        gradient differs from torch's.

    Raises
    ------
    TypeError
        As :func:`fastctc.ctc_loss`; also an integer, bool or complex ``log_probs`` tensor.
    ValueError
        As :func:`fastctc.ctc_loss`.

    Examples
    --------
    >>> import torch, fastctc.torch
    >>> lp = torch.zeros(4, 1, 3, dtype=torch.float64).log_softmax(-1).requires_grad_()
    >>> loss = fastctc.torch.ctc_loss(lp, torch.tensor([[1, 2]]), [4], [2], reduction="sum")
    >>> round(loss.item(), 4)
    1.6864
    >>> loss.backward()
    >>> lp.grad.shape
    torch.Size([4, 1, 3])
    """
    if isinstance(log_probs, torch.Tensor) and not log_probs.is_floating_point():
        # the loss is returned in log_probs' dtype: an integer or bool loss would be garbage
        raise TypeError(
            "log_probs must be a floating-point tensor (float32 or float64); "
            f"got dtype {log_probs.dtype}."
        )
    if reduction not in _REDUCTIONS:
        # checked here as fastctc.ctc_loss does, so that fake tensors and kernels agree
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}.")
    want_grad = torch.is_grad_enabled() and log_probs.requires_grad
    loss, _ = _ctc_loss_op(
        log_probs,
        _as_tensor(targets),
        _as_tensor(input_lengths),
        _as_tensor(target_lengths),
        _v.as_int(blank, "blank"),
        reduction,
        bool(zero_infinity),
        want_grad,
    )
    return loss


class CTCLoss(torch.nn.Module):
    """``torch.nn.CTCLoss`` on fastctc's kernels; see :func:`ctc_loss`.

    Parameters
    ----------
    blank : int
        Index of the blank class.
    reduction : {"mean", "sum", "none"}
        Reduction over the batch, as torch.
    zero_infinity : bool
        Replace infinite losses and their gradients by zeros.

    Examples
    --------
    >>> import torch, fastctc.torch
    >>> crit = fastctc.torch.CTCLoss(blank=0)
    >>> logits = torch.randn(6, 2, 4, requires_grad=True)
    >>> loss = crit(logits.log_softmax(-1), torch.tensor([[1, 2], [3, 3]]), [6, 6], [2, 2])
    >>> loss.backward()
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__()
        self.blank = blank
        self.reduction = reduction
        self.zero_infinity = zero_infinity

    def forward(
        self, log_probs: torch.Tensor, targets: Any, input_lengths: Any, target_lengths: Any
    ) -> torch.Tensor:
        """Loss of a batch; arguments as :func:`ctc_loss`."""
        return ctc_loss(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            self.blank,
            self.reduction,
            self.zero_infinity,
        )

    def extra_repr(self) -> str:
        return (
            f"blank={self.blank}, reduction={self.reduction!r}, zero_infinity={self.zero_infinity}"
        )


def forced_align(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Any = None,
    target_lengths: Any = None,
    blank: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best CTC path emitting ``targets``, as ``torchaudio.functional.forced_align``.

    The same arguments, shapes and results as torchaudio's, computed by
    :func:`fastctc.forced_align` on the CPU (on threads for batches). Extensions: a batch
    of any size (torchaudio takes one utterance), ``input_lengths`` shorter than ``T`` (the
    remaining frames hold -1 with score 0), and a negative ``blank`` counting from the end.

    Parameters
    ----------
    log_probs : Tensor of shape (B, T, C)
        Log-probabilities, any floating dtype and device; column ``blank`` is the blank.
    targets : Tensor of int32 or int64, shape (B, L)
        Target labels without blanks, padded rows (see ``target_lengths``).
    input_lengths : Tensor or array of int, shape (B,), optional
        Valid frames per utterance (default: ``T``).
    target_lengths : Tensor or array of int, shape (B,), optional
        Valid labels per utterance (default: ``L``).
    blank : int
        Index of the blank class.

    Returns
    -------
    alignments : Tensor of shape (B, T), ``targets``' dtype
        Label of every frame on the best path (blank included).
    scores : Tensor of shape (B, T), ``log_probs``' dtype
        ``log_probs[b, t, alignments[b, t]]``, the log-probability of each frame's label
        (``scores.exp()`` gives probabilities). Both on ``log_probs``' device.

    Raises
    ------
    TypeError
        ``log_probs`` or ``targets`` not tensors, non-floating ``log_probs``, targets not
        int32/int64.
    ValueError
        As :func:`fastctc.forced_align`: wrong shapes, targets containing ``blank`` or out of
        range, an utterance too short for its target, no path of finite probability.

    Notes
    -----
    Ties between equally good paths are broken as torchaudio does (stay, then advance, then
    skip a blank), except at the last frame: when ending on the final blank and ending on the
    last label score exactly the same, fastctc ends on the blank and torchaudio on the label.

    Examples
    --------
    >>> import torch, fastctc.torch
    >>> lp = torch.tensor([[.7, .2, .1], [.2, .7, .1], [.6, .2, .2], [.1, .1, .8]]).log()
    >>> ali, scores = fastctc.torch.forced_align(lp[None], torch.tensor([[1, 2]]))
    >>> ali
    tensor([[0, 1, 0, 2]])
    >>> scores.exp()
    tensor([[0.7000, 0.7000, 0.6000, 0.8000]])
    """
    for name, x in (("log_probs", log_probs), ("targets", targets)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}.")
    if not log_probs.is_floating_point():
        raise TypeError(f"log_probs must be a floating-point tensor; got dtype {log_probs.dtype}.")
    if targets.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"targets must be int32 or int64; got dtype {targets.dtype}.")
    if log_probs.dim() != 3 or targets.dim() != 2:
        raise ValueError(
            "log_probs must be 3-D (B, T, C) and targets 2-D (B, L), as torchaudio's; got "
            f"shapes {tuple(log_probs.shape)} and {tuple(targets.shape)}. "
            "Add a batch dimension with x[None]."
        )
    lp = log_probs.detach().cpu()
    if lp.dtype not in (torch.float32, torch.float64):
        lp = lp.float()
    res = _np_forced_align(
        lp.numpy(),
        targets.detach().cpu().numpy(),
        _host_ints(input_lengths),
        _host_ints(target_lengths),
        blank=blank,
    )
    paths = torch.from_numpy(res.tokens).to(log_probs.device)
    valid = paths >= 0
    scores = log_probs.detach().gather(-1, paths.clamp(min=0)[..., None])[..., 0]
    scores = scores.masked_fill(~valid, 0.0)
    return paths.to(targets.dtype), scores


@dataclass
class TokenSpan:
    """A token with its frames and score, as ``torchaudio.functional.TokenSpan``.

    Attributes
    ----------
    token : int
        The label.
    start : int
        First frame (inclusive).
    end : int
        End frame (exclusive); ``len(span)`` is ``end - start``.
    score : float
        Mean of the frame scores over the span.
    """

    token: int
    start: int
    end: int
    score: float

    def __len__(self) -> int:
        """Frames in the span."""
        return self.end - self.start


def merge_tokens(tokens: torch.Tensor, scores: torch.Tensor, blank: int = 0) -> list[TokenSpan]:
    """Token spans of one alignment, as ``torchaudio.functional.merge_tokens``.

    Runs of one non-blank label become one :class:`TokenSpan`; blanks (and the -1 frames
    :func:`forced_align` leaves past ``input_lengths``) belong to no span.

    Parameters
    ----------
    tokens : Tensor of int, shape (T,)
        One row of :func:`forced_align`'s ``alignments``.
    scores : Tensor of float, shape (T,)
        The matching row of its ``scores``.
    blank : int
        The blank label.

    Returns
    -------
    list of TokenSpan
        In time order; ``score`` is ``scores[start:end].mean().item()``, as torchaudio.

    Raises
    ------
    TypeError
        Non-integer ``tokens`` or non-real ``scores``.
    ValueError
        ``tokens`` and ``scores`` not 1-D of the same length.

    Examples
    --------
    >>> import torch, fastctc.torch
    >>> spans = fastctc.torch.merge_tokens(torch.tensor([0, 3, 3, 0, 4]), torch.zeros(5))
    >>> [(s.token, s.start, s.end, len(s)) for s in spans]
    [(3, 1, 3, 2), (4, 4, 5, 1)]
    """
    sc = scores.detach().cpu() if isinstance(scores, torch.Tensor) else torch.as_tensor(scores)
    if not sc.is_floating_point() and not sc.is_complex():
        sc = sc.double()  # integer scores: means as floats (complex ones are refused below)
    spans = _np_merge_tokens(_host_ints(tokens), sc.numpy(), blank=blank)
    return [
        TokenSpan(
            s.token, s.start_frame, s.end_frame, sc[s.start_frame : s.end_frame].mean().item()
        )
        for s in spans
    ]
