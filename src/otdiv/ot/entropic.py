"""Entropic OT problems, solved: point clouds (scaled, single or batched) or a cost matrix.

OT_eps = min_{P ∈ Π(a, b)} ⟨P, C⟩ + eps·KL(P ‖ a⊗b). Each function takes validated inputs,
picks a geometry from the one table (:func:`otdiv.ot.geometry.geometry`), runs a loop of
:mod:`otdiv.ot.sinkhorn` without autograd, and returns a :class:`TransportResult` whose
torch value carries the envelope-theorem gradients (∂/∂a = f, ∂/∂b = g, ∂/∂x_i =
Σ_j P_ij ∇_x c(x_i, y_j), ∂/∂C = P): backward memory does not depend on the sweeps.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from otdiv._array import to_numpy64
from otdiv._scaling import pow2_exponent
from otdiv.ot.envelope import matrix_value, plan_cost_value
from otdiv.ot.geometry import DENSE_BUDGET, geometry
from otdiv.ot.results import (
    MAX_ITER,
    NOT_FINITE,
    OPTIMAL,
    TransportResult,
    warn_not_converged,
)
from otdiv.ot.sinkhorn import (
    DEFAULT_EPS_SCALING,
    DEFAULT_MAX_ITER,
    check_options,
    iterate_batched,
    solve,
)

TINY_EPS = 1e-300  # eps of the unit-scale problem is kept in [TINY_EPS, 1/TINY_EPS]


def _torch_eps(eps: float, dtype) -> float:
    """eps within the range of a torch float dtype (float32 ends at 3.4e38): past C_max /
    ulp the problem no longer depends on eps, so a quarter of the largest float is as good."""
    import torch

    return min(eps, float(torch.finfo(dtype).max) / 4)


def _status(converged, err) -> str:
    ok, finite = np.all(converged), np.all(np.isfinite(err))
    return OPTIMAL if ok else MAX_ITER if finite else NOT_FINITE


def _result(value, dual, transport_cost, f, g, err, n_iter, converged, method, plan_fn):
    return TransportResult(
        value=value, cost=dual, f=to_numpy64(f), g=to_numpy64(g), converged=converged,
        status=_status(converged, err), method=method, n_iter=n_iter, marginal_error=err,
        transport_cost=transport_cost, _plan_fn=plan_fn,
    )


def _times_pow2(v, e: float):
    """v · 2^e for a float, numpy array or tensor, in factors of at most 2^±1000 so that no
    factor over- or underflows where the product does not (0 or inf where it does)."""
    while e != 0:
        step = max(-1000.0, min(1000.0, e))
        if isinstance(v, float):
            with np.errstate(over="ignore", under="ignore"):
                v = float(np.float64(v) * np.exp2(step))
        else:
            v = v * float(np.exp2(step))
        e -= step
    return v


def clouds(x, y, a, b, kind, *, eps, p, **options) -> TransportResult:
    """OT_eps between validated clouds (value differentiable on the torch path).

    options: tol, max_iter, eps_scaling, backend (``"numba"`` or ``"torch"``, resolved),
    budget (n·m entries a geometry may store), what (the caller's name, for warnings),
    symmetric (y is x and b is a: the debiasing terms of the Sinkhorn divergence).

    OT_eps is homogeneous: for x' = x / 2^k, y' = y / 2^k the cost is C / 2^(kp), and
    OT_eps(x, y) = 2^(kp) · OT_{eps / 2^(kp)}(x', y'). The solver sees coordinates below 1 in
    magnitude, so no cost over- or underflows whatever the scale of the data (1e±300).
    """
    k = pow2_exponent(x, y)  # max |coordinate| < 2^k: dividing by 2^k is exact
    if k == 0:
        return _clouds_unit(x, y, a, b, kind, eps=eps, p=p, **options)
    scale = k * p  # C = 2^scale · C'
    eps_unit = min(max(_times_pow2(eps, -scale), TINY_EPS), 1.0 / TINY_EPS)
    res = _clouds_unit(_times_pow2(x, -k), _times_pow2(y, -k), a, b, kind, eps=eps_unit, p=p,
                       **options)
    return dataclasses.replace(
        res, value=_times_pow2(res.value, scale), cost=_times_pow2(res.cost, scale),
        transport_cost=_times_pow2(res.transport_cost, scale), f=_times_pow2(res.f, scale),
        g=_times_pow2(res.g, scale),
    )


def _clouds_unit(x, y, a, b, kind, *, eps, p, tol, max_iter, eps_scaling, backend,
                 budget, what, symmetric=False):
    """:func:`clouds` on coordinates of magnitude < 1."""
    if backend == "numba":
        xn, yn, an, bn = (to_numpy64(v) for v in (x, y, a, b))
        geo = geometry("numpy", x=xn, y=yn, a=an, b=bn, p=p, eps=eps, tol=tol,
                       budget=budget)
        f, g, err, n_iter, ok, excess, *_ = solve(geo, an, bn, eps, tol, max_iter, eps_scaling,
                                              what, symmetric)
        dual = float(an @ f + bn @ g) - eps * excess
        tcost = geo.transport_cost(f, g, eps)
        if kind == "torch":
            import torch

            ft = torch.as_tensor(f, dtype=x.dtype, device=x.device)
            gt = torch.as_tensor(g, dtype=x.dtype, device=x.device)
            value = plan_cost_value(x, y, a, b, ft, gt, dual, eps, p, budget)[0]
        else:
            value = dual
        return _result(value, dual, tcost, f, g, err, n_iter, ok, geo.method,
                       lambda: geo.plan(f, g, eps))

    import torch

    eps = _torch_eps(eps, x.dtype)
    with torch.no_grad():
        geo = geometry("torch", x=x, y=y, a=a, b=b, p=p, eps=eps, tol=tol, budget=budget)
        f, g, err, n_iter, ok, excess, *_ = solve(geo, geo.a, geo.b, eps, tol, max_iter,
                                              eps_scaling, what, symmetric)
        dual_t = (geo.a * f).sum() + (geo.b * g).sum() - eps * excess
    value, tcost = plan_cost_value(x, y, a, b, f, g, dual_t, eps, p, budget)
    return _result(value, float(dual_t), tcost, f, g, err, n_iter, ok, geo.method,
                   lambda: to_numpy64(geo.plan(f, g, eps)))


def batched(x, y, a, b, *, eps, p, tol, max_iter, eps_scaling,
            budget=DENSE_BUDGET) -> TransportResult:
    """B independent OT_eps problems (validated torch tensors x (B, n, d), y (B, m, d),
    a (B, n), b (B, m)); returns a TransportResult with per-problem fields (arrays)."""
    import torch

    eps = _torch_eps(eps, x.dtype)
    with torch.no_grad():
        geo = geometry("torch", x=x, y=y, a=a, b=b, p=p, eps=eps, tol=tol, budget=budget)
        f, g, err, n_iter, ok = iterate_batched(geo, eps, tol, max_iter, eps_scaling)
        ok = ok & torch.isfinite(err)
        dual = (geo.a * f).sum(-1) + (geo.b * g).sum(-1)
    err_np, n_iter_np, ok_np = to_numpy64(err), n_iter.cpu().numpy(), ok.cpu().numpy()
    if not ok_np.all():
        bad = np.flatnonzero(~ok_np)
        warn_not_converged(
            "sinkhorn (batched)",
            f"problems {bad.tolist()} have L1 marginal errors {err_np[bad].tolist()} above "
            f"tol={tol:g} after max_iter={max_iter} Sinkhorn sweeps; raise max_iter, raise "
            "eps, or loosen tol",
        )
    value, tcost = plan_cost_value(x, y, a, b, f, g, dual, eps, p, budget)
    return _result(value, to_numpy64(dual), tcost, f, g, err_np, n_iter_np, ok_np,
                   geo.method + "/batched", lambda: to_numpy64(geo.plan(f, g, eps)))


def cost_matrix(a, b, C, *, eps: float, kind: str, tol: float = 1e-6,
                max_iter: int = DEFAULT_MAX_ITER,
                eps_scaling: float | None = DEFAULT_EPS_SCALING) -> TransportResult:
    """OT_eps for a given cost matrix: the entropic path of :func:`otdiv.transport` (inputs
    validated, equal masses, not normalized).

    OT_eps = min_{P ∈ Π(a, b)} ⟨P, C⟩ + eps Σ_ij P_ij log(P_ij / (a_i b_j)).
    """
    check_options(tol, max_iter, eps_scaling)
    what = "transport(eps=...)"
    if kind == "numpy":
        geo = geometry("numpy", a=a, b=b, cost=C, eps=eps, tol=tol)
        f, g, err, n_iter, ok, excess, *_ = solve(geo, a, b, eps, tol, max_iter, eps_scaling, what)
        dual = float(a @ f + b @ g) - eps * excess
        return _result(dual, dual, geo.transport_cost(f, g, eps), f, g, err, n_iter, ok,
                       geo.method, lambda: geo.plan(f, g, eps))

    import torch

    eps = _torch_eps(eps, C.dtype)
    with torch.no_grad():
        geo = geometry("torch", a=a, b=b, cost=C, eps=eps, tol=tol)
        f, g, err, n_iter, ok, excess, *_ = solve(geo, geo.a, geo.b, eps, tol, max_iter,
                                              eps_scaling, what)
        P = geo.plan(f, g, eps)
        dual_t = (geo.a * f).sum() + (geo.b * g).sum() - eps * excess
        tcost = float((P * C.detach()).sum())
    value = matrix_value(C, a, b, P, f, g, value=dual_t)
    return _result(value, float(dual_t), tcost, f, g, err, n_iter, ok, geo.method,
                   lambda: to_numpy64(P))


__all__ = ["DENSE_BUDGET", "batched", "clouds", "cost_matrix"]
