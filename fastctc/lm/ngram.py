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
import numpy.typing as npt

from ..kernels import ngram as kn
from ..kernels.lm_cache import capacity, make_set

_COUNT = re.compile(r"^ngram (\d+)=(\d+)$")
#: A probability or back-off as KenLM reads it: a decimal number (no ``nan``, ``inf``, ``_``).
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: KenLM's probability for ``<unk>`` when the file has none.
MISSING_UNK_LOG10 = -100.0
#: Largest n-gram count an ARPA header may declare, and the largest order.
MAX_NGRAMS = 1 << 32
MAX_ORDER = 255
#: The ``\\data\\`` header (after any blank lines) must end within this many bytes.
HEAD_LIMIT = 1 << 20
#: Bytes a gzip stream can at most expand to per compressed byte (deflate's limit is 1032).
_GZIP_RATIO = 1100
#: Blank or extra lines an ARPA file may hold beyond one per n-gram, section header and
#: section end, before it is taken for a flood of blank lines.
_SLACK_LINES = 4096


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


def _excerpt(line: str | bytes, limit: int = 40) -> str:
    """A short, printable excerpt of a line of a file for an error message."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    text = ascii(line[:limit])
    return text + ("..." if len(line) > limit else "")


def _max_bytes(path: str) -> int:
    """An upper bound on the (decompressed) size of the file at ``path``."""
    size = os.path.getsize(path)
    return size * _GZIP_RATIO + 64 if path.endswith(".gz") else size


def check_arpa_header(path: str | os.PathLike[str]) -> dict[int, int]:
    """The n-gram counts of an ARPA file's ``\\data\\`` header, checked without reading
    further: ``\\data\\`` first (after blank lines, within :data:`HEAD_LIMIT` bytes), then
    ``ngram N=count`` lines for N = 1, 2, ... with non-negative counts no larger than
    :data:`MAX_NGRAMS` and than the file could hold. Run on every ARPA file before KenLM
    reads it (KenLM crashes on some malformed headers).

    Raises
    ------
    ValueError
        A malformed or implausible header; the message names the file and the line.
    """
    p = os.fspath(path)
    try:
        head = _read_bytes(p, HEAD_LIMIT)
    except (OSError, EOFError) as err:
        raise ValueError(f"{p!r} could not be read: {err}") from None
    counts, _ = _header_of(head, p)
    _check_counts_fit(counts, _max_bytes(p), p)
    return counts


def _header_of(data: bytes, p: str) -> tuple[dict[int, int], int]:
    """:func:`_header` of the first :data:`HEAD_LIMIT` bytes of ``data``."""
    head = data[:HEAD_LIMIT]
    lines = head.decode("utf-8", "replace").split("\n")
    if len(head) == HEAD_LIMIT and len(data) >= HEAD_LIMIT:
        lines.pop()  # a partial line
    return _header(lines, p, complete=len(head) < HEAD_LIMIT)


def _check_counts_fit(counts: dict[int, int], max_bytes: int, p: str) -> None:
    """Counts that a file of at most ``max_bytes`` bytes cannot hold (an n-gram line takes
    at least 4 bytes: ``p<TAB>w<NL>``) are rejected before anything is allocated."""
    total = sum(counts.values())
    if 4 * total > max_bytes:
        raise ValueError(
            f"{p!r}: the \\data\\ header declares {total} n-grams, more than a file of at most "
            f"{max_bytes} bytes can hold; the header is corrupt."
        )


def _check_line_count(data: bytes, counts: dict[int, int], p: str) -> None:
    """Reject files with far more lines than their n-grams need (a flood of blank lines),
    before they are split into lines."""
    allowed = sum(counts.values()) + 4 * len(counts) + _SLACK_LINES
    if data.count(b"\n", 0, HEAD_LIMIT + 8 * allowed) > allowed:
        raise ValueError(
            f"{p!r} holds more than {allowed} lines, far more than the {sum(counts.values())} "
            "n-grams of its \\data\\ header need (blank lines?); it is not a well-formed ARPA "
            "file."
        )


def looks_like_arpa(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts (after blank lines and ``#`` comments) with the ARPA
    ``\\data\\`` header."""
    try:
        head = _read_bytes(os.fspath(path), 4096)
    except (OSError, EOFError):
        return False
    for line in head.split(b"\n"):
        if line.strip() and not line.startswith(b"#"):
            return line.strip() == b"\\data\\"
    return False


