"""The Examples sections of the public CPU modules run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "fastctc.loss",
    "fastctc.greedy",
    "fastctc.metrics",
    "fastctc.ops",
    "fastctc.prefix_beam",
    "fastctc.keras",
    "fastctc.align",
    "fastctc.io",
    "fastctc.vocabulary",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
