"""CTC beam search with word-level language-model fusion (pyctcdecode's algorithm), nopython.

A beam is ``(text, word part, last label)``: ``text`` is a node of a per-utterance word trie
(each node one more word, with its LM context and cumulative LM score), the word part is the
unfinished word (its FNV hash and length in characters) and ``last label`` the last label of
the path (blank included), so a repeated label collapses and a blank separates repeats.
Every frame each beam is extended by every label whose log-probability reaches
``token_min_logp`` (plus the frame's best label); candidates with the same
``(text, part, last)`` are merged by log-sum-exp of their acoustic scores; each is scored as
acoustic + LM(text) + partial-word score; candidates below ``best + beam_prune_logp`` are
dropped and the best ``K`` kept (ties by candidate order). ``prune_history`` additionally keeps
only the best beam per (last ``n - 1`` words, part, last label).

The search's state is in the bundles of :mod:`fastctc.kernels.lm_state`, which also
describes the statuses it returns; scores come from :mod:`fastctc.kernels.lm_score`.

On the n-gram path every word is scored in the kernel. On the cache path a word completion
whose score is missing is first bounded from above; if even the bound cannot survive the
pruning it is dropped (exactly what scoring it would have done), otherwise it is queried
before the frame is committed: the missing queries (each once) go into ``Queries`` and the
kernel calls ``resolver(ctx, n)``, a C callback that takes the GIL only for that call (see
:mod:`fastctc.lm.queries`), and goes on with the new scores, or returns ``PENDING``.

Beams are kept in pyctcdecode's order (by score, ties in candidate order), so candidates are
made and merged in its order and exact ties (uniform frames, such as rows of padding) are
broken as it breaks them; a merged candidate takes the frames of the path merged last, i.e.
from the lowest-ranked beam.

Inputs are validated by the caller.
"""

import math

import numpy as np

from ._jit import jit, prefetch
from .lm_cache import FNV_OFFSET, fnv_extend, mix64, pair_key, table_find, table_slot_for_insert
from .lm_frames import frame_logp
from .lm_score import (
    FOUND,
    MISS_WORD,
    child_text,
    find_child,
    is_hotword,
    partial_score,
    rebuild_text_table,
    word_score,
    word_score_bound,
)
from .lm_state import (
    ABORTED,
    B_COLS,
    B_FNODE,
    B_LAST,
    B_PEND,
    B_PLEN,
    B_PNTOK,
    B_PSTART,
    B_TEXT,
    B_TNODE,
    C_COLS,
    C_DHASH,
    C_DNT,
    C_DPARENT,
    C_DTN,
    C_DWID,
    C_FAPPEND,
    C_LAST,
    C_NEWTOK,
    C_PEND,
    C_PLEN,
    C_PNTOK,
    C_PSTART,
    C_SLOT,
    C_SRC,
    C_TEXT,
    C_TNEW,
    C_TSRC,
    DEFERRED,
    DONE,
    DROPPED,
    F_LMSTATE,
    F_SLOT,
    F_SRC,
    F_TOKNODE,
    F_VOCAB,
    GROW_CAND,
    GROW_TEXT,
    IO_COLS,
    IO_NBEAMS,
    IO_NEED,
    IO_NFC,
    IO_NOUT,
    IO_NQ,
    IO_NTEXT,
    IO_NTK,
    IO_RESUME,
    IO_STREAM,
    IO_T,
    K_BLANK,
    K_BPE_START,
    K_NORMAL,
    K_SPACE,
    N_COLS,
    N_LMSTATE,
    N_NWORDS,
    N_PARENT,
    O_COLS,
    O_FNODE,
    O_LMSTATE,
    O_TEXT,
    O_TOKNODE,
    O_VOCAB,
    PARTIAL_UNIGRAMS,
    PENDING,
    Q_COLS,
    Q_LM,
    Q_PARTIAL,
    Q_WORD,
    RESOLVE_DECLINED,
    RESOLVE_DONE,
    RESOLVE_STALE,
)
from .ngram import M_ORDER
from .prefix_beam import kth_smallest

__all__ = [  # the kernels, and the constants callers use with them
    "ABORTED",
    "B_COLS",
    "C_COLS",
    "DONE",
    "GROW_CAND",
    "GROW_TEXT",
    "IO_COLS",
    "K_BLANK",
    "K_BPE_START",
    "K_NORMAL",
    "K_SPACE",
    "N_COLS",
    "O_COLS",
    "PENDING",
    "Q_COLS",
    "Q_LM",
    "Q_PARTIAL",
    "Q_WORD",
    "RESOLVE_DECLINED",
    "RESOLVE_DONE",
    "RESOLVE_STALE",
    "collect_chains",
    "lm_beam_search",
    "rebuild_text_table",
    "sort_desc",
    "spell_queries",
]

#: The beam sort's groups are at most this long (see ``sort_groups_desc``).
SORT_GROUP = 128

#: Mixed into the merge key of a deferred completion (it has no text node yet).
DEFER_SALT = np.uint64(0x5BD1E9955BD1E995)


@jit
def sum_log_scores(s1, s2):
    """log(exp(s1) + exp(s2)), in the same operation order as pyctcdecode."""
    if s1 >= s2:
        return s1 + math.log(1.0 + math.exp(s2 - s1))
    return s2 + math.log(1.0 + math.exp(s1 - s2))


@jit(inline="always")
def extend_hash(h, tok, tok_codes, tok_off):
    for p in range(tok_off[tok], tok_off[tok + 1]):
        h = fnv_extend(h, tok_codes[p])
    return h


