"""CTC beam search with word-level language-model fusion (pyctcdecode's algorithm), nopython.

A beam is ``(text, word part, last label)``: ``text`` is a node of a per-utterance word trie
(each node one more word, with its LM state and cumulative LM score), the word part is the
unfinished word (its FNV hash and length in characters) and ``last label`` the last label of
the path (blank included), so a repeated label collapses and a blank separates repeats.
Every frame each beam is extended by every label whose log-probability reaches
``token_min_logp`` (plus the frame's best label); candidates with the same
``(text, part, last)`` are merged by log-sum-exp of their acoustic scores; each is scored as
acoustic + LM(text) + partial-word score; candidates below ``best + beam_prune_logp`` are
dropped and the best ``K`` kept (ties by candidate order). ``prune_history`` additionally keeps
only the best beam per (last ``n - 1`` words, part, last label).

With n-gram tables (``ng_meta[M_ORDER] > 0``: an ARPA or KenLM trie model read by
``fastctc.ngram`` / ``fastctc.kenlm_binary``) every word is scored in the kernel
(:func:`ng_word_score`): the LM context of a text node is the words of its last
``order - 1`` ancestors, whose vocabulary ids the nodes keep in ``N_STATE``, and nothing
below is needed.

Otherwise LM scores come from hash tables keyed by (LM state id, word id). A word
completion whose score is missing is first bounded from above; if even the bound cannot
survive the pruning it is dropped (exactly what scoring it would have done), otherwise it is
queried before the frame is committed: the missing queries (each once) go into ``q`` and the
kernel calls ``resolver(ctx, n)``, a C callback that takes the GIL only for that call, fills
the tables (KenLM) and answers ``RESOLVE_DONE``; the frame then goes on with the new scores.
If the tables had to be reallocated (``RESOLVE_STALE``) or the resolver declines
(``RESOLVE_DECLINED``: no callback registered, or the model raised), the kernel stops
instead, with the frame's state and the queries (if unanswered) in place; the caller resolves
them, passes the current tables and calls again, and the frame resumes. Capacity shortfalls
stop it the same way.

Beams are kept unsorted (only the final ones are sorted). Where pyctcdecode's result depends on
its beam order (a merged candidate takes the frames of the path merged last, i.e. from the
lowest-ranked beam) the kernel uses the source beam's score instead, which gives the same
result except on exact ties.

Inputs are validated by the caller. Status codes: ``DONE``, ``PENDING``, ``GROW_TEXT``,
``GROW_CAND``.
"""

import math

import numpy as np

from ..defaults import AVG_TOKEN_LEN, LOG10_TO_LN
from ._jit import jit
from .lm_cache import FNV_OFFSET, fnv_extend, mix64, pair_key, table_find, table_slot_for_insert
from .ngram import M_BOS, M_BOUNDARY, M_EOS, M_ORDER, log10_prob, push_word
from .prefix_beam import kth_smallest

DONE = 0
PENDING = 1
GROW_TEXT = 2
GROW_CAND = 3
ABORTED = 4  # the caller set abort[0] (Ctrl-C): stopped at the start of frame io[IO_T]

# token kinds
K_BLANK = 0
K_SPACE = 1  # word delimiter of a character vocabulary: ends the word, adds no character
K_BPE_START = 2  # "▁xx": ends the previous word and starts a new one with "xx"
K_NORMAL = 3

# beam integer columns
B_TEXT = 0
B_PLEN = 1
B_PNTOK = 2
B_LAST = 3
B_PSTART = 4
B_PEND = 5
B_FNODE = 6
B_TNODE = 7
B_COLS = 8

# text-node integer columns
N_PARENT = 0
N_STATE = 1
N_HW = 2
N_NWORDS = 3
N_COLS = 4

# candidate integer columns
C_TEXT = 0
C_PLEN = 1
C_PNTOK = 2
C_LAST = 3
C_PSTART = 4
C_PEND = 5
C_SRC = 6
C_FAPPEND = 7
C_NEWTOK = 8
C_SLOT = 9
C_TSRC = 10  # path whose tokens the beam keeps: the merged path with the best acoustic score
C_TNEW = 11
# C_TEXT of a word completion whose LM score is not cached yet, and of one dropped for good
DEFERRED = -1
DROPPED = -2
# a word completion whose LM score is not cached: parent text, word id (-1 unknown),
# token node and token count of the word, word hash (bits of a uint64)
C_DPARENT = 12
C_DWID = 13
C_DTN = 14
C_DNT = 15
C_DHASH = 16
C_COLS = 17

