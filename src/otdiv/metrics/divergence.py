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

import functools
import math
import numbers

import numpy as np

from otdiv._array import (
    Array,
    array_kind,
    as_float_array,
    as_points,
    check_axis,
    check_histograms,
    check_int,
    check_same_dim,
    check_seed,
    to_numpy64,
)

LOG2 = math.log(2.0)

# ------------------------------------------------------------------------ input handling


def _log_scale(base: object) -> float:
    """1 / log(base): a divergence in nats times this is one in ``base``.

    Only a base > 1 keeps KL >= 0 and JSD in [0, log 2]: log(base) < 0 for a base in (0, 1)
    would flip the sign, log 1 = 0 has no inverse and an infinite base maps everything to 0.
    """
    if base is None:
        return 1.0
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a real number > 1 or None, got {type(base).__name__}")
    base = float(base)
    if not (math.isfinite(base) and base > 1.0):
        raise ValueError(
            f"base must be a finite number > 1 (the base of the logarithm; a base <= 1 makes "
            f"the divergence negative or undefined), got {base}"
        )
    return 1.0 / math.log(base)


def _prepare(p, q, axis, logits: bool):
    """Validated (kind, P, Q, batch_shape, rows of P, rows of Q): broadcast, ``axis`` last.

    numpy: P and Q are C-contiguous (rows, bins) float64 arrays, and the rows None (the
    kernel validates and scales them); torch: (..., bins) tensors, and for histograms the
    rows (scaled, log2 scale, sum of scaled) of ``_torch_rows``.
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
        return kind, P, Q, batch, _torch_rows(P, "p"), _torch_rows(Q, "q")
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


def _log_softmax_numpy(x: np.ndarray) -> np.ndarray:
    from scipy.special import log_softmax

    with np.errstate(over="ignore"):  # x − max x may pass −1.8e308: −inf, whose exp is 0
        return log_softmax(x, axis=-1)


# ---------------------------------------------------------------------------- torch


@functools.cache
def _finite_grad_function():
    import torch

    class FiniteGrad(torch.autograd.Function):
        """Identity whose backward saturates ±inf to ±finfo.max.

        A true partial derivative can exceed the dtype's range (∂KL/∂q_j = −p_j/q_j with a
        float32 subnormal q_j is ~1e44); an optimiser turns inf into NaN (Adam: inf/inf), the
        largest finite value instead gives a finite, if large, step.
        """

        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            big = torch.finfo(grad.dtype).max
            return grad.clamp(-big, big)

    return FiniteGrad


def _torch_rows(h, name: str):
    """(h·2^e, e, Σ h·2^e): a row whose largest entry is below 0.5, or whose sum overflows,
    is scaled by the power of two that puts that entry in [0.5, 1).

    The scaled rows' sums neither overflow nor are subnormal, so normalising by them is safe;
    scaling down (only when the sum overflows) flushes entries below 2^-1022 of their row's
    largest, which is harmless for weights but not inside a ratio (KL takes its logs from h
    itself). Validates h (negative
    entries, zero mass) with those sums. Gradients reaching ``h`` are saturated at the dtype's
    largest value (``FiniteGrad``) rather than inf.
    """
    import torch

    if h.requires_grad:
        h = _finite_grad_function().apply(h)
    _, e = torch.frexp(h.detach().abs().amax(-1, keepdim=True))
    # scale up always (exact), down only where the sum overflows: that flushes subnormal
    # entries, whose own gradient (large: ½ log(2a/(a + b)) for a tiny a) would be lost
    overflow = torch.isinf(h.detach().sum(-1, keepdim=True))
    e = torch.where((e < 0) | overflow, -e, 0).to(h.dtype)
    half = torch.floor(e / 2)
    # two factors: 2^1073 (a subnormal float64 row) is itself no float64
    hs = h * torch.pow(2.0, half) * torch.pow(2.0, e - half)
    sums = hs.sum(-1)
    check_histograms(h, name, sums=sums.detach())
    return h, hs, e, sums


def _kl_torch(rows_p, rows_q):
    """KL of the rows of P and Q (see ``_torch_rows``), finite gradients at 0 log 0."""
    import torch

    P, Ps, ep, sp = rows_p
    Q, Qs, eq, sq = rows_q
    sp, sq = sp.unsqueeze(-1), sq.unsqueeze(-1)
    pos = P > 0
    both = pos & (Q > 0)
    Pm, Qm = torch.where(both, P, 1.0), torch.where(both, Q, 1.0)
    # log(p_j/q_j) = log P_j − log Q_j + log ΣQ − log ΣP, the sums' logs from the scaled sums:
    # a difference of logs never leaves the float range (p_j/q_j may: 1e-200/1e200), keeps
    # subnormal bins, and its gradient (1/P, −1/Q) is exact. Where the scaled bins and their
    # ratio are normal floats, log((Ps/Qs)(sq/sp)) is the more accurate value (p ≈ q, or the
    # large logs of a tiny row cancelling), so the forward value takes that one
    log_sums = (torch.log(sq) - eq * LOG2) - (torch.log(sp) - ep * LOG2)
    log_ratio = torch.log(Pm) - torch.log(Qm) + log_sums
    with torch.no_grad():
        tiny = torch.finfo(P.dtype).tiny
        normal = both & (Ps >= tiny) & (Qs >= tiny)
        r = torch.where(normal, Ps, 1.0) / torch.where(normal, Qs, 1.0) * (sq / sp)
        ok = normal & (r >= tiny) & (r < math.inf)
        correction = torch.where(ok, torch.log(torch.where(ok, r, 1.0)) - log_ratio, 0.0)
    # bins with P = 0 take no gradient from their own log (torch.xlogy's convention at 0)
    kl = torch.where(both, (Ps / sp) * (log_ratio + correction), 0.0).sum(-1)
    infinite = (pos & (Q == 0)).any(-1)  # Q == 0 also for −0.0
    return torch.where(infinite, torch.full_like(kl, math.inf), kl)


def _jsd_torch(rows_p, rows_q):
    """JSD of the rows of P and Q (see ``_torch_rows``), finite gradients at 0 log 0."""
    import torch

    # entries of P flushed by the scaling weigh < 2^-1022 here: no ratio magnifies them
    _, Ps, _, sp = rows_p
    _, Qs, _, sq = rows_q
    sp, sq = sp.unsqueeze(-1), sq.unsqueeze(-1)
    a, b = Ps / sp, Qs / sq
    both = (a > 0) & (b > 0)
    s = torch.where(both, a + b, 1.0)
    d = torch.where(both, (a - b) / s, 0.0)
    # log(2a/(a+b)) = log1p(d), log(2b/(a+b)) = log1p(−d): one shared d keeps a small JSD
    # precise (see kernels/divergence_numba.py); far from p ≈ q the plain ratio is accurate.
    # Each branch sees only arguments that are safe for it (d = −1 rounds in for a tiny a),
    # so that the branch torch.where discards passes no inf or NaN to the backward pass.
    near = d.abs() < 0.5
    far = both & ~near
    dn = torch.where(near, d, 0.0)
    la = torch.log(torch.where(far, 2.0 * a / s, 1.0))
    lb = torch.log(torch.where(far, 2.0 * b / s, 1.0))
    # a subnormal a (or b) carries few bits: its logs come from the scaled rows instead, so
    # that the value and the slope ½ log(2a/(a + b)) keep their precision
    tiny = torch.finfo(a.dtype).tiny
    sub = far & ((a < tiny) | (b < tiny))
    log_a = torch.log(torch.where(sub, Ps, 1.0)) - torch.log(sp)
    log_b = torch.log(torch.where(sub, Qs, 1.0)) - torch.log(sq)
    log_s = torch.logaddexp(log_a, log_b)
    la = torch.where(sub, LOG2 + log_a - log_s, la)
    lb = torch.where(sub, LOG2 + log_b - log_s, lb)
    la = torch.where(near, torch.log1p(dn), la)
    lb = torch.where(near, torch.log1p(-dn), lb)
    inner = torch.where(both, a * la + b * lb, 0.0).sum(-1)
    # a bin where only one side has mass, say a: a log(2a/a) = a log 2; the empty side gets
    # no gradient there (torch.xlogy's convention at 0; the true one-sided slope is −inf)
    alone = (torch.where(b > 0, 0.0, a) + torch.where(a > 0, 0.0, b)).sum(-1)
    return 0.5 * (inner + LOG2 * alone)


def _log_softmax_quarter(x, kind: str):
    """(log softmax(x) / 4, softmax(x)) along the last axis, for logits anywhere in the range.

    log softmax(x)_j = (x_j − max x) − log Σ exp(x − max x) lies in [−3.6e308, 0]: a quarter
    of it is always a float, so that differences of two of them cannot overflow either.
    """
    if kind == "torch":
        import torch

        top = x.detach().amax(-1, keepdim=True)
        t = x - top  # −inf where the gap overflows: exp gives the right 0, with 0 gradient
        e = torch.exp(t)
        total = e.sum(-1, keepdim=True)
        return (x / 4 - top / 4) - torch.log(total) / 4, e / total
    top = x.max(-1, keepdims=True)
    with np.errstate(over="ignore"):
        t = x - top
    e = np.exp(t)
    total = e.sum(-1, keepdims=True)
    return (x / 4 - top / 4) - np.log(total) / 4, e / total


def _kl_logits(P, Q, kind: str):
    """KL(softmax P ‖ softmax Q) along the last axis, for logits anywhere in the float range.

    4 Σ p_j (lp_j/4 − lq_j/4): the quarters keep lp_j − lq_j from overflowing for logits of
    ±1e308 while p_j · (lp_j − lq_j) stays a float; bins with p_j = 0 are masked (their
    difference may be huge) so that no 0 · inf reaches the value or the gradient.
    """
    where = np.where
    if kind == "torch":
        import torch

        where = torch.where
    lp4, p = _log_softmax_quarter(P, kind)
    lq4, _ = _log_softmax_quarter(Q, kind)
    d4 = where(p > 0, lp4 - lq4, 0.0)
    k4 = (p * d4).sum(-1)
    if kind == "numpy":
        with np.errstate(over="ignore"):  # a KL past 1.8e308 is inf, the float it rounds to
            return 4 * k4
    if not k4.requires_grad:
        return 4 * k4
    # Same value, and since Σ p = 1 the same gradient, but the slope in p_j is d_j − KL, not
    # d_j: near the top of the range d_j (6e38 in float32) overflows where the true
    # gradient p_j (d_j − KL) does not
    k4c = k4.detach()
    centred = (p * (d4 - k4c.unsqueeze(-1))).sum(-1)
    return 4 * (k4c + (centred - centred.detach()))


def _jsd_logits(P, Q, kind: str):
    """JSD(softmax P, softmax Q) along the last axis: ½ Σ p (lp − lm) + q (lq − lm).

    log m = logaddexp(lp, lq) − log 2 keeps it exact for any logits; bins where p (or q) is 0
    are masked on both sides of each where, so that −inf − (−inf) reaches neither the value
    nor the gradient.
    """
    if kind == "torch":
        import torch

        lp, lq = P.log_softmax(-1), Q.log_softmax(-1)
        where, exp, logaddexp = torch.where, torch.exp, torch.logaddexp
    else:
        lp, lq = _log_softmax_numpy(P), _log_softmax_numpy(Q)
        where, exp, logaddexp = np.where, np.exp, np.logaddexp
    p, q = exp(lp), exp(lq)
    some = (p > 0) | (q > 0)
    lm = logaddexp(where(some, lp, 0.0), where(some, lq, 0.0)) - LOG2
    ta = p * where(p > 0, lp - lm, 0.0)
    tb = q * where(q > 0, lq - lm, 0.0)
    return 0.5 * (ta + tb).sum(-1)


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
        values = _kl_logits(P, Q, kind)
    elif kind == "torch":
        values = _kl_torch(sp, sq)
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
        values = _jsd_logits(P, Q, kind)
    elif kind == "torch":
        values = _jsd_torch(sp, sq)
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
    # The estimates depend on distances only through their ratios (log ν − log ρ, and the
    # entropies' d·log ε in a combination whose weights sum to 0), so dividing the samples by
    # a common power of two changes nothing exactly, and keeps the KD-tree's squared distances
    # (and torch's norms) inside the float range: coordinates of 1e±200 in float64 or 1e±30
    # in float32 would otherwise overflow to inf or underflow to a false repeat.
    xn, yn = to_numpy64(x), to_numpy64(y)
    top = max(float(np.abs(xn).max()), float(np.abs(yn).max()))
    if top > 0:
        e = -math.frexp(top)[1]  # top · 2^e in [0.5, 1)
        xn, yn = np.ldexp(xn, e), np.ldexp(yn, e)
        if kind == "torch":
            import torch

            half = e // 2  # two factors: 2^e itself may be out of range (float32: 2^149)
            x = x * torch.pow(2.0, torch.tensor(float(half), dtype=x.dtype))
            x = x * torch.pow(2.0, torch.tensor(float(e - half), dtype=x.dtype))
            y = y * torch.pow(2.0, torch.tensor(float(half), dtype=y.dtype))
            y = y * torch.pow(2.0, torch.tensor(float(e - half), dtype=y.dtype))
        else:
            x, y = xn, yn
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
    if kind == "torch":
        return value.clamp(0.0, LOG2)
    return min(max(value, 0.0), LOG2)