@jit
def add_query(queries, io, kind, state, wid, tnode, ntok, h, eos):
    """Append a query unless the same one is pending already (same kind, state, word id,
    end-of-sentence flag and, for word texts, hash); dropped when the rows are full (it is
    asked again after the others are answered)."""
    q = queries.rows
    q_hash = queries.hashes
    n = io[IO_NQ]
    for r in range(n):
        if (
            q[r, 0] == kind
            and q[r, 1] == state
            and q[r, 2] == wid
            and q[r, 5] == eos
            and (kind == Q_LM or q_hash[r] == h)
        ):
            return
    if n < q.shape[0]:
        q[n, 0] = kind
        q[n, 1] = state
        q[n, 2] = wid
        q[n, 3] = tnode
        q[n, 4] = ntok
        q[n, 5] = eos
        q_hash[n] = h
        io[IO_NQ] = n + 1


@jit
def lm_beam_search(frames, tokens, params, model, ws, resolver, ctx, abort):
    """Run (or resume) the LM-fused beam search of one utterance from frame ``ws.io[IO_T]``.

    ``frames`` (:class:`fastctc.kernels.lm_state.Frames`) holds its log-probabilities, frames
    ``frames.t0`` up to ``frames.t0 + frames.x.shape[0]``; ``tokens``, ``params``,
    ``model`` and ``ws`` are the bundles of :mod:`fastctc.kernels.lm_state`, owned by the
    caller, who validates inputs. ``resolver(ctx, n)`` answers LM queries (``ctx`` 0: none is
    registered, the queries are returned); ``abort[0] != 0`` stops the search at the next
    frame. With ``ws.io[IO_STREAM]`` set it stops after the frames given (``DONE``) instead
    of finishing; frames of later calls go on from there. Returns a status code (see
    :mod:`fastctc.kernels.lm_state`).
    """
    T = frames.t0 + frames.x.shape[0]
    io = ws.io
    cand = ws.cand
    io[IO_NQ] = 0
    t0 = io[IO_T]
    ng_ctx = np.empty(max(model.ngrams.meta[M_ORDER], 1), dtype=np.int64)
    n_cand = cand.i.shape[0]
    scratch = (
        np.empty(n_cand, dtype=np.int64),  # kept candidates
        np.empty(n_cand, dtype=np.uint64),  # their history keys
        np.empty(n_cand, dtype=np.int64),  # merge-table slots used
        np.empty(n_cand),  # order statistics of candidate scores
        np.empty(n_cand, dtype=np.int64),  # merge buffer of the beam sort
        np.empty(n_cand + 1, dtype=np.int64),  # its group bounds
        np.empty((ws.beams.i.shape[0], 2), dtype=np.int64),  # chain nodes of the new beams
    )
    C = frames.x.shape[1]
    sel_c = np.empty(C, dtype=np.int64)  # the labels tried at a frame
    sel_p = np.empty(C)  # and their log-probabilities
    t = t0
    m = 0
    while t < T:
        if t == t0 and io[IO_RESUME] > 0:
            # the frame's candidates are still in place from the call that stopped on it
            m = io[IO_RESUME]
            io[IO_RESUME] = 0
            _reattach_deferred(m, model, params, ws, ng_ctx)
        else:
            if abort[0] != 0:  # polled once a frame: another thread asks the search to stop
                io[IO_T] = t
                return ABORTED
            status, m, pending = _expand_frame(
                frames, t, sel_c, sel_p, tokens, params, model, ws, ng_ctx
            )
            if status != DONE:
                return status
            if pending:
                io[IO_T] = t
                if not _ask(resolver, ctx, io):
                    return PENDING
                continue  # answered: the frame is recomputed with the new scores
        while True:
            mx, n_def = _score_candidates(m, cand, ws.text.lm)
            if n_def == 0:
                break
            if not _resolve_deferred(m, mx + params.beam_prune_logp, params, model, ws, scratch[3]):
                break
            io[IO_T] = t
            io[IO_RESUME] = m
            if not _ask(resolver, ctx, io):
                return PENDING
            io[IO_RESUME] = 0
            _reattach_deferred(m, model, params, ws, ng_ctx)
        io[IO_NBEAMS] = _select_and_commit(t, m, mx + params.beam_prune_logp, params, ws, scratch)
        t += 1
    io[IO_T] = T
    if io[IO_STREAM] != 0:  # streaming: the frames so far are searched, more may follow
        return DONE
    while True:
        status = _finish(params, model, ws, ng_ctx)
        if status != PENDING or not _ask(resolver, ctx, io):
            return status


