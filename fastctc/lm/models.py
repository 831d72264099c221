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
import json
import logging
import math
import os
import shutil
import threading
import warnings
from collections.abc import Collection, Iterable
from typing import Any, NamedTuple

import numpy as np

from .._validate import check_text
from ..defaults import (
    AVG_TOKEN_LEN,
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_SCORE_LM_BOUNDARY,
    DEFAULT_UNK_LOGP_OFFSET,
    LOG10_TO_LN,
)
from ..kernels.lm_cache import (
    hash_strings,
    make_set,
)
from ..vocabulary import encode_strings
from .kenlm_binary import check_kenlm_binary, describe_kenlm_binary, read_kenlm_trie
from .ngram import (
    NeedsKenLMError,
    NgramModel,
    NgramState,
    NgramTables,
    arpa_unigrams,
    check_arpa_header,
    looks_like_arpa,
    read_arpa,
)

#: KenLM reports log10 probabilities; the decoder works in natural logs.
LOG_BASE_CHANGE_FACTOR = LOG10_TO_LN

#: Advice about the inputs (as pyctcdecode logs it), through :mod:`logging`.
logger = logging.getLogger("fastctc")

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
    """Words of the ``\\1-grams:`` section of an ARPA file that have a back-off weight, as
    pyctcdecode's function of this name (see :func:`fastctc.lm.ngram.arpa_unigrams`).

    Raises
    ------
    ValueError
        The file has no unigram section, or a malformed one.
    """
    return set(arpa_unigrams(arpa_path, require_backoff=True))


