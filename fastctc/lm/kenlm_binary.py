"""KenLM binary models in the trie layout, read into :class:`~fastctc.lm.ngram.NgramTables`.

``build_binary ... trie`` writes the model as one little-endian file (x86-64 layout):

* **Header.** 56 bytes of text, ``mmap lm http://kheafield.com/code format version 5\\n``
  padded with NULs; check values (float32 0, 1 and -0.5, uint32 1, 0xFFFFFFFF and 0 padding,
  uint64 1) that give away byte order and struct packing; at byte 88 the order (uint8, 3
  padding bytes), the hash-table multiplier (float32), the model type (uint32: 0 and 1 hash
  tables, 2 trie, 3 trie with quantised values, 4 trie with compressed child pointers, 5 both),
  whether the words are stored (uint8, 3 padding bytes) and the layout version (uint32, 1 for
  tries); at byte 108 one uint64 n-gram count per order (the first, V, counts the words with
  ``<unk>``). The header is padded to a multiple of 8.
* **Vocabulary.** A uint64 word count (V - 1, without ``<unk>``), then room for V uint64
  hashes: the 64-bit MurmurHash2 (seed 0) of each word, ascending. A word's id is its position
  in that list plus one; ``<unk>`` is 0.
* **Quantisation tables** (types 3 and 5). An 8-byte header (version 2, probability bits ``q``,
  back-off bits ``b``), then for each order from 2 to N-1 ``2**q`` float32 probability bin
  centres and ``2**b`` back-off centres (back-off bins 0 and 1 hold -0.0 and +0.0), then
  ``2**q`` centres for order N.
* **Unigrams.** V + 2 records, one per word id: float32 probability, float32
  back-off, uint64 index of the word's first bigram. The record after the last word holds the
  end of the bigrams.
* **One bit-packed array per order from 2 to N.** An n-gram is stored below its suffix (the
  n-gram without its first word): the records of one suffix are contiguous and sorted by the
  first word's id, so the trie is walked from the word being predicted back through its
  context. A record holds that word's id (``bits(V)`` bits, bits(x) the bit length of x), then
  its values, then (orders below N) the index of its first child in the next order;
  one extra record at the end holds the end pointer. Values as float32 are a probability of 31
  bits (the sign bit is dropped and always set on reading) and a back-off of 32 bits; quantised,
  the back-off bin (low bits) comes before the probability bin. Fields are read as the low bits
  of the little-endian 64-bit word at their first byte, shifted by their bit offset in it.
* **Compressed child pointers** (types 4 and 5). Before each array of orders 2 to N-1 sits a
  2-byte header (version 0, most bits to remove) and, at the next multiple of 8 plus 8 bytes,
  a uint64 table whose entry ``k`` is the first record whose child pointer is at least
  ``k << inline_bits``; records keep only the low ``inline_bits`` bits. How many bits a level
  removes is KenLM's choice minimising the table's size against the bits saved.
* **Words.** After the arrays, every word NUL-terminated in id order, ``<unk>`` first.

N-grams that the ARPA file lacked but a longer one needs as its suffix (SRILM pruning) are
inserted by ``build_binary`` with the probability back-off would give and a zero back-off;
KenLM finds them when it walks the trie, so they are kept as n-grams here. A back-off of -0.0
marks an n-gram that no stored n-gram extends: KenLM leaves such a context out of its state
and so never adds that back-off, and adding -0.0 leaves every float32 unchanged, so the value
is kept as stored. Where a stored n-gram's context carries that mark anyway (``build_binary``
can leave inserted n-grams unmarked), KenLM's state forgets words the longer n-gram needs and
its scores depend on more than the last N-1 words; such files give ``None``.

Scores of the resulting tables equal KenLM's ``BaseScore`` on the same file bit for bit.
Hash-table binaries, files without their words and any version this module does not know
give ``None`` (the caller then asks KenLM). This module finds the sections; the per-record work
(unpacking, walking the trie, hashing the words) is compiled in
:mod:`fastctc.kernels.kenlm_trie`, and :func:`fastctc.lm.ngram.assemble_tables` builds the
tables, as for ARPA files.
"""

from __future__ import annotations

import os

import numpy as np

from ..kernels import kenlm_trie as kt
from .ngram import NgramTables, assemble_tables

