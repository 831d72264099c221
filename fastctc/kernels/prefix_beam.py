"""CTC prefix beam search (no language model) as nogil Numba kernels.

Beams are a struct of arrays of fixed capacity ``beam_width``; prefixes live in a prefix tree
(``parent`` and ``token`` per node, root = node 0) whose nodes are canonical: a hash
table keyed by ``(parent node, token)`` returns the node of an already-seen prefix, so a
prefix that leaves the beam and comes back gets its old node, and two beams never hold the
same prefix. Capacities are fixed per run; a run that outgrows them is repeated with the bounds.

One frame costs O(V) to pick the candidate tokens (a single pass over the frame) plus
O(beam_width x candidates) for the extensions and an O(entries) selection of the survivors;
nothing is sorted per frame. Scores are probabilities relative to the previous frame's best
prefix (float64), so the inner loops multiply and add instead of calling log/exp.
"""

import math

import numpy as np

from ._jit import jit
from .align import ABORTED as ALIGN_ABORTED
from .align import viterbi_path
from .logmath import NEG_INF

#: Status codes (>= 0 and <= -2 codes carry a frame, see ``prefix_beam_one``).
OK = -1
NEED_NODES = -(1 << 62)
NEED_ENTRIES = -(1 << 62) + 1
#: The caller set its abort flag (``abort[0] != 0``); outputs are incomplete.
ABORTED = -(1 << 62) + 2
#: Frames between two reads of the abort flag.
POLL_FRAMES = 256


@jit
def _hash(key, mask):
    # two products below 2**62 (keys < 2**60): no int64 overflow, also without the JIT
    x = (key & 0x7FFFFFFF) * 0x5BD1E995 + (key >> 31) * 0x1B873593
    x = x ^ (x >> 29)
    return x & mask


@jit
def kth_smallest(a, n, k):
    """Value of rank ``k`` (0-based, ascending) among ``a[:n]``; reorders ``a[:n]``."""
    lo = 0
    hi = n - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        x = a[lo]
        y = a[mid]
        z = a[hi]
        if x > y:
            x, y = y, x
        if y > z:
            y = z
            if x > y:
                y = x
        pivot = y
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                tmp = a[i]
                a[i] = a[j]
                a[j] = tmp
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]
    return a[k]


@jit
def _scan_part(row, c0, c1, token_min_logp, blank, cands, nc, shift, blank_hit):
    """Exact test of ``row[c0:c1]``; see :func:`_scan_row`."""
    for c in range(c0, c1):
        v = row[c]
        if not (v < token_min_logp):  # also true for NaN
            if v != v or v == math.inf:
                return -1, shift, blank_hit
            if v > shift:
                shift = v
            if c == blank:
                blank_hit = True
            else:
                cands[nc] = c
                nc += 1
    return nc, shift, blank_hit


@jit
def _scan_row(row, token_min_logp, coarse_min, blank, cands):
    """Candidate tokens of one frame: ``(count, largest value kept, blank kept)``.

    Writes the non-blank tokens with ``row[c] >= token_min_logp`` to ``cands`` in increasing
    order; ``count`` is -1 when the row holds NaN or +inf. Blocks of 64 values are first
    tested in the input's dtype against ``coarse_min <= token_min_logp``, a loop the compiler
    vectorises (keep this shape: variants with a data-dependent block end do not vectorise).
    """
    V = row.shape[0]
    nc = 0
    shift = NEG_INF
    blank_hit = False
    c0 = 0
    while c0 + 64 <= V:
        hit = 0
        for i in range(c0, c0 + 64):
            hit |= not (row[i] < coarse_min)  # NaN passes, caught by the exact test
        if hit != 0:
            nc, shift, blank_hit = _scan_part(
                row, c0, c0 + 64, token_min_logp, blank, cands, nc, shift, blank_hit
            )
            if nc < 0:
                return nc, shift, blank_hit
        c0 += 64
    return _scan_part(row, c0, V, token_min_logp, blank, cands, nc, shift, blank_hit)


