"""Defaults and constants shared by the searches, the command line and the kernels.

One home for them, so that greedy decoding, the prefix beam search, the LM beam search and
the ``fastctc`` command cannot drift apart. The values of the LM search are pyctcdecode
0.5.0's.
"""

import math

#: Beams kept per frame (prefix beam search and LM beam search).
DEFAULT_BEAM_WIDTH = 100
#: Beams scoring below ``best + DEFAULT_BEAM_PRUNE_LOGP`` are dropped.
DEFAULT_BEAM_PRUNE_LOGP = -10.0
#: Labels below this log-probability are not tried (the frame's best always is).
DEFAULT_TOKEN_MIN_LOGP = -5.0
#: Keep only the best beam per (last words, word part, last label) in ``decode_beams``.
DEFAULT_PRUNE_BEAMS = False
#: Score added per hotword.
DEFAULT_HOTWORD_WEIGHT = 10.0

#: LM weight, word bonus, unknown-word offset (log10) and sentence-boundary scoring.
DEFAULT_ALPHA = 0.5
DEFAULT_BETA = 1.5
DEFAULT_UNK_LOGP_OFFSET = -10.0
DEFAULT_SCORE_LM_BOUNDARY = True
#: Word parts longer than this many characters get a proportionally larger unknown-part
#: penalty (pyctcdecode's partial-word score).
AVG_TOKEN_LEN = 6

#: Floor of the log-probabilities the LM decoder reads (as pyctcdecode): log(1e-15).
MIN_TOKEN_LOGP_CLIP = math.log(1e-15)
#: KenLM's log10 scores to natural logs (the factor pyctcdecode multiplies by); the kernel
#: and the Python scoring use this one value, so their scores agree to the last bit.
LOG10_TO_LN = 1.0 / math.log10(math.e)

#: The lexicon mode's scores (:class:`fastctc.lm.lexicon.LexiconOptions`): per
#: out-of-lexicon word (-inf: none allowed), per delimiter between words, and whether merged
#: paths add their probabilities.
DEFAULT_LEXICON_UNK_SCORE = float("-inf")
DEFAULT_LEXICON_SIL_SCORE = 0.0
DEFAULT_LEXICON_LOG_ADD = False