@jit(_nrt=False)
def _expand_frame(frames, t, sel_c, sel_p, tokens, params, model, ws, ng_ctx):
    """Extend every beam by every label tried at frame ``t`` and merge the candidates.

    The labels tried are those of the frame's listed columns whose log-probability reaches
    ``token_min_logp``, and the best label (the first of the largest value), in label order;
    ``sel_c`` / ``sel_p`` receive them.

    Returns ``(status, candidates, pending)``: ``GROW_CAND`` / ``GROW_TEXT`` when a pool is
    too small (nothing touched yet), else ``DONE``; ``pending`` when a custom model's
    partial-word score is missing (queried; the frame is recomputed once it is answered).
    """
    io = ws.io
    tok_kind, tok_codes, tok_off = tokens.kind, tokens.codes, tokens.offsets
    blank = params.blank
    token_min_logp = params.token_min_logp
    beams, text, cand = ws.beams, ws.text, ws.cand
    b_i, b_logit, b_phash, b_part, b_score = (
        beams.i,
        beams.logit,
        beams.phash,
        beams.part,
        beams.score,
    )
    tn_i, tn_word, tt_keys, tt_vals = text.i, text.word, text.table_keys, text.table_vals
    cd_i, cd_logit, cd_score, cd_phash, cd_part, cd_last = (
        cand.i,
        cand.logit,
        cand.score,
        cand.phash,
        cand.part,
        cand.last,
    )
    mt_keys, mt_vals = cand.merge_keys, cand.merge_vals
    pc_keys, pc_vals = ws.pc_keys, ws.pc_vals
    nb = io[IO_NBEAMS]
    # the listed columns hold the frame's best label and every label that can reach
    # token_min_logp (see lm_frames), in increasing order
    r = t - frames.t0
    j0 = frames.off[r]
    n_list = frames.off[r + 1] - j0
    best = -1
    bv = 0.0
    for k in range(n_list):
        c = np.int64(frames.cols[j0 + k])
        p = frame_logp(frames, r, c)
        sel_c[k] = c
        sel_p[k] = p
        if k == 0 or p > bv:
            bv = p
            best = c
    nsel = 0
    for k in range(n_list):
        if sel_p[k] >= token_min_logp or sel_c[k] == best:
            sel_c[nsel] = sel_c[k]
            sel_p[nsel] = sel_p[k]
            nsel += 1
    need = nsel * nb
    if need > cd_i.shape[0] or 2 * need > mt_keys.size:
        io[IO_T] = t
        io[IO_NEED] = need
        return GROW_CAND, 0, False
    if io[IO_NTEXT] + need > tn_i.shape[0] or 2 * (io[IO_NTEXT] + need) > tt_keys.size:
        io[IO_T] = t
        io[IO_NEED] = io[IO_NTEXT] + need
        return GROW_TEXT, 0, False
    if params.partial_mode == PARTIAL_UNIGRAMS and params.have_unigrams:
        # the unigram-prefix probes of the new word parts miss the cache: ask for their
        # slots before the candidates need them
        pre = model.cache.prefixes
        pmask = np.uint64(pre.size - 1)
        for k in range(nsel):
            c = sel_c[k]
            kind = tok_kind[c]
            if c == blank or kind == K_SPACE:
                continue
            for i in range(nb):
                if c == b_i[i, B_LAST]:
                    continue
                h = FNV_OFFSET if kind == K_BPE_START else b_phash[i]
                h = extend_hash(h, c, tok_codes, tok_off)
                prefetch(pre, np.int64(mix64(h) & pmask))
    pending = False
    m = 0
    for k in range(nsel):
        c = sel_c[k]
        p = sel_p[k]
        kind = tok_kind[c]
        for i in range(nb):
            last = b_i[i, B_LAST]
            txt = b_i[i, B_TEXT]
            plen = b_i[i, B_PLEN]
            pntok = b_i[i, B_PNTOK]
            pstart = b_i[i, B_PSTART]
            pend = b_i[i, B_PEND]
            phash = b_phash[i]
            fappend = 0
            newtok = 0
            dparent = -1
            dwid = -1
            dtn = -1
            dnt = 0
            dhash = FNV_OFFSET
            ps = b_part[i]
            if c == blank or c == last:
                if c != blank:
                    pend = t + 1
            else:
                newtok = 1
                if kind == K_SPACE or kind == K_BPE_START:
                    if plen > 0:
                        # fast path (no call): the text node usually exists already
                        key = pair_key(txt, phash)
                        tmask = tt_keys.size - 1
                        ts = np.int64(key & np.uint64(tmask))  # mixed already
                        nt = -3
                        while True:
                            tkey = tt_keys[ts]
                            if tkey == key:
                                node = tt_vals[ts]
                                if tn_i[node, N_PARENT] == txt and tn_word[node] == phash:
                                    nt = node
                                break
                            if tkey == 0:
                                break
                            ts = (ts + 1) & tmask
                        if nt == -3:
                            nt, dwid = child_text(model, params, text, io, txt, phash, ng_ctx)
                        if nt < 0:
                            # deferred: scored by an upper bound, resolved only if it could
                            # survive the pruning
                            dparent = txt
                            dhash = phash
                            dtn = b_i[i, B_TNODE]
                            dnt = pntok
                            txt = DEFERRED
                        else:
                            txt = nt
                        fappend = 1
                    if kind == K_SPACE:
                        phash = FNV_OFFSET
                        plen = 0
                        pntok = 0
                        pstart = -1
                        pend = -1
                    else:
                        phash = extend_hash(FNV_OFFSET, c, tok_codes, tok_off)
                        plen = tok_off[c + 1] - tok_off[c]
                        pntok = 1
                        pstart = t
                        pend = t + 1
                else:
                    phash = extend_hash(phash, c, tok_codes, tok_off)
                    plen += tok_off[c + 1] - tok_off[c]
                    pntok += 1
                    if pstart < 0:
                        pstart = t
                    pend = t + 1
                # per-search cache of partial scores (hotwords are fixed per call)
                ci = np.int64(phash & np.uint64(pc_keys.size - 1))
                if pc_keys[ci] == phash:
                    ps = pc_vals[ci]
                else:
                    ps = partial_score(model, params, plen, phash)
                    if ps == ps:
                        pc_vals[ci] = ps
                        pc_keys[ci] = phash
                if ps != ps:
                    # custom LM: the part is the beam's last pntok - 1 tokens plus c
                    add_query(
                        ws.queries, io, Q_PARTIAL, b_i[i, B_TNODE], -1, -2 - c, pntok, phash, 0
                    )
                    pending = True
                    continue
            logit = b_logit[i] + p
            if txt >= 0:
                key = pair_key(pair_key(txt, phash), c)
            else:
                key = pair_key(pair_key(pair_key(dparent, dhash) ^ DEFER_SALT, phash), c)
            mmask = mt_keys.size - 1
            slot = np.int64(key & np.uint64(mmask))  # a pair key is mixed already
            while mt_keys[slot] != key and mt_keys[slot] != 0:
                slot = (slot + 1) & mmask
            if mt_keys[slot] == key:
                j = mt_vals[slot]
                cd_logit[j] = sum_log_scores(cd_logit[j], logit)
                if logit > cd_score[j]:
                    cd_score[j] = logit
                    cd_i[j, C_TSRC] = i
                    cd_i[j, C_TNEW] = newtok
                if b_score[i] > cd_last[j]:
                    continue
            else:
                j = m
                m += 1
                mt_vals[slot] = j
                mt_keys[slot] = key
                cd_i[j, C_SLOT] = slot
                cd_i[j, C_TEXT] = txt
                if txt < 0:
                    cd_i[j, C_DPARENT] = dparent
                    cd_i[j, C_DWID] = dwid
                    cd_i[j, C_DTN] = dtn
                    cd_i[j, C_DNT] = dnt
                    cd_i[j, C_DHASH] = np.int64(dhash)
                cd_i[j, C_PLEN] = plen
                cd_i[j, C_LAST] = c
                cd_phash[j] = phash
                cd_logit[j] = logit
                cd_part[j] = ps
                cd_score[j] = logit
                cd_i[j, C_TSRC] = i
                cd_i[j, C_TNEW] = newtok
            # pyctcdecode keeps the fields of the merged path met last, i.e. the one from
            # the lowest-ranked beam: here, the source beam with the lowest score
            cd_last[j] = b_score[i]
            cd_i[j, C_PNTOK] = pntok
            cd_i[j, C_PSTART] = pstart
            cd_i[j, C_PEND] = pend
            cd_i[j, C_SRC] = i
            cd_i[j, C_FAPPEND] = fappend
            cd_i[j, C_NEWTOK] = newtok
    for j in range(m):
        mt_keys[cd_i[j, C_SLOT]] = 0
    return DONE, m, pending


