"""CTC forward-backward kernels: negative log-likelihood and its gradient.

The main path works in probability space in float64 with per-frame rescaling: every frame's
emission probabilities are shifted by the frame's largest relevant log-probability before
``exp``, and alpha and beta are renormalised to sum to one after every frame. The occupancy
of each state is normalised per frame, which makes the gradient independent of the
accumulated scales. A frame keeps about 708 nats of range; states that fall below it are
flushed to zero and counted, and the backward pass bounds the share of the likelihood they
could have carried (see ``ctc_sequence_rescaled``).

When that bound fails, when a loss-only call flushes anything, when a relevant emission
would underflow after the shift (a log-probability more than ``UNDERFLOW_GAP`` below the
frame maximum) or a frame's total vanishes, the sequence is recomputed by
``ctc_sequence_logspace``, which is exact for any finite input; inputs holding NaN or
``+inf`` go to the textbook ``ctc_sequence_log``.

Layout: ``log_probs`` is passed flattened, with element strides ``st_t`` (frames) and
``st_n`` (sequences), so (T, N, V) and batch-first (N, T, V) inputs share one kernel.
The gradient has the same layout. Inputs are validated by the caller.

Each thread takes a contiguous block of sequences and runs three passes on it:

1. ``gather_columns`` copies the columns each sequence needs (its distinct labels, then the
   blank) into a compact buffer, reading the block's part of ``log_probs`` in memory order;
2. ``ctc_loss_items`` runs forward-backward per sequence on its compact rows only, and leaves
   the scaled occupancies in the same rows;
3. ``scatter_columns`` writes the block's gradient rows from them, again in memory order.

The caller runs pass 2 with subnormal results flushed to zero (``fpenv``): the rescaled
recursion flushes values below ``TINY`` itself, and the products on their way there would
otherwise each take a slow microcode assist on x86.

With large vocabularies a sequence's frames lie far apart in memory; touching them in this
order rather than sequence by sequence is what keeps the passes fast (in the (T, N, V)
layout a block's rows of one frame lie together, and the threads meet once per call).
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import jit, jit_nocheck, jit_reassoc
from .logmath import (
    NEG_INF,
    _f64_from_bits,
    exp_into,
    exp_into_f32,
    exp_nonpos,
    log_add,
    log_sum3,
)

#: Largest gap (in nats) below the frame maximum that the rescaled path accepts.
UNDERFLOW_GAP = 600.0
#: Smallest normal float64. A positive state value below it has lost precision (and a
#: subnormal one stops decaying), so the rescaled recursion gives the sequence up.
TINY = 2.2250738585072014e-308
#: Largest accepted bound on the share of the likelihood lost to flushed states (the loss
#: is then exact to about this many nats).
MAX_LOST = 1e-14
#: Frames whose emissions the rescaled forward pass prepares at once: one vectorised exp
#: over all their relevant log-probabilities instead of one short exp per frame.
CHUNK = 8
#: Largest workspace (float64 entries, 64 MiB) a loss-only call allocates to retry a sequence
#: whose forward pass flushed a state with the backward pass, instead of going to log space.
RETRY_WORDS = 1 << 23
#: Smallest accepted per-frame sum of alpha * beta: state products below ``TINY`` may have
#: underflowed, and below this sum they could matter (relative error above 1e-20).
Z_MIN = 1e-280

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


@jit(_nrt=False)
def _exp_row_f64(x, out, work, scale):
    e = work[0]
    exp_into(x, e, work[1].view(np.int64))
    for c in range(x.shape[0]):
        out[c] = scale * e[c]


@jit(_nrt=False)
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


@jit(_nrt=False)
def gather_columns(lpf, st_t, st_n, cols, coff_u, coff, input_lengths, n0, n1, frames_outer, buf):
    """Copy the columns of the sequences ``n0 <= n < n1`` into the compact buffer.

    With ``frames_outer`` (layout (T, N, V)) the frames are the outer loop and the block's
    sequences the inner one, else each sequence's frames run in turn, so the input is read in
    memory order. Compiled without reference counting (it allocates nothing; the column
    slices taken per row would each be counted).
    """
    T = 0
    for n in range(n0, n1):
        T = max(T, input_lengths[n])
    for i in range(T if frames_outer else n1 - n0):
        for k in range(n1 - n0 if frames_outer else input_lengths[n0 + i]):
            t, n = (i, n0 + k) if frames_outer else (k, n0 + i)
            if t < input_lengths[n]:
                c = cols[coff_u[n] : coff_u[n + 1]]
                UW = c.shape[0]
                src = lpf[n * st_n + t * st_t :]
                d = coff[n] + t * UW
                dst = buf[d : d + UW]
                for u in range(UW):  # zero-based and unsigned: no negative-index handling
                    dst[u] = src[np.uint64(c[u])]


@jit
def scatter_scratch(lpf, st_t, st_n, V, T, K, mode, frames_outer):
    """``(block, work, eblk)``: the scratch of one ``scatter_columns`` call (one per thread).

    ``K`` is the number of rows per outer index: the block's sequences when ``frames_outer``,
    else ``T``. Short rows that lie back to back (the usual layouts) take their exp in one
    block per outer index (``block``; into ``eblk``): the per-call overhead of the vectorised
    exp would dominate a short row."""
    block = mode == GRAD_LOGITS and (st_n if frames_outer else st_t) == V and K * V <= 65536
    work = np.empty((3, K * V if block else V)) if mode == GRAD_LOGITS else np.empty((3, 1))
    eblk = np.empty(K * V if block else 0, dtype=lpf.dtype)
    return block, work, eblk


@jit(_nrt=False)
def scatter_columns(
    lpf,
    st_t,
    st_n,
    V,
    T,
    cols,
    coff_u,
    coff,
    input_lengths,
    status,
    scales,
    mode,
    n0,
    n1,
    frames_outer,
    buf,
    gradf,
    scratch,
):
    """Write the gradient rows of the sequences ``n0 <= n < n1`` (see ``gather_columns``).

    Rows of sequences whose ``status`` is 1 become ``[scale * exp(lp)] - buf row`` at the
    sequence's columns, rows past a sequence's length become zero; rows of sequences with
    status 0 were written by ``ctc_loss_items`` and are left alone. ``gradf`` need not be
    initialised. ``scratch`` is this call's :func:`scatter_scratch`. Compiled without
    reference counting: it allocates nothing, and the row slices it takes would each be
    counted.
    """
    block, work, eblk = scratch
    K = n1 - n0 if frames_outer else T
    for i in range(T if frames_outer else n1 - n0):
        if block:
            first = i * st_t + n0 * st_n if frames_outer else (n0 + i) * st_n
            _exp_row(lpf[first : first + K * V], eblk, work, 1.0)
        for k in range(K):
            t, n = (i, n0 + k) if frames_outer else (k, n0 + i)
            o = n * st_n + t * st_t
            row = gradf[o : o + V]
            if t >= input_lengths[n]:
                for j in range(V):  # a loop, not a memset call per short row
                    row[j] = 0.0
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
                    for j in range(V):
                        row[j] = 0.0
                occ = buf[d : d + UW]
                for u in range(UW):
                    row[np.uint64(c[u])] -= occ[u]


@jit_reassoc(_nrt=False, inline="always")
def _alpha_step(pb, pl, cb, cl, e, skip, eb, inv, jlo, jhi, S):
    """One frame of the forward recursion over the band ``jlo..jhi``.

    Values below ``TINY`` are flushed to zero: float64 loses precision there, and subnormal
    values stop decaying. Returns the frame total and the summed inflow of the states that
    were flushed or underflowed: positive when anything was lost (a state whose emission is
    exactly zero counts too, which only errs on the safe side). Loops run over slices from
    zero so the compiler sees non-negative indices and vectorises.
    """
    nb = min(jhi, S) + 1 - jlo
    cbs = cb[jlo + 1 : jlo + 1 + nb]
    pbs = pb[jlo + 1 : jlo + 1 + nb]
    pls = pl[jlo : jlo + nb]
    total = 0.0
    lost = 0.0
    for k in range(nb):
        a = pbs[k] + pls[k]
        v = eb * a
        low = v < TINY
        v = 0.0 if low else v
        cbs[k] = v
        total += v
        lost += a if low else 0.0
    nl = min(jhi, S - 1) + 1 - jlo
    cls = cl[jlo + 1 : jlo + 1 + nl]
    same = pl[jlo + 1 : jlo + 1 + nl]
    blank = pb[jlo + 1 : jlo + 1 + nl]
    prev = pl[jlo : jlo + nl]
    es = e[jlo : jlo + nl]
    sk = skip[jlo + 1 : jlo + 1 + nl]
    for k in range(nl):
        a = same[k] + blank[k] + sk[k] * prev[k]
        v = es[k] * inv * a
        low = v < TINY
        v = 0.0 if low else v
        cls[k] = v
        total += v
        lost += a if low else 0.0
    return total, lost


@jit_reassoc(_nrt=False, inline="always")
def _beta_step(nbb, nbl, bb, bl, e, skip, inv, jlo, S):
    """One frame of the backward recursion from ``(nbb, nbl)`` (frame t + 1) into ``(bb, bl)``.

    ``e`` holds frame t + 1's emissions and ``inv`` its rescaling; values below ``TINY`` are
    flushed to zero, as in ``_alpha_step``. Returns the new total.
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
            vb = 0.0 if vb < TINY else vb
            vl = 0.0 if vl < TINY else vl
            ob[k] = vb
            ol[k] = vl
            total += vb + vl
    v = nbb[S] * eb  # the final blank can only stay
    bb[S] = 0.0 if v < TINY else v
    bl[S] = 0.0
    return total + bb[S]


