"""Word n-gram tables of an ARPA back-off model, scored without the GIL.

Scores are KenLM's, bit for bit: ``log10 P(w | context)`` is the probability of the longest
stored n-gram ending in ``w`` whose words match the most recent context words, plus, in
float32 and in order of increasing context length, the back-off weights of every longer
stored context (KenLM's ``FullScore``). Matching stops at the first n-gram that is not
stored: an ARPA file holds every suffix of a stored n-gram and every prefix of one that has
a context extension, so nothing longer can be stored after a miss.

Layout (built by :func:`fill_order` from :func:`fastctc.lm.ngram.assemble_tables`):

* ``uni``: ``(V, 2)`` float32, probability and back-off of each vocabulary id (id 0 is
  ``<unk>``);
* ``keys``/``vals``: one open-addressing table per order >= 2, concatenated; the key of an
  n-gram starts from its last word and takes the earlier words one by one (:func:`key_start`,
  :func:`key_next`), so a lookup grows the key as it walks back through the context;
* ``meta`` (int64): ``[order, <s> id or -1 (no sentence-start context), </s> id, whether
  sentences are scored with their boundaries, then offset and mask of the table of each
  order from 2]`` (``order`` 0: no tables).
"""

import numpy as np

from ._jit import jit
from .lm_cache import EMPTY_KEY, FNV_OFFSET, fix_key, fnv_extend, pair_key, table_find

M_ORDER = 0
M_BOS = 1
M_EOS = 2
M_BOUNDARY = 3

_START = np.uint64(0x2545F4914F6CDD1D)


@jit
def key_start(w):
    """Key of the unigram ``w`` (never 0)."""
    return pair_key(w, _START)


@jit
def key_next(key, w):
    """Key of the n-gram ``key`` preceded by word ``w`` (never 0)."""
    return pair_key(key, w)


@jit
def gram_key(ids, r, lo, hi):
    """Key of the n-gram ``ids[r, lo:hi]`` (words in text order)."""
    key = key_start(ids[r, hi - 1])
    for c in range(hi - 2, lo - 1, -1):
        key = key_next(key, ids[r, c])
    return key


@jit
def find(keys, off, mask, key):
    """Index in ``keys`` of ``key`` within the table at ``off`` (capacity ``mask + 1``)."""
    slot = np.int64(key & np.uint64(mask))
    for _ in range(mask + 1):
        k = keys[off + slot]
        if k == key:
            return off + slot
        if k == EMPTY_KEY:
            return -1
        slot = (slot + 1) & mask
    return -1


@jit
def find_order(keys, meta, n, key):
    """:func:`find` in the table of order ``n`` (>= 2)."""
    return find(keys, meta[2 * n], meta[2 * n + 1], key)


@jit
def push_word(ctx, nctx, w, width):
    """Put ``w`` in front of the context ``ctx[:nctx]`` (most recent first), keeping at most
    ``width`` words; returns the new length."""
    for j in range(min(nctx, width - 1), 0, -1):
        ctx[j] = ctx[j - 1]
    ctx[0] = w
    return min(nctx + 1, width)


@jit
def fill_order(ids, prob, bow, keys, vals, off, mask):
    """Insert the n-grams ``ids`` (rows in text order) into the table at ``off``.

    Returns the number of rows whose key was already present (a repeated n-gram, or a 64-bit
    key collision); the first row wins, as in KenLM."""
    n = ids.shape[1]
    dup = 0
    for r in range(ids.shape[0]):
        key = gram_key(ids, r, 0, n)
        slot = np.int64(key & np.uint64(mask))
        while keys[off + slot] != EMPTY_KEY and keys[off + slot] != key:
            slot = (slot + 1) & mask
        if keys[off + slot] == key:
            dup += 1
            continue
        keys[off + slot] = key
        vals[off + slot, 0] = prob[r]
        vals[off + slot, 1] = bow[r]
    return dup


