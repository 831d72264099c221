"""Shared fixtures: seeded generators, random log-probabilities, the shared data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: ../shared/data beside the repository (CI clones the repository with ../shared next to it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_log_probs(rng, *shape, scale=2.0, dtype=np.float64) -> np.ndarray:
    """log_softmax of Gaussian logits along the last axis."""
    x = rng.standard_normal(shape) * scale
    x = x - x.max(axis=-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=-1, keepdims=True))).astype(dtype)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED_DATA} (clone with ../shared beside)")
    return SHARED_DATA
