"""CTC forward-backward kernels: negative log-likelihood and its gradient.

The main path works in probability space in float64 with per-frame rescaling: every frame's
emission probabilities are shifted by the frame's largest relevant log-probability before
``exp``, and alpha and beta are renormalised to sum to one after every frame, so neither
long inputs nor peaked posteriors under- or overflow. The occupancy of each state is
normalised per frame, which makes the gradient independent of the accumulated scales.

If a relevant emission would underflow after the shift (a log-probability more than
``UNDERFLOW_GAP`` below the frame maximum) or a frame's total vanishes, the sequence is
recomputed by the log-space kernel, which is exact for any finite input.

Layout: ``log_probs`` is passed flattened, with element strides ``st_t`` (frames) and
``st_n`` (sequences), so (T, N, V) and batch-first (N, T, V) inputs share one kernel.
The gradient has the same layout. Inputs are validated by the caller.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import jit, jit_reassoc
from .logmath import NEG_INF, exp_into, exp_into_f32, log_add

#: Largest gap (in nats) below the frame maximum that the rescaled path accepts.
UNDERFLOW_GAP = 600.0

GRAD_LOG_PROBS = 0
GRAD_LOGITS = 1


@jit
def _min_frames(tgt):
    """Frames needed to emit ``tgt``: one per label plus a blank between repeats."""
    need = tgt.shape[0]
    for j in range(1, tgt.shape[0]):
        if tgt[j] == tgt[j - 1]:
            need += 1
    return need


@jit
def _fill_rows(st_t, base, V, T, value, gradf):
    """Set the gradient rows ``t < T`` of one sequence to ``value``."""
    for t in range(T):
        o = base + t * st_t
        for c in range(V):
            gradf[o + c] = value


@jit
def _exp_row_f64(x, out, work, scale):
    e = work[0]
    exp_into(x, e, work[1].view(np.int64))
    for c in range(x.shape[0]):
        out[c] = scale * e[c]


@jit
def _exp_row_f32(x, out, work, scale):
    n = x.shape[0]
    e = work[0].view(np.float32)[:n]
    exp_into_f32(x, e, work[1].view(np.int32)[:n])
    s = np.float32(scale)
    for c in range(n):
        out[c] = s * e[c]


def _exp_row(x, out, work, scale):
    """``out = scale * exp(x)`` for one row, in the precision of ``x``."""
    if x.dtype == np.float32:
        _exp_row_f32(x, out, work, scale)
    else:
        _exp_row_f64(x, out, work, scale)


@overload(_exp_row, jit_options={"nogil": True})
def _exp_row_typed(x, out, work, scale):
    if x.dtype == types.float32:
        return lambda x, out, work, scale: _exp_row_f32(x, out, work, scale)
    return lambda x, out, work, scale: _exp_row_f64(x, out, work, scale)


@jit
def _scatter_occupancy(lpf, o, V, labels, blank, occ_blank, occ, norm, mode, scale, gradf, work):
    """Write one frame's gradient row: ``([exp(lp)] - occupancy * norm) * scale``.

    ``occ[k]`` is the (unnormalised) occupancy of label ``labels[k]``; labels may repeat.
    ``work`` is float64 scratch of shape (3, V) for the vectorised ``exp`` (logits mode).
    """
    if mode == GRAD_LOGITS:
        _exp_row(lpf[o : o + V], gradf[o : o + V], work, scale)
    w = scale * norm
    gradf[o + blank] -= w * occ_blank
    for k in range(labels.shape[0]):
        gradf[o + labels[k]] -= w * occ[k]


@jit
def rescaled_workspace(T, S, V, want_grad):
    """float64 scratch needed by ``ctc_sequence_rescaled`` for one sequence."""
    rows = T if want_grad else 2
    return 4 * T * (S + 1) + 2 * rows * (S + 3) + 3 * V


@jit_reassoc
def ctc_sequence_rescaled(
    lpf, st_t, base, V, T, tgt, blank, want_grad, mode, scale, gradf, ws, slot
):
    """Loss of one sequence by rescaled forward-backward; NaN return means "use log space".

    ``base`` is the flat offset of (t=0, this sequence, c=0). Returns the negative
    log-likelihood, or NaN to request the log-space kernel (an input is NaN, a frame has no
    possible relevant label, an emission would underflow, or a frame total vanished).
    ``ws`` is float64 scratch of at least ``rescaled_workspace(...)`` entries; ``slot`` is
    int64 scratch of length V, all -1 on entry and on return.

    States are kept as two arrays: ``ab[j]`` for the blank before label ``j`` (``j = S`` is
    the final blank) and ``al[j]`` for label ``j``, each with one leading zero, so every
    recursion is a contiguous loop.
    """
    S = tgt.shape[0]
    W = S + 1
    # emissions per frame, shifted by the frame's max: column S is the blank
    TW = T * W
    # distinct labels: exp is taken once per (frame, distinct label), then expanded
    uniq = np.empty(W, dtype=np.int64)
    uidx = np.empty(S, dtype=np.int64)
    U = 0
    for j in range(S):
        c = tgt[j]
        if slot[c] < 0:
            slot[c] = 0
            uniq[U] = c
            U += 1
    # ascending label order makes the row reads and gradient writes sweep memory forwards
    uniq[:U] = np.sort(uniq[:U])
    for u in range(U):
        slot[uniq[u]] = u
    for j in range(S):
        uidx[j] = slot[tgt[j]]
    for u in range(U):
        slot[uniq[u]] = -1
    uniq[U] = blank
    UW = U + 1
    TU = T * UW
    shifted = ws[:TU]
    log_scale = 0.0
    for t in range(T):
        o = base + t * st_t
        r = t * UW
        m = NEG_INF
        for u in range(UW):
            x = lpf[o + uniq[u]]
            shifted[r + u] = x
            m = max(m, x)
        if not m > NEG_INF:  # NaN, or every relevant label impossible
            return np.nan
        log_scale += m
        bad = False
        for u in range(UW):
            x = shifted[r + u] - m
            shifted[r + u] = x
            bad |= (x != x) | ((x < -UNDERFLOW_GAP) & (x > NEG_INF))
        if bad:
            return np.nan
    eu = ws[TU : 2 * TU]
    exp_into(shifted, eu, ws[2 * TU : 3 * TU].view(np.int64))
    ey = ws[3 * TW : 4 * TW].reshape((T, W))
    for t in range(T):
        r = t * UW
        for j in range(S):
            ey[t, j] = eu[r + uidx[j]]
        ey[t, S] = eu[r + U]
    # skip[j + 1] == 1 where label j may follow label j - 1 directly (they differ)
    skip = np.zeros(S + 2)
    for j in range(1, S):
        if tgt[j] != tgt[j - 1]:
            skip[j + 1] = 1.0
    # alpha: index j + 1 holds state j; index 0 is a permanent zero
    rows = T if want_grad else 2
    R = rows * (S + 3)
    ab = ws[4 * TW : 4 * TW + R]
    al = ws[4 * TW + R : 4 * TW + 2 * R]
    ab = ab.reshape((rows, S + 3))
    al = al.reshape((rows, S + 3))
    # rows are not cleared: each frame writes its band plus one zero on either side, which
    # covers every entry the next frame (and the occupancy) reads
    ab[0, :] = 0.0
    al[0, :] = 0.0
    ab[0, 1] = ey[0, S]
    if S > 0:
        al[0, 1] = ey[0, 0]
    total = ab[0, 1] + al[0, 1]
    for t in range(1, T):
        if not (total > 0.0 and total < np.inf):
            return np.nan
        log_scale += math.log(total)
        inv = 1.0 / total
        pb = ab[(t - 1) if want_grad else (t - 1) % 2]
        pl = al[(t - 1) if want_grad else (t - 1) % 2]
        cb = ab[t if want_grad else t % 2]
        cl = al[t if want_grad else t % 2]
        # band of frame t in state indices s (blank j = 2j, label j = 2j + 1)
        lo = max(2 * S + 1 - 2 * (T - t), 0)
        hi = min(2 * t + 1, 2 * S)
        jlo = lo // 2
        jhi = hi // 2
        e = ey[t]
        eb = e[S] * inv
        total = 0.0
        cb[jlo] = 0.0
        cl[jlo] = 0.0
        for j in range(jlo, min(jhi, S) + 1):
            v = eb * (pb[j + 1] + pl[j])
            cb[j + 1] = v
            total += v
        for j in range(jlo, min(jhi, S - 1) + 1):
            v = e[j] * inv * (pl[j + 1] + pb[j + 1] + skip[j + 1] * pl[j])
            cl[j + 1] = v
            total += v
        # entries just above the band must read as zero at the next frame
        cb[min(jhi, S) + 2] = 0.0
        cl[min(jhi, S - 1) + 2] = 0.0
    last = T - 1 if want_grad else (T - 1) % 2
    end = ab[last, S + 1] + (al[last, S] if S > 0 else 0.0)
    if not (end > 0.0 and total > 0.0):
        return np.nan
    nll = -(log_scale + math.log(end))
    if not want_grad:
        return nll
    # backward, in place, ascending j: beta excludes the current frame's emission;
    # index j holds state j, with zero padding above
    bb = np.zeros(S + 3)
    bl = np.zeros(S + 3)
    bb[S] = 1.0
    if S > 0:
        bl[S - 1] = 1.0
    occ_u = np.zeros(U)
    labels = uniq[:U]
    work = ws[4 * TW + 2 * R : 4 * TW + 2 * R + 3 * V].reshape((3, V))
    total = 1.0
    for t in range(T - 1, -1, -1):
        lo = max(2 * S + 1 - 2 * (T - t), 0)
        hi = min(2 * t + 1, 2 * S)
        jlo = lo // 2
        jhi = hi // 2
        if t < T - 1:
            # rescale by the previous frame's total while computing this one
            inv = 1.0 / total
            e = ey[t + 1]
            eb = e[S] * inv
            total = 0.0
            for j in range(jlo, S):
                ej = e[j] * inv
                nb = eb * bb[j] + ej * bl[j]
                nl = ej * bl[j] + eb * bb[j + 1] + skip[j + 2] * e[j + 1] * inv * bl[j + 1]
                bb[j] = nb
                bl[j] = nl
                total += nb + nl
            bb[S] *= eb  # the final blank can only stay
            total += bb[S]
            if not (total > 0.0 and total < np.inf):
                return np.nan
        cb = ab[t]
        cl = al[t]
        zb = 0.0
        for j in range(jlo, min(jhi, S) + 1):
            zb += cb[j + 1] * bb[j]
        zl = 0.0
        for u in range(U):
            occ_u[u] = 0.0
        for j in range(jlo, min(jhi, S - 1) + 1):
            v = cl[j + 1] * bl[j]
            occ_u[uidx[j]] += v
            zl += v
        z = zb + zl
        if not z > 0.0:
            return np.nan
        _scatter_occupancy(
            lpf, base + t * st_t, V, labels, blank, zb, occ_u, 1.0 / z, mode, scale, gradf, work
        )
    return nll


@jit
def ctc_sequence_log(lpf, st_t, base, V, T, tgt, blank, want_grad, mode, scale, gradf):
    """Textbook log-space forward-backward for one sequence; exact for any input.

    Returns the negative log-likelihood (``inf`` if unreachable, NaN if an input is NaN).
    """
    S = tgt.shape[0]
    L = 2 * S + 1
    ly = np.empty((T, L))
    for t in range(T):
        o = base + t * st_t
        for s in range(L):
            ly[t, s] = lpf[o + blank] if s % 2 == 0 else lpf[o + tgt[s // 2]]
    alpha = np.full((T, L), NEG_INF)
    alpha[0, 0] = ly[0, 0]
    if L > 1:
        alpha[0, 1] = ly[0, 1]
    for t in range(1, T):
        for s in range(L):
            a = alpha[t - 1, s]
            if s >= 1:
                a = log_add(a, alpha[t - 1, s - 1])
            if s >= 3 and s % 2 == 1 and tgt[s // 2] != tgt[s // 2 - 1]:
                a = log_add(a, alpha[t - 1, s - 2])
            alpha[t, s] = a + ly[t, s]
    log_p = alpha[T - 1, L - 1]
    if L > 1:
        log_p = log_add(log_p, alpha[T - 1, L - 2])
    nan_input = False
    for t in range(T):
        for s in range(L):
            if ly[t, s] != ly[t, s]:
                nan_input = True
    if nan_input:
        log_p = np.nan
    if not want_grad or not log_p > NEG_INF:
        return -log_p
    beta = np.full((T, L), NEG_INF)  # includes the current frame's emission
    beta[T - 1, L - 1] = ly[T - 1, L - 1]
    if L > 1:
        beta[T - 1, L - 2] = ly[T - 1, L - 2]
    for t in range(T - 2, -1, -1):
        for s in range(L):
            b = beta[t + 1, s]
            if s + 1 < L:
                b = log_add(b, beta[t + 1, s + 1])
            if s + 2 < L and s % 2 == 1 and tgt[s // 2] != tgt[s // 2 + 1]:
                b = log_add(b, beta[t + 1, s + 2])
            beta[t, s] = b + ly[t, s]
    occ_lab = np.empty(S)
    work = np.empty((3, V)) if mode == GRAD_LOGITS else np.empty((3, 1))
    for t in range(T):
        lb = NEG_INF
        for s in range(0, L, 2):
            lb = log_add(lb, alpha[t, s] + beta[t, s] - ly[t, s])
        occ_blank = math.exp(lb - log_p) if lb > NEG_INF else 0.0
        for j in range(S):
            s = 2 * j + 1
            x = alpha[t, s] + beta[t, s] - ly[t, s]
            occ_lab[j] = math.exp(x - log_p) if x > NEG_INF else 0.0
        _scatter_occupancy(
            lpf, base + t * st_t, V, tgt, blank, occ_blank, occ_lab, 1.0, mode, scale, gradf, work
        )
    return -log_p


@jit
def ctc_loss_items(
    lpf, st_t, st_n, V, targets, offsets, input_lengths, blank, items,
    scales, want_grad, mode, zero_infinity, losses, gradf,
):
    """Losses (and gradients) of the sequences ``items`` of a batch: one thread's share.

    targets : int64, concatenated labels; sequence n owns ``targets[offsets[n]:offsets[n+1]]``.
    scales : float64 (N,), d(returned loss)/d(loss_n), applied to the gradient.
    losses : float64 (N,) output, per-sequence negative log-likelihood.
    gradf : flat gradient output in the layout of ``lpf``, zero-initialised by the caller.
    """
    need = 0
    for i in range(items.shape[0]):
        n = items[i]
        size = rescaled_workspace(
            input_lengths[n], offsets[n + 1] - offsets[n], V, want_grad
        )
        need = max(need, size)
    ws = np.empty(need)
    slot = np.full(V, -1, dtype=np.int64)
    for i in range(items.shape[0]):
        n = items[i]
        T = input_lengths[n]
        tgt = targets[offsets[n] : offsets[n + 1]]
        base = n * st_n
        scale = scales[n]
        if T < _min_frames(tgt):
            nll = np.inf
        elif T == 0:
            nll = 0.0  # empty input, empty target: the empty path has probability one
        else:
            nll = ctc_sequence_rescaled(
                lpf, st_t, base, V, T, tgt, blank, want_grad, mode, scale, gradf, ws, slot
            )
            if nll != nll:
                if want_grad:  # the rescaled pass may have written some rows
                    _fill_rows(st_t, base, V, T, 0.0, gradf)
                nll = ctc_sequence_log(
                    lpf, st_t, base, V, T, tgt, blank, want_grad, mode, scale, gradf
                )
        if nll == np.inf and zero_infinity:
            nll = 0.0  # nothing was written to the gradient rows of this sequence
        elif want_grad and not (nll < np.inf):
            _fill_rows(st_t, base, V, T, np.nan, gradf)
        losses[n] = nll
    return 0
