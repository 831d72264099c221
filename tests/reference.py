"""Plain NumPy float64 references, written from the textbook definitions."""

from __future__ import annotations

import numpy as np


def ctc_loss_ref(log_probs: np.ndarray, target, blank: int = 0, grad: bool = True):
    """Negative log-likelihood and its exact gradient w.r.t. ``log_probs`` (T, V).

    With ``grad=False`` only the forward recursion runs and the gradient is None.

    Log-space alpha (including the frame's emission) and beta (including it too), the
    occupancy ``gamma[t, s] = alpha[t, s] + beta[t, s] - y[t, s] - log p``.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    T, V = lp.shape
    target = [int(x) for x in target]
    ext = [blank]
    for c in target:
        ext += [c, blank]
    L = len(ext)
    y = lp[:, ext]  # (T, L)
    can_skip = np.array(
        [s >= 2 and ext[s] != blank and ext[s] != ext[s - 2] for s in range(L)], dtype=bool
    )
    alpha = np.full((T, L), -np.inf)
    alpha[0, 0] = y[0, 0]
    if L > 1:
        alpha[0, 1] = y[0, 1]
    step = np.full(L, -np.inf)  # alpha[t - 1, s - 1]
    jump = np.full(L, -np.inf)  # alpha[t - 1, s - 2] where label s may follow label s - 2
    with np.errstate(invalid="ignore"):  # -inf - -inf inside logaddexp
        for t in range(1, T):
            prev = alpha[t - 1]
            step[1:] = prev[:-1]
            jump[2:] = prev[:-2]
            jump[~can_skip] = -np.inf
            alpha[t] = np.logaddexp(np.logaddexp(prev, step), jump) + y[t]
        log_p = np.logaddexp.reduce(alpha[T - 1, max(L - 2, 0) :])
        if not grad:
            return float(-log_p), None
        beta = np.full((T, L), -np.inf)
        beta[T - 1, L - 1] = y[T - 1, L - 1]
        if L > 1:
            beta[T - 1, L - 2] = y[T - 1, L - 2]
        skip_from = np.array([s + 2 < L and can_skip[s + 2] for s in range(L)], dtype=bool)
        step = np.full(L, -np.inf)  # beta[t + 1, s + 1]
        jump = np.full(L, -np.inf)  # beta[t + 1, s + 2] where label s + 2 may follow label s
        for t in range(T - 2, -1, -1):
            nxt = beta[t + 1]
            step[:-1] = nxt[1:]
            jump[:-2] = nxt[2:]
            jump[~skip_from] = -np.inf
            beta[t] = np.logaddexp(np.logaddexp(nxt, step), jump) + y[t]
    grad = np.zeros((T, V))
    if np.isfinite(log_p):
        ext_arr = np.array(ext)
        for t0 in range(0, T, 512):  # blocks of frames keep the temporaries small
            rows = slice(t0, t0 + 512)
            with np.errstate(invalid="ignore"):
                gamma = np.exp(alpha[rows] + beta[rows] - y[rows] - log_p)
            gamma = np.nan_to_num(gamma, nan=0.0)
            for c in np.unique(ext_arr):
                grad[rows, c] = -gamma[:, ext_arr == c].sum(axis=1)
    return float(-log_p), grad


def greedy_ref(log_probs: np.ndarray, blank: int = 0):
    """Argmax per frame, merge repeats, drop blanks; start frame of each token; path score."""
    lp = np.asarray(log_probs, dtype=np.float64)
    best = np.argmax(lp, axis=1)
    tokens, times = [], []
    prev = None
    for t, c in enumerate(best):
        if c != blank and c != prev:
            tokens.append(int(c))
            times.append(t)
        prev = c
    return tokens, times, float(lp[np.arange(len(best)), best].sum())
