"""GPU kernels through numba-cuda: CTC loss and gradient, greedy decoding, prefix beam search.

Importing this module imports :mod:`numba.cuda` (``pip install "fastctc[cuda]"``); the rest
of fastctc never does. Inputs are device arrays: anything exposing
``__cuda_array_interface__`` (numba device arrays, CuPy arrays, torch CUDA tensors) is used in
place, without a copy through the host; NumPy inputs are copied to the device for
convenience. Only the small integer arrays (targets, lengths) are copied to the host, for
validation. Array results are numba device arrays, which CuPy (``cupy.asarray``) and torch
(``torch.as_tensor(x, device="cuda")``) wrap without a copy.

Under numba's simulator (``NUMBA_ENABLE_CUDASIM=1``, set before :mod:`numba.cuda` is first
imported) everything runs on the CPU, slowly: use tiny shapes and a small
``threads_per_block``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import cuda

from .. import _validate as v
from ..greedy import Hypothesis
from ..loss import check_loss_args
from ..prefix_beam import (
    DEFAULT_BEAM_PRUNE_LOGP,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_TOKEN_MIN_LOGP,
    _as_logp,
    check_search_args,
    check_status,
)
from . import kernels as k

__all__ = ["beam_search", "ctc_loss", "greedy_decode", "is_available"]

Allocator = Callable[[tuple[int, ...], Any], Any]

_REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}


def is_available() -> bool:
    """Whether a usable CUDA GPU (or numba's CUDA simulator) is present.

    Examples
    --------
    >>> import fastctc.cuda
    >>> isinstance(fastctc.cuda.is_available(), bool)
    True
    """
    try:
        return bool(cuda.is_available())
    except Exception:  # pragma: no cover - broken driver installations
        return False


def _require_gpu() -> None:
    if not is_available():
        raise RuntimeError(
            "no CUDA GPU is available to numba-cuda (numba.cuda.is_available() is False); "
            "use the CPU functions of fastctc, or NUMBA_ENABLE_CUDASIM=1 for the simulator."
        )


def _is_device_array(x: Any) -> bool:
    return bool(cuda.devicearray.is_cuda_ndarray(x)) or hasattr(x, "__cuda_array_interface__")


def _as_device(x: Any, stream: Any) -> Any:
    """A numba view of a device array (no copy), or a device copy of a host array."""
    if cuda.devicearray.is_cuda_ndarray(x):
        return x
    if hasattr(x, "__cuda_array_interface__"):
        return cuda.as_cuda_array(x)
    return cuda.to_device(np.ascontiguousarray(x), stream=stream)


def _to_host(x: Any) -> Any:
    """Host copy of a (small) device array; host inputs are returned unchanged."""
    if cuda.devicearray.is_cuda_ndarray(x):
        return x.copy_to_host()
    if hasattr(x, "__cuda_array_interface__"):
        return cuda.as_cuda_array(x).copy_to_host()
    return x


def _check_float_device(x: Any, name: str) -> Any:
    dtype = np.dtype(x.dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 device array; got dtype {dtype}.")
    return x


def _launch_quiet(kernel: Any, config: tuple, *args: Any) -> None:
    """Launch a kernel, silencing numba's low-occupancy performance warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(under-utilization|occupancy).*")
        kernel[config](*args)


def _pow2_at_most(x: int) -> int:
    p = 1
    while p * 2 <= x:
        p *= 2
    return p


def _pow2_at_least(x: int) -> int:
    p = 1
    while p < x:
        p *= 2
    return p


def _threads(threads_per_block: int | None, work: int, cap: int) -> int:
    if threads_per_block is None:
        return max(32, min(cap, 32 * ((work + 31) // 32)))
    tpb = v.as_int(threads_per_block, "threads_per_block")
    if not 1 <= tpb <= k.MAX_THREADS:
        raise ValueError(f"threads_per_block must be in [1, {k.MAX_THREADS}]; got {tpb}.")
    return tpb


def _default_alloc(stream: Any) -> Allocator:
    return lambda shape, dtype: cuda.device_array(shape, dtype=dtype, stream=stream)


def _class_index(
    flat: np.ndarray, offsets: np.ndarray, tl: np.ndarray, N: int, C: int
) -> tuple[np.ndarray, np.ndarray]:
    """Target positions grouped by (sequence, label): CSR ``(class_start, class_pos)``."""
    seq = np.repeat(np.arange(N, dtype=np.int64), tl)
    key = seq * C + flat
    order = np.argsort(key, kind="stable")
    pos = (np.arange(flat.shape[0], dtype=np.int64) - offsets[seq])[order]
    start = np.zeros(N * C + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=N * C), out=start[1:])
    return start, pos


def _nonempty(a: np.ndarray) -> np.ndarray:
    return a if a.size else np.zeros(1, dtype=a.dtype)


def ctc_loss(
    log_probs: Any,
    targets: Any,
    input_lengths: Any,
    target_lengths: Any,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    *,
    batch_first: bool = False,
    return_grad: bool = False,
    grad_wrt: str = "log_probs",
    threads_per_block: int | None = None,
    stream: Any = None,
    _allocator: Allocator | None = None,
) -> Any:
    """CTC loss (and its gradient) on the GPU, with :func:`fastctc.ctc_loss`'s semantics.

    Parameters
    ----------
    log_probs : device array of shape (T, N, C), (N, T, C) with ``batch_first``, or (T, C)
        Log-probabilities, float32 or float64: anything exposing
        ``__cuda_array_interface__`` (used in place, any strides), or a NumPy array (copied
        to the device).
    targets : array of int, shape (N, S) padded or (sum(target_lengths),) concatenated
        Host or device; copied to the host for validation (it is small). (S,) for 2-D
        ``log_probs``.
    input_lengths, target_lengths : array of int, shape (N,), or None
        Valid frames and target length of each sequence, host or device (copied to the
        host); None as in :func:`fastctc.ctc_loss`.
    blank : int
        Index of the blank label; negative values count from the end.
    reduction : {"mean", "sum", "none"}
        As :func:`torch.nn.functional.ctc_loss`: ``"mean"`` divides each loss by its target
        length (clamped to >= 1) and averages over the batch.
    zero_infinity : bool
        Replace infinite losses (no valid alignment) and their gradients by zero.
    batch_first : bool
        ``log_probs`` is (N, T, C).
    return_grad : bool
        Also return the gradient of the returned (reduced) loss, shaped like ``log_probs``;
        with ``reduction="none"`` it is the gradient of the sum of the losses.
    grad_wrt : {"log_probs", "logits"}
        ``"log_probs"``: the exact derivative with respect to the given ``log_probs``,
        ``-occupancy``. ``"logits"``: ``exp(log_probs) - occupancy``, the derivative with
        respect to the logits when ``log_probs = log_softmax(logits)`` (what torch returns).
        Rows past ``input_lengths`` are zero. An infinite or NaN loss has a NaN gradient
        unless ``zero_infinity`` zeroes it (infinite losses only, as in torch).
    threads_per_block : int, optional
        Threads per block for every kernel (default: sized to the work, at most 512).
    stream : numba CUDA stream, optional
        Stream for transfers and kernels (default: the default stream). The function
        synchronises only to copy the small host arrays in; results are ready when the
        stream has run.

    Returns
    -------
    loss : device array
        Shape (N,) for ``reduction="none"`` (shape () for 2-D input), else shape (); dtype of
        ``log_probs``.
    grad : device array, only with ``return_grad``
        Shape and layout of ``log_probs``.

    Raises
    ------
    TypeError
        Non-float ``log_probs``, non-integer targets or lengths.
    ValueError
        Shapes, lengths, labels or options out of range (as :func:`fastctc.ctc_loss`).
    RuntimeError
        No GPU available.

    Examples
    --------
    >>> import numpy as np, fastctc.cuda  # doctest: +SKIP
    >>> lp = np.log(np.full((4, 1, 3), 1 / 3))  # doctest: +SKIP
    >>> loss = fastctc.cuda.ctc_loss(lp, [[1, 2]], [4], [2])  # doctest: +SKIP
    >>> round(float(loss.copy_to_host()), 4)  # doctest: +SKIP
    0.8432
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {tuple(_REDUCTIONS)}; got {reduction!r}.")
    if grad_wrt not in ("log_probs", "logits"):
        raise ValueError(f"grad_wrt must be 'log_probs' or 'logits'; got {grad_wrt!r}.")
    if not _is_device_array(log_probs):
        log_probs = v.as_float_array(log_probs, "log_probs")
    shape = tuple(int(d) for d in log_probs.shape)
    _check_float_device(log_probs, "log_probs")
    args = check_loss_args(
        shape,
        _to_host(targets),
        None if input_lengths is None else _to_host(input_lengths),
        None if target_lengths is None else _to_host(target_lengths),
        blank,
        bool(batch_first),
    )
    T, N, C, b, unbatched = args.T, args.N, args.V, args.blank, not args.batched
    flat, offsets, il, tl = args.targets, args.offsets, args.input_lengths, args.target_lengths
    _require_gpu()
    alloc = _allocator or _default_alloc(stream)
    lp = _as_device(log_probs, stream)
    dtype = np.dtype(lp.dtype)
    if unbatched:
        try:
            lp3 = lp.reshape(T, 1, C)
        except NotImplementedError:
            raise ValueError(
                f"2-D log_probs (T, C) must be contiguous on the device; got strides "
                f"{tuple(lp.strides)} for shape {shape}. Pass a contiguous copy."
            ) from None
    else:
        lp3 = lp
    bf = bool(batch_first) and not unbatched

    width = 2 * int(tl.max(initial=0)) + 1
    if return_grad:
        start, pos = _class_index(flat, offsets, tl, N, C)
        parts = [flat, offsets, il, tl, start, pos]
    else:
        parts = [flat, offsets, il, tl]
    # one host-to-device transfer for every small integer array
    parts = [_nonempty(p) for p in parts]
    packed = cuda.to_device(np.concatenate(parts), stream=stream)
    ends = np.cumsum([p.shape[0] for p in parts]).tolist()
    d = [packed[e - p.shape[0] : e] for p, e in zip(parts, ends, strict=True)]
    d_flat, d_off, d_il, d_tl = d[:4]
    nll = alloc((max(N, 1),), np.float64)
    losses = alloc((max(N, 1),), dtype)
    total = alloc((1,), dtype)
    red = _REDUCTIONS[reduction]
    if N:
        alpha = alloc((N, max(T, 1), width), dtype)
        beta = alloc((N, max(T, 1), width), dtype) if return_grad else alpha
        tpb = _threads(threads_per_block, width, 512)
        _launch_quiet(
            k.ctc_alpha_beta_kernel,
            ((2 if return_grad else 1) * N, tpb, stream or 0),
            lp3,
            bf,
            d_flat,
            d_off,
            d_il,
            d_tl,
            b,
            alpha,
            beta,
            nll,
        )
    _launch_quiet(
        k.reduce_loss_kernel,
        (1, 1, stream or 0),
        nll[:N],
        d_tl,
        red,
        bool(zero_infinity),
        losses,
        total,
    )
    if reduction == "none":
        loss = losses.reshape(()) if unbatched else losses[:N]
    else:
        loss = total.reshape(())
    if not return_grad:
        return loss

    grad = alloc(shape, dtype)
    grad3 = grad.reshape(T, 1, C) if unbatched else grad
    if N and T and C:
        tpb = _threads(threads_per_block, C, 256)
        _launch_quiet(
            k.ctc_grad_kernel,
            ((T, N), tpb, stream or 0),
            lp3,
            bf,
            d_il,
            d_tl,
            b,
            d[4],
            d[5],
            alpha,
            beta,
            nll,
            red,
            grad_wrt == "logits",
            bool(zero_infinity),
            grad3,
        )
    return loss, grad


def _decode_input(log_probs: Any, lengths: Any) -> tuple[Any, int, int, int, np.ndarray]:
    if not _is_device_array(log_probs):
        log_probs = v.as_float_array(log_probs, "log_probs")
    _check_float_device(log_probs, "log_probs")
    shape = tuple(int(d) for d in log_probs.shape)
    if len(shape) != 3:
        raise ValueError(f"log_probs must be 3-D (N, T, V); got shape {shape}.")
    N, T, V = shape
    lens = v.as_lengths(_to_host(lengths) if lengths is not None else None, "lengths", N, T, "T")
    return log_probs, N, T, V, lens


def _hypotheses(tokens: Any, times: Any, counts: Any, scores: Any) -> list[Hypothesis]:
    tok, tim = tokens.copy_to_host(), times.copy_to_host()
    cnt, sco = counts.copy_to_host(), scores.copy_to_host()
    return [
        Hypothesis(tok[n, : cnt[n]].copy(), tim[n, : cnt[n]].copy(), float(sco[n]))
        for n in range(cnt.shape[0])
    ]


def greedy_decode(
    log_probs: Any,
    lengths: npt.ArrayLike | None = None,
    blank: int = 0,
    *,
    threads_per_block: int | None = None,
    stream: Any = None,
) -> list[Hypothesis]:
    """Best-path decoding of a batch on the GPU; results equal :func:`fastctc.greedy_decode_batch`.

    Parameters
    ----------
    log_probs : device array of shape (N, T, V)
        Per-frame log-probabilities, float32 or float64 (a NumPy array is copied over).
    lengths : array of int, shape (N,), optional
        Valid frames per utterance (default: all ``T``).
    blank : int
        Index of the blank label; negative values count from the end.
    threads_per_block : int, optional
        Threads per block (default 256); up to 32 of them share one frame's argmax.
    stream : numba CUDA stream, optional

    Returns
    -------
    list of Hypothesis
        ``tokens``, ``timesteps`` and ``log_prob`` (the best path's log-probability) per
        utterance, on the host: only the argmax results travel back, never ``log_probs``.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastctc.greedy_decode_batch` (a NaN frame raises ``ValueError``).

    Examples
    --------
    >>> import numpy as np, fastctc.cuda  # doctest: +SKIP
    >>> lp = np.log(np.array([[[.1, .9], [.1, .9], [.9, .1], [.2, .8]]]))  # doctest: +SKIP
    >>> [h.tokens.tolist() for h in fastctc.cuda.greedy_decode(lp)]  # doctest: +SKIP
    [[1, 1]]
    """
    log_probs, N, T, V, lens = _decode_input(log_probs, lengths)
    b = v.check_blank(blank, V)
    _require_gpu()
    total = _threads(threads_per_block, 256, 256) if threads_per_block is not None else 256
    lanes = min(32, _pow2_at_most(total), _pow2_at_least(V))
    frames = max(1, total // lanes)
    lp = _as_device(log_probs, stream)
    s = stream or 0
    d_len = cuda.to_device(_nonempty(lens), stream=stream)
    best_idx = cuda.device_array((max(N, 1), max(T, 1)), dtype=np.int64, stream=stream)
    best_val = cuda.device_array((max(N, 1), max(T, 1)), dtype=np.float64, stream=stream)
    nan_at = cuda.to_device(np.array([np.iinfo(np.int64).max], dtype=np.int64), stream=stream)
    tokens = cuda.device_array((max(N, 1), max(T, 1)), dtype=np.int64, stream=stream)
    times = cuda.device_array((max(N, 1), max(T, 1)), dtype=np.int64, stream=stream)
    counts = cuda.device_array(N, dtype=np.int64, stream=stream)
    scores = cuda.device_array(N, dtype=np.float64, stream=stream)
    if N == 0:
        return []
    if T:
        blocks = (N * T + frames - 1) // frames
        _launch_quiet(
            k.greedy_argmax_kernel,
            (blocks, (lanes, frames), s),
            lp,
            d_len,
            best_idx,
            best_val,
            nan_at,
        )
    tpb = min(total, 128)
    _launch_quiet(
        k.greedy_collapse_kernel,
        ((N + tpb - 1) // tpb, tpb, s),
        best_idx,
        best_val,
        d_len,
        b,
        tokens,
        times,
        counts,
        scores,
    )
    bad = int(nan_at.copy_to_host(stream=stream)[0])
    if bad != np.iinfo(np.int64).max:
        n, t = divmod(bad, T)
        raise ValueError(f"log_probs[{n}, {t}] contains NaN; cannot decode utterance {n}.")
    return _hypotheses(tokens, times, counts, scores)


def beam_search(
    log_probs: Any,
    lengths: npt.ArrayLike | None = None,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    blank: int = 0,
    top_paths: int = 1,
    beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP,
    token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP,
    *,
    threads_per_block: int | None = None,
    stream: Any = None,
) -> list[list[Hypothesis]]:
    """CTC prefix beam search without a language model, one GPU thread per utterance.

    The search of :func:`fastctc.beam_search_batch` (same rules, same results) run on the
    device; a simple kernel, worth it when the log-probabilities are already on the GPU and
    the batch is large.

    Parameters
    ----------
    log_probs : device array of shape (N, T, V)
        Per-frame log-probabilities, float32 or float64 (a NumPy array is copied over).
    lengths : array of int, shape (N,), optional
        Valid frames per utterance (default: all ``T``).
    beam_width : int
        Prefixes kept after each frame (``K``).
    blank : int
        Index of the blank label; negative values count from the end.
    top_paths : int
        Hypotheses returned per utterance, ``1 <= top_paths <= beam_width``.
    beam_prune_logp : float
        Drop prefixes this far below the best one (<= 0; ``-inf`` turns it off).
    token_min_logp : float
        Skip tokens whose frame log-probability is below this (``-inf`` turns it off).
    threads_per_block : int, optional
        Threads (utterances) per block (default 32).
    stream : numba CUDA stream, optional

    Returns
    -------
    list of list of Hypothesis
        Per utterance, up to ``top_paths`` hypotheses, best first, as
        :func:`fastctc.beam_search_batch`: ``timesteps[k]`` is the first frame of token
        ``k``'s run on the hypothesis' most probable (Viterbi) alignment.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastctc.beam_search_batch`.

    Notes
    -----
    Device memory grows as ``N (K T + K V)`` integers and floats (the prefix tree and the
    per-frame candidates), plus ``N P T (2 L + 1)`` bytes for the alignments. Scores are
    accumulated in log space, where the CPU search keeps probabilities scaled per frame:
    results agree up to rounding, except that the CPU search also drops a prefix more than
    about 708 nats below the best one even when ``beam_prune_logp = -inf``.

    Examples
    --------
    >>> import numpy as np, fastctc.cuda  # doctest: +SKIP
    >>> lp = np.log(np.array([[[.6, .4], [.6, .4]]]))  # doctest: +SKIP
    >>> h = fastctc.cuda.beam_search(lp, beam_width=4, top_paths=2)[0]  # doctest: +SKIP
    >>> [(x.tokens.tolist(), round(float(np.exp(x.log_prob)), 2)) for x in h]  # doctest: +SKIP
    [([1], 0.64), ([], 0.36)]
    """
    log_probs, N, T, V, lens = _decode_input(log_probs, lengths)
    if V == 0:
        raise ValueError("log_probs must have at least one class (V >= 1); got V = 0.")
    b = v.check_blank(blank, V)
    K, P = check_search_args(beam_width, top_paths)
    prune = _as_logp(beam_prune_logp, "beam_prune_logp", 0.0)
    tmin = _as_logp(token_min_logp, "token_min_logp", None)
    _require_gpu()
    if N == 0:
        return []
    lp = _as_device(log_probs, stream)
    tpb = _threads(threads_per_block, 32, 32) if threads_per_block is not None else 32
    T1 = max(T, 1)

    def dev(shape: Any, dtype: Any) -> Any:
        return cuda.device_array(shape, dtype=dtype, stream=stream)

    i8 = np.int64
    nodes = 1 + K * T
    cands = K * V + K
    tokens, times = dev((N, P, T1), i8), dev((N, P, T1), i8)
    out_lens, scores = dev((N, P), i8), dev((N, P), np.float64)
    counts, status = dev(N, i8), dev(N, i8)
    d_lens = cuda.to_device(lens, stream=stream)
    _launch_quiet(
        k.prefix_beam_kernel,
        ((N + tpb - 1) // tpb, tpb, stream or 0),
        lp,
        d_lens,
        b,
        K,
        P,
        prune,
        tmin,
        dev((N, nodes), i8),
        dev((N, nodes), i8),
        dev((N, nodes), i8),
        dev((N, nodes), i8),
        dev((N, K), i8),
        dev((N, K), np.float64),
        dev((N, K), np.float64),
        dev((N, cands), i8),
        dev((N, cands), i8),
        dev((N, cands), i8),
        dev((N, cands), np.float64),
        dev((N, cands), np.float64),
        dev((N, cands), np.float64),
        dev((N, cands), np.int8),
        dev((N, V), i8),
        tokens,
        out_lens,
        scores,
        counts,
        status,
    )
    check_status(status.copy_to_host(stream=stream))
    # timesteps: run starts of each hypothesis' Viterbi alignment, as the CPU search gives
    ln, cnt = out_lens.copy_to_host(stream=stream), counts.copy_to_host(stream=stream)
    valid = np.arange(P)[None, :] < cnt[:, None]
    width = 2 * int(ln[valid].max(initial=0)) + 1
    _launch_quiet(
        k.viterbi_starts_kernel,
        ((N * P + tpb - 1) // tpb, tpb, stream or 0),
        lp,
        d_lens,
        b,
        tokens,
        out_lens,
        counts,
        dev((N * P, width), np.float64),
        dev((N * P, T1, width), np.int8),
        times,
    )
    tok, tim = tokens.copy_to_host(stream=stream), times.copy_to_host(stream=stream)
    sc = scores.copy_to_host(stream=stream)
    return [
        [
            Hypothesis(tok[n, j, : ln[n, j]].copy(), tim[n, j, : ln[n, j]].copy(), float(sc[n, j]))
            for j in range(cnt[n])
        ]
        for n in range(N)
    ]
