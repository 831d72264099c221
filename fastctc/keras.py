"""Drop-in replacement for ``keras.backend.ctc_decode`` (NumPy in, NumPy out)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _validate as v
from .greedy import greedy_decode_batch
from .prefix_beam import beam_search_batch, check_search_args


def ctc_decode(
    y_pred: npt.ArrayLike,
    input_length: npt.ArrayLike,
    greedy: bool = True,
    beam_width: int = 100,
    top_paths: int = 1,
    merge_repeated: bool = False,
    beam_prune_logp: float = -np.inf,
    token_min_logp: float = -np.inf,
    num_threads: int | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Decode softmax outputs the way ``keras.backend.ctc_decode`` does.

    Same inputs as Keras: batch-major softmax probabilities, the blank is the last class
    ``C - 1``, and ``input_length`` gives each sample's valid frames. Greedy mode takes the
    best class per frame, merges repeats and drops blanks; beam mode is the prefix beam
    search of :func:`fastctc.beam_search_batch`, by default with no pruning thresholds (only
    ``beam_width``), as TensorFlow's beam decoder.

    Differences from Keras:

    * ``log_probs`` has one meaning in both modes: the natural-log probability of the
      decoded result, always <= 0 -- greedy: of the best path (sum of the chosen frames'
      log-probabilities); beam: of the decoded prefix (log of the sum over its alignments).
      Keras' greedy mode returns the *negated* best-path sum (a positive number), its beam
      mode negative log-probabilities; so for greedy, ``fastctc == -keras``. Use
      ``np.exp(log_probs)`` for probabilities.
    * Keras takes ``log(y_pred + 1e-7)``; fastctc takes ``log(y_pred)`` (a zero probability is
      log-zero), so values differ by about ``1e-7 / p`` per frame.
    * Greedy mode returns a single path whatever ``top_paths`` is, as Keras does.
    * Keras' beam mode calls TensorFlow's v1 beam decoder with its default
      ``merge_repeated=True``, which also merges equal neighbours in the *returned* labels
      (a decoded ``[3, 3]``, i.e. "3, blank, 3", comes back as ``[3]``). fastctc returns the
      prefix as found; pass ``merge_repeated=True`` for Keras' output.

    Parameters
    ----------
    y_pred : array_like of shape (N, T, C)
        Softmax probabilities; class ``C - 1`` is the blank.
    input_length : array_like of int, shape (N,) or (N, 1)
        Valid frames of each sample.
    greedy : bool
        Best-path decoding if true, else prefix beam search.
    beam_width : int
        Beam width (beam mode).
    top_paths : int
        Hypotheses per sample (beam mode), ``1 <= top_paths <= beam_width``.
    merge_repeated : bool
        Beam mode: merge equal neighbouring labels of each result, as Keras does
        (``log_probs`` unchanged).
    beam_prune_logp, token_min_logp : float
        Beam mode: pruning thresholds of :func:`fastctc.beam_search_batch`. The default
        ``-inf`` scores every class at every frame, as TensorFlow does (cost grows with
        ``beam_width x C``); ``-10.0`` and ``-5.0`` make large alphabets (OCR, subwords) fast.
    num_threads : int, optional
        Worker threads (default: every available core).

    Returns
    -------
    decoded : list of ndarray of int64, shape (N, max_len)
        ``top_paths`` arrays (one in greedy mode), best first; row ``n`` holds sample ``n``'s
        labels padded with -1; ``max_len`` is the longest decoded sequence of that rank in the
        batch (0 if all are empty).
    log_probs : ndarray of float64, shape (N, top_paths)
        Natural-log probability of each result (<= 0); ``-inf`` where fewer than
        ``top_paths`` prefixes survived.

    Raises
    ------
    TypeError, ValueError
        Non-floating ``y_pred``, wrong shapes, ``input_length`` outside ``[0, T]``, negative
        probabilities, ``beam_width < 1``, ``top_paths`` outside ``[1, beam_width]``.

    Examples
    --------
    >>> import numpy as np, fastctc
    >>> y = np.array([[[.1, .9], [.2, .8], [.9, .1], [.1, .9]]])  # blank is class 1
    >>> decoded, log_probs = fastctc.ctc_decode(y, [4])
    >>> decoded[0].tolist(), np.round(np.exp(log_probs), 4).tolist()
    ([[0]], [[0.5832]])
    """
    y = v.as_float_array(y_pred, "y_pred")
    v.check_ndim(y, "y_pred", (3,), "3-D (N, T, C) softmax probabilities")
    N, T, C = y.shape
    if C < 1:
        raise ValueError("y_pred must have at least one class (the blank); got C = 0.")
    if np.any(y < 0):
        raise ValueError(
            "y_pred must hold probabilities (>= 0); got negative values. ctc_decode takes "
            "softmax outputs, not logits or log-probabilities."
        )
    il = v.as_int_array(input_length, "input_length")
    if il.ndim == 2 and il.shape[1] == 1:
        il = il[:, 0]
    lens = v.as_lengths(il, "input_length", N, T, "T")
    for name, flag in (("greedy", greedy), ("merge_repeated", merge_repeated)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool; got {type(flag).__name__} {flag!r}.")
    with np.errstate(divide="ignore"):
        lp = np.log(y)
    blank = C - 1
    if greedy:
        hyps = [[h] for h in greedy_decode_batch(lp, lens, blank, num_threads=num_threads)]
        paths = 1
    else:
        k, paths = check_search_args(beam_width, top_paths)
        hyps = beam_search_batch(
            lp,
            lens,
            beam_width=k,
            blank=blank,
            top_paths=paths,
            beam_prune_logp=beam_prune_logp,
            token_min_logp=token_min_logp,
            num_threads=num_threads,
        )
    decoded = []
    log_probs = np.full((N, paths), -np.inf)
    for j in range(paths):
        seqs = [h[j].tokens if j < len(h) else np.zeros(0, np.int64) for h in hyps]
        if merge_repeated and not greedy:
            seqs = [x[np.r_[True, x[1:] != x[:-1]]] if x.size else x for x in seqs]
        out = np.full((N, max((x.size for x in seqs), default=0)), -1, dtype=np.int64)
        for n, h in enumerate(hyps):
            out[n, : seqs[n].size] = seqs[n]
            if j < len(h):
                log_probs[n, j] = h[j].log_prob
        decoded.append(out)
    return decoded, log_probs
