"""Former name of :mod:`fastctc.prefix_beam`, kept so that existing imports keep working."""

from .defaults import DEFAULT_BEAM_PRUNE_LOGP, DEFAULT_BEAM_WIDTH, DEFAULT_TOKEN_MIN_LOGP
from .prefix_beam import MAX_BEAM_WIDTH, beam_search, beam_search_batch, check_search_args

__all__ = [
    "DEFAULT_BEAM_PRUNE_LOGP",
    "DEFAULT_BEAM_WIDTH",
    "DEFAULT_TOKEN_MIN_LOGP",
    "MAX_BEAM_WIDTH",
    "beam_search",
    "beam_search_batch",
    "check_search_args",
]
