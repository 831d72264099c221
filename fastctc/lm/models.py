"""Language models for the beam search decoder and the tables its kernel reads.

* :class:`AbstractLanguageModel` is the protocol of pyctcdecode 0.5.0 (``order``,
  ``get_start_state``, ``score(prev_state, word, is_last_word)``, ``score_partial_token``):
  any object implementing it can be plugged into the decoder.
* :class:`LanguageModel` wraps a word n-gram model with pyctcdecode's scoring:
  ``alpha * ln(10) * log10 P(word | state) + beta`` per word, ``unk_score_offset`` for words
  outside the unigram list, sentence boundaries with ``score_boundary``, and a partial-word
  score (``unk_score_offset``, scaled up for long parts) for a word part that starts no unigram.
  The model is a ``kenlm.Model`` when the ``kenlm`` package is installed, else fastctc's own
  :class:`~fastctc.ngram.NgramModel` (ARPA files and KenLM trie binaries); :func:`load_model`
  makes that choice, the one place where it is made.
* :class:`KernelTables` turns a model into hash tables keyed by integers (LM state ids, word
  ids, FNV hashes of words and word prefixes) that the compiled search reads without the GIL,
  and resolves the queries the search could not answer from them.
"""

from __future__ import annotations

import abc
import functools
import json
import math
import os
import shutil
import threading
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from ..defaults import (
    AVG_TOKEN_LEN,
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_SCORE_LM_BOUNDARY,
    DEFAULT_UNK_LOGP_OFFSET,
    LOG10_TO_LN,
)
from ..kernels import lm_beam as kb
from ..kernels.lm_cache import (
    hash_strings,
    insert_float_int,
    insert_int,
    make_set,
    store_answers,
)
from .kenlm_binary import check_kenlm_binary, describe_kenlm_binary, read_kenlm_trie
from .ngram import (
    NeedsKenLMError,
    NgramModel,
    NgramState,
    NgramTables,
    check_arpa_header,
    looks_like_arpa,
    read_arpa,
)

#: KenLM reports log10 probabilities; the decoder works in natural logs.
LOG_BASE_CHANGE_FACTOR = LOG10_TO_LN

KENLM_HINT = 'kenlm is not installed; pip install "fastctc[kenlm]".'
#: Values of ``backend`` in :func:`load_model`.
BACKENDS = ("auto", "kenlm", "fastctc")


def import_kenlm() -> Any:
    """Import and return the ``kenlm`` module, or raise ``ImportError`` with the install hint.

    A ``kenlm`` without ``Model`` (say, a folder named ``kenlm`` in the working directory,
    imported as a namespace package) counts as missing.
    """
    try:
        import kenlm  # noqa: PLC0415
    except ImportError as err:
        raise ImportError(KENLM_HINT) from err
    if not hasattr(kenlm, "Model"):
        where = getattr(kenlm, "__file__", None) or list(getattr(kenlm, "__path__", []))
        raise ImportError(
            f"kenlm is not installed (the kenlm module found at {where} is not KenLM); "
            'pip install "fastctc[kenlm]".'
        )
    return kenlm


def kenlm_installed() -> bool:
    """Whether ``import kenlm`` works."""
    try:
        import_kenlm()
    except ImportError:
        return False
    return True


def load_kenlm_model(path: str | os.PathLike[str]) -> Any:
    """Load a KenLM ARPA or binary model with the ``kenlm`` package, with errors that name
    the path.

    Raises
    ------
    ImportError
        ``kenlm`` is missing (the message says how to install it).
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a model KenLM can read.
    """
    kenlm = import_kenlm()
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"kenlm_model_path {p!r} does not exist or is not a file.")
    check_model_file(p)
    try:
        return kenlm.Model(p)
    except (OSError, RuntimeError, Exception) as err:  # kenlm raises OSError or its own errors
        raise ValueError(
            f"kenlm_model_path {p!r} could not be loaded as a KenLM ARPA or binary model: {err}"
        ) from err


def check_model_file(path: str | os.PathLike[str]) -> None:
    """Check what can be checked of a model file before KenLM reads it: KenLM crashes the
    process on some malformed files (an ARPA header line ``ngram 2=-2``, for one).

    An ARPA file (plain or gzipped) must have a well-formed ``\\data\\`` header (see
    :func:`fastctc.ngram.check_arpa_header`); any other file must start with KenLM's binary
    header, checked by :func:`fastctc.kenlm_binary.check_kenlm_binary`.

    Raises
    ------
    ValueError
        Neither, or a malformed header; the message names the path.
    """
    p = os.fspath(path)
    if looks_like_arpa(p):
        try:
            check_arpa_header(p)
        except ValueError as err:
            raise ValueError(
                f"kenlm_model_path {p!r} is not a well-formed ARPA file: {err}"
            ) from None
        return
    if describe_kenlm_binary(p) is not None:
        check_kenlm_binary(p)
    else:
        raise ValueError(
            f"kenlm_model_path {p!r} is neither an ARPA file (plain or gzipped, starting with "
            "\\data\\) nor a KenLM binary."
        )


