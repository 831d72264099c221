"""ARPA tables (fastctc.ngram) against a plain-Python back-off reference and against KenLM,
bit for bit in float32, plus every malformed-file error."""

from __future__ import annotations

import doctest
import gzip
import re
from pathlib import Path

import kenlm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc.lm.kenlm_binary
import fastctc.lm.ngram
from fastctc.lm import LanguageModel
from fastctc.ngram import arpa_unigrams, looks_like_arpa, read_arpa
from tests import small_lm
from tests.kenlm_reference import kenlm_scores, score_sentences

TINY = Path(__file__).parent / "data" / "tiny.arpa"
TINY_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "</s>"]

#: A trigram model with back-off chains two levels deep, a <unk> that has a back-off and
#: n-grams of its own, and probabilities whose float32 sums round.
TRIGRAM = """\
\\data\\
ngram 1=8
ngram 2=9
ngram 3=5

\\1-grams:
-2.0123457\t<unk>\t-0.25
-99\t<s>\t-0.6180339
-1.1\t</s>
-0.9031\tthe\t-0.4512345
-1.3010299\tcat\t-0.3478
-1.4471580\tsat\t-0.30103
-1.2553\ton\t-0.5
-1.7\tmat\t-0.1549

\\2-grams:
-0.3521825\t<s> the\t-0.2218487
-0.5528419\tthe cat\t-0.3010299
-0.9542425\tthe mat\t-0.1
-0.39794\tcat sat\t-0.2518
-0.30103\tsat on\t-0.1461
-0.2\ton the\t-0.4
-0.4559320\tmat </s>
-0.8\t<unk> sat\t-0.7
-0.61\t<s> <unk>\t-0.05

\\3-grams:
-0.1249387\t<s> the cat
-0.2218487\tthe cat sat
-0.1760913\tsat on the
-0.3304\ton the mat
-0.45\t<unk> sat on

\\end\\
"""
TRIGRAM_WORDS = ["the", "cat", "sat", "on", "mat", "</s>", "<unk>"]


# ---------------------------------------------------------------------------- reference
class RefArpa:
    """Plain ARPA reader: n-gram tuple -> (float32 prob, float32 back-off)."""

    def __init__(self, text: str) -> None:
        self.grams: dict[tuple[str, ...], tuple[np.float32, np.float32]] = {}
        self.order = 0
        section = 0
        for line in text.splitlines():
            s = line.strip()
            head = re.fullmatch(r"\\(\d+)-grams:", s)
            if head:
                section = int(head.group(1))
                self.order = max(self.order, section)
            elif s == "\\end\\":
                break
            elif s and section:
                fields = s.split("\t")
                words = tuple(fields[1].split())
                assert len(words) == section
                bow = float(fields[2]) if len(fields) > 2 else 0.0
                self.grams[words] = (np.float32(float(fields[0])), np.float32(bow))
        self.grams.setdefault(("<unk>",), (np.float32(-100.0), np.float32(0.0)))

    def prob(self, context: list[str], word: str) -> np.float32:
        """Textbook back-off: the longest stored n-gram, plus the back-offs of the longer
        stored contexts in order of increasing length."""
        m = len(context)
        k = m
        while tuple(context[m - k :]) + (word,) not in self.grams:
            k -= 1
        p = self.grams[tuple(context[m - k :]) + (word,)][0]
        for j in range(k + 1, m + 1):
            ctx = tuple(context[m - j :])
            if ctx in self.grams:
                p = np.float32(p + self.grams[ctx][1])
        return p

    def scores(self, words: list[str], bos: bool = True) -> list[float]:
        history = ["<s>"] if bos else []
        out = []
        for w in words:
            w = w if (w,) in self.grams else "<unk>"
            context = history[len(history) - (self.order - 1) :] if self.order > 1 else []
            out.append(self.prob(context, w))
            history.append(w)
        return [float(p) for p in out]


def ours(tables, words, bos=True) -> list[float]:
    got = tables.log10_scores(words, bos=bos)
    assert got.dtype == np.float32 and got.shape == (len(words),)
    return got.tolist()


@pytest.fixture(scope="module")
def tiny():
    return read_arpa(TINY), RefArpa(TINY.read_text())


@pytest.fixture(scope="module")
def trigram(tmp_path_factory):
    path = tmp_path_factory.mktemp("arpa") / "tri.arpa"
    path.write_text(TRIGRAM)
    return read_arpa(path), RefArpa(TRIGRAM), kenlm.Model(str(path))


