"""Former home of :mod:`fastctc.lm.ngram`, kept so that existing imports keep working."""

from .lm.ngram import (
    MAX_NGRAMS,
    MAX_ORDER,
    NeedsKenLMError,
    NgramModel,
    NgramState,
    NgramTables,
    arpa_unigrams,
    assemble_tables,
    check_arpa_header,
    looks_like_arpa,
    read_arpa,
    read_arpa_bytes,
)

__all__ = [
    "MAX_NGRAMS",
    "MAX_ORDER",
    "NeedsKenLMError",
    "NgramModel",
    "NgramState",
    "NgramTables",
    "arpa_unigrams",
    "assemble_tables",
    "check_arpa_header",
    "looks_like_arpa",
    "read_arpa",
    "read_arpa_bytes",
]
