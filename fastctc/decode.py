"""Former name of :mod:`fastctc.greedy`, kept so that existing imports keep working."""

from .greedy import Hypothesis, greedy_decode, greedy_decode_batch

__all__ = ["Hypothesis", "greedy_decode", "greedy_decode_batch"]