# ---------------------------------------------------------------------------- tiny model
def test_reference_by_hand():
    """The reference itself, on values read off tiny.arpa."""
    ref = RefArpa(TINY.read_text())
    f = np.float32
    assert ref.scores(["the", "dog"]) == [f(-0.3), f(f(-1.9) + f(-0.4))]
    assert ref.scores(["zebra"], bos=False) == [f(-1.0)]
    assert ref.scores(["mat", "</s>"], bos=False) == [f(-1.8), f(-0.5)]


@pytest.mark.parametrize("bos", [True, False])
@pytest.mark.parametrize(
    "sentence",
    [
        "the cat sat on the mat </s>",
        "a dog sat on a mat </s>",
        "the zebra sat",
        "zebra yak the",
        "dog dog dog cat",
        "mat </s> the </s>",
        "<unk> the cat",
        "</s>",
    ],
)
def test_tiny_hand_picked(tiny, sentence, bos):
    tables, ref = tiny
    words = sentence.split()
    assert ours(tables, words, bos) == ref.scores(words, bos)


def test_tiny_values():
    """A few scores written out: bigram, back-off to a unigram, unknown word, no <s>."""
    tables = read_arpa(TINY)
    f = np.float32
    assert ours(tables, ["the", "cat", "dog"]) == [f(-0.3), f(-0.6), f(f(-1.9) + f(-0.3))]
    assert ours(tables, ["zebra", "the"]) == [f(f(-1.0) + f(-0.5)), f(-1.1)]
    assert ours(tables, ["the"], bos=False) == [f(-1.1)]
    assert ours(tables, []) == []


def test_tiny_vocabulary():
    tables = read_arpa(TINY)
    assert tables.order == 2
    assert tables.words[0] == "<unk>"
    assert set(tables.words) == {
        "<unk>",
        "<s>",
        "</s>",
        "the",
        "cat",
        "sat",
        "on",
        "mat",
        "a",
        "dog",
    }
    assert tables.id_of("zebra") == 0 and tables.words[tables.id_of("dog")] == "dog"


def test_gzipped_file_reads_the_same(tmp_path):
    gz = tmp_path / "tiny.arpa.gz"
    gz.write_bytes(gzip.compress(TINY.read_bytes()))
    assert looks_like_arpa(gz)
    words = "the cat sat on a mat </s>".split()
    assert ours(read_arpa(gz), words) == ours(read_arpa(TINY), words)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TINY_WORDS + ["zebra", "<unk>"]), max_size=12), st.booleans())
def test_tiny_random_sequences(tiny, words, bos):
    tables, ref = tiny
    assert ours(tables, words, bos) == ref.scores(words, bos)


# ---------------------------------------------------------------------------- trigram model
def test_trigram_back_off_chain(trigram):
    """'<s> the mat': no trigram, bigram 'the mat' plus the back-off of '<s> the'."""
    tables, ref, _ = trigram
    f = np.float32
    want = [f(-0.3521825), f(f(-0.9542425) + f(-0.2218487))]
    assert ref.scores(["the", "mat"]) == want
    assert ours(tables, ["the", "mat"]) == want


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TRIGRAM_WORDS + ["zebra"]), max_size=12), st.booleans())
def test_trigram_random_sequences(trigram, words, bos):
    tables, ref, model = trigram
    got = ours(tables, words, bos)
    assert got == ref.scores(words, bos)
    assert got == kenlm_scores(model, words, bos)


# ---------------------------------------------------------------------------- number formats
_FORMATS = [
    repr,
    "{:.7f}".format,
    "{:.9g}".format,
    "{:e}".format,
    "{:.3E}".format,
    "{:.0f}".format,
    "{:.17f}".format,
]
_LETTERS = ["a", "b", "c", "d"]


def _number(draw, lo, hi):
    x = draw(st.floats(lo, hi, allow_nan=False))
    return draw(st.sampled_from(_FORMATS))(x)


@st.composite
def bigram_models(draw):
    """A bigram ARPA text with every number drawn and written in a random notation."""
    num = lambda lo, hi: _number(draw, lo, hi)  # noqa: E731
    uni = [f"{num(-8, 0)}\t<unk>\t{num(-2, 1)}", f"-99\t<s>\t{num(-2, 1)}", f"{num(-8, 0)}\t</s>"]
    uni += [f"{num(-8, 0)}\t{w}\t{num(-2, 1)}" for w in _LETTERS]
    pairs = draw(
        st.sets(
            st.tuples(st.sampled_from(["<s>"] + _LETTERS), st.sampled_from(_LETTERS + ["</s>"])),
            min_size=1,
        )
    )
    bi = [f"{num(-8, 0)}\t{a} {b}" for a, b in sorted(pairs)]
    return (
        f"\\data\\\nngram 1={len(uni)}\nngram 2={len(bi)}\n\n\\1-grams:\n"
        + "\n".join(uni)
        + "\n\n\\2-grams:\n"
        + "\n".join(bi)
        + "\n\n\\end\\\n"
    )