# query columns: kind, state, word id, token node, tokens in the word
Q_WORD = 0  # word hash unknown: resolve the string to a word id (then score it)
Q_LM = 1  # (state, word id, eos) score missing
Q_PARTIAL = 2  # partial-word score missing (custom language models only)
Q_COLS = 6

# io slots
IO_T = 0
IO_NBEAMS = 1
IO_NTEXT = 2
IO_NFC = 3
IO_NTK = 4
IO_NQ = 5
IO_NEED = 6
IO_NOUT = 7
IO_RESUME = 8  # > 0: resume the stopped frame from its io[IO_RESUME] candidates
IO_COLS = 9

# answers of the resolver callback (0, what a failed ctypes callback returns, declines)
RESOLVE_DECLINED = 0  # not answered (or failed): return the queries to the caller
RESOLVE_DONE = 1  # queries answered in the tables the kernel holds: go on
RESOLVE_STALE = 2  # answered, but the tables were reallocated: return for the new ones

DEFER_SALT = np.uint64(0x5BD1E9955BD1E995)


@jit
def sum_log_scores(s1, s2):
    """log(exp(s1) + exp(s2)), in the same operation order as pyctcdecode."""
    if s1 >= s2:
        return s1 + math.log(1.0 + math.exp(s2 - s1))
    return s2 + math.log(1.0 + math.exp(s1 - s2))


@jit
def extend_hash(h, tok, tok_codes, tok_off):
    for p in range(tok_off[tok], tok_off[tok + 1]):
        h = fnv_extend(h, tok_codes[p])
    return h


@jit
def add_query(q, q_hash, io, kind, state, wid, tnode, ntok, h, eos):
    """Append a query unless the same one is pending already (same kind, state, word id,
    end-of-sentence flag and, for word texts, hash); dropped when ``q`` is full (it is asked
    again after the others are answered)."""
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
def lookup_word(word_keys, word_vals, h):
    """Word id of the word with hash ``h``, or -1 when the table does not know it yet."""
    slot = table_find(word_keys, h)
    if slot < 0:
        return -1
    return word_vals[slot]


@jit
def lookup_lm(lm_keys, lm_score, lm_next, state, wid, eos):
    """(score, next state) for ``wid`` after ``state``; next state -1 on a miss."""
    slot = table_find(lm_keys, pair_key(state * 2 + eos, wid))
    if slot < 0:
        return 0.0, -1
    nxt = lm_next[slot]
    sc = lm_score[slot]
    if nxt < 0 or sc != sc:
        return 0.0, -1
    return sc, nxt


@jit
def ng_word_score(
    parent, wid, eos, tn_i, w_info, ng_uni, ng_keys, ng_vals, ng_meta, ng_ctx, unk_offset, ng_ab
):
    """(weighted score, vocabulary id) of word ``wid`` after text node ``parent``, from the
    n-gram tables: the context is the words of the last ``order - 1`` nodes (their
    vocabulary ids are kept in ``N_STATE``), then ``<s>`` at the root. The arithmetic is
    that of the KenLM adapter: ``alpha * (log10 p + oov offset [+ log10 p(</s>)]) * ln 10 +
    beta``."""
    order = ng_meta[M_ORDER]
    n = 0
    cur = parent
    while n < order - 1:
        if cur <= 0:
            if ng_meta[M_BOS] >= 0:
                ng_ctx[n] = ng_meta[M_BOS]
                n += 1
            break
        ng_ctx[n] = tn_i[cur, N_STATE]
        n += 1
        cur = tn_i[cur, N_PARENT]
    info = w_info[wid]
    lmid = info >> 1
    s = np.float64(log10_prob(ng_ctx, n, lmid, ng_uni, ng_keys, ng_vals, ng_meta))
    if info & 1:
        s += unk_offset
    if eos and ng_meta[M_BOUNDARY]:
        n = push_word(ng_ctx, n, lmid, order - 1)
        s = s + np.float64(log10_prob(ng_ctx, n, ng_meta[M_EOS], ng_uni, ng_keys, ng_vals, ng_meta))
    return ng_ab[0] * s * LOG10_TO_LN + ng_ab[1], lmid


