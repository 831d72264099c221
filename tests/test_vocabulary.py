"""fastctc.vocabulary: one vocabulary for the command line and the LM search kernel."""

from __future__ import annotations

import numpy as np
import pytest

import fastctc.io
from fastctc.alphabet import Alphabet
from fastctc.kernels.lm_beam import K_BLANK, K_BPE_START, K_NORMAL, K_SPACE
from fastctc.vocabulary import Vocabulary, encode_strings
from tests.test_alphabet import CASES

B, S, P, N = K_BLANK, K_SPACE, K_BPE_START, K_NORMAL
UNK = 0x2047  # "⁇"

# raw labels -> normalised labels, style, blank, delimiter, kinds, codes, offsets, render
EXPECTED = [
    (
        ["<pad>", "|", "a", "b"],
        ("", " ", "a", "b"),
        "char",
        0,
        1,
        [B, S, N, N],
        [97, 98],
        [0, 0, 0, 1, 2],
        ("", " ", "a", "b"),
    ),
    (
        ["|", "a", "b", "[unk]"],  # blank appended, <unk> renamed
        (" ", "a", "b", "\u2047", ""),
        "char",
        4,
        0,
        [S, N, N, N, B],
        [97, 98, UNK],
        [0, 0, 1, 2, 3, 3],
        (" ", "a", "b", "\u2047", ""),
    ),
    (
        ["", "\u2581the", "\u2581a", "t", "s"],
        ("", "\u2581the", "\u2581a", "t", "s"),
        "sentencepiece",
        0,
        None,
        [B, P, P, N, N],
        [116, 104, 101, 97, 116, 115],
        [0, 0, 3, 4, 5, 6],
        ("", " the", " a", "t", "s"),
    ),
    (
        ["[PAD]", "##s", "the", "<unk>"],  # '##' pieces converted, "▁⁇▁" loses both marks
        ("", "s", "\u2581the", "\u2581\u2047\u2581"),
        "sentencepiece",
        0,
        None,
        [B, N, P, P],
        [115, 116, 104, 101, UNK],
        [0, 0, 1, 4, 5],
        ("", "s", " the", " \u2047"),
    ),
]


@pytest.mark.parametrize(
    ("raw", "labels", "style", "blank", "delim", "kinds", "codes", "offsets", "render"), EXPECTED
)
def test_from_alphabet_expected(raw, labels, style, blank, delim, kinds, codes, offsets, render):
    v = Vocabulary.from_alphabet(Alphabet.build_alphabet(raw))
    assert (v.labels, v.style, v.blank, v.delimiter) == (labels, style, blank, delim)
    for got, want in ((v.kinds, kinds), (v.codes, codes), (v.offsets, offsets)):
        assert got.dtype == np.int64
        assert got.tolist() == want
    assert v.render == render


@pytest.mark.parametrize("raw", CASES)
def test_from_alphabet_rules(raw):
    """Over the label sets of test_alphabet: each label's kind, characters and rendering
    follow the documented rules, and build() on the normalised labels agrees."""
    a = Alphabet.build_alphabet(raw)
    v = Vocabulary.from_alphabet(a)
    assert v == Vocabulary.build(a.labels, a.blank)
    assert v.offsets.shape == (len(a.labels) + 1,) and v.offsets[0] == 0
    for i, lab in enumerate(a.labels):
        chars = "".join(map(chr, v.codes[v.offsets[i] : v.offsets[i + 1]]))
        if lab == "":
            assert (v.kinds[i], chars, v.render[i]) == (K_BLANK, "", "")
        elif a.is_bpe and lab.startswith("\u2581"):
            word = lab[1:].removesuffix("\u2581")
            assert (v.kinds[i], chars, v.render[i]) == (K_BPE_START, word, " " + word)
        elif not a.is_bpe and lab == " ":
            assert (v.kinds[i], chars, v.render[i]) == (K_SPACE, "", " ")
        else:
            assert (v.kinds[i], chars, v.render[i]) == (K_NORMAL, lab, lab)


def test_build_styles_and_delimiter():
    assert Vocabulary.build(["<pad>", "|", "a"], blank=0).delimiter == 1
    assert Vocabulary.build(["<pad>", "|", " ", "a"], blank=0).delimiter == 2
    assert Vocabulary.build(["", "a"], blank=0).delimiter is None
    assert Vocabulary.build(["", "\u2581a", "b"], blank=0).style == "sentencepiece"
    assert Vocabulary.build(["", "a", "##b"], blank=0).style == "wordpiece"


def test_build_kernel_arrays_follow_blank_and_delimiter():
    v = Vocabulary.build(["a", "|", "<pad>"], blank=2)
    assert v.kinds.tolist() == [K_NORMAL, K_SPACE, K_BLANK]
    assert v.render == ("a", " ", "")
    assert v.codes.tolist() == [97] and v.offsets.tolist() == [0, 1, 1, 1]


def test_wordpiece_has_no_kernel_arrays():
    v = Vocabulary.build(["", "a", "##b"], blank=0)
    with pytest.raises(ValueError, match="from_alphabet"):
        _ = v.kinds


def test_io_keeps_the_class():
    assert fastctc.io.Vocabulary is Vocabulary


def test_kernel_arrays_are_cached():
    v = Vocabulary.build(["", " ", "a"], blank=0)
    assert v.kinds is v.kinds and v.codes is v.codes and v.offsets is v.offsets


@pytest.mark.parametrize(
    ("words", "codes", "offsets"),
    [
        ([], [], [0]),
        ([""], [], [0, 0]),
        (["ab", "", "c"], [97, 98, 99], [0, 2, 2, 3]),
        (["\U0001f600x", "\u00e9"], [0x1F600, 120, 0xE9], [0, 2, 3]),  # one code point each
    ],
)
def test_encode_strings(words, codes, offsets):
    c, o = encode_strings(iter(words))
    assert c.dtype == np.int64 and o.dtype == np.int64
    assert c.tolist() == codes and o.tolist() == offsets


def test_encode_strings_lone_surrogate_raises():
    with pytest.raises(UnicodeEncodeError):
        encode_strings(["\ud800"])
