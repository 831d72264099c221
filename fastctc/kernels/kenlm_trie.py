"""Compiled steps of reading a KenLM trie binary (:mod:`fastctc.lm.kenlm_binary`).

The reader finds the sections of the file in Python; these kernels do the per-record work:
unpack the bit-packed n-gram records (:func:`unpack_fields`), turn one level of the trie into
n-grams of word ids (:func:`walk_level`), check the stored words against the vocabulary's
MurmurHash2 hashes (:func:`murmur64a`, :func:`hashes_match`) and find n-grams whose context
KenLM's state would drop (:func:`count_unextended`). Inputs are validated by the caller.
"""

import numpy as np

from ._jit import jit
from .ngram import find_order, gram_key

#: The multiplier of MurmurHash2's 64-bit variant 64A.
MURMUR_MUL = np.uint64(0xC6A4A7935BD1E995)


@jit
def unpack_fields(words, count, total_bits, offsets, widths, out):
    """Unpack the fields of ``count`` bit-packed records.

    Record ``i`` occupies bits ``[i * total_bits, (i + 1) * total_bits)`` of ``words``
    (uint64, shape ``(W,)``: the section's bytes read little-endian, padded with one zero
    word); its field ``f`` starts ``offsets[f]`` bits into it and is ``widths[f]`` <= 57 bits
    wide (int64 arrays of shape ``(F,)``). Writes field ``f`` of record ``i`` into
    ``out[i, f]`` (uint64, shape ``(count, F)`` or larger). Inputs are validated by the
    caller.
    """
    one = np.uint64(1)
    for f in range(offsets.size):
        mask = (one << np.uint64(widths[f])) - one
        off = offsets[f]
        for i in range(count):
            bit = i * total_bits + off
            k = bit >> 6
            s = np.uint64(bit & 63)
            v = words[k] >> s
            if s != 0:
                v |= words[k + 1] << (np.uint64(64) - s)
            out[i, f] = v & mask


@jit
def walk_level(first, words, parent_ids, n_vocab, out):
    """Turn one level of the trie into n-grams of word ids, in text order.

    Parent ``p`` (an (n-1)-gram, ``parent_ids[p]``: int64, shape ``(P, n - 1)``) owns the
    records ``first[p] <= j < first[p + 1]`` (``first``: int64, shape ``(P + 1,)``); record
    ``j`` is the word ``words[j]`` (int64, shape ``(J,)``) followed by the words of its parent,
    written to ``out[j]`` (int64, shape ``(J, n)``). Returns False where the pointers do not
    partition ``[0, J)`` or a parent's words are not strictly increasing ids below
    ``n_vocab``: not a trie KenLM wrote. Inputs are validated by the caller.
    """
    n_par = parent_ids.shape[0]
    width = parent_ids.shape[1]
    if first[0] != 0 or first[n_par] != words.size:
        return False
    for p in range(n_par):
        a = first[p]
        b = first[p + 1]
        if b < a or b > words.size:
            return False
        prev = -1
        for j in range(a, b):
            w = words[j]
            if w <= prev or w >= n_vocab:
                return False
            prev = w
            out[j, 0] = w
            for c in range(width):
                out[j, c + 1] = parent_ids[p, c]
    return True


@jit
def murmur64a(buf, start, end):
    """64-bit MurmurHash2 (variant 64A, seed 0) of the bytes ``buf[start:end]`` (``buf``:
    uint8, shape ``(B,)``), the hash KenLM stores for each word. Returns a uint64. Inputs are
    validated by the caller."""
    n = end - start
    h = np.uint64(n) * MURMUR_MUL
    r = np.uint64(47)
    blocks = n // 8
    for b in range(blocks):
        k = np.uint64(0)
        for j in range(8):
            k |= np.uint64(buf[start + 8 * b + j]) << np.uint64(8 * j)
        k *= MURMUR_MUL
        k ^= k >> r
        k *= MURMUR_MUL
        h ^= k
        h *= MURMUR_MUL
    rest = n & 7
    if rest:
        tail = start + 8 * blocks
        for j in range(rest):
            h ^= np.uint64(buf[tail + j]) << np.uint64(8 * j)
        h *= MURMUR_MUL
    h ^= h >> r
    h *= MURMUR_MUL
    h ^= h >> r
    return h


@jit
def hashes_match(buf, starts, ends, hashes):
    """Whether word ``i`` (the bytes ``buf[starts[i]:ends[i]]``) has the :func:`murmur64a`
    hash ``hashes[i]``, for every ``i`` (``buf``: uint8; ``starts``, ``ends``: int64 and
    ``hashes``: uint64, shape ``(N,)``). Inputs are validated by the caller."""
    for i in range(starts.size):
        if murmur64a(buf, starts[i], ends[i]) != hashes[i]:
            return False
    return True


@jit
def count_unextended(ids, uni, keys, vals, meta):
    """How many n-grams of ``ids`` (int64, shape ``(R, n)``, one order n >= 2, words in text
    order) have a context (their first n - 1 words) that is not stored or is stored with the
    back-off -0.0, KenLM's mark of an n-gram that nothing extends. KenLM's state drops such a
    context, so a stored n-gram that needs it is scored from fewer words. ``uni``, ``keys``,
    ``vals``, ``meta``: the tables of :mod:`fastctc.kernels.ngram`. Inputs are validated by
    the caller."""
    n = ids.shape[1]
    bad = 0
    for r in range(ids.shape[0]):
        if n == 2:
            bow = uni[ids[r, 0], 1]
        else:
            slot = find_order(keys, meta, n - 1, gram_key(ids, r, 0, n - 1))
            if slot < 0:
                bad += 1
                continue
            bow = vals[slot, 1]
        if bow == 0.0 and np.signbit(bow):
            bad += 1
    return bad