def read_ngram_tables(path: str | os.PathLike[str]) -> NgramTables:
    """The n-gram tables of an ARPA file (plain or gzipped) or a KenLM trie binary.

    Raises
    ------
    NeedsKenLMError
        A model only KenLM reads: a hash-table binary, an ARPA file whose n-grams lack their
        context n-grams (the message says which).
    ValueError
        Neither an ARPA file nor a KenLM binary, or a malformed one.
    """
    p = os.fspath(path)
    if looks_like_arpa(p):
        return read_arpa(p)
    tables = read_kenlm_trie(p)
    if tables is not None:
        return tables
    kind = describe_kenlm_binary(p)
    if kind is not None:
        raise NeedsKenLMError(f"{p!r} is {kind}")
    raise ValueError(f"{p!r} is neither an ARPA file (plain or gzipped) nor a KenLM binary.")


def load_model(path: str | os.PathLike[str], backend: str = "auto") -> Any:
    """Load a word n-gram model for :class:`LanguageModel`.

    Parameters
    ----------
    path : str or path
        An ARPA file (plain or gzipped) or a KenLM binary.
    backend : {"auto", "kenlm", "fastctc"}
        ``"kenlm"``: a ``kenlm.Model`` (any file KenLM reads; states are ``kenlm.State``).
        ``"fastctc"``: an :class:`~fastctc.ngram.NgramModel` read by fastctc itself (ARPA
        files and KenLM trie binaries, no ``kenlm`` package; states are
        :class:`~fastctc.ngram.NgramState`). ``"auto"``: ``"kenlm"`` when the ``kenlm``
        package is installed, else ``"fastctc"``. Both give the same scores and beams.

    Returns
    -------
    kenlm.Model or NgramModel

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ImportError
        The model needs the ``kenlm`` package (a hash-table binary, an ARPA file with
        n-grams missing their context n-grams, or ``backend="kenlm"``) and it is not
        installed; the message names the file and says how to install it.
    ValueError
        The file is not a model, or ``backend`` is not one of the three.

    Examples
    --------
    >>> import fastctc.data
    >>> from fastctc.lm import load_model
    >>> model = load_model(fastctc.data.default_lm().path, backend="fastctc")
    >>> model.order, "house" in model
    (4, True)
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"kenlm_model_path {p!r} does not exist or is not a file.")
    if backend == "auto":
        backend = "kenlm" if kenlm_installed() else "fastctc"
    if backend == "kenlm":
        return load_kenlm_model(p)
    try:
        return NgramModel(read_ngram_tables(p), p)
    except NeedsKenLMError as err:
        raise ImportError(
            f"kenlm_model_path {p!r}: {err}. fastctc reads ARPA files and KenLM trie "
            "binaries itself, but this model needs the kenlm package: "
            'pip install "fastctc[kenlm]" (or convert the ARPA file to a trie binary: '
            "build_binary model.arpa model.bin trie)."
        ) from err
    except ValueError as err:
        raise ValueError(f"kenlm_model_path {p!r} could not be loaded: {err}") from err


def load_unigram_set_from_arpa(arpa_path: str | os.PathLike[str]) -> set[str]:
    """Words of the ``\\1-grams:`` section of an ARPA file.

    Raises
    ------
    ValueError
        The file has no unigram section.
    """
    unigrams: set[str] = set()
    in_unigrams = False
    with open(arpa_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                in_unigrams = True
                continue
            if line == "\\2-grams:":
                break
            if in_unigrams and line:
                parts = line.split("\t")
                if len(parts) == 3:
                    unigrams.add(parts[1])
    if not unigrams:
        raise ValueError(f"No unigrams found in the ARPA file {os.fspath(arpa_path)!r}.")
    return unigrams


def encode_strings(words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Code points of ``words`` concatenated (uint32) and their offsets (int64)."""
    words = list(words)
    lens = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    codes = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return codes, offsets


def word_hashes(words: Iterable[str]) -> np.ndarray:
    """The kernel's 64-bit hash of each word."""
    codes, offsets = encode_strings(words)
    return hash_strings(codes, offsets, False)[0]


EMPTY_TABLE = (np.zeros(1, dtype=np.uint64), np.full(1, -1, dtype=np.int64))


