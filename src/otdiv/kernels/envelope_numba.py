"""Kernel of the held-out envelope min_a (s v_a + ||z - a||) for several s at once.

The squared distances of a block come from a matrix product, d2 = |z|^2 + |a|^2 - 2 <z, a>
(about 20 times faster than per-pair loops at d = 64), which is off by at most ``delta2``
(a rounding bound). The kernel takes the minimum over the anchors with those distances,
keeps every anchor within 2 sqrt(delta2) (plus rounding) of it — the exact minimiser is
among them — and takes the minimum again over those candidates with per-pair distances
sqrt(sum_t (z_t - a_t)^2). The result is the exact-distance envelope: the same as with
per-pair distances everywhere, hence 1-Lipschitz up to float64 rounding of one distance.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv.kernels._numba import nb

_HUGE = 1.7976931348623157e308  # the largest float64: a finite start for a minimum


@nb.njit(cache=True)
def _pair_distance(z, i, anchors, j):
    """||z_i - a_j|| summed in coordinate order (as scipy's cdist), without fastmath."""
    sq = 0.0
    for c in range(z.shape[1]):
        u = z[i, c] - anchors[j, c]
        sq += u * u
    return math.sqrt(sq)


@nb.njit(cache=True, fastmath=True)
def envelope_min_block(ip, nz, na, margin, z, anchors, values, scales, out):
    """out[k, i] = min_j (scales[k] values[j] + ||z[i] - anchors[j]||).

    ip[i, j] = <z_i - m, a_j - m>, nz[i] = |z_i - m|^2, na[j] = |a_j - m|^2 (m any centre)
    give the approximate distances sqrt(nz + na - 2 ip); margin[i] >= 2 max_j of their
    error plus rounding. The candidates within margin of the approximate minimum are
    re-evaluated with per-pair distances (``_pair_distance``, compiled without fastmath:
    fastmath here only reorders the approximate pass, whose error the margin covers)."""
    n, m = ip.shape
    ns = scales.shape[0]
    best = np.empty(ns)
    exact = np.empty(ns)
    dist = np.empty(m)
    for i in range(n):
        for j in range(m):
            dist[j] = math.sqrt(max(nz[i] + na[j] - 2.0 * ip[i, j], 0.0))
        for k in range(ns):
            sk = scales[k]
            b = sk * values[0] + dist[0]  # no inf under fastmath (it assumes none)
            for j in range(1, m):
                b = min(b, sk * values[j] + dist[j])
            best[k] = b + margin[i]
            exact[k] = _HUGE
        for j in range(m):
            vj = values[j]
            known = -1.0
            for k in range(ns):
                if scales[k] * vj + dist[j] <= best[k]:
                    if known < 0.0:
                        known = _pair_distance(z, i, anchors, j)
                    e = scales[k] * vj + known
                    if e < exact[k]:
                        exact[k] = e
        for k in range(ns):
            out[k, i] = exact[k]
