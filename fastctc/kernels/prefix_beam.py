"""CTC prefix beam search (no language model) as nogil Numba kernels.

Beams are a struct of arrays of fixed capacity ``beam_width``; prefixes live in a prefix tree
(``parent`` and ``token`` per node, root = node 0) whose nodes are canonical: a hash
table keyed by ``(parent node, token)`` returns the node of an already-seen prefix, so a
prefix that leaves the beam and comes back gets its old node, and two beams never hold the
same prefix.

One frame costs O(V) to pick the candidate tokens (a single pass over the frame) plus
O(beam_width x candidates) for the extensions and an O(entries) selection of the survivors;
nothing is sorted per frame. Scores are probabilities relative to the previous frame's best
prefix (float64), so the inner loops multiply and add instead of calling log/exp.

The whole state between two frames is a ``Search`` (the tree, the beams, the work arrays,
the committed tokens and the running ``log_scale``), so a search can stop after any frame
and go on later: :func:`advance` runs frames ``[t_from, t_to)`` on it, for the offline
search (:func:`prefix_beam_run`, all frames at once) and for streams
(:mod:`fastctc.beam_stream`, chunk by chunk) alike, and gives bit-identical results however
the frames are split. When the tree is full, :func:`_compact` drops the nodes that no beam
reaches and moves the prefix every beam shares out of the tree; the arrays grow only when
that frees too little. Node numbers are never part of a result (ties follow beam order).

:func:`advance` runs the frame loop; each step is a helper taking the search state in a few
named tuples of arrays (``Tree``, ``Beams``, ``BeamWork``, ``TokenWork``, ``Extensions``).
A helper binds the arrays it uses to local names once per call.
Keep the per-frame helpers small and free of calls to large kernels (``advance`` calls
:func:`_scan_row` itself): LLVM then inlines them into ``advance``, where the reference
counts of their array arguments cancel out. A helper left as a real call pays two atomic
operations per array argument and frame (+10% measured on short utterances of 5000 labels);
check ``advance.inspect_llvm`` for ``NRT_incref`` calls after changing one. Each level of
calls above the loop re-optimises it when compiled, so the loop is not wrapped further.
"""

import math
from collections import namedtuple

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


# --- search state: fixed-capacity arrays, grouped by what they describe

#: The prefix tree: node 0 is the root (the empty prefix); per node its ``parent`` node and
#: last ``token`` (-1 for the root) and ``beam_of``, its index in the current beam while
#: :func:`_link` has the beams linked (-1 otherwise). Nodes are canonical: the hash table
#: ``h_key`` / ``h_val`` (a power-of-two number of slots, -1 = free) maps ``parent * V +
#: token`` to the node of that prefix. All int64, capacity ``node_cap``.
Tree = namedtuple("Tree", ["parent", "token", "beam_of", "h_key", "h_val"])

#: Beams of one frame (capacity ``K``): the tree ``node`` of each prefix (int64), the
#: probability of its alignments ending in a blank (``pb``) and in its last token (``pnb``),
#: float64, relative to the best prefix of the frame before.
Beams = namedtuple("Beams", ["node", "pb", "pnb"])

#: Per-beam work of one frame (capacity ``K``), float64: the beam's probability before the
#: frame (``old_tot``), after it (``n_pb`` + ``n_pnb`` = ``totals``); int64: the beams that
#: extend the beam by one token, a list through ``first_child`` and ``next_sib`` (-1 ends it).
BeamWork = namedtuple("BeamWork", ["old_tot", "n_pb", "n_pnb", "totals", "first_child", "next_sib"])

#: Per-token work (capacity ``V``): this frame's candidate tokens ``cands[:nc]`` (int64) and
#: their probabilities ``cand_p`` relative to the frame's ``shift``; ``p_cache[c]``, that
#: probability of token ``c``, valid when ``p_frame[c]`` is the current frame; ``mark[c]``
#: is ``t * K + a`` while :func:`_extend` extends beam ``a`` at frame ``t`` and token ``c``
#: leads from it to a prefix already in the beam.
TokenWork = namedtuple("TokenWork", ["cands", "cand_p", "p_cache", "p_frame", "mark"])

