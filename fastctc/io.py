"""Files in and out of the command line: CTC outputs, labels, references, JSONL/TSV/CTM.

Inputs are ``.npy`` files (one ``(T, C)`` matrix each, id = the file name without extension;
bytes of a file name that are not UTF-8 are written ``\\xNN``),
``.npz`` archives (one ``(T, C)`` matrix per member, id = the member name) and directories
searched recursively for both. Nothing is guessed: the caller says whether the matrices hold
log-probabilities, probabilities or logits.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TextIO

import numpy as np

from .ops import log_softmax
from .vocabulary import Vocabulary as Vocabulary  # re-exported: it lived here before

INPUT_KINDS = ("log-probs", "probs", "logits")
_BLANK_NAMES = ("", "<pad>", "[pad]", "<blank>")


# --------------------------------------------------------------------------- labels


def read_labels(path: str | Path) -> list[str]:
    """Read a label list.

    ``.json``: a list of labels, or a dict mapping label -> index (Hugging Face
    ``vocab.json``) or index -> label. Anything else: one label per line, taken verbatim
    except for the line break, so an empty line is the blank ``""`` and a line holding one
    space is the space label.

    Raises
    ------
    ValueError
        Unreadable file, wrong JSON layout, holes in a dict's indices, or no labels.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read labels file {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"labels file {path} is not valid JSON: {exc}") from None
        labels = _labels_from_json(data, path)
    else:
        labels = text.split("\n")
        if labels and labels[-1] == "":
            labels.pop()  # the final line break ends the last label
        labels = [lab[:-1] if lab.endswith("\r") else lab for lab in labels]
    if not labels:
        raise ValueError(f"labels file {path} holds no labels.")
    return labels


def _labels_from_json(data: Any, path: Path) -> list[str]:
    if isinstance(data, list):
        if not all(isinstance(x, str) for x in data):
            raise ValueError(f"labels file {path}: a JSON list must hold strings only.")
        return list(data)
    if isinstance(data, dict):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            index = {int(v): str(k) for k, v in data.items()}
        elif all(str(k).lstrip("-").isdigit() and isinstance(v, str) for k, v in data.items()):
            index = {int(k): v for k, v in data.items()}
        else:
            raise ValueError(
                f"labels file {path}: a JSON dict must map label -> index or index -> label."
            )
        n = len(index)
        if n != len(data) or sorted(index) != list(range(n)):
            raise ValueError(
                f"labels file {path}: indices must be 0..{len(data) - 1} without holes or repeats."
            )
        return [index[i] for i in range(n)]
    raise ValueError(
        f"labels file {path}: expected a JSON list or dict; got {type(data).__name__}."
    )


def find_blank(labels: Sequence[str]) -> int | None:
    """Index of the one label named like a blank (``""``, ``<pad>``, ``[pad]``, ``<blank>``).

    ``None`` when there is no such label or more than one.

    Examples
    --------
    >>> find_blank(["<pad>", "<s>", "|", "a"]), find_blank(["a", "b"])
    (0, None)
    """
    hits = [i for i, lab in enumerate(labels) if lab.lower() in _BLANK_NAMES]
    return hits[0] if len(hits) == 1 else None


def read_refs(path: str | Path) -> dict[str, str]:
    """Read ``id<TAB>text`` lines (extra tab-separated columns are ignored)."""
    refs: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise ValueError(f"{path}:{n}: expected 'id<TAB>text'; got {line[:60]!r}.")
            refs[parts[0]] = parts[1]
    return refs


# --------------------------------------------------------------------------- inputs


class Source(NamedTuple):
    """One utterance to read: its id, the file and the member name inside an ``.npz``."""

    uid: str
    path: Path
    member: str | None

    @property
    def where(self) -> str:
        """Human-readable location for messages (undecodable bytes of a file name as ``\\xff``)."""
        path = text_of_name(str(self.path))
        return f"{path}[{self.member}]" if self.member is not None else path


def text_of_name(name: str) -> str:
    """A file name as text that can be written: bytes that are not UTF-8 become ``\\xNN``.

    Examples
    --------
    >>> import os
    >>> text_of_name(os.fsdecode(b"utt\\xff1"))
    'utt\\\\xff1'
    """
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


class InputProblem(NamedTuple):
    """A file or archive member that could not be used, with the reason."""

    where: str
    reason: str


