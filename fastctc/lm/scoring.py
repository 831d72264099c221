"""How the LM beam search gets its word scores, decided in one place.

A decoder's scores come one of four ways (:attr:`ScorePath.name`):

``"none"``
    No language model: only hotwords score words.
``"ngram"``
    A :class:`~fastctc.lm.models.LanguageModel` whose file fastctc read as n-gram tables
    (ARPA files, KenLM trie binaries): the kernel computes every word score itself, bit for
    bit equal to KenLM's, and no Python runs during the search.
``"callback"``
    Scores are cached per decoder (:class:`~fastctc.lm.tables.KernelTables`); the kernel
    asks for the missing ones through a C callback that takes the GIL only for them
    (:mod:`fastctc.lm.queries`). Used for KenLM hash-table binaries, models whose file
    fastctc cannot read, custom :class:`~fastctc.lm.models.AbstractLanguageModel` objects
    (which also score word parts), and searches started from ``lm_start_state`` (the n-gram
    path reads each word's context from the beam's own words).
``"resume"``
    The same cache, but the kernel returns its queries and the search is resumed after the
    caller answers them: no callback from compiled code. Same results, a little slower.

:func:`choose` makes the choice from the model, the decoder's ``lm_scoring`` argument
(``"auto"`` or one of the paths) and whether the search starts from a given state;
:func:`kernel_modes` turns it into the kernel's switches. Nothing else decides.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ..defaults import LOG10_TO_LN
from ..kernels import lm_state as ks
from .models import LanguageModel, model_name

#: Values of the decoder's ``lm_scoring`` argument.
LM_SCORING = ("auto", "ngram", "callback", "resume")


class ScorePath(NamedTuple):
    """How a decoder's searches get LM scores: ``name`` (``"none"``, ``"ngram"``,
    ``"callback"`` or ``"resume"``) and ``reason``, a sentence saying why."""

    name: str
    reason: str


def check_lm_scoring(value: Any) -> str:
    """``value`` if it is one of :data:`LM_SCORING`, else ``ValueError``."""
    if not isinstance(value, str) or value not in LM_SCORING:
        raise ValueError(f"lm_scoring must be one of {LM_SCORING}; got {value!r}.")
    return value


def choose(lm: Any, requested: str = "auto", from_state: bool = False) -> ScorePath:
    """The score path of a search with language model ``lm`` (``None``: none).

    ``requested`` is the decoder's ``lm_scoring``; ``from_state`` whether the search starts
    from an ``lm_start_state``.

    Raises
    ------
    ValueError
        ``requested="ngram"`` for a model or a search that cannot be scored from n-gram
        tables (the message says why).
    """
    if lm is None:
        return ScorePath("none", "no language model")
    tables_why = _why_not_ngram(lm, from_state)
    if requested == "ngram" and tables_why:
        raise ValueError(f"lm_scoring='ngram' is not possible: {tables_why}.")
    if requested == "resume":
        return ScorePath(
            "resume", "lm_scoring='resume': scores are cached, the search returns for missing ones"
        )
    if requested == "callback":
        return ScorePath("callback", "lm_scoring='callback': scores are cached, asked by callback")
    if not tables_why:
        why = f"{model_name(lm)} was read as n-gram tables; the kernel scores every word"
        return ScorePath("ngram", why)
    return ScorePath("callback", f"{tables_why}; scores are cached and asked by callback")


def _why_not_ngram(lm: Any, from_state: bool) -> str:
    """Why a search with ``lm`` cannot be scored from n-gram tables ('' when it can)."""
    if not isinstance(lm, LanguageModel):
        return f"{model_name(lm)} is a custom model (not a LanguageModel)"
    if lm.ngram_tables is None:
        return f"{model_name(lm)} has no n-gram tables ({lm.ngram_tables_missing})"
    if from_state:
        return (
            "the search starts from lm_start_state, an LM state the n-gram path cannot start "
            "from (it reads a word's context from the words of the beam)"
        )
    return ""


class KernelModes(NamedTuple):
    """The kernel's switches for one search (fields of ``SearchParams``)."""

    score_path: int
    partial_mode: int
    can_bound: bool
    alpha_ln10: float
    beta: float


def kernel_modes(path: ScorePath, lm: Any) -> KernelModes:
    """The kernel's switches for score path ``path`` with model ``lm``.

    On the cache paths a :class:`LanguageModel`'s word scores are bounded from above
    (``alpha * ln 10 * (0.5 + oov offset) + beta``, for ``alpha >= 0``), so that hopeless
    completions are dropped without a query; a custom model's are not.
    """
    if path.name == "none":
        return KernelModes(ks.SP_NONE, ks.PARTIAL_NONE, False, math.nan, 0.0)
    native = isinstance(lm, LanguageModel)
    partial = ks.PARTIAL_UNIGRAMS if native else ks.PARTIAL_QUERY
    if path.name == "ngram":
        return KernelModes(ks.SP_NGRAM, partial, False, math.nan, 0.0)
    can_bound = native and lm.alpha >= 0
    alpha_ln10 = float(lm.alpha) * LOG10_TO_LN if can_bound else math.nan
    beta = float(lm.beta) if can_bound else 0.0
    return KernelModes(ks.SP_CACHE, partial, can_bound, alpha_ln10, beta)