class AbstractLanguageModel(abc.ABC):
    """Protocol of a word-level language model (pyctcdecode 0.5.0's ``AbstractLanguageModel``).

    States must be hashable; ``score`` returns the already weighted score (natural log scale,
    ``alpha``/``beta`` applied) and the state after the word.
    """

    @property
    @abc.abstractmethod
    def order(self) -> int:
        """Order of the n-gram model (history of ``order - 1`` words)."""

    @abc.abstractmethod
    def get_start_state(self) -> Any:
        """State before the first word."""

    @abc.abstractmethod
    def score_partial_token(self, partial_token: str) -> float:
        """Score of an unfinished word."""

    @abc.abstractmethod
    def score(self, prev_state: Any, word: str, is_last_word: bool = False) -> tuple[float, Any]:
        """Score of ``word`` after ``prev_state`` (plus the sentence end if ``is_last_word``)."""

    def save_to_dir(self, filepath: str) -> None:
        """Save the model to a directory (optional)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved to a directory.")

    @classmethod
    def load_from_dir(cls, filepath: str) -> AbstractLanguageModel:
        """Load a model saved by :meth:`save_to_dir` (optional)."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded from a directory.")

    def reset_params(self, **params: Any) -> None:  # noqa: B027 - deliberately optional
        """Change scoring parameters in place (optional)."""