def list_sources(paths: Iterable[str | Path]) -> Iterator[Source | InputProblem]:
    """Enumerate utterances in files and directories, in a stable order, without loading them.

    Directories are searched recursively for ``*.npy`` and ``*.npz``; files are taken in the
    order given, directory contents in sorted order. An archive that cannot be opened, or a
    path that does not exist, is yielded as an :class:`InputProblem`.
    """
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(
                f for f in path.rglob("*") if f.suffix.lower() in (".npy", ".npz") and f.is_file()
            )
            if not files:
                yield InputProblem(str(path), "directory holds no .npy or .npz files")
            for f in files:
                yield from _file_sources(f)
        elif path.exists():
            yield from _file_sources(path)
        else:
            yield InputProblem(str(path), "no such file or directory")


def _file_sources(path: Path) -> Iterator[Source | InputProblem]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        yield Source(text_of_name(path.stem), path, None)
    elif suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n[:-4] if n.endswith(".npy") else n for n in zf.namelist()]
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            yield InputProblem(str(path), f"cannot open .npz archive: {exc}")
            return
        if not names:
            yield InputProblem(str(path), "archive holds no arrays")
        for name in names:
            yield Source(name, path, name)
    else:
        yield InputProblem(str(path), f"unsupported file type {path.suffix!r}; use .npy or .npz")


# --------------------------------------------------------------------------- shards


class Shard(NamedTuple):
    """Shard ``index`` of ``count`` (``0 <= index < count``), as ``--shard K/N`` gives it."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` as a :class:`Shard`; shards are numbered from 0, so ``K`` is in ``0..N-1``.

    Raises
    ------
    ValueError
        Not two integers ``K/N``, ``N < 1``, or ``K`` outside ``0..N-1`` (the message names
        the expected range: a 1-based ``N/N`` is refused, never taken for shard 0).

    Examples
    --------
    >>> parse_shard("0/4"), str(parse_shard("3/4"))
    (Shard(index=0, count=4), '3/4')
    >>> parse_shard("4/4")
    Traceback (most recent call last):
    ...
    ValueError: K must be in 0..3 (shards are numbered from 0, as Kubernetes' \
JOB_COMPLETION_INDEX; for a Slurm array use --array=0-3); got 4/4
    """
    k, sep, n = text.strip().partition("/")
    try:
        index, count = int(k), int(n)
    except ValueError:
        raise ValueError(f"expected K/N, two integers such as 0/4; got {text!r}") from None
    if not sep:
        raise ValueError(f"expected K/N, two integers such as 0/4; got {text!r}")
    if count < 1:
        raise ValueError(f"N (the number of shards) must be >= 1; got {text}")
    if not 0 <= index < count:
        raise ValueError(
            f"K must be in 0..{count - 1} (shards are numbered from 0, as Kubernetes' "
            f"JOB_COMPLETION_INDEX; for a Slurm array use --array=0-{count - 1}); got {text}"
        )
    return Shard(index, count)


