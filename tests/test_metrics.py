"""Edit distance, CER and WER on hand-computed cases and a plain-Python reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastctc


def levenshtein(a, b):
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    return d[-1][-1]


@pytest.mark.parametrize(
    "a,b,d",
    [
        ("kitten", "sitting", 3),
        ("", "", 0),
        ("", "abc", 3),
        ("abc", "", 3),
        ("flaw", "lawn", 2),
        ("ünïcödé", "unicode", 4),
        ([1, 2, 3], [1, 3], 1),
        (["the", "cat"], ["a", "cat"], 1),
    ],
)
def test_edit_distance_hand_cases(a, b, d):
    assert fastctc.edit_distance(a, b) == d


@settings(max_examples=100, deadline=None)
@given(st.text("abc ", max_size=12), st.text("abc ", max_size=12))
def test_edit_distance_matches_reference(a, b):
    assert fastctc.edit_distance(a, b) == levenshtein(a, b)


def test_corpus_rates_are_total_edits_over_total_reference():
    refs = ["the cat sat on the mat", "hello world"]
    hyps = ["the cat sat on a mat", "hello"]
    # words: 1 substitution + 1 deletion over 6 + 2 reference words
    assert fastctc.wer(refs, hyps) == pytest.approx(2 / 8)
    # characters: "the"->"a" costs 3, " world" deleted costs 6, over 22 + 11 characters
    assert fastctc.cer(refs, hyps) == pytest.approx(9 / 33)
    assert fastctc.wer("a b", "a b") == 0.0
    assert fastctc.cer([], []) == 0.0
