"""The data shipped with fastctc: an English word 4-gram and an example set to decode with it.

* :func:`default_lm` gives the bundled language model (a 3.6 MB, 8-bit quantised KenLM trie
  binary, 29,803 words, trained on public-domain English text), its vocabulary and the
  character labels its words are spelt with.
* :func:`demo` gives 24 simulated character CTC outputs of sentences held out from the
  model's training text, with their transcripts (what ``fastctc demo`` decodes).

Both work without the ``kenlm`` package: fastctc reads the model itself.

Examples
--------
>>> import fastctc
>>> lm, demo = fastctc.data.default_lm(), fastctc.data.demo()
>>> decoder = fastctc.build_ctcdecoder(lm.labels, kenlm_model_path=lm.path, unigrams=lm.unigrams)
>>> texts = decoder.decode_batch(None, demo.log_probs)
>>> fastctc.wer(demo.transcripts, texts) < 0.2
True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["DATA_DIR", "BundledLM", "Demo", "default_lm", "demo"]

#: The folder holding the bundled files.
DATA_DIR = Path(__file__).resolve().parent

_LM_FILE = "en_4gram.bin"
_LM_MANIFEST = "en_4gram.json"
_UNIGRAMS_FILE = "en_4gram.unigrams.txt"
_DEMO_ARRAYS = "demo.npz"
_DEMO_META = "demo.json"


class BundledLM(NamedTuple):
    """The bundled language model, as :func:`default_lm` returns it."""

    #: The KenLM trie binary, for ``build_ctcdecoder(kenlm_model_path=...)`` or ``--lm``.
    path: Path
    #: Its vocabulary file, one word a line (``--unigrams``).
    unigrams_path: Path
    #: Its vocabulary, for ``build_ctcdecoder(unigrams=...)``.
    unigrams: list[str]
    #: CTC labels spelling its words: the blank ``""``, space, apostrophe, ``a`` to ``z``.
    labels: list[str]
    #: The n-gram order.
    order: int


class Demo(NamedTuple):
    """The bundled example set, as :func:`demo` returns it; lists in the same order."""

    #: Utterance ids (``dev000`` ...).
    ids: list[str]
    #: float32 log-probabilities of shape (T, 29) per utterance, blank at column 0.
    log_probs: list[npt.NDArray[np.float32]]
    #: Reference transcripts.
    transcripts: list[str]
    #: The 29 labels of the columns (the same as :attr:`BundledLM.labels`).
    labels: list[str]
    #: Index of the blank label.
    blank: int

    def padded(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The utterances in one zero-padded float32 array of shape (N, T, V), with their
        lengths (int64, shape (N,)), for the batch functions.

        Examples
        --------
        >>> import fastctc
        >>> log_probs, lengths = fastctc.data.demo().padded()
        >>> log_probs.shape, lengths[:3].tolist()
        ((24, 473, 29), [326, 158, 358])
        """
        lengths = np.array([lp.shape[0] for lp in self.log_probs], dtype=np.int64)
        out = np.zeros((len(self.log_probs), int(lengths.max()), len(self.labels)), np.float32)
        for i, lp in enumerate(self.log_probs):
            out[i, : lp.shape[0]] = lp
        return out, lengths


def default_lm() -> BundledLM:
    """The bundled English 4-gram: its file, vocabulary and matching labels.

    Returns
    -------
    BundledLM
        ``(path, unigrams_path, unigrams, labels, order)``.

    Examples
    --------
    >>> import fastctc
    >>> lm = fastctc.data.default_lm()
    >>> lm.path.name, len(lm.unigrams), lm.order
    ('en_4gram.bin', 29803, 4)
    >>> lm.labels[:4]
    ['', ' ', "'", 'a']
    """
    with open(DATA_DIR / _LM_MANIFEST, encoding="utf-8") as fh:
        manifest = json.load(fh)
    unigrams_path = DATA_DIR / _UNIGRAMS_FILE
    unigrams = unigrams_path.read_text(encoding="utf-8").split()
    labels = [""] + list(manifest["alphabet"])
    return BundledLM(DATA_DIR / _LM_FILE, unigrams_path, unigrams, labels, int(manifest["order"]))


def demo() -> Demo:
    """The bundled example set: simulated CTC outputs of 24 held-out English sentences.

    Returns
    -------
    Demo
        ``(ids, log_probs, transcripts, labels, blank)``.

    Examples
    --------
    >>> import fastctc
    >>> d = fastctc.data.demo()
    >>> len(d.ids), d.log_probs[0].shape, d.log_probs[0].dtype, d.blank
    (24, (326, 29), dtype('float32'), 0)
    >>> d.transcripts[0]
    'they took some of the van goghs most of the jewels and all of the chivas'
    >>> fastctc.greedy_decode(d.log_probs[0]).tokens[:3].tolist()
    [22, 10, 7]
    """
    with open(DATA_DIR / _DEMO_META, encoding="utf-8") as fh:
        meta = json.load(fh)
    with np.load(DATA_DIR / _DEMO_ARRAYS) as npz:
        ids = list(npz.files)
        log_probs = [npz[k].astype(np.float32) for k in ids]
    transcripts = [meta["transcripts"][k] for k in ids]
    return Demo(ids, log_probs, transcripts, list(meta["labels"]), int(meta["blank"]))
