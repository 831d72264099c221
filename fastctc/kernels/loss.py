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

A call runs in three passes, each split over threads:

1. ``gather_columns`` copies the columns each sequence needs (its distinct labels, then the
   blank) into a compact buffer, reading ``log_probs`` in memory order;
2. ``ctc_loss_items`` runs forward-backward per sequence on its compact rows only, and leaves
   the scaled occupancies in the same rows;
3. ``scatter_columns`` writes the gradient rows from them, again in memory order.

With large vocabularies a sequence's frames lie far apart in memory; touching them in this
order rather than sequence by sequence is what keeps the passes fast.
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
def loss_plan(targets, offsets, input_lengths, blank, V):
    """Distinct labels of every sequence and the layout of the compact column buffer.

    Returns ``(cols, coff_u, coff, uidx)``: sequence ``n`` reads the columns
    ``cols[coff_u[n]:coff_u[n + 1]]`` (its distinct labels in ascending order, then the blank),
    owns ``buf[coff[n]:coff[n + 1]]`` of the compact buffer, one row of those columns per frame,
    and ``uidx[offsets[n] + j]`` is the column index of its label ``j``.
    """
    N = input_lengths.shape[0]
    cols = np.empty(targets.shape[0] + N, dtype=np.int64)
    coff_u = np.empty(N + 1, dtype=np.int64)
    coff = np.empty(N + 1, dtype=np.int64)
    uidx = np.empty(targets.shape[0], dtype=np.int64)
    slot = np.full(V, -1, dtype=np.int64)
    u = 0
    c = 0
    for n in range(N):
        coff_u[n] = u
        coff[n] = c
        first = u
        for j in range(offsets[n], offsets[n + 1]):
            lab = targets[j]
            if slot[lab] < 0:
                slot[lab] = 0
                cols[u] = lab
                u += 1
        # ascending label order makes the row reads and gradient writes sweep memory forwards
        cols[first:u] = np.sort(cols[first:u])
        for k in range(first, u):
            slot[cols[k]] = k - first
        for j in range(offsets[n], offsets[n + 1]):
            uidx[j] = slot[targets[j]]
        for k in range(first, u):
            slot[cols[k]] = -1
        cols[u] = blank
        u += 1
        c += input_lengths[n] * (u - first)
    coff_u[N] = u
    coff[N] = c
    return cols[:u], coff_u, coff, uidx


@jit
def gather_columns(
    lpf, st_t, st_n, cols, coff_u, coff, input_lengths, lo, hi, frames_outer, buf
):
    """Copy every sequence's columns into the compact buffer, outer index ``lo <= i < hi``.

    The outer index is the frame when ``frames_outer`` (layout (T, N, V)), else the sequence,
    so the input is read in memory order.
    """
    N = input_lengths.shape[0]
    for i in range(lo, hi):
        for k in range(N if frames_outer else input_lengths[i]):
            t, n = (i, k) if frames_outer else (k, i)
            if t < input_lengths[n]:
                c = cols[coff_u[n] : coff_u[n + 1]]
                UW = c.shape[0]
                o = n * st_n + t * st_t
                d = coff[n] + t * UW
                for u in range(UW):
                    buf[d + u] = lpf[o + c[u]]


@jit
def scatter_columns(
    lpf, st_t, st_n, V, T, cols, coff_u, coff, input_lengths, status, scales, mode,
    lo, hi, frames_outer, buf, gradf,
):
    """Write the gradient rows with outer index in [lo, hi) (see ``gather_columns``).

    Rows of sequences whose ``status`` is 1 become ``[scale * exp(lp)] - buf row`` at the
    sequence's columns, rows past a sequence's length become zero; rows of sequences with
    status 0 were written by ``ctc_loss_items`` and are left alone. ``gradf`` need not be
    initialised.
    """
    N = input_lengths.shape[0]
    K = N if frames_outer else T  # rows per outer index
    # short rows that lie back to back (the usual layouts) take their exp in one block per
    # outer index: the per-call overhead of the vectorised exp would dominate a short row
    block = mode == GRAD_LOGITS and (st_n if frames_outer else st_t) == V and K * V <= 65536
    work = np.empty((3, K * V if block else V)) if mode == GRAD_LOGITS else np.empty((3, 1))
    eblk = np.empty(K * V if block else 0, dtype=lpf.dtype)
    for i in range(lo, hi):
        if block:
            first = i * (st_t if frames_outer else st_n)
            _exp_row(lpf[first : first + K * V], eblk, work, 1.0)
        for k in range(K):
            t, n = (i, k) if frames_outer else (k, i)
            o = n * st_n + t * st_t
            row = gradf[o : o + V]
            if t >= input_lengths[n]:
                row[:] = 0.0
            elif status[n] == 1:
                c = cols[coff_u[n] : coff_u[n + 1]]
                UW = c.shape[0]
                d = coff[n] + t * UW
                if block:
                    s = row.dtype.type(scales[n])
                    e = eblk[k * V : (k + 1) * V]
                    for j in range(V):
                        row[j] = s * e[j]
                elif mode == GRAD_LOGITS:
                    _exp_row(lpf[o : o + V], row, work, scales[n])
                else:
                    row[:] = 0.0
                for u in range(UW):
                    row[c[u]] -= buf[d + u]


