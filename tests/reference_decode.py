"""Plain NumPy/Python references for the decoders: prefix beam search and CTC Viterbi.

Written for clarity, not speed: prefixes are tuples in dicts, survivors are found by sorting.
They follow the rules documented in ``fastctc.beam_search_batch`` and
``fastctc.forced_align``.
"""

from __future__ import annotations

import math

import numpy as np

NEG_INF = -math.inf


def logaddexp(a: float, b: float) -> float:
    return float(np.logaddexp(a, b))


def prefix_beam_ref(
    log_probs,
    beam_width: int,
    blank: int = 0,
    top_paths: int = 1,
    beam_prune_logp: float = -10.0,
    token_min_logp: float = -5.0,
):
    """Return ``[(tokens, timesteps, log_prob), ...]`` best first, as tuples."""
    lp = np.asarray(log_probs, dtype=np.float64)
    T, V = lp.shape
    # beam: ordered list of prefixes; state[prefix] = [log p ending blank, ending non-blank]
    beam = [()]
    state = {(): [0.0, NEG_INF]}
    first_kept = {(): ()}  # prefix -> start frames, fixed when the prefix is first kept
    for t in range(T):
        row = lp[t]
        cands = [c for c in range(V) if c != blank and row[c] >= token_min_logp]
        if not cands and row[blank] < token_min_logp:
            best_c = int(np.argmax(row))
            if best_c != blank and row[best_c] > NEG_INF:
                cands = [best_c]
        in_beam = set(beam)
        new = {}
        for pre in beam:
            pb, pnb = state[pre]
            tot = logaddexp(pb, pnb)
            stay_nb = pnb + row[pre[-1]] if pre else NEG_INF
            new[pre] = [tot + row[blank], stay_nb]
        for pre in beam:
            pb, pnb = state[pre]
            tot = logaddexp(pb, pnb)
            for c in range(V):
                if c == blank:
                    continue
                ext = pre + (c,)
                if ext not in in_beam:
                    continue
                base = pb if pre and c == pre[-1] else tot
                new[ext][1] = logaddexp(new[ext][1], base + row[c])
        entries = [(logaddexp(*new[pre]), pre, None) for pre in beam]
        for pre in beam:
            pb, pnb = state[pre]
            tot = logaddexp(pb, pnb)
            for c in cands:
                ext = pre + (c,)
                if ext in in_beam:
                    continue
                base = pb if pre and c == pre[-1] else tot
                entries.append((base + row[c], ext, base + row[c]))
        finite = [e for e in entries if e[0] > NEG_INF]
        if not finite:
            raise ValueError(f"beam died at frame {t}")
        best = max(e[0] for e in finite)
        finite = [e for e in finite if e[0] >= best + beam_prune_logp]
        order = sorted(range(len(finite)), key=lambda i: (-finite[i][0], i))[:beam_width]
        kept = [finite[i] for i in sorted(order)]
        beam = []
        state = {}
        for _score, pre, ext_score in kept:
            beam.append(pre)
            if ext_score is None:
                state[pre] = new[pre]
            else:
                state[pre] = [NEG_INF, ext_score]
                if pre not in first_kept:
                    first_kept[pre] = first_kept[pre[:-1]] + (t,)
    finals = [(logaddexp(*state[pre]), i, pre) for i, pre in enumerate(beam)]
    finals.sort(key=lambda x: (-x[0], x[1]))
    return [(pre, first_kept[pre], score) for score, _, pre in finals[:top_paths]]


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
