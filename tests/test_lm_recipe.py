"""The lm/ recipe (corpus normalisation, unigram list, KenLM commands), the bundled model and
the suite's own small model.

The pure-Python steps and both models' manifests are tested everywhere. Building a model needs
KenLM's ``lmplz`` and ``build_binary`` (``lm/build_kenlm.sh`` compiles them in about a minute);
those tests run where they are on the PATH, in ``build/kenlm/bin`` or in ``$KENLM_BIN``, and are
skipped elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math

import numpy as np
import pytest

from tests import small_lm
from tests.conftest import BUNDLED, KENLM_BIN, build_lm, demo_sentences, needs_kenlm_tools

DATA = BUNDLED
lm = build_lm()
needs_tools = needs_kenlm_tools("lmplz", "build_binary")

TINY_ARPA = """\\data\\
ngram 1=5
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
0\t<s>\t-0.3
-0.5\t</s>\t0
-0.6\tthe\t-0.2
-0.7\tcat's\t-0.1

\\2-grams:
-0.2\t<s> the
-0.3\tthe cat's

\\end\\
"""


def test_normalise_line():
    assert lm.normalise_line("\u201cDon\u2019t!\u201d said \u00c9lise -- twice.") == (
        "don't said elise twice"
    )
    assert lm.normalise_line("  'Tis the 3rd   of May, 1815 ") == "tis the rd of may"
    assert lm.normalise_line("rock'n'roll caf\u00e9") == "rock'n'roll cafe"
    assert lm.normalise_line("abc xyz", alphabet=" abc") == "abc"
    assert lm.normalise_line("a'b", alphabet=" ab") == "a b"  # apostrophe not a label


def test_alphabet_from_labels():
    assert lm.alphabet_from_labels(["", " ", "'", "a", "b"]) == " 'ab"
    assert lm.alphabet_from_labels(["<pad>", "<s>", "</s>", "<unk>", "|", "A", "B"]) == " ab"
    with pytest.raises(ValueError, match="not a single character"):
        lm.alphabet_from_labels(["", "\u2581the", "a"])


def test_normalise_corpus_and_counts(tmp_path):
    src = tmp_path / "c.txt.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        fh.write("The cat's hat.\n\n42!\nTHE CAT\n")
    stats = lm.normalise_corpus(src, tmp_path / "n.txt")
    assert (tmp_path / "n.txt").read_text() == "the cat's hat\nthe cat\n"
    assert stats == {"lines_in": 4, "lines_out": 2, "words": 5, "vocabulary": 4}
    assert lm.word_counts(tmp_path / "n.txt") == {"the": 2, "cat's": 1, "hat": 1, "cat": 1}


def test_unigrams_from_arpa(tmp_path):
    (tmp_path / "t.arpa").write_text(TINY_ARPA)
    assert lm.unigrams_from_arpa(tmp_path / "t.arpa") == ["the", "cat's"]
    assert lm.write_unigrams(["a", "b"], tmp_path / "u.txt") == 2
    assert (tmp_path / "u.txt").read_text() == "a\nb\n"
    (tmp_path / "bad.arpa").write_text("hello\n")
    with pytest.raises(ValueError, match="not an ARPA file"):
        lm.unigrams_from_arpa(tmp_path / "bad.arpa")


def test_commands():
    assert lm.lmplz_command("lmplz", 3, [0, 1, 1], "10%", "/t") == [
        "lmplz",
        "-o",
        "3",
        "-S",
        "10%",
        "-T",
        "/t",
        "--discount_fallback",
        "--prune",
        "0",
        "1",
        "1",
    ]
    with pytest.raises(ValueError, match="at most 2"):
        lm.lmplz_command("lmplz", 2, [0, 1, 1], "10%", "/t")
    assert lm.build_binary_command("bb", "a.arpa", "a.bin", 8, "trie") == [
        "bb",
        "-q",
        "8",
        "-b",
        "8",
        "trie",
        "a.arpa",
        "a.bin",
    ]
    with pytest.raises(ValueError, match="trie"):
        lm.build_binary_command("bb", "a.arpa", "a.bin", 8, "probing")


def _trie_header(data: bytes) -> dict:
    """Order, model type, n-gram counts, quantisation bits and stored words of a KenLM trie
    binary, read straight from its bytes (layout in ``fastctc/lm/kenlm_binary.py``)."""
    assert data.startswith(b"mmap lm http://kheafield.com/code format version 5\n")
    order = data[88]
    model_type = int(np.frombuffer(data, "<u4", 1, 96)[0])
    counts = [int(c) for c in np.frombuffer(data, "<u8", order, 108)]
    at = (108 + 8 * order + 7) // 8 * 8  # the vocabulary: a count, then V hashes
    assert int(np.frombuffer(data, "<u8", 1, at)[0]) == counts[0] - 1
    at += 8 + 8 * counts[0]
    bits = (data[at + 1], data[at + 2]) if model_type in (3, 5) else None
    words = [w.decode() for w in data.split(b"\0")[-counts[0] - 1 : -1]]  # at the very end
    return {"order": order, "type": model_type, "counts": counts, "bits": bits, "words": words}


#: When the bundled model was built, the demo transcripts were checked absent from its training
#: text (the corpus named in its manifest, which the repository does not ship). These pins make
#: a change on either side fail here: check again with that corpus (normalise each line with
#: ``build_lm.normalise_line``; no transcript may be among them), then update the pins.
CHECKED_CORPUS_SHA256 = "2ed0386bec1968f00bf603848c329572ba8e7839e006f2cfd770581ba9d06e95"
CHECKED_DEMO_SHA256 = "5c0501496c9db470594e1523f8bdab790cc589fa6447df6b8e365178f3530c8e"


def test_bundled_model_provenance():
    """The shipped model is what its manifest says, and never saw the demo sentences."""
    import kenlm

    manifest = json.loads((DATA / "en_4gram.json").read_text())
    binary = DATA / manifest["model"]
    data = binary.read_bytes()
    assert len(data) == manifest["binary_bytes"] < 5_000_000
    unigrams = (DATA / manifest["unigrams"]).read_text().split()
    assert len(unigrams) == manifest["unigram_count"] == manifest["ngram_counts"]["1"] - 3
    # the binary's header and words agree with the manifest and the unigram list
    header = _trie_header(data)
    assert header["order"] == manifest["order"] == 4
    assert header["type"] == 3  # trie, quantised
    assert header["bits"] == (manifest["quantize_bits"],) * 2 == (8, 8)
    assert header["counts"] == [manifest["ngram_counts"][str(n)] for n in range(1, 5)]
    assert header["words"][0] == "<unk>"
    assert sorted(header["words"]) == sorted([*unigrams, "<unk>", "<s>", "</s>"])
    # every word spelled in the manifest's alphabet, the recipe's English labels
    assert manifest["alphabet"] == lm.ENGLISH_CHARS
    assert all(lm.normalise_line(w) == w for w in unigrams)
    model = kenlm.Model(str(binary))
    assert model.order == manifest["order"] == 4
    assert all(w in model for w in unigrams[:: max(1, len(unigrams) // 500)])
    # trained on the corpus the demo sentences were checked against (see the pins)
    assert manifest["corpus"] == "corpus_train.txt.gz"
    assert manifest["corpus_sha256"] == CHECKED_CORPUS_SHA256
    demo = demo_sentences()
    assert hashlib.sha256("\n".join(demo).encode()).hexdigest() == CHECKED_DEMO_SHA256
    assert all(lm.normalise_line(s) == s for s in demo)
    # an English model: a real sentence scores far better than its words reversed
    s = "i only know what i read in the papers"
    assert model.score(s) > model.score(" ".join(reversed(s.split()))) + 5


def test_small_model_provenance(tmp_path):
    """tests/data/small_4gram.*: built by the recipe from the corpus of tests.small_lm (same
    checksum and counts), files consistent with the manifest, dev sentences held out."""
    import kenlm

    manifest = small_lm.manifest()
    corpus = tmp_path / manifest["corpus"]
    corpus.write_text(small_lm.corpus_text(), encoding="utf-8")
    assert lm.sha256(corpus) == manifest["corpus_sha256"]
    assert lm.normalise_corpus(corpus, tmp_path / "n.txt") == manifest["normalisation"]
    assert (tmp_path / "n.txt").read_text() == corpus.read_text()  # already normalised
    assert manifest["order"] == small_lm.ORDER
    assert manifest["prune"] == small_lm.PRUNE
    assert manifest["quantize_bits"] is None
    assert manifest["alphabet"] == lm.ENGLISH_CHARS
    unigrams = small_lm.unigrams()
    assert lm.unigrams_from_arpa(small_lm.ARPA) == unigrams
    assert len(unigrams) == manifest["unigram_count"] == manifest["ngram_counts"]["1"] - 3
    assert set(unigrams) == set(lm.word_counts(tmp_path / "n.txt"))
    data = small_lm.BINARY.read_bytes()
    assert len(data) == manifest["binary_bytes"]
    header = _trie_header(data)
    assert header["type"] == 2 and header["bits"] is None  # trie, unquantised
    assert header["order"] == 4
    assert header["counts"] == [manifest["ngram_counts"][str(n)] for n in range(1, 5)]
    assert sorted(header["words"]) == sorted([*unigrams, "<unk>", "<s>", "</s>"])
    with gzip.open(small_lm.ARPA, "rt") as fh:
        head = [next(fh) for _ in range(5)]
    assert head[1:] == [f"ngram {n}={manifest['ngram_counts'][str(n)]}\n" for n in range(1, 5)]
    # held out: not in the training text, spelled in the labels, scored by the model
    dev = small_lm.dev_sentences()
    assert len(set(dev)) == len(dev) == 200
    assert not set(dev) & set(small_lm.corpus_lines())
    assert all(lm.normalise_line(s) == s for s in dev)
    model = kenlm.Model(str(small_lm.BINARY))
    s = dev[2]
    assert model.score(s) > model.score(" ".join(reversed(s.split()))) + 5


def _arpa_entries(path) -> dict[tuple[str, str], list[float]]:
    """(section, n-gram) -> [log10 probability, back-off?] of an ARPA file."""
    out, section = {}, None
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("\\"):
                section = line
            elif line and section and section.endswith("-grams:"):
                parts = line.split("\t")
                out[(section, parts[1])] = [float(x) for x in parts[::2]]
    return out


@needs_tools
def test_small_model_rebuilds(tmp_path):
    """The recipe rebuilds tests/data/small_4gram.* from the corpus of tests.small_lm: the same
    n-grams and values (to KenLM's printed precision), word list and scores."""
    import kenlm

    manifest = small_lm.rebuild(tmp_path, lm, KENLM_BIN)
    want = small_lm.manifest()
    for key in set(want) - {"build_seconds", "binary_bytes"}:
        assert manifest[key] == want[key], key
    built, committed = (_arpa_entries(p) for p in (tmp_path / "small_4gram.arpa", small_lm.ARPA))
    assert built.keys() == committed.keys()
    for key, values in committed.items():
        assert built[key] == pytest.approx(values, abs=2e-6), key
    assert (tmp_path / "small_4gram.unigrams.txt").read_text() == small_lm.UNIGRAMS.read_text()
    new, old = (kenlm.Model(str(p)) for p in (tmp_path / "small_4gram.bin", small_lm.BINARY))
    for s in small_lm.dev_sentences()[:50]:
        assert new.score(s) == pytest.approx(old.score(s), abs=1e-4)


@needs_tools
def test_recipe_builds_a_model(tmp_path):
    import kenlm

    corpus = tmp_path / "tiny.txt"
    corpus.write_text(
        "The cat sat on the mat.\nThe dog sat on the log!\n" * 20 + "A cat and a dog.\n" * 5
    )
    manifest = lm.build_model(
        corpus,
        tmp_path / "out",
        "tiny",
        order=3,
        quantize=None,
        keep_arpa=True,
        kenlm_bin=KENLM_BIN,
        memory="64M",
    )
    assert manifest["normalisation"]["lines_out"] == 45
    uni = (tmp_path / "out" / "tiny.unigrams.txt").read_text().split()
    assert sorted(uni) == sorted({"the", "cat", "sat", "on", "mat", "dog", "log", "a", "and"})
    model = kenlm.Model(str(tmp_path / "out" / "tiny.bin"))
    arpa = kenlm.Model(str(tmp_path / "out" / "tiny.arpa"))
    assert model.order == 3
    for s in ("the cat sat on the mat", "a dog and a cat", "mat the on"):
        assert math.isclose(model.score(s), arpa.score(s), abs_tol=1e-4)
    assert model.score("the cat sat on the mat") > model.score("mat the on sat cat the")
