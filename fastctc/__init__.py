"""fastctc: fast CTC loss, gradient and decoding on CPUs, compiled with Numba."""

from .decode import Hypothesis, greedy_decode, greedy_decode_batch
from .decoder import BeamSearchDecoderCTC, build_ctcdecoder
from .lm import AbstractLanguageModel, LanguageModel
from .loss import ctc_loss
from .metrics import cer, edit_distance, wer
from .ops import log_softmax

__version__ = "0.1.0"

__all__ = [
    "AbstractLanguageModel",
    "BeamSearchDecoderCTC",
    "LanguageModel",
    "build_ctcdecoder",
    "Hypothesis",
    "__version__",
    "cer",
    "ctc_loss",
    "edit_distance",
    "greedy_decode",
    "greedy_decode_batch",
    "log_softmax",
    "wer",
]