def arpa_unigrams(path: str | os.PathLike[str], *, require_backoff: bool = False) -> list[str]:
    r"""Words of an ARPA file's ``\1-grams:`` section, in file order, read without the rest.

    Reads the ``\data\`` header and the unigram section only and builds no tables, so it is
    quick on large models. Each non-blank line of the section must be
    ``prob<TAB>word[<TAB>backoff]`` (surrounding whitespace ignored), as :func:`read_arpa`
    reads it; the section ends at the next ``\`` line (``\2-grams:`` or ``\end\``).

    Parameters
    ----------
    path : str or path
        An ARPA file; gzipped if its name ends in ``.gz``.
    require_backoff : bool, default False
        Only the words of lines with a back-off, i.e. three tab-separated fields (the word is
        the middle one). These are the words pyctcdecode's ``load_unigram_set_from_arpa``
        returns: it skips ``prob<TAB>word`` lines.

    Returns
    -------
    list of str
        Each word once (a repeated word where first listed), ``<s>``, ``</s>`` and ``<unk>``
        included where the file lists them. Once the file is read, its
        :attr:`NgramTables.words` holds the same words (and ``<unk>``, first).

    Raises
    ------
    ValueError
        The file is not UTF-8 text, does not start with ``\data\`` or has no unigram
        section; a line of that section is malformed; or the section lists no word (with
        ``require_backoff``: none with a back-off). The message names the file.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastctc.lm.ngram import arpa_unigrams
    >>> arpa = ("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\t-0.5\n-0.5\t</s>\n"
    ...         "-0.3\tcat\t0\n\n\\end\\\n")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "m.arpa")
    ...     with open(p, "w") as f:
    ...         _ = f.write(arpa)
    ...     arpa_unigrams(p), arpa_unigrams(p, require_backoff=True)
    (['<s>', '</s>', 'cat'], ['<s>', 'cat'])
    """
    p = os.fspath(path)
    try:
        words = _scan_unigrams(p, require_backoff)
    except UnicodeDecodeError as err:
        raise ValueError(f"{p!r} is not an ARPA file: it is not UTF-8 text ({err}).") from None
    if words is None:
        raise ValueError(f"{p!r} is not an ARPA file: it has no \\1-grams: section.")
    if not words:
        which = "word with a back-off" if require_backoff else "word"
        raise ValueError(f"{p!r}: the \\1-grams: section lists no {which}.")
    return words


def _scan_unigrams(p: str, require_backoff: bool) -> list[str] | None:
    """:func:`arpa_unigrams`' words, ``None`` without a unigram section."""
    words: dict[str, None] = {}
    opener = gzip.open if p.endswith(".gz") else open
    with opener(p, "rt", encoding="utf-8") as f:  # universal newlines, as pyctcdecode reads
        lines = enumerate(f, start=1)
        head = next(((k, ln) for k, ln in lines if ln.strip() and not ln.startswith("#")), None)
        if head is None or head[1].strip() != "\\data\\":
            where = f"line {head[0]} is {_excerpt(head[1].rstrip())}" if head else "it is blank"
            raise ValueError(
                f"{p!r} is not an ARPA file: it does not start with a \\data\\ line ({where})."
            )
        for _, line in lines:
            line = line.strip()
            if line == "\\1-grams:":
                break
            if line.startswith("\\"):
                return None  # another section first
        else:
            return None
        for number, line in lines:
            parts = line.split()
            if not parts:
                continue
            if parts[0].startswith("\\"):
                break  # \2-grams: or \end\
            line = line.strip()
            if len(parts) not in (2, 3) or line[len(parts[0])] != "\t":
                raise ValueError(
                    f"{p!r} line {number}: expected 'prob<TAB>word[<TAB>bow]'; got "
                    f"{_excerpt(line)}."
                )
            if not require_backoff:
                words[parts[1]] = None
            elif line.count("\t") == 2:  # pyctcdecode's rule: three tab-separated fields
                words[line.split("\t")[1]] = None
    return list(words)


def read_arpa(path: str | os.PathLike[str]) -> NgramTables:
    """Parse an ARPA file (optionally gzipped) into :class:`NgramTables`.

    The common layout (``prob<TAB>words[<TAB>backoff]`` lines, as KenLM and SRILM write) is
    scanned by a compiled reader; anything else goes through a line-by-line reader, which
    also words the errors.

    Raises
    ------
    ValueError
        The file is not a well-formed ARPA model (the message names the line and quotes at
        most a short excerpt of it): what KenLM rejects (NaN, infinite or positive log10
        probabilities, infinite back-offs, numbers such as ``1_0``, a unigram line without a
        tab after its probability, a missing ``\\end\\``, text after it), a header that
        declares more than :data:`MAX_NGRAMS` n-grams of an order or more than the file can
        hold (checked before anything is allocated), or far more lines than the header's
        counts need (a flood of blank lines; reading stops there).

    Notes
    -----
    A repeated word or n-gram keeps its first entry, as in KenLM.
    """
    p = os.fspath(path)
    counts = check_arpa_header(p)
    allowed = sum(counts.values()) + 4 * len(counts) + _SLACK_LINES
    opener = gzip.open if p.endswith(".gz") else open
    chunks: list[bytes] = []
    lines = 0
    with opener(p, "rb") as f:
        while chunk := f.read(1 << 22):
            chunks.append(chunk)
            lines += chunk.count(b"\n")
            if lines > allowed:  # stop reading a flood of blank lines early
                break
    return read_arpa_bytes(b"".join(chunks), p)


