"""Input checks and dtype/layout normalisation shared by every public wrapper.

Each checker raises ``TypeError`` for a wrong kind and ``ValueError`` for a wrong shape or
range, with a message that names the argument, what was expected and what was received.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import numpy.typing as npt


def as_float_array(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 or float64 array (float64 kept, others -> float32).

    Integer, boolean, complex and object inputs raise ``TypeError``.
    """
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array (float32 or float64); got dtype {arr.dtype}."
        )
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    return np.ascontiguousarray(arr, dtype=dtype)


def check_ndim(arr: np.ndarray, name: str, ndims: tuple[int, ...], layout: str) -> None:
    """Raise ``ValueError`` unless ``arr.ndim`` is one of ``ndims``."""
    if arr.ndim not in ndims:
        raise ValueError(f"{name} must be {layout}; got shape {tuple(arr.shape)}.")


def as_int(value: Any, name: str) -> int:
    """Return ``value`` as a Python int; ``TypeError`` for floats, strings, bools."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer; got {type(value).__name__} {value!r}."
        ) from None


def check_blank(blank: Any, num_classes: int) -> int:
    """Normalise ``blank`` to ``[0, num_classes)``; negative values count from the end."""
    b = as_int(blank, "blank")
    if not -num_classes <= b < num_classes:
        raise ValueError(
            f"blank must be in [-{num_classes}, {num_classes}) for {num_classes} classes; got {b}."
        )
    return b % num_classes


def as_int_array(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous int64 array; non-integer dtypes raise ``TypeError``."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        if (
            arr.dtype.kind == "f"
            and arr.size
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            pass  # integral floats (e.g. a list built with numpy floats) are accepted
        elif arr.size == 0 and arr.dtype.kind == "f":
            pass  # np.asarray([]) is float64
        else:
            raise TypeError(f"{name} must hold integers; got dtype {arr.dtype}.")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_lengths(
    x: npt.ArrayLike | None,
    name: str,
    count: int,
    upper: int,
    upper_name: str,
) -> np.ndarray:
    """Validate per-sequence lengths: shape ``(count,)``, each in ``[0, upper]``.

    ``None`` means "all full length" and gives ``upper`` for every sequence.
    """
    if x is None:
        return np.full(count, upper, dtype=np.int64)
    arr = as_int_array(x, name)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.shape[0] != count:
        raise ValueError(
            f"{name} must have shape ({count},), one length per sequence; "
            f"got shape {tuple(arr.shape)}."
        )
    if count:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            i = int(np.argmin(arr))
            raise ValueError(f"{name}[{i}] = {lo} is negative; lengths must be >= 0.")
        if hi > upper:
            i = int(np.argmax(arr))
            raise ValueError(f"{name}[{i}] = {hi} exceeds {upper_name} = {upper}.")
    return arr


def check_labels_range(values: np.ndarray, name: str, num_classes: int, blank: int) -> None:
    """Raise ``ValueError`` if any label is outside ``[0, num_classes)`` or equals ``blank``."""
    if values.size == 0:
        return
    bad = np.flatnonzero((values < 0) | (values >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}[{i}] = {int(values.flat[i])} is outside [0, {num_classes}) "
            f"for {num_classes} classes."
        )
    hit = np.flatnonzero(values == blank)
    if hit.size:
        i = int(hit[0])
        raise ValueError(
            f"{name}[{i}] == blank ({blank}); targets may not contain the blank index."
        )


def resolve_num_threads(num_threads: Any, work_items: int) -> int:
    """Number of worker threads: ``None`` means every available core, capped by the work."""
    from .batch import available_cores

    if num_threads is None:
        n = available_cores()
    else:
        n = as_int(num_threads, "num_threads")
        if n < 1:
            raise ValueError(f"num_threads must be >= 1 or None; got {n}.")
    return max(1, min(n, work_items))