@settings(max_examples=40, deadline=None)
@given(bigram_models())
def test_number_notations_match_kenlm(tmp_path_factory, text):
    """Every probability and back-off read as KenLM reads it, whatever the notation."""
    path = tmp_path_factory.mktemp("num") / "m.arpa"
    path.write_text(text)
    tables, ref, model = read_arpa(path), RefArpa(text), kenlm.Model(str(path))
    vocab = _LETTERS + ["</s>", "zz"]
    for first in vocab:
        for bos in (True, False):
            words = [first] + vocab
            got = ours(tables, words, bos)
            assert got == kenlm_scores(model, words, bos)
            assert got == ref.scores(words, bos)


def test_windows_line_ends(tmp_path, trigram):
    path = tmp_path / "crlf.arpa"
    path.write_bytes(TRIGRAM.replace("\n", "\r\n").encode())
    assert looks_like_arpa(path)
    words = "the cat sat on zebra the mat </s>".split()
    assert ours(read_arpa(path), words) == kenlm_scores(trigram[2], words)


def test_utf8_words(tmp_path):
    text = TRIGRAM.replace("cat", "café").replace("mat", "日本").replace("sat", "straße")
    path = tmp_path / "utf8.arpa"
    path.write_text(text, encoding="utf-8")
    tables, ref, model = read_arpa(path), RefArpa(text), kenlm.Model(str(path))
    for sentence in ["the café straße on the 日本 </s>", "café 日本 the straße", "cafe the 日本"]:
        for bos in (True, False):
            words = sentence.split()
            assert (
                ours(tables, words, bos)
                == ref.scores(words, bos)
                == kenlm_scores(model, words, bos)
            )


# ---------------------------------------------------------------------------- KenLM, 4-gram
@pytest.fixture(scope="module")
def small_4gram():
    """The suite's small 4-gram (tests.small_lm): tables from its gzipped ARPA file, and KenLM
    on the same file and on its trie binary."""
    tables = read_arpa(small_lm.ARPA)
    models = {
        "arpa": kenlm.Model(str(small_lm.ARPA)),
        "binary": kenlm.Model(str(small_lm.BINARY)),
    }
    return tables, models


@pytest.fixture(scope="module")
def sentences():
    return score_sentences(small_lm.dev_sentences(), small_lm.unigrams())


@pytest.mark.reference
@pytest.mark.parametrize("kind", ["arpa", "binary"])
@pytest.mark.parametrize("bos", [True, False])
def test_4gram_matches_kenlm(small_4gram, sentences, kind, bos):
    tables, models = small_4gram
    model = models[kind]
    for words in sentences:
        assert ours(tables, words, bos) == kenlm_scores(model, words, bos), words


def test_4gram_tables_shape(small_4gram):
    tables, models = small_4gram
    assert tables.order == 4 == models["arpa"].order
    vocab = small_lm.unigrams()
    assert set(vocab) <= set(tables.words)
    # the \data\ count of 1-grams, <unk> included
    assert len(tables.words) == small_lm.manifest()["ngram_counts"]["1"] == len(vocab) + 3


# ---------------------------------------------------------------------------- LanguageModel
def test_language_model_tables_for_arpa_and_trie():
    words = "the captain saw a little zzqx dog </s>".split()
    for path in (small_lm.ARPA, small_lm.BINARY):
        lm = LanguageModel(str(path))
        assert lm.ngram_tables is not None
        assert lm.ngram_tables.order == 4
        assert ours(lm.ngram_tables, words) == kenlm_scores(lm.kenlm_model, words)


def test_language_model_tables_from_tiny():
    lm = LanguageModel(str(TINY), ["the", "cat"])
    assert lm.ngram_tables is not None and lm.ngram_tables.order == 2


# ---------------------------------------------------------------------------- bad input
GOOD = """\
\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-1.2\t</s>\t0
-0.7\tcat\t-0.3

\\2-grams:
-0.3\t<s> cat
-0.4\tcat </s>

\\end\\
"""
# 1-based line numbers in GOOD
LINE_CAT = 9
LINE_CAT_END = 13