class LanguageModel(AbstractLanguageModel):
    """Word n-gram model with pyctcdecode's fusion scores.

    Parameters
    ----------
    kenlm_model : kenlm.Model, NgramModel or path
        A loaded model, or the path of an ARPA file (plain or gzipped) or KenLM binary,
        loaded by :func:`load_model`: with the ``kenlm`` package when it is installed, else
        by fastctc (ARPA files and KenLM trie binaries).
    unigrams : collection of str, optional
        Known words. Words outside it (or outside the model) get ``unk_score_offset``; a
        word part that begins no unigram gets the partial-word penalty. Filtered to words the
        model knows. ``None`` penalises every word part (as pyctcdecode does).
    alpha, beta : float
        LM weight and word insertion bonus.
    unk_score_offset : float
        Log10-scale offset for unknown words and unmatched word parts.
    score_boundary : bool
        Score the sentence start ``<s>`` and end ``</s>``.

    Examples
    --------
    >>> import fastctc.data
    >>> from fastctc.lm import LanguageModel
    >>> lm = LanguageModel(fastctc.data.default_lm().path, ["the", "house"], alpha=0.5, beta=1.0)
    >>> score, state = lm.score(lm.get_start_state(), "the")
    >>> round(score, 4)
    -0.343
    """

    JSON_ATTRS = ("alpha", "beta", "unk_score_offset", "score_boundary")
    _ATTRS_FILE = "attrs.json"
    _UNIGRAMS_FILE = "unigrams.txt"

    def __init__(
        self,
        kenlm_model: Any,
        unigrams: Collection[str] | None = None,
        alpha: float = DEFAULT_ALPHA,
        beta: float = DEFAULT_BETA,
        unk_score_offset: float = DEFAULT_UNK_LOGP_OFFSET,
        score_boundary: bool = DEFAULT_SCORE_LM_BOUNDARY,
    ) -> None:
        if isinstance(kenlm_model, (str, os.PathLike)):
            kenlm_model = load_model(kenlm_model)
        self._kenlm_model = kenlm_model
        if isinstance(kenlm_model, NgramModel):
            self._State: Any = NgramState
        else:  # a kenlm.Model, or an object with its interface
            self._State = import_kenlm().State
        self._ngram = _ngram_tables(kenlm_model)
        if unigrams is None:
            self._unigram_set: set[str] = set()
            self._have_unigrams = False
        else:
            if isinstance(unigrams, str):
                raise TypeError("unigrams must be a collection of words, not a single string.")
            words = set(unigrams)
            for w in words:
                if not isinstance(w, str):
                    raise TypeError(f"unigrams must be strings; got {type(w).__name__} {w!r}.")
                try:
                    w.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(
                        f"the unigram {ascii(w)[:60]} is not valid Unicode text (a lone surrogate)."
                    ) from None
            self._unigram_set = {w for w in words if w in kenlm_model}
            if words and not self._unigram_set:
                raise ValueError(
                    f"none of the {len(words)} unigrams is in the KenLM model's vocabulary; "
                    "the unigram list and the model do not match."
                )
            self._have_unigrams = True
        self._version = 0
        self._prefix_set: tuple[np.ndarray, np.ndarray] | None = None
        self.alpha = alpha
        self.beta = beta
        self.unk_score_offset = unk_score_offset
        self.score_boundary = score_boundary
        self.reset_params(
            alpha=alpha, beta=beta, unk_score_offset=unk_score_offset, score_boundary=score_boundary
        )

    @property
    def order(self) -> int:
        """Order of the n-gram model."""
        return int(self._kenlm_model.order)

    @property
    def kenlm_model(self) -> Any:
        """The wrapped model: a ``kenlm.Model``, or a :class:`~fastctc.ngram.NgramModel`
        (which has the same interface) when :attr:`backend` is ``"fastctc"``."""
        return self._kenlm_model

    @property
    def backend(self) -> str:
        """``"kenlm"`` (states are ``kenlm.State``) or ``"fastctc"`` (fastctc's own reader;
        states are :class:`~fastctc.ngram.NgramState`). See :func:`load_model`."""
        return "fastctc" if isinstance(self._kenlm_model, NgramModel) else "kenlm"

    @property
    def ngram_tables(self) -> NgramTables | None:
        """The model's n-gram tables, read from its ARPA or KenLM trie file (``None`` for
        other binaries: their scores are then asked of KenLM and cached)."""
        return self._ngram

    @property
    def unigrams(self) -> set[str]:
        """Known words (a copy)."""
        return set(self._unigram_set)

    def reset_params(self, **params: Any) -> None:
        """Set any of ``alpha``, ``beta``, ``unk_score_offset`` (float) and
        ``score_boundary`` (bool); cached kernel scores are invalidated."""
        for name in ("alpha", "beta", "unk_score_offset"):
            val = params.get(name)
            if val is not None:
                if isinstance(val, bool) or not isinstance(val, (int, float, np.floating)):
                    raise TypeError(f"{name} must be a float; got {type(val).__name__} {val!r}.")
                if not math.isfinite(float(val)):
                    raise ValueError(f"{name} must be finite; got {val!r}.")
                setattr(self, name, float(val))
        sb = params.get("score_boundary")
        if sb is not None:
            if not isinstance(sb, (bool, np.bool_)):
                raise TypeError(f"score_boundary must be a bool; got {type(sb).__name__} {sb!r}.")
            self.score_boundary = bool(sb)
        self._version += 1

    def get_start_state(self) -> Any:
        """``<s>`` context when scoring boundaries, else the null context."""
        state = self._State()
        if self.score_boundary:
            self._kenlm_model.BeginSentenceWrite(state)
        else:
            self._kenlm_model.NullContextWrite(state)
        return state

    def is_oov(self, word: str) -> bool:
        """Whether ``word`` gets ``unk_score_offset``."""
        return (self._have_unigrams and word not in self._unigram_set) or (
            word not in self._kenlm_model
        )

    def raw_score(
        self, prev_state: Any, word: str, is_last_word: bool, oov: bool
    ) -> tuple[float, Any]:
        """Weighted score given a precomputed OOV flag (shared by ``score`` and the tables)."""
        end_state = self._State()
        s = self._kenlm_model.BaseScore(prev_state, word, end_state)
        if oov:
            s += self.unk_score_offset
        if is_last_word and self.score_boundary:
            s = s + self._kenlm_model.BaseScore(end_state, "</s>", self._State())
        return self.alpha * s * LOG_BASE_CHANGE_FACTOR + self.beta, end_state

    def score(self, prev_state: Any, word: str, is_last_word: bool = False) -> tuple[float, Any]:
        """Weighted score of ``word`` after ``prev_state`` and the state after it."""
        return self.raw_score(prev_state, word, is_last_word, self.is_oov(word))

    def score_partial_token(self, partial_token: str) -> float:
        """``unk_score_offset`` (times ``len / 6`` beyond 6 characters) unless a unigram
        starts with ``partial_token``; 0 otherwise."""
        oov = True
        if self._have_unigrams and partial_token:
            from ..kernels.lm_cache import table_find

            oov = table_find(_prefix_table(self)[0], word_hashes([partial_token])[0]) < 0
        s = self.unk_score_offset * oov
        if len(partial_token) > AVG_TOKEN_LEN:
            s = s * len(partial_token) / AVG_TOKEN_LEN
        return float(s)

    # serialisation, in pyctcdecode's directory layout
    def save_to_dir(self, filepath: str) -> None:
        """Write ``attrs.json``, ``unigrams.txt`` and a copy of the model file."""
        with open(os.path.join(filepath, self._ATTRS_FILE), "w") as f:
            json.dump({a: getattr(self, a) for a in self.JSON_ATTRS}, f)
        with open(os.path.join(filepath, self._UNIGRAMS_FILE), "w", encoding="utf-8") as f:
            for w in sorted(self._unigram_set):
                f.write(w + "\n")
        src = str(_model_path(self._kenlm_model))
        shutil.copy2(src, os.path.join(filepath, os.path.basename(src)))

    @classmethod
    def load_from_dir(cls, filepath: str) -> LanguageModel:
        """Inverse of :meth:`save_to_dir`.

        Raises
        ------
        ValueError
            The directory does not hold exactly the three expected files.
        """
        files = [c for c in os.listdir(filepath) if not c.startswith((".", "__"))]
        fixed = (cls._ATTRS_FILE, cls._UNIGRAMS_FILE)
        if len(files) != 3 or not all(f in files for f in fixed):
            raise ValueError(
                f"language model directory {filepath!r} must hold {cls._ATTRS_FILE}, "
                f"{cls._UNIGRAMS_FILE} and one .arpa/.arpa.gz/.bin/.binary file; found "
                f"{sorted(files)}."
            )
        model_file = next(f for f in files if f not in fixed)
        if not model_file.endswith((".arpa", ".arpa.gz", ".bin", ".binary")):
            raise ValueError(
                f"expected a model file ending in .arpa, .arpa.gz, .bin or .binary in "
                f"{filepath!r}; found {model_file!r}."
            )
        with open(os.path.join(filepath, cls._ATTRS_FILE)) as f:
            attrs = json.load(f)
        if set(attrs) != set(cls.JSON_ATTRS):
            raise ValueError(f"{cls._ATTRS_FILE} must hold {cls.JSON_ATTRS}; got {sorted(attrs)}.")
        with open(os.path.join(filepath, cls._UNIGRAMS_FILE), encoding="utf-8") as f:
            unigrams = f.read().splitlines()
        model = load_model(os.path.join(filepath, model_file))
        return cls(model, unigrams, **attrs)