#: New prefixes of one frame (capacity ``e_cap``): the beam ``parent`` (index) extended by
#: ``token`` with probability ``score``; ``scratch`` (``e_cap + K``) for the selection.
Extensions = namedtuple("Extensions", ["parent", "token", "score", "scratch"])


@jit
def _new_tree(node_cap):
    """An empty tree (the root only) with room for ``node_cap`` nodes."""
    parent = np.empty(node_cap, np.int64)
    token = np.empty(node_cap, np.int64)
    beam_of = np.empty(node_cap, np.int64)
    parent[0] = -1
    token[0] = -1
    beam_of[0] = -1
    h_cap = 16
    while h_cap < 2 * node_cap:
        h_cap *= 2
    return Tree(parent, token, beam_of, np.full(h_cap, -1, np.int64), np.empty(h_cap, np.int64))


@jit
def _new_beams(K):
    """Room for ``K`` beams."""
    return Beams(np.empty(K, np.int64), np.empty(K, np.float64), np.empty(K, np.float64))


@jit
def _child_node(tree, n_nodes, pn, c, V):
    """Node of prefix ``pn + (c,)``, created if new: ``(node, n_nodes)``; node -1 when the
    tree is full."""
    parent, token, beam_of, h_key, h_val = tree
    h_mask = h_key.shape[0] - 1
    key = pn * V + c
    h = _hash(key, h_mask)
    while h_key[h] != -1 and h_key[h] != key:
        h = (h + 1) & h_mask
    if h_key[h] == key:
        return h_val[h], n_nodes
    if n_nodes == parent.shape[0]:
        return -1, n_nodes
    node = n_nodes
    parent[node] = pn
    token[node] = c
    beam_of[node] = -1
    h_key[h] = key
    h_val[h] = node
    return node, n_nodes + 1


@jit
def _coarse_min(lp, token_min_logp):
    """``token_min_logp`` in ``lp``'s dtype, rounded down: the block test of
    :func:`_scan_row` compares in that dtype (it vectorises) and must never reject a block
    the exact float64 test would accept."""
    coarse_min = lp.dtype.type(token_min_logp)
    if coarse_min > token_min_logp:  # (float32 input) same type in both branches
        coarse_min = lp.dtype.type(token_min_logp - 1e-6 * abs(token_min_logp) - 1e-30)
    return coarse_min


@jit
def _frame_tokens(row, t, blank, nc, shift, blank_hit, tw):
    """Finish the candidate tokens of frame ``t`` that :func:`_scan_row` found (``nc``,
    ``shift``, ``blank_hit``; ``nc >= 0``): ``(nc, shift)``.

    When no token passed ``token_min_logp``, the frame's best token is the candidate (unless
    it is the blank). Then the candidates' probabilities relative to ``exp(shift)``, the
    largest value read, go to ``tw.cand_p`` and ``tw.p_cache``. ``shift`` is -inf when every
    token of the frame has probability zero.
    """
    cands, cand_p, p_cache, p_frame, _ = tw
    if nc == 0 and not blank_hit:
        V = row.shape[0]
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
        return nc, shift
    # every value read below is <= shift: probabilities relative to exp(shift)
    for q in range(nc):
        c = cands[q]
        pc = math.exp(row[c] - shift)
        cand_p[q] = pc
        p_cache[c] = pc
        p_frame[c] = t
    return nc, shift


@jit
def _link(beams, nb, tree, bw):
    """Index each beam's node (``tree.beam_of``) and list, for each beam, the beams that
    extend it by one token (``bw.first_child`` / ``bw.next_sib``)."""
    node = beams.node
    parent, _, beam_of, _, _ = tree
    _, _, _, _, first_child, next_sib = bw
    for b in range(nb):
        beam_of[node[b]] = b
        first_child[b] = -1
    for b in range(nb):
        p = parent[node[b]]
        if p >= 0:
            a = beam_of[p]
            if a >= 0:
                next_sib[b] = first_child[a]
                first_child[a] = b


@jit
def _unlink(beams, nb, tree):
    """Undo :func:`_link`'s ``tree.beam_of``."""
    node = beams.node
    beam_of = tree.beam_of
    for b in range(nb):
        beam_of[node[b]] = -1


