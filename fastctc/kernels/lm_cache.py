"""Open-addressing hash tables over ``uint64`` keys, read by the LM beam kernel without the GIL.

Strings (words, partial words) are identified by a 64-bit FNV-1a hash of their code points,
built incrementally as tokens are appended, so the kernel never handles text. Tables are
parallel arrays: ``keys`` (``0`` marks an empty slot) and one or more value arrays; the
capacity is a power of two and the load factor is kept below one half by the owner.

Writers (the Python side, one at a time under a lock) store the values before the key; readers
treat a slot whose value is still the "unset" marker as a miss, so a reader racing a writer
sees either nothing or a complete entry.
"""

import numba
import numpy as np

from ._jit import jit

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
EMPTY_KEY = np.uint64(0)


@jit
def fnv_extend(h, code):
    """Append one code point to the running FNV-1a hash ``h`` (uint64 arithmetic wraps)."""
    return (h ^ np.uint64(code)) * FNV_PRIME


@jit
def fix_key(h):
    """Map the reserved empty-slot key 0 to 1 (a string hashing to 0 is astronomically rare)."""
    if h == EMPTY_KEY:
        return np.uint64(1)
    return h


@jit
def mix64(x):
    """SplitMix64 finaliser: spreads any uint64 over all bits (used for slots and pair keys)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@jit
def pair_key(a, b):
    """Key for an ordered pair of non-negative ints / hashes; never 0."""
    return fix_key(mix64(np.uint64(a) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(b)))


@jit
def table_find(keys, key, mixed=False):
    """Slot of ``key`` in ``keys``, or -1 when absent. ``keys.size`` is a power of two.
    ``mixed``: the key is a ``pair_key`` output, mixed already, whose low bits are its home
    slot as they are (all users of a table must probe it the same way)."""
    mask = np.uint64(keys.size - 1)
    slot = np.int64((key if mixed else mix64(key)) & mask)
    n = keys.size
    for _ in range(n):
        k = keys[slot]
        if k == key:
            return slot
        if k == EMPTY_KEY:
            return -1
        slot = (slot + 1) & (n - 1)
    return -1


@jit
def table_slot_for_insert(keys, key, mixed=False):
    """Slot holding ``key`` or the empty slot where it goes; -1 if the table is full
    (``mixed`` as for ``table_find``)."""
    mask = np.uint64(keys.size - 1)
    slot = np.int64((key if mixed else mix64(key)) & mask)
    n = keys.size
    for _ in range(n):
        k = keys[slot]
        if k == key or k == EMPTY_KEY:
            return slot
        slot = (slot + 1) & (n - 1)
    return -1


@jit
def insert_int(keys, vals, new_keys, new_vals):
    """Insert ``new_keys[i] -> new_vals[i]`` (int64 values); returns the number of new keys."""
    added = 0
    for i in range(new_keys.size):
        slot = table_slot_for_insert(keys, new_keys[i])
        if slot < 0:
            return -1
        if keys[slot] == EMPTY_KEY:
            added += 1
        vals[slot] = new_vals[i]
        keys[slot] = new_keys[i]
    return added


@jit
def insert_float_int(keys, fvals, ivals, new_keys, new_f, new_i):
    """Insert keys with a float64 and an int64 value each; returns the number of new keys."""
    added = 0
    for i in range(new_keys.size):
        slot = table_slot_for_insert(keys, new_keys[i])
        if slot < 0:
            return -1
        if keys[slot] == EMPTY_KEY:
            added += 1
        fvals[slot] = new_f[i]
        ivals[slot] = new_i[i]
        keys[slot] = new_keys[i]
    return added


@jit
def store_answers(word_keys, word_vals, lm_keys, lm_score, lm_next, ints, n_words, scores):
    """Insert resolved words and LM scores in one call.

    ``ints`` holds ``n_words`` pairs (word hash as int64 bits, word id) and then one triple
    (``2 * state + eos``, word id, next state) per entry of ``scores``; score keys are
    ``pair_key(2 * state + eos, word id)``. Words go in first, so a reader that finds a new
    word id may miss its score (and asks again) but never the reverse. Returns the numbers of
    new words and of new scores (-1 when a table is full).
    """
    n_new_words = 0
    for i in range(n_words):
        key = np.uint64(ints[2 * i])
        slot = table_slot_for_insert(word_keys, key)
        if slot < 0:
            return -1, -1
        if word_keys[slot] == EMPTY_KEY:
            n_new_words += 1
        word_vals[slot] = ints[2 * i + 1]
        word_keys[slot] = key
    n_new_scores = 0
    base = 2 * n_words
    for i in range(scores.size):
        key = pair_key(ints[base + 3 * i], ints[base + 3 * i + 1])
        slot = table_slot_for_insert(lm_keys, key)
        if slot < 0:
            return n_new_words, -1
        if lm_keys[slot] == EMPTY_KEY:
            n_new_scores += 1
        lm_score[slot] = scores[i]
        lm_next[slot] = ints[base + 3 * i + 2]
        lm_keys[slot] = key
    return n_new_words, n_new_scores


@jit
def hash_strings(codes, offsets, prefixes):
    """FNV-1a hashes of strings stored as code points ``codes[offsets[i]:offsets[i+1]]``.

    With ``prefixes`` true, returns the hash of every non-empty prefix of every string (and,
    in the second array, the length of the string it came from); otherwise one hash per string.
    """
    n = offsets.size - 1
    if prefixes:
        total = offsets[n] - offsets[0]
        out = np.empty(total, dtype=np.uint64)
        src_len = np.empty(total, dtype=np.int64)
        j = 0
        for i in range(n):
            h = FNV_OFFSET
            ln = offsets[i + 1] - offsets[i]
            for p in range(offsets[i], offsets[i + 1]):
                h = fnv_extend(h, codes[p])
                out[j] = fix_key(h)
                src_len[j] = ln
                j += 1
        return out, src_len
    out = np.empty(n, dtype=np.uint64)
    lens = np.empty(n, dtype=np.int64)
    for i in range(n):
        h = FNV_OFFSET
        for p in range(offsets[i], offsets[i + 1]):
            h = fnv_extend(h, codes[p])
        out[i] = fix_key(h)
        lens[i] = offsets[i + 1] - offsets[i]
    return out, lens


if numba.config.DISABLE_JIT:  # pragma: no cover - exercised by the pure-Python CI run
    # NumPy warns on uint64 overflow; the wrapping arithmetic is intended, so the interpreted
    # versions compute with Python ints modulo 2**64 instead.
    _M64 = (1 << 64) - 1

    def fnv_extend(h, code):  # noqa: F811
        """Append one code point to the running FNV-1a hash ``h``."""
        return np.uint64(((int(h) ^ int(code)) * 0x100000001B3) & _M64)

    def mix64(x):  # noqa: F811
        """SplitMix64 finaliser."""
        x = int(x)
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        return np.uint64(x ^ (x >> 31))

    def pair_key(a, b):  # noqa: F811
        """Key for an ordered pair; never 0."""
        return fix_key(mix64(((int(a) & _M64) * 0x9E3779B97F4A7C15 & _M64) ^ int(b)))


def capacity(n: int, minimum: int = 16) -> int:
    """Power-of-two table size that keeps ``n`` keys at a load factor below one half."""
    return max(minimum, 1 << int(2 * max(n, 1) - 1).bit_length())


def make_set(hashes: np.ndarray, values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Hash table from uint64 keys (duplicates keep the last value) to int64 values."""
    cap = capacity(len(hashes))
    keys = np.zeros(cap, dtype=np.uint64)
    vals = np.full(cap, -1, dtype=np.int64)
    if len(hashes):
        v = np.zeros(len(hashes), np.int64) if values is None else values.astype(np.int64)
        insert_int(keys, vals, np.ascontiguousarray(hashes, np.uint64), v)
    return keys, vals
