"""Where the compiled kernels are cached (``fastctc._cache``).

An installed copy (a ``fastctc-*.dist-info`` beside the package, or the package in
site-packages) must cache in Numba's user-wide folder, never inside its own folder: files
there survive ``pip uninstall`` and turn the leftover folder into a namespace package that
shadows a later (editable) install. A source checkout keeps Numba's ``__pycache__``. The
copies below are imported in subprocesses from a temporary folder; nothing is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastctc import _cache

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no Numba dispatchers to cache"
)

CHILD = r"""
import json, sys
import fastctc
from fastctc import _cache
from fastctc.kernels import metrics
d = fastctc.edit_distance("kitten", "sitting") if "--call" in sys.argv else None
stats = metrics.edit_distance_int.stats
print(json.dumps({
    "file": fastctc.__file__,
    "installed": _cache.is_installed_copy(),
    "cache_path": _cache.cache_path(metrics.edit_distance_int),
    "distance": d,
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
}))
"""


def copy_package(site: Path, *, dist_info: bool) -> Path:
    """A copy of the package in ``site`` (no caches), with installer metadata if asked."""
    site.mkdir(parents=True)
    shutil.copytree(
        ROOT / "fastctc",
        site / "fastctc",
        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"),
    )
    if dist_info:
        meta = site / "fastctc-0.1.0.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: fastctc\nVersion: 0.1.0\n")
    return site / "fastctc"


def run_child(site: Path, cwd: Path, xdg: Path, *args: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NUMBA_CACHE_DIR", "NUMBA_CACHE_LOCATOR_CLASSES")
    }
    env["PYTHONPATH"] = str(site)
    env["XDG_CACHE_HOME"] = str(xdg)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def numba_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc"))


def test_numba_has_the_expected_cache_classes():
    """If Numba renamed its locators the fix would silently fall back: fail loudly instead."""
    cls = _cache.installed_copy_cache()
    assert cls is not None
    names = [c.__name__.lstrip("_") for c in cls._impl_class._locator_classes]
    assert names[0] == "UserProvidedCacheLocator"  # NUMBA_CACHE_DIR still comes first
    assert names.index("UserWideCacheLocator") < names.index("InTreeCacheLocator")
    from numba.core.caching import FunctionCache

    assert FunctionCache._impl_class._locator_classes[1].__name__.lstrip("_") == (
        "InTreeCacheLocator"
    )  # Numba's own order is left alone


def test_installed_copy_caches_outside_its_folder(tmp_path):
    site, xdg = tmp_path / "site", tmp_path / "xdg"
    package = copy_package(site, dist_info=True)
    first = run_child(site, tmp_path, xdg, "--call")
    assert Path(first["file"]).parent == package
    assert first["installed"] is True
    assert first["distance"] == 3
    assert Path(first["cache_path"]).is_relative_to(xdg / "numba")
    assert first["misses"] == 1 and first["hits"] == 0
    assert numba_files(site) == []
    assert numba_files(xdg)
    # a second process loads the kernel from that cache instead of compiling it
    second = run_child(site, tmp_path, xdg, "--call")
    assert second["hits"] == 1 and second["misses"] == 0
    assert numba_files(site) == []


def test_source_checkout_keeps_pycache(tmp_path):
    site, xdg = tmp_path / "checkout", tmp_path / "xdg"
    package = copy_package(site, dist_info=False)
    info = run_child(site, tmp_path, xdg)
    assert Path(info["file"]).parent == package
    assert info["installed"] is False
    assert Path(info["cache_path"]) == package / "kernels" / "__pycache__"


def test_is_installed_copy(tmp_path):
    package = copy_package(tmp_path / "site", dist_info=False)
    assert not _cache.is_installed_copy(str(package))
    (tmp_path / "site" / "fastctc-0.1.0.dist-info").mkdir()
    assert _cache.is_installed_copy(str(package))
    assert not _cache.is_installed_copy(str(ROOT / "fastctc"))
