"""The frames an LM search reads, prepared in one pass over the decoder's input.

pyctcdecode normalises the whole ``(T, C)`` matrix before its search: a log-softmax over
the labels (``x - top - log(sum(exp(x - top)))``, clipped to ``[log(1e-15), 0]``) or, for
probabilities, a clipped log. The search tries only the labels whose normalised value
reaches ``token_min_logp`` (and each frame's best label), so fastctc keeps the input as it
is, with each row's shift ``top`` and log-sum ``lse``, and normalises a value only when the
search reads it, with the same floating-point operations in the same dtype: the values are
pyctcdecode's to the bit. :func:`shift_rows` writes ``x - top`` (whose exponentials NumPy
sums, as pyctcdecode does) and lists, per row, the columns that can be tried at all, so a
frame costs the search O(those columns) instead of O(C).

Why the listed columns are enough, for a log-softmax row: ``lse >= 0`` (the sum holds
``exp(0) = 1``), so a value that reaches ``token_min_logp`` above the clip floor has
``x - top >= token_min_logp``; the row's best value is ``-lse`` and a value can round to it
only when ``x - top`` is within a few units in the last place of ``lse <= log(C)``, far
inside ``-1e-5``. A threshold at or below the floor makes every column a candidate, and a row
of ``-inf`` (whose values are all NaN, as in pyctcdecode) lists every column.
"""

import math

import numpy as np

from ._jit import jit, jit_reassoc

#: Columns are tested in blocks of this many: a block none of whose values reaches the
#: threshold (one vectorised count) is skipped, the others are listed without branches.
BLOCK = 64
#: Margin below 0 within which a shifted value may still tie the row's best.
TIE_MARGIN = 1e-5
#: NumPy sums up to this many values with eight accumulators, longer runs by halves.
PAIRWISE_BLOCK = 128


@jit_reassoc(_nrt=False)
def value_totals(x):
    """The sum of the values of ``x`` (2-D) and of their magnitudes, in float64 and in any
    order: for a decision with a margin (see :func:`fastctc.lm.frames.is_probabilities`)."""
    s = 0.0
    a = 0.0
    for r in range(x.shape[0]):
        row = x[r]
        for c in range(row.size):
            v = np.float64(row[c])
            s += v
            a += abs(v)
    return s, a


@jit(_nrt=False)
def row_maxima(x, top, odd):
    """``top[r]``: the largest value of row ``r`` of ``x`` (2-D), NaN when the row holds a
    NaN, as ``np.amax(x, axis=1)`` gives it. A row whose largest value is a zero and that
    holds zeros of both signs is listed in ``odd`` instead (which sign NumPy returns depends
    on its vector code); returns how many were listed."""
    T, C = x.shape
    n_odd = 0
    for r in range(T):
        m = x[r, 0]
        nan = False
        for c in range(C):
            v = x[r, c]
            nan |= v != v
            if v > m:
                m = v
        if nan:
            m = np.nan
        elif m == 0:
            signs = 0
            for c in range(C):
                if x[r, c] == 0:
                    signs |= 2 if math.copysign(1.0, x[r, c]) < 0 else 1
            if signs == 3:
                odd[n_odd] = r
                n_odd += 1
        top[r] = m
    return n_odd


@jit(_nrt=False)
def row_sums(a, out, neg_zero):
    """``out[r]``: the sum of row ``r`` of ``a`` (2-D, at most ``PAIRWISE_BLOCK`` columns)
    in ``a``'s dtype, with NumPy's pairwise summation: ``np.sum(a, axis=1)`` to the bit.
    ``neg_zero`` is -0.0 in ``a``'s dtype (NumPy's start for fewer than 8 values)."""
    T, C = a.shape
    for r in range(T):
        if C < 8:
            res = neg_zero
            for c in range(C):
                res += a[r, c]
        else:
            r0, r1, r2, r3 = a[r, 0], a[r, 1], a[r, 2], a[r, 3]
            r4, r5, r6, r7 = a[r, 4], a[r, 5], a[r, 6], a[r, 7]
            c = 8
            while c < C - C % 8:
                r0 += a[r, c]
                r1 += a[r, c + 1]
                r2 += a[r, c + 2]
                r3 += a[r, c + 3]
                r4 += a[r, c + 4]
                r5 += a[r, c + 5]
                r6 += a[r, c + 6]
                r7 += a[r, c + 7]
                c += 8
            res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            while c < C:
                res += a[r, c]
                c += 1
        out[r] = -neg_zero + res  # the reduction starts from 0
    return out


@jit(_nrt=False)
def shift_rows(x, top, thr, every, shifted, cols, off):
    """``shifted[r] = x[r] - top[r]`` (a ``top`` of ``-inf`` is first set to 0, as pyctcdecode
    does) and, per row, the increasing columns with ``shifted >= thr`` (all of them when
    ``every`` or the row's top was ``-inf``) in ``cols[off[r]:off[r + 1]]``. ``thr`` has the
    dtype of ``x``. Returns the number of rows whose top was ``-inf``."""
    T, C = x.shape
    n = 0
    n_inf = 0
    off[0] = 0
    for r in range(T):
        tp = top[r]
        all_cols = every
        if not (tp > -np.inf):
            top[r] = 0
            tp = top[r]
            all_cols = True
            n_inf += 1
        for c in range(C):
            shifted[r, c] = x[r, c] - tp
        if all_cols:
            for c in range(C):
                cols[n] = c
                n += 1
        else:
            n = _list_columns(shifted, r, thr, cols, n)
        off[r + 1] = n
    return n_inf


@jit(inline="always", _nrt=False)
def _list_columns(a, r, thr, cols, n):
    """Append the columns of row ``r`` of ``a`` with ``a[r, c] >= thr`` to ``cols[n:]``;
    return the new count. ``cols`` has room for the whole row."""
    C = a.shape[1]
    for b in range(0, C, BLOCK):
        # a view indexed from 0: the loops vectorise (no negative-index wraparound)
        blk = a[r, b : min(b + BLOCK, C)]
        k = 0
        for j in range(blk.size):
            k += blk[j] >= thr
        if k:
            for j in range(blk.size):
                cols[n] = b + j
                n += blk[j] >= thr
    return n


@jit(_nrt=False)
def select_rows(lp, thr, cols, off):
    """Per row of ``lp`` (already normalised), the increasing columns whose value reaches
    ``thr`` (of ``lp``'s dtype) or equals the row's maximum, in ``cols[off[r]:off[r + 1]]``;
    a row whose maximum is NaN lists every column. Returns the number of listed columns."""
    T, C = lp.shape
    n = 0
    off[0] = 0
    for r in range(T):
        row = lp[r]
        m = row[0]
        for c in range(C):
            if row[c] > m:
                m = row[c]
        if m != m:
            for c in range(C):
                cols[n] = c
                n += 1
        else:
            n = _list_columns(lp, r, min(thr, m), cols, n)
        off[r + 1] = n
    return n


@jit(inline="always", _nrt=False)
def frame_logp(fr, r, c):
    """The normalised log-probability of row ``r``, column ``c`` of the frames ``fr``:
    ``(x - top) - lse`` in the input's dtype, then as float64 clipped to ``[lo, hi]`` (NaN
    stays NaN, as with ``np.clip``)."""
    v = np.float64((fr.x[r, c] - fr.top[r]) - fr.lse[r])
    if v < fr.lo:
        v = fr.lo
    if v > fr.hi:
        v = fr.hi
    return v
