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

from ._jit import jit
from .logmath import NEG_INF, exp_into, log_add

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
def _scatter_occupancy(lpf, o, V, tgt, blank, occ_blank, occ_lab, mode, scale, gradf, work):
    """Write one frame's gradient row: ``[exp(lp)] - occupancy``, times ``scale``.

    ``work`` is float64 scratch of shape (3, V) for the vectorised ``exp``.
    """
    if mode == GRAD_LOGITS:
        x = work[0]
        e = work[1]
        for c in range(V):
            x[c] = lpf[o + c]
        exp_into(x, e, work[2].view(np.int64))
        for c in range(V):
            gradf[o + c] = scale * e[c]
    gradf[o + blank] -= scale * occ_blank
    for j in range(tgt.shape[0]):
        gradf[o + tgt[j]] -= scale * occ_lab[j]


@jit
def _band(t, T, L):
    """States of frame ``t`` that are reachable from the start and can still reach the end."""
    lo = L - 2 * (T - t)
    hi = 2 * t + 1
    return max(lo, 0), min(hi, L - 1)


@jit
def ctc_sequence_rescaled(lpf, st_t, base, V, T, tgt, blank, want_grad, mode, scale, gradf):
    """Loss of one sequence by rescaled forward-backward; NaN return means "use log space".

    ``base`` is the flat offset of (t=0, this sequence, c=0). Returns the negative
    log-likelihood, or NaN to request the log-space kernel (an input is NaN, a frame has no
    possible relevant label, an emission would underflow, or a frame total vanished).
    """
    S = tgt.shape[0]
    L = 2 * S + 1
    W = S + 1
    # emissions per frame, shifted by the frame's max: column S is the blank
    shifted = np.empty(T * W)
    log_scale = 0.0
    for t in range(T):
        o = base + t * st_t
        m = lpf[o + blank]
        for j in range(S):
            x = lpf[o + tgt[j]]
            if x > m:
                m = x
        if not m > NEG_INF:  # NaN blank or every relevant label impossible
            return np.nan
        log_scale += m
        r = t * W
        for j in range(S):
            shifted[r + j] = lpf[o + tgt[j]] - m
        shifted[r + S] = lpf[o + blank] - m
        for j in range(W):
            x = shifted[r + j]
            if x != x or (x < -UNDERFLOW_GAP and x > NEG_INF):
                return np.nan
    ey_flat = np.empty(T * W)
    exp_into(shifted, ey_flat, np.empty(T * W, dtype=np.int64))
    ey = ey_flat.reshape((T, W))
    # state s -> column of ey; skip[s + 2] == 1 where the transition s - 2 -> s is allowed
    col = np.empty(L, dtype=np.int64)
    skip = np.zeros(L + 4)
    for s in range(L):
        col[s] = S if s % 2 == 0 else s // 2
    for j in range(1, S):
        if tgt[j] != tgt[j - 1]:
            skip[2 * j + 3] = 1.0
    # forward: alpha rows padded by two leading entries so s - 1 and s - 2 need no branch;
    # only the band and the two entries around it are ever read, so no full zero fill
    rows = T if want_grad else 2
    alpha = np.empty((rows, L + 4))
    y = np.empty(L)
    prev = alpha[0]
    for t in range(T):
        cur = alpha[t if want_grad else t % 2]
        lo, hi = _band(t, T, L)
        cur[lo] = 0.0
        cur[lo + 1] = 0.0
        cur[hi + 3] = 0.0
        cur[hi + 4] = 0.0
        for s in range(lo, hi + 1):
            y[s] = ey[t, col[s]]
        total = 0.0
        if t == 0:
            for s in range(lo, hi + 1):
                cur[s + 2] = y[s]
                total += y[s]
        else:
            for s in range(lo, hi + 1):
                a = y[s] * (prev[s + 2] + prev[s + 1] + skip[s + 2] * prev[s])
                cur[s + 2] = a
                total += a
        if not (total > 0.0 and total < np.inf):
            return np.nan
        inv = 1.0 / total
        for s in range(lo, hi + 1):
            cur[s + 2] *= inv
        log_scale += math.log(total)
        prev = cur
    end = prev[L + 1] + (prev[L] if L > 1 else 0.0)
    if not end > 0.0:
        return np.nan
    nll = -(log_scale + math.log(end))
    if not want_grad:
        return nll
    # backward: beta excludes the current frame's emission; padded by two trailing zeros
    beta = np.zeros(L + 2)
    yb = np.zeros(L + 2)
    beta[L - 1] = 1.0
    if L > 1:
        beta[L - 2] = 1.0
    occ_lab = np.zeros(S)
    work = np.empty((3, V)) if mode == GRAD_LOGITS else np.empty((3, 1))
    for t in range(T - 1, -1, -1):
        lo, hi = _band(t, T, L)
        if t < T - 1:
            # beta_t(s) = y_{t+1}(s) b(s) + y_{t+1}(s+1) b(s+1) + [skip] y_{t+1}(s+2) b(s+2)
            nlo, nhi = _band(t + 1, T, L)
            for s in range(nlo, nhi + 1):
                yb[s] = ey[t + 1, col[s]] * beta[s]
            yb[nhi + 1] = 0.0
            yb[nhi + 2] = 0.0
            total = 0.0
            for s in range(lo, hi + 1):
                b = yb[s] + yb[s + 1] + skip[s + 4] * yb[s + 2]
                beta[s] = b
                total += b
            beta[hi + 1] = 0.0
            beta[hi + 2] = 0.0
            if not total > 0.0:
                return np.nan
            inv = 1.0 / total
            for s in range(lo, hi + 1):
                beta[s] *= inv
        cur = alpha[t]
        z = 0.0
        for s in range(lo, hi + 1):
            z += cur[s + 2] * beta[s]
        if not z > 0.0:
            return np.nan
        inv = 1.0 / z
        occ_blank = 0.0
        for s in range(lo + (lo & 1), hi + 1, 2):
            occ_blank += cur[s + 2] * beta[s]
        occ_blank *= inv
        for j in range(S):
            occ_lab[j] = 0.0
        for s in range(lo | 1, hi + 1, 2):
            occ_lab[s >> 1] = cur[s + 2] * beta[s] * inv
        _scatter_occupancy(
            lpf, base + t * st_t, V, tgt, blank, occ_blank, occ_lab, mode, scale, gradf, work
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
            lpf, base + t * st_t, V, tgt, blank, occ_blank, occ_lab, mode, scale, gradf, work
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
                lpf, st_t, base, V, T, tgt, blank, want_grad, mode, scale, gradf
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
