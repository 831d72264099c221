"""The LM beam search decoder, its language models and their readers.

* :mod:`fastctc.lm.decoder`: :func:`build_ctcdecoder` and :class:`BeamSearchDecoderCTC`,
  pyctcdecode 0.5.0's interface;
* :mod:`fastctc.lm.models`: :class:`AbstractLanguageModel`, :class:`LanguageModel` and
  :func:`load_model`;
* :mod:`fastctc.lm.ngram` and :mod:`fastctc.lm.kenlm_binary`: ARPA files and KenLM trie
  binaries read into n-gram tables, and :class:`~fastctc.lm.ngram.NgramModel`, the model used
  when the ``kenlm`` package is not installed;
* :mod:`fastctc.lm.tables`, :mod:`fastctc.lm.scoring`, :mod:`fastctc.lm.queries` and
  :mod:`fastctc.lm.search`: how one search gets its LM scores and runs the kernel
  (:mod:`fastctc.kernels.lm_beam`);
* :mod:`fastctc.lm.stream`: :class:`LMStream`, one utterance decoded chunk by chunk
  (``decoder.stream()``).
"""

from ..defaults import (
    AVG_TOKEN_LEN,
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_SCORE_LM_BOUNDARY,
    DEFAULT_UNK_LOGP_OFFSET,
)
from .models import (
    BACKENDS,
    KENLM_HINT,
    LOG_BASE_CHANGE_FACTOR,
    AbstractLanguageModel,
    LanguageModel,
    check_model_file,
    check_score,
    encode_strings,
    import_kenlm,
    kenlm_installed,
    load_kenlm_model,
    load_model,
    load_unigram_set_from_arpa,
    model_name,
    read_ngram_tables,
    word_hashes,
)
from .stream import LMStream, StreamPartial
from .tables import EMPTY_TABLE, KernelTables, hotword_tables, normalise_hotwords

__all__ = [
    "AVG_TOKEN_LEN",
    "BACKENDS",
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "DEFAULT_SCORE_LM_BOUNDARY",
    "DEFAULT_UNK_LOGP_OFFSET",
    "EMPTY_TABLE",
    "KENLM_HINT",
    "LOG_BASE_CHANGE_FACTOR",
    "AbstractLanguageModel",
    "KernelTables",
    "LMStream",
    "LanguageModel",
    "check_model_file",
    "check_score",
    "encode_strings",
    "hotword_tables",
    "import_kenlm",
    "kenlm_installed",
    "load_kenlm_model",
    "load_model",
    "load_unigram_set_from_arpa",
    "model_name",
    "normalise_hotwords",
    "read_ngram_tables",
    "StreamPartial",
    "word_hashes",
]
