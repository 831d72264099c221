"""Former home of :mod:`fastctc.lm.kenlm_binary`, kept so that existing imports keep working."""

from .lm.kenlm_binary import check_kenlm_binary, describe_kenlm_binary, read_kenlm_trie

__all__ = ["check_kenlm_binary", "describe_kenlm_binary", "read_kenlm_trie"]
