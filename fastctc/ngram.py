"""ARPA back-off models read into arrays the compiled beam search scores from natively.

:func:`read_arpa` parses an ARPA file (the text format KenLM's ``lmplz`` writes) into an
:class:`NgramTables`; :func:`fastctc.kernels.ngram.log10_prob` then gives KenLM's
``BaseScore`` for any context without Python or the GIL.
"""

from __future__ import annotations

import gzip
import os
import re

import numpy as np

from .kernels import ngram as kn

_COUNT = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")
#: KenLM's probability for ``<unk>`` when the file has none.
MISSING_UNK_LOG10 = -100.0


class NgramTables:
    """Vocabulary and n-gram tables of one ARPA model (read-only after construction).

    Attributes
    ----------
    order : int
    words : list of str
        Vocabulary by id (id 0 is ``<unk>``).
    ids : dict
        Word -> id.
    uni, keys, vals, meta : numpy arrays
        See :mod:`fastctc.kernels.ngram`.
    """

    def __init__(self, order: int, words: list[str], uni: np.ndarray, keys: np.ndarray,
                 vals: np.ndarray, meta: np.ndarray) -> None:  # fmt: skip
        self.order = order
        self.words = words
        self.ids = {w: i for i, w in enumerate(words)}
        self.uni = uni
        self.keys = keys
        self.vals = vals
        self.meta = meta

    def id_of(self, word: str) -> int:
        """Vocabulary id of ``word`` (0, ``<unk>``, for words the model does not know)."""
        return self.ids.get(word, 0)

    def arrays(self, bos: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(uni, keys, vals, meta)`` for the kernel, ``meta`` for sentences scored with
        their boundaries (``bos``: from ``<s>``, ending with ``</s>``) or not."""
        meta = self.meta.copy()
        meta[kn.M_BOUNDARY] = int(bos)
        if not bos:
            meta[kn.M_BOS] = -1
        return self.uni, self.keys, self.vals, meta

    def log10_scores(self, words: list[str], bos: bool = True) -> np.ndarray:
        """log10 probability of each word after the ones before it (from ``<s>`` if
        ``bos``), as KenLM's ``BaseScore`` gives them."""
        uni, keys, vals, meta = self.arrays(bos)
        ids = np.array([self.id_of(w) for w in words], dtype=np.int64)
        start = np.array([meta[kn.M_BOS]], dtype=np.int64)
        return kn.score_sequence(ids, start, int(bos), uni, keys, vals, meta)


def _open_text(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def looks_like_arpa(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts (after blank lines) with the ARPA ``\\data\\`` header."""
    p = os.fspath(path)
    try:
        with _open_text(p) as f:
            for line in f:
                if line.strip():
                    return line.strip() == "\\data\\"
    except (OSError, UnicodeDecodeError, EOFError):
        return False
    return False


def read_arpa(path: str | os.PathLike[str]) -> NgramTables:
    """Parse an ARPA file into :class:`NgramTables`.

    Raises
    ------
    ValueError
        The file is not a well-formed ARPA model (the message names the line).
    """
    p = os.fspath(path)
    with _open_text(p) as f:
        text = f.read()
    lines = text.split("\n")
    del text
    counts: dict[int, int] = {}
    i = 0
    while i < len(lines) and lines[i].strip() != "\\data\\":
        i += 1
    if i == len(lines):
        raise ValueError(f"{p!r} is not an ARPA file: no \\data\\ header.")
    i += 1
    while i < len(lines) and lines[i].strip():
        m = _COUNT.match(lines[i].strip())
        if not m:
            raise ValueError(f"{p!r} line {i + 1}: expected 'ngram N=count'; got {lines[i]!r}.")
        counts[int(m.group(1))] = int(m.group(2))
        i += 1
    order = max(counts) if counts else 0
    if order < 1 or sorted(counts) != list(range(1, order + 1)):
        raise ValueError(f"{p!r}: the \\data\\ header lists orders {sorted(counts)}.")
    sections: dict[int, tuple[int, list[str]]] = {}
    for n in range(1, order + 1):
        head = f"\\{n}-grams:"
        while i < len(lines) and lines[i].strip() != head:
            i += 1
        if i == len(lines):
            raise ValueError(f"{p!r}: no {head} section.")
        i += 1
        body = lines[i : i + counts[n]]
        if len(body) != counts[n] or any(not ln.strip() for ln in body[-1:]):
            raise ValueError(f"{p!r}: the {head} section has fewer than {counts[n]} lines.")
        sections[n] = (i, body)
        i += counts[n]
    del lines

    # unigrams: the vocabulary (<unk> first, as KenLM numbers it)
    start, body = sections[1]
    uni_rows = [ln.split("\t") for ln in body]
    words = ["<unk>"]
    probs = [MISSING_UNK_LOG10]
    bows = [0.0]
    for r, parts in enumerate(uni_rows):
        if len(parts) not in (2, 3):
            raise ValueError(f"{p!r} line {start + r + 1}: expected 'prob<TAB>word[<TAB>bow]'.")
        w = parts[1].strip()
        prob = _float(parts[0], p, start + r)
        bow = _float(parts[2], p, start + r) if len(parts) == 3 else 0.0
        if w == "<unk>":
            probs[0], bows[0] = prob, bow
            continue
        words.append(w)
        probs.append(prob)
        bows.append(bow)
    ids = {w: k for k, w in enumerate(words)}
    if len(ids) != len(words):
        raise ValueError(f"{p!r}: a word is listed twice in the \\1-grams: section.")
    uni = np.empty((len(words), 2), dtype=np.float32)
    uni[:, 0] = np.array(probs, dtype=np.float64).astype(np.float32)
    uni[:, 1] = np.array(bows, dtype=np.float64).astype(np.float32)

    caps = [max(16, 1 << int(2 * counts[n] - 1).bit_length()) for n in range(2, order + 1)]
    total = sum(caps)
    keys = np.zeros(max(total, 1), dtype=np.uint64)
    vals = np.zeros((max(total, 1), 2), dtype=np.float32)
    meta = np.zeros(2 * order + 2, dtype=np.int64)
    meta[kn.M_ORDER] = order
    meta[kn.M_BOS] = ids.get("<s>", -1)
    meta[kn.M_EOS] = ids.get("</s>", 0)
    off = 0
    for n in range(2, order + 1):
        cap = caps[n - 2]
        meta[2 * n] = off
        meta[2 * n + 1] = cap - 1
        start, body = sections[n]
        gram_ids, prob, bow = _parse_section(body, n, ids, p, start)
        kn.fill_order(gram_ids, prob, bow, keys, vals, off, cap - 1)
        off += cap
    return NgramTables(order, words, uni, keys, vals, meta)


def _float(s: str, path: str, line: int) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{path!r} line {line + 1}: {s!r} is not a number.") from None


def _parse_section(body: list[str], n: int, ids: dict[str, int], path: str,
                   start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Word ids ``(count, n)``, float32 probabilities and back-offs of one order."""
    count = len(body)
    rows = [ln.split("\t") for ln in body]
    try:
        prob = np.array([r[0] for r in rows], dtype=np.float64).astype(np.float32)
        bow = np.array([r[2] if len(r) > 2 else "0" for r in rows], dtype=np.float64)
        grams = " ".join([r[1] for r in rows]).split(" ")
    except (IndexError, ValueError):
        for r, parts in enumerate(rows):
            if len(parts) not in (2, 3):
                raise ValueError(
                    f"{path!r} line {start + r + 1}: expected 'prob<TAB>{n} words[<TAB>bow]'."
                ) from None
            _float(parts[0], path, start + r)
            if len(parts) == 3:
                _float(parts[2], path, start + r)
        raise
    if len(grams) != count * n:
        for r, parts in enumerate(rows):
            if len(parts[1].split(" ")) != n:
                raise ValueError(f"{path!r} line {start + r + 1}: expected {n} words.")
    get = ids.get
    flat = np.fromiter((get(w, -1) for w in grams), dtype=np.int64, count=count * n)
    if count and flat.min() < 0:
        bad = int(np.argmax(flat < 0))
        raise ValueError(
            f"{path!r} line {start + bad // n + 1}: the word {grams[bad]!r} is not in the "
            "\\1-grams: section."
        )
    return flat.reshape(count, n), prob, bow.astype(np.float32)
