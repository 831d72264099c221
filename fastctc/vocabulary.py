"""The vocabulary of a CTC model: how label ids become words, and the per-label arrays of the
LM search kernel.

One class, :class:`Vocabulary`, for the command line (transcripts to token ids, tokens to
words) and the LM decoder (label kinds and code points for the kernel, how each label
prints). :meth:`Vocabulary.build` works out the style from raw model labels;
:meth:`Vocabulary.from_alphabet` takes the normalised labels of a
:class:`fastctc.alphabet.Alphabet`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .alphabet import BPE_TOKEN, Alphabet
from .kernels.lm_beam import K_BLANK, K_BPE_START, K_NORMAL, K_SPACE

__all__ = ["Vocabulary", "encode_strings"]


def encode_strings(words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Code points of ``words``, concatenated, and where each word starts.

    Returns ``(codes, offsets)``, both int64: word ``i`` is ``codes[offsets[i]:offsets[i + 1]]``
    (``len(offsets) == len(words) + 1``). A lone surrogate raises ``UnicodeEncodeError``.

    Examples
    --------
    >>> codes, offsets = encode_strings(["ab", "", "c"])
    >>> codes.tolist(), offsets.tolist()
    ([97, 98, 99], [0, 2, 2, 3])
    """
    words = list(words)
    lens = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    codes = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return codes, offsets