@jit_reassoc(_nrt=False, inline="always")
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


#: Flips the magnitude bits of a negative float64's pattern, making patterns order as values.
_MAGNITUDE = np.int64(0x7FFFFFFFFFFFFFFF)
#: ``-inf`` in that order (its pattern 0xFFF0000000000000 with the magnitude bits flipped).
_NEG_INF_KEY = np.int64(-0x7FF0000000000001)


@jit(_nrt=False)
def _row_max(x):
    """Largest entry of ``x`` (``-inf`` if empty), as a vectorised integer reduction.

    A float64 bit pattern with the magnitude bits flipped when negative orders as the value
    does, so the maximum is an integer maximum (a float maximum does not vectorise: NaN makes
    it depend on the order). The result may differ from a float loop's only for NaN (the
    caller's check of the shifted row finds NaN either way) and in the sign of a zero
    maximum (which changes no result: it is added to a sum and subtracted from the row).
    """
    b = x.view(np.int64)
    m = _NEG_INF_KEY
    for u in range(b.shape[0]):
        k = b[u] ^ ((b[u] >> 63) & _MAGNITUDE)
        m = k if k > m else m
    return _f64_from_bits(m ^ ((m >> 63) & _MAGNITUDE))


@jit
def rescaled_workspace(T, S, want_grad):
    """float64 scratch needed by ``ctc_sequence_rescaled`` for one sequence."""
    rows = T if want_grad else 2
    W = S + 1
    return rows * W + 2 * rows * (S + 3) + 3 * CHUNK * W + CHUNK + (S + 2) + 4 * (S + 3)