@jit(_nrt=False)
def _score_candidates(m, cand, tn_lm):
    """Combined score of every candidate with a text node; returns the best score and the
    number of deferred candidates."""
    cd_i = cand.i
    mx = -np.inf
    n_def = 0
    for j in range(m):
        if cd_i[j, C_TEXT] < 0:
            n_def += cd_i[j, C_TEXT] == DEFERRED
            continue
        sc = cand.logit[j] + tn_lm[cd_i[j, C_TEXT]] + cand.part[j]
        cand.score[j] = sc
        if sc > mx:
            mx = sc
    return mx, n_def


@jit
def _ask(resolver, ctx, io):
    """Have ``resolver(ctx, n)`` answer the ``n = io[IO_NQ]`` pending queries in place.

    Returns true when the search can go on with the tables it holds. Otherwise the kernel
    returns ``PENDING`` to its caller: with ``io[IO_NQ]`` cleared when the queries were
    answered into new (grown) tables, which the caller passes in the next call, and with the
    queries left in place when the resolver declined (its ``RESOLVE_DECLINED`` answer).
    """
    answer = resolver(ctx, io[IO_NQ])
    if answer == RESOLVE_DECLINED:
        return False
    io[IO_NQ] = 0
    return answer == RESOLVE_DONE


@jit(_nrt=False)
def _reattach_deferred(m, model, params, ws, ng_ctx):
    """Give deferred candidates whose LM score is now cached their text node.

    Candidates are visited in creation order, as recomputing the frame would visit them, so
    nodes get the same ids; deferred candidates merged by (parent, word), which is what
    merging by their text node does. The rest stays deferred with a refreshed word id.
    """
    cd_i = ws.cand.i
    for j in range(m):
        if cd_i[j, C_TEXT] != DEFERRED:
            continue
        parent = cd_i[j, C_DPARENT]
        h = np.uint64(cd_i[j, C_DHASH])
        node, wid = child_text(model, params, ws.text, ws.io, parent, h, ng_ctx)
        if node >= 0:
            cd_i[j, C_TEXT] = node
        else:
            cd_i[j, C_DWID] = wid


@jit(_nrt=False)
def _kth_scored(m, beam_width, cd_i, cd_score, vals):
    """The ``beam_width``-th best score of the scored candidates (-inf if fewer)."""
    n_scored = 0
    for j in range(m):
        if cd_i[j, C_TEXT] >= 0:
            vals[n_scored] = cd_score[j]
            n_scored += 1
    if n_scored < beam_width:
        return -np.inf
    return kth_smallest(vals, n_scored, n_scored - beam_width)


@jit(_nrt=False)
def _resolve_deferred(m, thr, params, model, ws, vals):
    """Bound each deferred word completion from above; query those that could survive.

    A completion scores at most ``acoustic + LM(parent) + word_score_bound (+ hotword)``.
    One whose bound is below the pruning threshold ``thr``, or below ``beam_width`` scored
    candidates, cannot survive whatever its LM score: it is dropped (score -inf) without a
    query, which leaves the result exactly as if it had been scored. Without a bound
    (``params.can_bound`` false) every deferred completion above the threshold is queried.
    Returns whether queries were added.
    """
    cand, tn_i, tn_lm = ws.cand, ws.text.i, ws.text.lm
    cd_i, cd_score = cand.i, cand.score
    pending = False
    # the beam_width-th best scored candidate (a bound below it cannot reach the top K),
    # found when a bound first passes the pruning threshold
    kth = np.nan
    for j in range(m):
        if cd_i[j, C_TEXT] != DEFERRED:
            continue
        wid = cd_i[j, C_DWID]
        h = np.uint64(cd_i[j, C_DHASH])
        parent = cd_i[j, C_DPARENT]
        ub = np.inf
        if params.can_bound:
            ub = word_score_bound(params, wid)
            if is_hotword(model.hotwords, h):
                ub += params.hw_weight
        ub += cand.logit[j] + tn_lm[parent] + cand.part[j]
        cd_score[j] = -np.inf
        if kth != kth and ub >= thr:
            kth = _kth_scored(m, params.beam_width, cd_i, cd_score, vals)
        if ub < thr or kth > ub:  # pruned, or beam_width scored candidates beat even the bound
            # final for this frame: answers to other queries only raise both thresholds
            cd_i[j, C_TEXT] = DROPPED
            continue
        pstate = tn_i[parent, N_LMSTATE]
        kind = Q_WORD if wid < 0 else Q_LM
        add_query(ws.queries, ws.io, kind, pstate, wid, cd_i[j, C_DTN], cd_i[j, C_DNT], h, 0)
        pending = True
    return pending