@jit
def _stay(row, t, shift, blank, beams, nb, tree, bw, tw):
    """Each beam's prefix after frame ``t`` when it stays on it (a blank, a repeat of its
    last token): writes ``bw.old_tot``, ``bw.n_pb`` and ``bw.n_pnb``. Each token's
    probability is computed once per frame (``tw.p_cache``)."""
    node, pb, pnb = beams
    token = tree.token
    old_tot, n_pb, n_pnb, _, _, _ = bw
    p_cache = tw.p_cache
    p_frame = tw.p_frame
    p_blank = math.exp(row[blank] - shift)
    for b in range(nb):
        tot = pb[b] + pnb[b]
        old_tot[b] = tot
        n_pb[b] = tot * p_blank
        tk = token[node[b]]
        if tk >= 0:
            if p_frame[tk] != t:
                p_cache[tk] = math.exp(row[tk] - shift)
                p_frame[tk] = t
            n_pnb[b] = pnb[b] * p_cache[tk]
        else:
            n_pnb[b] = 0.0


@jit
def _merge(row, t, shift, beams, nb, tree, bw, tw):
    """Add to each beam's prefix the alignments reaching it from the beam it extends, then
    its total (``bw.totals``); returns the largest total."""
    node, pb, _ = beams
    token = tree.token
    old_tot, n_pb, n_pnb, totals, first_child, next_sib = bw
    p_cache = tw.p_cache
    p_frame = tw.p_frame
    for a in range(nb):
        j = first_child[a]
        if j < 0:
            continue
        tk = token[node[a]]
        while j >= 0:
            c = token[node[j]]
            if p_frame[c] != t:
                p_cache[c] = math.exp(row[c] - shift)
                p_frame[c] = t
            base = pb[a] if c == tk else old_tot[a]
            n_pnb[j] += base * p_cache[c]
            j = next_sib[j]
    best = 0.0
    for b in range(nb):
        s = n_pb[b] + n_pnb[b]
        totals[b] = s
        if s > best:
            best = s
    return best


@jit
def _extend(t, beams, nb, nc, best, prune_factor, tree, bw, tw, ext):
    """Extensions of the beams by this frame's candidate tokens to prefixes not in the beam,
    dropped below ``best * prune_factor`` as ``best`` rises: ``(count, best)``.

    Requires ``nb * nc <= len(ext.score)``.
    """
    node, pb, _ = beams
    token = tree.token
    old_tot, _, _, _, first_child, next_sib = bw
    cands, cand_p, _, _, mark = tw
    e_parent, e_tok, e_score, _ = ext
    K = node.shape[0]
    floor = best * prune_factor
    E = 0
    for a in range(nb):
        stamp = t * K + a  # one per (frame, beam); marks start at -1
        j = first_child[a]
        while j >= 0:
            mark[token[node[j]]] = stamp
            j = next_sib[j]
        tk = token[node[a]]
        tot = old_tot[a]
        pbv = pb[a]
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
    return E, best


@jit
def _survivor_cut(totals, nb, ext, E, floor, K):
    """Lowest score kept and the tie rule: ``(lo, cut, ties)``.

    Entries (the ``nb`` beams, then the ``E`` extensions) below ``floor`` are dropped, then
    the ``K`` best are kept: those above ``cut``, and the first ``ties`` entries equal to it
    (``cut = 0.0`` and ``ties = K`` when at most ``K`` entries remain).
    """
    e_score = ext.score
    scratch = ext.scratch
    m = np.int64(0)  # typed int64 from the start: kth_smallest compiles once
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
    return lo, cut, ties


