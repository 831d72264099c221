"""Word n-gram tables of an ARPA back-off model, scored without the GIL.

Scores are KenLM's, bit for bit: ``log10 P(w | context)`` is the probability of the longest
stored n-gram ending in ``w`` whose words match the most recent context words, plus, in
float32 and in order of increasing context length, the back-off weights of every longer
stored context (KenLM's ``FullScore``). Matching stops at the first n-gram that is not
stored: an ARPA file holds every suffix of a stored n-gram and every prefix of one that has
a context extension, so nothing longer can be stored after a miss.

Layout (built by :func:`fill_order` from ``fastctc.ngram``):

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
from .lm_cache import EMPTY_KEY, mix64

M_ORDER = 0
M_BOS = 1
M_EOS = 2
M_BOUNDARY = 3

_MUL = np.uint64(0x9E3779B97F4A7C15)
_START = np.uint64(0x2545F4914F6CDD1D)


@jit
def key_start(w):
    """Key of the unigram ``w`` (never 0)."""
    k = mix64(np.uint64(w) * _MUL ^ _START)
    if k == EMPTY_KEY:
        return np.uint64(1)
    return k


@jit
def key_next(key, w):
    """Key of the n-gram ``key`` preceded by word ``w`` (never 0)."""
    k = mix64(key * _MUL ^ np.uint64(w))
    if k == EMPTY_KEY:
        return np.uint64(1)
    return k


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
def fill_order(ids, prob, bow, keys, vals, off, mask):
    """Insert the n-grams ``ids`` (rows in text order) into the table at ``off``.

    Returns the number of rows whose key was already present (a repeated n-gram, or a 64-bit
    key collision); the later row wins."""
    n = ids.shape[1]
    dup = 0
    for r in range(ids.shape[0]):
        key = key_start(ids[r, n - 1])
        for c in range(n - 2, -1, -1):
            key = key_next(key, ids[r, c])
        slot = np.int64(key & np.uint64(mask))
        while keys[off + slot] != EMPTY_KEY and keys[off + slot] != key:
            slot = (slot + 1) & mask
        if keys[off + slot] == key:
            dup += 1
        keys[off + slot] = key
        vals[off + slot, 0] = prob[r]
        vals[off + slot, 1] = bow[r]
    return dup


@jit
def log10_prob(ctx, nctx, w, uni, keys, vals, meta):
    """float32 ``log10 P(w | ctx[:nctx])``; ``ctx[0]`` is the most recent word."""
    order = meta[M_ORDER]
    p = uni[w, 0]
    matched = 1
    key = key_start(w)
    n = 2
    while n <= order and n - 2 < nctx:
        key = key_next(key, ctx[n - 2])
        slot = find(keys, meta[2 * n], meta[2 * n + 1], key)
        if slot < 0:
            break
        p = vals[slot, 0]
        matched = n
        n += 1
    if matched > nctx:
        return p
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
        slot = find(keys, meta[2 * length], meta[2 * length + 1], bkey)
        if slot < 0:
            break
        bo = vals[slot, 1]
    return p


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
            for j in range(min(nctx, width - 1), 0, -1):
                ctx[j] = ctx[j - 1]
            ctx[0] = words[i]
            nctx = min(nctx + 1, width)
    return out
