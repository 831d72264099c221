"""Lexicon-constrained CTC beam search with a word n-gram model, without the GIL.

A hypothesis is a path through a character trie of the lexicon's spellings: each label adds
its characters to the word in progress, which must stay a prefix of some spelling, and a
word ends where the next word begins (a delimiter label, a ``▁`` piece, or the end of the
utterance). A finished word is scored by the n-gram model; an unfinished one carries the
best unigram score reachable below its trie node (the look-ahead, ``la``), replaced by the
word's real score when it ends. Hypotheses that agree on the LM state, the trie node, the
last label and whether a blank followed it have the same future and are merged, keeping the
better one's history and either its score (``log_add`` off) or the log-sum of both.

Scores are natural logs: acoustic log-probabilities plus ``alpha * ln(10) * log10 P`` per
word, ``beta`` per word, ``unk_score`` per out-of-lexicon word (a trie prefix that is no
spelling; ``-inf`` forbids them), ``sil_score`` per delimiter between words, and the
hotword bonus of each hotword.

Arrays
------
* :class:`Trie`: ``keys``/``child`` map ``pair_key(node, code point)`` to the child node;
  per node, ``parent``, ``code`` (its last character) and ``word`` (lexicon word index or
  -1). Node 0 is the root; a child's index is larger than its parent's.
* :class:`LexWords`: per lexicon word, its vocabulary id in the n-gram tables (0 is
  ``<unk>``), whether the model lacks it (scored as ``<unk>`` plus ``unk_offset``, in log10,
  as pyctcdecode scores such words) and its hotword bonus.
* A hypothesis' path is a chain of new labels (``chain`` rows, ``H_*`` columns): its parent
  row, the label, its first frame, and the word it finished, if any, with that word's
  first and last frames.
"""

from collections import namedtuple

import numpy as np

from ._jit import jit
from .lm_cache import EMPTY_KEY, FNV_OFFSET, fix_key, fnv_extend, mix64, pair_key, table_find
from .lm_state import K_BPE_START, K_NORMAL, K_SPACE
from .ngram import M_BOS, M_BOUNDARY, M_EOS, M_ORDER, log10_prob_matched

Trie = namedtuple("Trie", ["keys", "child", "parent", "code", "word"])
LexWords = namedtuple("LexWords", ["vocab", "oov", "bonus"])
LexParams = namedtuple(
    "LexParams",
    [
        "blank",
        "beam_width",
        "beam_prune_logp",
        "token_min_logp",
        "alpha_ln10",
        "beta",
        "unk_offset",
        "unk_score",
        "sil_score",
        "log_add",
    ],
)

#: Statuses of :func:`lexicon_search`.
LEX_DONE = 0
LEX_ABORTED = 1

#: Word codes in a chain row: -1 none; >= 0 a lexicon word; <= -2 an out-of-lexicon word
#: spelled to trie node ``-2 - code``.
NO_WORD = -1

#: Chain columns.
H_PARENT = 0
H_LABEL = 1
H_FRAME = 2
H_WORD = 3
H_WSTART = 4
H_WEND = 5
H_COLS = 6

#: Hypothesis (and candidate) integer columns.
S_NODE = 0  # trie node of the word in progress (0: none)
S_LAST = 1  # last label of the path, blank excluded (-1: none yet)
S_BLANK = 2  # 1: a blank followed it
S_CHAIN = 3  # chain row of the last new label (-1: none)
S_WSTART = 4  # first frame of the word in progress
S_WEND = 5  # frame after its last label
S_NCTX = 6  # words in the LM state
S_NEWLAB = 7  # candidates: 1 when the label is a new one (a chain row is added)
S_WORD = 8  # candidates: the word a new label finished (NO_WORD: none)
S_FSTART = 9  # its first frame
S_FEND = 10  # the frame after its last label
S_COLS = 11

#: Output columns: chain row, the word finished at the end, its frames, LM state length.
X_CHAIN = 0
X_WORD = 1
X_WSTART = 2
X_WEND = 3
X_NCTX = 4
X_COLS = 5


# ------------------------------------------------------------------------------ the trie
@jit
def trie_find(keys, child, node, code):
    """Child of ``node`` along code point ``code``, or -1."""
    slot = table_find(keys, pair_key(node, code))
    if slot < 0:
        return -1
    return child[slot]


