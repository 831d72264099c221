"""Grid search of the LM weight ``alpha`` and word bonus ``beta`` (and, for a decoder in the
lexicon mode, its ``unk_score``, ``sil_score`` and ``log_add``) on a dev set with references.

One decoder is reused for every grid point: :meth:`reset_params` changes its weights without
reloading the model, and each setting decodes the whole dev set with ``decode_batch`` on all
cores. The best setting (lowest WER, ties broken by CER, then by the smaller ``|alpha|``) is
saved as JSON that ``build_ctcdecoder(**load_params(path))`` and ``fastctc decode --params``
take.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy.typing as npt

from .defaults import DEFAULT_BEAM_PRUNE_LOGP, DEFAULT_BEAM_WIDTH, DEFAULT_TOKEN_MIN_LOGP
from .metrics import cer, wer

__all__ = ["GridPoint", "TuneResult", "load_params", "tune"]


class GridPoint(NamedTuple):
    """One decoded setting: corpus WER and CER (fractions) and decoding time in seconds; the
    lexicon mode's scores are ``None`` for a decoder without a lexicon."""

    alpha: float
    beta: float
    wer: float
    cer: float
    seconds: float
    unk_score: float | None = None
    sil_score: float | None = None
    log_add: bool | None = None

    def params(self) -> dict[str, Any]:
        """The setting as keyword arguments of ``build_ctcdecoder`` and ``reset_params``."""
        out: dict[str, Any] = {"alpha": self.alpha, "beta": self.beta}
        for name in _LEXICON_FIELDS:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


_LEXICON_FIELDS = ("unk_score", "sil_score", "log_add")


