"""KenLM trie binaries read natively (fastctc.kenlm_binary) against KenLM's own ``BaseScore``,
bit for bit in float32, for every trie variant ``build_binary`` writes; everything else reads
as ``None`` and truncated files raise.

The unquantised trie is the suite's small 4-gram (:mod:`tests.small_lm`, with its ARPA file),
the quantised one the model bundled with the package. The other variants are built with
KenLM's ``build_binary`` (``lm/build_kenlm.sh`` compiles it in about a minute); those tests
run where it is on the PATH, in ``build/kenlm/bin`` or in ``$KENLM_BIN``, and are skipped
elsewhere.
"""

from __future__ import annotations

import gzip
import random
import subprocess
from pathlib import Path

import kenlm
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastctc.kenlm_binary import read_kenlm_trie
from fastctc.kernels import kenlm_trie as kt
from fastctc.kernels import ngram as kn
from fastctc.ngram import read_arpa
from tests import small_lm
from tests.conftest import (
    BUNDLED_LM,
    bundled_unigrams,
    demo_sentences,
    kenlm_tool,
    kenlm_tools_reason,
    needs_kenlm_tools,
)
from tests.kenlm_reference import kenlm_scores, score_sentences

TINY = Path(__file__).parent / "data" / "tiny.arpa"
SMALL_BIN = small_lm.BINARY

BUILD_BINARY = kenlm_tool("build_binary")
needs_build_binary = needs_kenlm_tools("build_binary")

#: build_binary options of the trie variants: plain, quantised, compressed pointers, both.
VARIANTS = {
    "trie": [],
    "quant8": ["-q", "8", "-b", "8"],
    "array0": ["-a", "0"],
    "array22": ["-a", "22"],
    "quant8-array22": ["-q", "8", "-b", "8", "-a", "22"],
    "quant4-3-array64": ["-q", "4", "-b", "3", "-a", "64"],
}


def build(arpa: Path, out: Path, *options: str, kind: str = "trie") -> Path:
    subprocess.run(
        [BUILD_BINARY, *options, kind, str(arpa), str(out)], check=True, capture_output=True
    )
    return out


def assert_matches_kenlm(tables, model, sentences) -> None:
    """Equal float32 bit patterns (signs of zero included) for every word."""
    for bos in (True, False):
        for words in sentences:
            got = tables.log10_scores(words, bos)
            assert got.dtype == np.float32
            want = np.array(kenlm_scores(model, words, bos), dtype=np.float32)
            assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist(), (words, bos)


@pytest.fixture(scope="module")
def sentences():
    """400 word sequences for the small model: 200 held-out sentences, 200 with noise."""
    return score_sentences(small_lm.dev_sentences(), small_lm.unigrams())


@pytest.fixture(scope="module")
def small_arpa(tmp_path_factory):
    """The small model's ARPA file, unzipped (for build_binary)."""
    path = tmp_path_factory.mktemp("arpa") / "small_4gram.arpa"
    path.write_bytes(gzip.decompress(small_lm.ARPA.read_bytes()))
    return path


@pytest.fixture(scope="module")
def small_bin():
    return read_kenlm_trie(SMALL_BIN)


# ---------------------------------------------------------------------------- shipped models
@pytest.mark.reference
def test_small_trie_matches_kenlm(small_bin, sentences):
    assert small_bin is not None and small_bin.order == 4
    assert len(small_bin.words) == small_lm.manifest()["ngram_counts"]["1"]
    assert small_bin.words[0] == "<unk>"
    assert set(small_lm.unigrams()) <= set(small_bin.words)
    assert_matches_kenlm(small_bin, kenlm.Model(str(SMALL_BIN)), sentences)


@pytest.mark.reference
def test_bundled_quantised_trie_matches_kenlm():
    """English sentences the model never saw (the demo transcripts), then the small model's
    held-out sentences (mostly known words), each also with noise words mixed in."""
    sents = demo_sentences() + small_lm.dev_sentences()[: 200 - len(demo_sentences())]
    tables = read_kenlm_trie(BUNDLED_LM)
    assert tables is not None and tables.order == 4
    assert_matches_kenlm(
        tables, kenlm.Model(str(BUNDLED_LM)), score_sentences(sents, bundled_unigrams())
    )