@jit(inline="always", _nrt=False)
def _insertion_desc(idx, lo, hi, score):
    """Stable insertion sort of ``idx[lo:hi]`` by decreasing ``score[idx]``."""
    for a in range(lo + 1, hi):
        x = idx[a]
        sx = score[x]
        b = a - 1
        while b >= lo and score[idx[b]] < sx:
            idx[b + 1] = idx[b]
            b -= 1
        idx[b + 1] = x


@jit(inline="always", _nrt=False)
def _merge_desc(src, dst, lo, mid, hi, score):
    """Merge the sorted ``src[lo:mid]`` and ``src[mid:hi]`` into ``dst[lo:hi]`` (stable: on a
    tie the left one first)."""
    a = lo
    b = mid
    k = lo
    while a < mid and b < hi:
        if score[src[b]] > score[src[a]]:
            dst[k] = src[b]
            b += 1
        else:
            dst[k] = src[a]
            a += 1
        k += 1
    while a < mid:
        dst[k] = src[a]
        a += 1
        k += 1
    while b < hi:
        dst[k] = src[b]
        b += 1
        k += 1


@jit(_nrt=False)
def sort_desc(idx, n, score, tmp):
    """Stable sort of ``idx[:n]`` by decreasing ``score[idx]`` (ties keep their order);
    insertion sort of runs of 16, then bottom-up merging through ``tmp``."""
    run = 16
    for lo in range(0, n, run):
        _insertion_desc(idx, lo, min(lo + run, n), score)
    width = run
    in_tmp = False
    while width < n:
        src = tmp if in_tmp else idx
        dst = idx if in_tmp else tmp
        for lo in range(0, n, 2 * width):
            _merge_desc(src, dst, lo, min(lo + width, n), min(lo + 2 * width, n), score)
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        for a in range(n):
            idx[a] = tmp[a]


@jit(_nrt=False)
def sort_groups_desc(idx, n, score, tmp, bnd, g):
    """Stable sort of ``idx[:n]`` by decreasing ``score[idx]`` (ties keep their order), where
    ``idx[bnd[q]:bnd[q + 1]]`` for ``q < g`` are groups that each come nearly sorted:
    insertion sort within each group, then merging of neighbouring groups through ``tmp``
    (``bnd`` is overwritten)."""
    for q in range(g):
        _insertion_desc(idx, bnd[q], bnd[q + 1], score)
    in_tmp = False
    while g > 1:
        src = tmp if in_tmp else idx
        dst = idx if in_tmp else tmp
        ng = 0
        for q in range(0, g, 2):
            hi = bnd[min(q + 2, g)]
            _merge_desc(src, dst, bnd[q], bnd[q + 1], hi, score)
            bnd[ng] = bnd[q]
            ng += 1
        bnd[ng] = n
        g = ng
        in_tmp = not in_tmp
    if in_tmp:
        for a in range(n):
            idx[a] = tmp[a]


@jit(_nrt=False)
def _select_and_commit(t, m, thr, params, ws, scratch):
    """Keep candidates >= ``thr``, then the best ``beam_width`` (ties: first candidates),
    then (``prune_history``) the best per history key; commit them as the new beams and
    return their number.

    The new beams are sorted by score, ties in candidate order, as pyctcdecode sorts its
    beams: its order decides which of tied candidates survive and which merged path supplies
    the frames.
    """
    beam_width = params.beam_width
    prune_history = params.prune_history
    io = ws.io
    kept, hks, used, vals, order_tmp, bounds, nodes = scratch
    cand, beams = ws.cand, ws.beams
    cd_i, cd_score = cand.i, cand.score
    mt_keys, mt_vals = cand.merge_keys, cand.merge_vals
    b_i = beams.i
    fc, tk = ws.chains.frames, ws.chains.tokens
    tn_hist = ws.text.hist
    nk = 0
    for j in range(m):
        if cd_score[j] >= thr:
            kept[nk] = j
            nk += 1
    if nk > beam_width:
        for a in range(nk):
            vals[a] = cd_score[kept[a]]
        kth = kth_smallest(vals, nk, nk - beam_width)
        room = beam_width
        for a in range(nk):
            if cd_score[kept[a]] > kth:
                room -= 1
        n2 = 0
        for a in range(nk):
            j = kept[a]
            sc = cd_score[j]
            if sc > kth or (sc == kth and room > 0):
                if sc == kth:
                    room -= 1
                kept[n2] = j
                n2 += 1
        nk = n2
    n_used = 0
    if prune_history:
        for a in range(nk):
            j = kept[a]
            hk = pair_key(pair_key(tn_hist[cd_i[j, C_TEXT]], cand.phash[j]), cd_i[j, C_LAST])
            hks[a] = hk
            slot = table_slot_for_insert(mt_keys, hk, True)
            if mt_keys[slot] == hk:
                w = mt_vals[slot]
                if cd_score[j] > cd_score[w]:
                    mt_vals[slot] = j
            else:
                mt_vals[slot] = j
                mt_keys[slot] = hk
                used[n_used] = slot
                n_used += 1
    n_sel = 0
    for a in range(nk):
        j = kept[a]
        if prune_history and mt_vals[table_find(mt_keys, hks[a], True)] != j:
            continue
        kept[n_sel] = j
        n_sel += 1
    for a in range(n_used):
        mt_keys[used[a]] = 0
    # pyctcdecode's beam order (by score, ties in candidate order): the next frame's
    # candidates are then made, merged and tie-broken in its order
    # candidates come label by label, each label's in beam order: nearly sorted groups (cut
    # every SORT_GROUP entries, which bounds the insertion sort where one is not)
    g = 0
    label = -1
    for a in range(n_sel):
        c = cd_i[kept[a], C_LAST]
        if a == 0 or c != label or a - bounds[g - 1] == SORT_GROUP:
            bounds[g] = a
            g += 1
        label = c
    bounds[g] = n_sel
    sort_groups_desc(kept, n_sel, cd_score, order_tmp, bounds, g)
    # the chain nodes of the new beams first (they read the old beams), then the new beams
    # over the old ones
    for a in range(n_sel):
        j = kept[a]
        src = cd_i[j, C_SRC]
        tnode = b_i[cd_i[j, C_TSRC], B_TNODE]
        if cd_i[j, C_TNEW]:
            k = io[IO_NTK]
            io[IO_NTK] = k + 1
            tk[k, 0] = tnode
            tk[k, 1] = cd_i[j, C_LAST]
            tk[k, 2] = t
            tnode = k
        fnode = b_i[src, B_FNODE]
        if cd_i[j, C_FAPPEND]:
            k = io[IO_NFC]
            io[IO_NFC] = k + 1
            fc[k, 0] = fnode
            fc[k, 1] = b_i[src, B_PSTART]
            fc[k, 2] = b_i[src, B_PEND]
            fnode = k
        nodes[a, 0] = fnode
        nodes[a, 1] = tnode
    for a in range(n_sel):
        j = kept[a]
        b_i[a, B_TEXT] = cd_i[j, C_TEXT]
        b_i[a, B_PLEN] = cd_i[j, C_PLEN]
        b_i[a, B_PNTOK] = cd_i[j, C_PNTOK]
        b_i[a, B_LAST] = cd_i[j, C_LAST]
        b_i[a, B_PSTART] = cd_i[j, C_PSTART]
        b_i[a, B_PEND] = cd_i[j, C_PEND]
        b_i[a, B_FNODE] = nodes[a, 0]
        b_i[a, B_TNODE] = nodes[a, 1]
        beams.logit[a] = cand.logit[j]
        beams.phash[a] = cand.phash[j]
        beams.part[a] = cand.part[j]
        beams.score[a] = cd_score[j]
    n_new = n_sel
    return n_new