@jit
def child_text(
    parent,
    h,
    src_tnode,
    src_ntok,
    tn_i,
    tn_word,
    tn_hist,
    tn_lm,
    tt_keys,
    tt_vals,
    io,
    have_lm,
    n_hist,
    hw_weight,
    hw_word_keys,
    word_keys,
    word_vals,
    lm_keys,
    lm_score,
    lm_next,
    w_info,
    ng_uni,
    ng_keys,
    ng_vals,
    ng_meta,
    ng_ctx,
    unk_offset,
    ng_ab,
):
    """``(node, word id)`` for text ``parent`` + word ``h``; the node is created on first use.

    ``node`` is -1 while the word id or its LM score is not in the tables yet (``word id``
    -1 when the word itself is unknown); the caller decides whether to query it.
    """
    key = pair_key(parent, h)
    slot = table_slot_for_insert(tt_keys, key)
    if tt_keys[slot] == key:
        node = tt_vals[slot]
        if tn_i[node, N_PARENT] == parent and tn_word[node] == h:
            return node, -2
        slot = -1  # two pairs share a 64-bit key (practically never): keep the node private
    state = -1
    score = 0.0
    wid = -2
    if have_lm:
        wid = lookup_word(word_keys, word_vals, h)
        if ng_meta[M_ORDER] > 0:  # n-gram tables: scored here (every model word has an id)
            if wid < 0:
                wid = 1
            score, state = ng_word_score(
                parent,
                wid,
                0,
                tn_i,
                w_info,
                ng_uni,
                ng_keys,
                ng_vals,
                ng_meta,
                ng_ctx,
                unk_offset,
                ng_ab,
            )
        else:
            if wid < 0:
                return -1, -1
            score, state = lookup_lm(lm_keys, lm_score, lm_next, tn_i[parent, N_STATE], wid, 0)
            if state < 0:
                return -1, wid
    is_hw = 0
    if hw_word_keys.size > 1 and table_find(hw_word_keys, h) >= 0:
        is_hw = 1
    node = io[IO_NTEXT]
    io[IO_NTEXT] = node + 1
    tn_i[node, N_PARENT] = parent
    tn_i[node, N_STATE] = state
    tn_i[node, N_HW] = tn_i[parent, N_HW] + is_hw
    tn_i[node, N_NWORDS] = tn_i[parent, N_NWORDS] + 1
    tn_word[node] = h
    tn_lm[node] = tn_lm[parent] + score + hw_weight * is_hw
    # history key: hash of the last n_hist words (pyctcdecode's prune_history)
    hh = FNV_OFFSET
    cur = node
    for _ in range(n_hist):
        if cur <= 0:
            break
        hh = fnv_extend(hh ^ tn_word[cur], 0x2F)
        cur = tn_i[cur, N_PARENT]
    tn_hist[node] = hh
    if slot >= 0:
        tt_vals[slot] = node
        tt_keys[slot] = key
    return node, wid


@jit
def partial_score(
    plen,
    phash,
    have_lm,
    native_partial,
    have_unigrams,
    unk_offset,
    hw_weight,
    hw_pre_keys,
    hw_pre_minlen,
    pre_keys,
    part_keys,
    part_vals,
):
    """Score of the unfinished word; NaN when a custom LM's score is not cached yet."""
    if plen == 0:
        return 0.0
    if hw_pre_keys.size > 1:
        slot = table_find(hw_pre_keys, phash)
        if slot >= 0:
            return hw_weight * plen / hw_pre_minlen[slot]
    if not have_lm:
        return 0.0
    if native_partial:
        oov = 1.0
        if have_unigrams and table_find(pre_keys, phash) >= 0:
            oov = 0.0
        s = unk_offset * oov
        if plen > AVG_TOKEN_LEN:
            s = s * plen / AVG_TOKEN_LEN
        return s
    slot = table_find(part_keys, phash)
    if slot < 0:
        return np.nan
    return part_vals[slot]


