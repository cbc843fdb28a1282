"""Kullback–Leibler and Jensen–Shannon divergences of histograms and logits (``kl``, ``jsd``).

Histograms are normalised along ``axis`` and batched over every other axis. The numpy path is
one fused numba pass over the rows (src/otdiv/kernels/divergence_numba.py), which also yields
the sums and sign counts that validate and normalise them. The torch path is written with
masked ``torch.where`` so that zero bins give exact values *and* finite gradients, and runs
on any device. Logits take one path for both kinds (log-softmax in quarters). The k-NN
estimates from samples are ``otdiv.metrics.knn``.
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
    broadcast_pair,
    check_axis,
    check_histograms,
    detached,
    namespace,
    output,
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
    p, q = broadcast_pair(p, q, ("p", "q"))
    axis = check_axis(axis, p.ndim)
    if p.shape[axis] == 0:
        raise ValueError(f"p and q have no bins along axis {axis}; they need at least one")
    xp = namespace(kind)
    P, Q = xp.moveaxis(p, axis, -1), xp.moveaxis(q, axis, -1)
    batch = tuple(P.shape[:-1])
    if kind == "numpy":
        bins = P.shape[-1]
        P = np.ascontiguousarray(P).reshape(-1, bins)
        Q = np.ascontiguousarray(Q).reshape(-1, bins)
    if kind == "torch" and not logits:
        return kind, P, Q, batch, _torch_rows(P, "p"), _torch_rows(Q, "q")
    # numpy histograms are validated by the kernel's own pass over them
    return kind, P, Q, batch, None, None


def _finish(values, kind: str, batch: tuple, scale: float, upper: float):
    """Scale to ``base``, clip the rounding outside [0, upper], give the kind of the input."""
    values = namespace(kind).clip(values, 0.0, upper)
    return output((values * scale if scale != 1.0 else values).reshape(batch), kind)


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


def _log_bins(H, Hs, e, both):
    """log H where both sides have mass, taken as log(H·2^e) − e log 2 in rows scaled up
    (e >= 0: H·2^e is exact and normal). Its slope 1/H·2^e is then met at the scaled bins,
    where it meets the normalisation's slope before either is multiplied by 2^e: for a
    subnormal H the two are each near 1/H, beyond the float range, and would otherwise arrive
    at H as +inf and −inf (NaN) instead of their finite sum. Rows scaled down (their sum
    overflows) flush tiny bins, so they take log H itself."""
    import torch

    up = e >= 0
    scaled = torch.log(torch.where(both & up, Hs, 1.0)) - e * LOG2
    plain = torch.log(torch.where(up, 1.0, H))
    return torch.where(up, scaled, plain)


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
    log_ratio = _log_bins(Pm, Ps, ep, both) - _log_bins(Qm, Qs, eq, both) + log_sums
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
    xp = namespace(kind)
    top = xp.amax(detached(x), -1)[..., None]
    with np.errstate(over="ignore"):
        t = x - top  # −inf where the gap overflows: exp gives the right 0, with 0 gradient
    e = xp.exp(t)
    total = e.sum(-1)[..., None]
    return (x / 4 - top / 4) - xp.log(total) / 4, e / total


def _kl_logits(P, Q, kind: str):
    """KL(softmax P ‖ softmax Q) along the last axis, for logits anywhere in the float range.

    4 Σ p_j (lp_j/4 − lq_j/4): the quarters keep lp_j − lq_j from overflowing for logits of
    ±1e308 while p_j · (lp_j − lq_j) stays a float; bins with p_j = 0 are masked (their
    difference may be huge) so that no 0 · inf reaches the value or the gradient.
    """
    lp4, p = _log_softmax_quarter(P, kind)
    lq4, _ = _log_softmax_quarter(Q, kind)
    d4 = namespace(kind).where(p > 0, lp4 - lq4, 0.0)
    k4 = (p * d4).sum(-1)
    if not getattr(k4, "requires_grad", False):
        with np.errstate(over="ignore"):  # a KL past 1.8e308 is inf, the float it rounds to
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
    xp = namespace(kind)
    lp4, p = _log_softmax_quarter(P, kind)
    lq4, q = _log_softmax_quarter(Q, kind)
    with np.errstate(over="ignore"):  # a log-probability below −1.8e308 is −inf: p = 0 there
        lp, lq = 4 * lp4, 4 * lq4
    some = (p > 0) | (q > 0)
    lm = xp.logaddexp(xp.where(some, lp, 0.0), xp.where(some, lq, 0.0)) - LOG2
    ta = p * xp.where(p > 0, lp - lm, 0.0)
    tb = q * xp.where(q > 0, lq - lm, 0.0)
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
