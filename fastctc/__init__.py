"""fastctc: fast CTC loss, gradient and decoding on CPUs, compiled with Numba."""

from . import data  # the bundled language model and example set
from .align import Alignment, TokenSpan, forced_align, merge_tokens
from .beam_stream import BeamStream, PartialResult, feed_streams
from .greedy import Hypothesis, greedy_decode, greedy_decode_batch
from .keras import ctc_decode_keras2 as ctc_decode  # Keras 2 form; fastctc.keras has both
from .lm import AbstractLanguageModel, LanguageModel
from .lm.decoder import BeamSearchDecoderCTC, build_ctcdecoder
from .loss import ctc_loss
from .metrics import cer, edit_distance, wer
from .ops import log_softmax
from .prefix_beam import beam_search, beam_search_batch

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AbstractLanguageModel",
    "Alignment",
    "beam_search",
    "beam_search_batch",
    "BeamStream",
    "BeamSearchDecoderCTC",
    "build_ctcdecoder",
    "cer",
    "ctc_decode",
    "ctc_loss",
    "data",
    "edit_distance",
    "feed_streams",
    "forced_align",
    "greedy_decode",
    "greedy_decode_batch",
    "Hypothesis",
    "LanguageModel",
    "log_softmax",
    "merge_tokens",
    "PartialResult",
    "TokenSpan",
    "wer",
]