@jit
def lm_beam_search(
    logp,
    tok_kind,
    tok_codes,
    tok_off,
    blank,
    beam_width,
    beam_prune_logp,
    token_min_logp,
    prune_history,
    n_hist,
    have_lm,
    native_partial,
    have_unigrams,
    unk_offset,
    hw_weight,
    n_unigrams,
    alpha_ln10,
    beta,
    word_keys,
    word_vals,
    lm_keys,
    lm_score,
    lm_next,
    pre_keys,
    part_keys,
    part_vals,
    w_info,
    ng_uni,
    ng_keys,
    ng_vals,
    ng_meta,
    ng_ab,
    hw_word_keys,
    hw_pre_keys,
    hw_pre_minlen,
    pc_keys,
    pc_vals,
    b_i,
    b_logit,
    b_phash,
    b_part,
    b_score,
    nb_i,
    nb_logit,
    nb_phash,
    nb_part,
    nb_score,
    tn_i,
    tn_word,
    tn_hist,
    tn_lm,
    tt_keys,
    tt_vals,
    fc,
    tk,
    cd_i,
    cd_logit,
    cd_score,
    cd_phash,
    cd_part,
    cd_last,
    mt_keys,
    mt_vals,
    q,
    q_hash,
    io,
    out_i,
    out_f,
    resolver,
    ctx,
    abort,
):
    """Run (or resume) the LM-fused beam search of one utterance from frame ``io[IO_T]``.

    ``logp`` is ``(T, C)`` float32/float64 log-probabilities; every other array is a
    workspace or table described in the module docstring and owned by the caller, who
    validates inputs. Returns a status code; on ``DONE`` the final beams, best first, are
    ``out_i[:io[IO_NOUT]]`` (columns: token node, word-frame node, last LM state, text node)
    and ``out_f`` (acoustic score, combined score).
    """
    T, C = logp.shape
    io[IO_NQ] = 0
    t0 = io[IO_T]
    ng_ctx = np.empty(max(ng_meta[M_ORDER], 1), dtype=np.int64)
    kept = np.empty(cd_i.shape[0], dtype=np.int64)
    hks = np.empty(cd_i.shape[0], dtype=np.uint64)
    used = np.empty(cd_i.shape[0], dtype=np.int64)
    vals = np.empty(cd_i.shape[0])  # scratch for order statistics of candidate scores
    t = t0
    while t < T:
        if t == t0 and io[IO_RESUME] > 0:
            # the frame's candidates are still in place from the call that stopped on it
            m = io[IO_RESUME]
            io[IO_RESUME] = 0
            _reattach_deferred(
                m,
                cd_i,
                tn_i,
                tn_word,
                tn_hist,
                tn_lm,
                tt_keys,
                tt_vals,
                io,
                have_lm,
                n_hist,
                hw_weight,
                hw_word_keys,
                word_keys,
                word_vals,
                lm_keys,
                lm_score,
                lm_next,
                w_info,
                ng_uni,
                ng_keys,
                ng_vals,
                ng_meta,
                ng_ctx,
                unk_offset,
                ng_ab,
            )
        else:
            if abort[0] != 0:  # polled once a frame: another thread asks the search to stop
                io[IO_T] = t
                return ABORTED
            nb = io[IO_NBEAMS]
            best = 0
            bv = logp[t, 0]
            for c in range(1, C):
                if logp[t, c] > bv:
                    bv = logp[t, c]
                    best = c
            nsel = 0
            for c in range(C):
                if logp[t, c] >= token_min_logp or c == best:
                    nsel += 1
            need = nsel * nb
            if need > cd_i.shape[0] or 2 * need > mt_keys.size:
                io[IO_T] = t
                io[IO_NEED] = need
                return GROW_CAND
            if io[IO_NTEXT] + need > tn_i.shape[0] or 2 * (io[IO_NTEXT] + need) > tt_keys.size:
                io[IO_T] = t
                io[IO_NEED] = io[IO_NTEXT] + need
                return GROW_TEXT
            pending = False
            m = 0
            for c in range(C):
                p = logp[t, c]
                if not (p >= token_min_logp or c == best):
                    continue
                kind = tok_kind[c]
                for i in range(nb):
                    last = b_i[i, B_LAST]
                    text = b_i[i, B_TEXT]
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
                                key = pair_key(text, phash)
                                tmask = tt_keys.size - 1
                                ts = np.int64(mix64(key) & np.uint64(tmask))
                                nt = -3
                                while True:
                                    tkey = tt_keys[ts]
                                    if tkey == key:
                                        node = tt_vals[ts]
                                        if tn_i[node, N_PARENT] == text and tn_word[node] == phash:
                                            nt = node
                                        break
                                    if tkey == 0:
                                        break
                                    ts = (ts + 1) & tmask
                                if nt == -3:
                                    nt, dwid = child_text(
                                        text,
                                        phash,
                                        b_i[i, B_TNODE],
                                        pntok,
                                        tn_i,
                                        tn_word,
                                        tn_hist,
                                        tn_lm,
                                        tt_keys,
                                        tt_vals,
                                        io,
                                        have_lm,
                                        n_hist,
                                        hw_weight,
                                        hw_word_keys,
                                        word_keys,
                                        word_vals,
                                        lm_keys,
                                        lm_score,
                                        lm_next,
                                        w_info,
                                        ng_uni,
                                        ng_keys,
                                        ng_vals,
                                        ng_meta,
                                        ng_ctx,
                                        unk_offset,
                                        ng_ab,
                                    )
                                if nt < 0:
                                    # deferred: scored by an upper bound, resolved only if it
                                    # could survive the pruning
                                    dparent = text
                                    dhash = phash
                                    dtn = b_i[i, B_TNODE]
                                    dnt = pntok
                                    text = DEFERRED
                                else:
                                    text = nt
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
                        # per-utterance cache of partial scores (hotwords are fixed per call)
                        ci = np.int64(phash & np.uint64(pc_keys.size - 1))
                        if pc_keys[ci] == phash:
                            ps = pc_vals[ci]
                        else:
                            ps = partial_score(
                                plen,
                                phash,
                                have_lm,
                                native_partial,
                                have_unigrams,
                                unk_offset,
                                hw_weight,
                                hw_pre_keys,
                                hw_pre_minlen,
                                pre_keys,
                                part_keys,
                                part_vals,
                            )
                            if ps == ps:
                                pc_vals[ci] = ps
                                pc_keys[ci] = phash
                        if ps != ps:
                            # custom LM: the part is the beam's last pntok - 1 tokens plus c
                            add_query(
                                q,
                                q_hash,
                                io,
                                Q_PARTIAL,
                                b_i[i, B_TNODE],
                                -1,
                                -2 - c,
                                pntok,
                                phash,
                                0,
                            )
                            pending = True
                            continue
                    logit = b_logit[i] + p
                    if text >= 0:
                        key = pair_key(pair_key(text, phash), c)
                    else:
                        key = pair_key(pair_key(pair_key(dparent, dhash) ^ DEFER_SALT, phash), c)
                    mmask = mt_keys.size - 1
                    slot = np.int64(mix64(key) & np.uint64(mmask))
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
                        cd_i[j, C_TEXT] = text
                        if text < 0:
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
            if pending:
                io[IO_T] = t
                if not _ask(resolver, ctx, io):
                    return PENDING
                continue  # answered: the frame is recomputed with the new scores
        while True:
            mx = -np.inf
            n_def = 0
            for j in range(m):
                if cd_i[j, C_TEXT] < 0:
                    n_def += cd_i[j, C_TEXT] == DEFERRED
                    continue
                sc = cd_logit[j] + tn_lm[cd_i[j, C_TEXT]] + cd_part[j]
                cd_score[j] = sc
                if sc > mx:
                    mx = sc
            if n_def == 0:
                break
            pending = _resolve_deferred(
                m,
                mx + beam_prune_logp,
                beam_width,
                cd_i,
                cd_logit,
                cd_score,
                cd_part,
                tn_i,
                tn_lm,
                have_unigrams,
                n_unigrams,
                unk_offset,
                alpha_ln10,
                beta,
                hw_weight,
                hw_word_keys,
                q,
                q_hash,
                io,
                vals,
            )
            if not pending:
                break
            io[IO_T] = t
            io[IO_RESUME] = m
            if not _ask(resolver, ctx, io):
                return PENDING
            io[IO_RESUME] = 0
            _reattach_deferred(
                m,
                cd_i,
                tn_i,
                tn_word,
                tn_hist,
                tn_lm,
                tt_keys,
                tt_vals,
                io,
                have_lm,
                n_hist,
                hw_weight,
                hw_word_keys,
                word_keys,
                word_vals,
                lm_keys,
                lm_score,
                lm_next,
                w_info,
                ng_uni,
                ng_keys,
                ng_vals,
                ng_meta,
                ng_ctx,
                unk_offset,
                ng_ab,
            )
        n_new = _select_and_commit(
            t,
            m,
            mx + beam_prune_logp,
            beam_width,
            prune_history,
            cd_i,
            cd_logit,
            cd_score,
            cd_phash,
            cd_part,
            mt_keys,
            mt_vals,
            tn_hist,
            b_i,
            b_logit,
            b_phash,
            b_part,
            b_score,
            nb_i,
            nb_logit,
            nb_phash,
            nb_part,
            nb_score,
            fc,
            tk,
            io,
            kept,
            hks,
            used,
            vals,
        )
        io[IO_NBEAMS] = n_new
        t += 1
    io[IO_T] = T
    while True:
        status = _finish(
            have_lm,
            hw_weight,
            hw_word_keys,
            beam_width,
            beam_prune_logp,
            word_keys,
            word_vals,
            lm_keys,
            lm_score,
            lm_next,
            w_info,
            ng_uni,
            ng_keys,
            ng_vals,
            ng_meta,
            ng_ctx,
            unk_offset,
            ng_ab,
            b_i,
            b_logit,
            b_phash,
            b_score,
            tn_i,
            tn_lm,
            tt_keys,
            tt_vals,
            tn_word,
            fc,
            cd_i,
            cd_logit,
            cd_score,
            cd_part,
            cd_last,
            mt_keys,
            mt_vals,
            q,
            q_hash,
            io,
            out_i,
            out_f,
        )
        if status != PENDING or not _ask(resolver, ctx, io):
            return status


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