_MAGIC = b"mmap lm http://kheafield.com/code format version"
#: The 88 bytes every version-5 binary written on a little-endian 64-bit machine starts with.
_SANITY = (
    b"mmap lm http://kheafield.com/code format version 5\n".ljust(56, b"\0")
    + np.array([0.0, 1.0, -0.5], dtype="<f4").tobytes()
    + np.array([1, 0xFFFFFFFF, 0], dtype="<u4").tobytes()
    + np.array([1], dtype="<u8").tobytes()
)
_FIXED = 20  # order, multiplier, model type, vocabulary flag, layout version
_TRIE, _QUANT_TRIE, _ARRAY_TRIE, _QUANT_ARRAY_TRIE = 2, 3, 4, 5
_TRIE_VERSION = 1
_QUANT_VERSION = 2
_ARRAY_VERSION = 0
_UNIGRAM = np.dtype([("prob", "<f4"), ("bow", "<f4"), ("next", "<u8")])
_SIGN = np.uint64(0x80000000)


# ---------------------------------------------------------------------------- layout
def _bits(value: int) -> int:
    """Bits needed for the integers 0 .. ``value``."""
    return int(value).bit_length()


def _align8(n: int) -> int:
    return (n + 7) // 8 * 8


def _packed_bytes(entries: int, total_bits: int) -> int:
    """Bytes of a bit-packed array of ``entries`` records plus the end record."""
    return ((entries + 1) * total_bits + 7) // 8 + 8


def _chopped_bits(max_offset: int, max_next: int, limit: int) -> int:
    """Pointer bits moved into the offset table: the choice with the smallest size change."""
    required = _bits(max_next)
    best, lowest = 0, None
    for chop in range(min(required, limit) + 1):
        change = (max_next >> (required - chop)) * 64 - max_offset * chop
        if lowest is None or change < lowest:
            best, lowest = chop, change
    return best


class _Truncated(Exception):
    pass


def _need(data: bytes, end: int) -> None:
    if len(data) < end:
        raise _Truncated


def read_kenlm_trie(path: str | os.PathLike[str]) -> NgramTables | None:
    """Tables of a KenLM trie binary (``build_binary [-q B -b B] [-a B] trie``).

    Returns ``None`` for any other file: ARPA text, hash-table binaries, binaries without
    their words, other versions or byte orders.

    Raises
    ------
    ValueError
        The file is a KenLM trie binary but shorter than its header says.
    """
    p = os.fspath(path)
    with open(p, "rb") as f:
        data = f.read(len(_MAGIC))
        if data != _MAGIC:
            return None
        data += f.read(len(_SANITY) + _FIXED - len(data))
        if data[: len(_SANITY)] == _SANITY and len(data) == len(_SANITY) + _FIXED:
            model_type = int(np.frombuffer(data, "<u4", 1, len(_SANITY) + 8)[0])
            if model_type not in (_TRIE, _QUANT_TRIE, _ARRAY_TRIE, _QUANT_ARRAY_TRIE):
                return None  # not worth reading a hash-table binary
        data += f.read()
    try:
        return _read(data, p)
    except _Truncated:
        raise ValueError(f"{p!r} is a truncated KenLM binary ({len(data)} bytes).") from None


def describe_kenlm_binary(path: str | os.PathLike[str]) -> str | None:
    """What kind of KenLM binary ``path`` is, in words for an error message (``None`` when
    the file is no KenLM binary).

    For files :func:`read_kenlm_trie` leaves to KenLM: hash-table binaries, other versions or
    byte orders, tries it does not mirror.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastctc.kenlm_binary import describe_kenlm_binary
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "hash.bin")
    ...     with open(p, "wb") as f:
    ...         _ = f.write(b"mmap lm http://kheafield.com/code format version 5")
    ...     print(describe_kenlm_binary(p))
    a KenLM binary of another format version or byte order, or a truncated one
    """
    with open(os.fspath(path), "rb") as f:
        data = f.read(len(_SANITY) + _FIXED)
    if not data.startswith(_MAGIC):
        return None
    if data[: len(_SANITY)] != _SANITY or len(data) < len(_SANITY) + _FIXED:
        return "a KenLM binary of another format version or byte order, or a truncated one"
    model_type = int(np.frombuffer(data, "<u4", 1, len(_SANITY) + 8)[0])
    if model_type in (0, 1):
        return "a KenLM hash-table binary (build_binary without 'trie')"
    if model_type in (_TRIE, _QUANT_TRIE, _ARRAY_TRIE, _QUANT_ARRAY_TRIE):
        return (
            "a KenLM trie binary that fastctc does not read (no stored words, or a trie "
            "whose states KenLM shortens)"
        )
    return f"a KenLM binary of unknown model type {model_type}"