@jit
def build_trie(codes, offsets, word_of, cap):
    """The trie of the spellings ``codes[offsets[i]:offsets[i + 1]]`` (spelling ``i`` spells
    lexicon word ``word_of[i]``; the first spelling to reach a node names its word).

    ``cap`` is a power of two larger than twice the number of nodes. Returns
    ``(keys, child, parent, code, word, n_nodes)``; the node arrays have ``n_nodes`` rows.
    """
    keys = np.zeros(cap, dtype=np.uint64)
    child = np.zeros(cap, dtype=np.int32)
    n_max = codes.size + 1
    parent = np.empty(n_max, dtype=np.int32)
    code = np.empty(n_max, dtype=np.int64)
    word = np.full(n_max, -1, dtype=np.int32)
    parent[0] = -1
    code[0] = -1
    n = 1
    mask = cap - 1
    for i in range(offsets.size - 1):
        node = 0
        for p in range(offsets[i], offsets[i + 1]):
            key = pair_key(node, codes[p])
            slot = np.int64(mix64(key) & np.uint64(mask))
            while keys[slot] != EMPTY_KEY and keys[slot] != key:
                slot = (slot + 1) & mask
            if keys[slot] == key:
                node = child[slot]
                continue
            keys[slot] = key
            child[slot] = n
            parent[n] = node
            code[n] = codes[p]
            node = n
            n += 1
        if node > 0 and word[node] < 0:
            word[node] = word_of[i]
    return keys, child, parent[:n].copy(), code[:n].copy(), word[:n].copy(), n


@jit
def look_ahead(trie, words, uni, order, alpha_ln10, unk_offset, out):
    """``out[n]``: the best weighted unigram score (plus hotword bonus) of the words at or
    below trie node ``n``; ``-inf`` where there is none. The root's entry is 0."""
    n_nodes = trie.parent.size
    for n in range(n_nodes):
        out[n] = -np.inf
        w = trie.word[n]
        if w >= 0:
            s = words.bonus[w]
            if order > 0:
                u = np.float64(uni[words.vocab[w], 0])
                if words.oov[w]:
                    u += unk_offset
                s += alpha_ln10 * u
            out[n] = s
    for n in range(n_nodes - 1, 0, -1):
        p = trie.parent[n]
        if out[n] > out[p]:
            out[p] = out[n]
    out[0] = 0.0


@jit(inline="always")
def _walk(keys, child, node, codes, lo, hi):
    """The node reached from ``node`` along ``codes[lo:hi]`` (trie ``keys``/``child``), or
    -1."""
    for p in range(lo, hi):
        node = trie_find(keys, child, node, codes[p])
        if node < 0:
            return -1
    return node


# ------------------------------------------------------------------------------ LM states
@jit(inline="always")
def _ctx_hash(ctx, row, nctx):
    """Hash of the LM state ``ctx[row, :nctx]``."""
    h = fnv_extend(FNV_OFFSET, nctx)
    for j in range(nctx):
        h = fnv_extend(h, ctx[row, j])
    return fix_key(h)


#: A direct-mapped cache of the search's n-gram lookups: ``keys`` (pair key of the state's
#: hash and the word), ``p`` (log10 probability) and ``matched`` (see
#: :func:`fastctc.kernels.ngram.log10_prob_matched`).
Memo = namedtuple("Memo", ["keys", "p", "matched"])


@jit
def _lm_lookup(ctx, nctx, h, vocab, ngrams, memo):
    """:func:`log10_prob_matched` of ``vocab`` after the state ``ctx[:nctx]`` (hash ``h``),
    through ``memo`` (only a miss reads ``ctx``)."""
    key = pair_key(h, vocab)
    slot = np.int64(key & np.uint64(memo.keys.size - 1))
    if memo.keys[slot] == key:
        return memo.p[slot], memo.matched[slot]
    p, matched = log10_prob_matched(
        ctx, nctx, vocab, ngrams.uni, ngrams.keys, ngrams.vals, ngrams.meta
    )
    memo.keys[slot] = key
    memo.p[slot] = p
    memo.matched[slot] = matched
    return p, matched