def arpa_ngrams(path: Path) -> dict[int, list[tuple[str, ...]]]:
    """The n-grams an ARPA file lists, by order (read straight from its text)."""
    grams: dict[int, list[tuple[str, ...]]] = {}
    n = 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("\\") and line.endswith("-grams:"):
                n = int(line[1:].split("-")[0])
                grams[n] = []
            elif line.startswith("\\"):
                n = 0
            elif n and line:
                grams[n].append(tuple(line.split("\t")[1].split(" ")))
    return grams


@numba.njit
def lookup(ids, keys, vals, meta):
    """``(prob, bow)`` stored for each n-gram ``ids[r]`` (one order, word ids in text order);
    NaN where the tables do not hold it."""
    n = ids.shape[1]
    out = np.full((ids.shape[0], 2), np.nan, dtype=np.float32)
    for r in range(ids.shape[0]):
        slot = kn.find_order(keys, meta, n, kn.gram_key(ids, r, 0, n))
        if slot >= 0:
            out[r, 0] = vals[slot, 0]
            out[r, 1] = vals[slot, 1]
    return out


def stored_values(tables, grams: list[tuple[str, ...]]) -> np.ndarray:
    """``(prob, bow)`` the tables hold for each n-gram of ``grams`` (words), NaN if none."""
    ids = np.array([[tables.ids[w] for w in g] for g in grams], dtype=np.int64)
    return lookup(ids, tables.keys, tables.vals, tables.meta)


def test_trie_tables_agree_with_arpa(sentences):
    """The unquantised binary holds the ARPA file's values (rounded to float32, with its own
    word ids) and no inserted n-grams, so both readers score alike."""
    bin_tables = read_kenlm_trie(SMALL_BIN)
    arpa_tables = read_arpa(small_lm.ARPA)
    assert bin_tables.order == arpa_tables.order == 4
    assert sorted(bin_tables.words) == sorted(arpa_tables.words)
    assert bin_tables.words != arpa_tables.words  # numbered differently: hash vs file order
    to_bin = [bin_tables.ids[w] for w in arpa_tables.words]
    assert np.array_equal(bin_tables.uni[to_bin], arpa_tables.uni)
    # the same n-grams (as many, each of the ARPA file's in both) with the same values
    grams = arpa_ngrams(small_lm.ARPA)
    assert stored_counts(bin_tables) == stored_counts(arpa_tables)
    assert stored_counts(arpa_tables) == [len(grams[n]) for n in range(2, 5)]
    for n in range(2, 5):
        mine, theirs = stored_values(bin_tables, grams[n]), stored_values(arpa_tables, grams[n])
        assert not np.isnan(theirs).any() and not np.isnan(mine).any(), n
        assert np.array_equal(mine, theirs), n
    for words_ in sentences[:100]:
        for bos in (True, False):
            assert (
                bin_tables.log10_scores(words_, bos).tolist()
                == arpa_tables.log10_scores(words_, bos).tolist()
            )


# ---------------------------------------------------------------------------- variants
@pytest.fixture(scope="module")
def variants(tmp_path_factory, small_arpa):
    if BUILD_BINARY is None:
        pytest.skip(kenlm_tools_reason(["build_binary"]))
    d = tmp_path_factory.mktemp("variants")
    return {name: build(small_arpa, d / f"{name}.bin", *opts) for name, opts in VARIANTS.items()}


@needs_build_binary
@pytest.mark.reference
@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "trie"])
def test_4gram_variant_matches_kenlm(variants, sentences, name):
    tables = read_kenlm_trie(variants[name])
    assert tables is not None
    assert_matches_kenlm(tables, kenlm.Model(str(variants[name])), sentences[::3])