@jit
def _finish(params, model, ws, ng_ctx):
    """Final step: complete each beam's last word, add end-of-sentence LM scores, rank.

    As pyctcdecode, a beam without an unfinished word is scored with the empty word (an
    unknown word to KenLM) before the sentence end; beams that yield the same text merge.
    The candidate arrays serve as the final candidates (columns ``F_*``): ``logit`` holds
    the merged acoustic score, ``part`` the best merged path's, ``last`` the lowest merged
    beam score (that beam's fields are kept, as pyctcdecode keeps the last one merged),
    ``score`` the LM and hotword score, then the combined score.
    """
    io = ws.io
    beams, text, cand = ws.beams, ws.text, ws.cand
    b_i = beams.i
    tn_i, tn_lm = text.i, text.lm
    f_i, f_logit, f_score = cand.i, cand.logit, cand.score
    best_logit, low_score = cand.part, cand.last
    mt_keys, mt_vals = cand.merge_keys, cand.merge_vals
    nb = io[IO_NBEAMS]
    pending = False
    m = 0
    for i in range(nb):
        txt = b_i[i, B_TEXT]
        plen = b_i[i, B_PLEN]
        phash = beams.phash[i]
        if plen > 0:
            node = find_child(text, txt, phash)
            if node >= 0:
                key = pair_key(node, 0)
            else:
                key = pair_key(pair_key(txt, phash), 1)
        else:
            key = pair_key(txt, 0)
        found, score, state, vocab, wid = word_score(
            model, params, tn_i, txt, phash, plen > 0, 1, ng_ctx
        )
        if found != FOUND:
            kind = Q_WORD if found == MISS_WORD else Q_LM
            pstate = tn_i[txt, N_LMSTATE]
            add_query(ws.queries, io, kind, pstate, wid, b_i[i, B_TNODE], b_i[i, B_PNTOK], phash, 1)
            pending = True
            continue
        is_hw = 0
        if plen > 0 and is_hotword(model.hotwords, phash):
            is_hw = 1
        lmhw = tn_lm[txt] + score + params.hw_weight * is_hw
        slot = table_slot_for_insert(mt_keys, key)
        if mt_keys[slot] == key:
            j = mt_vals[slot]
            f_logit[j] = sum_log_scores(f_logit[j], beams.logit[i])
            if beams.logit[i] > best_logit[j]:
                best_logit[j] = beams.logit[i]
                f_i[j, F_TOKNODE] = b_i[i, B_TNODE]
            if beams.score[i] > low_score[j]:
                continue
        else:
            j = m
            m += 1
            mt_vals[slot] = j
            mt_keys[slot] = key
            f_i[j, F_SLOT] = slot
            f_logit[j] = beams.logit[i]
            f_i[j, F_TOKNODE] = b_i[i, B_TNODE]  # tokens of the best merged path
            best_logit[j] = beams.logit[i]
        low_score[j] = beams.score[i]
        f_i[j, F_SRC] = i
        f_i[j, F_LMSTATE] = state
        f_i[j, F_VOCAB] = vocab
        f_score[j] = lmhw
    for j in range(m):
        mt_keys[f_i[j, F_SLOT]] = 0
    if pending:
        return PENDING
    mx = -np.inf
    for j in range(m):
        f_score[j] += f_logit[j]
        if f_score[j] > mx:
            mx = f_score[j]
    thr = mx + params.beam_prune_logp
    kept = np.empty(m, dtype=np.int64)
    tmp = np.empty(m, dtype=np.int64)
    nk = 0
    for j in range(m):
        if f_score[j] >= thr:
            kept[nk] = j
            nk += 1
    sort_desc(kept, nk, f_score, tmp)
    n_out = min(nk, params.beam_width)
    fc = ws.chains.frames
    out_i, out_f = ws.out_i, ws.out_f
    for a in range(n_out):
        j = kept[a]
        i = f_i[j, F_SRC]
        fnode = b_i[i, B_FNODE]
        if b_i[i, B_PLEN] > 0:
            k = io[IO_NFC]
            io[IO_NFC] = k + 1
            fc[k, 0] = fnode
            fc[k, 1] = b_i[i, B_PSTART]
            fc[k, 2] = b_i[i, B_PEND]
            fnode = k
        out_i[a, O_TOKNODE] = f_i[j, F_TOKNODE]
        out_i[a, O_FNODE] = fnode
        out_i[a, O_LMSTATE] = f_i[j, F_LMSTATE]
        out_i[a, O_VOCAB] = f_i[j, F_VOCAB]
        out_i[a, O_TEXT] = b_i[i, B_TEXT]
        out_f[a, 0] = f_logit[j]
        out_f[a, 1] = f_score[j]
    io[IO_NOUT] = n_out
    return DONE