@dataclass(frozen=True)
class Vocabulary:
    """How label ids become words: character labels with a delimiter, or subword pieces.

    Attributes
    ----------
    labels : tuple of str
        One label per class (column of the model's output), the blank included.
    blank : int
        Index of the CTC blank.
    style : str
        ``"char"`` (characters, words split at ``delimiter``), ``"sentencepiece"`` (a label
        starting with ``▁`` starts a word) or ``"wordpiece"`` (a label starting with ``##``
        continues one).
    delimiter : int or None
        Index of the word delimiter of character labels (``" "``, else ``"|"``); None when
        there is none, and for subword labels.

    The arrays of the LM search kernel (``kinds``, ``codes``, ``offsets``) and ``render``
    are computed on first use; treat them as read-only.

    Examples
    --------
    >>> v = Vocabulary.build(["", " ", "a", "b"], blank=0)
    >>> v.style, v.delimiter
    ('char', 1)
    >>> v.words([2, 3, 1, 2], starts=[0, 2, 4, 6], ends=[1, 3, 5, 7])
    [('ab', 0, 3), ('a', 6, 7)]
    >>> v.encode("ab a")
    [2, 3, 1, 2]
    >>> v.kinds.tolist(), v.render
    ([0, 1, 3, 3], ('', ' ', 'a', 'b'))
    """

    labels: tuple[str, ...]
    blank: int
    style: str  # "char", "sentencepiece" (▁ starts a word) or "wordpiece" (## continues one)
    delimiter: int | None  # id of the word delimiter (" " or "|") for character labels

    @classmethod
    def build(cls, labels: Sequence[str], blank: int) -> Vocabulary:
        """Work out the style from the labels, as pyctcdecode does."""
        labels = tuple(labels)
        if any(lab.startswith(BPE_TOKEN) for lab in labels):
            style = "sentencepiece"
        elif any(lab.startswith("##") for lab in labels):
            style = "wordpiece"
        else:
            style = "char"
        delim = None
        if style == "char":
            if " " in labels:
                delim = labels.index(" ")
            elif "|" in labels:
                delim = labels.index("|")
        return cls(labels, blank, style, delim)

    @classmethod
    def from_alphabet(cls, alphabet: Alphabet) -> Vocabulary:
        """The vocabulary of an :class:`~fastctc.alphabet.Alphabet`'s normalised labels.

        The blank is the label ``""``; BPE alphabets (``alphabet.is_bpe``) are
        ``"sentencepiece"`` style, the others ``"char"`` with the delimiter ``" "`` (if any).

        Examples
        --------
        >>> from fastctc.alphabet import Alphabet
        >>> v = Vocabulary.from_alphabet(Alphabet.build_alphabet(["<pad>", "\u2581ab", "c"]))
        >>> v.labels, v.style, v.blank
        (('', '▁ab', 'c'), 'sentencepiece', 0)
        >>> v.kinds.tolist(), v.render, v.offsets.tolist()
        ([0, 2, 3], ('', ' ab', 'c'), [0, 0, 2, 3])
        """
        labels = tuple(alphabet.labels)
        if alphabet.is_bpe:
            return cls(labels, alphabet.blank, "sentencepiece", None)
        delim = labels.index(" ") if " " in labels else None
        return cls(labels, alphabet.blank, "char", delim)

    @cached_property
    def _kernel_labels(self) -> tuple[np.ndarray, list[str], tuple[str, ...]]:
        """Each label's kind, its characters in a word (cleaned text) and how it prints."""
        if self.style == "wordpiece":
            raise ValueError(
                "the LM search needs '\u2581'-style word pieces; convert '##' pieces with "
                "Vocabulary.from_alphabet(fastctc.alphabet.Alphabet.build_alphabet(labels))."
            )
        kinds = np.full(len(self.labels), K_NORMAL, dtype=np.int64)
        clean: list[str] = []
        render: list[str] = []
        for i, lab in enumerate(self.labels):
            if i == self.blank:
                kinds[i] = K_BLANK
                clean.append("")
                render.append("")
            elif self.style == "sentencepiece" and lab.startswith(BPE_TOKEN):
                kinds[i] = K_BPE_START
                c = lab[1:]
                if c.endswith(BPE_TOKEN):
                    c = c[:-1]
                clean.append(c)
                render.append(" " + c)
            elif i == self.delimiter:
                kinds[i] = K_SPACE
                clean.append("")
                render.append(" ")
            else:
                clean.append(lab)
                render.append(lab)
        return kinds, clean, tuple(render)

    @cached_property
    def kinds(self) -> np.ndarray:
        """int64 (C,): each label's kind for the LM search kernel: ``K_BLANK`` (the blank),
        ``K_SPACE`` (the delimiter of character labels: ends a word, adds no character),
        ``K_BPE_START`` (a ``▁`` piece: ends the previous word, starts a new one) or
        ``K_NORMAL`` (adds its characters to the current word)."""
        return self._kernel_labels[0]

    @cached_property
    def _codes_offsets(self) -> tuple[np.ndarray, np.ndarray]:
        return encode_strings(self._kernel_labels[1])

    @property
    def codes(self) -> np.ndarray:
        """int64: code points of each label's characters in a word (no ``▁`` marks, nothing
        for the blank and the delimiter), concatenated; see :func:`encode_strings`."""
        return self._codes_offsets[0]

    @property
    def offsets(self) -> np.ndarray:
        """int64 (C + 1,): label ``i``'s characters are ``codes[offsets[i]:offsets[i + 1]]``."""
        return self._codes_offsets[1]

    @property
    def render(self) -> tuple[str, ...]:
        """How each label prints in a transcript: ``""`` for the blank, ``" "`` for the
        delimiter, ``" " + piece`` for a ``▁`` piece, the label itself otherwise."""
        return self._kernel_labels[2]

    def words(
        self, tokens: Sequence[int], starts: Sequence[int], ends: Sequence[int]
    ) -> list[tuple[str, int, int]]:
        """Group tokens into words ``(word, start_frame, end_frame)`` (end exclusive)."""
        out: list[tuple[str, int, int]] = []
        cur: list[str] = []
        s0 = e0 = 0

        def close() -> None:
            if cur and "".join(cur):
                out.append(("".join(cur), s0, e0))
            cur.clear()

        for tok, s, e in zip(tokens, starts, ends, strict=True):
            tok = int(tok)
            if tok == self.blank:
                continue
            lab = self.labels[tok]
            if self.style == "char":
                if tok == self.delimiter:
                    close()
                    continue
                piece, new = lab, False
            elif self.style == "sentencepiece":
                new = lab.startswith("\u2581")
                piece = lab[1:] if new else lab
            else:
                new = not lab.startswith("##")
                piece = lab[2:] if not new else lab
            if new:
                close()
            if not cur:
                s0 = int(s)
            cur.append(piece)
            e0 = int(e)
            if self.style == "sentencepiece" and not piece:
                close()
        close()
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of a transcript (characters, or longest-match sentencepiece pieces).

        Raises
        ------
        ValueError
            A character (or a word, for subword labels) that the labels cannot spell.
        """
        index = {lab: i for i, lab in enumerate(self.labels) if i != self.blank}
        words = text.split()
        ids: list[int] = []
        if self.style == "char":
            for w, word in enumerate(words):
                if w and self.delimiter is not None:
                    ids.append(self.delimiter)
                for ch in word:
                    if ch not in index:
                        raise ValueError(f"character {ch!r} of {word!r} is not a label")
                    ids.append(index[ch])
            return ids
        if self.style == "wordpiece":
            raise ValueError("transcripts cannot be tokenised for '##' word-piece labels")
        longest = max(len(lab) for lab in self.labels)
        for word in words:
            rest = "\u2581" + word
            while rest:
                for n in range(min(longest, len(rest)), 0, -1):
                    if rest[:n] in index:
                        ids.append(index[rest[:n]])
                        rest = rest[n:]
                        break
                else:
                    raise ValueError(f"word {word!r} cannot be spelled with the labels")
        return ids
