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


@nb.njit(cache=True)
def envelope_min_block(d2, margin, z, anchors, values, scales, out):
    """out[k, i] = min_j (scales[k] values[j] + ||z[i] - anchors[j]||), with d2[i, j] the
    approximate squared distances and margin[i] >= 2 max_j |sqrt(d2[i, j]) - ||z_i - a_j|||
    (plus rounding): the candidates within margin of the approximate minimum are
    re-evaluated with per-pair distances."""
    n, m = d2.shape
    ns = scales.shape[0]
    dim = z.shape[1]
    best = np.empty(ns)
    exact = np.empty(ns)
    for i in range(n):
        for k in range(ns):
            best[k] = np.inf
        for j in range(m):
            dist = math.sqrt(max(d2[i, j], 0.0))
            vj = values[j]
            for k in range(ns):
                t = scales[k] * vj + dist
                if t < best[k]:
                    best[k] = t
        for k in range(ns):
            exact[k] = np.inf
        for j in range(m):
            dist = math.sqrt(max(d2[i, j], 0.0))
            vj = values[j]
            known = -1.0
            for k in range(ns):
                if scales[k] * vj + dist <= best[k] + margin[i]:
                    if known < 0.0:
                        sq = 0.0
                        for c in range(dim):
                            u = z[i, c] - anchors[j, c]
                            sq += u * u
                        known = math.sqrt(sq)
                    e = scales[k] * vj + known
                    if e < exact[k]:
                        exact[k] = e
        for k in range(ns):
            out[k, i] = exact[k]