@jit
def _commit(beams, nb, ext, E, cut_rule, inv, bw, tree, n_nodes, V, out):
    """Write the survivors of :func:`_survivor_cut` (``cut_rule``) to ``out``, in entry
    order, scaled by ``inv`` (1 / best); new prefixes get their tree nodes.

    Returns ``(kept, n_nodes)``; ``kept`` is -1 when the tree ran out of nodes.
    """
    lo, cut, ties = cut_rule
    node = beams.node
    _, n_pb, n_pnb, totals, _, _ = bw
    e_parent, e_tok, e_score, _ = ext
    o_node, o_pb, o_pnb = out
    kept = 0
    for b in range(nb):
        s = totals[b]
        if s > 0.0 and s >= lo:
            if s == cut:
                if ties == 0:
                    continue
                ties -= 1
            o_node[kept] = node[b]
            o_pb[kept] = n_pb[b] * inv
            o_pnb[kept] = n_pnb[b] * inv
            kept += 1
    for e in range(E):
        s = e_score[e]
        if s > 0.0 and s >= lo:
            if s == cut:
                if ties == 0:
                    continue
                ties -= 1
            child, n_nodes = _child_node(tree, n_nodes, node[e_parent[e]], e_tok[e], V)
            if child < 0:
                return -1, n_nodes
            o_node[kept] = child
            o_pb[kept] = 0.0
            o_pnb[kept] = s * inv
            kept += 1
    return kept, n_nodes


#: The whole state of a search between frames: the tree, this frame's ``beams`` and the
#: ``spare`` room for the next frame's, the per-frame work arrays, the ``committed`` tokens
#: (the prefix shared by every beam that :func:`_compact` moved out of the tree, int64) and
#: the scalars: ``ints`` = (tree nodes in use, beams, committed tokens, frames consumed)
#: (int64 (4,)), ``floats`` = (``log_scale``,) (float64 (1,)). The arrays that grow
#: (``tree``, ``ext``, ``committed``) are replaced, so callers keep the ``Search`` returned.
Search = namedtuple(
    "Search", ["tree", "beams", "spare", "bw", "tw", "ext", "committed", "ints", "floats"]
)


@jit
def _new_ext(e_cap, K):
    """Room for ``e_cap`` extensions per frame."""
    return Extensions(
        np.empty(e_cap, np.int64),
        np.empty(e_cap, np.int64),
        np.empty(e_cap, np.float64),
        np.empty(e_cap + K, np.float64),
    )


@jit
def new_search(V, beam_width, node_cap, e_cap):
    """A search before its first frame: the empty prefix, probability 1, with room for
    ``node_cap`` tree nodes (at least ``beam_width + 1``) and ``e_cap`` extensions."""
    K = beam_width
    beams = _new_beams(K)
    beams.node[0] = 0
    beams.pb[0] = 1.0
    beams.pnb[0] = 0.0
    bw = BeamWork(
        np.empty(K, np.float64),
        np.empty(K, np.float64),
        np.empty(K, np.float64),
        np.empty(K, np.float64),
        np.empty(K, np.int64),
        np.empty(K, np.int64),
    )
    tw = TokenWork(
        np.empty(V, np.int64),
        np.empty(V, np.float64),
        np.empty(V, np.float64),
        np.full(V, -1, np.int64),
        np.full(V, -1, np.int64),
    )
    ints = np.zeros(4, np.int64)
    ints[0] = 1  # the root
    ints[1] = 1  # one beam
    return Search(
        _new_tree(node_cap),
        beams,
        _new_beams(K),
        bw,
        tw,
        _new_ext(e_cap, K),
        np.empty(16, np.int64),
        ints,
        np.zeros(1, np.float64),
    )


@jit
def _reach(parent, node, nb, n_nodes):
    """The nodes on the paths from the beams (``node[:nb]``) to the root: per node the
    number of its children on those paths (-1: not on one), one such child, and whether it
    is a beam's node (1)."""
    kids = np.empty(n_nodes, np.int64)
    only = np.empty(n_nodes, np.int64)
    is_beam = np.empty(n_nodes, np.int64)
    for x in range(n_nodes):
        kids[x] = -1
        is_beam[x] = 0
    for b in range(nb):
        x = node[b]
        is_beam[x] = 1
        if kids[x] < 0:
            kids[x] = 0
            while x > 0:
                p = parent[x]
                if kids[p] < 0:
                    kids[p] = 1
                    only[p] = x
                    x = p
                else:
                    kids[p] += 1
                    break
    return kids, only, is_beam


@jit
def _shared_node(kids, only, is_beam):
    """The deepest node on the path of every beam (their longest common prefix)."""
    x = 0
    while is_beam[x] == 0 and kids[x] == 1:
        x = only[x]
    return x


