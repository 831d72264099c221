"""The lm/ recipe (corpus normalisation, unigram list, KenLM commands) and the bundled model.

The pure-Python steps are tested everywhere. Building a model from a tiny corpus needs KenLM's
``lmplz`` and ``build_binary`` (``lm/build_kenlm.sh`` compiles them in about a minute); that
test runs where they are on the PATH, in ``build/kenlm/bin`` or in ``$KENLM_BIN``.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATA = ROOT / "fastctc" / "data"


def _load_recipe():
    spec = importlib.util.spec_from_file_location("build_lm", ROOT / "lm" / "build_lm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_lm"] = module
    spec.loader.exec_module(module)
    return module


lm = _load_recipe()

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
        "don't said elise twice")
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
        "lmplz", "-o", "3", "-S", "10%", "-T", "/t", "--discount_fallback",
        "--prune", "0", "1", "1"]
    with pytest.raises(ValueError, match="at most 2"):
        lm.lmplz_command("lmplz", 2, [0, 1, 1], "10%", "/t")
    assert lm.build_binary_command("bb", "a.arpa", "a.bin", 8, "trie") == [
        "bb", "-q", "8", "-b", "8", "trie", "a.arpa", "a.bin"]
    with pytest.raises(ValueError, match="trie"):
        lm.build_binary_command("bb", "a.arpa", "a.bin", 8, "probing")


def test_bundled_model_provenance():
    """The shipped model is what its manifest says, and never saw the demo sentences."""
    import kenlm

    manifest = json.loads((DATA / "en_4gram.json").read_text())
    binary = DATA / manifest["model"]
    assert binary.stat().st_size == manifest["binary_bytes"] < 5_000_000
    unigrams = (DATA / manifest["unigrams"]).read_text().split()
    assert len(unigrams) == manifest["unigram_count"] == manifest["ngram_counts"]["1"] - 3
    model = kenlm.Model(str(binary))
    assert model.order == manifest["order"] == 4
    assert all(w in model for w in unigrams[:: max(1, len(unigrams) // 500)])
    # trained on the shared corpus (same checksum), which holds none of the demo sentences
    corpus = SHARED / manifest["corpus"]
    assert lm.sha256(corpus) == manifest["corpus_sha256"]
    demo = json.loads((DATA / "demo.json").read_text())["transcripts"]
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        lines = {lm.normalise_line(x) for x in fh}
    assert not lines & set(demo.values())
    # an English model: a real sentence scores far better than its words reversed
    s = "i only know what i read in the papers"
    assert model.score(s) > model.score(" ".join(reversed(s.split()))) + 5


KENLM_BIN = os.environ.get("KENLM_BIN")
HAVE_TOOLS = lm.find_tool("lmplz", KENLM_BIN) and lm.find_tool("build_binary", KENLM_BIN)


@pytest.mark.skipif(not HAVE_TOOLS, reason="KenLM's lmplz/build_binary not built: run "
                    "lm/build_kenlm.sh (about a minute) or set KENLM_BIN")
def test_recipe_builds_a_model(tmp_path):
    import kenlm

    corpus = tmp_path / "tiny.txt"
    corpus.write_text("The cat sat on the mat.\nThe dog sat on the log!\n" * 20
                      + "A cat and a dog.\n" * 5)
    manifest = lm.build_model(corpus, tmp_path / "out", "tiny", order=3, quantize=None,
                              keep_arpa=True, kenlm_bin=KENLM_BIN, memory="64M")
    assert manifest["normalisation"]["lines_out"] == 45
    uni = (tmp_path / "out" / "tiny.unigrams.txt").read_text().split()
    assert sorted(uni) == sorted({"the", "cat", "sat", "on", "mat", "dog", "log", "a", "and"})
    model = kenlm.Model(str(tmp_path / "out" / "tiny.bin"))
    arpa = kenlm.Model(str(tmp_path / "out" / "tiny.arpa"))
    assert model.order == 3
    for s in ("the cat sat on the mat", "a dog and a cat", "mat the on"):
        assert math.isclose(model.score(s), arpa.score(s), abs_tol=1e-4)
    assert model.score("the cat sat on the mat") > model.score("mat the on sat cat the")