@jit_reassoc
def _alpha_step(pb, pl, cb, cl, e, skip, eb, inv, jlo, jhi, S):
    """One frame of the forward recursion over the band ``jlo..jhi``; returns the frame total.

    Loops run over slices from zero so the compiler sees non-negative indices and vectorises.
    """
    nb = min(jhi, S) + 1 - jlo
    cbs = cb[jlo + 1 : jlo + 1 + nb]
    pbs = pb[jlo + 1 : jlo + 1 + nb]
    pls = pl[jlo : jlo + nb]
    total = 0.0
    for k in range(nb):
        v = eb * (pbs[k] + pls[k])
        cbs[k] = v
        total += v
    nl = min(jhi, S - 1) + 1 - jlo
    cls = cl[jlo + 1 : jlo + 1 + nl]
    same = pl[jlo + 1 : jlo + 1 + nl]
    blank = pb[jlo + 1 : jlo + 1 + nl]
    prev = pl[jlo : jlo + nl]
    es = e[jlo : jlo + nl]
    sk = skip[jlo + 1 : jlo + 1 + nl]
    for k in range(nl):
        v = es[k] * inv * (same[k] + blank[k] + sk[k] * prev[k])
        cls[k] = v
        total += v
    return total


@jit_reassoc
def _beta_step(nbb, nbl, bb, bl, e, skip, inv, jlo, S):
    """One frame of the backward recursion from ``(nbb, nbl)`` (frame t + 1) into ``(bb, bl)``.

    ``e`` holds frame t + 1's emissions and ``inv`` its rescaling; returns the new total.
    """
    eb = e[S] * inv
    n = S - jlo
    total = 0.0
    if n > 0:
        es = e[jlo:S]
        es1 = e[jlo + 1 : S + 1]
        sk = skip[jlo + 2 : S + 2]
        b0 = nbb[jlo:S]
        b1 = nbb[jlo + 1 : S + 1]
        l0 = nbl[jlo:S]
        l1 = nbl[jlo + 1 : S + 1]
        ob = bb[jlo:S]
        ol = bl[jlo:S]
        for k in range(n):
            ej = es[k] * inv
            vb = eb * b0[k] + ej * l0[k]
            vl = ej * l0[k] + eb * b1[k] + sk[k] * es1[k] * inv * l1[k]
            ob[k] = vb
            ol[k] = vl
            total += vb + vl
    bb[S] = nbb[S] * eb  # the final blank can only stay
    bl[S] = 0.0
    return total + bb[S]


@jit_reassoc
def _state_mass(cb, cl, bb, bl, vl, jlo, jhi, S):
    """Blank and label mass ``alpha * beta`` of one frame; label terms are left in ``vl``."""
    zb = 0.0
    nb = min(jhi, S) + 1 - jlo
    a = cb[jlo + 1 : jlo + 1 + nb]
    b = bb[jlo : jlo + nb]
    for k in range(nb):
        zb += a[k] * b[k]
    zl = 0.0
    nl = min(jhi, S - 1) + 1 - jlo
    a = cl[jlo + 1 : jlo + 1 + nl]
    b = bl[jlo : jlo + nl]
    for k in range(nl):
        v = a[k] * b[k]
        vl[k] = v
        zl += v
    return zb, zl