@jit
def workspace_sizes(input_lengths, offsets, want_grad):
    """Scratch entries each sequence of a batch needs (either kernel may run on it)."""
    N = input_lengths.shape[0]
    out = np.empty(N, dtype=np.int64)
    for n in range(N):
        T = input_lengths[n]
        S = offsets[n + 1] - offsets[n]
        out[n] = max(rescaled_workspace(T, S, want_grad), logspace_workspace(T, S, want_grad))
    return out


@jit_reassoc(_nrt=False)
def ctc_sequence_rescaled(blk, UW, uidx, T, tgt, want_grad, scale, ws):
    """Loss of one sequence by rescaled forward-backward; NaN return means "use log space".

    ``blk`` is the sequence's compact rows: frame ``t`` holds the log-probabilities of its
    distinct labels at ``blk[t * UW : t * UW + UW - 1]`` and of the blank at
    ``blk[t * UW + UW - 1]``; ``uidx[j]`` is the column of label ``j``. With ``want_grad``
    every row is overwritten by ``scale * occupancy`` of its columns (the gradient with
    respect to the log-probabilities, negated). Returns the negative log-likelihood, or NaN
    to request the log-space kernel (an input is NaN, a frame has no possible relevant label,
    an emission would underflow, a frame total vanished, or range was lost); ``blk`` is then
    undefined. ``ws`` is float64 scratch of at least ``rescaled_workspace(...)`` entries.
    Compiled without reference counting (it allocates nothing: every array is a view of
    ``ws``; counting the views taken every frame cost about a sixth of the loss).

    Range: values are renormalised per frame, so a state far below the frame's largest one
    falls under ``TINY`` and is flushed to zero. That is harmless when no path through it
    matters, which only the backward pass can tell. Stored alpha and beta values are at most
    3 (sums of up to three terms of a vector that sums to one, times emissions <= 1), so a
    state flushed at frame t, in alpha or in beta, carries at most ``3 * TINY / z_t`` of the
    likelihood, where ``z_t = sum(alpha_t * beta_t)``. The sum of these bounds over the
    band and all frames must stay below ``MAX_LOST`` (in practice: every ``z_t`` well above
    ``1e-280``), else the sequence goes to the log-space kernel; without the gradient (no
    backward pass) any flush sends it there.

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
    CW = CHUNK * W
    sc = ws[rows * W + 2 * R : rows * W + 2 * R + 3 * CW]
    xs = sc[:CW]
    eus = sc[CW : 2 * CW]
    bits = sc[2 * CW : 3 * CW].view(np.int64)
    o = rows * W + 2 * R + 3 * CW
    frame_max = ws[o : o + CHUNK]
    o += CHUNK
    # skip[j + 1] == 1 where label j may follow label j - 1 directly (they differ)
    skip = ws[o : o + S + 2]
    skip[:] = 0.0
    for j in range(1, S):
        if tgt[j] != tgt[j - 1]:
            skip[j + 1] = 1.0
    log_scale = 0.0
    total = 1.0
    for t in range(T):
        f = t % CHUNK
        if f == 0:
            # the emissions of the next CHUNK frames, shifted by each frame's max; exp is
            # taken once per distinct label, then expanded per frame
            nf = min(CHUNK, T - t)
            for g in range(nf):
                src = blk[(t + g) * UW : (t + g + 1) * UW]
                x = xs[g * UW : (g + 1) * UW]
                for u in range(UW):
                    x[u] = src[u]
                m = _row_max(x)
                if not m > NEG_INF:  # NaN, or every relevant label impossible
                    return np.nan
                bad = False
                for u in range(UW):
                    v = x[u] - m
                    x[u] = v
                    bad |= (v != v) | ((v < -UNDERFLOW_GAP) & (v > NEG_INF))
                if bad:
                    return np.nan
                frame_max[g] = m
            exp_into(xs[: nf * UW], eus[: nf * UW], bits[: nf * UW])
        log_scale += frame_max[f]
        eu = eus[f * UW : (f + 1) * UW]
        row = t if want_grad else t % 2
        e = ey[row]
        for j in range(S):
            e[j] = eu[np.uint64(uidx[j])]
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
        total, lost = _alpha_step(pb, pl, cb, cl, e, skip, eb, inv, jlo, jhi, S)
        if lost and not want_grad:  # no backward pass to bound what the flushes lost
            return np.nan
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
    beta = ws[o + S + 2 : o + S + 2 + 4 * (S + 3)].reshape((2, 2, S + 3))
    beta[:] = 0.0
    beta[0, 0, S] = 1.0
    if S > 0:
        beta[0, 1, S - 1] = 1.0
    occ_u = eus[:U]
    vl = sc[:W]
    total = 1.0
    bound = 0.0
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
            occ_u[np.uint64(uidx[jlo + k])] += vl[k]
        z = zb + zl
        if not z > Z_MIN:  # products of alpha and beta may have underflowed
            return np.nan
        # a state flushed at this frame, in alpha or beta, held less than TINY, and the other
        # factor of its mass is at most 3 (a sum of up to three normalised terms times an
        # emission <= 1): its share of the likelihood is below 3 * TINY / z
        bound += (2 * (jhi - jlo) + 2) * 6.0 * TINY / z
        if not bound < MAX_LOST:
            return np.nan
        w = scale / z
        out = blk[t * UW : (t + 1) * UW]
        for u in range(U):
            out[u] = w * occ_u[u]
        out[U] = w * zb
    return nll


@jit_reassoc
def _sum(x):
    """Sum of a float64 array, reassociated so that it vectorises."""
    z = 0.0
    for k in range(x.shape[0]):
        z += x[k]
    return z


@jit
def _emissions(row, col, y):
    """``y[k] = row[col[k]]``: one frame's emission log-probability of each state."""
    for k in range(col.shape[0]):
        y[k] = row[col[k]]