@jit
def spell_queries(q, tk, tok_codes, tok_off):
    """Code points of the text behind each query, concatenated, and their offsets.

    A ``Q_WORD`` row names the word of ``q[r, 4]`` tokens ending at token node ``q[r, 3]``;
    a ``Q_PARTIAL`` row the word part of ``q[r, 4] - 1`` tokens ending at node ``q[r, 1]``
    followed by label ``-2 - q[r, 3]``; a ``Q_LM`` row names nothing (empty text).
    """
    n = q.shape[0]
    off = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        ln = 0
        if q[r, 0] != Q_LM:
            node, ntok = q[r, 3], q[r, 4]
            if q[r, 0] == Q_PARTIAL:
                c = -2 - q[r, 3]
                ln = tok_off[c + 1] - tok_off[c]
                node, ntok = q[r, 1], q[r, 4] - 1
            for _ in range(ntok):
                c = tk[node, 1]
                ln += tok_off[c + 1] - tok_off[c]
                node = tk[node, 0]
        off[r + 1] = off[r] + ln
    codes = np.empty(off[n], dtype=np.uint32)
    for r in range(n):
        if q[r, 0] == Q_LM:
            continue
        p = off[r + 1]  # filled backwards: the chain runs from the last token to the first
        node, ntok = q[r, 3], q[r, 4]
        if q[r, 0] == Q_PARTIAL:
            c = -2 - q[r, 3]
            for k in range(tok_off[c + 1] - 1, tok_off[c] - 1, -1):
                p -= 1
                codes[p] = tok_codes[k]
            node, ntok = q[r, 1], q[r, 4] - 1
        for _ in range(ntok):
            c = tk[node, 1]
            for k in range(tok_off[c + 1] - 1, tok_off[c] - 1, -1):
                p -= 1
                codes[p] = tok_codes[k]
            node = tk[node, 0]
    return codes, off


@jit
def collect_chains(parent_col, nodes, tk, fc):
    """Walk token chains (``tk``: parent, label, frame) and word-frame chains (``fc``: parent,
    start, end) back from ``nodes[:, 0]`` / ``nodes[:, 1]``.

    Returns flat labels, frames and offsets for the tokens, then flat starts, ends and
    offsets for the words, each sequence in forward order.
    """
    n = nodes.shape[0]
    t_off = np.zeros(n + 1, dtype=np.int64)
    w_off = np.zeros(n + 1, dtype=np.int64)
    for a in range(n):
        c = 0
        k = nodes[a, 0]
        while k >= 0:
            c += 1
            k = tk[k, parent_col]
        t_off[a + 1] = t_off[a] + c
        c = 0
        k = nodes[a, 1]
        while k >= 0:
            c += 1
            k = fc[k, parent_col]
        w_off[a + 1] = w_off[a] + c
    labels = np.empty(t_off[n], dtype=np.int64)
    frames = np.empty(t_off[n], dtype=np.int64)
    starts = np.empty(w_off[n], dtype=np.int64)
    ends = np.empty(w_off[n], dtype=np.int64)
    for a in range(n):
        p = t_off[a + 1] - 1
        k = nodes[a, 0]
        while k >= 0:
            labels[p] = tk[k, 1]
            frames[p] = tk[k, 2]
            p -= 1
            k = tk[k, parent_col]
        p = w_off[a + 1] - 1
        k = nodes[a, 1]
        while k >= 0:
            starts[p] = fc[k, 1]
            ends[p] = fc[k, 2]
            p -= 1
            k = fc[k, parent_col]
    return labels, frames, t_off, starts, ends, w_off


# ------------------------------------------------------------------------------ streaming
# A stream (fastctc.lm.stream) searches its frames chunk by chunk (io[IO_STREAM] set) and,
# between chunks, drops what no live beam can reach any more and commits what every live
# beam shares, so that its pools stay bounded however long it runs.


@jit
def stream_token_logps(tk, k0, k1, frames, out):
    """``out[k]``: the log-probability of token node ``k``'s label at its frame, for the
    nodes ``k0 <= k < k1``, all made from the rows of ``frames``."""
    for k in range(k0, k1):
        out[k] = frame_logp(frames, tk[k, 2] - frames.t0, tk[k, 1])


@jit
def _chain_marks(ch, n, b_i, nb, col):
    """Per chain node ``k < n`` (parent in column 0, always a lower index): its depth (nodes
    from the chain's start, itself included) and how many of the ``nb`` beams (node in column
    ``col`` of ``b_i``) reach it. Returns them and the deepest node every beam reaches (-1
    when none is, or a beam has no node)."""
    depth = np.empty(n, dtype=np.int64)
    cnt = np.zeros(n, dtype=np.int64)
    for k in range(n):
        p = ch[k, 0]
        depth[k] = 1 if p < 0 else depth[p] + 1
    common = nb > 0
    for a in range(nb):
        k = b_i[a, col]
        if k < 0:
            common = False
        else:
            cnt[k] += 1
    lca = -1
    for k in range(n - 1, -1, -1):
        c = cnt[k]
        if c == 0:
            continue
        if common and lca < 0 and c == nb:
            lca = k
        p = ch[k, 0]
        if p >= 0:
            cnt[p] += c
    return depth, cnt, lca