@jit
def _reattach_deferred(
    m,
    cd_i,
    tn_i,
    tn_word,
    tn_hist,
    tn_lm,
    tt_keys,
    tt_vals,
    io,
    have_lm,
    n_hist,
    hw_weight,
    hw_word_keys,
    word_keys,
    word_vals,
    lm_keys,
    lm_score,
    lm_next,
    w_info,
    ng_uni,
    ng_keys,
    ng_vals,
    ng_meta,
    ng_ctx,
    unk_offset,
    ng_ab,
):
    """Give deferred candidates whose LM score is now cached their text node.

    Candidates are visited in creation order, as recomputing the frame would visit them, so
    nodes get the same ids; deferred candidates merged by (parent, word), which is what
    merging by their text node does. The rest stays deferred with a refreshed word id.
    """
    for j in range(m):
        if cd_i[j, C_TEXT] != DEFERRED:
            continue
        node, wid = child_text(
            cd_i[j, C_DPARENT],
            np.uint64(cd_i[j, C_DHASH]),
            cd_i[j, C_DTN],
            cd_i[j, C_DNT],
            tn_i,
            tn_word,
            tn_hist,
            tn_lm,
            tt_keys,
            tt_vals,
            io,
            have_lm,
            n_hist,
            hw_weight,
            hw_word_keys,
            word_keys,
            word_vals,
            lm_keys,
            lm_score,
            lm_next,
            w_info,
            ng_uni,
            ng_keys,
            ng_vals,
            ng_meta,
            ng_ctx,
            unk_offset,
            ng_ab,
        )
        if node >= 0:
            cd_i[j, C_TEXT] = node
        else:
            cd_i[j, C_DWID] = wid


