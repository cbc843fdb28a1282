"""The multiscale warm start of Sinkhorn on large point clouds: coarse clusters first.

Each cloud is cut by a k-d tree (median splits of the widest coordinate) into clusters of at
most ``LEAF`` points; a cluster becomes one point, its weighted centroid, carrying the
cluster's mass. The coarse problem (about n / LEAF points a side, so each of its sweeps
costs ~1/LEAF² of a fine one) is solved at the final eps with the usual annealing and
over-relaxation. Its potential g_c is then extended to the fine points by one soft-min,

    f_i = −eps log Σ_J B_J exp((g_c,J − ‖x_i − ȳ_J‖^p)/eps)       (ȳ_J, B_J: centroid, mass)

and the fine loop starts from that f with the coarse run's over-relaxation ω, in place of
the fine-level annealing (GeomLoss anneals coarse clusters first too; Schmitzer 2019's
multiscale Sinkhorn likewise). Nothing reported changes: the fine loop measures and
returns its own plan. In ``n_iter`` the whole coarse level counts as one sweep (its sweeps
together cost well under one fine sweep at the sizes where it is used).
"""

from __future__ import annotations

import numpy as np

from otdiv.ot.geometry import NumbaClouds
from otdiv.ot.kdtree import kd_permutation

LEAF = 16  # points per coarse cluster
MIN_POINTS = 4096  # each cloud at least this large: below, fine annealing is cheap anyway
MIN_EPS = 0.001  # used from this eps / cmax: measured to pay at 0.001 and 0.01 (docs/sinkhorn.md)


def kd_clusters(pts: np.ndarray, w: np.ndarray, leaf: int = LEAF):
    """Weighted centroids (k, d) and masses (k,) of the k-d tree leaves of the points of
    positive weight (a leaf: at most ``leaf`` points, split at the median of its widest
    coordinate)."""
    support = np.flatnonzero(w > 0)
    perm, bounds = kd_permutation(pts, leaf, support)
    k = bounds.shape[0] - 1
    labels = np.empty(len(pts), dtype=np.int64)
    labels[perm] = np.repeat(np.arange(k), np.diff(bounds))
    lab = labels[support]
    mass = np.bincount(lab, weights=w[support], minlength=k)
    centroids = np.stack([np.bincount(lab, weights=w[support] * pts[support, t],
                                      minlength=k) for t in range(pts.shape[1])],
                         axis=1) / mass[:, None]
    return np.ascontiguousarray(centroids), mass


def applies(prob, symmetric: bool, max_iter: int, eps: float) -> bool:
    """The default: point clouds on an online numba kernel, both clouds large, eps >=
    MIN_EPS · cmax, not the symmetric self-problem, and a max_iter that leaves
    room for a coarse level."""
    clouds = getattr(prob, "exact", prob)
    return (not symmetric and max_iter >= 8 and getattr(prob, "online", False)
            and eps >= MIN_EPS * prob.cmax
            and min(clouds.x.shape[0], clouds.y.shape[0]) >= MIN_POINTS)


def coarse_problem(prob, leaf: int = LEAF):
    """The coarse problem of a clouds geometry: the k-d clusters' centroids and masses, on the
    online float64 kernel."""
    clouds = getattr(prob, "exact", prob)
    xc, ac = kd_clusters(clouds.x, clouds.a, leaf)
    yc, bc = kd_clusters(clouds.y, clouds.b, leaf)
    return NumbaClouds(xc, yc, ac, bc, clouds.p)


def extend(prob, coarse, g, eps: float):
    """The fine f from the coarse g: f_i = −eps log Σ_J B_J exp((g_J − ‖x_i − ȳ_J‖^p)/eps)."""
    clouds = getattr(prob, "exact", prob)
    return -eps * clouds.k.softmin_points(clouds.x, coarse.yt, coarse.lb + g / eps, eps,
                                          clouds.p)
