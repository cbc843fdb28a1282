"""k-nearest-neighbour estimates of KL and JSD from samples (``kl_knn``, ``jsd_knn``).

Neighbours come from scipy's KD-tree; on torch the neighbour indices come from the tree and
the distances are recomputed with torch, so the estimates are differentiable with respect to
the sample positions. Histograms and logits are ``otdiv.metrics.divergence``.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv._array import (
    Array,
    array_kind,
    as_points,
    check_int,
    check_same_dim,
    check_seed,
    common_dtype,
    namespace,
    output,
    to_numpy64,
)
from otdiv._scaling import pow2_exponent, times_pow2

LOG2 = math.log(2.0)

def _kth_neighbour(points: np.ndarray, queries: np.ndarray, k: int, *, self_included: bool):
    """(distance, index) of each query's k-th nearest neighbour among ``points``.

    With ``self_included`` the queries are the points themselves, and the (k+1)-th neighbour
    is taken so that a point is not its own neighbour (duplicates still count as neighbours).
    """
    from scipy.spatial import cKDTree

    kk = k + 1 if self_included else k
    dist, idx = cKDTree(points).query(queries, k=[kk], workers=-1)
    return dist[:, 0], idx[:, 0]


def _log_distances(x, y, idx, dist_np, kind):
    """mean log ‖x_i − y_idx(i)‖: from the tree's distances, or differentiably with torch."""
    if kind == "torch":
        import torch

        ix = torch.as_tensor(idx, device=x.device)
        return torch.log(torch.linalg.vector_norm(x - y[ix], dim=1)).mean()
    return float(np.mean(np.log(dist_np)))


def _prepare_samples(x, y, k, *, need_x: int, need_y: int):
    kind = array_kind({"x": x, "y": y})
    x, y = as_points(x, "x"), as_points(y, "y")
    check_same_dim(x, y)
    k = check_int(k, "k")
    x, y = common_dtype(x, y)
    for name, pts, need in (("x", x, need_x), ("y", y, need_y)):
        if pts.shape[0] < need:
            raise ValueError(
                f"{name} has {pts.shape[0]} points; k={k} needs at least {need} "
                "(lower k or draw more samples)"
            )
    # The estimates depend on distances only through their ratios (log ν − log ρ, and the
    # entropies' d·log ε in a combination whose weights sum to 0), so dividing the samples by
    # a common power of two changes nothing exactly, and keeps the KD-tree's squared distances
    # (and torch's norms) inside the float range: coordinates of 1e±200 in float64 or 1e±30
    # in float32 would otherwise overflow to inf or underflow to a false repeat.
    xn, yn = to_numpy64(x), to_numpy64(y)
    e = -pow2_exponent(xn, yn)  # every coordinate · 2^e in (-1, 1), the largest ≥ 1/2
    if e != 0:
        xn, yn = times_pow2(xn, e), times_pow2(yn, e)
        x, y = (times_pow2(x, e), times_pow2(y, e)) if kind == "torch" else (xn, yn)
    return kind, x, y, xn, yn, k


def _no_ties(dist: np.ndarray, what: str, k: int) -> None:
    if (dist == 0).any():
        i = int(np.argmax(dist == 0))
        raise ValueError(
            f"{what} (point {i}): its k-th nearest-neighbour distance is 0 for k={k}. k-NN "
            "estimators assume samples from densities, which repeat no point; raise k above "
            "the largest number of repeats, or dequantise the data (add small noise)"
        )