@needs_build_binary
def test_pointer_compression_keeps_the_tables(variants, small_bin):
    """Unquantised, with or without compressed pointers: the same tables as small_4gram.bin."""
    for name in ("trie", "array0", "array22"):
        tables = read_kenlm_trie(variants[name])
        assert tables.words == small_bin.words
        for a, b in zip(tables.arrays(True), small_bin.arrays(True), strict=True):
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), name


@needs_build_binary
@pytest.mark.reference
@pytest.mark.parametrize("name", list(VARIANTS))
def test_tiny_bigram_variants(tmp_path, name):
    """Order 2: no middle orders, so nothing to compress or quantise but the bigrams."""
    path = build(TINY, tmp_path / "tiny.bin", *VARIANTS[name])
    tables = read_kenlm_trie(path)
    assert tables is not None and tables.order == 2
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "</s>", "<unk>", "zz", "<s>"]
    rnd = random.Random(3)
    seqs = [[rnd.choice(words) for _ in range(rnd.randint(1, 8))] for _ in range(100)]
    assert_matches_kenlm(tables, kenlm.Model(str(path)), seqs)


# ---------------------------------------------------------------------------- random models
def stored_counts(tables) -> list[int]:
    """Number of n-grams in the hash table of each order from 2."""
    meta = tables.meta
    return [
        int(np.count_nonzero(tables.keys[meta[2 * n] : meta[2 * n] + meta[2 * n + 1] + 1]))
        for n in range(2, tables.order + 1)
    ]


def random_arpa(seed: int) -> tuple[str, list[str], bool]:
    """A random back-off model of order 2 to 5 over a few words: probabilities and back-offs
    in varied notations (0 and -0 included), back-offs missing or zero on contexts, <unk>
    missing or with n-grams of its own; for odd seeds, SRILM-style gaps (n-grams without their
    last n-1 words as an n-gram, which build_binary fills in). Returns the text, the words
    and whether it has gaps."""
    r = random.Random(seed)
    order = 2 + seed % 4
    gaps = seed % 2 == 1
    unk = seed % 3 != 0
    words = [f"w{i}" for i in range(r.randint(3, 8))]
    pool = words + ["<unk>"] * unk
    grams: dict[int, set[tuple[str, ...]]] = {n: set() for n in range(1, order + 1)}
    grams[1] = {(w,) for w in ["<s>", "</s>", *pool]}
    for _ in range(r.randint(10, 60)):
        n = r.randint(2, order)
        g = [r.choice(pool) for _ in range(n)]
        if r.random() < 0.3:
            g[0] = "<s>"
        if r.random() < 0.3:
            g[-1] = "</s>"
        for k in range(2, n + 1):
            for s in range(0, n - k + 1):
                if s == 0 or not gaps or r.random() < 0.4:
                    grams[k].add(tuple(g[s : s + k]))
    for n in range(order, 2, -1):  # every context is an n-gram
        grams[n - 1].update(g[:-1] for g in grams[n])
    contexts = {g[:-1] for n in range(2, order + 1) for g in grams[n]}

    def number(lo, hi):
        return r.choice(
            [f"{r.uniform(lo, hi):.{r.randint(1, 7)}f}", f"{r.uniform(lo, hi):.3g}", "0", "-0"]
        )

    lines = ["\\data\\", *(f"ngram {n}={len(grams[n])}" for n in grams), ""]
    for n in range(1, order + 1):
        lines.append(f"\\{n}-grams:")
        for g in sorted(grams[n]):
            prob = "-99" if g == ("<s>",) else number(-3.0, 0.0)
            bow = None if n == order or r.random() < 0.3 else number(-1.5, 0.8)
            if bow is None and n < order and g in contexts and r.random() < 0.5:
                bow = "0"
            lines.append(f"{prob}\t{' '.join(g)}" + ("" if bow is None else f"\t{bow}"))
        lines.append("")
    lines.append("\\end\\")
    return "\n".join(lines) + "\n", words, gaps