@jit
def _search(
    lp,
    length,
    blank,
    beam_width,
    top_paths,
    beam_prune_logp,
    token_min_logp,
    out_tokens,
    out_times,
    out_lens,
    out_scores,
    node_cap,
    e_cap,
    abort,
):
    """Decode one utterance with at most ``node_cap`` tree nodes and ``e_cap`` extensions
    per frame (no array is reallocated, which keeps the loops free of reference counting).

    lp : float32/float64 (T, V), C-contiguous; only the first ``length`` frames are read.
    out_tokens, out_times : int64 (P, T); out_lens : int64 (P,); out_scores : float64 (P,).

    Probabilities are kept in linear scale, relative to the best prefix of the previous
    frame, and each frame's probabilities relative to its largest value read (``shift``);
    ``log_scale`` accumulates both factors. A frame needs one logarithm and one ``exp`` per
    distinct token it reads; nothing underflows while the beam is pruned.

    Returns ``(count, status)`` as :func:`prefix_beam_one`, or status ``NEED_NODES`` /
    ``NEED_ENTRIES`` when a capacity was too small, or ``ABORTED`` when ``abort[0]`` (int64,
    read every ``POLL_FRAMES`` frames) was set.
    """
    V = lp.shape[1]
    K = beam_width
    prune_factor = math.exp(beam_prune_logp)

    # prefix tree, canonical nodes through a hash table (parent * V + token -> node)
    parent = np.empty(node_cap, np.int64)
    token = np.empty(node_cap, np.int64)
    beam_of = np.empty(node_cap, np.int64)
    parent[0] = -1
    token[0] = -1
    beam_of[0] = -1
    n_nodes = 1
    h_cap = 16
    while h_cap < 2 * node_cap:
        h_cap *= 2
    h_mask = h_cap - 1
    h_key = np.full(h_cap, -1, np.int64)
    h_val = np.empty(h_cap, np.int64)

    # beams, double-buffered (row ``cur`` now, ``1 - cur`` next): node, probability of the
    # alignments ending in a blank / in the prefix's last token
    beam_node = np.empty((2, K), np.int64)
    beam_pb = np.empty((2, K), np.float64)
    beam_pnb = np.empty((2, K), np.float64)
    cur = 0
    totals = np.empty(K, np.float64)
    old_tot = np.empty(K, np.float64)
    n_pb = np.empty(K, np.float64)
    n_pnb = np.empty(K, np.float64)
    first_child = np.empty(K, np.int64)
    next_sib = np.empty(K, np.int64)
    beam_node[0, 0] = 0
    beam_pb[0, 0] = 1.0
    beam_pnb[0, 0] = 0.0
    nb = 1
    log_scale = 0.0

    cands = np.empty(V, np.int64)
    cand_p = np.empty(V, np.float64)
    mark = np.full(V, -1, np.int64)
    p_cache = np.empty(V, np.float64)
    p_frame = np.full(V, -1, np.int64)
    stamp = 0
    e_parent = np.empty(e_cap, np.int64)
    e_tok = np.empty(e_cap, np.int64)
    e_score = np.empty(e_cap, np.float64)
    scratch = np.empty(e_cap + K, np.float64)

    # the block test compares in the input's dtype (it vectorises); rounded down so that it
    # never rejects a block the exact float64 test would accept
    coarse_min = lp.dtype.type(token_min_logp)
    if coarse_min > token_min_logp:  # (float32 input) same type in both branches
        coarse_min = lp.dtype.type(token_min_logp - 1e-6 * abs(token_min_logp) - 1e-30)

    for t in range(length):
        if t % POLL_FRAMES == 0 and abort[0] != 0:
            return 0, ABORTED
        row = lp[t]
        b_node = beam_node[cur]
        b_pb = beam_pb[cur]
        b_pnb = beam_pnb[cur]
        nb_node = beam_node[1 - cur]
        nb_pb = beam_pb[1 - cur]
        nb_pnb = beam_pnb[1 - cur]
        # --- candidate tokens of this frame (one pass; also the NaN / +inf check)
        nc, shift, blank_hit = _scan_row(row, token_min_logp, coarse_min, blank, cands)
        if nc < 0:
            return 0, t
        if nc == 0 and not blank_hit:
            best_c = 0
            best_v = row[0]
            for c in range(1, V):
                if row[c] > best_v:
                    best_v = row[c]
                    best_c = c
            shift = best_v
            if best_c != blank and best_v > NEG_INF:
                cands[0] = best_c
                nc = 1
        if shift == NEG_INF:
            return 0, -(t + 2)
        # every value read below is <= shift: probabilities relative to exp(shift)
        for q in range(nc):
            c = cands[q]
            pc = math.exp(row[c] - shift)
            cand_p[q] = pc
            p_cache[c] = pc
            p_frame[c] = t

        # --- links from each beam to the beams that extend it by one token
        for b in range(nb):
            beam_of[b_node[b]] = b
            first_child[b] = -1
        for b in range(nb):
            p = parent[b_node[b]]
            if p >= 0:
                a = beam_of[p]
                if a >= 0:
                    next_sib[b] = first_child[a]
                    first_child[a] = b

        # --- staying on the same prefix: blank, or a repeat of the last token
        p_blank = math.exp(row[blank] - shift)
        for b in range(nb):
            tot = b_pb[b] + b_pnb[b]
            old_tot[b] = tot
            n_pb[b] = tot * p_blank
            tk = token[b_node[b]]
            if tk >= 0:
                if p_frame[tk] != t:
                    p_cache[tk] = math.exp(row[tk] - shift)
                    p_frame[tk] = t
                n_pnb[b] = b_pnb[b] * p_cache[tk]
            else:
                n_pnb[b] = 0.0
        # --- extensions that land on a prefix already in the beam (merging)
        for a in range(nb):
            j = first_child[a]
            if j < 0:
                continue
            tk = token[b_node[a]]
            while j >= 0:
                c = token[b_node[j]]
                if p_frame[c] != t:
                    p_cache[c] = math.exp(row[c] - shift)
                    p_frame[c] = t
                base = b_pb[a] if c == tk else old_tot[a]
                n_pnb[j] += base * p_cache[c]
                j = next_sib[j]
        best = 0.0
        for b in range(nb):
            s = n_pb[b] + n_pnb[b]
            totals[b] = s
            if s > best:
                best = s

        # --- extensions to new prefixes (pruned against the best existing beam already)
        if nb * nc > e_cap:
            return 0, NEED_ENTRIES
        floor = best * prune_factor
        E = 0
        for a in range(nb):
            stamp += 1
            j = first_child[a]
            while j >= 0:
                mark[token[b_node[j]]] = stamp
                j = next_sib[j]
            tk = token[b_node[a]]
            tot = old_tot[a]
            pbv = b_pb[a]
            for q in range(nc):
                c = cands[q]
                if mark[c] == stamp:
                    continue
                s = (pbv if c == tk else tot) * cand_p[q]
                if s == 0.0 or s < floor:
                    continue
                e_parent[E] = a
                e_tok[E] = c
                e_score[E] = s
                E += 1
                if s > best:
                    best = s
                    floor = best * prune_factor

        for b in range(nb):
            beam_of[b_node[b]] = -1
        if best == 0.0:
            return 0, -(t + 2)

        # --- survivors: within beam_prune_logp of the best, then the beam_width best;
        # ties at the cut go to the earlier entry (existing beams first, then extensions
        # in beam order and increasing token id)
        floor = best * prune_factor
        m = 0
        for b in range(nb):
            s = totals[b]
            if s > 0.0 and s >= floor:
                scratch[m] = s
                m += 1
        for e in range(E):
            s = e_score[e]
            if s >= floor:
                scratch[m] = s
                m += 1
        cut = 0.0
        ties = K
        if m > K:
            cut = kth_smallest(scratch, m, m - K)
            above = 0
            for i in range(m):
                if scratch[i] > cut:
                    above += 1
            ties = K - above
        lo = floor if floor > cut else cut
        inv = 1.0 / best
        kept = 0
        for b in range(nb):
            s = totals[b]
            if s > 0.0 and s >= lo:
                if s == cut:
                    if ties == 0:
                        continue
                    ties -= 1
                nb_node[kept] = b_node[b]
                nb_pb[kept] = n_pb[b] * inv
                nb_pnb[kept] = n_pnb[b] * inv
                kept += 1
        for e in range(E):
            s = e_score[e]
            if s > 0.0 and s >= lo:
                if s == cut:
                    if ties == 0:
                        continue
                    ties -= 1
                # find or create the node of prefix(beam a) + token
                pn = b_node[e_parent[e]]
                c = e_tok[e]
                key = pn * V + c
                h = _hash(key, h_mask)
                while h_key[h] != -1 and h_key[h] != key:
                    h = (h + 1) & h_mask
                if h_key[h] == key:
                    node = h_val[h]
                else:
                    if n_nodes == node_cap:
                        return 0, NEED_NODES
                    node = n_nodes
                    n_nodes += 1
                    parent[node] = pn
                    token[node] = c
                    beam_of[node] = -1
                    h_key[h] = key
                    h_val[h] = node
                nb_node[kept] = node
                nb_pb[kept] = 0.0
                nb_pnb[kept] = s * inv
                kept += 1
        nb = kept
        log_scale += shift + math.log(best)
        cur = 1 - cur

    # --- n-best list: total log-probability, best first, ties in beam order
    b_node = beam_node[cur]
    for b in range(nb):
        totals[b] = beam_pb[cur, b] + beam_pnb[cur, b]
    order = np.argsort(-totals[:nb], kind="mergesort")
    count = min(top_paths, nb)
    for p in range(count):
        b = order[p]
        node = b_node[b]
        depth = 0
        x = node
        while x > 0:
            depth += 1
            x = parent[x]
        x = node
        for i in range(depth - 1, -1, -1):
            out_tokens[p, i] = token[x]
            x = parent[x]
        out_lens[p] = depth
        out_scores[p] = math.log(totals[b]) + log_scale
    return count, OK