@jit
def log10_prob(ctx, nctx, w, uni, keys, vals, meta):
    """float32 ``log10 P(w | ctx[:nctx])``; ``ctx[0]`` is the most recent word."""
    return log10_prob_matched(ctx, nctx, w, uni, keys, vals, meta)[0]


@jit
def log10_prob_matched(ctx, nctx, w, uni, keys, vals, meta):
    """``(log10 P(w | ctx[:nctx]), matched)``: :func:`log10_prob` and the length of the
    longest stored n-gram ending in ``w`` that it used. No stored n-gram extends a context
    longer than that (an ARPA file stores every prefix of an n-gram that has an extension),
    so ``w`` and the ``matched - 1`` words before it are the whole LM state after ``w``."""
    order = meta[M_ORDER]
    p = uni[w, 0]
    matched = 1
    key = key_start(w)
    n = 2
    while n <= order and n - 2 < nctx:
        key = key_next(key, ctx[n - 2])
        slot = find_order(keys, meta, n, key)
        if slot < 0:
            break
        p = vals[slot, 0]
        matched = n
        n += 1
    if matched > nctx:
        return p, matched
    # back-off weights of the contexts of length matched .. (longest stored)
    bo = uni[ctx[0], 1]
    bkey = key_start(ctx[0])
    length = 1
    while True:
        if length >= matched:
            p += bo
        length += 1
        if length > nctx:
            break
        bkey = key_next(bkey, ctx[length - 1])
        slot = find_order(keys, meta, length, bkey)
        if slot < 0:
            break
        bo = vals[slot, 1]
    return p, matched


@jit
def score_sequence(words, start_ctx, n_start, uni, keys, vals, meta):
    """float32 log10 probabilities of ``words`` one after another from the context
    ``start_ctx[:n_start]`` (most recent first); for tests and tools."""
    order = meta[M_ORDER]
    width = max(order - 1, 1)
    ctx = np.empty(width, dtype=np.int64)
    nctx = min(n_start, order - 1)
    for i in range(nctx):
        ctx[i] = start_ctx[i]
    out = np.empty(words.size, dtype=np.float32)
    for i in range(words.size):
        out[i] = log10_prob(ctx, nctx, words[i], uni, keys, vals, meta)
        if order > 1:
            nctx = push_word(ctx, nctx, words[i], width)
    return out


# ---------------------------------------------------------------- ARPA text scanning
SCAN_OK = 0
SCAN_UNUSUAL = 1  # a line this scanner does not read (the Python reader decides)

_TAB = 9
_NL = 10
_CR = 13
_SPACE = 32
_POW10 = np.array([10.0**k for k in range(23)])
_EXACT = 1 << 53


@jit
def _number(buf, pos, end):
    """``(value, next position, ok)`` of the decimal number at ``buf[pos:]``, correctly
    rounded to float64 (exact mantissa over an exact power of ten) when ``ok``."""
    neg = False
    if pos < end and buf[pos] == 45:  # '-'
        neg = True
        pos += 1
    elif pos < end and buf[pos] == 43:  # '+'
        pos += 1
    mant = 0
    e10 = 0
    digits = 0
    while pos < end and 48 <= buf[pos] <= 57:
        mant = mant * 10 + (buf[pos] - 48)
        digits += 1
        pos += 1
        if mant >= _EXACT:
            return 0.0, pos, False
    if pos < end and buf[pos] == 46:  # '.'
        pos += 1
        while pos < end and 48 <= buf[pos] <= 57:
            mant = mant * 10 + (buf[pos] - 48)
            digits += 1
            e10 -= 1
            pos += 1
            if mant >= _EXACT:
                return 0.0, pos, False
    if digits == 0:
        return 0.0, pos, False
    if pos < end and (buf[pos] == 101 or buf[pos] == 69):  # 'e' / 'E'
        pos += 1
        eneg = False
        if pos < end and (buf[pos] == 45 or buf[pos] == 43):
            eneg = buf[pos] == 45
            pos += 1
        ev = 0
        nd = 0
        while pos < end and 48 <= buf[pos] <= 57 and nd < 6:
            ev = ev * 10 + (buf[pos] - 48)
            nd += 1
            pos += 1
        if nd == 0:
            return 0.0, pos, False
        e10 += -ev if eneg else ev
    if e10 < -22 or e10 > 22:
        if mant != 0:
            return 0.0, pos, False
        e10 = 0
    v = np.float64(mant)
    if e10 >= 0:
        v = v * _POW10[e10]
    else:
        v = v / _POW10[-e10]
    return (-v if neg else v), pos, True