def check_kenlm_binary(path: str | os.PathLike[str]) -> None:
    """Check the header of a KenLM binary before KenLM reads it: KenLM crashes the process on
    some corrupt headers (order 0; a trie whose vocabulary size disagrees with its unigram
    count or exceeds the file). Files that are not version-5 little-endian binaries are left
    to KenLM, which rejects them itself.

    Raises
    ------
    ValueError
        A corrupt header; the message names the path.
    """
    p = os.fspath(path)
    size = os.path.getsize(p)
    with open(p, "rb") as f:
        data = f.read(len(_SANITY) + _FIXED + 8 * 256 + 16)
    if data[: len(_SANITY)] != _SANITY or len(data) < len(_SANITY) + _FIXED:
        return
    at = len(_SANITY)
    order = data[at]
    if order < 1:
        raise ValueError(f"{p!r} is a corrupt KenLM binary: its header gives order {order}.")
    model_type = int(np.frombuffer(data, "<u4", 1, at + 8)[0])
    if model_type not in (_TRIE, _QUANT_TRIE, _ARRAY_TRIE, _QUANT_ARRAY_TRIE):
        return
    at += _FIXED
    vocab_at = _align8(at + 8 * order)
    if len(data) < vocab_at + 8:
        raise ValueError(f"{p!r} is a truncated KenLM binary ({size} bytes).")
    n_vocab = int(np.frombuffer(data, "<u8", 1, at)[0])
    n_hashed = int(np.frombuffer(data, "<u8", 1, vocab_at)[0])
    if n_hashed + 1 != n_vocab or vocab_at + 8 + 8 * n_hashed > size:
        raise ValueError(
            f"{p!r} is a corrupt KenLM binary: its vocabulary holds {n_hashed} words, its "
            f"header {n_vocab} unigrams, in a file of {size} bytes."
        )


def _read(data: bytes, name: str) -> NgramTables | None:
    if len(data) < len(_SANITY):
        if _SANITY.startswith(data):
            raise _Truncated
        return None
    if data[: len(_SANITY)] != _SANITY:
        return None  # another version, an unfinished build or another byte order
    _need(data, len(_SANITY) + _FIXED)
    at = len(_SANITY)
    order = data[at]
    multiplier = np.frombuffer(data, "<f4", 1, at + 4)[0]
    model_type, version = (int(v) for v in np.frombuffer(data, "<u4", 3, at + 8)[::2])
    has_words = data[at + 12]
    if model_type not in (_TRIE, _QUANT_TRIE, _ARRAY_TRIE, _QUANT_ARRAY_TRIE):
        return None
    if version != _TRIE_VERSION or order < 2 or not has_words or not multiplier >= 1.0:
        return None
    at += _FIXED
    _need(data, at + 8 * order)
    counts = [int(c) for c in np.frombuffer(data, "<u8", order, at)]
    at = _align8(at + 8 * order)
    quantised = model_type in (_QUANT_TRIE, _QUANT_ARRAY_TRIE)
    compressed = model_type in (_ARRAY_TRIE, _QUANT_ARRAY_TRIE)
    n_vocab = counts[0]
    if n_vocab < 1 or n_vocab >= 1 << 32:
        return None

    # vocabulary hashes
    vocab_at = at
    _need(data, vocab_at + 8)
    n_hashed = int(np.frombuffer(data, "<u8", 1, vocab_at)[0])
    if n_hashed + 1 != n_vocab:
        return None
    at = vocab_at + 8 + 8 * n_vocab

    # quantisation tables
    if quantised:
        _need(data, at + 3)
        if data[at] != _QUANT_VERSION:
            return None
        qb, bb = data[at + 1], data[at + 2]
        if not (1 <= qb <= 25 and 1 <= bb <= 25):
            return None
        prob_n, bow_n = 1 << qb, 1 << bb
        quant_at = at
        at += (order - 2) * 4 * (prob_n + bow_n) + 4 * prob_n + 8
        middle_bits, longest_bits = qb + bb, qb
    else:
        middle_bits, longest_bits = 63, 31

    # unigrams, then the packed arrays
    uni_at = at
    at += (n_vocab + 2) * _UNIGRAM.itemsize
    word_bits = _bits(n_vocab)
    if compressed and order > 2:
        _need(data, at + 2)
        if data[at] != _ARRAY_VERSION:
            return None
        max_chop = data[at + 1]
    levels = []  # (byte offset, count, total bits, inline pointer bits, offset-table position)
    for n in range(2, order):
        entries, max_next = counts[n - 1], counts[n]
        table = None
        inline = _bits(max_next)
        if compressed:
            chop = _chopped_bits(entries + 1, max_next, max_chop)
            inline -= chop
            n_table = (max_next >> inline) + 1
            table = (_align8(at) + 8, n_table)
            at += 8 * (1 + n_table) + 7
        if inline > 57:
            return None
        total = word_bits + middle_bits + inline
        levels.append((at, entries, total, inline, table))
        at += _packed_bytes(entries, total)
    longest_total = word_bits + longest_bits
    levels.append((at, counts[-1], longest_total, 0, None))
    at += _packed_bytes(counts[-1], longest_total)
    _need(data, at)
    words = _words(data, at, vocab_at, n_vocab)
    if words is None:
        return None

    buf = np.frombuffer(data, dtype=np.uint8)
    uni = np.frombuffer(data, _UNIGRAM, n_vocab + 1, uni_at)
    u_prob = uni["prob"][:n_vocab].astype(np.float64)
    u_bow = uni["bow"][:n_vocab].astype(np.float64)
    first = uni["next"].astype(np.int64)
    parent_ids = np.arange(n_vocab, dtype=np.int64)[:, None]
    grams = []
    for n, (base, count, total, inline, table) in enumerate(levels, start=2):
        middle = n < order
        if middle:
            if quantised:  # back-off bin, probability bin, child pointer
                offsets = [word_bits, word_bits + bb, word_bits + bb + qb]
                widths = [bb, qb, inline]
            else:  # probability (31 bits), back-off (32 bits), child pointer
                offsets = [word_bits + 31, word_bits, word_bits + 63]
                widths = [32, 31, inline]
        else:
            offsets = [word_bits]
            widths = [longest_bits]
        fields = np.empty((count + 1, len(offsets) + 1), dtype=np.uint64)
        kt.unpack_fields(
            _words64(buf, base, _packed_bytes(count, total)),
            count + 1,
            total,
            np.array([0] + offsets, dtype=np.int64),
            np.array([word_bits] + widths, dtype=np.int64),
            fields,
        )
        ids = np.empty((count, n), dtype=np.int64)
        if not kt.walk_level(first, fields[:count, 0].astype(np.int64), parent_ids, n_vocab, ids):
            return None
        if middle:
            first = fields[:, 3].astype(np.int64)
            if table is not None:
                first = _expand_pointers(data, table, inline, first)
                if first is None:
                    return None
        raw_prob = fields[:count, 2 if middle else 1]
        if quantised:
            q_at = quant_at + 8 + (n - 2) * 4 * (prob_n + bow_n)
            probs = np.frombuffer(data, "<f4", prob_n, q_at)
            prob = probs[raw_prob.astype(np.int64)]
            if middle:
                bows = np.frombuffer(data, "<f4", bow_n, q_at + 4 * prob_n)
                bow = bows[fields[:count, 1].astype(np.int64)]
        else:
            prob = (raw_prob | _SIGN).astype(np.uint32).view(np.float32)
            if middle:
                bow = fields[:count, 1].astype(np.uint32).view(np.float32)
        bow = bow.astype(np.float64) if middle else np.zeros(count)
        grams.append((ids, prob.astype(np.float64), bow))
        parent_ids = ids
    try:
        tables = assemble_tables(order, words, u_prob, u_bow, grams, name)
    except ValueError:
        return None  # an n-gram without its context or suffix: not a trie build_binary wrote
    for ids, _, _ in grams:
        if kt.count_unextended(ids, tables.uni, tables.keys, tables.vals, tables.meta):
            return None  # KenLM's state would drop a context that longer n-grams need
    return tables


