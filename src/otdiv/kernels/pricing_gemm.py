r"""Pricing all n·m pairs in high dimension: distances by a matrix product, then exact.

Where the k-d tree of ``otdiv.kernels.pricing_numba`` cannot prune (d >= 8 or so), every
pair is priced, and the per-pair loop over d coordinates is the cost. Here a block of rows
gets its squared distances from one BLAS product of the centred points,

.. math:: \tilde s_{ij} = \|x'_i\|^2 + \|y'_j\|^2 - 2\langle x'_i, y'_j\rangle,
          \qquad x' = x - o,\; y' = y - o,

whose error is at most :math:`\kappa(\|x'_i\|^2 + \|y'_j\|^2)`, :math:`\kappa = (2d + 16)u`
(u = 2^-53: a dot product of length d errs by at most d·u·(1 + O(u)) times the sum of
|products|, in any summation order, with or without FMA). So

.. math:: D_{ij} = (1 - 8u)\sqrt{\max(\tilde s_{ij} - \kappa(\|x'_i\|^2 + \|y'_j\|^2) - A, 0)}
                   - (1 + (d + 8)u)\,u\,(\|x'_i\| + \|y'_j\|)

is below ‖x_i − y_j‖ (the last term: centring rounds each coordinate by at most u times
its size; the norms are square roots of computed squares, up to (d/2)u short), and
:math:`L_{ij} = \sigma \max(D_{ij}^2 - A, 0)^{p/2}`, σ = 1 − (p(d + 2) + 32)u, is below
the cost the brute-force pricer computes. A = 2^-1000 covers the absolute rounding of
products and squares in the subnormal range (where relative bounds fail; the solver's unit
scale keeps costs near 1, but the function is exact for any finite input). A pair with
L − f_i − g_j > 2^-50 (L + |f_i| + |g_j|) + 64·2^-1074 therefore has a computed reduced
cost >= 0 (the argument of ``pricing_numba``'s box bound) and is not violated for any
tol >= 0; every other pair — the tree's own arcs and the violated ones among them, and any
pair whose bound overflowed to NaN — is costed exactly as the brute-force pricer costs it.
The answer is the brute-force pricer's: the same count, the same ``per_row`` most negative
of each row (ties aside).
"""

from __future__ import annotations

import math

import numpy as np

from otdiv.kernels import simplex_numba as sx
from otdiv.kernels._numba import nb, twins

_U = 2.0**-53
_MARGIN = 2.0**-50  # as pricing_numba's box bound: > the skip test's own rounding
_UNDERFLOW = 2.0**-1000  # > the absolute error of d subnormal products or squares (d < 2^60)
_TINY = 64 * 2.0**-1074  # the skip test's own absolute rounding in the subnormal range
_BLOCK_ENTRIES = 1 << 22  # entries of one block's product (32 MiB)
MIN_DIM = 12  # from this dimension on the product pays: at n = m = 10^4 it takes 1.1 x the
# per-pair loop's time at d = 8, 0.57 x at d = 16, 0.17 x at d = 64


@twins()
def _filtered_rows(ip, nz, na, nx, ny, kappa, centring, shrink, x, y, first, p, f, g, tol, out,
                   counts):
    """Rows first .. first + len(ip) − 1: skip the pairs the product's bound rules out,
    cost the rest exactly (module docstring)."""
    m = y.shape[0]
    per_row = out.shape[1]
    q = 0.5 * p
    for b in nb.prange(ip.shape[0]):
        i = first + b
        vals = np.zeros(per_row)
        keep = np.empty(m, np.bool_)
        lower = np.empty(m)
        out[i, :] = -1
        worst, count = 0, 0
        fi = f[i]
        nzb, nxb = nz[b], nx[b]
        for j in range(m):  # the bound, in branch-free (vectorised) passes over the row
            low = nzb + na[j] - 2.0 * ip[b, j] - kappa * (nzb + na[j]) - _UNDERFLOW
            dist = (1.0 - 8.0 * _U) * math.sqrt(max(low, 0.0)) - centring * (nxb + ny[j])
            dist = max(dist, 0.0)
            lower[j] = max(dist * dist - _UNDERFLOW, 0.0)  # the loop's squares may underflow
        if p == 1.0:
            for j in range(m):
                lower[j] = shrink * math.sqrt(lower[j])
        elif p == 2.0:
            for j in range(m):
                lower[j] *= shrink
        else:
            for j in range(m):
                lower[j] = shrink * lower[j] ** q
        for j in range(m):  # fail-safe: a NaN keeps the pair
            bound = lower[j]
            keep[j] = not (bound - fi - g[j] >
                           _MARGIN * (bound + abs(fi) + abs(g[j])) + _TINY)
        for j in range(m):
            if not keep[j]:
                continue
            worst, hit = sx.judge_pair(x, i, y, j, q, fi, g[j], tol, vals, out[i], worst, j)
            count += hit
        counts[i] = count


def most_negative(x, y, p, f, g, tol, per_row):
    """(rows, cols) of up to ``per_row`` violated pairs per row — the most negative
    r = c_ij − f_i − g_j < −tol·max(c_ij, |f_i|, |g_j|), c_ij = ‖x_i − y_j‖^p — and the
    number of violated pairs in all: the brute-force pricer's answer
    (``simplex_numba.most_negative``), with most pairs ruled out by a matrix product
    (module docstring). x (n, d), y (m, d) float64, tol >= 0."""
    n, m = x.shape[0], y.shape[0]
    d = x.shape[1]
    if n == 0 or m == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), 0
    with np.errstate(over="ignore", invalid="ignore"):  # inf / NaN bounds keep their pairs
        out = np.empty((n, per_row), np.int64)
        counts = np.zeros(n, np.int64)
        origin = 0.5 * np.minimum(x.min(0), y.min(0)) + 0.5 * np.maximum(x.max(0), y.max(0))
        xc, yc = x - origin, y - origin
        nz, na = np.einsum("ij,ij->i", xc, xc), np.einsum("ij,ij->i", yc, yc)
        nx, ny = np.sqrt(nz), np.sqrt(na)
        kappa = (2 * d + 16) * _U
        centring = (1.0 + (d + 8) * _U) * _U  # sqrt of a computed norm² may be (d/2)u short
        shrink = 1.0 - (p * (d + 2) + 32) * _U
        step = max(1, _BLOCK_ENTRIES // max(m, 1))
        for first in range(0, n, step):
            rows = slice(first, min(n, first + step))
            ip = xc[rows] @ yc.T
            _filtered_rows(ip.size, ip, nz[rows], na, nx[rows], ny, kappa, centring, shrink, x, y,
                           first, float(p), f, g, float(tol), out, counts)
    r, slots = np.nonzero(out >= 0)
    return r, out[r, slots], int(counts.sum())
