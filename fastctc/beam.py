"""Former name of :mod:`fastctc.prefix_beam`, kept so that existing imports keep working."""

from .prefix_beam import beam_search, beam_search_batch

__all__ = ["beam_search", "beam_search_batch"]
