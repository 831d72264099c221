"""Plain NumPy float64 references, written from the textbook definitions."""

from __future__ import annotations

import numpy as np


def _logsumexp(a: np.ndarray, axis=None) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def ctc_loss_ref(log_probs: np.ndarray, target, blank: int = 0):
    """Negative log-likelihood and its exact gradient w.r.t. ``log_probs`` (T, V).

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
    for t in range(1, T):
        prev = alpha[t - 1]
        step = np.full(L, -np.inf)
        step[1:] = prev[:-1]
        jump = np.full(L, -np.inf)
        jump[2:] = prev[:-2]
        jump[~can_skip] = -np.inf
        alpha[t] = _logsumexp(np.stack([prev, step, jump]), axis=0) + y[t]
    log_p = _logsumexp(alpha[T - 1, max(L - 2, 0):])
    beta = np.full((T, L), -np.inf)
    beta[T - 1, L - 1] = y[T - 1, L - 1]
    if L > 1:
        beta[T - 1, L - 2] = y[T - 1, L - 2]
    skip_from = np.array([s + 2 < L and can_skip[s + 2] for s in range(L)], dtype=bool)
    for t in range(T - 2, -1, -1):
        nxt = beta[t + 1]
        step = np.full(L, -np.inf)
        step[:-1] = nxt[1:]
        jump = np.full(L, -np.inf)
        jump[:-2] = nxt[2:]
        jump[~skip_from] = -np.inf
        beta[t] = _logsumexp(np.stack([nxt, step, jump]), axis=0) + y[t]
    grad = np.zeros((T, V))
    if np.isfinite(log_p):
        with np.errstate(invalid="ignore"):
            gamma = np.exp(alpha + beta - y - log_p)
        gamma = np.nan_to_num(gamma, nan=0.0)
        for s, c in enumerate(ext):
            grad[:, c] -= gamma[:, s]
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