def word_hashes(words: Iterable[str]) -> np.ndarray:
    """The kernel's 64-bit hash of each word."""
    codes, offsets = encode_strings(words)
    return hash_strings(codes, offsets, False)[0]


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
        self._ngram, self._ngram_missing = _ngram_tables(kenlm_model)
        if unigrams is None:
            logger.warning(
                "No unigrams given: every word part gets the unknown-word offset, which usually "
                "makes the results worse."
            )
            self._unigram_set: set[str] = set()
            self._have_unigrams = False
        else:
            if isinstance(unigrams, str):
                raise TypeError("unigrams must be a collection of words, not a single string.")
            words = set(unigrams)
            for w in words:
                check_text(w, "the unigram", sep=" ")
            self._unigram_set = {w for w in words if w in kenlm_model}
            if words and not self._unigram_set:
                raise ValueError(
                    f"none of the {len(words)} unigrams is in the KenLM model's vocabulary; "
                    "the unigram list and the model do not match."
                )
            _advise_on_unigrams(len(unigrams), len(self._unigram_set))
            self._have_unigrams = True
        self._version = 0
        self._prefix_set: tuple[np.ndarray, np.ndarray] | None = None
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
    def ngram_tables_missing(self) -> str:
        """Why :attr:`ngram_tables` is ``None`` (empty when it is not)."""
        return self._ngram_missing

    @property
    def unigrams(self) -> set[str]:
        """Known words (a copy)."""
        return set(self._unigram_set)

    # the four parameters: setting one (directly or by reset_params) drops cached scores
    @property
    def alpha(self) -> float:
        """LM weight."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: Any) -> None:
        self._alpha = _finite_float(value, "alpha")
        self._version += 1

    @property
    def beta(self) -> float:
        """Word insertion bonus."""
        return self._beta

    @beta.setter
    def beta(self, value: Any) -> None:
        self._beta = _finite_float(value, "beta")
        self._version += 1

    @property
    def unk_score_offset(self) -> float:
        """Log10 offset of unknown words and unmatched word parts."""
        return self._unk_score_offset

    @unk_score_offset.setter
    def unk_score_offset(self, value: Any) -> None:
        self._unk_score_offset = _finite_float(value, "unk_score_offset")
        self._version += 1

    @property
    def score_boundary(self) -> bool:
        """Whether the sentence start ``<s>`` and end ``</s>`` are scored."""
        return self._score_boundary

    @score_boundary.setter
    def score_boundary(self, value: Any) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"score_boundary must be a bool; got {type(value).__name__} {value!r}.")
        self._score_boundary = bool(value)
        self._version += 1

    def reset_params(self, **params: Any) -> None:
        """Set any of ``alpha``, ``beta``, ``unk_score_offset`` (float) and
        ``score_boundary`` (bool); values left out or ``None`` stay as they are. Cached
        kernel scores are dropped when something is set (as when an attribute is set)."""
        for name in ("alpha", "beta", "unk_score_offset", "score_boundary"):
            val = params.get(name)
            if val is not None:
                setattr(self, name, val)

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
        return weighted_score(self.alpha, self.beta, s), end_state

    def score(self, prev_state: Any, word: str, is_last_word: bool = False) -> tuple[float, Any]:
        """Weighted score of ``word`` after ``prev_state`` and the state after it."""
        return self.raw_score(prev_state, word, is_last_word, self.is_oov(word))

    def score_partial_token(self, partial_token: str) -> float:
        """``unk_score_offset`` (times ``len / 6`` beyond 6 characters) unless a unigram
        starts with ``partial_token``; 0 otherwise."""
        oov = True
        if self._have_unigrams and partial_token:
            from ..kernels.lm_cache import table_find

            oov = table_find(prefix_table(self)[0], word_hashes([partial_token])[0]) < 0
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
    def parse_directory_contents(cls, filepath: str | os.PathLike[str]) -> dict[str, str]:
        """The files of a directory written by :meth:`save_to_dir`: ``{"json_attrs": ...,
        "unigrams": ..., "kenlm": ...}`` (pyctcdecode's keys).

        Raises
        ------
        ValueError
            The directory does not hold exactly the three expected files (hidden files and
            names starting with ``__`` aside).
        """
        path = os.fspath(filepath)
        files = [c for c in os.listdir(path) if not c.startswith((".", "__"))]
        fixed = (cls._ATTRS_FILE, cls._UNIGRAMS_FILE)
        if len(files) != 3 or not all(f in files for f in fixed):
            raise ValueError(
                f"language model directory {path!r} must hold {cls._ATTRS_FILE}, "
                f"{cls._UNIGRAMS_FILE} and one .arpa/.arpa.gz/.bin/.binary file; found "
                f"{sorted(files)}."
            )
        model_file = next(f for f in files if f not in fixed)
        if not model_file.endswith((".arpa", ".arpa.gz", ".bin", ".binary")):
            raise ValueError(
                f"expected a model file ending in .arpa, .arpa.gz, .bin or .binary in "
                f"{path!r}; found {model_file!r}."
            )
        return {
            "json_attrs": os.path.join(path, cls._ATTRS_FILE),
            "unigrams": os.path.join(path, cls._UNIGRAMS_FILE),
            "kenlm": os.path.join(path, model_file),
        }

    @classmethod
    def load_from_dir(
        cls, filepath: str | os.PathLike[str], unigram_encoding: str | None = None
    ) -> LanguageModel:
        """Inverse of :meth:`save_to_dir`; ``unigram_encoding`` is the text encoding of
        ``unigrams.txt`` (default UTF-8).

        Raises
        ------
        ValueError
            The directory does not hold exactly the three expected files, or
            ``attrs.json`` does not hold the four attributes.
        """
        files = cls.parse_directory_contents(filepath)
        with open(files["json_attrs"]) as f:
            attrs = json.load(f)
        if not isinstance(attrs, dict) or set(attrs) != set(cls.JSON_ATTRS):
            got = sorted(attrs) if isinstance(attrs, dict) else type(attrs).__name__
            raise ValueError(f"{cls._ATTRS_FILE} must hold {cls.JSON_ATTRS}; got {got}.")
        with open(files["unigrams"], encoding=unigram_encoding or "utf-8") as f:
            unigrams = f.read().splitlines()
        model = load_model(files["kenlm"])
        return cls(model, unigrams, **attrs)

    # copying and pickling
    def recipe(self) -> LMRecipe:
        """What rebuilds this model in another process: the model file (which must be
        readable there, at the same path), the backend, the unigrams and the parameters.

        Raises
        ------
        TypeError
            The wrapped model names no file (a model object built in memory).
        """
        path = _model_path(self._kenlm_model)
        if path is None:
            raise TypeError(
                f"cannot pickle a LanguageModel whose {type(self._kenlm_model).__name__} names "
                "no model file; load the model from a file."
            )
        unigrams = tuple(sorted(self._unigram_set)) if self._have_unigrams else None
        return LMRecipe(
            os.path.abspath(path),
            self.backend,
            unigrams,
            float(self.alpha),
            float(self.beta),
            float(self.unk_score_offset),
            bool(self.score_boundary),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (language_model_from_recipe, (self.recipe(),))

    def __deepcopy__(self, memo: dict[int, Any]) -> LanguageModel:
        # the model file, its tables and the unigram set are never changed after loading:
        # only the parameters are the copy's own
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        memo[id(self)] = new
        return new


class LMRecipe(NamedTuple):
    """What :meth:`LanguageModel.recipe` returns: enough to rebuild the model elsewhere."""

    path: str
    backend: str
    unigrams: tuple[str, ...] | None
    alpha: float
    beta: float
    unk_score_offset: float
    score_boundary: bool


_loaded_lock = threading.Lock()
#: Models loaded by recipes in this process, by (path, backend, size, modification time).
_loaded: dict[tuple[Any, ...], Any] = {}


def _loaded_model(path: str, backend: str) -> Any:
    """The model at ``path``, loaded once per process (and again if the file changed)."""
    st = os.stat(path)
    key = (path, backend, st.st_size, st.st_mtime_ns)
    with _loaded_lock:
        model = _loaded.get(key)
        if model is None:
            model = load_model(path, backend=backend)
            _loaded[key] = model
        return model


def language_model_from_recipe(recipe: LMRecipe) -> LanguageModel:
    """A :class:`LanguageModel` built from :meth:`LanguageModel.recipe` (what unpickling
    calls); the model file is loaded once per process."""
    backend = recipe.backend if recipe.backend == "fastctc" or kenlm_installed() else "fastctc"
    model = _loaded_model(recipe.path, backend)
    return LanguageModel(
        model,
        recipe.unigrams,
        alpha=recipe.alpha,
        beta=recipe.beta,
        unk_score_offset=recipe.unk_score_offset,
        score_boundary=recipe.score_boundary,
    )


def _advise_on_unigrams(given: int, known: int) -> None:
    """Log pyctcdecode's advice on a unigram list: a small one, or one the model mostly
    lacks."""
    if given < 1000:
        logger.warning(
            "Only %d unigrams given: is this a small or an artificial vocabulary?", given
        )
    if given and known / given < 0.1:
        logger.warning(
            "Only %.1f%% of the unigrams are in the model's vocabulary: do the unigram list "
            "and the model belong together?",
            100 * known / given,
        )


def _model_path(kenlm_model: Any) -> str | None:
    path = getattr(kenlm_model, "path", None)
    if isinstance(path, bytes):
        path = path.decode("utf-8", "replace")
    return path if isinstance(path, str) else None


def _ngram_tables(kenlm_model: Any) -> tuple[NgramTables | None, str]:
    """Tables of the model's file (ARPA, or KenLM binary in the trie layout), or ``None``
    and why not (other binaries, or a file this reader cannot mirror exactly: the search then
    asks KenLM). A file that should be readable but is not is also reported by a warning."""
    if isinstance(kenlm_model, NgramModel):
        return kenlm_model.tables, ""
    path = _model_path(kenlm_model)
    if path is None:
        return None, "the model object names no file to read them from"
    if not os.path.isfile(path):
        return None, f"its file {path!r} is not there any more"
    try:
        tables = read_ngram_tables(path)
    except NeedsKenLMError as err:
        return None, f"{err}, which only KenLM reads"
    except ValueError as err:
        why = f"fastctc could not read {path!r} as n-gram tables: {err}"
        warnings.warn(
            f"{why}. Its scores are asked of KenLM during the search, which is slower.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None, why
    if tables.order != int(kenlm_model.order):
        return None, (
            f"the tables read from {path!r} are of order {tables.order}, KenLM's model of "
            f"order {int(kenlm_model.order)}"
        )
    return tables, ""


def _finite_float(value: Any, name: str) -> float:
    """``value`` as a float, when it is a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float; got {type(value).__name__} {value!r}.")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite; got {value!r}.")
    return float(value)


def weighted_score(alpha: float, beta: float, log10_score: float) -> float:
    """pyctcdecode's fusion score of a word from its log10 score (unknown-word offset and
    sentence end included): ``alpha * ln(10) * log10_score + beta``. The one formula of the
    Python side; the kernel's ``ngram_word_score`` computes the same, in the same order."""
    return alpha * log10_score * LOG_BASE_CHANGE_FACTOR + beta


def prefix_table(lm: LanguageModel) -> tuple[np.ndarray, np.ndarray]:
    """Hash set of every non-empty prefix of the model's unigrams (built once per model)."""
    table = getattr(lm, "_prefix_set", None)
    if table is None:
        codes, offsets = encode_strings(sorted(lm._unigram_set))
        pre, _ = hash_strings(codes, offsets, True)
        table = make_set(np.unique(pre))
        lm._prefix_set = table
    return table


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
