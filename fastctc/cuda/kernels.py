"""numba.cuda kernels for the CTC loss, greedy decoding and prefix beam search.

Kernels only: the host wrappers in :mod:`fastctc.cuda` validate inputs, choose launch
configurations (``threads_per_block``), allocate outputs and own transfers and streams.
Every kernel takes device arrays and scalars; inputs are validated by the caller.

Log space throughout, ``-inf`` is log-zero. Intermediate sums are carried in float64
whatever the input dtype; stored results keep the dtype of their output array.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

#: Kernels are cached on disk like the CPU kernels (the first call in a new environment
#: compiles, later processes load the cache).
kernel = cuda.jit(cache=True)

#: Size of the per-block shared scratch used by reductions: the largest block we launch.
MAX_THREADS = 1024


@cuda.jit(device=True)
def log_add_device(a, b):
    """``log(exp(a) + exp(b))`` without overflow; ``-inf`` is log-zero, NaN propagates."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@cuda.jit(device=True)
def _lp(log_probs, batch_first, t, n, c):
    if batch_first:
        return log_probs[n, t, c]
    return log_probs[t, n, c]


@cuda.jit(device=True)
def _label(targets, off, s, blank):
    """Label of state ``s`` of the blank-extended target starting at ``targets[off]``."""
    if s % 2 == 0:
        return blank
    return targets[off + (s - 1) // 2]


@kernel
def ctc_alpha_beta_kernel(
    log_probs,
    batch_first,
    targets,
    target_offsets,
    input_lengths,
    target_lengths,
    blank,
    alpha,
    beta,
    nll,
):
    """Forward (alpha) and backward (beta) variables of every sequence, in log space.

    Launch with ``2 * N`` blocks: block ``n < N`` computes ``alpha`` of sequence ``n`` and the
    negative log-likelihood ``nll[n]``; block ``N + n`` computes ``beta`` of sequence ``n``
    (launch ``N`` blocks when only the loss is needed).
    Threads of a block stride over the ``2 S_n + 1`` states of the extended target.

    log_probs : float (T, N, C), or (N, T, C) when ``batch_first``; any strides.
    targets : int64 (sum S_n,), concatenated; target_offsets : int64 (N,).
    input_lengths, target_lengths : int64 (N,).
    alpha, beta : float (N, T, W) with ``W >= 2 max(S_n) + 1``; ``beta`` includes the
        emission at its own frame, so ``alpha + beta`` counts frame ``t`` twice.
    nll : float64 (N,) output, ``-log p(target | input)``: ``inf`` when unreachable, NaN
        when any emission the recursion reads (``lp[t, label(s)]``, t < T_n) is NaN.
    """
    N = input_lengths.shape[0]
    b = cuda.blockIdx.x
    n = b % N
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    Tn = input_lengths[n]
    Sn = target_lengths[n]
    off = target_offsets[n]
    L = 2 * Sn + 1
    if b < N:
        seen_nan = 0
        if Tn > 0:
            for s in range(tid, L, nt):
                e = _lp(log_probs, batch_first, 0, n, _label(targets, off, s, blank))
                if math.isnan(e):
                    seen_nan = 1
                if s < 2:
                    alpha[n, 0, s] = e
                else:
                    alpha[n, 0, s] = -math.inf
        cuda.syncthreads()
        for t in range(1, Tn):
            for s in range(tid, L, nt):
                c = _label(targets, off, s, blank)
                a = alpha[n, t - 1, s]
                if s > 0:
                    a = log_add_device(a, alpha[n, t - 1, s - 1])
                    if s > 1 and c != blank and c != targets[off + (s - 3) // 2]:
                        a = log_add_device(a, alpha[n, t - 1, s - 2])
                e = _lp(log_probs, batch_first, t, n, c)
                if math.isnan(e):
                    seen_nan = 1
                alpha[n, t, s] = a + e
            cuda.syncthreads()
        any_nan = cuda.syncthreads_or(seen_nan)
        if tid == 0:
            if Tn == 0:
                ll = 0.0 if Sn == 0 else -math.inf
            else:
                ll = alpha[n, Tn - 1, L - 1]
                if L > 1:
                    ll = log_add_device(ll, alpha[n, Tn - 1, L - 2])
            if any_nan:
                ll = math.nan
            need = Sn
            for j in range(1, Sn):
                if targets[off + j] == targets[off + j - 1]:
                    need += 1
            if Tn < need:
                ll = -math.inf  # too few frames for the target and its repeats
            nll[n] = -ll
    else:
        if Tn > 0:
            for s in range(tid, L, nt):
                if s >= L - 2:
                    beta[n, Tn - 1, s] = _lp(
                        log_probs, batch_first, Tn - 1, n, _label(targets, off, s, blank)
                    )
                else:
                    beta[n, Tn - 1, s] = -math.inf
        cuda.syncthreads()
        for t in range(Tn - 2, -1, -1):
            for s in range(tid, L, nt):
                c = _label(targets, off, s, blank)
                a = beta[n, t + 1, s]
                if s < L - 1:
                    a = log_add_device(a, beta[n, t + 1, s + 1])
                    if s < L - 2 and c != blank and c != targets[off + (s + 1) // 2]:
                        a = log_add_device(a, beta[n, t + 1, s + 2])
                beta[n, t, s] = a + _lp(log_probs, batch_first, t, n, c)
            cuda.syncthreads()


@kernel
def ctc_grad_kernel(
    log_probs,
    batch_first,
    input_lengths,
    target_lengths,
    blank,
    class_start,
    class_pos,
    alpha,
    beta,
    nll,
    reduction,
    wrt_logits,
    zero_infinity,
    grad,
):
    """Gradient of the (scaled) loss for every ``(t, n, c)``; grid ``(T, N)``, threads over C.

    The occupancy of class ``c`` at frame ``t`` is the posterior probability that the path is
    in a state labelled ``c``: the sum over those states of ``exp(alpha + beta - lp + nll)``.
    Blank states are the even ones; the states of a label are found through the per-sequence
    index ``class_pos[class_start[n * C + c] : class_start[n * C + c + 1]]`` (target positions).

    grad = scale * (-occupancy)              (wrt the given log_probs), or
    grad = scale * (exp(lp) - occupancy)     (wrt logits, ``wrt_logits``),
    where ``scale`` is d(returned loss) / d(loss_n): ``1 / (max(S_n, 1) N)`` for the mean
    reduction (``reduction == 2``), else 1.
    Frames past ``input_lengths[n]`` get 0. An infinite or NaN ``nll[n]`` gives NaN (an
    infinite one gives 0 with ``zero_infinity``). ``grad`` has the layout of ``log_probs``.
    """
    t = cuda.blockIdx.x
    n = cuda.blockIdx.y
    C = grad.shape[2]
    Tn = input_lengths[n]
    Sn = target_lengths[n]
    nl = nll[n]
    sc = 1.0
    if reduction == 2:
        sc = 1.0 / (max(Sn, 1) * input_lengths.shape[0])
    # blank occupancy (log, unnormalised): every thread sums a share of the even states,
    # then a tree reduction in shared memory
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    part = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    acc_blank = -math.inf
    if t < Tn:
        for j in range(tid, Sn + 1, nt):
            acc_blank = log_add_device(acc_blank, alpha[n, t, 2 * j] + beta[n, t, 2 * j])
    part[tid] = acc_blank
    cuda.syncthreads()
    step = 1
    while step < nt:
        if tid % (2 * step) == 0 and tid + step < nt:
            part[tid] = log_add_device(part[tid], part[tid + step])
        step *= 2
        cuda.syncthreads()
    acc_blank = part[0]
    for c in range(tid, C, nt):
        if t >= Tn:
            g = 0.0
        elif not nl < math.inf:
            g = 0.0 if zero_infinity and nl == math.inf else math.nan
        else:
            acc = -math.inf
            if c == blank:
                acc = acc_blank
            else:
                for k in range(class_start[n * C + c], class_start[n * C + c + 1]):
                    s = 2 * class_pos[k] + 1
                    acc = log_add_device(acc, alpha[n, t, s] + beta[n, t, s])
            lp = _lp(log_probs, batch_first, t, n, c)
            occ = 0.0
            if acc != -math.inf:
                occ = math.exp(acc + nl - lp)
            if wrt_logits:
                g = (math.exp(lp) - occ) * sc
            else:
                g = -occ * sc
        if batch_first:
            grad[n, t, c] = g
        else:
            grad[t, n, c] = g


@kernel
def reduce_loss_kernel(nll, target_lengths, reduction, zero_infinity, losses, total):
    """Apply ``zero_infinity`` and the reduction on one thread (N is small).

    reduction : 0 none, 1 sum, 2 mean (loss / max(S_n, 1), averaged over the batch).
    losses : (N,) per-sequence output; total : (1,) reduced output.
    """
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    N = nll.shape[0]
    acc = 0.0
    for n in range(N):
        v = nll[n]
        if zero_infinity and v == math.inf:
            v = 0.0
        losses[n] = v
        if reduction == 2:
            acc += v / max(target_lengths[n], 1)
        else:
            acc += v
    if reduction == 2 and N > 0:
        acc /= N
    if reduction == 2 and N == 0:
        acc = math.nan
    total[0] = acc


@kernel
def greedy_argmax_kernel(log_probs, lengths, best_idx, best_val, nan_at):
    """Argmax of every valid frame of ``log_probs`` (N, T, C).

    Block ``(lanes, frames)``: ``lanes`` threads (a power of two) share one frame, each
    scanning classes ``lane, lane + lanes, ...``; a shared-memory tree reduction keeps the
    largest value, the lowest class on ties (as ``np.argmax``). A NaN frame records
    ``n * T + t`` in ``nan_at[0]`` through an atomic minimum.
    """
    sv = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    si = cuda.shared.array(MAX_THREADS, dtype=np.int64)
    sn = cuda.shared.array(MAX_THREADS, dtype=np.int32)
    N = log_probs.shape[0]
    T = log_probs.shape[1]
    C = log_probs.shape[2]
    lanes = cuda.blockDim.x
    lane = cuda.threadIdx.x
    flat = cuda.threadIdx.y * lanes + lane
    frame = cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y
    n = frame // T
    t = frame - n * T
    active = frame < N * T
    if active:
        active = t < lengths[n]
    bv = -math.inf
    bi = -1
    bad = 0
    if active:
        for c in range(lane, C, lanes):
            v = log_probs[n, t, c]
            if math.isnan(v):
                bad = 1
            elif bi < 0 or v > bv:
                bv = v
                bi = c
    sv[flat] = bv
    si[flat] = bi
    sn[flat] = bad
    cuda.syncthreads()
    step = lanes // 2
    while step > 0:
        if lane < step:
            o = flat + step
            oi = si[o]
            if oi >= 0:
                mi = si[flat]
                if mi < 0 or sv[o] > sv[flat] or (sv[o] == sv[flat] and oi < mi):
                    sv[flat] = sv[o]
                    si[flat] = oi
            if sn[o] != 0:
                sn[flat] = 1
        cuda.syncthreads()
        step //= 2
    if active and lane == 0:
        if sn[flat] != 0:
            cuda.atomic.min(nan_at, 0, n * T + t)
        else:
            best_idx[n, t] = si[flat]
            best_val[n, t] = sv[flat]


@kernel
def greedy_collapse_kernel(best_idx, best_val, lengths, blank, tokens, timesteps, counts, scores):
    """Collapse repeats and drop blanks, one thread per utterance; sums the path score."""
    n = cuda.grid(1)
    if n >= lengths.shape[0]:
        return
    prev = -1
    k = 0
    total = 0.0
    for t in range(lengths[n]):
        c = best_idx[n, t]
        total += best_val[n, t]
        if c != blank and c != prev:
            tokens[n, k] = c
            timesteps[n, k] = t
            k += 1
        prev = c
    counts[n] = k
    scores[n] = total


@cuda.jit(device=True)
def _child(first_child, next_sibling, node_token, n, parent, token):
    """Node of prefix ``parent + (token,)`` in the tree of utterance ``n``, or -1."""
    ch = first_child[n, parent]
    while ch >= 0:
        if node_token[n, ch] == token:
            return ch
        ch = next_sibling[n, ch]
    return -1


@kernel
def prefix_beam_kernel(
    log_probs,
    lengths,
    blank,
    beam_width,
    top_paths,
    beam_prune_logp,
    token_min_logp,
    node_parent,
    node_token,
    first_child,
    next_sibling,
    beam_node,
    beam_pb,
    beam_pnb,
    cand_node,
    cand_parent,
    cand_token,
    cand_pb,
    cand_pnb,
    cand_score,
    cand_keep,
    frame_tokens,
    out_tokens,
    out_lens,
    out_scores,
    out_counts,
    status,
):
    """CTC prefix beam search without a language model, one thread per utterance.

    The rules of :func:`fastctc.beam_search_batch`, step for step:

    * candidate tokens of a frame: the non-blank tokens with ``lp >= token_min_logp``; when
      there are none and the blank is also below it, the frame's argmax if it is a finite
      non-blank;
    * every beam is scored for staying on its prefix (a blank; a repeat of its last token),
      and every extension leading to a prefix already in the beam is scored whatever
      ``token_min_logp`` says; new prefixes come from the candidate tokens only;
    * entries (the beams in beam order, then the new extensions by beam and token) scoring
      below the best plus ``beam_prune_logp`` are dropped, the ``beam_width`` best survive
      (equal scores: the earlier entry) and keep their entry order;
    * prefixes live in a canonical tree (``first_child`` / ``next_sibling`` lists): a prefix
      that leaves the beam and returns gets its old node, so membership is node identity.

    Scores are kept in log space (the CPU search keeps scaled probabilities: equal results up
    to rounding). Timesteps come from :func:`viterbi_starts_kernel` afterwards.

    Workspace, per utterance ``n``: node arrays (N, 1 + K T); beam arrays (N, K); candidate
    arrays (N, K V); frame_tokens (N, V). Outputs: ``out_tokens`` (N, P, T),
    ``out_lens``/``out_scores`` (N, P), ``out_counts`` (N,) hypotheses written,
    best first; ``status`` (N,): -1, ``t`` for a NaN or +inf at frame ``t``, or ``-(t + 2)``
    when every prefix has probability zero after frame ``t``.
    """
    n = cuda.grid(1)
    if n >= lengths.shape[0]:
        return
    V = log_probs.shape[2]
    K = beam_width
    status[n] = -1
    out_counts[n] = 0
    node_parent[n, 0] = -1
    node_token[n, 0] = -1
    first_child[n, 0] = -1
    next_sibling[n, 0] = -1
    n_nodes = 1
    beam_node[n, 0] = 0
    beam_pb[n, 0] = 0.0
    beam_pnb[n, 0] = -math.inf
    n_beams = 1
    for t in range(lengths[n]):
        # --- candidate tokens (and the NaN / +inf check)
        n_tok = 0
        best_c = 0
        best_v = log_probs[n, t, 0]
        for c in range(V):
            x = log_probs[n, t, c]
            if math.isnan(x) or x == math.inf:
                status[n] = t
                return
            if x > best_v:
                best_v = x
                best_c = c
            if c != blank and x >= token_min_logp:
                frame_tokens[n, n_tok] = c
                n_tok += 1
        lp_blank = log_probs[n, t, blank]
        if n_tok == 0 and lp_blank < token_min_logp:
            if best_c != blank and best_v > -math.inf:
                frame_tokens[n, 0] = best_c
                n_tok = 1
        # --- staying on each prefix
        for k in range(n_beams):
            node = beam_node[n, k]
            pb = beam_pb[n, k]
            pnb = beam_pnb[n, k]
            tot = log_add_device(pb, pnb)
            cand_node[n, k] = node
            cand_pb[n, k] = tot + lp_blank
            if node > 0:
                cand_pnb[n, k] = pnb + log_probs[n, t, node_token[n, node]]
            else:
                cand_pnb[n, k] = -math.inf
        # --- extensions reaching a prefix already in the beam (any token)
        for j in range(n_beams):
            node = beam_node[n, j]
            if node == 0:
                continue
            par = node_parent[n, node]
            for k in range(n_beams):
                if beam_node[n, k] == par:
                    c = node_token[n, node]
                    if par > 0 and c == node_token[n, par]:
                        base = beam_pb[n, k]
                    else:
                        base = log_add_device(beam_pb[n, k], beam_pnb[n, k])
                    cand_pnb[n, j] = log_add_device(cand_pnb[n, j], base + log_probs[n, t, c])
                    break
        n_cand = n_beams
        for k in range(n_beams):
            cand_score[n, k] = log_add_device(cand_pb[n, k], cand_pnb[n, k])
        # --- new prefixes from the candidate tokens
        for k in range(n_beams):
            node = beam_node[n, k]
            last = node_token[n, node]
            pb = beam_pb[n, k]
            tot = log_add_device(pb, beam_pnb[n, k])
            for i in range(n_tok):
                c = frame_tokens[n, i]
                ch = _child(first_child, next_sibling, node_token, n, node, c)
                in_beam = False
                if ch >= 0:
                    for j in range(n_beams):
                        if beam_node[n, j] == ch:
                            in_beam = True
                            break
                if in_beam:
                    continue
                base = pb if (node > 0 and c == last) else tot
                sc = base + log_probs[n, t, c]
                cand_node[n, n_cand] = ch
                cand_parent[n, n_cand] = node
                cand_token[n, n_cand] = c
                cand_pb[n, n_cand] = -math.inf
                cand_pnb[n, n_cand] = sc
                cand_score[n, n_cand] = sc
                n_cand += 1
        # --- pruning and selection
        best = -math.inf
        for j in range(n_cand):
            if cand_score[n, j] > best:
                best = cand_score[n, j]
        if best == -math.inf:
            status[n] = -(t + 2)
            return
        floor = best + beam_prune_logp
        for j in range(n_cand):
            cand_keep[n, j] = 0
        for _ in range(K):
            pick = -1
            pick_sc = -math.inf
            for j in range(n_cand):
                sc = cand_score[n, j]
                if cand_keep[n, j] == 0 and sc > -math.inf and sc >= floor:
                    if pick < 0 or sc > pick_sc:
                        pick = j
                        pick_sc = sc
            if pick < 0:
                break
            cand_keep[n, pick] = 1
        kept = 0
        for j in range(n_cand):
            if cand_keep[n, j] == 0:
                continue
            node = cand_node[n, j]
            if j >= n_beams and node < 0:  # a prefix never kept before: a new tree node
                node = n_nodes
                n_nodes += 1
                par = cand_parent[n, j]
                node_parent[n, node] = par
                node_token[n, node] = cand_token[n, j]
                first_child[n, node] = -1
                next_sibling[n, node] = first_child[n, par]
                first_child[n, par] = node
            beam_node[n, kept] = node
            beam_pb[n, kept] = cand_pb[n, j]
            beam_pnb[n, kept] = cand_pnb[n, j]
            kept += 1
        n_beams = kept
    # --- the top_paths best, best first (equal scores: earlier beam entry)
    for j in range(n_beams):
        cand_keep[n, j] = 0
    count = 0
    for p in range(min(top_paths, n_beams)):
        pick = -1
        pick_sc = -math.inf
        for j in range(n_beams):
            if cand_keep[n, j] == 0:
                sc = log_add_device(beam_pb[n, j], beam_pnb[n, j])
                if pick < 0 or sc > pick_sc:
                    pick = j
                    pick_sc = sc
        cand_keep[n, pick] = 1
        node = beam_node[n, pick]
        length = 0
        while node > 0:
            length += 1
            node = node_parent[n, node]
        node = beam_node[n, pick]
        for i in range(length - 1, -1, -1):
            out_tokens[n, p, i] = node_token[n, node]
            node = node_parent[n, node]
        out_lens[n, p] = length
        out_scores[n, p] = pick_sc
        count += 1
    out_counts[n] = count


@kernel
def viterbi_starts_kernel(log_probs, lengths, blank, tokens, lens, counts, score, back, starts):
    """First frame of each token's run on a hypothesis' most probable alignment.

    One thread per hypothesis ``(n, p)`` (``p < counts[n]``): the CTC Viterbi recursion over
    the ``2 L + 1`` states of ``tokens[n, p, :L]`` in float64, ties preferring to stay, then
    the previous state, then the skip over a blank; at the last frame the final blank wins
    unless the last token is strictly better. Backtracking writes, for token ``k``, the first
    frame whose state is ``2 k + 1`` into ``starts[n, p, k]``.

    score : float64 (N P, W) and back : int8 (N P, T, W) workspace, ``W >= 2 max L + 1``.
    """
    h = cuda.grid(1)
    P = tokens.shape[1]
    if h >= lengths.shape[0] * P:
        return
    n = h // P
    p = h - n * P
    if p >= counts[n]:
        return
    L = lens[n, p]
    Tn = lengths[n]
    if L == 0 or Tn == 0:
        return
    S = 2 * L + 1
    for s in range(S):
        score[h, s] = -math.inf
    score[h, 0] = log_probs[n, 0, blank]
    score[h, 1] = log_probs[n, 0, tokens[n, p, 0]]
    for t in range(1, Tn):
        for s in range(S - 1, -1, -1):  # descending: reads only not-yet-updated lower states
            c = blank if s % 2 == 0 else tokens[n, p, (s - 1) // 2]
            best = score[h, s]
            off = 0
            if s >= 1 and score[h, s - 1] > best:
                best = score[h, s - 1]
                off = 1
            if s >= 2 and c != blank and c != tokens[n, p, (s - 3) // 2]:
                if score[h, s - 2] > best:
                    best = score[h, s - 2]
                    off = 2
            score[h, s] = best + log_probs[n, t, c]
            back[h, t, s] = off
    s = S - 1
    if score[h, S - 2] > score[h, S - 1]:
        s = S - 2
    for t in range(Tn - 1, -1, -1):
        if s % 2 == 1:
            starts[n, p, (s - 1) // 2] = t
        if t > 0:
            s -= back[h, t, s]
