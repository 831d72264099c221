"""ARPA back-off models read into arrays the compiled beam search scores from natively.

:func:`read_arpa` parses an ARPA file (the text format KenLM's ``lmplz`` writes) into an
:class:`NgramTables`; :func:`fastctc.kernels.ngram.log10_prob` then gives KenLM's
``BaseScore`` for any context without Python or the GIL. :class:`NgramModel` puts the tables
behind the part of ``kenlm.Model``'s interface that the decoder uses, so that ARPA files and
KenLM trie binaries need no ``kenlm`` package; its states are :class:`NgramState`.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Sequence

import numpy as np

from .kernels import ngram as kn
from .kernels.lm_cache import capacity, make_set

_COUNT = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")
#: KenLM's probability for ``<unk>`` when the file has none.
MISSING_UNK_LOG10 = -100.0


class NeedsKenLMError(ValueError):
    """A well-formed model file that fastctc's readers do not mirror; the ``kenlm`` package
    reads it (KenLM hash-table binaries, ARPA files whose n-grams lack their context
    n-grams)."""


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

    def __init__(
        self,
        order: int,
        words: list[str],
        uni: np.ndarray,
        keys: np.ndarray,
        vals: np.ndarray,
        meta: np.ndarray,
    ) -> None:
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


class NgramState:
    """State of an :class:`NgramModel`: the words that condition the next one.

    fastctc's counterpart of ``kenlm.State``: hashable, compared by value, and written in
    place by :meth:`NgramModel.BeginSentenceWrite`, :meth:`NgramModel.NullContextWrite` and
    :meth:`NgramModel.BaseScore`. ``words`` holds the last ``order - 1`` words in text order,
    ``<s>`` first at a sentence start and ``<unk>`` for a word the model does not know.
    (KenLM's state may keep fewer words: only those that can still change a score. The scores
    are the same.)

    Parameters
    ----------
    words : tuple of str
        The context, oldest word first.

    Examples
    --------
    >>> from fastctc.ngram import NgramState
    >>> NgramState(("<s>", "the")) == NgramState(("<s>", "the"))
    True
    >>> NgramState().words
    ()
    """

    __slots__ = ("words",)

    def __init__(self, words: Sequence[str] = ()) -> None:
        self.words: tuple[str, ...] = tuple(words)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NgramState):
            return NotImplemented
        return self.words == other.words

    def __hash__(self) -> int:
        return hash(self.words)

    def __repr__(self) -> str:
        return f"NgramState({self.words!r})"


class NgramModel:
    r"""A word n-gram model scored from :class:`NgramTables`, with ``kenlm.Model``'s interface.

    The decoder uses it in place of ``kenlm.Model`` when the ``kenlm`` package is missing (see
    :func:`fastctc.lm.load_model`, which reads the file). It offers what the decoder and
    code written for KenLM's Python module use: ``order``, ``path``, ``word in model``,
    :meth:`BeginSentenceWrite`, :meth:`NullContextWrite`, :meth:`BaseScore` and
    :meth:`score`, with the same values as KenLM on the same file, bit for bit. States are
    :class:`NgramState` objects.

    Parameters
    ----------
    tables : NgramTables
        The model, as :func:`read_arpa` or :func:`fastctc.kenlm_binary.read_kenlm_trie`
        return it.
    path : str, optional
        The file the tables were read from.

    Examples
    --------
    >>> from fastctc.ngram import NgramModel, NgramState, read_arpa_bytes
    >>> arpa = (b"\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.5\n"
    ...         b"-0.5\t</s>\n-0.3\tcat\n\n\\2-grams:\n-0.1\t<s> cat\n\n\\end\\\n")
    >>> model = NgramModel(read_arpa_bytes(arpa))
    >>> start, after = NgramState(), NgramState()
    >>> model.BeginSentenceWrite(start)
    >>> round(model.BaseScore(start, "cat", after), 6), after
    (-0.1, NgramState(('cat',)))
    >>> "cat" in model, "dog" in model
    (True, False)
    """

    def __init__(self, tables: NgramTables, path: str | None = None) -> None:
        self.tables = tables
        self.path = path
        self._uni, self._keys, self._vals, self._meta = tables.arrays(True)
        self._keep = tables.order - 1
        has_bos = tables.meta[kn.M_BOS] >= 0
        self._start: tuple[str, ...] = ("<s>",) if has_bos and self._keep else ()

    @property
    def order(self) -> int:
        """Order of the model (the longest n-gram)."""
        return self.tables.order

    def __contains__(self, word: object) -> bool:
        """Whether the model knows ``word`` (``<unk>`` is not a known word, as in KenLM)."""
        return self.tables.ids.get(word, 0) != 0  # type: ignore[call-overload]

    def __repr__(self) -> str:
        return f"NgramModel(order={self.order}, words={len(self.tables.words)}, path={self.path!r})"

    def BeginSentenceWrite(self, state: NgramState) -> None:  # noqa: N802 - KenLM's name
        """Set ``state`` to the sentence start (``<s>``)."""
        state.words = self._start

    def NullContextWrite(self, state: NgramState) -> None:  # noqa: N802 - KenLM's name
        """Set ``state`` to the empty context."""
        state.words = ()

    def BaseScore(
        self,
        in_state: NgramState,
        word: str,  # noqa: N802 - KenLM's name
        out_state: NgramState,
    ) -> float:
        """log10 probability of ``word`` after ``in_state``; writes the next state into
        ``out_state``.

        Raises
        ------
        TypeError
            ``in_state`` is not an :class:`NgramState` (a ``kenlm.State``, for instance).
        """
        if not isinstance(in_state, NgramState):
            raise TypeError(
                f"in_state must be an NgramState of this model; got {type(in_state).__name__}."
            )
        ids = self.tables.ids
        wid = ids.get(word, 0)
        ctx = np.array([ids.get(w, 0) for w in reversed(in_state.words)], dtype=np.int64)
        p = kn.log10_prob(ctx, ctx.size, wid, self._uni, self._keys, self._vals, self._meta)
        out_state.words = self._push(in_state.words, (self.tables.words[wid],))
        return float(p)

    def state_after(self, state: NgramState, words: Sequence[str]) -> NgramState:
        """The state after ``words`` from ``state``, without scoring them."""
        known, ids = self.tables.words, self.tables.ids
        return NgramState(self._push(state.words, tuple(known[ids.get(w, 0)] for w in words)))

    def score(self, sentence: str, bos: bool = True, eos: bool = True) -> float:
        """log10 probability of the space-separated ``sentence`` (KenLM's ``Model.score``:
        from ``<s>`` if ``bos``, with ``</s>`` if ``eos``, summed in float32)."""
        words = sentence.split()
        if eos:
            words.append("</s>")
        if not words:
            return 0.0
        return float(np.cumsum(self.tables.log10_scores(words, bos), dtype=np.float32)[-1])

    def _push(self, context: tuple[str, ...], words: tuple[str, ...]) -> tuple[str, ...]:
        return (context + words)[-self._keep :] if self._keep else ()


def _read_bytes(path: str, limit: int = -1) -> bytes:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read(limit)


def looks_like_arpa(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts (after blank lines) with the ARPA ``\\data\\`` header."""
    try:
        head = _read_bytes(os.fspath(path), 4096)
    except (OSError, EOFError):
        return False
    return head.lstrip().startswith(b"\\data\\")