def _write(tmp_path, text, name="m.arpa"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _replace_line(text, number, new):
    lines = text.split("\n")
    lines[number - 1] = new
    return "\n".join(lines)


def test_good_file_reads(tmp_path):
    """The base of the broken files below is itself well formed."""
    path = _write(tmp_path, GOOD)
    assert looks_like_arpa(path)
    assert ours(read_arpa(path), ["cat", "</s>"]) == [np.float32(-0.3), np.float32(-0.4)]


def test_not_arpa(tmp_path):
    path = _write(tmp_path, "hello world\nthis is text\n", "plain.txt")
    assert not looks_like_arpa(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_arpa(path)


def test_binary_file_is_not_arpa():
    assert not looks_like_arpa(small_lm.BINARY)
    assert looks_like_arpa(small_lm.ARPA)  # gzipped
    assert looks_like_arpa(TINY)


def test_empty_file(tmp_path):
    path = _write(tmp_path, "")
    assert not looks_like_arpa(path)
    with pytest.raises(ValueError):
        read_arpa(path)


def test_missing_section(tmp_path):
    text = GOOD.replace("\\2-grams:", "\\3-grams:")
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=r"2-grams") as err:
        read_arpa(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("number", "line"),
    [
        (LINE_CAT, "-0.7x\tcat\t-0.3"),  # probability
        (LINE_CAT, "-0.7\tcat\tlow"),  # back-off
        (LINE_CAT_END, "minus\tcat </s>"),  # probability of a bigram
        (LINE_CAT_END - 1, "-0.3\t<s> cat\t-0.2.5"),  # back-off of a bigram
    ],
)
def test_bad_number(tmp_path, number, line):
    path = _write(tmp_path, _replace_line(GOOD, number, line))
    with pytest.raises(ValueError, match=rf"line {number}\b") as err:
        read_arpa(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("line", ["-0.4\tcat </s> cat", "-0.4\tcat"])
def test_wrong_number_of_words(tmp_path, line):
    path = _write(tmp_path, _replace_line(GOOD, LINE_CAT_END, line))
    with pytest.raises(ValueError, match=rf"line {LINE_CAT_END}\b") as err:
        read_arpa(path)
    assert str(path) in str(err.value)


def test_word_missing_from_unigrams(tmp_path):
    path = _write(tmp_path, _replace_line(GOOD, LINE_CAT_END, "-0.4\tcat dog"))
    with pytest.raises(ValueError, match=rf"line {LINE_CAT_END}\b.*dog") as err:
        read_arpa(path)
    assert str(path) in str(err.value)


def test_missing_fields(tmp_path):
    path = _write(tmp_path, _replace_line(GOOD, LINE_CAT, "-0.7"))
    with pytest.raises(ValueError, match=rf"line {LINE_CAT}\b"):
        read_arpa(path)


def test_bad_count_header(tmp_path):
    path = _write(tmp_path, GOOD.replace("ngram 2=2", "ngram two=2"))
    with pytest.raises(ValueError, match=r"line 3\b"):
        read_arpa(path)


def test_section_shorter_than_count(tmp_path):
    path = _write(tmp_path, GOOD.replace("ngram 2=2", "ngram 2=3"))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_arpa(path)


# ---------------------------------------------------------------------------- unigram lists
TINY_VOCAB = ["<unk>", "<s>", "</s>", "the", "cat", "sat", "on", "mat", "a", "dog"]

#: A unigram model (the unigram section runs to \end\) with 2-field lines and CRLF line ends.
UNIGRAM_ONLY = (
    "\\data\\\r\nngram 1=5\r\n\r\n\\1-grams:\r\n-1.0\t<unk>\r\n-99\t<s>\t-0.5\r\n"
    "-1.2\t</s>\t0\r\n-0.7\tcat\r\n-0.3\tdog\t-0.1\r\n\r\n\\end\\\r\n"
)


def test_arpa_unigrams_in_file_order(tmp_path):
    """The words of the 1-gram section in file order; the tables of the file hold the same
    words (with <unk> first: tiny.arpa lists it first)."""
    assert arpa_unigrams(TINY) == TINY_VOCAB == read_arpa(TINY).words
    gz = tmp_path / "tiny.arpa.gz"
    gz.write_bytes(gzip.compress(TINY.read_bytes()))
    assert arpa_unigrams(gz) == TINY_VOCAB
    words = arpa_unigrams(small_lm.ARPA)  # gzipped, <unk> first
    assert words == read_arpa(small_lm.ARPA).words
    assert words[3:] == small_lm.unigrams()


def test_arpa_unigrams_without_backoff(tmp_path):
    """Lines without a back-off (``prob<TAB>word``) count, except with require_backoff."""
    tri = _write(tmp_path, TRIGRAM, "tri.arpa")
    assert arpa_unigrams(tri) == ["<unk>", "<s>", "</s>", "the", "cat", "sat", "on", "mat"]
    assert "</s>" not in arpa_unigrams(tri, require_backoff=True)
    uni = _write(tmp_path, UNIGRAM_ONLY, "uni.arpa")
    assert arpa_unigrams(uni) == ["<unk>", "<s>", "</s>", "cat", "dog"]
    assert arpa_unigrams(uni, require_backoff=True) == ["<s>", "</s>", "dog"]
    assert arpa_unigrams(uni) == read_arpa(uni).words
    repeated = _write(tmp_path, UNIGRAM_ONLY.replace("-0.3\tdog", "-0.3\tcat"), "rep.arpa")
    assert arpa_unigrams(repeated) == ["<unk>", "<s>", "</s>", "cat"]  # each word once


def test_arpa_unigrams_errors(tmp_path):
    path = _write(tmp_path, "hello world\n", "plain.txt")
    with pytest.raises(ValueError, match=r"not an ARPA file.*\\data\\.*line 1") as err:
        arpa_unigrams(path)
    assert str(path) in str(err.value)
    path = _write(tmp_path, GOOD.replace("\\1-grams:", "\\one-grams:"))
    with pytest.raises(ValueError, match=r"no \\1-grams: section") as err:
        arpa_unigrams(path)
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match=r"not an ARPA file.*blank"):
        arpa_unigrams(_write(tmp_path, "\n\n"))
    path = _write(tmp_path, _replace_line(GOOD, LINE_CAT, "-0.7 cat -0.3"))
    with pytest.raises(ValueError, match=rf"line {LINE_CAT}\b.*prob<TAB>word") as err:
        arpa_unigrams(path)
    assert str(path) in str(err.value)
    only_two = "\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\t<s>\n-1.0\t</s>\n\n\\end\\\n"
    path = _write(tmp_path, only_two)
    assert arpa_unigrams(path) == ["<s>", "</s>"]
    with pytest.raises(ValueError, match="no word with a back-off") as err:
        arpa_unigrams(path, require_backoff=True)
    assert str(path) in str(err.value)
    path = tmp_path / "latin1.arpa"
    path.write_bytes(GOOD.replace("cat", "caf\xe9").encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8") as err:
        arpa_unigrams(path)
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match="not an ARPA file") as err:
        arpa_unigrams(small_lm.BINARY)
    assert str(small_lm.BINARY) in str(err.value)


@pytest.mark.reference
def test_arpa_unigrams_match_pyctcdecode(tmp_path):
    """With require_backoff, the words pyctcdecode's load_unigram_set_from_arpa reads (it
    skips lines without a back-off); fastctc.lm's function of that name agrees."""
    pytest.importorskip("pyctcdecode")
    from pyctcdecode.language_model import load_unigram_set_from_arpa

    from fastctc.lm import load_unigram_set_from_arpa as fastctc_unigram_set

    small = tmp_path / "small.arpa"
    small.write_bytes(gzip.decompress(small_lm.ARPA.read_bytes()))
    files = [
        TINY,
        small,
        _write(tmp_path, TRIGRAM, "tri.arpa"),
        _write(tmp_path, GOOD, "good.arpa"),
        _write(tmp_path, UNIGRAM_ONLY, "uni.arpa"),
        # not KenLM's layout, read alike: surrounding blanks, a blank line in the section
        _write(
            tmp_path,
            GOOD.replace("-1.2", "  -1.2").replace("\n-0.7\tcat\t-0.3", "\n\n-0.7\tcat\t-0.3 "),
        ),
    ]
    for path in files:
        want = load_unigram_set_from_arpa(str(path))
        got = arpa_unigrams(path, require_backoff=True)
        assert set(got) == want == fastctc_unigram_set(path), path
        assert len(got) == len(want)
    assert set(arpa_unigrams(files[2])) - load_unigram_set_from_arpa(str(files[2])) == {"</s>"}


@pytest.mark.parametrize(
    "module", [fastctc.lm.ngram, fastctc.lm.kenlm_binary], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