def read_arpa_bytes(data: bytes, name: str = "<bytes>") -> NgramTables:
    """:func:`read_arpa` of a file's contents (``name`` goes into error messages)."""
    p = name
    counts, _ = _header_of(data, p)
    _check_counts_fit(counts, len(data), p)
    _check_line_count(data, counts, p)
    tables = _read_fast(data, p)
    if tables is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{p!r} is not UTF-8 text: {err}") from None
        tables = _read_lines(text, p)
    return tables


def _header(lines: list[str], p: str, complete: bool = True) -> tuple[dict[int, int], int]:
    """N-gram counts of the ``\\data\\`` header and the index of the line after it.

    As KenLM: blank lines (and ``#`` comments), then ``\\data\\``, then ``ngram N=count``
    lines for N = 1, 2, ... up to a blank line. ``complete``: ``lines`` holds the whole file
    (else only its start).
    """
    counts: dict[int, int] = {}
    i = 0
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith("#")):
        i += 1  # KenLM skips blank lines and '#' comments before the header
    if i == len(lines) or lines[i].strip() != "\\data\\":
        where = f"line {i + 1} is {_excerpt(lines[i])}" if i < len(lines) else "it is blank"
        raise ValueError(
            f"{p!r} is not an ARPA file: it does not start with a \\data\\ line ({where})."
        )
    i += 1
    while i < len(lines) and lines[i].strip():
        m = _COUNT.match(lines[i].strip())
        if not m:
            raise ValueError(
                f"{p!r} line {i + 1}: expected 'ngram N=count' (non-negative integers); got "
                f"{_excerpt(lines[i])}."
            )
        n, c = int(m.group(1)), int(m.group(2))
        if n != len(counts) + 1 or n > MAX_ORDER:
            raise ValueError(
                f"{p!r} line {i + 1}: the \\data\\ header must list orders 1, 2, ... in turn "
                f"(at most {MAX_ORDER}); got order {n} after {sorted(counts)}."
            )
        if c > MAX_NGRAMS:
            raise ValueError(
                f"{p!r} line {i + 1}: ngram {n}={c} declares more than {MAX_NGRAMS} n-grams."
            )
        counts[n] = c
        i += 1
    if i == len(lines) and not complete:
        raise ValueError(f"{p!r}: the \\data\\ header does not end within {HEAD_LIMIT} bytes.")
    if not counts:
        raise ValueError(f"{p!r}: the \\data\\ header lists no 'ngram N=count' line.")
    if counts[1] < 1:
        raise ValueError(f"{p!r}: the \\data\\ header declares no unigram (ngram 1=0).")
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
        if status != kn.SCAN_OK or not np.all(prob <= 0.0):
            return None  # the line reader words the error (a positive log10 probability)
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
    if data[pos:].strip() != b"\\end\\":
        return None  # the line reader words the error
    return assemble_tables(order, vocab, u_prob, u_bow, grams, name)