@jit
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


@jit
def _resolve_deferred(
    m,
    thr,
    beam_width,
    cd_i,
    cd_logit,
    cd_score,
    cd_part,
    tn_i,
    tn_lm,
    have_unigrams,
    n_unigrams,
    unk_offset,
    alpha_ln10,
    beta,
    hw_weight,
    hw_word_keys,
    q,
    q_hash,
    io,
    vals,
):
    """Bound each deferred word completion from above; query those that could survive.

    KenLM's log10 probabilities are <= 0 (a margin of 0.5 is allowed), and a word outside
    the unigrams carries ``unk_score_offset``, so a completion scores at most
    ``acoustic + LM(parent) + alpha*ln10*(0.5 + offset) + beta (+ hotword)``. One whose bound is
    below the pruning threshold, or below ``beam_width`` scored candidates, cannot survive
    whatever its LM score: it is dropped (score -inf) without a query, which leaves the
    result exactly as if it had been scored. Returns whether queries were added.
    """
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
        if alpha_ln10 == alpha_ln10:  # NaN: no bound available (custom model or alpha < 0)
            if wid < 0:
                oov = unk_offset if have_unigrams else max(unk_offset, 0.0)
            elif wid <= 1 or (wid >= 2 + n_unigrams and have_unigrams):
                oov = unk_offset
            else:
                oov = 0.0
            ub = alpha_ln10 * (0.5 + oov) + beta
            if hw_word_keys.size > 1 and table_find(hw_word_keys, h) >= 0:
                ub += hw_weight
        ub += cd_logit[j] + tn_lm[parent] + cd_part[j]
        cd_score[j] = -np.inf
        if kth != kth and ub >= thr:
            kth = _kth_scored(m, beam_width, cd_i, cd_score, vals)
        if ub < thr or kth > ub:  # pruned, or beam_width scored candidates beat even the bound
            # final for this frame: answers to other queries only raise both thresholds
            cd_i[j, C_TEXT] = DROPPED
            continue
        pstate = tn_i[parent, N_STATE]
        if wid < 0:
            add_query(q, q_hash, io, Q_WORD, pstate, -1, cd_i[j, C_DTN], cd_i[j, C_DNT], h, 0)
        else:
            add_query(q, q_hash, io, Q_LM, pstate, wid, cd_i[j, C_DTN], cd_i[j, C_DNT], h, 0)
        pending = True
    return pending


