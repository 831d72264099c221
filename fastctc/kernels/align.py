"""CTC forced alignment: the Viterbi path of a known target through the CTC trellis."""

import math

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
    prev = np.full(n_states, NEG_INF)
    cur = np.full(n_states, NEG_INF)
    for t in range(T):
        row = lp[t]
        if math.isnan(row[blank]):
            return t
        for k in range(S):
            if math.isnan(row[target[k]]):
                return t
        if t == 0:
            cur[0] = row[blank]
            if S > 0:
                cur[1] = row[target[0]]
        else:
            for s in range(n_states):
                best = prev[s]
                off = 0
                if s >= 1 and prev[s - 1] > best:
                    best = prev[s - 1]
                    off = 1
                if s >= 2 and (s & 1) == 1 and target[s >> 1] != target[(s >> 1) - 1]:
                    if prev[s - 2] > best:
                        best = prev[s - 2]
                        off = 2
                lab = blank if (s & 1) == 0 else target[s >> 1]
                cur[s] = best + row[lab]
                back[t, s] = off
        prev, cur = cur, prev
    s = n_states - 1
    if S > 0 and prev[s - 1] > prev[s]:
        s -= 1
    if prev[s] == NEG_INF:
        return -2
    for t in range(T - 1, -1, -1):
        lab = blank if (s & 1) == 0 else target[s >> 1]
        out_path[t] = lab
        out_scores[t] = lp[t, lab]
        s -= back[t, s]
    return -1


@jit
def viterbi_batch(log_probs, input_lengths, targets, target_lengths, blank, items, paths, scores,
                  status):
    """Forced-align the utterances ``items`` (one thread's share).

    log_probs : (N, T, V); targets : int64 (N, S); paths : int64 (N, T); scores : float64
    (N, T); status : int64 (N,), see :func:`viterbi_one`. Inputs are validated by the caller.
    """
    for i in range(items.shape[0]):
        n = items[i]
        status[n] = viterbi_one(
            log_probs[n], input_lengths[n], targets[n, : target_lengths[n]], blank, paths[n],
            scores[n]
        )
