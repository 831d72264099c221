"""Former home of :mod:`fastctc.lm.decoder`, kept so that existing imports keep working."""

from .lm.decoder import (
    DEFAULT_BEAM_WIDTH,
    DEFAULT_HOTWORD_WEIGHT,
    DEFAULT_MIN_TOKEN_LOGP,
    DEFAULT_PRUNE_BEAMS,
    DEFAULT_PRUNE_LOGP,
    MIN_TOKEN_LOGP_CLIP,
    BeamSearchDecoderCTC,
    OutputBeam,
    OutputBeamBatch,
    SearchAborted,
    build_ctcdecoder,
    warmup_decoder,
)

__all__ = [
    "DEFAULT_BEAM_WIDTH",
    "DEFAULT_HOTWORD_WEIGHT",
    "DEFAULT_MIN_TOKEN_LOGP",
    "DEFAULT_PRUNE_BEAMS",
    "DEFAULT_PRUNE_LOGP",
    "MIN_TOKEN_LOGP_CLIP",
    "BeamSearchDecoderCTC",
    "OutputBeam",
    "OutputBeamBatch",
    "SearchAborted",
    "build_ctcdecoder",
    "warmup_decoder",
]