def read_arpa(path: str | os.PathLike[str]) -> NgramTables:
    """Parse an ARPA file (optionally gzipped) into :class:`NgramTables`.

    The common layout (``prob<TAB>words[<TAB>backoff]`` lines, as KenLM and SRILM write) is
    scanned by a compiled reader; anything else goes through a line-by-line reader, which
    also words the errors.

    Raises
    ------
    ValueError
        The file is not a well-formed ARPA model (the message names the line).
    """
    p = os.fspath(path)
    return read_arpa_bytes(_read_bytes(p), p)


def read_arpa_bytes(data: bytes, name: str = "<bytes>") -> NgramTables:
    """:func:`read_arpa` of a file's contents (``name`` goes into error messages)."""
    p = name
    tables = _read_fast(data, p)
    if tables is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{p!r} is not UTF-8 text: {err}") from None
        tables = _read_lines(text, p)
    return tables


def _header(lines: list[str], p: str) -> tuple[dict[int, int], int]:
    """N-gram counts of the ``\\data\\`` header and the index of the line after it."""
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
    return counts, i


def _read_fast(data: bytes, name: str) -> NgramTables | None:
    """The compiled reader; ``None`` where the file departs from the common layout."""
    first = data.find(b"\\1-grams:")
    if first < 0:
        return None
    try:
        counts, _ = _header(data[:first].decode("utf-8").split("\n"), "")
    except (ValueError, UnicodeDecodeError):
        return None
    order = len(counts)
    buf = np.frombuffer(data, dtype=np.uint8)
    pos = first
    grams = []
    words: list[str] = []
    for n in range(1, order + 1):
        pos = data.find(b"\\%d-grams:" % n, pos)
        if pos < 0:
            return None
        pos = data.find(b"\n", pos) + 1
        if pos == 0:
            return None
        c = counts[n]
        ids = np.empty((c, n), dtype=np.int64)
        prob = np.empty(c)
        bow = np.empty(c)
        spans = np.empty((c if n == 1 else 0, 2), dtype=np.int64)
        if n == 1:
            vkeys, vvals = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        status, _, pos = kn.scan_section(buf, pos, c, n, vkeys, vvals, ids, prob, bow, spans)
        if status != kn.SCAN_OK:
            return None
        if n == 1:
            try:
                words = [data[a:b].decode("utf-8") for a, b in spans.tolist()]
            except UnicodeDecodeError:
                return None
            hashes = kn.span_hashes(buf, spans)
            if np.unique(hashes).size != c:
                return None  # a repeated word (or a 64-bit hash collision)
            # vocabulary ids: <unk> is 0 (added when missing), the rest in file order
            row_id = np.arange(1, c + 1, dtype=np.int64)
            if "<unk>" in words:
                k = words.index("<unk>")
                row_id[k] = 0
                row_id[k + 1 :] -= 1
                vocab = ["<unk>"] + words[:k] + words[k + 1 :]
                u_prob, u_bow = np.empty(c), np.empty(c)
            else:
                vocab = ["<unk>"] + words
                u_prob, u_bow = np.full(c + 1, MISSING_UNK_LOG10), np.zeros(c + 1)
            u_prob[row_id] = prob
            u_bow[row_id] = bow
            vkeys, vvals = make_set(hashes, row_id)
        else:
            grams.append((ids, prob, bow))
    return _assemble(order, vocab, u_prob, u_bow, grams, name)


