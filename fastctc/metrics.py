"""Edit distance, character and word error rates (corpus level), Numba-backed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .kernels.metrics import edit_distance_int, edit_distance_many


def _codes(seq: Any, vocab: dict[Any, int] | None = None) -> np.ndarray:
    """Encode a string (by code point) or a sequence of hashables as int64 ids."""
    if isinstance(seq, str):
        return np.frombuffer(seq.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    arr = np.asarray(seq) if not isinstance(seq, (list, tuple)) else None
    if arr is not None and arr.dtype.kind in "iu" and arr.ndim == 1:
        return arr.astype(np.int64)
    if vocab is None:
        vocab = {}
    return np.array([vocab.setdefault(x, len(vocab)) for x in seq], dtype=np.int64)


def edit_distance(ref: Any, hyp: Any) -> int:
    """Levenshtein distance (unit insert, delete and substitute costs).

    Parameters
    ----------
    ref, hyp : str or sequence
        Two strings (compared character by character), or two sequences of integers or of
        any hashable items (e.g. word lists).

    Returns
    -------
    int

    Examples
    --------
    >>> import fastctc
    >>> fastctc.edit_distance("kitten", "sitting")
    3
    >>> fastctc.edit_distance("a b c".split(), "a c".split())
    1
    """
    vocab: dict[Any, int] = {}
    return int(edit_distance_int(_codes(ref, vocab), _codes(hyp, vocab)))


def _as_list(texts: str | Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str; got {type(t).__name__}.")
    return out


def _corpus_rate(refs: list[str], hyps: list[str], words: bool) -> float:
    if len(refs) != len(hyps):
        raise ValueError(
            f"refs and hyps must have the same length; got {len(refs)} and {len(hyps)}."
        )
    vocab: dict[Any, int] = {}

    def encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_codes(t.split() if words else t, vocab) for t in texts]
        offs = np.zeros(len(parts) + 1, dtype=np.int64)
        offs[1:] = np.cumsum([p.shape[0] for p in parts])
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return flat.astype(np.int64), offs

    fr, orf = encode(refs)
    fh, ohf = encode(hyps)
    total_ref = int(orf[-1])
    edits = int(edit_distance_many(fr, orf, fh, ohf))
    if total_ref == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / total_ref


def cer(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus character error rate: total character edits / total reference characters.

    Strings are compared as given (spaces count as characters).

    Examples
    --------
    >>> import fastctc
    >>> fastctc.cer(["abc", "de"], ["abd", "de"])
    0.2
    """
    return _corpus_rate(_as_list(refs, "refs"), _as_list(hyps, "hyps"), words=False)


def wer(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus word error rate: total word edits / total reference words (split on whitespace).

    Examples
    --------
    >>> import fastctc
    >>> fastctc.wer(["the cat sat", "hi"], ["the bat sat", "hi"])
    0.25
    """
    return _corpus_rate(_as_list(refs, "refs"), _as_list(hyps, "hyps"), words=True)
