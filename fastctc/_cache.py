"""Where Numba keeps the compiled kernels (``cache=True``) of this copy of fastctc.

By default Numba writes its cache files (``*.nbi``, ``*.nbc``) into a ``__pycache__`` folder
beside each module, whenever that folder is writable. For a copy of fastctc that an installer
put in ``site-packages`` this leaves files the installer does not know about: ``pip
uninstall`` (and the uninstall step of ``pip install -e .``) then removes the package but not
them, and the leftover ``site-packages/fastctc/`` folder imports as an empty namespace package
that hides any other fastctc on the path.

So for an installed copy the kernels are cached in Numba's user-wide cache folder instead
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba`` on Linux, one subfolder per installed
location), the place Numba itself uses when a package's folder is read-only. The order of
preference, per kernel:

1. ``NUMBA_CACHE_DIR``, when set (as for every Numba function);
2. the user-wide cache folder;
3. ``__pycache__`` beside the module (Numba's default), only if the user-wide folder cannot
   be written.

A source checkout or an editable install keeps Numba's default (``__pycache__`` in the
checkout). This applies to fastctc's own kernels only: Numba's classes are subclassed, never
changed, and no environment variable is set, so other Numba code in the process is untouched.
``NUMBA_CACHE_LOCATOR_CLASSES``, where Numba supports it, still overrides everything.
"""

from __future__ import annotations

import functools
import os
import site
import sysconfig

#: The folder of the ``fastctc`` package of this copy.
PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_installed_copy(package_dir: str = PACKAGE_DIR) -> bool:
    """Whether ``package_dir`` is a copy an installer put in place (and would remove).

    True when a ``fastctc-*.dist-info`` folder lies beside it (what pip, uv and other
    installers write next to the files of a wheel, ``--target`` folders included) or when it
    lies in one of the interpreter's site-packages folders. False for a source checkout and
    for an editable install, whose package folder is the checkout's.
    """
    parent = os.path.dirname(os.path.realpath(package_dir))
    try:
        names = os.listdir(parent)
    except OSError:
        names = []
    if any(n.startswith("fastctc-") and n.endswith(".dist-info") for n in names):
        return True
    candidates = []
    for get in (site.getsitepackages, site.getusersitepackages):
        try:
            found = get()
        except (AttributeError, OSError):  # some embedded or old virtualenv ``site`` modules
            continue
        candidates.extend([found] if isinstance(found, str) else found)
    paths = sysconfig.get_paths()
    candidates.extend(paths[k] for k in ("purelib", "platlib") if k in paths)
    return any(_same_dir(parent, c) for c in candidates)


def _named(classes, name: str):
    """The class of ``classes`` called ``name`` or ``_name`` (Numba < 0.62 prefixes ``_``)."""
    return next((c for c in classes if c.__name__.lstrip("_") == name), None)


@functools.cache
def installed_copy_cache():
    """A subclass of Numba's ``FunctionCache`` that prefers the user-wide cache folder to
    ``__pycache__``, or None where this Numba's caching classes are not the expected ones
    (then Numba's default applies)."""
    try:
        from numba.core.caching import FunctionCache
    except ImportError:
        return None
    impl = getattr(FunctionCache, "_impl_class", None)
    locators = list(getattr(impl, "_locator_classes", None) or ())
    user_wide = _named(locators, "UserWideCacheLocator")
    in_tree = _named(locators, "InTreeCacheLocator")
    if user_wide is None or in_tree is None:
        return None
    order = [c for c in locators if c is not user_wide]
    order.insert(order.index(in_tree), user_wide)
    impl_class = type(
        "InstalledCopyCacheImpl", (impl,), {"__module__": __name__, "_locator_classes": order}
    )
    return type(
        "InstalledCopyCache", (FunctionCache,), {"__module__": __name__, "_impl_class": impl_class}
    )


@functools.cache
def cache_class():
    """The cache class for fastctc's kernels: :func:`installed_copy_cache` for an installed
    copy, None (Numba's default ``FunctionCache``) otherwise."""
    return installed_copy_cache() if is_installed_copy() else None


def enable_caching(dispatcher):
    """Turn on the on-disk cache of a dispatcher made by ``numba.njit(cache=False)``, in the
    folder chosen above; return the dispatcher.

    Anything that is not a Numba dispatcher (the plain function under
    ``NUMBA_DISABLE_JIT=1``) is returned unchanged.
    """
    if not hasattr(dispatcher, "enable_caching"):
        return dispatcher
    cls = cache_class()
    if cls is None or not hasattr(dispatcher, "_cache"):
        dispatcher.enable_caching()
    else:
        dispatcher._cache = cls(dispatcher.py_func)
    return dispatcher


def cache_path(dispatcher) -> str | None:
    """The folder holding ``dispatcher``'s cache files (None without a disk cache)."""
    cache = getattr(dispatcher, "_cache", None)
    return getattr(cache, "cache_path", None)
