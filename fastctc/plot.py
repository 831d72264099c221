"""A picture of one utterance: posteriorgram, greedy path and decoded words (needs matplotlib).

matplotlib is imported when a plot is drawn, never by ``import fastctc``; the figure is drawn
on its own Agg canvas, so pyplot's global state is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt


def _display(label: str, index: int, blank: int) -> str:
    if index == blank:
        return "<blank>"
    if label == " ":
        return "<space>"
    return label


def plot_utterance(
    log_probs: npt.ArrayLike,
    labels: Sequence[str],
    blank: int,
    words: Sequence[tuple[str, int, int]],
    path: str | Path,
    top: int = 30,
    frame_shift: float | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG of one utterance.

    Parameters
    ----------
    log_probs : array_like of shape (T, V)
        Log-probabilities of one utterance.
    labels : sequence of str, length V
        Label names.
    blank : int
        Index of the blank label.
    words : sequence of (word, start_frame, end_frame)
        Decoded words with their spans (end exclusive), drawn under the posteriorgram.
    path : str or Path
        Output image file.
    top : int
        Largest number of labels drawn: the ones with the highest peak probability (all of
        them when ``V <= top``), so large vocabularies stay readable.
    frame_shift : float, optional
        Seconds per frame; labels the time axis in seconds.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install "fastctc[plot]"``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('matplotlib is not installed; pip install "fastctc[plot]".') from None
    lp = np.asarray(log_probs, dtype=np.float64)
    T, V = lp.shape
    probs = np.exp(lp)
    peak = probs.max(axis=0) if T else np.zeros(V)
    if V <= top:
        rows = np.arange(V)
    else:
        keep = set(np.argsort(-peak, kind="stable")[:top].tolist()) | {blank}
        rows = np.array(sorted(keep))
    row_of = {int(r): i for i, r in enumerate(rows)}
    best = np.argmax(lp, axis=1) if T else np.zeros(0, dtype=np.int64)

    height = 2.0 + 0.16 * len(rows)
    fig = Figure(figsize=(max(8.0, min(24.0, T / 25.0)), height + 1.2))
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 1, height_ratios=[height, 1.0], hspace=0.08)
    ax = fig.add_subplot(gs[0])
    axw = fig.add_subplot(gs[1], sharex=ax)
    ax.imshow(
        probs[:, rows].T,
        aspect="auto",
        origin="lower",
        cmap="magma",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(-0.5, T - 0.5, -0.5, len(rows) - 0.5),
    )
    on = np.array([t for t in range(T) if int(best[t]) in row_of], dtype=np.int64)
    if on.size:
        ax.plot(
            on,
            [row_of[int(best[t])] for t in on],
            ".",
            color="cyan",
            markersize=3,
            label="greedy path",
        )
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_display(labels[r], int(r), blank) for r in rows], fontsize=7)
    ax.set_ylabel("label")
    ax.tick_params(labelbottom=False)
    if title:
        ax.set_title(title)

    for i, (word, s, e) in enumerate(words):
        y = i % 2
        axw.barh(
            y,
            max(e - s, 1),
            left=s - 0.5,
            height=0.8,
            color="#4c72b0" if y else "#55a868",
            alpha=0.35,
        )
        axw.text((s + e - 1) / 2.0, y, word, ha="center", va="center", fontsize=8)
    axw.set_ylim(-0.6, 1.6)
    axw.set_yticks([])
    axw.set_xlim(-0.5, max(T, 1) - 0.5)
    if frame_shift:
        ticks = axw.get_xticks()
        ticks = ticks[(ticks >= 0) & (ticks <= T)]
        axw.set_xticks(ticks)
        axw.set_xticklabels([f"{t * frame_shift:.2f}" for t in ticks])
        axw.set_xlabel("time (s)")
    else:
        axw.set_xlabel("frame")
    out = Path(path)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out
