"""Former home of :mod:`fastctc.lm.decoder`, kept so that existing imports keep working."""

from .lm.decoder import (
    BeamSearchDecoderCTC,
    OutputBeam,
    OutputBeamBatch,
    SearchAborted,
    build_ctcdecoder,
    warmup_decoder,
)

__all__ = [
    "BeamSearchDecoderCTC",
    "OutputBeam",
    "OutputBeamBatch",
    "SearchAborted",
    "build_ctcdecoder",
    "warmup_decoder",
]