@jit
def _finish_word(node, ctx, row, nctx, h, out_ctx, trie, words, ngrams, params, memo):
    """Score the word spelled to trie ``node`` after the LM state ``ctx[row, :nctx]``
    (hash ``h``).

    Returns ``(ok, score, new state length, word code)`` and writes the new state to
    ``out_ctx[0]``; ``ok`` is False for a prefix that is no word when out-of-lexicon words are
    forbidden. The score replaces the node's look-ahead (the caller subtracts it)."""
    w = trie.word[node]
    if w >= 0:
        extra = params.beta + words.bonus[w]
        vocab = words.vocab[w]
        code = w
        oov = words.oov[w]
    else:
        if params.unk_score == -np.inf:
            return False, 0.0, 0, NO_WORD
        extra = params.beta + params.unk_score
        vocab = 0
        code = -2 - node
        oov = False
    meta = ngrams.meta
    order = meta[M_ORDER]
    if order == 0:
        return True, extra, 0, code
    p, matched = _lm_lookup(ctx[row], nctx, h, vocab, ngrams, memo)
    s = np.float64(p)
    if oov:
        s += params.unk_offset
    keep = min(matched, out_ctx.shape[1])
    for j in range(keep - 1, 0, -1):
        out_ctx[0, j] = ctx[row, j - 1]
    out_ctx[0, 0] = vocab
    return True, params.alpha_ln10 * s + extra, keep, code


@jit
def _end_score(ctx, nctx, ngrams, params):  # ctx: one state, 1-D
    """Weighted ``log P(</s> | state)`` when the model scores sentence ends, else 0."""
    meta = ngrams.meta
    if meta[M_ORDER] == 0 or not meta[M_BOUNDARY]:
        return 0.0
    p, _ = log10_prob_matched(ctx, nctx, meta[M_EOS], ngrams.uni, ngrams.keys, ngrams.vals, meta)
    return params.alpha_ln10 * np.float64(p)


# ------------------------------------------------------------------------------ candidates
#: A frame's candidates: integer columns ``i`` (``S_*``), ``f`` (score, acoustic score), the
#: LM state ``ctx`` and its hash ``h``; the merge table ``keys`` -> ``slot`` (candidate
#: index), the table slots ``used`` by each candidate (cleared after the frame), and
#: scratch for the candidate being built: its columns ``ti``, LM state ``tctx`` (one row)
#: and scores ``sc``.
Cands = namedtuple("Cands", ["i", "f", "ctx", "h", "keys", "slot", "used", "ti", "tctx", "sc"])
#: Hypotheses: the same columns as candidates (the first ``S_NEWLAB`` are read).
Hyps = namedtuple("Hyps", ["i", "f", "ctx", "h"])


@jit(inline="always")
def _log_add(a, b):
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return a + np.log1p(np.exp(b - a))
    return b + np.log1p(np.exp(a - b))


@jit(_nrt=False)
def _commit(c_i, c_f, c_ctx, c_h, m_keys, m_slot, used, n, ti, sc, src, row, h, log_add):
    """Add the staged candidate (columns ``ti``, score and acoustic score ``sc``, LM state
    ``src[row]`` with hash ``h``) to the ``n`` candidates, or merge it into the one with the
    same LM state, trie node, last label and blank flag; returns the number of candidates.

    The arrays are a :class:`Cands`' fields, passed one by one: in the frame's inner loop,
    taking them from the bundle would count a reference each time."""
    nctx = ti[S_NCTX]
    key = pair_key(pair_key(h, ti[S_NODE]), ti[S_LAST] * 2 + ti[S_BLANK] + 2)
    mask = m_keys.size - 1
    slot = np.int64(mix64(key) & np.uint64(mask))
    j = -1
    while True:
        k = m_keys[slot]
        if k == EMPTY_KEY:
            break
        if k == key:
            q = m_slot[slot]
            same = c_i[q, S_NCTX] == nctx
            for w in range(nctx):
                if c_ctx[q, w] != src[row, w]:
                    same = False
            if same:
                j = q
                break
        slot = (slot + 1) & mask
    score = sc[0]
    if j >= 0:
        old = c_f[j, 0]
        c_f[j, 0] = _log_add(old, score) if log_add else max(old, score)
        if score <= old:
            return n
        # the new path is the better one: its fields replace the candidate's
    else:
        m_keys[slot] = key
        m_slot[slot] = n
        used[n] = slot
        j = n
        n += 1
        c_f[j, 0] = score
    for c in range(S_COLS):
        c_i[j, c] = ti[c]
    for w in range(nctx):
        c_ctx[j, w] = src[row, w]
    c_f[j, 1] = sc[1]
    c_h[j] = h
    return n