@jit
def logspace_workspace(T, S, want_grad):
    """float64 scratch needed by ``ctc_sequence_logspace`` for one sequence."""
    return (T if want_grad else 2) * (2 * S + 3)


@jit_nocheck
def ctc_sequence_logspace(blk, UW, uidx, T, tgt, want_grad, scale, ws):
    """Loss of one sequence by forward-backward in log space; exact for any finite input.

    Same arguments and results as ``ctc_sequence_rescaled``, whose fallback it is: the
    rescaled recursion keeps about 708 nats of range per frame, and states further below the
    frame's largest one (common on long inputs, flat or peaked) can still carry the answer.
    Here every state keeps its own log value. Each frame is one branch-free loop over the
    band of states, ``log_sum3`` of the (up to) three predecessors plus the emission, which
    the compiler vectorises. Returns NaN when a relevant log-probability is NaN or ``+inf``
    (the textbook kernel then decides), ``inf`` when no path has positive probability.

    States are interleaved (``s = 2j`` the blank before label ``j``, ``s = 2j + 1`` label
    ``j``); alpha rows carry two ``-inf`` entries in front, so state ``s`` sits at ``s + 2``.
    Alpha includes the frame's emission, beta does not.
    """
    S = tgt.shape[0]
    L = 2 * S + 1
    U = UW - 1
    P = L + 2
    rows = T if want_grad else 2
    alpha = ws[: rows * P].reshape((rows, P))
    bad = False
    for i in range(T * UW):
        bad |= not blk[i] < np.inf
    if bad:
        return np.nan
    # the compact column of each state, and the log-weight of skipping into it (0 or -inf)
    col = np.empty(L, dtype=np.int64)
    skm = np.full(L + 2, NEG_INF)
    for j in range(S):
        col[2 * j] = U
        col[2 * j + 1] = uidx[j]
        if j > 0 and tgt[j] != tgt[j - 1]:
            skm[2 * j + 1] = 0.0
    col[L - 1] = U
    a = alpha[0]
    a[:] = NEG_INF
    a[2] = blk[U]
    if S > 0:
        a[3] = blk[uidx[0]]
    y = np.empty(L)
    for t in range(1, T):
        lo = max(L - 2 * (T - t), 0)
        n = min(2 * t + 1, L - 1) + 1 - lo
        prev = alpha[(t - 1) if want_grad else (t - 1) % 2]
        cur = alpha[t if want_grad else t % 2]
        cur[: lo + 2] = NEG_INF
        cur[lo + n + 2 :] = NEG_INF
        _emissions(blk[t * UW : (t + 1) * UW], col[lo : lo + n], y)
        # loops over slices from zero: the compiler sees non-negative indices and vectorises
        out = cur[lo + 2 : lo + 2 + n]
        p2 = prev[lo + 2 : lo + 2 + n]
        p1 = prev[lo + 1 : lo + 1 + n]
        p0 = prev[lo : lo + n]
        sk = skm[lo : lo + n]
        for k in range(n):
            out[k] = y[k] + log_sum3(p2[k], p1[k], p0[k] + sk[k])
    last = alpha[T - 1 if want_grad else (T - 1) % 2]
    log_p = log_sum3(last[L + 1], last[L], NEG_INF)
    if not log_p > NEG_INF:
        return np.inf
    if not want_grad:
        return -log_p
    # backward: beta at frame t (b) from c = beta + emission at frame t + 1, which two rows
    # hold in turn; each row ends in two -inf entries so s + 1 and s + 2 exist at the top
    b = np.full(L, NEG_INF)
    cc = np.full((2, L + 2), NEG_INF)
    g = np.empty(L)
    occ = np.empty(U + 1)
    b[L - 1] = 0.0
    if L > 1:
        b[L - 2] = 0.0
    for t in range(T - 1, -1, -1):
        lo = max(L - 2 * (T - t), 0)
        n = min(2 * t + 1, L - 1) + 1 - lo
        at = alpha[t, lo + 2 : lo + 2 + n]
        row = blk[t * UW : (t + 1) * UW]
        cl = col[lo : lo + n]
        _emissions(row, cl, y)
        cn = cc[t % 2]
        cn[:lo] = NEG_INF
        cn[lo + n :] = NEG_INF
        ct = cn[lo : lo + n]
        gt = g[:n]
        bt = b[lo : lo + n]
        if t < T - 1:
            cp = cc[(t + 1) % 2]
            c0 = cp[lo : lo + n]
            c1 = cp[lo + 1 : lo + 1 + n]
            c2 = cp[lo + 2 : lo + 2 + n]
            sk = skm[lo + 2 : lo + 2 + n]
            for k in range(n):
                bt[k] = log_sum3(c0[k], c1[k], c2[k] + sk[k])
        # short loops over few arrays: each vectorises (more arrays defeat the alias checks)
        for k in range(n):
            gt[k] = exp_nonpos(at[k] + bt[k] - log_p)
        for k in range(n):
            ct[k] = bt[k] + y[k]
        z = _sum(gt)
        if not z > 0.0:
            return np.nan
        # blanks sit at even states, labels at odd ones
        first = lo % 2
        occ[:U] = 0.0
        occ[U] = _sum(gt[first::2])
        for k in range(1 - first, n, 2):
            occ[cl[k]] += gt[k]
        w = scale / z  # occupancies sum to one per frame; this removes the rounding of log_p
        for u in range(U + 1):
            row[u] = w * occ[u]
    return -log_p


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
    lpf,
    st_t,
    st_n,
    V,
    targets,
    offsets,
    input_lengths,
    blank,
    items,
    scales,
    want_grad,
    mode,
    zero_infinity,
    cols,
    coff_u,
    uidx,
    coff,
    buf,
    ws,
    losses,
    status,
    gradf,
):
    """Losses (and gradients) of the sequences ``items`` of a batch: one thread's share.

    Each sequence runs the rescaled recursion first. Without ``want_grad`` it runs the forward
    pass alone, and where that flushes a state it runs again with the backward pass, which
    bounds what the flush lost (if the workspace for it stays within ``RETRY_WORDS``). Where
    the rescaled recursion gives up (lost range, see ``ctc_sequence_rescaled``) the log-space
    recursion runs on the same compact rows, and
    only inputs holding NaN or ``+inf`` reach the textbook kernel.

    targets : int64, concatenated labels; sequence n owns ``targets[offsets[n]:offsets[n+1]]``.
    cols, coff_u, uidx, coff, buf : from ``loss_plan`` and ``gather_columns``; sequence n reads
        its compact rows ``buf[coff[n]:coff[n+1]]`` and, with ``want_grad``, leaves its scaled
        occupancies there for ``scatter_columns``.
    ws : float64 scratch of at least ``workspace_sizes(...)[n]`` entries for every item n.
    scales : float64 (N,), d(returned loss)/d(loss_n), applied to the gradient.
    losses : float64 (N,) output, per-sequence negative log-likelihood.
    status : int8 (N,) output; 1 where ``buf`` holds the gradient rows still to be written,
        0 where this function wrote the rows ``t < input_lengths[n]`` of ``gradf`` itself.
    gradf : flat gradient output in the layout of ``lpf`` (with ``want_grad``).
    """
    wide = np.empty(0)  # workspace of a loss-only sequence's retry with the backward pass
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
            UW = blk.shape[0] // T
            tu = uidx[offsets[n] : offsets[n + 1]]
            nll = ctc_sequence_rescaled(blk, UW, tu, T, tgt, want_grad, scale, ws)
            rewritten = want_grad  # the rescaled pass may have overwritten rows
            if nll != nll and not want_grad:
                # a loss-only pass gives up at the first flushed state, as it cannot bound
                # what the flush lost; with the backward pass it can (its occupancies are
                # written over the compact rows and not used)
                retry = rescaled_workspace(T, tgt.shape[0], True)
                if retry <= RETRY_WORDS:
                    if wide.shape[0] < retry:
                        wide = np.empty(retry)
                    nll = ctc_sequence_rescaled(blk, UW, tu, T, tgt, True, 0.0, wide)
                    rewritten = True
            if nll != nll:
                if rewritten:
                    gather_columns(
                        lpf, st_t, st_n, cols, coff_u, coff, input_lengths, n, n + 1, False, buf
                    )
                nll = ctc_sequence_logspace(blk, UW, tu, T, tgt, want_grad, scale, ws)
            if nll == nll:
                status[n] = 1 if nll < np.inf else 0
            else:
                if want_grad:  # the textbook kernel accumulates into zeroed rows
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