def kl_knn(x: Array, y: Array, *, k: int = 1) -> float | Array:
    r"""KL(P ‖ Q) ≈ (d/n) Σ_i log(ν_k(i) / ρ_k(i)) + log(m / (n − 1)) from x ~ P, y ~ Q.

    The k-nearest-neighbour estimator of Wang, Kulkarni and Verdú (2009): ρ_k(i) is the
    distance from x_i to its k-th nearest neighbour among the other points of x, ν_k(i) its
    distance to the k-th nearest point of y (Euclidean, found with scipy's KD-tree on all
    cores). x: (n,) or (n, d) with n > k; y: (m,) or (m, d) with m >= k.

    Assumptions: x and y are i.i.d. samples of distributions with densities on R^d. It is
    then asymptotically unbiased and consistent for any fixed k; larger k lowers the variance
    and raises the bias at a given n.

    When the assumptions fail the estimate still comes back finite but means something else:
    on singular supports (P on a manifold of dimension d_0 < d) or disjoint supports, where
    the true KL is +inf, it grows without bound, like (d / d_0) log n for a singular P, as
    the samples grow (see the divergences page). Exactly repeated points are a ValueError
    (a distance of 0 has no logarithm): dequantise or raise k.

    numpy in, Python float out; torch in, a 0-d tensor out, differentiable with respect to x
    and y through the neighbour distances (the neighbours themselves are piecewise constant).
    """
    kind, x, y, xn, yn, k = _prepare_samples(x, y, k, need_x=k + 1, need_y=k)
    n, d = x.shape
    m = y.shape[0]
    rho, i_rho = _kth_neighbour(xn, xn, k, self_included=True)
    nu, i_nu = _kth_neighbour(yn, xn, k, self_included=False)
    _no_ties(rho, "x has repeated points", k)
    _no_ties(nu, "x has points that coincide with points of y", k)
    value = d * (_log_distances(x, y, i_nu, nu, kind) - _log_distances(x, x, i_rho, rho, kind))
    return output(value + math.log(m / (n - 1)), kind)


def _entropy_terms(points, pts_np, k, kind, what: str):
    """Kozachenko–Leonenko entropy without its constants: ψ(N) + d · mean log ε_k."""
    from scipy.special import digamma

    eps, idx = _kth_neighbour(pts_np, pts_np, k, self_included=True)
    _no_ties(eps, what, k)
    n, d = pts_np.shape
    return float(digamma(n)) + d * _log_distances(points, points, idx, eps, kind)


def jsd_knn(x: Array, y: Array, *, k: int = 5, seed: int | None = 0) -> float | Array:
    r"""JSD(P, Q) = H(M) − ½ H(P) − ½ H(Q), M = (P + Q)/2, each H a k-NN entropy estimate.

    Ĥ = ψ(N) − ψ(k) + log V_d + (d/N) Σ_i log ε_k(i) (Kozachenko–Leonenko, in the form of
    Kraskov et al. 2004) with ε_k(i) the distance from point i to its k-th nearest neighbour
    among the N points of its sample; ψ(k) and the unit-ball volume V_d cancel in the
    combination. H(P) uses all of x, H(Q) all of y, and H(M) the pooled sample x ∪ y, which is
    a sample of M when n = m; when n ≠ m the larger sample is thinned at random (``seed``) to
    the size of the smaller one for the pooled term only. The result is clipped to
    [0, log 2], the range of the JSD (in nats).

    Assumptions: i.i.d. samples of distributions with densities on R^d; consistent for a
    fixed k as n, m grow. Unlike the KL estimate it stays meaningful when the densities
    assumption fails by disjoint or singular supports that are far apart relative to the
    sample spacing: the pooled distances then equal the within-sample ones and the estimate
    tends to log 2, the true value (e.g. the parallel lines of the divergences page).
    Exactly repeated points are a ValueError, as for :func:`kl_knn`.

    numpy in, Python float out; torch in, a 0-d tensor, differentiable with respect to x and
    y through the neighbour distances.
    """
    seed = check_seed(seed)
    kind, x, y, xn, yn, k = _prepare_samples(x, y, k, need_x=k + 1, need_y=k + 1)
    n, m = x.shape[0], y.shape[0]
    if n != m:
        size = min(n, m)
        rng = np.random.default_rng(seed)
        ix = np.sort(rng.choice(n, size, replace=False)) if n > size else np.arange(n)
        iy = np.sort(rng.choice(m, size, replace=False)) if m > size else np.arange(m)
    else:
        ix, iy = np.arange(n), np.arange(m)
    if kind == "torch":
        import torch

        z = torch.cat([x[torch.as_tensor(ix, device=x.device)],
                       y[torch.as_tensor(iy, device=y.device)]])
    zn = np.concatenate([xn[ix], yn[iy]])
    if kind == "numpy":
        z = zn
    h_x = _entropy_terms(x, xn, k, kind, "x has repeated points")
    h_y = _entropy_terms(y, yn, k, kind, "y has repeated points")
    h_z = _entropy_terms(z, zn, k, kind, "x and y share points (in their pooled sample)")
    value = h_z - 0.5 * h_x - 0.5 * h_y
    return output(namespace(kind).clip(value, 0.0, LOG2), kind)