@needs_build_binary
@pytest.mark.reference
@pytest.mark.parametrize("seed", range(8))
def test_random_models_match_kenlm(tmp_path, seed):
    text, words, gaps = random_arpa(seed)
    arpa = tmp_path / "m.arpa"
    arpa.write_text(text)
    declared = [int(line.split("=")[1]) for line in text.splitlines() if line.startswith("ngram ")]
    rnd = random.Random(seed)
    vocab = words + ["</s>", "<s>", "<unk>", "zz"]
    seqs = [[rnd.choice(vocab) for _ in range(rnd.randint(1, 12))] for _ in range(80)]
    for opts in ([], ["-q", "8", "-b", "8"], ["-a", "0"], ["-q", "3", "-b", "2", "-a", "2"]):
        path = build(arpa, tmp_path / "m.bin", *opts)
        tables = read_kenlm_trie(path)
        assert tables is not None
        if gaps:
            assert stored_counts(tables) > declared[1:]  # build_binary filled the gaps in
        assert_matches_kenlm(tables, kenlm.Model(str(path)), seqs)


# ---------------------------------------------------------------------------- not read
#: "<s> cat cat cat" needs "cat cat cat" and "cat cat" filled in; build_binary leaves the
#: inserted bigram without its "extends" mark although the inserted trigram starts with it, so
#: KenLM's state drops "cat cat" and reaches "cat cat cat" only through longer contexts: scores
#: that can depend on more than the last three words, which the tables cannot give.
UNMARKED_CONTEXT = """\\data\\
ngram 1=4
ngram 2=1
ngram 3=1
ngram 4=1

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.5
-0.8\t</s>
-0.6\tcat\t-0.25

\\2-grams:
-0.3\t<s> cat\t-0.2

\\3-grams:
-0.2\t<s> cat cat\t-0.1

\\4-grams:
-0.1\t<s> cat cat cat

\\end\\
"""


@needs_build_binary
@pytest.mark.parametrize("options", [[], ["-q", "4", "-b", "2"]])
def test_unmarked_inserted_context_is_not_read(tmp_path, options):
    arpa = tmp_path / "m.arpa"
    arpa.write_text(UNMARKED_CONTEXT)
    path = build(arpa, tmp_path / "m.bin", *options)
    assert kenlm.Model(str(path)).order == 4
    assert read_kenlm_trie(path) is None


@needs_build_binary
def test_probing_binaries_are_not_read(tmp_path, small_arpa):
    assert read_kenlm_trie(build(TINY, tmp_path / "t.bin", kind="probing")) is None
    big = build(small_arpa, tmp_path / "p.bin", kind="probing")
    assert read_kenlm_trie(big) is None


@needs_build_binary
def test_trie_without_words_is_not_read(tmp_path):
    path = build(TINY, tmp_path / "t.bin", "-v")
    assert kenlm.Model(str(path)).order == 2
    assert read_kenlm_trie(path) is None


def test_other_files_are_not_read(tmp_path, small_arpa):
    assert read_kenlm_trie(small_arpa) is None
    assert read_kenlm_trie(small_lm.ARPA) is None
    assert read_kenlm_trie(TINY) is None
    gz = tmp_path / "m.bin.gz"
    gz.write_bytes(gzip.compress(SMALL_BIN.read_bytes()[:4096]))
    assert read_kenlm_trie(gz) is None
    for name, data in {
        "empty": b"",
        "random": bytes(random.Random(5).getrandbits(8) for _ in range(4096)),
        "short": b"mmap",
    }.items():
        (tmp_path / name).write_bytes(data)
        assert read_kenlm_trie(tmp_path / name) is None, name


def test_other_versions_and_byte_orders_are_not_read(tmp_path):
    good = SMALL_BIN.read_bytes()
    edits = {
        "version 4": good.replace(b"format version 5", b"format version 4", 1),
        "unfinished": b"mmap lm http://kheafield.com/code incomplete\n" + good[45:],
        "byte order": good[:60] + good[60:64][::-1] + good[64:],  # the float 1.0 swapped
        "trie version": good[:104] + b"\x02" + good[105:],
        "probing type": good[:96] + b"\x00" + good[97:],
        "unknown type": good[:96] + b"\x07" + good[97:],
    }
    for name, data in edits.items():
        (tmp_path / "x.bin").write_bytes(data)
        assert read_kenlm_trie(tmp_path / "x.bin") is None, name