@jit(inline="always")
def _stage(ti, h_i, b):
    """Stage a candidate that continues hypothesis ``b`` unchanged: its columns, no new
    label, no finished word."""
    for c in range(S_NEWLAB):
        ti[c] = h_i[b, c]
    ti[S_NEWLAB] = 0
    ti[S_WORD] = NO_WORD
    ti[S_FSTART] = -1
    ti[S_FEND] = -1


# ------------------------------------------------------------------------------ the search
@jit(_nrt=False)
def _expand_frame(
    row, t, cand_labels, n_lab, tokens, trie, la, words, ngrams, params, hy, nh, cd, memo
):
    """Every candidate of the ``nh`` hypotheses at frame ``t`` (log-probabilities ``row``,
    labels tried ``cand_labels[:n_lab]``), merged; returns the number of candidates.

    Candidates below the frame's best so far plus ``beam_prune_logp`` cannot survive the
    frame and are not added. The bundles are unpacked once, here: the inner loops work on
    plain arrays. Compiled without reference counting (it allocates nothing, and counting
    the arrays it passes around took a third of the search's time)."""
    h_i, h_f, h_ctx, h_h = hy.i, hy.f, hy.ctx, hy.h
    c_i, c_f, c_ctx, c_h = cd.i, cd.f, cd.ctx, cd.h
    m_keys, m_slot, used = cd.keys, cd.slot, cd.used
    t_keys, t_child = trie.keys, trie.child
    kinds, codes, offsets = tokens.kind, tokens.codes, tokens.offsets
    log_add = params.log_add
    prune = params.beam_prune_logp
    blank = params.blank
    ti, tctx, sc = cd.ti, cd.tctx, cd.sc
    best = -np.inf
    n = 0
    for b in range(nh):
        s = h_f[b, 0]
        am = h_f[b, 1]
        node = h_i[b, S_NODE]
        last = h_i[b, S_LAST]
        blank_after = h_i[b, S_BLANK]
        nctx = h_i[b, S_NCTX]
        h = h_h[b]
        _stage(ti, h_i, b)
        # a blank: same state, blank flag set
        p = row[blank]
        if s + p >= best + prune:
            best = max(best, s + p)
            ti[S_BLANK] = 1
            sc[0] = s + p
            sc[1] = am + p
            n = _commit(c_i, c_f, c_ctx, c_h, m_keys, m_slot, used, n, ti, sc, h_ctx, b, h, log_add)
            ti[S_BLANK] = blank_after
        # the last label again, merged into it
        if last >= 0 and not blank_after:
            p = row[last]
            if s + p >= best + prune:
                best = max(best, s + p)
                if kinds[last] != K_SPACE:
                    ti[S_WEND] = t + 1
                sc[0] = s + p
                sc[1] = am + p
                n = _commit(
                    c_i, c_f, c_ctx, c_h, m_keys, m_slot, used, n, ti, sc, h_ctx, b, h, log_add
                )
                ti[S_WEND] = h_i[b, S_WEND]
        la_here = la[node]
        for r in range(n_lab):
            c = cand_labels[r]
            if c == last and not blank_after:
                continue
            p = row[c]
            base = s + p
            kind = kinds[c]
            if kind == K_NORMAL and node > 0 and base < best + prune:
                continue  # going deeper into the trie only lowers the look-ahead
            start = node
            word = NO_WORD
            new_nctx = nctx
            if kind == K_SPACE or kind == K_BPE_START:
                if node > 0:  # the word in progress ends here
                    ok, ws, new_nctx, word = _finish_word(
                        node, h_ctx, b, nctx, h, tctx, trie, words, ngrams, params, memo
                    )
                    if not ok:
                        continue
                    base += ws - la_here
                elif kind == K_SPACE:
                    base += params.sil_score
                start = 0
            nxt = _walk(t_keys, t_child, start, codes, offsets[c], offsets[c + 1])
            if nxt < 0:
                continue
            if nxt > 0:
                base += la[nxt] - (la[start] if start > 0 else 0.0)
            if base < best + prune:
                continue
            best = max(best, base)
            ti[S_NODE] = nxt
            ti[S_LAST] = c
            ti[S_BLANK] = 0
            ti[S_NCTX] = new_nctx
            ti[S_NEWLAB] = 1
            ti[S_WORD] = word
            if word != NO_WORD:
                ti[S_FSTART] = h_i[b, S_WSTART]
                ti[S_FEND] = h_i[b, S_WEND]
            if kind != K_SPACE:
                if start == 0:
                    ti[S_WSTART] = t
                ti[S_WEND] = t + 1
            sc[0] = base
            sc[1] = am + p
            if word == NO_WORD:
                n = _commit(
                    c_i, c_f, c_ctx, c_h, m_keys, m_slot, used, n, ti, sc, h_ctx, b, h, log_add
                )
            else:
                n = _commit(
                    c_i,
                    c_f,
                    c_ctx,
                    c_h,
                    m_keys,
                    m_slot,
                    used,
                    n,
                    ti,
                    sc,
                    tctx,
                    0,
                    _ctx_hash(tctx, 0, new_nctx),
                    log_add,
                )
            _stage(ti, h_i, b)  # back to the hypothesis' own columns for the next label
    return n


