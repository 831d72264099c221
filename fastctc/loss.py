"""CTC loss and its gradient, with the semantics of ``torch.nn.functional.ctc_loss``."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _scratch
from . import _validate as v
from .kernels.fpenv import flush_subnormals, restore_fp
from .kernels.loss import (
    GRAD_LOG_PROBS,
    GRAD_LOGITS,
    ctc_loss_items,
    gather_columns,
    loss_plan,
    scatter_columns,
    scatter_scratch,
    workspace_sizes,
)

_REDUCTIONS = ("none", "mean", "sum")
_GRAD_WRT = {"log_probs": GRAD_LOG_PROBS, "logits": GRAD_LOGITS}


class LossArgs(NamedTuple):
    """Validated, normalised loss arguments (everything but the log-probabilities)."""

    T: int
    N: int
    V: int
    batched: bool
    targets: np.ndarray  # int64, concatenated
    offsets: np.ndarray  # int64 (N + 1,): sequence n owns targets[offsets[n]:offsets[n+1]]
    input_lengths: np.ndarray  # int64 (N,)
    target_lengths: np.ndarray  # int64 (N,)
    blank: int


def check_loss_args(
    shape: tuple[int, ...],
    targets: npt.ArrayLike,
    input_lengths: npt.ArrayLike | None,
    target_lengths: npt.ArrayLike | None,
    blank: Any,
    batch_first: bool = False,
) -> LossArgs:
    """Validate the integer arguments of a CTC loss against the shape of ``log_probs``.

    Shared by the CPU and GPU losses; reads only the (small) integer arrays.
    """
    if len(shape) == 3:
        if batch_first:
            N, T, V = shape
        else:
            T, N, V = shape
        batched = True
    elif len(shape) == 2:
        T, V = shape
        N = 1
        batched = False
    else:
        layout = "(N, T, V)" if batch_first else "(T, N, V)"
        raise ValueError(
            f"log_probs must be 3-D {layout} or 2-D (T, V) for one sequence; "
            f"got shape {tuple(shape)}."
        )
    if V < 1:
        raise ValueError(f"log_probs must have at least one class (the blank); got V = {V}.")
    b = v.check_blank(blank, V)

    tg = v.as_int_array(targets, "targets")
    if batched and tg.ndim == 2:
        if tg.shape[0] != N:
            raise ValueError(
                f"padded targets must have shape (N, S) with N = {N}; got shape {tg.shape}."
            )
        S = tg.shape[1]
        tl = v.as_lengths(target_lengths, "target_lengths", N, S, "S (targets.shape[1])")
        padded = True
    elif tg.ndim == 1 and not batched:
        S = tg.shape[0]
        tl = v.as_lengths(target_lengths, "target_lengths", 1, S, "S (len(targets))")
        tg = tg.reshape(1, S)
        padded = True
    elif tg.ndim == 1:
        if target_lengths is None:
            if N != 1:
                raise ValueError(
                    "target_lengths is required when targets are concatenated (1-D) "
                    f"and N = {N} > 1."
                )
            target_lengths = [tg.shape[0]]
        tl = v.as_lengths(target_lengths, "target_lengths", N, tg.shape[0], "len(targets)")
        if int(tl.sum()) != tg.shape[0]:
            raise ValueError(
                "concatenated targets must have length sum(target_lengths) = "
                f"{int(tl.sum())}; got {tg.shape[0]}."
            )
        padded = False
    else:
        expected = "2-D (N, S) padded or 1-D concatenated" if batched else "1-D (S,)"
        raise ValueError(f"targets must be {expected}; got shape {tg.shape}.")

    il = v.as_lengths(input_lengths, "input_lengths", N, T, "T")
    offsets = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(tl, out=offsets[1:])
    if padded:
        mask = np.arange(tg.shape[1])[None, :] < tl[:, None]
        flat = np.ascontiguousarray(tg[mask])
    else:
        flat = tg
    bad = np.flatnonzero((flat < 0) | (flat >= V) | (flat == b))
    if bad.size:
        i = int(bad[0])
        if padded:  # report the (sequence, position) of the padded array
            n = int(np.searchsorted(offsets, i, side="right")) - 1
            where = f"targets[{n}, {i - int(offsets[n])}]"
        else:
            where = f"targets[{i}]"
        if flat[i] == b:
            raise ValueError(f"{where} == blank ({b}); targets may not contain the blank index.")
        raise ValueError(f"{where} = {int(flat[i])} is outside [0, {V}) for V = {V} classes.")
    return LossArgs(T, N, V, batched, flat, offsets, il, tl, b)


def ctc_loss(
    log_probs: npt.ArrayLike,
    targets: npt.ArrayLike,
    input_lengths: npt.ArrayLike | None,
    target_lengths: npt.ArrayLike | None,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    *,
    batch_first: bool = False,
    return_grad: bool = False,
    grad_wrt: str = "log_probs",
    num_threads: int | None = None,
) -> Any:
    """Connectionist Temporal Classification loss, as ``torch.nn.functional.ctc_loss``.

    Parameters
    ----------
    log_probs : array_like of shape (T, N, V), (N, T, V) with ``batch_first``, or (T, V)
        Per-frame log-probabilities (float32 or float64; float64 is kept, other floats are
        computed as float32). Rows need not be normalised for ``grad_wrt="log_probs"``.
    targets : array_like of int, shape (N, S) padded, or (sum(target_lengths),) concatenated
        Label ids in ``[0, V)``, never ``blank``. Padding beyond ``target_lengths`` is ignored.
        For unbatched ``log_probs``, shape (S,).
    input_lengths : array_like of int, shape (N,), or None
        Valid frames per sequence, each in ``[0, T]``; None means ``T`` for all.
    target_lengths : array_like of int, shape (N,), or None
        Labels per sequence; None means ``S`` for padded targets (required for concatenated
        targets when ``N > 1``).
    blank : int
        Index of the blank class; negative values count from the end.
    reduction : {"mean", "sum", "none"}
        ``"none"``: per-sequence negative log-likelihood, shape (N,). ``"sum"``: their sum.
        ``"mean"``: each loss divided by its target length (clamped to >= 1), averaged over
        the batch — torch's definition.
    zero_infinity : bool
        Replace infinite losses (no valid alignment, or a float32 loss beyond float32's
        range, as torch computes it) and their gradients by zeros.
    batch_first : bool
        ``log_probs`` is (N, T, V).
    return_grad : bool
        Also return the gradient of the returned loss (for ``"none"``, of the sum of the
        per-sequence losses), computed in the same pass.
    grad_wrt : {"log_probs", "logits"}
        ``"log_probs"``: the exact derivative with respect to the given ``log_probs``,
        ``-occupancy[t, c]`` (the posterior probability of emitting ``c`` at frame ``t``),
        correct even when rows do not sum to one. ``"logits"``: the derivative with respect to
        ``z`` when ``log_probs = log_softmax(z)``, ``exp(log_probs) - occupancy``; this is what
        torch's ``ctc_loss`` backward returns as the gradient of ``log_probs``.
        Rows past ``input_lengths`` are zero. An infinite or NaN loss has a NaN gradient
        unless ``zero_infinity`` zeroes it (as in torch).
    num_threads : int, optional
        Threads over sequences (default: every available core). Results do not depend on it.

    Returns
    -------
    loss : ndarray or scalar
        Same float dtype as the computation; shape (N,) for ``"none"`` (a 0-d array for
        unbatched input), else a scalar.
    grad : ndarray, only with ``return_grad=True``
        Same shape and layout as ``log_probs``.

    Raises
    ------
    TypeError
        Non-floating ``log_probs``; non-integer targets, lengths or blank.
    ValueError
        Wrong number of dimensions, ``blank`` out of range, lengths negative or above
        ``T``/``S``, lengths not one per sequence, targets containing ``blank`` or outside
        ``[0, V)``, concatenated targets whose length is not ``sum(target_lengths)``, an
        unknown ``reduction``/``grad_wrt``, or ``reduction="mean"`` of an empty batch.

    Notes
    -----
    The forward-backward recursion runs in float64 probability space with per-frame
    rescaling while it can prove that the states it flushes to zero carry a negligible share
    of the likelihood (below 1e-14), and in vectorised log space otherwise, so inputs of any
    length and peakedness give the exact loss and gradient. NaN in a sequence's relevant
    log-probabilities makes that sequence's loss NaN only.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> lp = fastctc.log_softmax(np.zeros((4, 1, 3)))      # T=4, N=1, V=3, uniform
    >>> loss = fastctc.ctc_loss(lp, [[1, 2]], [4], [2], reduction="sum")
    >>> round(float(loss), 4)
    1.6864
    >>> loss, grad = fastctc.ctc_loss(lp, [[1, 2]], [4], [2], return_grad=True)
    >>> grad.shape
    (4, 1, 3)
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}.")
    if grad_wrt not in _GRAD_WRT:
        raise ValueError(f"grad_wrt must be 'log_probs' or 'logits'; got {grad_wrt!r}.")
    lp = v.as_float_array(log_probs, "log_probs")
    args = check_loss_args(lp.shape, targets, input_lengths, target_lengths, blank, batch_first)
    T, N, V = args.T, args.N, args.V
    if N == 0 and reduction == "mean":
        # a mean over no sequences is undefined; torch refuses empty batches too
        raise ValueError(
            "reduction='mean' needs at least one sequence; got an empty batch (N = 0). "
            "Use reduction='sum' (0.0) or 'none' (an empty array) for empty batches."
        )
    if not args.batched:
        st_t, st_n = V, 0
    elif batch_first:
        st_t, st_n = V, T * V
    else:
        st_t, st_n = N * V, V

    clamped = np.maximum(args.target_lengths, 1).astype(np.float64)
    if reduction == "mean":
        scales = 1.0 / (clamped * N)
    else:
        scales = np.ones(N)
    losses = np.zeros(N, dtype=np.float64)
    status = np.zeros(N, dtype=np.int8)
    lpf = lp.reshape(-1)
    # every entry of the gradient is written by the passes below
    grad = _scratch.lend(lp.shape, lp.dtype) if return_grad else np.zeros(1, lp.dtype)
    gradf = grad.reshape(-1)
    mode = _GRAD_WRT[grad_wrt]
    il = args.input_lengths
    # Each sequence's columns (its distinct labels and the blank) are first copied into a
    # compact buffer, and its gradient rows written from it at the end, both in the memory
    # order of log_probs: the per-sequence passes then touch only contiguous memory.
    cols, coff_u, coff, uidx = loss_plan(args.targets, args.offsets, il, args.blank, V)
    buf = _scratch.take(int(coff[-1]), lp.dtype)
    threads = v.resolve_num_threads(num_threads, N)
    frames_outer = st_t >= st_n
    sizes = workspace_sizes(il, args.offsets, return_grad)
    # each thread owns a contiguous block of sequences and runs all three passes on it, so
    # the threads meet once per call; a block's gradient rows lie together in memory
    costs = il * (2 * args.target_lengths + 1) + 0.25 * T * V

    def block(span: tuple[int, int]) -> None:
        n0, n1 = span
        gather_columns(lpf, st_t, st_n, cols, coff_u, coff, il, n0, n1, frames_outer, buf)
        ws = _scratch.take(int(sizes[n0:n1].max()))
        fp = flush_subnormals()  # see fastctc.kernels.fpenv; this thread only, put back below
        try:
            ctc_loss_items(
                lpf,
                st_t,
                st_n,
                V,
                args.targets,
                args.offsets,
                il,
                args.blank,
                np.arange(n0, n1),
                scales,
                return_grad,
                mode,
                bool(zero_infinity),
                cols,
                coff_u,
                uidx,
                coff,
                buf,
                ws,
                losses,
                status,
                gradf,
            )
        finally:
            restore_fp(fp)
            _scratch.give(ws)
        if return_grad:
            K = n1 - n0 if frames_outer else T
            scratch = scatter_scratch(lpf, st_t, st_n, V, T, K, mode, frames_outer)
            scatter_columns(
                lpf,
                st_t,
                st_n,
                V,
                T,
                cols,
                coff_u,
                coff,
                il,
                status,
                scales,
                mode,
                n0,
                n1,
                frames_outer,
                buf,
                gradf,
                scratch,
            )

    try:
        if N:
            _run_blocks(block, _contiguous_blocks(costs, threads))
    finally:
        _scratch.give(buf)
    if lp.dtype != np.float64:
        _overflowed_losses(losses, grad if return_grad else None, args, batch_first, zero_infinity)
    ftype = lp.dtype.type
    with np.errstate(over="ignore"):  # a sum beyond the dtype's range is inf, as in torch
        if reduction == "none":
            out: Any = losses.astype(lp.dtype) if args.batched else np.asarray(ftype(losses[0]))
        elif reduction == "sum":
            out = ftype(losses.sum())
        else:
            out = ftype(np.mean(losses / clamped))
    return (out, grad) if return_grad else out


