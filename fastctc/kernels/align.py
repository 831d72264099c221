"""CTC forced alignment: the Viterbi path of a known target through the CTC trellis."""

import numpy as np

from ._jit import jit
from .logmath import NEG_INF

#: ``viterbi_path`` status when the caller's abort flag was set.
ABORTED = -3
#: Frames between two reads of the abort flag.
POLL_FRAMES = 256


@jit
def _frames_to_end(target, skip):
    """``r[s]``: fewest frames after the current one that take state ``s`` to a final state.

    target : int64 (S,); skip : bool (S,), ``skip[k]`` when token ``k`` may follow token
    ``k - 1`` without a blank. ``r`` is non-increasing in ``s``; a state ``s`` at frame ``t``
    lies on some complete alignment of ``T`` frames only if ``r[s] <= T - 1 - t``.
    """
    S = target.shape[0]
    n_states = 2 * S + 1
    r = np.zeros(n_states, np.int64)
    for k in range(S - 2, -1, -1):
        r[2 * k + 2] = r[2 * k + 3] + 1
        r[2 * k + 1] = r[2 * k + 3] + (1 if skip[k + 1] else 2)
    if S > 0:
        r[0] = r[1] + 1
    return r


@jit
def _step(row, target, skip, blank, prev, cur, lo, hi, base, back_row):
    """One trellis frame over the states ``[lo, hi]``.

    ``prev`` and ``cur`` hold states from ``base - 2`` on (index ``s - base + 2``; the two
    padding cells stay -inf); ``back_row`` (same indexing, may be empty) gets each state's
    back-pointer: 0 stay, 1 from the previous state, 2 skip a blank. Ties prefer staying,
    then the previous state, then the skip. States go in (blank, token) pairs, which keeps
    the parity test out of the loop.
    """
    if back_row.shape[0] > 0:
        _step_back(row, target, skip, blank, prev, cur, lo, hi, base, back_row)
        return
    e_blank = row[blank]
    s = lo
    if s & 1:  # a token state first
        i = s - base + 2
        k = s >> 1
        best = prev[i]
        if prev[i - 1] > best:
            best = prev[i - 1]
        if skip[k] and prev[i - 2] > best:
            best = prev[i - 2]
        cur[i] = best + row[target[k]]
        s += 1
    while s < hi:  # blank state s, token state s + 1 (token k = s // 2)
        i = s - base + 2
        stay = prev[i]
        before = prev[i - 1]
        cur[i] = (before if before > stay else stay) + e_blank
        best = prev[i + 1]
        if stay > best:
            best = stay
        if skip[s >> 1] and before > best:
            best = before
        cur[i + 1] = best + row[target[s >> 1]]
        s += 2
    if s == hi:  # a blank state last
        i = s - base + 2
        stay = prev[i]
        before = prev[i - 1]
        cur[i] = (before if before > stay else stay) + e_blank


@jit
def _step_back(row, target, skip, blank, prev, cur, lo, hi, base, back_row):
    """:func:`_step` that also writes the back-pointers."""
    e_blank = row[blank]
    s = lo
    if s & 1:  # a token state first
        i = s - base + 2
        k = s >> 1
        best = prev[i]
        off = 0
        if prev[i - 1] > best:
            best = prev[i - 1]
            off = 1
        if skip[k] and prev[i - 2] > best:
            best = prev[i - 2]
            off = 2
        cur[i] = best + row[target[k]]
        back_row[i] = off
        s += 1
    while s < hi:  # blank state s, token state s + 1 (token k = s // 2)
        i = s - base + 2
        stay = prev[i]
        before = prev[i - 1]
        up = before > stay
        cur[i] = (before if up else stay) + e_blank
        back_row[i] = 1 if up else 0
        best = prev[i + 1]
        off = 0
        if stay > best:
            best = stay
            off = 1
        if skip[s >> 1] and before > best:
            best = before
            off = 2
        cur[i + 1] = best + row[target[s >> 1]]
        back_row[i + 1] = off
        s += 2
    if s == hi:  # a blank state last
        i = s - base + 2
        stay = prev[i]
        before = prev[i - 1]
        up = before > stay
        cur[i] = (before if up else stay) + e_blank
        back_row[i] = 1 if up else 0


@jit
def viterbi_one(lp, length, target, blank, out_path, out_scores):
    """Best alignment of ``target`` to the first ``length`` frames of ``lp``; arguments and
    result as :func:`viterbi_path`, never aborted."""
    return viterbi_path(lp, length, target, blank, out_path, out_scores, np.zeros(1, np.int64))