def test_truncated_file_raises(tmp_path):
    good = SMALL_BIN.read_bytes()
    path = tmp_path / "cut.bin"
    # in the check values, the counts, the trie, the words
    for size in (70, 120, len(good) // 2, len(good) - 40, len(good) - 1):
        path.write_bytes(good[:size])
        with pytest.raises(ValueError, match="truncated") as err:
            read_kenlm_trie(path)
        assert str(path) in str(err.value)


def test_quantised_truncated_raises(tmp_path):
    good = BUNDLED_LM.read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(good[:3000])
    with pytest.raises(ValueError, match="truncated"):
        read_kenlm_trie(path)


# ---------------------------------------------------------------------------- kernels
def murmur64a_ref(data: bytes) -> int:
    """MurmurHash64A (seed 0) in plain Python, as Austin Appleby's reference code."""
    m, mask = 0xC6A4A7935BD1E995, (1 << 64) - 1
    h = (len(data) * m) & mask
    whole = len(data) // 8 * 8
    for i in range(0, whole, 8):
        k = (int.from_bytes(data[i : i + 8], "little") * m) & mask
        k = ((k ^ (k >> 47)) * m) & mask
        h = ((h ^ k) * m) & mask
    if len(data) > whole:
        h = ((h ^ int.from_bytes(data[whole:], "little")) * m) & mask
    h = ((h ^ (h >> 47)) * m) & mask
    return h ^ (h >> 47)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=9))
def test_murmur64a_matches_reference(data, before):
    buf = np.frombuffer(before + data + b"\0", dtype=np.uint8)
    with np.errstate(over="ignore"):  # uint64 products wrap, silently once compiled
        got = int(kt.murmur64a(buf, len(before), len(before) + len(data)))
    assert got == murmur64a_ref(data)


def test_vocabulary_hashes_are_murmur64a(small_bin):
    """The reference gives the hashes build_binary stored for the small model's words (its
    vocabulary: a count, then the hashes in ascending order; layout in fastctc.lm.kenlm_binary),
    and hashes_match checks them all."""
    data = SMALL_BIN.read_bytes()
    at = (108 + 8 * small_bin.order + 7) // 8 * 8
    n = int(np.frombuffer(data, "<u8", 1, at)[0])
    stored = np.frombuffer(data, "<u8", n, at + 8)
    words = [w.encode() for w in small_bin.words[1:]]  # without <unk>
    assert n == len(words)
    assert stored.tolist() == sorted(murmur64a_ref(w) for w in words)
    buf = np.frombuffer(b"".join(words), dtype=np.uint8)
    ends = np.cumsum([len(w) for w in words])
    starts = ends - [len(w) for w in words]
    by_word = np.array([murmur64a_ref(w) for w in words], dtype=np.uint64)
    assert kt.hashes_match(buf, starts, ends, by_word)
    by_word[-1] ^= np.uint64(1)
    assert not kt.hashes_match(buf, starts, ends, by_word)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_unpack_fields_matches_reference(data):
    """Fields of bit-packed records, against Python's big integers."""
    widths = data.draw(st.lists(st.integers(1, 57), min_size=1, max_size=3))
    total = sum(widths) + data.draw(st.integers(0, 9))
    count = data.draw(st.integers(1, 12))
    raw = data.draw(st.binary(min_size=(count * total + 7) // 8, max_size=(count * total + 7) // 8))
    offsets = np.cumsum([0, *widths[:-1]])
    padded = np.zeros((len(raw) + 15) // 8 * 8, dtype=np.uint8)
    padded[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    out = np.empty((count, len(widths)), dtype=np.uint64)
    kt.unpack_fields(
        padded.view("<u8").astype(np.uint64), count, total, offsets, np.array(widths), out
    )
    bits = int.from_bytes(raw, "little")
    want = [
        [
            (bits >> (i * total + int(o))) & ((1 << w) - 1)
            for o, w in zip(offsets, widths, strict=True)
        ]
        for i in range(count)
    ]
    assert out.tolist() == want
