"""Label normalisation: explicit expectations, and pyctcdecode's Alphabet as the reference."""

from __future__ import annotations

import logging

import pytest

from fastctc.alphabet import Alphabet

CASES = [
    ["", " ", "a", "b"],
    ["<pad>", "|", "a", "b"],
    ["[PAD]", "|", "a", "<unk>"],
    ["_", " ", "a", "b"],
    [" ", "a", "b"],  # blank appended
    ["|", "a", "b", "[unk]"],
    ["", "\u2581the", "\u2581a", "t", "s"],
    ["<pad>", "\u2581x", "y", "<unk>"],
    ["[PAD]", "##s", "the", "a"],  # '##' style converted to '▁'
    ["\u2581a", "b"],  # BPE without blank: appended
]


@pytest.mark.parametrize(
    ("labels", "expected", "bpe"),
    [
        (["", " ", "a"], ["", " ", "a"], False),
        (["<pad>", "|", "a"], ["", " ", "a"], False),
        (["_", "|", "a", "<unk>"], ["", " ", "a", "\u2047"], False),
        ([" ", "a"], [" ", "a", ""], False),
        (["[pad]", "##s", "the"], ["", "s", "\u2581the"], True),
        (["\u2581a", "b", "<unk>"], ["\u2581a", "b", "\u2581\u2047\u2581", ""], True),
    ],
)
def test_build_alphabet_expected(labels, expected, bpe):
    a = Alphabet.build_alphabet(labels)
    assert a.labels == expected
    assert a.is_bpe is bpe
    assert a.labels[a.blank] == ""


@pytest.mark.reference
@pytest.mark.parametrize("labels", CASES)
def test_build_alphabet_matches_pyctcdecode(labels):
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    from pyctcdecode.alphabet import Alphabet as RefAlphabet

    ref = RefAlphabet.build_alphabet(labels)
    ours = Alphabet.build_alphabet(labels)
    assert ours.labels == ref.labels
    assert ours.is_bpe == ref.is_bpe
    assert Alphabet.loads(ref.dumps()).labels == ours.labels


def test_dumps_loads_roundtrip():
    a = Alphabet.build_alphabet(["", " ", "x", "y"])
    b = Alphabet.loads(a.dumps())
    assert (b.labels, b.is_bpe) == (a.labels, a.is_bpe)


def test_duplicate_labels_raise():
    with pytest.raises(ValueError, match="duplicate entry 'a'"):
        Alphabet.build_alphabet(["", "a", "b", "a"])


def test_space_in_bpe_raises():
    with pytest.raises(ValueError, match="contain the space label"):
        Alphabet.build_alphabet(["", "\u2581a", " "])


def test_string_labels_raise():
    with pytest.raises(TypeError, match="sequence of strings"):
        Alphabet.build_alphabet(" abc")


def test_non_string_label_raises():
    with pytest.raises(TypeError, match=r"labels\[1\] must be a str"):
        Alphabet.build_alphabet(["", 3])


def test_empty_labels_raise():
    with pytest.raises(ValueError, match="must not be empty"):
        Alphabet.build_alphabet([])


def test_loads_bad_keys_raise():
    with pytest.raises(ValueError, match="exactly the keys"):
        Alphabet.loads('{"labels": []}')
