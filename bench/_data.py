"""Where the benchmarks find the shared data (``../shared/data`` beside the repository), and
its CTC output simulator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_simulator() -> ModuleType:
    """``DATA / "simulate.py"``, imported once as the module ``simulate`` (so that what it
    makes pickles by that name)."""
    if "simulate" in sys.modules:
        return sys.modules["simulate"]
    spec = importlib.util.spec_from_file_location("simulate", DATA / "simulate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulate"] = module
    spec.loader.exec_module(module)
    return module