@jit
def _depth(parent, x):
    depth = 0
    while x > 0:
        depth += 1
        x = parent[x]
    return depth


@jit
def _path(parent, token, x, committed, n_comm, out):
    """Write the committed tokens, then the tokens from the root to node ``x``, to ``out``;
    returns their number."""
    depth = _depth(parent, x)
    for i in range(n_comm):
        out[i] = committed[i]
    y = x
    for i in range(n_comm + depth - 1, n_comm - 1, -1):
        out[i] = token[y]
        y = parent[y]
    return n_comm + depth


@jit
def _rehash(parent, token, n_nodes, h_key, h_val, V):
    """Fill the empty hash table ``h_key`` / ``h_val`` with nodes ``1 .. n_nodes - 1``."""
    h_mask = h_key.shape[0] - 1
    for x in range(1, n_nodes):
        key = parent[x] * V + token[x]
        h = _hash(key, h_mask)
        while h_key[h] != -1:
            h = (h + 1) & h_mask
        h_key[h] = key
        h_val[h] = x


@jit
def _compact(parent, token, beam_of, h_key, h_val, node, nb, n_nodes, committed, n_comm, V):
    """Drop the tree nodes that no beam reaches and move the prefix shared by every beam to
    ``committed``; that prefix's last node becomes the root (keeping its token, which the
    repeat rule reads). Nodes keep their relative order; ``node[:nb]`` is renumbered.
    Returns ``(n_nodes, committed, n_comm)`` (``committed`` grows when full)."""
    kids, only, is_beam = _reach(parent, node, nb, n_nodes)
    top = _shared_node(kids, only, is_beam)
    # the shared prefix below the root moves to ``committed``
    need = n_comm + _depth(parent, top)
    if need > committed.shape[0]:
        grown = np.empty(max(2 * committed.shape[0], need), np.int64)
        for i in range(n_comm):
            grown[i] = committed[i]
        committed = grown
    n_comm = _path(parent, token, top, committed, n_comm, committed)
    # the nodes above ``top`` are dropped; the kept ones are renumbered in order (a child
    # has a larger number than its parent, so ``top`` becomes 0 and moves are downwards)
    y = top
    while y > 0:
        y = parent[y]
        kids[y] = -1
    remap = only  # reused: ``only`` is not read any more
    m = 0
    for x in range(n_nodes):
        if kids[x] >= 0:
            remap[x] = m
            parent[m] = -1 if x == top else remap[parent[x]]
            token[m] = token[x]
            beam_of[m] = -1
            m += 1
    for h in range(h_key.shape[0]):
        h_key[h] = -1
    _rehash(parent, token, m, h_key, h_val, V)
    for b in range(nb):
        node[b] = remap[node[b]]
    return m, committed, n_comm


@jit
def _grow_tree(tree, n_nodes, node_cap, V):
    """``tree`` (``n_nodes`` nodes in use) copied to room for ``node_cap`` nodes."""
    new = _new_tree(node_cap)
    for x in range(n_nodes):
        new.parent[x] = tree.parent[x]
        new.token[x] = tree.token[x]
        new.beam_of[x] = tree.beam_of[x]
    _rehash(new.parent, new.token, n_nodes, new.h_key, new.h_val, V)
    return new