def assemble_tables(
    order: int,
    words: list[str],
    u_prob: npt.ArrayLike,
    u_bow: npt.ArrayLike,
    grams: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    name: str = "<model>",
) -> NgramTables:
    """Build the :class:`NgramTables` of a model from its values, for every reader.

    :func:`read_arpa` and :func:`fastctc.lm.kenlm_binary.read_kenlm_trie` both end here: the
    values are checked, rounded to float32 and the n-grams of each order >= 2 hashed into the
    tables of :mod:`fastctc.kernels.ngram`.

    Parameters
    ----------
    order : int
        Order of the model: ``len(grams) + 1``.
    words : list of str
        The vocabulary by id. Id 0 is ``<unk>``; ``<s>`` (if present) starts sentences and
        ``</s>`` (else ``<unk>``) ends them.
    u_prob, u_bow : array_like of shape (V,)
        log10 probability and back-off of each word id.
    grams : sequence of (ids, prob, bow)
        One entry per order n = 2 .. ``order``: word ids of shape ``(count, n)`` (int64, words
        in text order), log10 probabilities and back-offs of shape ``(count,)`` (float64). A
        repeated n-gram keeps its first row, as in KenLM.
    name : str, optional
        The model's file, for error messages.

    Returns
    -------
    NgramTables

    Raises
    ------
    ValueError
        A probability that is NaN or +inf, or a back-off that is not finite (the message
        names ``name``).
    NeedsKenLMError
        An n-gram of order >= 3 whose first or last n - 1 words are no n-gram of their own.

    Examples
    --------
    >>> import numpy as np
    >>> from fastctc.lm.ngram import assemble_tables
    >>> words = ["<unk>", "<s>", "</s>", "cat"]
    >>> bigram = (np.array([[1, 3]]), np.array([-0.1]), np.array([0.0]))  # "<s> cat"
    >>> tables = assemble_tables(
    ...     2, words, [-100.0, -99.0, -0.5, -0.3], [0.0, -0.5, 0.0, 0.0], [bigram]
    ... )
    >>> [round(float(s), 6) for s in tables.log10_scores(["cat", "</s>"])]
    [-0.1, -0.5]
    """
    checks = [("unigram probability", u_prob, False), ("unigram back-off", u_bow, True)]
    for n, (_, prob, bow) in enumerate(grams, start=2):
        checks += [(f"{n}-gram probability", prob, False), (f"{n}-gram back-off", bow, True)]
    for what, values, finite in checks:  # NaN would stall the search; KenLM refuses them
        values = np.asarray(values)
        bad = ~np.isfinite(values) if finite else ~(values < np.inf)
        if bad.any():
            raise ValueError(
                f"{name!r}: a log10 {what} is {float(values[bad][0])!r}; probabilities must "
                "be finite or -inf, back-offs finite."
            )
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
    while i < len(lines) and lines[i].strip() != "\\end\\":
        if lines[i].strip():
            raise ValueError(
                f"{p!r} line {i + 1}: expected \\end\\ or the next section after the "
                f"\\{order}-grams: section; got {_excerpt(lines[i])}."
            )
        i += 1
    if i == len(lines):
        raise ValueError(f"{p!r}: no \\end\\ line after the last section (a truncated file?).")
    extra = next((k for k in range(i + 1, len(lines)) if lines[k].strip()), None)
    if extra is not None:
        raise ValueError(
            f"{p!r} line {extra + 1}: text after \\end\\ ({_excerpt(lines[extra])}); KenLM "
            "rejects it."
        )
    del lines

    # unigrams: the vocabulary (<unk> first, as KenLM numbers it)
    start, body = sections[1]
    words = ["<unk>"]
    probs = [MISSING_UNK_LOG10]
    bows = [0.0]
    seen = set()
    for r, line in enumerate(body):
        parts = line.split()
        if len(parts) not in (2, 3) or "\t" not in line or line.split("\t", 1)[0] != parts[0]:
            raise ValueError(
                f"{p!r} line {start + r + 1}: expected 'prob<TAB>word[<TAB>bow]'; got "
                f"{_excerpt(line)}."
            )
        w = parts[1]
        prob = _prob(parts[0], p, start + r)
        bow = _bow(parts[2], p, start + r) if len(parts) == 3 else 0.0
        if w in seen:  # KenLM keeps the first entry of a repeated word
            continue
        seen.add(w)
        if w == "<unk>":
            probs[0], bows[0] = prob, bow
            continue
        words.append(w)
        probs.append(prob)
        bows.append(bow)
    ids = {w: k for k, w in enumerate(words)}
    grams = []
    for n in range(2, order + 1):
        start, body = sections[n]
        grams.append(_parse_section(body, n, ids, p, start))
    return assemble_tables(order, words, np.array(probs), np.array(bows), grams, p)


def _float(s: str, path: str, line: int) -> float:
    """A number as KenLM reads it (decimal; ``-inf`` only where ``_prob`` allows it)."""
    if not _NUMBER.match(s):
        raise ValueError(
            f"{path!r} line {line + 1}: {_excerpt(s)} is not a number KenLM reads "
            "(decimal digits; no nan, inf or '_')."
        )
    return float(s)


def _prob(s: str, path: str, line: int) -> float:
    """A log10 probability: a number <= 0, or -inf (KenLM rejects NaN and positive ones)."""
    if s == "-inf":
        return -np.inf
    v = _float(s, path, line)
    if v > 0:
        raise ValueError(
            f"{path!r} line {line + 1}: positive log10 probability {s}; KenLM rejects it."
        )
    return v


def _bow(s: str, path: str, line: int) -> float:
    """A log10 back-off: any finite number."""
    return _float(s, path, line)


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
                f"got {_excerpt(line)}."
            )
        prob[r] = _prob(parts[0], path, start + r)
        if len(parts) == n + 2:
            bow[r] = _bow(parts[n + 1], path, start + r)
        for c in range(n):
            k = ids.get(parts[1 + c])
            if k is None:
                raise ValueError(
                    f"{path!r} line {start + r + 1}: the word {_excerpt(parts[1 + c])} is not in "
                    "the \\1-grams: section."
                )
            gram_ids[r, c] = k
    return gram_ids, prob, bow