def shard_of(uid: str, count: int) -> int:
    """The shard (``0..count-1``) that owns utterance ``uid``.

    The first 8 bytes of the SHA-256 digest of the id's UTF-8 bytes, read as a big-endian
    unsigned integer, modulo ``count``. It depends on the id alone: not on the order or the
    folder in which inputs are listed, the machine, the file system or the Python process
    (Python's own ``hash()`` of a string changes from process to process). Ids spread evenly.

    Examples
    --------
    >>> [shard_of(f"utt{i}", 3) for i in range(8)]
    [1, 2, 2, 2, 0, 1, 0, 0]
    >>> shard_of("anything", 1)
    0
    """
    digest = hashlib.sha256(uid.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(
    sources: Iterable[Source | InputProblem], shard: Shard | None
) -> Iterator[Source | InputProblem]:
    """The utterances of ``sources`` that ``shard`` owns (all of them for ``None``), in order.

    Problems are passed on to every shard: an unreadable archive or a missing path has no
    utterance id to share out, and every shard must say that its part may be incomplete.
    """
    for src in sources:
        if shard is None or isinstance(src, InputProblem):
            yield src
        elif shard_of(src.uid, shard.count) == shard.index:
            yield src


DEFAULT_MAX_BYTES = 2 << 30
"""Largest utterance read by default: 2 GiB as float32 (or as stored, when wider)."""

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_npy_header(fp: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the header of a ``.npy`` stream, reading nothing else.

    Raises
    ------
    ValueError
        Not a ``.npy`` stream, or a header version this reader does not know.
    """
    version = np.lib.format.read_magic(fp)
    read = _HEADER_READERS.get(version)
    if read is None:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    shape, fortran, dtype = read(fp)
    return tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype)


def check_header(
    shape: tuple[int, ...], dtype: np.dtype, num_classes: int | None, max_bytes: int
) -> None:
    """Refuse, before any data is read, a matrix that cannot be used or is too large.

    The size counted is ``T * C`` times the wider of float32 and the stored item size.

    Examples
    --------
    >>> check_header((10, 29), np.dtype("<f4"), 29, 1 << 20)
    >>> check_header((20_000_000, 29), np.dtype("<f4"), 29, DEFAULT_MAX_BYTES)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: shape (20000000, 29) needs 2.16 GiB as float32, above the limit of 2.00 GiB; ...
    """
    if dtype.kind != "f":
        raise ValueError(f"expected a floating-point array; got dtype {dtype}")
    if len(shape) != 2:
        raise ValueError(f"expected a 2-D (T, C) matrix; got shape {shape}")
    if num_classes is not None and shape[1] != num_classes:
        raise ValueError(
            f"has {shape[1]} columns but there are {num_classes} labels; "
            "check --labels (one label per column, blank included)"
        )
    size = shape[0] * shape[1] * max(4, dtype.itemsize)
    if size > max_bytes:
        raise ValueError(
            f"shape {shape} needs {size / 2**30:.2f} GiB as float32, above the limit of "
            f"{max_bytes / 2**30:.2f} GiB; raise it with --max-bytes to read this utterance"
        )


def _read_exact(fp: BinaryIO, shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> np.ndarray:
    nbytes = math.prod(shape) * dtype.itemsize
    arr = np.empty(math.prod(shape), dtype=dtype)  # pages are touched only as data arrives
    view = memoryview(arr.view(np.uint8))
    pos = 0
    while pos < nbytes:
        n = fp.readinto(view[pos : pos + (1 << 24)])
        if not n:
            raise ValueError(f"data cut short: {pos} of {nbytes} bytes")
        pos += n
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


class MatrixReader:
    """Loads utterances one by one, keeping the current ``.npz`` archive open between them.

    Every matrix's ``.npy`` header is read first: a wrong dtype, shape or column count, or a
    size above ``max_bytes``, is refused before its data is read or decompressed. ``.npy``
    files are memory-mapped.
    """

    def __init__(
        self, num_classes: int | None, kind: str = "log-probs", max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.num_classes = num_classes
        self.kind = kind
        self.max_bytes = max_bytes
        self._path: Path | None = None
        self._zip: zipfile.ZipFile | None = None
        self._names: set[str] = set()

    def close(self) -> None:
        """Close the open archive, if any."""
        if self._zip is not None:
            self._zip.close()
        self._zip = self._path = None
        self._names = set()

    def _load(self, src: Source) -> np.ndarray:
        if src.member is None:
            with open(src.path, "rb") as fh:
                shape, fortran, dtype = read_npy_header(fh)
                check_header(shape, dtype, self.num_classes, self.max_bytes)
                if 0 in shape:
                    return np.zeros(shape, dtype=dtype)
            return np.load(src.path, mmap_mode="r", allow_pickle=False)
        if self._path != src.path:
            self.close()
            self._zip = zipfile.ZipFile(src.path)
            self._path = src.path
            self._names = set(self._zip.namelist())
        assert self._zip is not None
        name = src.member + ".npy" if src.member + ".npy" in self._names else src.member
        with self._zip.open(name) as fp:
            shape, fortran, dtype = read_npy_header(fp)
            check_header(shape, dtype, self.num_classes, self.max_bytes)
            return _read_exact(fp, shape, fortran, dtype)

    def __call__(self, src: Source) -> np.ndarray:
        """Load ``src`` as float32 log-probabilities; ``ValueError`` says what is wrong."""
        try:
            arr = self._load(src)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        except Exception as exc:  # any reader failure is a property of the file
            raise ValueError(f"cannot read: {type(exc).__name__}: {exc}") from None
        out = to_log_probs(arr, self.num_classes, self.kind)
        if isinstance(arr, np.memmap) and np.may_share_memory(out, arr):
            out = np.array(out)  # own the data: the file may change after this
        return out


def load_matrix(
    src: Source,
    num_classes: int | None,
    kind: str = "log-probs",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Load one utterance as float32 log-probabilities ``(T, C)``.

    Raises
    ------
    ValueError
        Unreadable file, not a 2-D floating array, wrong number of columns, NaN or infinite
        values where they cannot occur, or values that do not fit ``kind`` (log-probabilities
        above 0 or rows that do not sum to one; probabilities outside [0, 1]), or larger
        than ``max_bytes`` (see :func:`check_header`).
    """
    reader = MatrixReader(num_classes, kind, max_bytes)
    try:
        return reader(src)
    finally:
        reader.close()


def to_log_probs(arr: np.ndarray, num_classes: int | None, kind: str) -> np.ndarray:
    """Check a ``(T, C)`` matrix and turn it into float32 log-probabilities (see ``kind``).

    Examples
    --------
    >>> import numpy as np
    >>> np.exp(to_log_probs(np.array([[0.25, 0.75]]), 2, "probs")).round(3).tolist()
    [[0.25, 0.75]]
    >>> to_log_probs(np.array([[2.0, 2.0]]), 2, "log-probs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: log-probabilities must be <= 0; the largest value is 2 (use --input-kind ...)
    """
    if kind not in INPUT_KINDS:
        raise ValueError(f"input kind must be one of {INPUT_KINDS}; got {kind!r}.")
    if arr.dtype.kind != "f":
        raise ValueError(f"expected a floating-point array; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D (T, C) matrix; got shape {tuple(arr.shape)}")
    if num_classes is not None and arr.shape[1] != num_classes:
        raise ValueError(
            f"has {arr.shape[1]} columns but there are {num_classes} labels; "
            "check --labels (one label per column, blank included)"
        )
    x = np.ascontiguousarray(arr, dtype=np.float32)
    T = x.shape[0]
    if T == 0:
        return x
    if kind != "log-probs" and np.may_share_memory(x, arr):
        x = x.copy()  # changed in place below
    # checked in blocks of rows, so no temporary is as large as the matrix
    step = max(1, (1 << 20) // max(1, x.shape[1]))
    blocks = [(i, x[i : i + step]) for i in range(0, T, step)]
    for i, b in blocks:
        bad = np.isnan(b).any(axis=1)
        if bad.any():
            raise ValueError(f"frame {i + int(np.flatnonzero(bad)[0])} contains NaN")
    if kind == "logits":
        if not all(np.isfinite(b).all() for _, b in blocks):
            raise ValueError("logits must be finite")
        for _, b in blocks:
            b[...] = log_softmax(b, axis=1)
        return x
    if kind == "probs":
        lo = min(float(b.min()) for _, b in blocks)
        hi = max(float(b.max()) for _, b in blocks)
        if lo < 0 or hi > 1 + 1e-3:
            raise ValueError(
                f"probabilities must lie in [0, 1]; got values in [{lo:.3g}, "
                f"{hi:.3g}] (use --input-kind logits or log-probs)"
            )
        with np.errstate(divide="ignore"):
            for _, b in blocks:
                np.log(b, out=b)
    hi = max(float(b.max()) for _, b in blocks)
    if hi > 1e-2:
        raise ValueError(
            f"log-probabilities must be <= 0; the largest value is {hi:.3g} "
            "(use --input-kind logits or probs)"
        )
    zero_frame: int | None = None
    worst, worst_total = -1, 0.0
    for i, b in blocks:
        m = b.max(axis=1, keepdims=True)
        finite = np.isfinite(m[:, 0])
        if not finite.all():
            if zero_frame is None:
                zero_frame = i + int(np.flatnonzero(~finite)[0])
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            total = m[:, 0] + np.log(np.exp(b - m).sum(axis=1))
        k = int(np.argmax(np.abs(total)))
        if abs(float(total[k])) > abs(worst_total) or worst < 0:
            worst, worst_total = i + k, float(total[k])
    if zero_frame is not None:
        raise ValueError(f"frame {zero_frame} gives every label probability zero")
    if abs(worst_total) > 0.1:
        raise ValueError(
            f"frame {worst} does not sum to probability 1 (log-sum-exp {worst_total:.3g});"
            " these look like unnormalised scores (use --input-kind logits)"
        )
    return x


# --------------------------------------------------------------------------- token -> text


def token_ends(argmax: np.ndarray, tokens: Sequence[int], starts: Sequence[int]) -> list[int]:
    """End frame (exclusive) of each emitted token.

    A token lasts from its start frame while the frame's best label is still that token,
    stopping at the next token's start: exact for a greedy path, an estimate for beam search.

    Examples
    --------
    >>> import numpy as np
    >>> token_ends(np.array([0, 3, 3, 0, 4, 4, 4]), tokens=[3, 4], starts=[1, 4])
    [3, 7]
    """
    T = argmax.shape[0]
    ends = []
    for i, (tok, s) in enumerate(zip(tokens, starts, strict=True)):
        limit = int(starts[i + 1]) if i + 1 < len(starts) else T
        e = int(s) + 1
        while e < limit and argmax[e] == tok:
            e += 1
        ends.append(max(e, int(s) + 1))
    return ends


# --------------------------------------------------------------------------- outputs


def _clean(x: Any) -> Any:
    """JSON-safe values: finite floats rounded, -inf as null."""
    if isinstance(x, float):
        return round(x, 4) if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


_TSV_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_TSV_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def tsv_escape(text: str) -> str:
    r"""A TSV field: backslash, tab, line feed, carriage return as ``\\``, ``\t``, ``\n``, ``\r``.

    The escaping of PostgreSQL's ``COPY`` text format, undone by :func:`tsv_unescape`.

    Examples
    --------
    >>> print(tsv_escape("a\tb\\c\nd"))
    a\tb\\c\nd
    >>> tsv_unescape(tsv_escape("a\tb\\c\nd")) == "a\tb\\c\nd"
    True
    """
    return text.translate(_TSV_ESCAPE)


def tsv_unescape(field: str) -> str:
    """Undo :func:`tsv_escape`; a backslash before any other character is kept as it is."""
    if "\\" not in field:
        return field
    out: list[str] = []
    i, n = 0, len(field)
    while i < n:
        ch = field[i]
        if ch == "\\" and i + 1 < n and field[i + 1] in _TSV_UNESCAPE:
            out.append(_TSV_UNESCAPE[field[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class ResultWriter:
    """Writes one record per utterance, flushing each line, so a killed run keeps its output.

    ``fmt`` is ``jsonl``, ``tsv`` (``id<TAB>text<TAB>score``, fields escaped by
    :func:`tsv_escape`) or ``ctm`` (one line per word: ``id 1 start duration word score``,
    needs ``frame_shift``).
    """

    def __init__(self, fh: TextIO, fmt: str, frame_shift: float | None = None) -> None:
        if fmt == "ctm" and not frame_shift:
            raise ValueError("CTM output holds times in seconds; pass --frame-shift.")
        self.fh = fh
        self.fmt = fmt
        self.frame_shift = frame_shift

    def write(self, record: dict[str, Any]) -> None:
        """Write and flush one utterance's record."""
        if self.fmt == "jsonl":
            line = json.dumps(_clean(record), ensure_ascii=False) + "\n"
        elif self.fmt == "tsv":
            score = record.get("score")
            s = "" if score is None or not math.isfinite(score) else f"{score:.4f}"
            line = f"{tsv_escape(record['id'])}\t{tsv_escape(record['text'])}\t{s}\n"
        else:
            assert self.frame_shift is not None
            lines = []
            for w in record.get("words", []):
                start = w["start_frame"] * self.frame_shift
                dur = (w["end_frame"] - w["start_frame"]) * self.frame_shift
                conf = w.get("score")
                tail = f" {conf:.4f}" if isinstance(conf, float) and math.isfinite(conf) else ""
                lines.append(f"{record['id']} 1 {start:.3f} {dur:.3f} {w['word']}{tail}\n")
            line = "".join(lines)
        self.fh.write(line)
        self.fh.flush()


def _parse_line(line: str, fmt: str) -> tuple[str, str] | None:
    """``(id, text)`` of one complete output line; None when it is not one of ours."""
    if fmt == "jsonl":
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not (isinstance(rec, dict) and isinstance(rec.get("id"), str)):
            return None
        text = rec.get("text", "")
        return (rec["id"], text) if isinstance(text, str) else None
    if fmt == "tsv":
        parts = line.split("\t")
        if len(parts) != 3:
            return None
        if parts[2]:
            try:
                float(parts[2])
            except ValueError:
                return None
        return tsv_unescape(parts[0]), tsv_unescape(parts[1])
    parts = line.split()
    if len(parts) < 5:
        return None
    return parts[0], parts[4]


def _plausible_tail(tail: bytes, fmt: str) -> bool:
    """Whether bytes after the last line break can be a line cut short by an interruption."""
    if b"\0" in tail:
        return False
    for cut in range(4):  # an interruption may split a multi-byte character
        try:
            text = tail[: len(tail) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if fmt == "jsonl":
            start = '{"id": '
            return text.startswith(start) or start.startswith(text)
        return fmt != "tsv" or text.count("\t") <= 2
    return False


class OutputRecord(NamedTuple):
    """One record of an output file: its id, its text (unescaped), its line number and the
    byte span ``[start, end)`` of its line, line break included."""

    uid: str
    text: str
    line: int
    start: int
    end: int


class OutputScan(NamedTuple):
    """An output file read by :func:`scan_output`: its records in file order, the byte length
    ``keep`` of its complete lines and its ``size`` (``keep < size``: the last line was cut
    short by an interrupted write and is not among the records)."""

    records: list[OutputRecord]
    keep: int
    size: int


def scan_output(path: str | Path, fmt: str) -> OutputScan:
    """The records of a ``fmt`` output file of fastctc (``jsonl``, ``tsv`` or ``ctm``).

    The one reader of outputs, used by ``--resume`` (:func:`read_done`) and ``fastctc merge``.
    A last line cut short by an interrupted write is not a record. TSV fields are unescaped
    (:func:`tsv_unescape`); lines end at line feeds only; empty lines are passed over.

    Raises
    ------
    ValueError
        The file is not a ``fmt`` output of fastctc (a line that is not a record of ours, or
        bytes that are not UTF-8 text).
    OSError
        The file cannot be read.
    """
    path = Path(path)
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    what = {"jsonl": "JSON Lines", "tsv": "TSV"}.get(fmt, fmt.upper())
    tail = data[keep:]
    if not _plausible_tail(tail, fmt) or (fmt == "tsv" and tail and not keep):
        raise ValueError(f"{path} is not a fastctc {what} output; its last line is not ours")
    records: list[OutputRecord] = []
    start = 0
    for n, raw in enumerate(data[:keep].split(b"\n")[:-1], 1):
        end = start + len(raw) + 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{path} is not a fastctc {what} output; line {n} is not UTF-8"
            ) from None
        if fmt != "jsonl" and line.endswith("\r"):
            line = line[:-1]
        if line and (fmt == "tsv" or line.strip()):
            parsed = _parse_line(line, fmt)
            if parsed is None:
                raise ValueError(
                    f"{path} is not a fastctc {what} output; line {n} is not a record: "
                    f"{line[:60]!r}"
                )
            records.append(OutputRecord(parsed[0], parsed[1], n, start, end))
        start = end
    return OutputScan(records, keep, len(data))


def output_format(path: str | Path) -> str | None:
    """``"jsonl"`` or ``"tsv"``: the format of a ``fastctc decode`` output, told from its first
    line (``None`` for a file without one: empty, or a first line cut short).

    The rest of the file is checked when it is read (:func:`scan_output`).

    Raises
    ------
    ValueError
        The first line is neither a JSON Lines nor a TSV record of fastctc's.
    OSError
        The file cannot be read.
    """
    with open(path, "rb") as fh:
        first = fh.readline()
    if not first.endswith(b"\n"):
        return None
    try:
        line = first[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a fastctc output; line 1 is not UTF-8") from None
    for fmt in ("jsonl", "tsv"):
        if _parse_line(line.removesuffix("\r") if fmt == "tsv" else line, fmt) is not None:
            return fmt
    raise ValueError(
        f"{path} is not a fastctc output; line 1 is neither a JSON Lines nor a TSV record: "
        f"{line[:60]!r}"
    )


def read_done(path: str | Path, fmt: str) -> tuple[dict[str, str], int]:
    """Ids (and texts, where the format keeps them) already in an output file, for ``--resume``.

    A last line cut short by an interrupted write is not counted; the returned int is the byte
    length of the complete lines, to which the file should be truncated before appending.
    TSV fields are unescaped (:func:`tsv_unescape`); lines end at line feeds only.

    Raises
    ------
    ValueError
        The file is not a ``fmt`` output of fastctc (a line that is not a record of ours, or
        bytes that are not UTF-8 text): it is left as it is rather than cut and appended to.
    """
    path = Path(path)
    if not path.exists():
        return {}, 0
    scan = scan_output(path, fmt)
    done: dict[str, str] = {}
    for rec in scan.records:
        text = rec.text
        if fmt == "ctm":
            text = (done.get(rec.uid, "") + " " + text).strip()
        done[rec.uid] = text
    return done, scan.keep