@jit
def sort_desc(idx, n, score, tmp):
    """Stable sort of ``idx[:n]`` by decreasing ``score[idx]`` (ties keep their order);
    insertion sort of runs of 16, then bottom-up merging through ``tmp``."""
    run = 16
    for lo in range(0, n, run):
        hi = min(lo + run, n)
        for a in range(lo + 1, hi):
            x = idx[a]
            sx = score[x]
            b = a - 1
            while b >= lo and score[idx[b]] < sx:
                idx[b + 1] = idx[b]
                b -= 1
            idx[b + 1] = x
    width = run
    in_tmp = False
    while width < n:
        src = tmp if in_tmp else idx
        dst = idx if in_tmp else tmp
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
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
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        for a in range(n):
            idx[a] = tmp[a]


@jit
def _select_and_commit(
    t,
    m,
    thr,
    beam_width,
    prune_history,
    cd_i,
    cd_logit,
    cd_score,
    cd_phash,
    cd_part,
    mt_keys,
    mt_vals,
    tn_hist,
    b_i,
    b_logit,
    b_phash,
    b_part,
    b_score,
    nb_i,
    nb_logit,
    nb_phash,
    nb_part,
    nb_score,
    fc,
    tk,
    io,
    kept,
    hks,
    used,
    vals,
):
    """Keep candidates >= ``thr``, then the best ``beam_width`` (ties: first candidates),
    then (``prune_history``) the best per history key; commit them as the new beams.

    The beams are not sorted: pyctcdecode's order only decides ties and which merged path
    supplies the frames, and the kernel decides the latter by score (see the merge).
    """
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
            hk = pair_key(pair_key(tn_hist[cd_i[j, C_TEXT]], cd_phash[j]), cd_i[j, C_LAST])
            hks[a] = hk
            slot = table_slot_for_insert(mt_keys, hk)
            if mt_keys[slot] == hk:
                w = mt_vals[slot]
                if cd_score[j] > cd_score[w]:
                    mt_vals[slot] = j
            else:
                mt_vals[slot] = j
                mt_keys[slot] = hk
                used[n_used] = slot
                n_used += 1
    n_new = 0
    for a in range(nk):
        j = kept[a]
        if prune_history:
            if mt_vals[table_find(mt_keys, hks[a])] != j:
                continue
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
        nb_i[n_new, B_TEXT] = cd_i[j, C_TEXT]
        nb_i[n_new, B_PLEN] = cd_i[j, C_PLEN]
        nb_i[n_new, B_PNTOK] = cd_i[j, C_PNTOK]
        nb_i[n_new, B_LAST] = cd_i[j, C_LAST]
        nb_i[n_new, B_PSTART] = cd_i[j, C_PSTART]
        nb_i[n_new, B_PEND] = cd_i[j, C_PEND]
        nb_i[n_new, B_FNODE] = fnode
        nb_i[n_new, B_TNODE] = tnode
        nb_logit[n_new] = cd_logit[j]
        nb_phash[n_new] = cd_phash[j]
        nb_part[n_new] = cd_part[j]
        nb_score[n_new] = cd_score[j]
        n_new += 1
    for a in range(n_used):
        mt_keys[used[a]] = 0
    for a in range(n_new):
        for col in range(B_COLS):
            b_i[a, col] = nb_i[a, col]
        b_logit[a] = nb_logit[a]
        b_phash[a] = nb_phash[a]
        b_part[a] = nb_part[a]
        b_score[a] = nb_score[a]
    return n_new


