"""CTC forced alignment: the Viterbi path of a known target through the CTC trellis."""

import numpy as np

from ._jit import jit
from .logmath import NEG_INF


@jit
def viterbi_one(lp, length, target, blank, out_path, out_scores):
    """Best alignment of ``target`` to the first ``length`` frames of ``lp``.

    lp : float32/float64 (T, V); target : int64 (S,) without blanks;
    out_path : int64 (T,); out_scores : float64 (T,) (first ``length`` entries written).

    The trellis has ``2S + 1`` states (blank, y1, blank, ..., yS, blank). A state prefers
    staying, then the previous state, then skipping a blank, when scores tie; at the end the
    final blank wins unless the last token is strictly better.

    Returns -1 on success, ``t`` when a frame ``t`` holds NaN in a column the trellis reads,
    or ``-2`` when no alignment has a finite score. Inputs are validated by the caller.
    """
    S = target.shape[0]
    n_states = 2 * S + 1
    T = length
    if T == 0:
        return -1 if S == 0 else -2
    back = np.zeros((T, n_states), np.int8)
    dp = np.full((2, n_states), NEG_INF)  # rows alternate between frames: no array swaps
    skip = np.zeros(S, np.bool_)  # token k may follow token k-1 without a blank
    for k in range(1, S):
        skip[k] = target[k] != target[k - 1]
    emit = np.empty(S, np.float64)
    for t in range(T):
        row = lp[t]
        e_blank = row[blank]
        if e_blank != e_blank:
            return t
        for k in range(S):
            e = row[target[k]]
            if e != e:
                return t
            emit[k] = e
        cur = dp[t & 1]
        prev = dp[1 - (t & 1)]
        if t == 0:
            cur[0] = e_blank
            if S > 0:
                cur[1] = emit[0]
        else:
            bt = back[t]
            # state 0: leading blank
            cur[0] = prev[0] + e_blank
            for k in range(S):
                s = 2 * k + 1
                # token state: stay, from the blank before it, or skip that blank
                best = prev[s]
                off = 0
                if prev[s - 1] > best:
                    best = prev[s - 1]
                    off = 1
                if k > 0 and skip[k] and prev[s - 2] > best:
                    best = prev[s - 2]
                    off = 2
                cur[s] = best + emit[k]
                bt[s] = off
                # blank state after the token: stay or come from the token
                best = prev[s + 1]
                off = 0
                if prev[s] > best:
                    best = prev[s]
                    off = 1
                cur[s + 1] = best + e_blank
                bt[s + 1] = off
    prev = dp[(T - 1) & 1]
    s = n_states - 1
    if S > 0 and prev[s - 1] > prev[s]:
        s -= 1
    if prev[s] == NEG_INF:
        return -2
    for t in range(T - 1, -1, -1):
        lab = blank if (s & 1) == 0 else target[s >> 1]
        out_path[t] = lab
        out_scores[t] = lp[t, lab]
        s -= int(back[t, s])
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
