"""Discrete optimal transport on a given cost matrix: the problem as stated, not rescaled."""

from __future__ import annotations

from otdiv._array import array_kind, as_float_array, as_weights, check_positive, to_numpy64
from otdiv.ot import entropic
from otdiv.ot.envelope import matrix_value
from otdiv.ot.exact import solve_cost
from otdiv.ot.results import TransportResult, support_marginal_error, warn_not_converged

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
    scale = max(an.max(), bn.max())  # the total masses compared without overflow
    sa, sb = (an / scale).sum(), (bn / scale).sum()
    if abs(sa - sb) > MASS_RTOL * max(sa, sb):
        raise ValueError(
            f"a and b must have the same total mass (relative tolerance {MASS_RTOL:g}); got "
            f"sum(a)={sa * scale:.10g} and sum(b)={sb * scale:.10g}. otdiv has no unbalanced "
            "solver: divide each by its sum to compare shapes (a / a.sum(), b / b.sum()), or "
            "add the missing mass as a dummy point with its own cost row or column"
        )
    if eps is not None:
        check_positive(eps, "eps")
        return entropic.cost_matrix(a, b, C, eps=eps, kind=kind, **solver_options)
    if solver_options:
        raise TypeError(f"unexpected options for the exact solver: {', '.join(solver_options)}")
    sol = solve_cost(an, bn, Cn)
    if not sol.converged:
        warn_not_converged("transport", f"network simplex status {sol.status!r}")
    if kind == "torch":
        value = matrix_value(C, a, b, sol.dense_plan(n, m), sol.f, sol.g)
    else:
        value = sol.cost
    return TransportResult(
        value=value, cost=sol.cost, f=sol.f, g=sol.g, converged=sol.converged,
        status=sol.status, method="network_simplex",
        marginal_error=support_marginal_error(sol.rows, sol.cols, sol.mass, an, bn),
        transport_cost=sol.cost, plan_support=(sol.rows, sol.cols, sol.mass),
        _plan_fn=lambda: sol.dense_plan(n, m),
    )


__all__ = ["transport"]