def _words64(buf: np.ndarray, base: int, size: int) -> np.ndarray:
    """``buf[base:base + size]`` as little-endian uint64 words, plus one zero word."""
    padded = np.zeros((size + 15) // 8 * 8, dtype=np.uint8)
    padded[:size] = buf[base : base + size]
    return padded.view("<u8").astype(np.uint64, copy=False)


def _expand_pointers(
    data: bytes, table: tuple[int, int], inline: int, low: np.ndarray
) -> np.ndarray | None:
    """Full child pointers from their low ``inline`` bits and the offset table."""
    at, n_table = table
    starts = np.frombuffer(data, "<u8", n_table, at).astype(np.int64)
    if n_table == 0 or starts[0] != 0 or np.any(np.diff(starts) < 0):
        return None
    high = np.searchsorted(starts, np.arange(low.size, dtype=np.int64), side="right") - 1
    return (high << inline) | low


def _words(data: bytes, at: int, vocab_at: int, n_vocab: int) -> list[str] | None:
    """The words stored after the trie, checked against the vocabulary hashes."""
    tail = data[at:]
    if not tail.startswith(b"<unk>\0"):
        if b"<unk>\0".startswith(tail):
            raise _Truncated
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf[at:] == 0) + at
    if ends.size < n_vocab:
        raise _Truncated
    if ends.size > n_vocab or ends[-1] != len(data) - 1:
        return None  # more words than the vocabulary has
    starts = np.empty_like(ends)
    starts[0] = at
    starts[1:] = ends[:-1] + 1
    hashes = np.frombuffer(data, "<u8", n_vocab - 1, vocab_at + 8)
    if not kt.hashes_match(buf, starts[1:], ends[1:], hashes):
        return None
    try:
        words = tail[:-1].decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None
    if "<s>" not in words:
        return None  # KenLM would start sentences from <unk>
    return words
