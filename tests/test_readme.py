"""Every ```python block of README.md runs on its own, in a fresh interpreter.

Each snippet runs in its own subprocess, so none can lean on names another defined. Snippets
that use the GPU run under numba's CUDA simulator unless ``NUMBA_ENABLE_CUDASIM`` is set
already (``NUMBA_ENABLE_CUDASIM=0`` runs them on a real GPU).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1",
    reason="too slow with NUMBA_DISABLE_JIT=1 (the snippets decode whole utterances)",
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def snippets() -> list[tuple[str, str]]:
    """``(heading of the section, code)`` of each python block, in order."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in _BLOCK.finditer(text):
        heads = re.findall(r"^#+ (.+)$", text[: m.start()], re.M)
        out.append((heads[-1] if heads else "top", m.group(1)))
    return out


def _needs(code: str) -> list[str]:
    """Optional modules the snippet imports that are not installed."""
    wanted = {
        "torch": "torch",
        "fastctc.cuda": "numba.cuda",
        "pyctcdecode": "pyctcdecode",
        "fastctc.transformers": "transformers",
        "fastctc.dask": "distributed",
        "keras": "keras",
    }
    return [
        mod
        for key, mod in wanted.items()
        if re.search(rf"\bimport [\w., ]*\b{re.escape(key)}\b", code)
        and importlib.util.find_spec(mod.split(".")[0]) is None
    ]


def test_readme_has_snippets():
    assert len(snippets()) >= 5


@pytest.mark.parametrize(("heading", "code"), snippets(), ids=[h for h, _ in snippets()])
def test_snippet_runs_alone(tmp_path, heading, code):
    missing = _needs(code)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    env = dict(os.environ)
    env.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    extra = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *extra])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"README snippet under {heading!r} failed (exit {proc.returncode}):\n{code}\n"
        f"--- stderr ---\n{proc.stderr[-4000:]}"
    )
