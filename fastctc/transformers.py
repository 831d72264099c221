"""Hugging Face transformers with fastctc's LM decoder instead of pyctcdecode.

Two ways in:

* :class:`Wav2Vec2ProcessorWithLM`, a subclass of transformers' class of that name that holds a
  :class:`fastctc.BeamSearchDecoderCTC`: ``from_pretrained`` loads a model directory or Hub
  repository (``alphabet.json``, ``language_model/`` and the usual processor files) with
  fastctc's decoder; ``decode`` and ``batch_decode`` take transformers' arguments and return
  what transformers returns with pyctcdecode (texts, word offsets and scores alike).
  :func:`use_fastctc` turns an existing processor into one.
* :func:`load_decoder`: the decoder of a model directory or Hub repository alone, to decode a
  model's logits directly (``decoder.decode_batch(None, logits)``), the way to keep LM
  decoding once transformers drops its ``Wav2Vec2ProcessorWithLM`` (announced for v6).

``import fastctc.transformers`` imports neither transformers nor torch; transformers is
imported when :class:`Wav2Vec2ProcessorWithLM` is first used (``import fastctc`` never imports
this module). Neither needs pyctcdecode or kenlm. Tested with transformers 4.57 and 5.25.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .alphabet import UNK_TOKEN, Alphabet
from .defaults import (
    DEFAULT_BEAM_PRUNE_LOGP,
    DEFAULT_BEAM_WIDTH,
    DEFAULT_HOTWORD_WEIGHT,
    DEFAULT_TOKEN_MIN_LOGP,
)
from .lm import LanguageModel, load_model
from .lm.decoder import BeamSearchDecoderCTC

if TYPE_CHECKING:  # pragma: no cover
    import transformers

__all__ = ["Wav2Vec2ProcessorWithLM", "as_fastctc_decoder", "load_decoder", "use_fastctc"]

logger = logging.getLogger("fastctc")

#: The files of a model repository that make its decoder (pyctcdecode's layout).
DECODER_FILES = (
    BeamSearchDecoderCTC._ALPHABET_SERIALIZED_FILENAME,
    BeamSearchDecoderCTC._LANGUAGE_MODEL_SERIALIZED_DIRECTORY + "/*",
)
#: ``from_pretrained`` keyword arguments that go to the Hub (``snapshot_download``).
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")
#: ``from_pretrained`` keyword arguments that set the language model's parameters, with the
#: names ``reset_params`` gives them.
_LM_KWARGS = {
    "alpha": "alpha",
    "beta": "beta",
    "unk_score_offset": "unk_score_offset",
    "score_boundary": "lm_score_boundary",
}
# how transformers' tokenizer vocabulary maps onto the decoder's labels (pyctcdecode's rules)
_BLANK = re.compile(r"^[<\[]pad[>\]]$", flags=re.IGNORECASE)
_UNK = re.compile(r"^[<\[]unk[>\]]$", flags=re.IGNORECASE)


def load_decoder(
    model_dir_or_repo: str | os.PathLike[str],
    *,
    unigram_encoding: str | None = None,
    **hub_kwargs: Any,
) -> BeamSearchDecoderCTC:
    """The LM decoder of a model directory or Hugging Face Hub repository.

    Reads ``alphabet.json`` and ``language_model/`` (the layout transformers' and
    pyctcdecode's ``save_pretrained`` / ``save_to_dir`` write); other files in the directory
    are ignored. Decode the model's raw logits with it: ``decoder.decode(logits)`` for one
    ``(T, V)`` matrix, ``decoder.decode_batch(None, list_of_matrices)`` for many; the decoder
    normalises logits as pyctcdecode does.

    Parameters
    ----------
    model_dir_or_repo : str or path
        A local directory, or a Hub repository id (``"user/model"``), whose ``alphabet.json``
        and ``language_model/`` alone are downloaded (through ``huggingface_hub``).
    unigram_encoding : str, optional
        Text encoding of ``language_model/unigrams.txt`` in a local directory (default UTF-8).
    **hub_kwargs
        For a repository: passed to ``huggingface_hub.snapshot_download`` (``revision``,
        ``cache_dir``, ``local_files_only=True`` to read the cache offline, ``token``, ...).

    Returns
    -------
    BeamSearchDecoderCTC

    Raises
    ------
    ValueError
        The directory holds no ``alphabet.json``, or other files but no ``language_model/``;
        ``model_dir_or_repo`` is a file.
    TypeError
        ``hub_kwargs`` given with a local directory.
    ImportError
        A repository id was given and ``huggingface_hub`` is not installed.

    Examples
    --------
    >>> import tempfile, fastctc
    >>> from fastctc.transformers import load_decoder
    >>> lm = fastctc.data.default_lm()
    >>> with tempfile.TemporaryDirectory() as model_dir:
    ...     fastctc.build_ctcdecoder(lm.labels, lm.path, lm.unigrams).save_to_dir(model_dir)
    ...     decoder = load_decoder(model_dir)
    >>> decoder.decode(fastctc.data.demo().log_probs[1])
    'i only know what i read in the papers'
    """
    path = os.fspath(model_dir_or_repo)
    if os.path.isdir(path):
        if hub_kwargs:
            raise TypeError(
                f"{path!r} is a local directory; hub_kwargs {sorted(hub_kwargs)} apply to Hub "
                "repositories only."
            )
        return BeamSearchDecoderCTC.load_from_dir(path, unigram_encoding)
    if os.path.exists(path):
        raise ValueError(f"{path!r} is a file; give the model directory that holds it.")
    hub_kwargs.setdefault("allow_patterns", list(DECODER_FILES))
    return BeamSearchDecoderCTC.load_from_hf_hub(path, **hub_kwargs)


def use_fastctc(processor: Any, decoder: Any = None) -> Any:
    """A :class:`Wav2Vec2ProcessorWithLM` decoding with fastctc, made from ``processor``.

    Parameters
    ----------
    processor : transformers.Wav2Vec2ProcessorWithLM or transformers.Wav2Vec2Processor
        Its feature extractor and tokenizer are used as they are (shared, not copied). A
        processor with a pyctcdecode decoder keeps its labels, model file, unigrams and
        parameters (``alpha``, ``beta``, ``unk_score_offset``, ``score_boundary``).
    decoder : BeamSearchDecoderCTC, optional
        fastctc's (or pyctcdecode's) decoder to use instead of the processor's own, e.g. to
        add a language model to a ``Wav2Vec2Processor``.

    Returns
    -------
    fastctc.transformers.Wav2Vec2ProcessorWithLM

    Raises
    ------
    TypeError
        ``processor`` has no feature extractor and tokenizer, or neither it nor ``decoder``
        gives a decoder.
    ImportError
        transformers is not installed (or no longer has ``Wav2Vec2ProcessorWithLM``).

    Examples
    --------
    >>> from fastctc.transformers import use_fastctc
    >>> processor = use_fastctc(processor)  # doctest: +SKIP
    >>> processor.batch_decode(logits).text  # doctest: +SKIP
    """
    if not (hasattr(processor, "feature_extractor") and hasattr(processor, "tokenizer")):
        raise TypeError(
            "processor must be a transformers processor with a feature_extractor and a "
            f"tokenizer (a Wav2Vec2ProcessorWithLM or Wav2Vec2Processor); got "
            f"{type(processor).__name__}."
        )
    if decoder is None:
        decoder = getattr(processor, "decoder", None)
        if decoder is None:
            raise TypeError(
                f"{type(processor).__name__} has no decoder; pass one, e.g. "
                "use_fastctc(processor, decoder=fastctc.build_ctcdecoder(labels, model_path))."
            )
    cls = _processor_class()
    return cls(processor.feature_extractor, processor.tokenizer, decoder)


def as_fastctc_decoder(decoder: Any) -> BeamSearchDecoderCTC:
    """fastctc's decoder for ``decoder``: itself if it is one, else (a pyctcdecode
    ``BeamSearchDecoderCTC``) a fastctc decoder with its labels, model file, unigrams and
    parameters. pyctcdecode's decoder is only read, never imported.

    Raises
    ------
    TypeError
        ``decoder`` is neither, or a pyctcdecode decoder whose language model is not its
        KenLM ``LanguageModel`` (a custom or multi-model one).
    """
    if isinstance(decoder, BeamSearchDecoderCTC):
        return decoder
    if not type(decoder).__module__.startswith("pyctcdecode"):
        raise TypeError(
            "decoder must be a fastctc.BeamSearchDecoderCTC (fastctc.build_ctcdecoder) or "
            f"pyctcdecode's; got {type(decoder).__module__}.{type(decoder).__qualname__}."
        )
    alphabet = Alphabet.loads(decoder._alphabet.dumps())
    lm = decoder._language_model
    if lm is None:
        return BeamSearchDecoderCTC(alphabet)
    kenlm_model = getattr(lm, "_kenlm_model", None)
    if kenlm_model is None or type(lm).__name__ != "LanguageModel":
        raise TypeError(
            f"cannot convert pyctcdecode's {type(lm).__name__}: only its KenLM LanguageModel "
            "is supported. Build the decoder with fastctc.build_ctcdecoder instead."
        )
    unigrams = sorted(lm._unigram_set) if lm._char_trie is not None else None
    model = LanguageModel(
        load_model(os.fsdecode(kenlm_model.path)),
        unigrams,
        alpha=lm.alpha,
        beta=lm.beta,
        unk_score_offset=lm.unk_score_offset,
        score_boundary=lm.score_boundary,
    )
    return BeamSearchDecoderCTC(alphabet, model)


def _as_numpy(x: Any) -> np.ndarray:
    """``x`` as an array; torch tensors are detached and moved to the CPU (half precision
    widened to float32)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if x.is_floating_point() and x.element_size() < 4:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _hypotheses(
    beams: Sequence[Any], frames_at: int, n_best: int, word_offsets: bool
) -> tuple[Any, Any, Any, Any]:
    """``(text, logit_score, lm_score, word_offsets)`` of one utterance's beams (its word
    frames at ``beams[i][frames_at]``): the best beam's values when ``n_best == 1``, else
    lists of the first ``n_best``; ``word_offsets`` is None unless asked for."""

    def pick(values: list[Any]) -> Any:
        return values[0] if n_best == 1 else values[:n_best]

    offsets = pick([_word_offsets(b[frames_at]) for b in beams]) if word_offsets else None
    return (
        pick([b[0] for b in beams]),
        pick([b[-2] for b in beams]),
        pick([b[-1] for b in beams]),
        offsets,
    )


