"""Optimal transport on the line: the monotone (north-west corner) coupling of sorted samples.

For a convex cost c(x − y) = |x − y|^p, p >= 1, the optimal coupling of two sorted weighted
samples matches their quantile functions: W_p^p = ∫_0^1 |F^{-1}(t) − G^{-1}(t)|^p dt.
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels._numba import nb
from otdiv.kernels.power import power


@nb.njit(inline="always")
def _c(u, p):
    return power(abs(u), p)


@nb.njit(cache=True)
def sorted_equal_uniform(xs, ys, p):
    """mean_i |xs_i − ys_i|^p for sorted samples of one size and uniform weights."""
    total = 0.0
    for i in range(xs.shape[0]):
        total += _c(xs[i] - ys[i], p)
    return total / xs.shape[0]


@nb.njit(cache=True)
def sorted_weighted(xs, ca, ys, cb, p):
    """W_p^p between sorted samples with cumulative weights ca, cb (each ending at 1)."""
    n, m = xs.shape[0], ys.shape[0]
    i = 0
    j = 0
    prev = 0.0
    total = 0.0
    while i < n and j < m:
        if ca[i] < cb[j]:
            t = ca[i]
            total += (t - prev) * _c(xs[i] - ys[j], p)
            i += 1
        else:
            t = cb[j]
            total += (t - prev) * _c(xs[i] - ys[j], p)
            j += 1
        prev = t
    return total


@nb.njit(cache=True)
def sorted_weighted_plan(xs, ca, ys, cb, p):
    """The monotone coupling as a path of (i, j, mass) steps and dual potentials f, g.

    The potentials satisfy f_i + g_j = c(x_i − y_j) on every step of the path (complementary
    slackness along the north-west-corner basis), which for a convex cost makes them optimal
    for the dual; zero-mass steps keep the path connected so every f_i and g_j is defined.
    """
    n, m = xs.shape[0], ys.shape[0]
    rows = np.empty(n + m, dtype=np.int64)
    cols = np.empty(n + m, dtype=np.int64)
    mass = np.empty(n + m, dtype=np.float64)
    f = np.zeros(n)
    g = np.zeros(m)
    g[0] = _c(xs[0] - ys[0], p)
    i = 0
    j = 0
    k = 0
    prev = 0.0
    while i < n and j < m:
        t = ca[i] if ca[i] < cb[j] else cb[j]
        rows[k] = i
        cols[k] = j
        mass[k] = max(t - prev, 0.0)
        k += 1
        prev = t
        if ca[i] < cb[j]:
            i += 1
            if i < n:
                f[i] = _c(xs[i] - ys[j], p) - g[j]
        else:
            j += 1
            if j < m:
                g[j] = _c(xs[i] - ys[j], p) - f[i]
    # points left over after one side ended carry zero mass; pin them to the last partner
    while i + 1 < n:
        i += 1
        f[i] = _c(xs[i] - ys[m - 1], p) - g[m - 1]
    while j + 1 < m:
        j += 1
        g[j] = _c(xs[n - 1] - ys[j], p) - f[n - 1]
    return rows[:k], cols[:k], mass[:k], f, g


# Sliced W: the caller sorts the (L, n) projections row by row with numpy (its SIMD sort is
# several times faster than numba's np.sort) and these reduce the rows in parallel.


@nb.njit(parallel=True, cache=True)
def rows_equal_uniform(xs, ys, p):
    """Per row l: mean_i |xs[l, i] − ys[l, i]|^p for row-sorted (L, n) arrays."""
    L = xs.shape[0]
    out = np.empty(L)
    for k in nb.prange(L):
        out[k] = sorted_equal_uniform(xs[k], ys[k], p)
    return out


@nb.njit(inline="always")
def _sorted_cumulative(v, w, order):
    """v and the running sum of w, both in the order `order`; the last sum is pinned to 1."""
    vs = np.empty(order.shape[0])
    cw = np.empty(order.shape[0])
    total = 0.0
    for t in range(order.shape[0]):
        vs[t] = v[order[t]]
        total += w[order[t]]
        # rounding can push the running sum past 1 before the last point; clipping keeps the
        # cumulative weights nondecreasing, so no quantile interval gets a negative width
        cw[t] = min(total, 1.0)
    cw[-1] = 1.0
    return vs, cw


@nb.njit(parallel=True, cache=True)
def rows_weighted(xp, ix, a, yp, iy, b, p):
    """Per row l: W_p^p of (xp[l], a) and (yp[l], b) given the argsorts ix[l], iy[l]."""
    L = xp.shape[0]
    out = np.empty(L)
    for k in nb.prange(L):
        xs, ca = _sorted_cumulative(xp[k], a, ix[k])
        ys, cb = _sorted_cumulative(yp[k], b, iy[k])
        out[k] = sorted_weighted(xs, ca, ys, cb, p)
    return out