def _assemble(
    order: int,
    words: list[str],
    u_prob: np.ndarray,
    u_bow: np.ndarray,
    grams: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    name: str = "<model>",
) -> NgramTables:
    """Hash the n-grams of each order >= 2 (``grams[n - 2]``: word ids, log10 probabilities
    and back-offs as float64, rounded to float32 here) into the kernel's tables."""
    uni = np.empty((len(words), 2), dtype=np.float32)
    uni[:, 0] = u_prob
    uni[:, 1] = u_bow
    caps = [capacity(g[0].shape[0]) for g in grams]
    keys = np.zeros(max(sum(caps), 1), dtype=np.uint64)
    vals = np.zeros((keys.size, 2), dtype=np.float32)
    meta = np.zeros(2 * order + 2, dtype=np.int64)
    meta[kn.M_ORDER] = order
    meta[kn.M_BOS] = words.index("<s>") if "<s>" in words else -1
    meta[kn.M_EOS] = words.index("</s>") if "</s>" in words else 0
    off = 0
    for n, ((ids, prob, bow), cap) in enumerate(zip(grams, caps, strict=True), start=2):
        meta[2 * n] = off
        meta[2 * n + 1] = cap - 1
        kn.fill_order(
            ids, prob.astype(np.float32), bow.astype(np.float32), keys, vals, off, cap - 1
        )
        off += cap
    for ids, _, _ in grams[1:]:
        missing = kn.count_unclosed(ids, keys, meta)
        if missing:
            n = ids.shape[1]
            raise NeedsKenLMError(
                f"{name!r}: {missing} {n}-grams lack their first or last {n - 1} words as an "
                "n-gram of their own; such files are read through KenLM, which fills the gaps in."
            )
    return NgramTables(order, words, uni, keys, vals, meta)


def _read_lines(text: str, p: str) -> NgramTables:
    """The line-by-line reader (any whitespace layout KenLM reads; precise errors)."""
    lines = text.split("\n")
    del text
    counts, i = _header(lines, p)
    order = len(counts)
    sections: dict[int, tuple[int, list[str]]] = {}
    for n in range(1, order + 1):
        head = f"\\{n}-grams:"
        while i < len(lines) and lines[i].strip() != head:
            i += 1
        if i == len(lines):
            raise ValueError(f"{p!r}: no {head} section.")
        i += 1
        body = lines[i : i + counts[n]]
        if len(body) != counts[n] or any(not ln.strip() for ln in body):
            raise ValueError(f"{p!r}: the {head} section has fewer than {counts[n]} lines.")
        sections[n] = (i, body)
        i += counts[n]
    del lines

    # unigrams: the vocabulary (<unk> first, as KenLM numbers it)
    start, body = sections[1]
    words = ["<unk>"]
    probs = [MISSING_UNK_LOG10]
    bows = [0.0]
    for r, line in enumerate(body):
        parts = line.split()
        if len(parts) not in (2, 3):
            raise ValueError(f"{p!r} line {start + r + 1}: expected 'prob<TAB>word[<TAB>bow]'.")
        w = parts[1]
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
    grams = []
    for n in range(2, order + 1):
        start, body = sections[n]
        grams.append(_parse_section(body, n, ids, p, start))
    return _assemble(order, words, np.array(probs), np.array(bows), grams, p)


def _float(s: str, path: str, line: int) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{path!r} line {line + 1}: {s!r} is not a number.") from None


def _parse_section(
    body: list[str], n: int, ids: dict[str, int], path: str, start: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word ids ``(count, n)``, log10 probabilities and back-offs of one order."""
    count = len(body)
    gram_ids = np.empty((count, n), dtype=np.int64)
    prob = np.empty(count)
    bow = np.zeros(count)
    for r, line in enumerate(body):
        parts = line.split()
        if len(parts) not in (n + 1, n + 2):
            raise ValueError(
                f"{path!r} line {start + r + 1}: expected 'prob<TAB>{n} words[<TAB>bow]'; "
                f"got {line!r}."
            )
        prob[r] = _float(parts[0], path, start + r)
        if len(parts) == n + 2:
            bow[r] = _float(parts[n + 1], path, start + r)
        for c in range(n):
            k = ids.get(parts[1 + c])
            if k is None:
                raise ValueError(
                    f"{path!r} line {start + r + 1}: the word {parts[1 + c]!r} is not in the "
                    "\\1-grams: section."
                )
            gram_ids[r, c] = k
    return gram_ids, prob, bow