@jit
def rescaled_workspace(T, S, want_grad):
    """float64 scratch needed by ``ctc_sequence_rescaled`` for one sequence."""
    rows = T if want_grad else 2
    return rows * (S + 1) + 2 * rows * (S + 3) + 3 * (S + 1)


@jit
def workspace_sizes(input_lengths, offsets, want_grad):
    """``rescaled_workspace`` of every sequence of a batch."""
    N = input_lengths.shape[0]
    out = np.empty(N, dtype=np.int64)
    for n in range(N):
        out[n] = rescaled_workspace(input_lengths[n], offsets[n + 1] - offsets[n], want_grad)
    return out


@jit_reassoc
def ctc_sequence_rescaled(blk, UW, uidx, T, tgt, want_grad, scale, ws):
    """Loss of one sequence by rescaled forward-backward; NaN return means "use log space".

    ``blk`` is the sequence's compact rows: frame ``t`` holds the log-probabilities of its
    distinct labels at ``blk[t * UW : t * UW + UW - 1]`` and of the blank at
    ``blk[t * UW + UW - 1]``; ``uidx[j]`` is the column of label ``j``. With ``want_grad``
    every row is overwritten by ``scale * occupancy`` of its columns (the gradient with
    respect to the log-probabilities, negated). Returns the negative log-likelihood, or NaN
    to request the log-space kernel (an input is NaN, a frame has no possible relevant label,
    an emission would underflow, or a frame total vanished); ``blk`` is then undefined.
    ``ws`` is float64 scratch of at least ``rescaled_workspace(...)`` entries.

    States are kept as two arrays: ``ab[j]`` for the blank before label ``j`` (``j = S`` is
    the final blank) and ``al[j]`` for label ``j``, each with one leading zero, so every
    recursion is a contiguous loop.
    """
    S = tgt.shape[0]
    W = S + 1
    U = UW - 1
    rows = T if want_grad else 2
    R = rows * (S + 3)
    # emissions of each frame, shifted by the frame's max: column S is the blank
    ey = ws[: rows * W].reshape((rows, W))
    ab = ws[rows * W : rows * W + R].reshape((rows, S + 3))
    al = ws[rows * W + R : rows * W + 2 * R].reshape((rows, S + 3))
    sc = ws[rows * W + 2 * R : rows * W + 2 * R + 3 * W]
    x = sc[:UW]
    eu = sc[W : W + UW]
    bits = sc[2 * W : 2 * W + UW].view(np.int64)
    # skip[j + 1] == 1 where label j may follow label j - 1 directly (they differ)
    skip = np.zeros(S + 2)
    for j in range(1, S):
        if tgt[j] != tgt[j - 1]:
            skip[j + 1] = 1.0
    log_scale = 0.0
    total = 1.0
    for t in range(T):
        # this frame's emissions: exp is taken once per distinct label, then expanded
        r = t * UW
        m = NEG_INF
        for u in range(UW):
            v = blk[r + u]
            x[u] = v
            m = max(m, v)
        if not m > NEG_INF:  # NaN, or every relevant label impossible
            return np.nan
        bad = False
        for u in range(UW):
            v = x[u] - m
            x[u] = v
            bad |= (v != v) | ((v < -UNDERFLOW_GAP) & (v > NEG_INF))
        if bad:
            return np.nan
        log_scale += m
        exp_into(x, eu, bits)
        row = t if want_grad else t % 2
        e = ey[row]
        for j in range(S):
            e[j] = eu[uidx[j]]
        e[S] = eu[U]
        cb = ab[row]
        cl = al[row]
        if t == 0:
            # rows are not cleared later: each frame writes its band plus one zero on either
            # side, which covers every entry the next frame (and the occupancy) reads
            cb[:] = 0.0
            cl[:] = 0.0
            cb[1] = e[S]
            if S > 0:
                cl[1] = e[0]
            total = cb[1] + cl[1]
            continue
        if not (total > 0.0 and total < np.inf):
            return np.nan
        log_scale += math.log(total)
        inv = 1.0 / total
        pb = ab[(t - 1) if want_grad else (t - 1) % 2]
        pl = al[(t - 1) if want_grad else (t - 1) % 2]
        # band of frame t in state indices s (blank j = 2j, label j = 2j + 1)
        lo = max(2 * S + 1 - 2 * (T - t), 0)
        hi = min(2 * t + 1, 2 * S)
        jlo = lo // 2
        jhi = hi // 2
        eb = e[S] * inv
        cb[jlo] = 0.0
        cl[jlo] = 0.0
        total = _alpha_step(pb, pl, cb, cl, e, skip, eb, inv, jlo, jhi, S)
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
    # backward: beta excludes the current frame's emission; index j holds state j, with zero
    # padding above; two rows, swapped every frame
    beta = np.zeros((2, 2, S + 3))
    beta[0, 0, S] = 1.0
    if S > 0:
        beta[0, 1, S - 1] = 1.0
    occ_u = eu[:U]
    vl = sc[:W]
    total = 1.0
    for t in range(T - 1, -1, -1):
        lo = max(2 * S + 1 - 2 * (T - t), 0)
        hi = min(2 * t + 1, 2 * S)
        jlo = lo // 2
        jhi = hi // 2
        cur = (T - 1 - t) % 2
        bb = beta[cur, 0]
        bl = beta[cur, 1]
        if t < T - 1:
            # rescale by the previous frame's total while computing this one
            inv = 1.0 / total
            e = ey[t + 1]
            total = _beta_step(beta[1 - cur, 0], beta[1 - cur, 1], bb, bl, e, skip, inv, jlo, S)
            if not (total > 0.0 and total < np.inf):
                return np.nan
        zb, zl = _state_mass(ab[t], al[t], bb, bl, vl, jlo, jhi, S)
        for u in range(U):
            occ_u[u] = 0.0
        for k in range(min(jhi, S - 1) + 1 - jlo):
            occ_u[uidx[jlo + k]] += vl[k]
        z = zb + zl
        if not z > 0.0:
            return np.nan
        w = scale / z
        r = t * UW
        for u in range(U):
            blk[r + u] = w * occ_u[u]
        blk[r + U] = w * zb
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
    lpf, st_t, st_n, V, targets, offsets, input_lengths, blank, items, scales,
    want_grad, mode, zero_infinity, uidx, coff, buf, ws, losses, status, gradf,
):
    """Losses (and gradients) of the sequences ``items`` of a batch: one thread's share.

    targets : int64, concatenated labels; sequence n owns ``targets[offsets[n]:offsets[n+1]]``.
    uidx, coff, buf : from ``loss_plan`` and ``gather_columns``; sequence n reads its compact
        rows ``buf[coff[n]:coff[n+1]]`` and, with ``want_grad``, leaves its scaled occupancies
        there for ``scatter_columns``.
    ws : float64 scratch of at least ``workspace_sizes(...)[n]`` entries for every item n.
    scales : float64 (N,), d(returned loss)/d(loss_n), applied to the gradient.
    losses : float64 (N,) output, per-sequence negative log-likelihood.
    status : int8 (N,) output; 1 where ``buf`` holds the gradient rows still to be written,
        0 where this function wrote the rows ``t < input_lengths[n]`` of ``gradf`` itself.
    gradf : flat gradient output in the layout of ``lpf`` (with ``want_grad``).
    """
    for i in range(items.shape[0]):
        n = items[i]
        T = input_lengths[n]
        tgt = targets[offsets[n] : offsets[n + 1]]
        base = n * st_n
        scale = scales[n]
        status[n] = 0
        if T < _min_frames(tgt):
            nll = np.inf
        elif T == 0:
            nll = 0.0  # empty input, empty target: the empty path has probability one
        else:
            blk = buf[coff[n] : coff[n + 1]]
            nll = ctc_sequence_rescaled(
                blk, blk.shape[0] // T, uidx[offsets[n] : offsets[n + 1]], T, tgt,
                want_grad, scale, ws,
            )
            if nll == nll:
                status[n] = 1
            else:
                if want_grad:  # the log-space kernel accumulates into zeroed rows
                    _fill_rows(st_t, base, V, T, 0.0, gradf)
                nll = ctc_sequence_log(
                    lpf, st_t, base, V, T, tgt, blank, want_grad, mode, scale, gradf
                )
        if nll == np.inf and zero_infinity:
            nll = 0.0
            if want_grad:
                _fill_rows(st_t, base, V, T, 0.0, gradf)
        elif want_grad and not (nll < np.inf):
            _fill_rows(st_t, base, V, T, np.nan, gradf)
        losses[n] = nll
    return 0