@jit
def _select(f, n, k, prune, order, scratch):
    """Indices (into ``order``) of the at most ``k`` best of the ``n`` candidate scores
    ``f[:n, 0]`` within ``prune`` of the best, in candidate order; returns how many."""
    best = -np.inf
    for j in range(n):
        if f[j, 0] > best:
            best = f[j, 0]
    if best == -np.inf:
        return 0
    floor = best + prune
    m = 0
    for j in range(n):
        if f[j, 0] >= floor and f[j, 0] > -np.inf:
            scratch[m] = f[j, 0]
            order[m] = j
            m += 1
    if m <= k:
        return m
    kth = np.partition(scratch[:m], m - k)[m - k]
    above = 0
    for j in range(m):
        if scratch[j] > kth:
            above += 1
    ties = k - above
    q = 0
    for j in range(m):
        sc = scratch[j]
        if sc > kth or (sc == kth and ties > 0):
            if sc == kth:
                ties -= 1
            order[q] = order[j]
            q += 1
    return q


@jit
def _grow(chain, need):
    cap = chain.shape[0]
    if need <= cap:
        return chain
    while cap < need:
        cap *= 2
    out = np.empty((cap, H_COLS), dtype=np.int32)
    out[: chain.shape[0]] = chain
    return out


@jit
def lexicon_search(logp, tokens, trie, la, words, ngrams, params, chain, abort):
    """Beam search ``logp`` (``(T, C)`` log-probabilities) along the lexicon trie.

    Returns ``(status, n, out_i, out_f, out_ctx, chain)``: the ``n`` final hypotheses, best
    first (``X_*`` columns; ``out_f`` is (score, acoustic score); ``out_ctx`` their LM
    states) and the chain their rows point into (grown from ``chain`` when needed).
    ``status`` is ``LEX_ABORTED`` when ``abort[0]`` was set (then ``n`` is 0).
    """
    T, C = logp.shape
    K = params.beam_width
    width = max(ngrams.meta[M_ORDER] - 1, 1)
    per_hyp = C + 2
    cap = K * per_hyp
    tcap = 1
    while tcap < 2 * cap:
        tcap *= 2
    cd = Cands(
        np.empty((cap, S_COLS), dtype=np.int64),
        np.empty((cap, 2)),
        np.empty((cap, width), dtype=np.int64),
        np.empty(cap, dtype=np.uint64),
        np.zeros(tcap, dtype=np.uint64),
        np.empty(tcap, dtype=np.int64),
        np.empty(cap, dtype=np.int64),
        np.empty(S_COLS, dtype=np.int64),
        np.empty((1, width), dtype=np.int64),
        np.empty(2),
    )
    hy = Hyps(
        np.zeros((K, S_COLS), dtype=np.int64),
        np.zeros((K, 2)),
        np.zeros((K, width), dtype=np.int64),
        np.zeros(K, dtype=np.uint64),
    )
    nh = 1
    hy.i[0, S_NODE] = 0
    hy.i[0, S_LAST] = -1
    hy.i[0, S_BLANK] = 0
    hy.i[0, S_CHAIN] = -1
    hy.i[0, S_WSTART] = -1
    hy.i[0, S_WEND] = -1
    if ngrams.meta[M_ORDER] > 0 and ngrams.meta[M_BOS] >= 0:
        hy.ctx[0, 0] = ngrams.meta[M_BOS]
        hy.i[0, S_NCTX] = 1
    hy.h[0] = _ctx_hash(hy.ctx, 0, hy.i[0, S_NCTX])
    memo = Memo(
        np.zeros(4096, dtype=np.uint64),
        np.empty(4096, dtype=np.float32),
        np.empty(4096, dtype=np.int64),
    )
    cand_labels = np.empty(C, dtype=np.int64)
    order = np.empty(cap, dtype=np.int64)
    scratch = np.empty(cap)
    n_chain = 0
    h_i, h_f, h_ctx, h_h = hy.i, hy.f, hy.ctx, hy.h
    c_i, c_f, c_ctx, c_h, m_keys, used = cd.i, cd.f, cd.ctx, cd.h, cd.keys, cd.used
    blank = params.blank
    token_min = params.token_min_logp
    for t in range(T):
        if abort[0] != 0:
            return LEX_ABORTED, 0, h_i[:0], h_f[:0], h_ctx[:0], chain
        row = logp[t]
        top = -1
        for c in range(C):
            if c != blank and (top < 0 or row[c] > row[top]):
                top = c
        n_lab = 0
        for c in range(C):
            if c != blank and (row[c] >= token_min or c == top):
                cand_labels[n_lab] = c
                n_lab += 1
        n = _expand_frame(
            row,
            t,
            cand_labels,
            n_lab,
            tokens,
            trie,
            la,
            words,
            ngrams,
            params,
            hy,
            nh,
            cd,
            memo,
        )
        for j in range(n):
            m_keys[used[j]] = EMPTY_KEY
        m = _select(c_f, n, K, params.beam_prune_logp, order, scratch)
        chain = _grow(chain, n_chain + m)
        for q in range(m):
            j = order[q]
            for c in range(S_NEWLAB):
                h_i[q, c] = c_i[j, c]
            h_f[q, 0] = c_f[j, 0]
            h_f[q, 1] = c_f[j, 1]
            for w in range(c_i[j, S_NCTX]):
                h_ctx[q, w] = c_ctx[j, w]
            h_h[q] = c_h[j]
            if c_i[j, S_NEWLAB]:
                chain[n_chain, H_PARENT] = c_i[j, S_CHAIN]
                chain[n_chain, H_LABEL] = c_i[j, S_LAST]
                chain[n_chain, H_FRAME] = t
                chain[n_chain, H_WORD] = c_i[j, S_WORD]
                chain[n_chain, H_WSTART] = c_i[j, S_FSTART]
                chain[n_chain, H_WEND] = c_i[j, S_FEND]
                h_i[q, S_CHAIN] = n_chain
                n_chain += 1
        nh = m
        if nh == 0:
            return LEX_DONE, 0, h_i[:0], h_f[:0], h_ctx[:0], chain
    n_out, out_i, out_f, out_ctx = _finish(hy, nh, trie, la, words, ngrams, params, memo)
    return LEX_DONE, n_out, out_i, out_f, out_ctx, chain


