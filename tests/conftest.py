"""Shared fixtures and helpers: seeded generators, random log-probabilities, the model bundled
with the package, and the lm/ recipe with its KenLM tools.

Everything the suite reads is in the repository: ``tests/data`` (hand-written models and the
small 4-gram of :mod:`tests.small_lm`), ``fastctc/data`` (the bundled English model and the
demo transcripts) and the simulator :mod:`tests.simulate`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The English 4-gram bundled with the package (8-bit quantised KenLM trie) and its files.
BUNDLED = ROOT / "fastctc" / "data"
BUNDLED_LM = BUNDLED / "en_4gram.bin"
BUNDLED_UNIGRAMS = BUNDLED / "en_4gram.unigrams.txt"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_log_probs(rng, *shape, scale=2.0, dtype=np.float64) -> np.ndarray:
    """log_softmax of Gaussian logits along the last axis."""
    x = rng.standard_normal(shape) * scale
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(dtype)


@cache
def bundled_unigrams() -> tuple[str, ...]:
    """The bundled model's vocabulary (29,803 words)."""
    return tuple(BUNDLED_UNIGRAMS.read_text(encoding="utf-8").split())


@cache
def demo_sentences() -> tuple[str, ...]:
    """The 24 transcripts of the demo utterances, held out from the bundled model's training
    text: English sentences for tests with that model."""
    transcripts = json.loads((BUNDLED / "demo.json").read_text(encoding="utf-8"))["transcripts"]
    return tuple(transcripts[key] for key in sorted(transcripts))


# ---------------------------------------------------------------------------- KenLM's tools
@cache
def build_lm() -> ModuleType:
    """``lm/build_lm.py``, the model recipe, imported as ``build_lm``."""
    module = sys.modules.get("build_lm")
    if module is None:
        spec = importlib.util.spec_from_file_location("build_lm", ROOT / "lm" / "build_lm.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["build_lm"] = module
        spec.loader.exec_module(module)
    return module


#: Where the recipe looks first for KenLM's tools (then build/kenlm/bin, then the PATH).
KENLM_BIN = os.environ.get("KENLM_BIN")


def kenlm_tool(name: str) -> str | None:
    """Path of KenLM's ``lmplz`` or ``build_binary`` as the recipe finds it, or None."""
    return build_lm().find_tool(name, KENLM_BIN)


def needs_kenlm_tools(*names: str) -> pytest.MarkDecorator:
    """Skip where one of KenLM's command-line tools is missing, saying how to build them."""
    missing = [n for n in names if kenlm_tool(n) is None]
    return pytest.mark.skipif(bool(missing), reason=kenlm_tools_reason(missing))


def kenlm_tools_reason(missing: list[str]) -> str:
    return (
        f"KenLM's {'/'.join(missing)} not found (PATH, build/kenlm/bin or $KENLM_BIN); "
        "run lm/build_kenlm.sh (KENLM_APT=1 installs its build dependencies, needs root)"
    )
