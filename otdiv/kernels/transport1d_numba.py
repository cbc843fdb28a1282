"""Optimal transport on the line: the monotone (north-west corner) coupling of sorted samples.

For a convex cost c(x − y) = |x − y|^p, p >= 1, the optimal coupling of two sorted weighted
samples matches their quantile functions: W_p^p = ∫_0^1 |F^{-1}(t) − G^{-1}(t)|^p dt.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(inline="always")
def _c(u, p):
    u = abs(u)
    if p == 1.0:
        return u
    if p == 2.0:
        return u * u
    return u**p


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


@nb.njit(parallel=True, cache=True)
def sliced_equal_uniform(xp, yp, p):
    """Per projection l: mean_i |sort(xp[:, k])_i − sort(yp[:, k])_i|^p (columns in parallel)."""
    L = xp.shape[1]
    out = np.empty(L)
    for k in nb.prange(L):
        xs = np.sort(xp[:, k])
        ys = np.sort(yp[:, k])
        out[k] = sorted_equal_uniform(xs, ys, p)
    return out


@nb.njit(parallel=True, cache=True)
def sliced_weighted(xp, a, yp, b, p):
    """Per projection: W_p^p of weighted samples (a, b sum to 1), columns in parallel."""
    L = xp.shape[1]
    out = np.empty(L)
    for k in nb.prange(L):
        ix = np.argsort(xp[:, k])
        iy = np.argsort(yp[:, k])
        ca = np.cumsum(a[ix])
        cb = np.cumsum(b[iy])
        ca[-1] = 1.0
        cb[-1] = 1.0
        out[k] = sorted_weighted(xp[ix, k], ca, yp[iy, k], cb, p)
    return out