@jit
def _finish(
    have_lm,
    hw_weight,
    hw_word_keys,
    beam_width,
    beam_prune_logp,
    word_keys,
    word_vals,
    lm_keys,
    lm_score,
    lm_next,
    w_info,
    ng_uni,
    ng_keys,
    ng_vals,
    ng_meta,
    ng_ctx,
    unk_offset,
    ng_ab,
    b_i,
    b_logit,
    b_phash,
    b_score,
    tn_i,
    tn_lm,
    tt_keys,
    tt_vals,
    tn_word,
    fc,
    cd_i,
    cd_logit,
    cd_score,
    cd_part,
    cd_last,
    mt_keys,
    mt_vals,
    q,
    q_hash,
    io,
    out_i,
    out_f,
):
    """Final step: complete each beam's last word, add end-of-sentence LM scores, rank.

    As pyctcdecode, a beam without an unfinished word is scored with the empty word (an
    unknown word to KenLM) before the sentence end; beams that yield the same text merge.
    """
    nb = io[IO_NBEAMS]
    pending = False
    m = 0
    for i in range(nb):
        text = b_i[i, B_TEXT]
        plen = b_i[i, B_PLEN]
        phash = b_phash[i]
        if plen > 0:
            slot = table_find(tt_keys, pair_key(text, phash))
            node = -1
            if slot >= 0:
                node = tt_vals[slot]
                if not (tn_i[node, N_PARENT] == text and tn_word[node] == phash):
                    node = -1
            if node >= 0:
                key = pair_key(node, 0)
            else:
                key = pair_key(pair_key(text, phash), 1)
        else:
            key = pair_key(text, 0)
        state = -1
        score = 0.0
        if have_lm and ng_meta[M_ORDER] > 0:
            wid = 0
            if plen > 0:
                wid = max(lookup_word(word_keys, word_vals, phash), 1)
            score, state = ng_word_score(
                text,
                wid,
                1,
                tn_i,
                w_info,
                ng_uni,
                ng_keys,
                ng_vals,
                ng_meta,
                ng_ctx,
                unk_offset,
                ng_ab,
            )
        elif have_lm:
            pstate = tn_i[text, N_STATE]
            wid = 0
            if plen > 0:
                wid = lookup_word(word_keys, word_vals, phash)
                if wid < 0:
                    add_query(
                        q,
                        q_hash,
                        io,
                        Q_WORD,
                        pstate,
                        -1,
                        b_i[i, B_TNODE],
                        b_i[i, B_PNTOK],
                        phash,
                        1,
                    )
                    pending = True
                    continue
            score, state = lookup_lm(lm_keys, lm_score, lm_next, pstate, wid, 1)
            if state < 0:
                add_query(
                    q, q_hash, io, Q_LM, pstate, wid, b_i[i, B_TNODE], b_i[i, B_PNTOK], phash, 1
                )
                pending = True
                continue
        is_hw = 0
        if plen > 0 and hw_word_keys.size > 1 and table_find(hw_word_keys, phash) >= 0:
            is_hw = 1
        lmhw = tn_lm[text] + score + hw_weight * is_hw
        slot = table_slot_for_insert(mt_keys, key)
        if mt_keys[slot] == key:
            j = mt_vals[slot]
            cd_logit[j] = sum_log_scores(cd_logit[j], b_logit[i])
            if b_logit[i] > cd_part[j]:
                cd_part[j] = b_logit[i]
                cd_i[j, C_PNTOK] = b_i[i, B_TNODE]
            if b_score[i] > cd_last[j]:
                continue
        else:
            j = m
            m += 1
            mt_vals[slot] = j
            mt_keys[slot] = key
            cd_i[j, C_SLOT] = slot
            cd_logit[j] = b_logit[i]
            cd_i[j, C_PNTOK] = b_i[i, B_TNODE]  # tokens of the best merged path
            cd_part[j] = b_logit[i]
        cd_last[j] = b_score[i]
        cd_i[j, C_SRC] = i
        cd_i[j, C_TEXT] = state
        cd_score[j] = lmhw
    for j in range(m):
        mt_keys[cd_i[j, C_SLOT]] = 0
    if pending:
        return PENDING
    mx = -np.inf
    for j in range(m):
        cd_score[j] += cd_logit[j]
        if cd_score[j] > mx:
            mx = cd_score[j]
    thr = mx + beam_prune_logp
    kept = np.empty(m, dtype=np.int64)
    tmp = np.empty(m, dtype=np.int64)
    nk = 0
    for j in range(m):
        if cd_score[j] >= thr:
            kept[nk] = j
            nk += 1
    sort_desc(kept, nk, cd_score, tmp)
    n_out = min(nk, beam_width)
    for a in range(n_out):
        j = kept[a]
        i = cd_i[j, C_SRC]
        fnode = b_i[i, B_FNODE]
        if b_i[i, B_PLEN] > 0:
            k = io[IO_NFC]
            io[IO_NFC] = k + 1
            fc[k, 0] = fnode
            fc[k, 1] = b_i[i, B_PSTART]
            fc[k, 2] = b_i[i, B_PEND]
            fnode = k
        out_i[a, 0] = cd_i[j, C_PNTOK]
        out_i[a, 1] = fnode
        out_i[a, 2] = cd_i[j, C_TEXT]
        out_i[a, 3] = b_i[i, B_TEXT]
        out_f[a, 0] = cd_logit[j]
        out_f[a, 1] = cd_score[j]
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


@jit
def rebuild_text_table(tn_i, tn_word, n_used, tt_keys, tt_vals):
    """Re-insert text nodes ``1..n_used-1`` into an empty (parent, word) table."""
    for node in range(1, n_used):
        key = pair_key(tn_i[node, N_PARENT], tn_word[node])
        slot = table_slot_for_insert(tt_keys, key)
        if tt_keys[slot] == 0:
            tt_vals[slot] = node
            tt_keys[slot] = key
