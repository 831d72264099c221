"""CTC prefix beam search (no language model) as nogil Numba kernels.

Beams are a struct of arrays of fixed capacity ``beam_width``; prefixes live in a prefix tree
(``parent``, ``token``, ``start`` per node, root = node 0) whose nodes are canonical: a hash
table keyed by ``(parent node, token)`` returns the node of an already-seen prefix, so a
prefix that leaves the beam and comes back gets its old node, and two beams never hold the
same prefix. The tree and the hash table grow by doubling inside the kernel.

One frame costs O(V) to pick the candidate tokens (a single pass over the frame) plus
O(beam_width x candidates) for the extensions and an O(entries) selection of the survivors;
nothing is sorted per frame.
"""

import math

import numpy as np

from ._jit import jit
from .logmath import NEG_INF, log_add

#: Status codes written per utterance (>= 0 codes carry the frame, see ``prefix_beam_batch``).
OK = -1


@jit
def _hash(key, mask):
    x = key * 0x5851F42D4C957F2D  # wraps in int64, fine for hashing
    x = x ^ (x >> 29)
    return x & mask


@jit
def _kth_smallest(a, n, k):
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
    """Decode one utterance.

    lp : float32/float64 (T, V), C-contiguous; only the first ``length`` frames are read.
    out_tokens, out_times : int64 (P, T); out_lens : int64 (P,); out_scores : float64 (P,).

    Returns ``(count, status)``: ``count`` hypotheses written (best first); ``status`` is -1,
    ``t`` for a NaN or +inf at frame ``t``, or ``-(t + 2)`` when every prefix has probability
    zero after frame ``t``. Inputs are validated by the caller.
    """
    V = lp.shape[1]
    K = beam_width

    # prefix tree, canonical nodes through a hash table (parent * V + token -> node)
    node_cap = 1024
    parent = np.empty(node_cap, np.int64)
    token = np.empty(node_cap, np.int64)
    start = np.empty(node_cap, np.int64)
    beam_of = np.empty(node_cap, np.int64)
    parent[0] = -1
    token[0] = -1
    start[0] = -1
    beam_of[0] = -1
    n_nodes = 1
    h_cap = 4096
    h_mask = h_cap - 1
    h_key = np.full(h_cap, -1, np.int64)
    h_val = np.empty(h_cap, np.int64)

    # beams (current and next)
    b_node = np.empty(K, np.int64)
    b_pb = np.empty(K, np.float64)
    b_pnb = np.empty(K, np.float64)
    nb_node = np.empty(K, np.int64)
    nb_pb = np.empty(K, np.float64)
    nb_pnb = np.empty(K, np.float64)
    totals = np.empty(K, np.float64)
    old_tot = np.empty(K, np.float64)
    n_pb = np.empty(K, np.float64)
    n_pnb = np.empty(K, np.float64)
    first_child = np.empty(K, np.int64)
    next_sib = np.empty(K, np.int64)
    b_node[0] = 0
    b_pb[0] = 0.0
    b_pnb[0] = NEG_INF
    nb = 1

    cands = np.empty(V, np.int64)
    mark = np.full(V, -1, np.int64)
    stamp = 0
    e_cap = K * 8
    e_parent = np.empty(e_cap, np.int64)
    e_tok = np.empty(e_cap, np.int64)
    e_score = np.empty(e_cap, np.float64)
    scratch = np.empty(e_cap + K, np.float64)

    for t in range(length):
        row = lp[t]
        # --- candidate tokens of this frame (one pass; also the NaN / +inf check)
        nc = 0
        blank_hit = False
        for c in range(V):
            v = row[c]
            if not (v < token_min_logp):
                if v != v or v == math.inf:
                    return 0, t
                if c == blank:
                    blank_hit = True
                else:
                    cands[nc] = c
                    nc += 1
        if nc == 0 and not blank_hit:
            best_c = 0
            best_v = row[0]
            for c in range(1, V):
                if row[c] > best_v:
                    best_v = row[c]
                    best_c = c
            if best_c != blank and best_v > NEG_INF:
                cands[0] = best_c
                nc = 1

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
        lb = row[blank]
        for b in range(nb):
            tot = log_add(b_pb[b], b_pnb[b])
            old_tot[b] = tot
            n_pb[b] = tot + lb
            tk = token[b_node[b]]
            if tk >= 0:
                n_pnb[b] = b_pnb[b] + row[tk]
            else:
                n_pnb[b] = NEG_INF
        # --- extensions that land on a prefix already in the beam (merging)
        for a in range(nb):
            j = first_child[a]
            if j < 0:
                continue
            tk = token[b_node[a]]
            while j >= 0:
                c = token[b_node[j]]
                base = b_pb[a] if c == tk else old_tot[a]
                n_pnb[j] = log_add(n_pnb[j], base + row[c])
                j = next_sib[j]
        best = NEG_INF
        for b in range(nb):
            s = log_add(n_pb[b], n_pnb[b])
            totals[b] = s
            if s > best:
                best = s

        # --- extensions to new prefixes (pruned against the best existing beam already)
        if nb * nc > e_cap:
            e_cap = max(2 * e_cap, nb * nc)
            e_parent = np.empty(e_cap, np.int64)
            e_tok = np.empty(e_cap, np.int64)
            e_score = np.empty(e_cap, np.float64)
            scratch = np.empty(e_cap + K, np.float64)
        floor = best + beam_prune_logp
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
                base = pbv if c == tk else tot
                s = base + row[c]
                if s == NEG_INF or s < floor:
                    continue
                e_parent[E] = a
                e_tok[E] = c
                e_score[E] = s
                E += 1
                if s > best:
                    best = s
                    floor = best + beam_prune_logp

        for b in range(nb):
            beam_of[b_node[b]] = -1
        if best == NEG_INF:
            return 0, -(t + 2)

        # --- survivors: within beam_prune_logp of the best, then the beam_width best;
        # ties at the cut go to the earlier entry (existing beams first, then extensions
        # in beam order and increasing token id)
        floor = best + beam_prune_logp
        m = 0
        for b in range(nb):
            s = totals[b]
            if s > NEG_INF and s >= floor:
                scratch[m] = s
                m += 1
        for e in range(E):
            s = e_score[e]
            if s >= floor:
                scratch[m] = s
                m += 1
        cut = NEG_INF
        ties = K
        if m > K:
            cut = _kth_smallest(scratch, m, m - K)
            above = 0
            for i in range(m):
                if scratch[i] > cut:
                    above += 1
            ties = K - above
        lo = floor if floor > cut else cut
        kept = 0
        for b in range(nb):
            s = totals[b]
            if s > NEG_INF and s >= lo:
                if s == cut:
                    if ties == 0:
                        continue
                    ties -= 1
                nb_node[kept] = b_node[b]
                nb_pb[kept] = n_pb[b]
                nb_pnb[kept] = n_pnb[b]
                kept += 1
        for e in range(E):
            s = e_score[e]
            if s >= lo:
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
                        node_cap *= 2
                        parent = _grow(parent, node_cap)
                        token = _grow(token, node_cap)
                        start = _grow(start, node_cap)
                        beam_of = _grow(beam_of, node_cap)
                    node = n_nodes
                    n_nodes += 1
                    parent[node] = pn
                    token[node] = c
                    start[node] = t
                    beam_of[node] = -1
                    h_key[h] = key
                    h_val[h] = node
                    if 2 * n_nodes > h_cap:
                        h_cap *= 2
                        h_mask = h_cap - 1
                        h_key, h_val = _rehash(h_key, h_val, h_cap)
                nb_node[kept] = node
                nb_pb[kept] = NEG_INF
                nb_pnb[kept] = s
                kept += 1
        nb = kept
        b_node, nb_node = nb_node, b_node
        b_pb, nb_pb = nb_pb, b_pb
        b_pnb, nb_pnb = nb_pnb, b_pnb

    # --- n-best list: total log-probability, best first, ties in beam order
    for b in range(nb):
        totals[b] = log_add(b_pb[b], b_pnb[b])
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
            out_times[p, i] = start[x]
            x = parent[x]
        out_lens[p] = depth
        out_scores[p] = totals[b]
    return count, OK


@jit
def _grow(arr, cap):
    out = np.empty(cap, arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@jit
def _rehash(keys, vals, cap):
    mask = cap - 1
    nk = np.full(cap, -1, np.int64)
    nv = np.empty(cap, np.int64)
    for i in range(keys.shape[0]):
        k = keys[i]
        if k != -1:
            h = _hash(k, mask)
            while nk[h] != -1:
                h = (h + 1) & mask
            nk[h] = k
            nv[h] = vals[i]
    return nk, nv


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
):
    """Prefix beam search over the utterances ``items`` of a batch (one thread's share).

    log_probs : float32/float64 (N, T, V), C-contiguous; lengths : int64 (N,).
    out_tokens, out_times : int64 (N, P, T); out_lens : int64 (N, P);
    out_scores : float64 (N, P); out_counts, status : int64 (N,).

    ``status[n]`` is -1, ``t`` for a NaN/+inf at frame ``t`` or ``-(t + 2)`` when every
    prefix died at frame ``t``. Inputs are validated by the caller.
    """
    for i in range(items.shape[0]):
        n = items[i]
        count, st = prefix_beam_one(
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
        )
        out_counts[n] = count
        status[n] = st