@jit
def word_hash(buf, start, end):
    """64-bit FNV-1a hash of the bytes ``buf[start:end]`` (never 0)."""
    h = FNV_OFFSET
    for p in range(start, end):
        h = fnv_extend(h, buf[p])
    return fix_key(h)


@jit
def scan_section(buf, pos, count, n, vocab_keys, vocab_vals, ids, prob, bow, spans):
    """Read ``count`` lines ``prob<TAB>w1 .. wn[<TAB>bow]`` from ``buf[pos:]``.

    Word ids come from the hash table ``vocab_keys``/``vocab_vals`` (FNV-1a of the word's
    bytes); when ``vocab_keys`` is empty (the unigram section) the byte span of each word is
    stored in ``spans`` instead. Returns ``(status, line index, position after the
    section)``; ``SCAN_UNUSUAL`` stops at the first line it cannot read.
    """
    end = buf.size
    for r in range(count):
        v, pos, ok = _number(buf, pos, end)
        if not ok or pos >= end or buf[pos] != _TAB:
            return SCAN_UNUSUAL, r, pos
        pos += 1
        prob[r] = v
        for c in range(n):
            s = pos
            while (
                pos < end
                and buf[pos] != _SPACE
                and buf[pos] != _TAB
                and buf[pos] != _NL
                and buf[pos] != _CR
            ):
                pos += 1
            if pos == s:
                return SCAN_UNUSUAL, r, pos
            if vocab_keys.size > 0:
                slot = table_find(vocab_keys, word_hash(buf, s, pos))
                if slot < 0:
                    return SCAN_UNUSUAL, r, pos
                ids[r, c] = vocab_vals[slot]
            else:
                spans[r, 0] = s
                spans[r, 1] = pos
            if c < n - 1:
                if pos >= end or buf[pos] != _SPACE:
                    return SCAN_UNUSUAL, r, pos
                pos += 1
        bow[r] = 0.0
        if pos < end and buf[pos] == _TAB:
            v, pos, ok = _number(buf, pos + 1, end)
            if not ok:
                return SCAN_UNUSUAL, r, pos
            bow[r] = v
        if pos < end and buf[pos] == _CR:
            pos += 1
        if pos < end and buf[pos] != _NL:
            return SCAN_UNUSUAL, r, pos
        pos += 1
    return SCAN_OK, count, pos


@jit
def span_hashes(buf, spans):
    """:func:`word_hash` of each byte span ``spans[i] = (start, end)``."""
    out = np.empty(spans.shape[0], dtype=np.uint64)
    for i in range(spans.shape[0]):
        out[i] = word_hash(buf, spans[i, 0], spans[i, 1])
    return out


@jit
def count_unclosed(ids, keys, meta):
    """Rows of ``ids`` (n-grams of one order n >= 3, text order) whose first or last n - 1
    words are not stored: files that rely on a reader to fill such gaps in are left to
    KenLM."""
    n = ids.shape[1]
    missing = 0
    for r in range(ids.shape[0]):
        suffix = gram_key(ids, r, 1, n)
        prefix = gram_key(ids, r, 0, n - 1)
        if find_order(keys, meta, n - 1, suffix) < 0 or find_order(keys, meta, n - 1, prefix) < 0:
            missing += 1
    return missing