@jit
def advance(lp, r_from, r_to, t0, blank, beam_prune_logp, token_min_logp, s, abort, make_room):
    """Run rows ``r_from`` to ``r_to`` of ``lp``, frames ``t0 + r`` of the search ``s``:
    ``(r, status, s)``, the row it stopped at (``r_to`` when done), and the search after row
    ``r - 1``; keep the returned ``s`` (arrays that grew are new).

    ``status`` is ``OK``; ``ABORTED``; the frame for a NaN or +inf; ``-(t + 2)`` when every
    prefix dies at frame ``t``. When the tree may not hold one more frame's nodes or the
    extensions do not fit ``ext``, ``make_room`` decides: the nodes no beam reaches are
    dropped and the shared prefix is committed (:func:`_compact`; the tree grows only when
    that frees less than half of it, so it stays within a small multiple of the nodes the
    beams reach) or ``ext`` grows to ``beam_width x V``, and the loop goes on from the same
    frame; without ``make_room`` the status is ``NEED_NODES`` / ``NEED_ENTRIES`` and nothing
    of the state has changed for row ``r``.

    Probabilities are kept in linear scale, relative to the best prefix of the previous
    frame, and each frame's probabilities relative to its largest value read (``shift``);
    ``log_scale`` accumulates both factors. A frame needs one logarithm and one ``exp`` per
    distinct token it reads; nothing underflows while the beam is pruned.
    """
    prune_factor = math.exp(beam_prune_logp)
    coarse_min = _coarse_min(lp, token_min_logp)
    V = lp.shape[1]
    tree, beams, spare, bw, tw, ext, committed, ints, floats = s
    K = beams.node.shape[0]
    n_nodes = ints[0]
    nb = ints[1]
    log_scale = floats[0]
    r = r_from
    while True:
        # the frame loop
        node_cap = tree.parent.shape[0]
        e_cap = ext.score.shape[0]
        status = OK
        stop = r_to
        start = r
        for r in range(start, r_to):
            t = t0 + r
            if t % POLL_FRAMES == 0 and abort[0] != 0:
                status = ABORTED
                stop = r
                break
            if n_nodes + K > node_cap:  # a frame adds at most K nodes
                status = NEED_NODES
                stop = r
                break
            row = lp[r]
            nc, shift, blank_hit = _scan_row(row, token_min_logp, coarse_min, blank, tw.cands)
            if nc < 0:
                status = t
                stop = r
                break
            nc, shift = _frame_tokens(row, t, blank, nc, shift, blank_hit, tw)
            if shift == NEG_INF:
                status = -(t + 2)
                stop = r
                break
            if nb * nc > e_cap:
                status = NEED_ENTRIES
                stop = r
                break
            # candidates: the beams' own prefixes (merged), then new prefixes
            _link(beams, nb, tree, bw)
            _stay(row, t, shift, blank, beams, nb, tree, bw, tw)
            best = _merge(row, t, shift, beams, nb, tree, bw, tw)
            E, best = _extend(t, beams, nb, nc, best, prune_factor, tree, bw, tw, ext)
            _unlink(beams, nb, tree)
            if best == 0.0:
                status = -(t + 2)
                stop = r
                break
            # pruning and selection: within beam_prune_logp of the best, then the beam_width
            # best; ties at the cut go to the earlier entry (existing beams first, then
            # extensions in beam order and increasing token id)
            cut_rule = _survivor_cut(bw.totals, nb, ext, E, best * prune_factor, K)
            # commit: the survivors become the next frame's beams (room for K new nodes was
            # checked above, so ``kept >= 0``)
            inv = 1.0 / best
            nb, n_nodes = _commit(beams, nb, ext, E, cut_rule, inv, bw, tree, n_nodes, V, spare)
            log_scale += shift + math.log(best)
            beams, spare = spare, beams
        r = stop
        if status == NEED_NODES and make_room:
            n_nodes, committed, n_comm = _compact(
                tree.parent,
                tree.token,
                tree.beam_of,
                tree.h_key,
                tree.h_val,
                beams.node,
                nb,
                n_nodes,
                committed,
                ints[2],
                V,
            )
            ints[2] = n_comm
            cap = tree.parent.shape[0]
            if 2 * (n_nodes + K) > cap:
                tree = _grow_tree(tree, n_nodes, max(2 * cap, 2 * (n_nodes + K)), V)
        elif status == NEED_ENTRIES and make_room:
            ext = _new_ext(K * V, K)
        else:
            break
    ints[0] = n_nodes
    ints[1] = nb
    ints[3] += r - r_from
    floats[0] = log_scale
    return r, status, Search(tree, beams, spare, bw, tw, ext, committed, ints, floats)


@jit
def _write_nbest(s, top_paths, out_tokens, out_lens, out_scores):
    """The n-best list: total log-probability, best first, ties in beam order; returns the
    number of hypotheses written (at most ``top_paths``)."""
    tree, beams, _, bw, _, _, committed, ints, floats = s
    node, pb, pnb = beams
    nb = ints[1]
    totals = bw.totals
    for b in range(nb):
        totals[b] = pb[b] + pnb[b]
    order = np.argsort(-totals[:nb], kind="mergesort")
    count = min(top_paths, nb)
    for p in range(count):
        b = order[p]
        out_lens[p] = _path(tree.parent, tree.token, node[b], committed, ints[2], out_tokens[p])
        out_scores[p] = math.log(totals[b]) + floats[0]
    return count