def _contiguous_blocks(costs: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Split ``range(len(costs))`` into at most ``parts`` runs ``(lo, hi)`` of similar cost.

    Boundaries sit at the prefix sums nearest to equal shares; with two parts the split that
    minimises the larger share is taken. Deterministic; no run is empty.
    """
    n = len(costs)
    parts = max(1, min(parts, n))
    prefix = np.concatenate(([0.0], np.cumsum(costs, dtype=np.float64)))
    total = prefix[-1]
    if parts == 2:
        cut = int(np.argmin(np.maximum(prefix[1:n], total - prefix[1:n]))) + 1
        return [(0, cut), (cut, n)]
    cuts = [0]
    for k in range(1, parts):
        c = int(np.argmin(np.abs(prefix - total * k / parts)))
        cuts.append(min(max(c, cuts[-1] + 1), n - (parts - k)))
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = 0


def _workers(n: int) -> ThreadPoolExecutor:
    """A pool of at least ``n`` threads kept between calls (a new one after a fork).

    Starting threads on every call costs a few hundred microseconds, a tenth of a small
    batch's loss; idle workers wait on a queue and cost nothing.
    """
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_size < n or _pool_pid != os.getpid():
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fastctc-loss")
            _pool_size = n
            _pool_pid = os.getpid()
        return _pool


def _run_blocks(fn: Any, blocks: list[tuple[int, int]]) -> None:
    """Call ``fn(block)`` for every block: the first on this thread, the rest on workers.

    Returns once every call has finished, even when one raises (the blocks share buffers
    that the caller recycles afterwards); the first exception is then re-raised.
    """
    if len(blocks) == 1:
        fn(blocks[0])
        return
    futures = [_workers(len(blocks) - 1).submit(fn, b) for b in blocks[1:]]
    error: BaseException | None = None
    try:
        fn(blocks[0])
    except BaseException as e:  # noqa: BLE001 - re-raised below, after the workers finish
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            error = error or e
    if error is not None:
        raise error


def _overflowed_losses(
    losses: np.ndarray,
    grad: np.ndarray | None,
    args: Any,
    batch_first: bool,
    zero_infinity: bool,
) -> None:
    """Treat float64 losses that are infinite in float32 as infinite losses, in place.

    Torch computes a float32 loss in float32, where such a loss is inf: ``zero_infinity``
    zeroes it and its gradient, otherwise it stays inf with a NaN gradient on its frames.
    """
    with np.errstate(over="ignore"):
        over = np.flatnonzero(np.isinf(losses.astype(np.float32)) & np.isfinite(losses))
    for n in over:
        losses[n] = 0.0 if zero_infinity else np.inf
        if grad is None:
            continue
        g = grad if not args.batched else (grad[n] if batch_first else grad[:, n])
        g[...] = 0.0
        if not zero_infinity:
            g[: int(args.input_lengths[n])] = np.nan