@jit
def _finish(hy, nh, trie, la, words, ngrams, params, memo):
    """The final hypotheses, best first: each finishes its word in progress, then the
    sentence. When none can (each ends inside a spelling that is no word, and out-of-lexicon
    words are forbidden), each keeps its look-ahead and its word as spelled.

    Returns ``(n, out_i, out_f, out_ctx)`` (see :func:`lexicon_search`)."""
    width = hy.ctx.shape[1]
    fin = np.empty(nh)
    out_i = np.zeros((nh, X_COLS), dtype=np.int64)
    out_f = np.zeros((nh, 2))
    out_ctx = np.zeros((nh, width), dtype=np.int64)
    tctx = np.empty((1, width), dtype=np.int64)
    fallback = True
    for b in range(nh):
        node = hy.i[b, S_NODE]
        if node == 0 or trie.word[node] >= 0 or params.unk_score > -np.inf:
            fallback = False
    for b in range(nh):
        s = hy.f[b, 0]
        node = hy.i[b, S_NODE]
        nctx = hy.i[b, S_NCTX]
        out_i[b, X_CHAIN] = hy.i[b, S_CHAIN]
        out_i[b, X_WORD] = NO_WORD
        out_i[b, X_WSTART] = -1
        out_i[b, X_WEND] = -1
        for q in range(nctx):
            tctx[0, q] = hy.ctx[b, q]
        if node > 0:
            ok, ws, new_nctx, word = _finish_word(
                node, hy.ctx, b, nctx, hy.h[b], tctx, trie, words, ngrams, params, memo
            )
            if ok:
                s += ws - la[node]
                nctx = new_nctx
                out_i[b, X_WORD] = word
            elif fallback:
                out_i[b, X_WORD] = -2 - node
            else:
                s = -np.inf
            out_i[b, X_WSTART] = hy.i[b, S_WSTART]
            out_i[b, X_WEND] = hy.i[b, S_WEND]
        if s > -np.inf:
            s += _end_score(tctx[0], nctx, ngrams, params)
        fin[b] = s
        out_f[b, 0] = s
        out_f[b, 1] = hy.f[b, 1]
        out_i[b, X_NCTX] = nctx
        for q in range(nctx):
            out_ctx[b, q] = tctx[0, q]
    rank = np.argsort(-fin, kind="mergesort")
    n_out = 0
    for b in range(nh):
        if fin[rank[b]] > -np.inf:
            n_out += 1
    keep = rank[:n_out]
    return n_out, out_i[keep], out_f[keep], out_ctx[keep]