@jit
def viterbi_path(lp, length, target, blank, out_path, out_scores, abort):
    """Best alignment of ``target`` to the first ``length`` frames of ``lp``.

    lp : float32/float64 (T, V); target : int64 (S,) without blanks;
    out_path : int64 (T,); out_scores : float64 (T,) (first ``length`` entries written).

    The trellis has ``2S + 1`` states (blank, y1, blank, ..., yS, blank). A state prefers
    staying, then the previous state, then skipping a blank, when scores tie; at the end the
    final blank wins unless the last token is strictly better.

    Memory stays far below the ``T x (2S + 1)`` back-pointer table of the textbook
    algorithm. Only states that lie on some complete alignment are scored (a band between
    ``frames_to_end`` and ``2t + 1``; every predecessor of such a state is one too, so the
    scores and back-pointers there are those of the full trellis). The first pass keeps the
    band's scores every ``B`` frames; the back-trace then recomputes one block of ``B``
    frames at a time from its checkpoint, over the ``2B + 3`` states below the path's
    current state (the path falls at most two states a frame, and scores that miss states
    below the window are exact ``2j`` states above it after ``j`` frames). ``B`` is the cube
    root of twice the band's area, which balances the checkpoints against one block's table.
    Results, ties included, equal the full table's.

    Returns -1 on success, ``t`` when a frame ``t`` holds NaN in a column the trellis reads,
    ``-2`` when no alignment has a finite score, or ``ABORTED`` once ``abort[0]`` (int64
    (1,), read every ``POLL_FRAMES`` frames) is set. Inputs are validated by the caller.
    """
    S = target.shape[0]
    n_states = 2 * S + 1
    T = length
    V = lp.shape[1]
    # the first frame with a NaN in a column the trellis reads
    used = np.zeros(V, np.bool_)
    used[blank] = True
    for k in range(S):
        used[target[k]] = True
    n_cols = 0
    cols = np.empty(V, np.int64)
    for c in range(V):
        if used[c]:
            cols[n_cols] = c
            n_cols += 1
    for t in range(T):
        for j in range(n_cols):
            x = lp[t, cols[j]]
            if x != x:
                return t
    if T == 0:
        return -1 if S == 0 else -2
    skip = np.zeros(S, np.bool_)  # token k may follow token k-1 without a blank
    for k in range(1, S):
        skip[k] = target[k] != target[k - 1]
    r = _frames_to_end(target, skip)
    if S > 0 and r[1] > T - 1:
        return -2  # too few frames for the target
    # band [lo[t], hi[t]] of states on some complete alignment
    lo = np.empty(T, np.int64)
    s = 0
    area = 0
    for t in range(T):
        while r[s] > T - 1 - t:
            s += 1
        lo[t] = s
        area += min(2 * t + 1, n_states - 1) - s + 1
    B = 1
    while B * B * B < 2 * area:
        B += 1
    B = max(1, min(B, T))
    n_ck = (T - 1) // B + 1
    ck_off = np.empty(n_ck + 1, np.int64)
    ck_off[0] = 0
    for c in range(n_ck):
        t = c * B
        ck_off[c + 1] = ck_off[c] + min(2 * t + 1, n_states - 1) - lo[t] + 1
    ck = np.empty(ck_off[n_ck], np.float64)
    no_back = np.empty(0, np.int8)

    # first pass: full rows (states from -2), band only
    rows = np.full((2, n_states + 2), NEG_INF)
    cur = rows[0]
    cur[2] = lp[0, blank]
    if S > 0:
        cur[3] = lp[0, target[0]]
    for t in range(T):
        if t % POLL_FRAMES == 0 and abort[0] != 0:
            return ABORTED
        cur = rows[t & 1]
        hi = min(2 * t + 1, n_states - 1)
        if t > 0:
            _step(lp[t], target, skip, blank, rows[1 - (t & 1)], cur, lo[t], hi, 0, no_back)
        if t % B == 0:
            c = t // B
            for s in range(lo[t], hi + 1):
                ck[ck_off[c] + s - lo[t]] = cur[s + 2]
    last = rows[(T - 1) & 1]
    s = n_states - 1
    if S > 0 and last[s + 1] > last[s + 2]:
        s -= 1
    if last[s + 2] == NEG_INF:
        return -2

    # back-trace, one block of frames (ta, te] at a time, recomputed from its checkpoint
    width = 2 * B + 3
    win = np.empty((2, width + 2), np.float64)
    back = np.empty((B + 1, width + 2), np.int8)
    te = T - 1
    while te > 0:
        if abort[0] != 0:
            return ABORTED
        ta = ((te - 1) // B) * B
        L = te - ta
        base = max(0, s - 2 * L - 2)
        top = s
        c = ta // B
        win[:, :] = NEG_INF
        for x in range(base, top + 1):
            if lo[ta] <= x <= min(2 * ta + 1, n_states - 1):
                win[0, x - base + 2] = ck[ck_off[c] + x - lo[ta]]
        for j in range(1, L + 1):
            t = ta + j
            _step(
                lp[t], target, skip, blank, win[(j - 1) & 1], win[j & 1], base, top, base, back[j]
            )
        for t in range(te, ta, -1):
            lab = blank if (s & 1) == 0 else target[s >> 1]
            out_path[t] = lab
            out_scores[t] = lp[t, lab]
            s -= int(back[t - ta, s - base + 2])
        te = ta
    lab = blank if (s & 1) == 0 else target[s >> 1]
    out_path[0] = lab
    out_scores[0] = lp[0, lab]
    return -1


@jit
def viterbi_batch(
    log_probs, input_lengths, targets, target_lengths, blank, items, paths, scores, status
):
    """Forced-align the utterances ``items`` (one thread's share).

    log_probs : (N, T, V); targets : int64 (N, S); paths : int64 (N, T); scores : float64
    (N, T); status : int64 (N,), see :func:`viterbi_one`. Inputs are validated by the caller.
    """
    for i in range(items.shape[0]):
        n = items[i]
        status[n] = viterbi_one(
            log_probs[n],
            input_lengths[n],
            targets[n, : target_lengths[n]],
            blank,
            paths[n],
            scores[n],
        )
