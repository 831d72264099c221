"""Best-path (greedy) CTC decoding kernel."""

import math

import numpy as np

from ._jit import jit

#: ``greedy_items`` result when the caller's abort flag was set.
ABORTED = -2
#: Frames between two reads of the abort flag.
POLL_FRAMES = 1024


@jit
def greedy_batch(log_probs, lengths, blank, items, tokens, timesteps, counts, scores):
    """Greedy-decode the utterances ``items`` of a batch; as :func:`greedy_items`, never
    aborted."""
    abort = np.zeros(1, np.int64)
    return greedy_items(log_probs, lengths, blank, items, tokens, timesteps, counts, scores, abort)


@jit
def greedy_items(log_probs, lengths, blank, items, tokens, timesteps, counts, scores, abort):
    """Greedy-decode the utterances ``items`` of a batch.

    log_probs : float32/float64 (N, T, V), C-contiguous.
    lengths : int64 (N,), each in [0, T].
    items : int64 (K,), the utterances to decode (one thread's share).
    tokens, timesteps : int64 (N, T) outputs; row ``n`` holds ``counts[n]`` entries.
    scores : float64 (N,) output, the best path's log-probability.

    abort : int64 (1,), read every ``POLL_FRAMES`` frames; once set, the kernel stops.

    Returns -1, ``n * T + t`` for the first NaN frame found (its utterance is left
    undecoded), or ``ABORTED``. Inputs are validated by the caller.
    """
    T = log_probs.shape[1]
    V = log_probs.shape[2]
    for i in range(items.shape[0]):
        n = items[i]
        prev = -1
        k = 0
        total = 0.0
        for t in range(lengths[n]):
            if t % POLL_FRAMES == 0 and abort[0] != 0:
                return ABORTED
            row = log_probs[n, t]
            best = 0
            best_v = row[0]
            if math.isnan(best_v):
                return n * T + t
            for c in range(1, V):
                v = row[c]
                if v > best_v:
                    best_v = v
                    best = c
                elif math.isnan(v):
                    return n * T + t
            total += best_v
            if best != blank and best != prev:
                tokens[n, k] = best
                timesteps[n, k] = t
                k += 1
            prev = best
        counts[n] = k
        scores[n] = total
    return -1
