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


def _check_int_dtype(arr: np.ndarray, name: str) -> None:
    """``TypeError`` unless ``arr`` holds integers (or integral floats, or is empty)."""
    if arr.dtype.kind in "iu":
        return
    if arr.dtype.kind == "f" and arr.size == 0:
        return  # np.asarray([]) is float64
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return  # integral floats (e.g. a list built with numpy floats) are accepted
    raise TypeError(f"{name} must hold integers; got dtype {arr.dtype}.")


def _first_outside(arr: np.ndarray, lo: int | None, hi: int | None) -> int:
    """Flat index of the first value of ``arr`` outside ``[lo, hi]`` (-1 if none), compared
    in ``arr``'s own dtype so that values beyond int64 do not wrap."""
    flat = arr.reshape(-1)
    bad = np.zeros(flat.shape, np.bool_)
    if hi is not None:
        bad |= flat > (float(hi) if flat.dtype.kind == "f" else hi)
    if lo is not None and flat.dtype.kind != "u":
        bad |= flat < (float(lo) if flat.dtype.kind == "f" else lo)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else -1


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def as_int_array(x: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous int64 array; non-integer dtypes raise ``TypeError``,
    values outside the int64 range (large uint64 or float) ``ValueError``."""
    arr = np.asarray(x)
    _check_int_dtype(arr, name)
    if arr.dtype.kind in "uf" and arr.size:
        # float 2**63 is above the int64 maximum; a float at most 2**63 - 1024 fits
        i = _first_outside(arr, _INT64_MIN, _INT64_MAX if arr.dtype.kind == "u" else 2**63 - 1024)
        if i >= 0:
            raise ValueError(
                f"{name}[{i}] = {arr.reshape(-1)[i].item()} is outside the int64 range "
                f"[{_INT64_MIN}, {_INT64_MAX}]."
            )
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_lengths(
    x: npt.ArrayLike | None,
    name: str,
    count: int,
    upper: int,
    upper_name: str,
) -> np.ndarray:
    """Validate per-sequence lengths: shape ``(count,)``, each in ``[0, upper]``.

    ``None`` means "all full length" and gives ``upper`` for every sequence. Values are
    compared before the cast to int64, so a huge uint64 or float length is reported as
    given, not wrapped around.
    """
    if x is None:
        return np.full(count, upper, dtype=np.int64)
    raw = np.asarray(x)
    _check_int_dtype(raw, name)
    if raw.ndim == 0:
        raw = raw.reshape(1)
    if raw.ndim != 1 or raw.shape[0] != count:
        raise ValueError(
            f"{name} must have shape ({count},), one length per sequence; "
            f"got shape {tuple(raw.shape)}."
        )
    i = _first_outside(raw, 0, upper)
    if i >= 0:
        value = raw[i].item()
        if value < 0:
            raise ValueError(f"{name}[{i}] = {value} is negative; lengths must be in [0, {upper}].")
        raise ValueError(
            f"{name}[{i}] = {value} exceeds {upper_name} = {upper}; "
            f"lengths must be in [0, {upper}]."
        )
    return np.ascontiguousarray(raw, dtype=np.int64)


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


def check_status(status: np.ndarray, bad_frame: str, no_path: str) -> None:
    """Raise ``ValueError`` for the first item whose kernel status is not -1 (fine).

    The kernels' per-item status codes: ``t >= 0`` means frame ``t`` holds a value the
    kernel cannot use (NaN, +inf), reported as ``bad_frame``; ``-(t + 2)`` means no path
    of nonzero probability is left after frame ``t``, reported as ``no_path``. Both
    messages are format strings with fields ``n`` (the item) and ``t`` (the frame).
    """
    bad = np.flatnonzero(status != -1)
    if bad.size:
        n = int(bad[0])
        st = int(status[n])
        if st >= 0:
            raise ValueError(bad_frame.format(n=n, t=st))
        raise ValueError(no_path.format(n=n, t=-st - 2))


def check_text(value: Any, name: str, hint: str = "", sep: str = " = ") -> str:
    """``value`` when it is a ``str`` of valid Unicode text: ``TypeError`` for a non-string,
    ``ValueError`` for a lone surrogate (which no file or kernel can hold), naming ``name``
    and showing an excerpt after ``sep``; ``hint`` ends the message."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str; got {type(value).__name__} {value!r}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{name}{sep}{ascii(value)[:60]} is not valid Unicode text (a lone surrogate){hint}."
        ) from None
    return value


def stream_batch(streams: Any, chunks: Any) -> tuple[list[Any], list[Any], tuple[int, int] | None]:
    """``streams`` and ``chunks`` as lists of one length (``ValueError`` otherwise), for the
    ``feed_streams`` functions, and the indices ``(j, i)`` of the first stream listed twice
    (``j < i``), or None; the caller words that error."""
    streams = list(streams)
    chunks = list(chunks)
    if len(streams) != len(chunks):
        raise ValueError(
            f"streams and chunks must have the same length; got {len(streams)} streams and "
            f"{len(chunks)} chunks."
        )
    seen: dict[int, int] = {}
    for i, s in enumerate(streams):
        j = seen.setdefault(id(s), i)
        if j != i:
            return streams, chunks, (j, i)
    return streams, chunks, None