@jit
def _compact_chain(ch, n, depth, cnt, cut, vals, b_i, nb, col):
    """Keep the nodes some beam reaches deeper than ``cut`` (those at depth ``<= cut`` are
    every beam's first ``cut`` nodes, committed by the caller), moved to the front in their
    order with their parents renumbered (-1 past the cut), and ``vals`` (when not empty)
    moved alike; renumber the beams' nodes. Returns the nodes kept."""
    newidx = np.full(n, -1, dtype=np.int64)
    j = 0
    for k in range(n):
        if cnt[k] == 0 or depth[k] <= cut:
            continue
        p = ch[k, 0]
        ch[j, 0] = -1 if (p < 0 or depth[p] <= cut) else newidx[p]
        for c in range(1, ch.shape[1]):
            ch[j, c] = ch[k, c]
        if vals.size > 0:
            vals[j] = vals[k]
        newidx[k] = j
        j += 1
    for a in range(nb):
        k = b_i[a, col]
        b_i[a, col] = -1 if (k < 0 or depth[k] <= cut) else newidx[k]
    return j


@jit
def _commit_path(ch, tip, depth, cut, c1, c2, vals):
    """Columns ``c1``, ``c2`` (and ``vals``) of the first ``cut`` nodes of the chain through
    ``tip``, in chain order."""
    a = np.empty(cut, dtype=np.int64)
    b = np.empty(cut, dtype=np.int64)
    v = np.empty(cut if vals.size > 0 else 0)
    k = tip
    while k >= 0 and depth[k] > cut:
        k = ch[k, 0]
    for p in range(cut - 1, -1, -1):
        a[p] = ch[k, c1]
        b[p] = ch[k, c2]
        if vals.size > 0:
            v[p] = vals[k]
        k = ch[k, 0]
    return a, b, v


@jit
def stream_compact(ws, tk_lp, keep_ctx):
    """Drop the token, word-frame and text nodes no live beam reaches, commit what all of them
    share, and renumber what is left (moved to the front; the (parent, word) table rebuilt).

    Token nodes every beam shares are committed except the tokens of any beam's unfinished
    word (queries spell a word from them); word-frame nodes every beam shares are committed;
    text nodes are not committed (the text is spelled from the tokens) but those more than
    ``keep_ctx`` words above the beams' common node are dropped (n-gram contexts and history
    keys read at most ``order - 1`` words back; the root stays node 0). Between kernel calls
    only. Returns the committed tokens (labels, frames, log-probabilities from ``tk_lp``,
    which is moved along with the token nodes) and word frames (starts, ends), in order.
    """
    io = ws.io
    b_i = ws.beams.i
    nb = io[IO_NBEAMS]
    tk, fc = ws.chains.tokens, ws.chains.frames
    # tokens
    n = io[IO_NTK]
    depth, cnt, lca = _chain_marks(tk, n, b_i, nb, B_TNODE)
    cut = 0
    if lca >= 0:
        cut = depth[lca]
        for a in range(nb):
            cut = min(cut, depth[b_i[a, B_TNODE]] - b_i[a, B_PNTOK])
        cut = max(cut, 0)
    labels, frames, lps = _commit_path(tk, lca, depth, cut, 1, 2, tk_lp)
    io[IO_NTK] = _compact_chain(tk, n, depth, cnt, cut, tk_lp, b_i, nb, B_TNODE)
    # word frames
    n = io[IO_NFC]
    depth, cnt, lca = _chain_marks(fc, n, b_i, nb, B_FNODE)
    cut = depth[lca] if lca >= 0 else 0
    none = np.empty(0)
    starts, ends, _ = _commit_path(fc, lca, depth, cut, 1, 2, none)
    io[IO_NFC] = _compact_chain(fc, n, depth, cnt, cut, none, b_i, nb, B_FNODE)
    # text nodes
    text = ws.text
    tn_i = text.i
    n = io[IO_NTEXT]
    cnt = np.zeros(n, dtype=np.int64)
    for a in range(nb):
        cnt[b_i[a, B_TEXT]] += 1
    lca = 0
    for k in range(n - 1, 0, -1):
        c = cnt[k]
        if c == 0:
            continue
        if lca == 0 and c == nb:
            lca = k
        p = tn_i[k, N_PARENT]
        if p >= 0:
            cnt[p] += c
    low = tn_i[lca, N_NWORDS] - keep_ctx
    newidx = np.full(n, -1, dtype=np.int64)
    newidx[0] = 0
    j = 1
    for k in range(1, n):
        if cnt[k] == 0 or tn_i[k, N_NWORDS] < low:
            continue
        p = tn_i[k, N_PARENT]
        for c in range(N_COLS):
            tn_i[j, c] = tn_i[k, c]
        tn_i[j, N_PARENT] = newidx[p] if p >= 0 else -1
        text.word[j] = text.word[k]
        text.hist[j] = text.hist[k]
        text.lm[j] = text.lm[k]
        newidx[k] = j
        j += 1
    for a in range(nb):
        b_i[a, B_TEXT] = newidx[b_i[a, B_TEXT]]
    text.table_keys[:] = 0
    rebuild_text_table(tn_i, text.word, j, text.table_keys, text.table_vals)
    io[IO_NTEXT] = j
    return labels, frames, lps, starts, ends


@jit
def stream_common_words(tn_i, b_i, nb):
    """Words of the deepest text node every one of the ``nb`` beams descends from."""
    if nb == 0:
        return 0
    common = b_i[0, B_TEXT]
    for a in range(1, nb):
        x = b_i[a, B_TEXT]
        while tn_i[x, N_NWORDS] > tn_i[common, N_NWORDS]:
            x = tn_i[x, N_PARENT]
        while tn_i[common, N_NWORDS] > tn_i[x, N_NWORDS]:
            common = tn_i[common, N_PARENT]
        while x != common:
            x = tn_i[x, N_PARENT]
            common = tn_i[common, N_PARENT]
    return tn_i[common, N_NWORDS]