def _word_offsets(text_frames: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {"word": word, "start_offset": start, "end_offset": end}
        for word, (start, end) in text_frames
    ]


@functools.cache
def _processor_class() -> type:
    """The :class:`Wav2Vec2ProcessorWithLM` class, made on first use (it imports
    transformers).

    Raises
    ------
    ImportError
        transformers is not installed, or has no ``Wav2Vec2ProcessorWithLM`` (v6 and later:
        use :func:`load_decoder`).
    """
    try:
        import transformers
        from transformers.models.wav2vec2_with_lm import processing_wav2vec2_with_lm as hf
    except ImportError as err:
        raise ImportError(
            "fastctc.transformers.Wav2Vec2ProcessorWithLM needs transformers (4.x or 5.x): "
            "pip install transformers. To decode without it, use "
            "fastctc.transformers.load_decoder."
        ) from err
    return _make_processor_class(transformers, hf)


def _make_processor_class(transformers: Any, hf: Any) -> type:
    base = hf.Wav2Vec2ProcessorWithLM
    output_class = hf.Wav2Vec2DecoderWithLMOutput
    mixin = transformers.ProcessorMixin
    # transformers 4.x switches __call__ and pad to the tokenizer inside as_target_processor
    target_context = hasattr(base, "as_target_processor")

    class Wav2Vec2ProcessorWithLM(base):  # type: ignore[misc, valid-type]
        """transformers' ``Wav2Vec2ProcessorWithLM`` with fastctc's LM decoder.

        A feature extractor, a ``Wav2Vec2CTCTokenizer`` and a
        :class:`fastctc.BeamSearchDecoderCTC` (a pyctcdecode decoder is converted, see
        :func:`use_fastctc`). Same methods, arguments and results as transformers' class with
        pyctcdecode: ``decode``, ``batch_decode`` (with ``output_word_offsets``, ``n_best``,
        hotwords, ``alpha``/``beta`` overrides, which stay set as in pyctcdecode),
        ``save_pretrained`` and ``from_pretrained``, and ``processor.decoder`` for the ASR
        pipeline (``pipeline(..., decoder=processor.decoder)``). Needs neither pyctcdecode nor
        kenlm. ``batch_decode`` runs on fastctc's threads: ``pool`` is ignored and
        ``num_processes`` is the number of threads (default: every core).

        Parameters
        ----------
        feature_extractor : Wav2Vec2FeatureExtractor or SeamlessM4TFeatureExtractor
        tokenizer : Wav2Vec2CTCTokenizer
        decoder : fastctc.BeamSearchDecoderCTC
            Its labels must cover the tokenizer's vocabulary.

        Raises
        ------
        TypeError
            ``decoder`` is not a decoder (or the feature extractor or tokenizer has the wrong
            type, as transformers checks).
        ValueError
            The feature extractor is not a ``Wav2Vec2FeatureExtractor`` or
            ``SeamlessM4TFeatureExtractor``, or the tokenizer has tokens the decoder lacks.
        """

        def __init__(self, feature_extractor: Any, tokenizer: Any, decoder: Any) -> None:
            # transformers' __init__ checks isinstance against pyctcdecode's class (importing
            # pyctcdecode): run the checks here instead, then ProcessorMixin's own
            decoder = as_fastctc_decoder(decoder)
            mixin.__init__(self, feature_extractor, tokenizer)
            name = type(feature_extractor).__name__
            if name not in ("Wav2Vec2FeatureExtractor", "SeamlessM4TFeatureExtractor"):
                raise ValueError(
                    "`feature_extractor` has to be of type `Wav2Vec2FeatureExtractor` or "
                    f"`SeamlessM4TFeatureExtractor`, but is {type(feature_extractor)}"
                )
            missing = self.get_missing_alphabet_tokens(decoder, tokenizer)
            if missing:
                raise ValueError(
                    f"The tokens {missing} are defined in the tokenizer's vocabulary, but not in "
                    f"the decoder's alphabet. Make sure to include {missing} in the decoder's "
                    "alphabet."
                )
            self.decoder = decoder
            if target_context:
                self.current_processor = self.feature_extractor
                self._in_target_context_manager = False

        @classmethod
        def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
            """Load a processor saved by ``save_pretrained`` (a directory, or a Hub
            repository id) with fastctc's decoder.

            ``alpha``, ``beta``, ``unk_score_offset`` and ``score_boundary`` override the
            saved LM parameters; ``unigram_encoding`` is the encoding of a local
            ``unigrams.txt`` (default UTF-8); the other keyword arguments go to the feature
            extractor's and tokenizer's ``from_pretrained`` (and ``cache_dir``,
            ``revision``, ``token``, ``force_download``, ``local_files_only`` to the Hub).
            """
            from transformers import AutoFeatureExtractor, Wav2Vec2CTCTokenizer

            lm_params = {
                _LM_KWARGS[k]: kwargs.pop(k) for k in list(_LM_KWARGS) if kwargs.get(k) is not None
            }
            unigram_encoding = kwargs.pop("unigram_encoding", "utf-8")
            for k in ("_from_auto", "trust_remote_code", *_LM_KWARGS):
                kwargs.pop(k, None)
            path = os.fspath(pretrained_model_name_or_path)
            feature_extractor = AutoFeatureExtractor.from_pretrained(path, **kwargs)
            tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(path, **kwargs)
            if os.path.isfile(path):
                path = os.path.dirname(path)
            if os.path.isdir(path):
                decoder = load_decoder(path, unigram_encoding=unigram_encoding)
            else:
                hub = {k: kwargs[k] for k in _HUB_KWARGS if kwargs.get(k) is not None}
                decoder = load_decoder(path, **hub)
            if lm_params:
                decoder.reset_params(**lm_params)
            return cls(feature_extractor=feature_extractor, tokenizer=tokenizer, decoder=decoder)

        @staticmethod
        def _set_language_model_attribute(decoder: Any, attribute: str, value: float) -> None:
            decoder.reset_params(**{_LM_KWARGS[attribute]: value})

        @property
        def language_model(self) -> Any:
            """The decoder's language model (``None`` without one)."""
            return self.decoder.language_model

        @staticmethod
        def get_missing_alphabet_tokens(decoder: Any, tokenizer: Any) -> set[str]:
            """Tokens of the tokenizer's vocabulary (its padding token as the blank, its word
            delimiter as the space, its unknown token as ``⁇``) missing from the decoder's
            labels."""
            tokens = set()
            for token in tokenizer.get_vocab():
                if _BLANK.match(token):
                    token = ""
                if token == tokenizer.word_delimiter_token:
                    token = " "
                if _UNK.match(token):
                    token = UNK_TOKEN
                tokens.add(token)
            return tokens - set(decoder.labels)

        def to_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            # transformers deep-copies every attribute and then drops the decoder's copy:
            # leave the decoder out from the start
            clone = copy.copy(self)
            clone.__dict__.pop("decoder", None)
            return super(Wav2Vec2ProcessorWithLM, clone).to_dict(*args, **kwargs)

        def _search_kwargs(
            self,
            beam_width: int | None,
            beam_prune_logp: float | None,
            token_min_logp: float | None,
            hotwords: Iterable[str] | None,
            hotword_weight: float | None,
            lm_params: dict[str, Any],
        ) -> dict[str, Any]:
            # as transformers: LM parameters given are set on the decoder and stay set
            params = {k: v for k, v in lm_params.items() if v is not None}
            if params:
                self.decoder.reset_params(**params)
            return {
                "beam_width": DEFAULT_BEAM_WIDTH if beam_width is None else beam_width,
                "beam_prune_logp": (
                    DEFAULT_BEAM_PRUNE_LOGP if beam_prune_logp is None else beam_prune_logp
                ),
                "token_min_logp": (
                    DEFAULT_TOKEN_MIN_LOGP if token_min_logp is None else token_min_logp
                ),
                "hotwords": hotwords,
                "hotword_weight": (
                    DEFAULT_HOTWORD_WEIGHT if hotword_weight is None else hotword_weight
                ),
            }

        def batch_decode(
            self,
            logits: Any,
            pool: Any = None,
            num_processes: int | None = None,
            beam_width: int | None = None,
            beam_prune_logp: float | None = None,
            token_min_logp: float | None = None,
            hotwords: Iterable[str] | None = None,
            hotword_weight: float | None = None,
            alpha: float | None = None,
            beta: float | None = None,
            unk_score_offset: float | None = None,
            lm_score_boundary: bool | None = None,
            output_word_offsets: bool = False,
            n_best: int = 1,
        ) -> Any:
            """Decode a batch of logits ``(B, T, V)`` (rows of -100 are padding and are
            dropped), as transformers' ``batch_decode``: ``Wav2Vec2DecoderWithLMOutput`` with
            ``text``, ``logit_score``, ``lm_score`` and, with ``output_word_offsets``,
            ``word_offsets`` (lists of lists with ``n_best > 1``). Raw logits,
            probabilities or log-probabilities, normalised as pyctcdecode does. ``pool`` is
            ignored; ``num_processes`` threads decode (default: every core)."""
            search = self._search_kwargs(
                beam_width,
                beam_prune_logp,
                token_min_logp,
                hotwords,
                hotword_weight,
                {
                    "alpha": alpha,
                    "beta": beta,
                    "unk_score_offset": unk_score_offset,
                    "lm_score_boundary": lm_score_boundary,
                },
            )
            logits_list = []
            for array in logits:
                array = _as_numpy(array)
                logits_list.append(array[(array != -100.0).all(axis=-1)])
            decoded = self.decoder.decode_beams_batch(
                None, logits_list, num_threads=num_processes, **search
            )
            hyps = [_hypotheses(b, 1, n_best, output_word_offsets) for b in decoded]
            return output_class(
                text=[h[0] for h in hyps],
                logit_score=[h[1] for h in hyps],
                lm_score=[h[2] for h in hyps],
                word_offsets=[h[3] for h in hyps] if output_word_offsets else None,
            )

        def decode(
            self,
            logits: Any,
            beam_width: int | None = None,
            beam_prune_logp: float | None = None,
            token_min_logp: float | None = None,
            hotwords: Iterable[str] | None = None,
            hotword_weight: float | None = None,
            alpha: float | None = None,
            beta: float | None = None,
            unk_score_offset: float | None = None,
            lm_score_boundary: bool | None = None,
            output_word_offsets: bool = False,
            n_best: int = 1,
        ) -> Any:
            """Decode one utterance's logits ``(T, V)``, as transformers' ``decode``:
            ``Wav2Vec2DecoderWithLMOutput`` with ``text``, ``logit_score``, ``lm_score`` and,
            with ``output_word_offsets``, ``word_offsets`` (lists with ``n_best > 1``)."""
            search = self._search_kwargs(
                beam_width,
                beam_prune_logp,
                token_min_logp,
                hotwords,
                hotword_weight,
                {
                    "alpha": alpha,
                    "beta": beta,
                    "unk_score_offset": unk_score_offset,
                    "lm_score_boundary": lm_score_boundary,
                },
            )
            beams = self.decoder.decode_beams(_as_numpy(logits), **search)
            if n_best > len(beams):
                logger.info(
                    "n_best=%d is larger than the number of hypotheses (%d): all are returned.",
                    n_best,
                    len(beams),
                )
            text, logit_score, lm_score, offsets = _hypotheses(
                beams, 2, n_best, output_word_offsets
            )
            return output_class(
                text=text, logit_score=logit_score, lm_score=lm_score, word_offsets=offsets
            )

    # pickle finds the class through the module's __getattr__
    Wav2Vec2ProcessorWithLM.__module__ = __name__
    Wav2Vec2ProcessorWithLM.__qualname__ = "Wav2Vec2ProcessorWithLM"
    return Wav2Vec2ProcessorWithLM


def __getattr__(name: str) -> Any:
    if name == "Wav2Vec2ProcessorWithLM":
        return _processor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    Wav2Vec2ProcessorWithLM = transformers.Wav2Vec2ProcessorWithLM
