"""Discrete optimal transport on a given cost matrix: the problem as stated, not rescaled."""

from __future__ import annotations

import warnings

import numpy as np

from otdiv._array import array_kind, as_float_array, as_weights, check_positive, to_numpy64
from otdiv.metrics.envelope import add_weight_gradients
from otdiv.metrics.results import TransportResult, warn_not_converged

MASS_RTOL = 1e-6


def transport(a, b, cost, *, eps: float | None = None, **solver_options) -> TransportResult:
    r"""Optimal transport between histograms a and b for the cost matrix C.

    .. math:: \mathrm{OT}(a, b) = \min_{P \ge 0,\ P 1 = a,\ P^\top 1 = b} \langle P, C\rangle
              \;(+\ \varepsilon\,\mathrm{KL}(P \,\|\, a \otimes b) \text{ when eps is given})

    Unlike the point-cloud functions, the masses are not normalized: a and b must carry the
    same total mass (relative tolerance 1e-6) or a ValueError says so.

    Args:
        a: (n,) nonnegative source masses. b: (m,) nonnegative target masses.
        cost: (n, m) finite cost matrix.
        eps: None for the exact problem (network simplex); > 0 for entropic OT (Sinkhorn).
        **solver_options: passed to the entropic solver (``tol``, ``max_iter``, ...).

    Returns:
        TransportResult with ``value`` (float, or a tensor differentiable in a, b and cost
        on the torch path), ``plan``, dual potentials ``f``, ``g`` (⟨a, f⟩ + ⟨b, g⟩ = value).
    """
    kind = array_kind({"a": a, "b": b, "cost": cost})
    C = as_float_array(cost, "cost")
    if C.ndim != 2:
        raise ValueError(f"cost must be a 2-D (n, m) matrix, got shape {tuple(C.shape)}")
    n, m = C.shape
    if n == 0 or m == 0:
        raise ValueError(f"cost is empty (shape {tuple(C.shape)}); it needs n, m >= 1")
    a = as_weights(a, n, "a", like=C, normalize=False)
    b = as_weights(b, m, "b", like=C, normalize=False)
    an, bn, Cn = to_numpy64(a), to_numpy64(b), to_numpy64(C)
    # masses and costs are rescaled to order 1 before any solver sees them (the problem is
    # homogeneous: OT(s a, s b, c C) = s c OT(a, b, C)); POT's simplex has absolute
    # tolerances and crashes on masses near the float range's ends
    scale = max(an.max(), bn.max())
    an, bn = an / scale, bn / scale
    sa, sb = an.sum(), bn.sum()
    if abs(sa - sb) > MASS_RTOL * max(sa, sb):
        raise ValueError(
            f"a and b must have the same total mass (relative tolerance {MASS_RTOL:g}); got "
            f"sum(a)={sa * scale:.10g} and sum(b)={sb * scale:.10g}. otdiv has no unbalanced "
            "solver: divide each by its sum to compare shapes (a / a.sum(), b / b.sum()), or "
            "add the missing mass as a dummy point with its own cost row or column"
        )
    if eps is not None:
        check_positive(eps, "eps")
        from otdiv.metrics.sinkhorn import transport_entropic

        return transport_entropic(a, b, C, eps=eps, kind=kind, **solver_options)
    if solver_options:
        raise TypeError(f"unexpected options for the exact solver: {', '.join(solver_options)}")

    import ot

    cmax = float(np.abs(Cn).max())
    unit = Cn / cmax if cmax > 0 else Cn
    au, bu = an / sa, bn / sb  # each sums to 1 up to rounding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plan_u, log = ot.emd(au, bu, unit, numItermax=2**62, log=True)
    converged = log["result_code"] == 1
    if not converged:
        warn_not_converged("transport", f"network simplex status {log['warning']!r}")
    c = cmax if cmax > 0 else 1.0
    with np.errstate(over="ignore"):  # a value past the float range is inf, as it should be
        cost_value = float((plan_u * unit).sum()) * c * sa * scale
    f, g = log["u"] * c, log["v"] * c
    plan = (plan_u * sa) * scale  # entries <= min(a_i, b_j): finite even if the total is not
    if kind == "torch":
        import torch

        P = torch.as_tensor(plan, dtype=C.dtype, device=C.device)
        value = add_weight_gradients((P * C).sum(), a, f, b, g)
    else:
        value = cost_value
    return TransportResult(
        value=value, cost=cost_value, f=f, g=g, converged=converged,
        status="optimal" if converged else "not_optimal", method="network_simplex",
        transport_cost=cost_value, _plan_fn=lambda: plan,
    )


__all__ = ["transport"]