@jit
def prefix_beam_run(
    lp,
    length,
    blank,
    beam_width,
    top_paths,
    beam_prune_logp,
    token_min_logp,
    out_tokens,
    out_times,
    out_lens,
    out_scores,
    abort,
):
    """Decode one utterance; :func:`prefix_beam_one` with an abort flag.

    lp : float32/float64 (T, V), C-contiguous; only the first ``length`` frames are read.
    out_tokens, out_times : int64 (P, T); out_lens : int64 (P,); out_scores : float64 (P,).

    ``out_times[p, k]`` is the first frame of token ``k``'s run on the most probable
    alignment of hypothesis ``p`` (its Viterbi path, ties broken as in
    :func:`fastctc.kernels.align.viterbi_path`, which keeps checkpoint rows of the trellis
    every ``B`` frames instead of a ``T x S`` table).

    Capacities start from an estimate and are raised to their bounds (``length *
    beam_width + 1`` nodes, ``beam_width * V`` extensions per frame) if a first run needs
    more, so a typical utterance runs once.

    Returns ``(count, status)``: ``count`` hypotheses written (best first); ``status`` is -1,
    ``t`` for a NaN or +inf at frame ``t``, or ``-(t + 2)`` when every prefix has probability
    zero after frame ``t``, or ``ABORTED`` once ``abort[0]`` (int64 (1,), read every
    ``POLL_FRAMES`` frames) is set. Inputs are validated by the caller.
    """
    K = beam_width
    V = lp.shape[1]
    node_bound = length * K + 1
    node_cap = min(node_bound, 1024 + (length * K) // 4)
    e_cap = K * min(V, 16)
    while True:
        count, status = _search(
            lp,
            length,
            blank,
            beam_width,
            top_paths,
            beam_prune_logp,
            token_min_logp,
            out_tokens,
            out_times,
            out_lens,
            out_scores,
            node_cap,
            e_cap,
            abort,
        )
        if status == NEED_NODES:
            node_cap = node_bound
        elif status == NEED_ENTRIES:
            e_cap = K * V
        else:
            break
    if status == OK:
        # timesteps: where each token's run starts on the hypothesis' best alignment
        path = np.empty(length, np.int64)
        path_scores = np.empty(length, np.float64)
        for p in range(count):
            n_tok = out_lens[p]
            st = viterbi_path(lp, length, out_tokens[p, :n_tok], blank, path, path_scores, abort)
            if st == ALIGN_ABORTED:
                return 0, ABORTED
            k = 0
            for t in range(length):
                c = path[t]
                if c != blank and (t == 0 or c != path[t - 1]):
                    out_times[p, k] = t
                    k += 1
    return count, status


@jit
def prefix_beam_one(
    lp,
    length,
    blank,
    beam_width,
    top_paths,
    beam_prune_logp,
    token_min_logp,
    out_tokens,
    out_times,
    out_lens,
    out_scores,
):
    """Decode one utterance; arguments and result as :func:`prefix_beam_run`, never aborted."""
    return prefix_beam_run(
        lp,
        length,
        blank,
        beam_width,
        top_paths,
        beam_prune_logp,
        token_min_logp,
        out_tokens,
        out_times,
        out_lens,
        out_scores,
        np.zeros(1, np.int64),
    )


@jit
def prefix_beam_batch(
    log_probs,
    lengths,
    blank,
    beam_width,
    top_paths,
    beam_prune_logp,
    token_min_logp,
    items,
    out_tokens,
    out_times,
    out_lens,
    out_scores,
    out_counts,
    status,
    abort,
):
    """Prefix beam search over the utterances ``items`` of a batch (one thread's share).

    log_probs : float32/float64 (N, T, V), C-contiguous; lengths : int64 (N,).
    out_tokens, out_times : int64 (N, P, T); out_lens : int64 (N, P);
    out_scores : float64 (N, P); out_counts, status : int64 (N,).

    ``status[n]`` is -1, ``t`` for a NaN/+inf at frame ``t`` or ``-(t + 2)`` when every
    prefix died at frame ``t``, or ``ABORTED`` (and the remaining utterances skipped) once
    ``abort[0]`` (int64 (1,), polled every ``POLL_FRAMES`` frames) is set. Inputs are
    validated by the caller.
    """
    for i in range(items.shape[0]):
        n = items[i]
        count, st = prefix_beam_run(
            log_probs[n],
            lengths[n],
            blank,
            beam_width,
            top_paths,
            beam_prune_logp,
            token_min_logp,
            out_tokens[n],
            out_times[n],
            out_lens[n],
            out_scores[n],
            abort,
        )
        out_counts[n] = count
        status[n] = st
        if st == ABORTED:
            return
