"""Plain NumPy/Python references for the decoders: prefix beam search and CTC Viterbi.

Written for clarity, not speed: prefixes are tuples in dicts, survivors are found by sorting.
They follow the rules documented in ``fastctc.beam_search_batch`` and
``fastctc.forced_align``.
"""

from __future__ import annotations

import math

import numpy as np

NEG_INF = -math.inf


def prefix_beam_ref(
    log_probs,
    beam_width: int,
    blank: int = 0,
    top_paths: int = 1,
    beam_prune_logp: float = -10.0,
    token_min_logp: float = -5.0,
):
    """Return ``[(tokens, timesteps, log_prob), ...]`` best first, as tuples.

    Same arithmetic as documented for the kernel, so exact ties break the same way: per
    frame, probabilities relative to the largest value read (``shift``), beam scores relative
    to the previous frame's best prefix, and a running log scale. Timesteps are the run
    starts of each hypothesis' Viterbi path (:func:`viterbi_ref`).
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    T, V = lp.shape
    prune_factor = math.exp(beam_prune_logp)
    # beam: ordered list of prefixes; state[prefix] = [p ending in blank, p ending in token]
    beam = [()]
    state = {(): [1.0, 0.0]}
    log_scale = 0.0
    for t in range(T):
        row = lp[t]
        cands = [c for c in range(V) if c != blank and row[c] >= token_min_logp]
        used = [row[c] for c in cands]
        if row[blank] >= token_min_logp:
            used.append(row[blank])
        if not used:
            best_c = int(np.argmax(row))
            used = [row[best_c]]
            if best_c != blank and row[best_c] > NEG_INF:
                cands = [best_c]
        shift = max(used)
        if shift == NEG_INF:
            raise ValueError(f"beam died at frame {t}")

        def prob(c, row=row, shift=shift):
            return math.exp(row[c] - shift)

        in_beam = set(beam)
        new = {}
        for pre in beam:
            pb, pnb = state[pre]
            new[pre] = [(pb + pnb) * prob(blank), pnb * prob(pre[-1]) if pre else 0.0]
        for pre in beam:
            pb, pnb = state[pre]
            for c in range(V):
                ext = pre + (c,)
                if c == blank or ext not in in_beam:
                    continue
                base = pb if pre and c == pre[-1] else pb + pnb
                new[ext][1] += base * prob(c)
        entries = [(new[pre][0] + new[pre][1], pre, None) for pre in beam]
        for pre in beam:
            pb, pnb = state[pre]
            for c in cands:
                ext = pre + (c,)
                if ext in in_beam:
                    continue
                base = pb if pre and c == pre[-1] else pb + pnb
                entries.append((base * prob(c), ext, base * prob(c)))
        alive = [e for e in entries if e[0] > 0.0]
        if not alive:
            raise ValueError(f"beam died at frame {t}")
        best = max(e[0] for e in alive)
        alive = [e for e in alive if e[0] >= best * prune_factor]
        order = sorted(range(len(alive)), key=lambda i: (-alive[i][0], i))[:beam_width]
        kept = [alive[i] for i in sorted(order)]
        inv = 1.0 / best
        beam = []
        state = {}
        for _score, pre, ext_score in kept:
            beam.append(pre)
            if ext_score is None:
                state[pre] = [new[pre][0] * inv, new[pre][1] * inv]
            else:
                state[pre] = [0.0, ext_score * inv]
        log_scale += shift + math.log(best)
    finals = [(state[pre][0] + state[pre][1], i, pre) for i, pre in enumerate(beam)]
    finals.sort(key=lambda x: (-x[0], x[1]))
    return [
        (pre, run_starts(viterbi_ref(lp, pre, blank)[0], blank), math.log(score) + log_scale)
        for score, _, pre in finals[:top_paths]
    ]


def run_starts(path, blank: int) -> tuple[int, ...]:
    """First frame of every non-blank run of a frame-level path."""
    return tuple(t for t, c in enumerate(path) if c != blank and (t == 0 or c != path[t - 1]))


def viterbi_ref(log_probs, target, blank: int = 0):
    """CTC Viterbi alignment of ``target``: (path, frame scores, total) or None if impossible.

    Ties: a state prefers staying, then the previous state, then skipping a blank; at the end
    the blank state wins over the last token unless the token is strictly better.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    T = lp.shape[0]
    ext = [blank]
    for y in target:
        ext += [int(y), blank]
    S = len(ext)
    score = np.full((T, S), NEG_INF)
    back = np.zeros((T, S), dtype=np.int64)
    score[0, 0] = lp[0, blank]
    if S > 1:
        score[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(S):
            options = [(score[t - 1, s], 0)]
            if s >= 1:
                options.append((score[t - 1, s - 1], 1))
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                options.append((score[t - 1, s - 2], 2))
            best, off = options[0]
            for val, o in options[1:]:
                if val > best:
                    best, off = val, o
            score[t, s] = best + lp[t, ext[s]]
            back[t, s] = off
    s = S - 1
    if S > 1 and score[T - 1, S - 2] > score[T - 1, S - 1]:
        s = S - 2
    total = score[T - 1, s]
    if total == NEG_INF:
        return None
    states = [0] * T
    for t in range(T - 1, -1, -1):
        states[t] = s
        s -= back[t, s]
    path = np.array([ext[s] for s in states], dtype=np.int64)
    frame_scores = lp[np.arange(T), path]
    return path, frame_scores, float(total)
