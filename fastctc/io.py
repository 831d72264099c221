"""Files in and out of the command line: CTC outputs, labels, references, JSONL/TSV/CTM.

Inputs are ``.npy`` files (one ``(T, C)`` matrix each, id = the file name without extension),
``.npz`` archives (one ``(T, C)`` matrix per member, id = the member name) and directories
searched recursively for both. Nothing is guessed: the caller says whether the matrices hold
log-probabilities, probabilities or logits.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np

from .ops import log_softmax

DATA_DIR = Path(__file__).resolve().parent / "data"

INPUT_KINDS = ("log-probs", "probs", "logits")
_BLANK_NAMES = ("", "<pad>", "[pad]", "<blank>")


# --------------------------------------------------------------------------- bundled data


def default_lm_path() -> Path:
    """The bundled English 4-gram KenLM binary (29 character labels, see ``lm/README.md``)."""
    return DATA_DIR / "en_4gram.bin"


def default_unigrams_path() -> Path:
    """The vocabulary of :func:`default_lm_path`, one word a line."""
    return DATA_DIR / "en_4gram.unigrams.txt"


def load_demo() -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """The bundled example set: ``(log_probs by id, transcripts by id, labels)``.

    The matrices are float32 log-probabilities ``(T, 29)`` with the blank at index 0.
    """
    with open(DATA_DIR / "demo.json", encoding="utf-8") as fh:
        meta = json.load(fh)
    with np.load(DATA_DIR / "demo.npz") as npz:
        arrays = {k: npz[k].astype(np.float32) for k in npz.files}
    return arrays, dict(meta["transcripts"]), list(meta["labels"])


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
        """Human-readable location for messages."""
        return f"{self.path}[{self.member}]" if self.member is not None else str(self.path)


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
        yield Source(path.stem, path, None)
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


class MatrixReader:
    """Loads utterances one by one, keeping the current ``.npz`` archive open between them."""

    def __init__(self, num_classes: int | None, kind: str = "log-probs") -> None:
        self.num_classes = num_classes
        self.kind = kind
        self._path: Path | None = None
        self._npz: Any = None

    def close(self) -> None:
        """Close the open archive, if any."""
        if self._npz is not None:
            self._npz.close()
        self._npz = self._path = None

    def __call__(self, src: Source) -> np.ndarray:
        """Load ``src`` as float32 log-probabilities; ``ValueError`` says what is wrong."""
        try:
            if src.member is None:
                arr = np.load(src.path, allow_pickle=False)
            else:
                if self._path != src.path:
                    self.close()
                    self._npz = np.load(src.path, allow_pickle=False)
                    self._path = src.path
                arr = self._npz[src.member]
        except Exception as exc:  # any reader failure is a property of the file
            raise ValueError(f"cannot read: {type(exc).__name__}: {exc}") from None
        if not isinstance(arr, np.ndarray):
            raise ValueError("not a single array (an .npz archive with a .npy name?)")
        return to_log_probs(arr, self.num_classes, self.kind)


def load_matrix(src: Source, num_classes: int | None, kind: str = "log-probs") -> np.ndarray:
    """Load one utterance as float32 log-probabilities ``(T, C)``.

    Raises
    ------
    ValueError
        Unreadable file, not a 2-D floating array, wrong number of columns, NaN or infinite
        values where they cannot occur, or values that do not fit ``kind`` (log-probabilities
        above 0 or rows that do not sum to one; probabilities outside [0, 1]).
    """
    reader = MatrixReader(num_classes, kind)
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
    if x.shape[0] == 0:
        return x
    if np.isnan(x).any():
        t = int(np.flatnonzero(np.isnan(x).any(axis=1))[0])
        raise ValueError(f"frame {t} contains NaN")
    if kind == "logits":
        if not np.isfinite(x).all():
            raise ValueError("logits must be finite")
        return log_softmax(x, axis=1)
    if kind == "probs":
        if x.min() < 0 or x.max() > 1 + 1e-3:
            raise ValueError(
                f"probabilities must lie in [0, 1]; got values in [{x.min():.3g}, "
                f"{x.max():.3g}] (use --input-kind logits or log-probs)"
            )
        with np.errstate(divide="ignore"):
            x = np.log(x)
    if x.max() > 1e-2 or (x == np.inf).any():
        raise ValueError(
            f"log-probabilities must be <= 0; the largest value is {float(x.max()):.3g} "
            "(use --input-kind logits or probs)"
        )
    m = x.max(axis=1, keepdims=True)
    if not np.isfinite(m).all():
        t = int(np.flatnonzero(~np.isfinite(m[:, 0]))[0])
        raise ValueError(f"frame {t} gives every label probability zero")
    total = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    worst = int(np.argmax(np.abs(total)))
    if abs(float(total[worst])) > 0.1:
        raise ValueError(
            f"frame {worst} does not sum to probability 1 (log-sum-exp {float(total[worst]):.3g});"
            " these look like unnormalised scores (use --input-kind logits)"
        )
    return x


# --------------------------------------------------------------------------- token -> text


@dataclass(frozen=True)
class Vocabulary:
    """How label ids become words: character labels with a delimiter, or subword pieces.

    Examples
    --------
    >>> v = Vocabulary.build(["", " ", "a", "b"], blank=0)
    >>> v.style, v.delimiter
    ('char', 1)
    >>> v.words([2, 3, 1, 2], starts=[0, 2, 4, 6], ends=[1, 3, 5, 7])
    [('ab', 0, 3), ('a', 6, 7)]
    >>> v.encode("ab a")
    [2, 3, 1, 2]
    """

    labels: tuple[str, ...]
    blank: int
    style: str  # "char", "sentencepiece" (▁ starts a word) or "wordpiece" (## continues one)
    delimiter: int | None  # id of the word delimiter (" " or "|") for character labels

    @classmethod
    def build(cls, labels: Sequence[str], blank: int) -> Vocabulary:
        """Work out the style from the labels, as pyctcdecode does."""
        labels = tuple(labels)
        if any(lab.startswith("\u2581") for lab in labels):
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


class ResultWriter:
    """Writes one record per utterance, flushing each line, so a killed run keeps its output.

    ``fmt`` is ``jsonl``, ``tsv`` (``id<TAB>text<TAB>score``) or ``ctm`` (one line per word:
    ``id 1 start duration word score``, needs ``frame_shift``).
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
            line = f"{record['id']}\t{record['text']}\t{s}\n"
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


def read_done(path: str | Path, fmt: str) -> tuple[dict[str, str], int]:
    """Ids (and texts, where the format keeps them) already in an output file, for ``--resume``.

    A last line cut short by an interrupted write is not counted; the returned int is the byte
    length of the complete lines, to which the file should be truncated before appending.
    """
    path = Path(path)
    if not path.exists():
        return {}, 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    done: dict[str, str] = {}
    for raw in data[:keep].decode("utf-8", errors="replace").splitlines():
        if not raw.strip():
            continue
        if fmt == "jsonl":
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                done[str(rec["id"])] = str(rec.get("text", ""))
        elif fmt == "tsv":
            parts = raw.split("\t")
            if len(parts) >= 2:
                done[parts[0]] = parts[1]
        else:
            parts = raw.split()
            if len(parts) >= 5:
                done[parts[0]] = (done.get(parts[0], "") + " " + parts[4]).strip()
    return done, keep