@jit
def collect(chain, out_i, n):
    """The labels and words of the first ``n`` final hypotheses, in text order.

    Returns ``(labels, frames, label offsets, words, word starts, word ends, word
    offsets)``: hypothesis ``a``'s labels are ``labels[lab_off[a]:lab_off[a + 1]]`` (each
    with its first frame) and its words ``words[w_off[a]:w_off[a + 1]]`` (word codes as in
    the chain, with their first frame and the frame after their last label).
    """
    lab_off = np.zeros(n + 1, dtype=np.int64)
    w_off = np.zeros(n + 1, dtype=np.int64)
    for a in range(n):
        nl = 0
        nw = 1 if out_i[a, X_WORD] != NO_WORD else 0
        k = out_i[a, X_CHAIN]
        while k >= 0:
            nl += 1
            if chain[k, H_WORD] != NO_WORD:
                nw += 1
            k = chain[k, H_PARENT]
        lab_off[a + 1] = lab_off[a] + nl
        w_off[a + 1] = w_off[a] + nw
    labels = np.empty(lab_off[n], dtype=np.int64)
    frames = np.empty(lab_off[n], dtype=np.int64)
    words = np.empty(w_off[n], dtype=np.int64)
    starts = np.empty(w_off[n], dtype=np.int64)
    ends = np.empty(w_off[n], dtype=np.int64)
    for a in range(n):
        p = lab_off[a + 1] - 1
        q = w_off[a + 1] - 1
        if out_i[a, X_WORD] != NO_WORD:
            words[q] = out_i[a, X_WORD]
            starts[q] = out_i[a, X_WSTART]
            ends[q] = out_i[a, X_WEND]
            q -= 1
        k = out_i[a, X_CHAIN]
        while k >= 0:
            labels[p] = chain[k, H_LABEL]
            frames[p] = chain[k, H_FRAME]
            p -= 1
            if chain[k, H_WORD] != NO_WORD:
                words[q] = chain[k, H_WORD]
                starts[q] = chain[k, H_WSTART]
                ends[q] = chain[k, H_WEND]
                q -= 1
            k = chain[k, H_PARENT]
    return labels, frames, lab_off, words, starts, ends, w_off
