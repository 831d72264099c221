"""Label handling for the LM decoder, following pyctcdecode 0.5.0's ``Alphabet.build_alphabet``.

* Character vocabularies: the CTC blank is ``""`` (``<pad>``/``[pad]``, or ``_`` when no ``""``
  exists, are renamed to it; it is appended when missing); ``|`` becomes the word delimiter
  ``" "`` when there is no space; ``<unk>``/``[unk]`` become ``"⁇"``.
* BPE vocabularies (any label starting with ``▁`` or ``##``): ``##`` pieces are converted to
  ``▁`` style, the blank is found or appended as above, ``<unk>`` becomes ``"▁⁇▁"``.
* Duplicate labels, and spaces in a BPE vocabulary, raise ``ValueError``.
* As pyctcdecode, a character vocabulary with labels longer than one character, or without a
  word delimiter, is allowed but logged as a warning (logger ``"fastctc"``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from ._validate import check_text

BPE_TOKEN = "\u2581"  # "▁", the word-start marker of sentencepiece vocabularies
UNK_TOKEN = "\u2047"  # "⁇"
UNK_BPE_TOKEN = BPE_TOKEN + UNK_TOKEN + BPE_TOKEN

_SPECIAL = re.compile(r"^[<\[].+[>\]]$")
_BLANK = re.compile(r"^[<\[]pad[>\]]$", flags=re.IGNORECASE)
_UNK = re.compile(r"^[<\[]unk[>\]]$", flags=re.IGNORECASE)

#: Advice about the labels, logged where pyctcdecode logs it.
logger = logging.getLogger("fastctc")


def _is_bpe(labels: Sequence[str]) -> bool:
    return any(s.startswith("##") or s.startswith(BPE_TOKEN) for s in labels)


def _regular(labels: list[str]) -> list[str]:
    out = list(labels)
    if "|" in out and " " not in out:
        out[out.index("|")] = " "
    out = ["" if _BLANK.match(s) else s for s in out]
    if "_" in out and "" not in out:
        out[out.index("_")] = ""
    if "" not in out:
        out.append("")
    out = [UNK_TOKEN if _UNK.match(s) else s for s in out]
    if any(len(s) > 1 for s in out):
        logger.warning(
            "Some labels are longer than one character, yet the labels are not BPE pieces "
            "(none starts with '\u2581' or '##'): is that right?"
        )
    if " " not in out:
        logger.warning("The labels have no word delimiter (' ' or '|'): the text has no words.")
    return out


def _from_hashes(token: str) -> str:
    if token.startswith("##"):
        return token[2:]
    if _SPECIAL.match(token) or token in ("", BPE_TOKEN, UNK_BPE_TOKEN):
        return token
    return BPE_TOKEN + token


def _bpe(labels: list[str]) -> list[str]:
    out = list(labels)
    if any(s.startswith("##") for s in out):
        out = [_from_hashes(s) for s in out]
    out = ["" if _BLANK.match(s) else s for s in out]
    if "" not in out:
        out.append("")
    return [UNK_BPE_TOKEN if _UNK.match(s) else s for s in out]


class Alphabet:
    """Normalised labels of a CTC model and whether they are BPE pieces.

    Parameters
    ----------
    labels : list of str
        Already normalised labels (use :meth:`build_alphabet` for raw model labels).
    is_bpe : bool
        Whether labels are word pieces with ``▁`` marking a word start.

    Examples
    --------
    >>> from fastctc.alphabet import Alphabet
    >>> a = Alphabet.build_alphabet(["<pad>", "|", "a", "b"])
    >>> a.labels, a.is_bpe, a.blank, a.delimiter
    (['', ' ', 'a', 'b'], False, 0, 1)
    """

    def __init__(self, labels: list[str], is_bpe: bool) -> None:
        self._labels = list(labels)
        self._is_bpe = bool(is_bpe)

    @property
    def labels(self) -> list[str]:
        """A copy of the normalised labels."""
        return list(self._labels)

    @property
    def is_bpe(self) -> bool:
        """Whether the labels are ``▁``-style word pieces."""
        return self._is_bpe

    @property
    def blank(self) -> int:
        """Index of the CTC blank ``""``."""
        return self._labels.index("")

    @property
    def delimiter(self) -> int:
        """Index of the word delimiter ``" "`` (-1 when absent, e.g. BPE)."""
        return self._labels.index(" ") if " " in self._labels else -1

    def __len__(self) -> int:
        return len(self._labels)

    @classmethod
    def build_alphabet(cls, labels: Sequence[str]) -> Alphabet:
        """Normalise raw model labels (see the module docstring).

        Raises
        ------
        TypeError
            ``labels`` is a string or holds non-strings.
        ValueError
            Empty, duplicated labels, or a space inside a BPE vocabulary.
        """
        if isinstance(labels, (str, bytes)):
            raise TypeError(
                f"labels must be a sequence of strings, one per class; got a string {labels!r}. "
                "Use list(labels) for single-character labels."
            )
        labels = list(labels)
        _check_labels(labels)
        bpe = _is_bpe(labels)
        if bpe:
            spaced = [s for s in labels if " " in s]
            if spaced:
                raise ValueError(
                    f"labels look like BPE pieces (they use '▁' or '##') but contain the space "
                    f"label {spaced[0]!r}; BPE vocabularies mark word starts with '▁' instead."
                )
            return cls(_bpe(labels), True)
        return cls(_regular(labels), False)

    def dumps(self) -> str:
        """JSON form, the same as pyctcdecode's ``alphabet.json``."""
        return json.dumps({"labels": self._labels, "is_bpe": self._is_bpe})

    @classmethod
    def loads(cls, s: str) -> Alphabet:
        """Inverse of :meth:`dumps`."""
        d: Any = json.loads(s)
        if not isinstance(d, dict) or set(d) != {"labels", "is_bpe"}:
            raise ValueError(
                "alphabet JSON must be an object with exactly the keys 'labels' and 'is_bpe'; "
                f"got {sorted(d) if isinstance(d, dict) else type(d).__name__}."
            )
        labels, is_bpe = d["labels"], d["is_bpe"]
        if not isinstance(labels, list):
            raise ValueError(f"alphabet JSON 'labels' must be a list; got {type(labels).__name__}.")
        if not isinstance(is_bpe, bool):
            raise ValueError(
                f"alphabet JSON 'is_bpe' must be true or false; got {ascii(is_bpe)[:40]}."
            )
        _check_labels(labels)
        if "" not in labels:
            raise ValueError("alphabet JSON 'labels' must hold the blank label ''.")
        return cls(labels, is_bpe)


def _check_labels(labels: list[Any]) -> None:
    """Labels must be unique strings of valid Unicode text (no lone surrogates)."""
    for i, s in enumerate(labels):
        hint = "; decode the vocabulary with errors='strict' or fix the label"
        check_text(s, f"labels[{i}]", hint)
    if not labels:
        raise ValueError("labels must not be empty.")
    if len(set(labels)) != len(labels):
        dup = next(s for i, s in enumerate(labels) if s in labels[:i])
        raise ValueError(f"labels contain the duplicate entry {dup!r}; labels must be unique.")