def _model_path(kenlm_model: Any) -> str | None:
    path = getattr(kenlm_model, "path", None)
    if isinstance(path, bytes):
        path = path.decode("utf-8", "replace")
    return path if isinstance(path, str) else None


def _ngram_tables(kenlm_model: Any) -> NgramTables | None:
    """Tables of the model's file (ARPA, or KenLM binary in the trie layout), or ``None``
    (other binaries, or a file this reader cannot mirror exactly: the search then asks
    KenLM)."""
    if isinstance(kenlm_model, NgramModel):
        return kenlm_model.tables
    path = _model_path(kenlm_model)
    if path is None or not os.path.isfile(path):
        return None
    try:
        tables = read_ngram_tables(path)
    except ValueError:
        return None
    if tables.order != int(kenlm_model.order):
        return None
    return tables


def _prefix_table(lm: LanguageModel) -> tuple[np.ndarray, np.ndarray]:
    """Hash set of every non-empty prefix of the model's unigrams (built once per model)."""
    table = getattr(lm, "_prefix_set", None)
    if table is None:
        codes, offsets = encode_strings(sorted(lm._unigram_set))
        pre, _ = hash_strings(codes, offsets, True)
        table = make_set(np.unique(pre))
        lm._prefix_set = table
    return table


@functools.lru_cache(maxsize=32)
def hotword_tables(hotwords: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables for pyctcdecode-style hotwords: (whole-word set, prefix keys, shortest length).

    Phrases are split into words; a word counts when it equals a hotword word; a word part
    that begins a hotword word scores ``weight * len(part) / len(shortest such word)``.
    """
    words = [w for phrase in hotwords for w in phrase.split()]
    if not words:
        return EMPTY_TABLE[0], EMPTY_TABLE[0], EMPTY_TABLE[1]
    wkeys, _ = make_set(word_hashes(words))
    codes, offsets = encode_strings(words)
    pre, src_len = hash_strings(codes, offsets, True)
    order = np.lexsort((src_len, pre))
    pre, src_len = pre[order], src_len[order]
    first = np.ones(len(pre), dtype=bool)
    first[1:] = pre[1:] != pre[:-1]
    pkeys, pvals = make_set(pre[first], src_len[first])
    return wkeys, pkeys, pvals


def normalise_hotwords(hotwords: Iterable[str] | None) -> tuple[str, ...]:
    """Strip and drop empty hotwords; ``TypeError`` for a bare string or non-strings."""
    if hotwords is None:
        return ()
    if isinstance(hotwords, str):
        raise TypeError(
            f"hotwords must be a list of strings; got the string {hotwords!r}. Use [{hotwords!r}]."
        )
    out = []
    for i, h in enumerate(hotwords):
        if not isinstance(h, str):
            raise TypeError(f"hotwords[{i}] must be a str; got {type(h).__name__} {h!r}.")
        try:
            h.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"hotwords[{i}] = {ascii(h)[:60]} is not valid Unicode text (a lone surrogate)."
            ) from None
        if h.strip():
            out.append(h.strip())
    return tuple(out)


def model_name(lm: Any) -> str:
    """How error messages name a language model: its file for :class:`LanguageModel`, else
    its class."""
    if isinstance(lm, LanguageModel):
        path = _model_path(lm.kenlm_model)
        return f"the language model {path!r}" if path else "the language model"
    return f"the language model {type(lm).__qualname__}"


def check_score(value: Any, lm: Any, what: str) -> float:
    """``value`` as a float when it is a usable LM score (finite, or -inf: probability 0).

    Raises
    ------
    TypeError
        ``value`` is not a real number (a string, ``None``, ...).
    ValueError
        ``value`` is NaN or +inf: such a score would stall or corrupt the search.
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        v = float(value)
        if v < math.inf:  # False for NaN and +inf
            return v
        raise ValueError(
            f"{model_name(lm)} returned {v!r} from {what}; LM scores must be finite or -inf."
        )
    raise TypeError(
        f"{model_name(lm)} returned {type(value).__name__} {_excerpt(value)} from {what}; "
        "LM scores must be real numbers (float)."
    )


def _excerpt(value: Any, limit: int = 40) -> str:
    """A short, printable excerpt of ``value`` for an error message."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class KernelTables:
    """Integer tables of one language model, shared by every decoding thread.

    * words: FNV hash of a word -> word id (0 is the empty word, 1 stands for every word
      KenLM does not know, then the unigrams, then the model's other words when it has
      n-gram tables, then other words met while decoding);
    * ``ngram`` and ``w_info``: the n-gram tables of an ARPA model and each word id's
      vocabulary id and OOV flag, which the kernel scores from directly;
    * scores: (state id, word id, end-of-sentence) -> (weighted score, next state id);
    * prefixes of unigrams (a set) for the partial-word score of :class:`LanguageModel`;
    * partial scores by word-part hash, for custom models.

    Readers (the kernel) take no lock; :meth:`resolve` adds entries under ``self.lock``.
    """

    def __init__(self, lm: AbstractLanguageModel) -> None:
        self.lm = lm
        self.native = isinstance(lm, LanguageModel)
        self.lock = threading.Lock()
        self.states: list[Any] = []
        self.state_ids: dict[Any, int] = {}
        self.words: list[str] = ["", ""]
        self.word_ids: dict[str, int] = {"": 0}
        self.word_oov: list[bool] = [True, True]
        self.have_unigrams = False
        self.n_unigrams = 0
        self.prefix = EMPTY_TABLE[0]
        self.ngram: NgramTables | None = None
        self.w_info = np.zeros(1, dtype=np.int64)  # per word id: 2 * vocabulary id + oov
        if self.native:
            assert isinstance(lm, LanguageModel)
            self.have_unigrams = lm._have_unigrams
            uni = sorted(lm._unigram_set)
            self.words += uni
            self.word_oov += [False] * len(uni)
            self.n_unigrams = len(uni)
            self.prefix = _prefix_table(lm)[0] if uni else EMPTY_TABLE[0]
            self.ngram = ng = lm.ngram_tables
            if ng is not None:  # every model word gets an id now: the kernel scores them all
                known = set(uni)
                rest = [w for w in ng.words if w not in known]
                self.words += rest
                self.word_oov += [self.have_unigrams] * len(rest)
                pairs = zip(self.words, self.word_oov, strict=True)
                self.w_info = np.array([2 * ng.id_of(w) + o for w, o in pairs], dtype=np.int64)
            for wid in range(2, len(self.words)):
                self.word_ids[self.words[wid]] = wid
        ids = np.arange(2, len(self.words), dtype=np.int64)
        self.word_table = make_set(word_hashes(self.words[2:]), ids)
        self._n_words_in_table = len(self.words) - 2
        self._version = getattr(lm, "_version", 0)
        if self.native:
            self._State = lm._State  # type: ignore[attr-defined]
            self._spare_state = self._State()  # KenLM writes answers' next states here
            self._scratch_state = self._State()
        self._new_score_tables()

    def _new_score_tables(self) -> None:
        self.scores = self._empty_scores(1 << 14)
        self._n_scores = 0
        self.partial = (np.zeros(1 << 10, np.uint64), np.full(1 << 10, np.nan))
        self._n_partial = 0

    @staticmethod
    def _empty_scores(cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.zeros(cap, np.uint64), np.full(cap, np.nan), np.full(cap, -1, np.int64))

    def check_version(self) -> None:
        """Drop cached scores if the model's parameters changed since they were computed."""
        v = getattr(self.lm, "_version", 0)
        if v != self._version:
            with self.lock:
                self._new_score_tables()
                self._version = v

    def clear(self) -> None:
        """Forget every cached score (after a parameter change of a custom model)."""
        with self.lock:
            self._new_score_tables()
            self._version = getattr(self.lm, "_version", 0)

    def state_id(self, state: Any) -> int:
        """Integer id of an LM state (assigned on first sight)."""
        try:
            key = state
            sid = self.state_ids.get(key)
        except TypeError:  # unhashable states, e.g. lists of kenlm.State
            key = _freeze(state)
            sid = self.state_ids.get(key)
        if sid is None:
            sid = len(self.states)
            self.states.append(state)
            self.state_ids[key] = sid
        return sid

    def start_state_id(self, state: Any = None) -> int:
        """Id of ``state`` or of the model's start state.

        Raises
        ------
        TypeError
            ``state`` is not a state of the :class:`LanguageModel`'s kind (``kenlm.State`` or
            :class:`~fastctc.ngram.NgramState`).
        """
        if state is None:
            state = self.lm.get_start_state()
        elif self.native and not isinstance(state, self._State):
            kind = f"{self._State.__module__}.{self._State.__name__}"
            backend = self.lm.backend  # type: ignore[attr-defined]
            raise TypeError(
                f"lm_start_state must be a {kind} (the {backend!r} backend's state, e.g. a "
                f"beam's last_lm_state); got {type(state).__name__}."
            )
        with self.lock:
            return self.state_id(state)

    def _word_id(self, word: str) -> int:
        """Id of a word the kernel's word table lacks (registered on first sight)."""
        wid = self.word_ids.get(word)
        return self._new_word(word) if wid is None else wid

    def _new_word(self, word: str) -> int:
        """Register a word seen for the first time and return its id."""
        if self.native and word not in self.lm.kenlm_model:  # type: ignore[attr-defined]
            wid = 1
            if not self.words[1]:
                self.words[1] = word  # any unknown string scores as <unk>
        else:
            wid = len(self.words)
            self.words.append(word)
            self.word_oov.append(self.have_unigrams if self.native else False)
        self.word_ids[word] = wid
        return wid

    def resolve(self, q: np.ndarray, q_hash: np.ndarray, spell: Any) -> None:
        """Answer the kernel's queries ``q[i] = (kind, state, word id, token node, n tokens,
        eos)``; ``spell(q)`` returns the text of every word and word-part query as one string
        and its offsets (see ``lm_beam.spell_queries``)."""
        rows = q.tolist()
        if self.native:
            with self.lock:
                self._resolve_kenlm(rows, q, q_hash, spell)
            return
        with self.lock:
            text = None
            todo: dict[tuple[int, int, int], None] = {}  # (state, word id, eos), first-seen order
            new_words: list[int] = []  # pairs (word hash as int64 bits, word id)
            pk: list[int] = []
            pv: list[float] = []
            for i, (kind, state, wid, _, _, eos) in enumerate(rows):
                if kind != kb.Q_LM:
                    if text is None:  # one kernel call spells every word of the batch
                        text, off = spell(q)
                        hashes = q_hash.view(np.int64).tolist()
                    word = text[off[i] : off[i + 1]]
                    if kind == kb.Q_PARTIAL:
                        pk.append(hashes[i])
                        sp = self.lm.score_partial_token(word)
                        pv.append(check_score(sp, self.lm, f"score_partial_token({word!r})"))
                        continue
                    wid = self._word_id(word)
                    new_words += (hashes[i], wid)
                todo[(state, wid, eos)] = None
            if todo:
                self._store(new_words, todo)
            if pk:
                self._insert_partial(pk, pv)

    def _resolve_kenlm(
        self, rows: list[list[int]], q: np.ndarray, q_hash: np.ndarray, spell: Any
    ) -> None:
        """:meth:`resolve` for the KenLM adapter, in one pass over the queries (the kernel
        sends each at most once per batch; a word query that turns out to repeat another
        query is scored twice, which stores the same entry twice)."""
        lm: LanguageModel = self.lm  # type: ignore[assignment]
        base = lm.kenlm_model.BaseScore
        states, words, state_ids, oovs = self.states, self.words, self.state_ids, self.word_oov
        unk, a, b, sb = lm.unk_score_offset, lm.alpha, lm.beta, lm.score_boundary
        f = LOG_BASE_CHANGE_FACTOR
        end, scratch = self._spare_state, self._scratch_state
        new_words: list[int] = []  # pairs (word hash as int64 bits, word id)
        triples: list[int] = []  # 2 * state + eos, word id, next state
        scores: list[float] = []
        text = None
        for i, (kind, state, wid, _, _, eos) in enumerate(rows):
            if kind == kb.Q_WORD:
                if text is None:  # one kernel call spells every word of the batch
                    text, off = spell(q)
                    hashes = q_hash.view(np.int64).tolist()
                word = text[off[i] : off[i + 1]]
                wid = self._word_id(word)
                new_words += (hashes[i], wid)
            s = base(states[state], words[wid], end)
            if oovs[wid]:
                s += unk
            if eos and sb:
                s = s + base(end, "</s>", scratch)
            scores.append(a * s * f + b)
            sid = state_ids.get(end)
            if sid is None:  # a new state keeps its object; the next query gets a fresh one
                sid = len(states)
                states.append(end)
                state_ids[end] = sid
                end = self._State()
            triples += (2 * state + eos, wid, sid)
        self._spare_state = end
        if not np.all(np.array(scores) < math.inf):  # a NaN or +inf probability in the file
            i = next(k for k, x in enumerate(scores) if not x < math.inf)
            word = words[triples[3 * i + 1]]
            raise ValueError(
                f"{model_name(lm)} scored the word {word!r} as {scores[i]!r} (weighted); "
                "its probabilities must be finite or -inf (NaN or +inf found; alpha=0 times a "
                "probability of 0, log10 -inf, is NaN too)."
            )
        self._insert(new_words + triples, len(new_words) // 2, scores)

    def _store(self, new_words: list[int], todo: Collection[tuple[int, int, int]]) -> None:
        """Score the ``todo`` keys and insert them with the new words."""
        n_words = len(new_words) // 2
        ints = new_words  # the score triples follow the word pairs
        scores = self._scores_of(todo, ints)
        self._insert(ints, n_words, scores)

    def _insert(self, ints: list[int], n_words: int, scores: list[float]) -> None:
        """Insert ``n_words`` word pairs and the scores of the triples after them (see
        ``lm_cache.store_answers``) in one kernel call, growing the tables first if needed
        (into new arrays: readers keep the old ones meanwhile)."""
        wkeys, wvals = self.word_table
        need = 2 * (self._n_words_in_table + n_words)
        if need > wkeys.size:
            used = wkeys != 0
            cap = _grown(wkeys.size, need)
            old_keys, old_vals = wkeys[used], wvals[used]
            wkeys, wvals = np.zeros(cap, np.uint64), np.full(cap, -1, np.int64)
            insert_int(wkeys, wvals, old_keys, old_vals)
        keys, sc, nx = self.scores
        need = 2 * (self._n_scores + len(scores))
        if need > keys.size:
            used = keys != 0
            keys, sc, nx = self._empty_scores(_grown(keys.size, need))
            insert_float_int(keys, sc, nx, *(a[used] for a in self.scores))
        added_words, added_scores = store_answers(
            wkeys, wvals, keys, sc, nx, np.array(ints, np.int64), n_words, np.array(scores)
        )
        self._n_words_in_table += added_words
        self._n_scores += added_scores
        self.word_table = (wkeys, wvals)
        self.scores = (keys, sc, nx)

    def _scores_of(self, todo: Iterable[tuple[int, int, int]], out: list[int]) -> list[float]:
        """Scores of ``(state, word id, eos)`` keys from a custom model; appends
        ``2 * state + eos``, word id and next-state id of each to ``out``."""
        scores: list[float] = []
        states, words = self.states, self.words
        for state, wid, eos in todo:
            s, end = self.lm.score(states[state], words[wid], is_last_word=bool(eos))
            scores.append(check_score(s, self.lm, f"score(..., {words[wid]!r})"))
            out += (2 * state + eos, wid, self.state_id(end))
        return scores

    def _insert_partial(self, k: list[int], v: list[float]) -> None:
        keys, vals = self.partial
        need = 2 * (self._n_partial + len(k))
        if need > keys.size:
            cap = _grown(keys.size, need)
            nk, nv = np.zeros(cap, np.uint64), np.full(cap, np.nan)
            used = keys != 0
            _insert_float(nk, nv, keys[used], vals[used])
            keys, vals = nk, nv
        hashes = np.array(k, np.int64).view(np.uint64)  # k: hashes as int64 bits
        self._n_partial += _insert_float(keys, vals, hashes, np.array(v))
        self.partial = (keys, vals)


def _grown(cap: int, need: int) -> int:
    """``cap`` doubled until it reaches ``need``."""
    while need > cap:
        cap *= 2
    return cap


def _insert_float(keys: np.ndarray, vals: np.ndarray, k: np.ndarray, v: np.ndarray) -> int:
    dummy = np.zeros(keys.size, np.int64)
    return int(insert_float_int(keys, vals, dummy, k, v, np.zeros(len(k), np.int64)))


def _freeze(state: Any) -> Any:
    if isinstance(state, (list, tuple)):
        return tuple(_freeze(s) for s in state)
    if isinstance(state, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in state.items()))
    return state
