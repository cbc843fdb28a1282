"""Kullback–Leibler and Jensen–Shannon divergences: histograms, logits and k-NN estimates.

Histograms (``kl``, ``jsd``) are normalised along ``axis`` and batched over every other axis.
The numpy path is one fused numba pass over the rows (src/otdiv/kernels/divergence_numba.py),
which also yields the sums and sign counts that validate and normalise them. The torch path is
written with masked ``torch.where`` so that zero bins give exact values *and* finite
gradients, and runs on any device.

Samples (``kl_knn``, ``jsd_knn``) use k-nearest-neighbour distances from scipy's KD-tree; on
torch the neighbour indices come from the tree and the distances are recomputed with torch, so
the estimates are differentiable with respect to the sample positions.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv._array import (
    Array,
    array_kind,
    as_float_array,
    as_points,
    check_axis,
    check_histograms,
    check_int,
    check_positive,
    check_same_dim,
    to_numpy64,
)

LOG2 = math.log(2.0)

# ------------------------------------------------------------------------ input handling


def _log_scale(base: object) -> float:
    if base is None:
        return 1.0
    base = check_positive(base, "base")
    if base == 1.0:
        raise ValueError("base must be a positive number other than 1, got 1.0")
    return 1.0 / math.log(base)


def _prepare(p, q, axis, logits: bool):
    """Validated (kind, P, Q, batch_shape, sums of P, sums of Q): broadcast, ``axis`` last.

    numpy: P and Q are C-contiguous (rows, bins) float64 arrays, and the sums None (the
    kernel computes them); torch: (..., bins) tensors, sums None for logits.
    """
    kind = array_kind({"p": p, "q": q})
    # numpy histograms: the kernel's sums reveal NaN and inf, so skip a pass over the data
    scan = logits or kind == "torch"
    p = as_float_array(p, "p", finite=scan)
    q = as_float_array(q, "q", finite=scan)
    for name, h in (("p", p), ("q", q)):
        if h.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension (the bins), got a scalar")
    try:
        if kind == "torch":
            import torch

            dtype = torch.promote_types(p.dtype, q.dtype)
            p, q = torch.broadcast_tensors(p.to(dtype), q.to(dtype))
        else:
            p, q = np.broadcast_arrays(p, q)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"p and q must have broadcastable shapes, got p.shape={tuple(p.shape)} and "
            f"q.shape={tuple(q.shape)}"
        ) from None
    axis = check_axis(axis, p.ndim)
    if p.shape[axis] == 0:
        raise ValueError(f"p and q have no bins along axis {axis}; they need at least one")
    if kind == "torch":
        P, Q = p.movedim(axis, -1), q.movedim(axis, -1)
        batch = tuple(P.shape[:-1])
    else:
        P, Q = np.moveaxis(p, axis, -1), np.moveaxis(q, axis, -1)
        batch = P.shape[:-1]
        bins = P.shape[-1]
        P = np.ascontiguousarray(P).reshape(-1, bins)
        Q = np.ascontiguousarray(Q).reshape(-1, bins)
    if kind == "torch" and not logits:
        return kind, P, Q, batch, check_histograms(P, "p"), check_histograms(Q, "q")
    # numpy histograms are validated by the kernel's own pass over them
    return kind, P, Q, batch, None, None


def _finish(values, kind: str, batch: tuple, scale: float, upper: float):
    """Scale to ``base``, clip the rounding outside [0, upper], give the kind of the input."""
    if kind == "torch":
        values = values.clamp(min=0.0, max=upper)
        return (values * scale if scale != 1.0 else values).reshape(batch)
    values = np.clip(values, 0.0, upper) * scale
    return float(values[0]) if batch == () else values.reshape(batch)


# ---------------------------------------------------------------------------- numpy


def _histogram_numpy(kernel, P, Q, batch):
    """Run a fused row kernel; validate from the sums and sign counts it returns."""
    import numba

    from otdiv.kernels import divergence_numba

    out = np.empty(P.shape[0])
    stats = np.empty((P.shape[0], 4))
    getattr(divergence_numba, kernel)(P, Q, out, stats, numba.get_num_threads())
    shape = (*batch, P.shape[1])
    # a row with negative entries has its minimum computed again, on the error path only
    check_histograms(P.reshape(shape), "p", sums=stats[:, 0],
                     mins=None if stats[:, 2].any() else np.zeros(P.shape[0]))
    check_histograms(Q.reshape(shape), "q", sums=stats[:, 1],
                     mins=None if stats[:, 3].any() else np.zeros(Q.shape[0]))
    return out


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _log_softmax_numpy(x: np.ndarray) -> np.ndarray:
    from scipy.special import log_softmax

    return log_softmax(x, axis=-1)


# ---------------------------------------------------------------------------- torch


def _kl_torch(P, Q, sp, sq):
    import torch

    a, b = P / sp.unsqueeze(-1), Q / sq.unsqueeze(-1)
    pos = a > 0
    both = pos & (b > 0)
    # log of a safe value where masked, so that no nan reaches the backward pass
    log_ratio = torch.log(torch.where(both, a, 1.0)) - torch.log(torch.where(both, b, 1.0))
    kl = torch.where(both, a * log_ratio, 0.0).sum(-1)
    infinite = (pos & (b == 0)).any(-1)
    return torch.where(infinite, torch.full_like(kl, math.inf), kl)


def _jsd_torch(P, Q, sp, sq):
    import torch

    a, b = P / sp.unsqueeze(-1), Q / sq.unsqueeze(-1)
    both = (a > 0) & (b > 0)
    s = torch.where(both, a + b, 1.0)
    d = torch.where(both, (a - b) / s, 0.0)
    # log(2a/(a+b)) = log1p(d), log(2b/(a+b)) = log1p(−d): one shared d keeps a small JSD
    # precise (see kernels/divergence_numba.py); far from p ≈ q the plain ratio is accurate
    near = d.abs() < 0.5
    la = torch.where(near, torch.log1p(d), torch.log(torch.where(both, 2.0 * a / s, 1.0)))
    lb = torch.where(near, torch.log1p(-d), torch.log(torch.where(both, 2.0 * b / s, 1.0)))
    inner = torch.where(both, a * la + b * lb, 0.0).sum(-1)
    # a bin where only one side has mass, say a: a log(2a/a) = a log 2
    alone = torch.where(both, 0.0, a + b).sum(-1)
    return 0.5 * (inner + LOG2 * alone)


# ---------------------------------------------------------------------------- public API


def kl(p: Array, q: Array, *, axis: int = -1, base: float | None = None,
       logits: bool = False) -> float | Array:
    r"""KL(p ‖ q) = Σ_i p_i log(p_i / q_i), with 0 log 0 = 0 and +inf where p_i > 0 = q_i.

    Parameters
    ----------
    p, q
        Histograms (nonnegative, each normalised to sum 1 along ``axis``), or with
        ``logits=True`` unnormalised log-probabilities (p = softmax(p) along ``axis``). Shapes
        broadcast; every index of the other axes is one pair of distributions.
    axis
        The axis of the bins.
    base
        Base of the logarithm; natural log (nats) when None, 2 for bits.
    logits
        Inputs are logits: computed with log-softmax, so the value is finite and exact even
        for logits of ±1e4 (where softmax itself underflows to 0).

    Returns
    -------
    A Python float for 1-D numpy inputs, a numpy array of the broadcast shape without
    ``axis`` for batched ones; for torch tensors a tensor of that shape on the input's device,
    differentiable in p and q.

    Raises ValueError for negative entries, NaN or inf, or an all-zero histogram (the message
    names p or q and, when batched, the batch index). Unlike ``scipy.stats.entropy`` the result
    is never NaN for valid input.
    """
    scale = _log_scale(base)
    kind, P, Q, batch, sp, sq = _prepare(p, q, axis, logits)
    if logits:
        if kind == "torch":
            lp, lq = P.log_softmax(-1), Q.log_softmax(-1)
            values = (lp.exp() * (lp - lq)).sum(-1)
        else:
            lp, lq = _log_softmax_numpy(P), _log_softmax_numpy(Q)
            values = _row_dot(np.exp(lp), lp - lq)
    elif kind == "torch":
        values = _kl_torch(P, Q, sp, sq)
    else:
        values = _histogram_numpy("kl_rows", P, Q, batch)
    return _finish(values, kind, batch, scale, math.inf)


def jsd(p: Array, q: Array, *, axis: int = -1, base: float | None = None,
        logits: bool = False) -> float | Array:
    r"""JSD(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2; a value in [0, log 2].

    This is the divergence, not its square root: ``scipy.spatial.distance.jensenshannon``
    returns sqrt(JSD). It equals log 2 exactly when p and q have disjoint supports (and is 1
    in base 2). Parameters, batching and return values are those of :func:`kl`; with
    ``logits=True``, log m = logaddexp(log p, log q) − log 2 keeps it exact for logits of
    ±1e4.

    Raises ValueError for negative entries, NaN or inf, or an all-zero histogram (the message
    names p or q and, when batched, the batch index).
    """
    scale = _log_scale(base)
    kind, P, Q, batch, sp, sq = _prepare(p, q, axis, logits)
    if logits:
        if kind == "torch":
            import torch

            lp, lq = P.log_softmax(-1), Q.log_softmax(-1)
            lm = torch.logaddexp(lp, lq) - LOG2
            values = 0.5 * ((lp.exp() * (lp - lm)).sum(-1) + (lq.exp() * (lq - lm)).sum(-1))
        else:
            lp, lq = _log_softmax_numpy(P), _log_softmax_numpy(Q)
            lm = np.logaddexp(lp, lq) - LOG2
            values = 0.5 * (_row_dot(np.exp(lp), lp - lm) + _row_dot(np.exp(lq), lq - lm))
    elif kind == "torch":
        values = _jsd_torch(P, Q, sp, sq)
    else:
        values = _histogram_numpy("jsd_rows", P, Q, batch)
    return _finish(values, kind, batch, scale, LOG2)


# ---------------------------------------------------------------------------- k-NN estimators


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
    if kind == "torch" and x.dtype != y.dtype:
        import torch

        dtype = torch.promote_types(x.dtype, y.dtype)
        x, y = x.to(dtype), y.to(dtype)
    for name, pts, need in (("x", x, need_x), ("y", y, need_y)):
        if pts.shape[0] < need:
            raise ValueError(
                f"{name} has {pts.shape[0]} points; k={k} needs at least {need} "
                "(lower k or draw more samples)"
            )
    return kind, x, y, k


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
    kind, x, y, k = _prepare_samples(x, y, k, need_x=k + 1, need_y=k)
    n, d = x.shape
    m = y.shape[0]
    xn, yn = to_numpy64(x), to_numpy64(y)
    rho, i_rho = _kth_neighbour(xn, xn, k, self_included=True)
    nu, i_nu = _kth_neighbour(yn, xn, k, self_included=False)
    _no_ties(rho, "x has repeated points", k)
    _no_ties(nu, "x has points that coincide with points of y", k)
    value = d * (_log_distances(x, y, i_nu, nu, kind) - _log_distances(x, x, i_rho, rho, kind))
    return value + math.log(m / (n - 1))


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
    kind, x, y, k = _prepare_samples(x, y, k, need_x=k + 1, need_y=k + 1)
    n, m = x.shape[0], y.shape[0]
    xn, yn = to_numpy64(x), to_numpy64(y)
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
    if kind == "torch":
        return value.clamp(0.0, LOG2)
    return min(max(value, 0.0), LOG2)
