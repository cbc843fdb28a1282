"""Exact maximum of |f_i − f_j| / ‖x_i − x_j‖ over all pairs, parallel, O(n) memory."""

from __future__ import annotations

import numpy as np

from otdiv.kernels._numba import nb

# below this a squared distance may have lost digits to underflow (2**-1000 ~ 1e-301)
_TINY = 2.0**-1000


@nb.njit(inline="always")
def _scan_row(x, f, i, best2, arg, dup):
    """Update best2[i] / arg[i] with the pairs (i, j), j > i; flag a duplicate point in dup[i].

    The comparison df² > best2 · d² avoids a division and a square root per pair; only an
    improvement pays for the division.
    """
    n, d = x.shape
    b = best2[i]
    a = arg[i]
    for j in range(i + 1, n):
        sq = 0.0
        for k in range(d):
            t = x[i, k] - x[j, k]
            sq += t * t
        df = f[i] - f[j]
        df2 = df * df
        if sq < _TINY:
            # a squared distance that underflowed: compare the slope itself, with the
            # difference rescaled by its largest coordinate (rare, so the cost is moot)
            t_max = 0.0
            for k in range(d):
                t_max = max(t_max, abs(x[i, k] - x[j, k]))
            if t_max == 0.0:
                # the same point twice: equal values carry no information, unequal values
                # mean no finite constant exists
                if df != 0.0 and dup[i] < 0:
                    dup[i] = j
                continue
            s2 = 0.0
            for k in range(d):
                t = (x[i, k] - x[j, k]) / t_max
                s2 += t * t
            slope = abs(df) / t_max / np.sqrt(s2)
            if slope * slope > b:
                b = slope * slope
                a = j
            continue
        if df2 > b * sq:
            b = df2 / sq
            a = j
    best2[i] = b
    arg[i] = a


@nb.njit(parallel=True, cache=True)
def max_slope_pairs(x, f):
    """Per row i: best squared slope over j > i, its j, and the first j > i with x_j = x_i
    but f_j ≠ f_i (−1 when none).

    Rows are processed in folded pairs (i, n−1−i) so that every parallel task scans n − 1
    pairs: a plain prange over the triangle would leave one core with three quarters of it.
    best2 starts at −1 so that the first distinct pair is recorded even at slope 0.
    """
    n = x.shape[0]
    best2 = np.full(n, -1.0)
    arg = np.full(n, -1, dtype=np.int64)
    dup = np.full(n, -1, dtype=np.int64)
    half = (n + 1) // 2
    for r in nb.prange(half):
        _scan_row(x, f, r, best2, arg, dup)
        s = n - 1 - r
        if s != r:
            _scan_row(x, f, s, best2, arg, dup)
    return best2, arg, dup