class TuneResult(NamedTuple):
    """The result of :func:`tune`: every grid point in grid order, and the best one."""

    grid: list[GridPoint]
    best: GridPoint
    beam_width: int

    @property
    def alpha(self) -> float:
        """The best setting's LM weight."""
        return self.best.alpha

    @property
    def beta(self) -> float:
        """The best setting's word insertion bonus."""
        return self.best.beta

    def to_dict(self) -> dict[str, Any]:
        """The best setting, its rates and the whole grid, as written by :meth:`save`."""
        return {
            **self.best.params(),
            "beam_width": self.beam_width,
            "wer": self.best.wer,
            "cer": self.best.cer,
            "grid": [p._asdict() for p in self.grid],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON; :func:`load_params` reads it back."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1)
            fh.write("\n")

    def table(self) -> str:
        """The grid as a text table, the best row marked with ``*``."""
        lex = self.best.log_add is not None
        head = f"{'alpha':>8} {'beta':>8}"
        if lex:
            head += f" {'unk':>8} {'sil':>8} {'log_add':>7}"
        lines = [head + f" {'WER':>8} {'CER':>8} {'seconds':>8}"]
        for p in self.grid:
            mark = " *" if p == self.best else ""
            row = f"{p.alpha:8g} {p.beta:8g}"
            if lex:
                row += f" {p.unk_score:8g} {p.sil_score:8g} {p.log_add!s:>7}"
            lines.append(row + f" {100 * p.wer:7.2f}% {100 * p.cer:7.2f}% {p.seconds:8.2f}{mark}")
        return "\n".join(lines)


def _grid(values: Sequence[float], name: str, finite: bool = True) -> list[float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(
            f"{name} must be a sequence of numbers; got {type(values).__name__} {values!r}."
        )
    out = []
    for i, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "__float__"):
            raise TypeError(f"{name}[{i}] must be a number; got {type(x).__name__} {x!r}.")
        f = float(x)
        if math.isnan(f) or f == math.inf or (finite and not math.isfinite(f)):
            raise ValueError(f"{name}[{i}] must be finite; got {f}.")
        out.append(f)
    if not out:
        raise ValueError(f"{name} must hold at least one value; got an empty grid.")
    return list(dict.fromkeys(out))  # repeats decoded once


def _key(p: GridPoint) -> tuple[float, float, float]:
    return (p.wer, p.cer, abs(p.alpha))


def _key_cer(p: GridPoint) -> tuple[float, float, float]:
    return (p.cer, p.wer, abs(p.alpha))


def tune(
    decoder: Any,
    log_probs: Sequence[npt.ArrayLike],
    references: Sequence[str],
    alphas: Sequence[float],
    betas: Sequence[float],
    *,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    num_threads: int | None = None,
    metric: str = "wer",
    unk_scores: Sequence[float] | None = None,
    sil_scores: Sequence[float] | None = None,
    log_adds: Sequence[bool] | None = None,
    beam_prune_logp: float = DEFAULT_BEAM_PRUNE_LOGP,
    token_min_logp: float = DEFAULT_TOKEN_MIN_LOGP,
) -> TuneResult:
    """Decode a dev set at every ``(alpha, beta)`` of a grid and pick the best setting.

    Parameters
    ----------
    decoder : BeamSearchDecoderCTC
        A decoder with a language model (:func:`fastctc.build_ctcdecoder`). Its parameters
        are changed with ``reset_params`` during the search and restored at the end.
    log_probs : sequence of array_like of shape (T, C)
        The dev utterances, as ``decode_batch`` takes them.
    references : sequence of str
        One reference transcript per utterance.
    alphas, betas : sequence of float
        The grid: every ``alpha`` with every ``beta`` (finite; repeats are decoded once).
    beam_width : int
        Beam width of every decode.
    num_threads : int, optional
        Decoding threads (default: all cores).
    metric : {"wer", "cer"}
        What the best setting minimises first; the other rate breaks ties, then the
        smaller ``|alpha|``.
    unk_scores, sil_scores, log_adds : sequence, optional
        For a decoder in the lexicon mode, grids of its scores (default: the decoder's
        current value only); ``unk_scores`` may hold ``-inf``. The grid is the product of
        all five.
    beam_prune_logp, token_min_logp : float
        As ``decode_batch`` takes them.

    Returns
    -------
    TuneResult
        ``grid`` (alpha-major, one :class:`GridPoint` each), ``best`` and ``beam_width``.

    Raises
    ------
    TypeError
        A reference is not a str, or a grid value not a number.
    ValueError
        Lengths differ, the dev set or a grid is empty, a grid value is not finite, the
        decoder has no language model, or lexicon scores are given for a decoder without a
        lexicon.

    Examples
    --------
    >>> import fastctc
    >>> from fastctc.tune import tune
    >>> lm, demo = fastctc.data.default_lm(), fastctc.data.demo()
    >>> dec = fastctc.build_ctcdecoder(lm.labels, kenlm_model_path=lm.path, unigrams=lm.unigrams)
    >>> res = tune(dec, demo.log_probs[:4], demo.transcripts[:4], [0.5], [1.0], beam_width=16)
    >>> (res.alpha, res.beta)
    (0.5, 1.0)
    """
    lm = getattr(decoder, "language_model", None)
    if lm is None:
        raise ValueError(
            "decoder has no language model; alpha and beta only matter with one. "
            "Build it with build_ctcdecoder(labels, kenlm_model_path=...)."
        )
    if metric not in ("wer", "cer"):
        raise ValueError(f"metric must be 'wer' or 'cer'; got {metric!r}.")
    lps = list(log_probs)
    if isinstance(references, str):
        raise TypeError("references must be a sequence of str, one per utterance; got a str.")
    refs = list(references)
    for i, r in enumerate(refs):
        if not isinstance(r, str):
            raise TypeError(f"references[{i}] must be a str; got {type(r).__name__}.")
    if len(lps) != len(refs):
        raise ValueError(
            f"log_probs and references must have the same length; got {len(lps)} "
            f"utterances and {len(refs)} references."
        )
    if not lps:
        raise ValueError("log_probs is empty; tuning needs at least one dev utterance.")
    a_grid, b_grid = _grid(alphas, "alphas"), _grid(betas, "betas")
    lex_grids = _lexicon_grids(decoder, unk_scores, sil_scores, log_adds)
    refs = [" ".join(r.split()) for r in refs]
    saved = {"alpha": lm.alpha, "beta": lm.beta}
    if lex_grids:
        saved.update(decoder.lexicon_options._asdict())
    grid: list[GridPoint] = []
    try:
        for a in a_grid:
            for b in b_grid:
                for lex in itertools.product(*lex_grids):
                    extra = dict(zip(_LEXICON_FIELDS[: len(lex)], lex, strict=True))
                    decoder.reset_params(alpha=a, beta=b, **extra)
                    t0 = time.perf_counter()
                    hyps = decoder.decode_batch(
                        None,
                        lps,
                        beam_width=beam_width,
                        beam_prune_logp=beam_prune_logp,
                        token_min_logp=token_min_logp,
                        num_threads=num_threads,
                    )
                    seconds = time.perf_counter() - t0
                    hyps = [" ".join(h.split()) for h in hyps]
                    grid.append(GridPoint(a, b, wer(refs, hyps), cer(refs, hyps), seconds, **extra))
    finally:
        decoder.reset_params(**saved)
    best = min(grid, key=_key if metric == "wer" else _key_cer)
    return TuneResult(grid, best, int(beam_width))


def _lexicon_grids(
    decoder: Any,
    unk_scores: Sequence[float] | None,
    sil_scores: Sequence[float] | None,
    log_adds: Sequence[bool] | None,
) -> list[list[Any]]:
    """The grids of the lexicon mode's scores (none without a lexicon)."""
    given = {"unk_scores": unk_scores, "sil_scores": sil_scores, "log_adds": log_adds}
    if getattr(decoder, "lexicon", None) is None:
        named = [k for k, x in given.items() if x is not None]
        if named:
            raise ValueError(
                f"{', '.join(named)} tune the lexicon mode, and this decoder has no lexicon; "
                "build it with build_ctcdecoder(..., lexicon=True)."
            )
        return []
    opts = decoder.lexicon_options
    out: list[list[Any]] = [
        _grid(unk_scores, "unk_scores", finite=False)
        if unk_scores is not None
        else [opts.unk_score],
        _grid(sil_scores, "sil_scores") if sil_scores is not None else [opts.sil_score],
    ]
    if log_adds is None:
        out.append([opts.log_add])
    else:
        flags = list(log_adds) if not isinstance(log_adds, (str, bytes)) else [log_adds]
        for i, x in enumerate(flags):
            if not isinstance(x, bool):
                raise TypeError(f"log_adds[{i}] must be True or False; got {x!r}.")
        if not flags:
            raise ValueError("log_adds must hold at least one value; got an empty grid.")
        out.append(list(dict.fromkeys(flags)))
    return out


def load_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"alpha": ..., "beta": ...}`` (and the lexicon mode's ``unk_score``,
    ``sil_score`` and ``log_add`` when the file has them) from a file written by
    :meth:`TuneResult.save`.

    The result goes straight into ``build_ctcdecoder(labels, kenlm_model_path=...,
    **load_params(path))`` or ``decoder.reset_params(**load_params(path))``.

    Raises
    ------
    ValueError
        The file is not JSON, lacks a finite ``alpha`` or ``beta``, or has a lexicon score
        of the wrong kind.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)} is not a JSON parameter file: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{os.fspath(path)} must hold a JSON object with alpha and beta; "
            f"got a {type(data).__name__}."
        )
    out = {}
    for name in ("alpha", "beta"):
        x = data.get(name)
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise ValueError(f"{os.fspath(path)}: {name} must be a finite number; got {x!r}.")
        out[name] = float(x)
    for name in ("unk_score", "sil_score"):
        x = data.get(name)
        if x is None:
            continue
        if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x) or x == math.inf:
            raise ValueError(f"{os.fspath(path)}: {name} must be a number below +inf; got {x!r}.")
        out[name] = float(x)
    if data.get("log_add") is not None:
        if not isinstance(data["log_add"], bool):
            raise ValueError(
                f"{os.fspath(path)}: log_add must be true or false; got {data['log_add']!r}."
            )
        out["log_add"] = data["log_add"]
    return out