@jit
def nbest(s, top_paths):
    """The n-best list of the search ``s``: ``(count, tokens (P, L), lengths (P,), scores
    (P,))``, as :func:`_write_nbest`; ``s`` is unchanged."""
    beams = s.beams
    nb = s.ints[1]
    width = 0
    for b in range(nb):
        width = max(width, _depth(s.tree.parent, beams.node[b]))
    width += s.ints[2]
    P = min(top_paths, nb)
    tokens = np.zeros((P, max(width, 1)), np.int64)
    lens = np.zeros(P, np.int64)
    scores = np.zeros(P, np.float64)
    count = _write_nbest(s, top_paths, tokens, lens, scores)
    return count, tokens, lens, scores


@jit
def best_and_stable(s):
    """The best prefix now (first of equal ones) and the prefix every beam shares: ``(tokens,
    length, stable length, log-probability)``; ``tokens[:length]`` is the best prefix and
    ``tokens[:stable length]`` the shared one. ``s`` is unchanged."""
    tree, beams, _, _, _, _, committed, ints, floats = s
    node, pb, pnb = beams
    nb = ints[1]
    best = 0
    best_p = pb[0] + pnb[0]
    for b in range(1, nb):
        p = pb[b] + pnb[b]
        if p > best_p:
            best = b
            best_p = p
    parent = tree.parent
    kids, only, is_beam = _reach(parent, node, nb, ints[0])
    top = _shared_node(kids, only, is_beam)
    tokens = np.empty(ints[2] + _depth(parent, node[best]), np.int64)
    length = _path(parent, tree.token, node[best], committed, ints[2], tokens)
    return tokens, length, ints[2] + _depth(parent, top), math.log(best_p) + floats[0]


@jit
def _write_timesteps(lp, length, blank, count, out_tokens, out_times, out_lens, abort):
    """``out_times[p, k]``: the first frame of token ``k``'s run on the most probable
    alignment of hypothesis ``p < count``. Returns ``ALIGN_ABORTED`` once ``abort[0]`` is
    set, else 0."""
    path = np.empty(length, np.int64)
    path_scores = np.empty(length, np.float64)
    for p in range(count):
        n_tok = out_lens[p]
        st = viterbi_path(lp, length, out_tokens[p, :n_tok], blank, path, path_scores, abort)
        if st == ALIGN_ABORTED:
            return st
        k = 0
        for t in range(length):
            c = path[t]
            if c != blank and (t == 0 or c != path[t - 1]):
                out_times[p, k] = t
                k += 1
    return 0


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

    Capacities start from an estimate (``min(length * beam_width + 1, 1024 + length *
    beam_width / 4)`` nodes, ``beam_width * min(V, 16)`` extensions per frame); when one is
    short, :func:`advance` makes room and goes on from the frame where it stopped.

    Returns ``(count, status)``: ``count`` hypotheses written (best first); ``status`` is -1,
    ``t`` for a NaN or +inf at frame ``t``, or ``-(t + 2)`` when every prefix has probability
    zero after frame ``t``, or ``ABORTED`` once ``abort[0]`` (int64 (1,), read every
    ``POLL_FRAMES`` frames) is set. Inputs are validated by the caller.
    """
    K = beam_width
    V = lp.shape[1]
    node_cap = min(length * K + 1, 1024 + (length * K) // 4)
    s = new_search(V, K, max(node_cap, K + 1), K * min(V, 16))
    zero = np.int64(0)
    _, status, s = advance(
        lp, zero, length, zero, blank, beam_prune_logp, token_min_logp, s, abort, True
    )
    if status != OK:
        return 0, status
    count = _write_nbest(s, top_paths, out_tokens, out_lens, out_scores)
    st = _write_timesteps(lp, length, blank, count, out_tokens, out_times, out_lens, abort)
    if st == ALIGN_ABORTED:
        return 0, ABORTED
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
