"""Exact Wasserstein distances W_p between weighted point clouds (the public entry point).

Validate → solve exactly (:mod:`otdiv.ot.exact`: the method table and ``auto``, run at a
scale float64 resolves by :mod:`otdiv.ot.exact_scale`) → one :class:`TransportResult`.
Methods: ``"1d"`` (sort and couple quantiles), ``"sparse_simplex"`` (otdiv's network simplex
on a sparse arc set, any p, no n x m matrix beyond ``memory_budget``), ``"network_simplex"``
(POT's on a dense cost matrix), ``"network_simplex_lazy"`` (POT's, costs on the fly, p = 1
or 2), ``"auto"`` (:func:`otdiv.ot.exact.auto_method`).

Every solver returns the optimal coupling as a sparse support (rows, cols, masses) and dual
potentials (f, g); the torch path builds a differentiable value from them (envelope
theorem): ∂W_p^p/∂x_i = Σ_j P_ij ∇_x c(x_i, y_j), ∂W_p^p/∂a = f, ∂W_p^p/∂b = g.
"""

from __future__ import annotations

import numpy as np

from otdiv._array import (
    array_kind,
    as_points,
    as_weights,
    check_choice,
    check_int,
    check_p,
    check_positive,
    check_same_dim,
    to_numpy64,
)
from otdiv.ot.envelope import root, support_value
from otdiv.ot.exact import DEFAULT_MEMORY_BUDGET, METHODS, UNLIMITED, auto_method
from otdiv.ot.exact_scale import at_scale, solve_clouds
from otdiv.ot.results import TransportResult, support_marginal_error, warn_not_converged


def wasserstein(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 1,
    method: str = "auto",
    return_result: bool = False,
    max_iter: int | None = None,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
):
    r"""Exact Wasserstein distance W_p between two weighted point clouds (default p = 1).

    .. math:: W_p(a, b) = \Big(\min_{P \in \Pi(a, b)} \sum_{ij} P_{ij}\,\|x_i - y_j\|_2^p\Big)^{1/p}

    Args:
        x: (n,) or (n, d) points of the first measure (numpy array or torch tensor).
        y: (m,) or (m, d) points of the second measure, same kind and dimension.
        a, b: nonnegative weights (n,) and (m,); uniform when None; normalized to sum 1.
        p: exponent of the ground cost, p >= 1.
        method: ``"auto"``, ``"1d"``, ``"sparse_simplex"``, ``"network_simplex"`` or
            ``"network_simplex_lazy"`` (module docstring).
        return_result: return a :class:`TransportResult` (value, cost = W_p^p, plan,
            potentials, status) instead of the value alone.
        max_iter: cap on network-simplex pivots (None: no cap; the simplex terminates).
            A capped, non-optimal run warns with :class:`ConvergenceWarning` and reports
            ``converged=False``.
        memory_budget: bytes a solver may spend on n x m arrays: ``"sparse_simplex"`` stores
            the cost matrix when it fits in half of it and otherwise prices on the fly;
            ``"network_simplex"`` needs the cost matrix and the plan.

    Returns:
        W_p: a Python float for numpy input; a 0-d tensor on the input's device and dtype for
        torch input, differentiable with respect to x, y, a and b.

    Example:
        >>> import numpy as np
        >>> from otdiv import wasserstein
        >>> wasserstein(np.array([0.0, 1.0]), np.array([2.0, 3.0]))
        2.0
    """
    kind = array_kind({"x": x, "y": y, "a": a, "b": b})
    x = as_points(x, "x")
    y = as_points(y, "y")
    check_same_dim(x, y)
    n, d = x.shape
    m = y.shape[0]
    uniform = a is None and b is None
    a = as_weights(a, n, "a", like=x)
    b = as_weights(b, m, "b", like=y)
    p = check_p(p)
    check_choice(method, "method", METHODS)
    limit = UNLIMITED if max_iter is None else check_int(max_iter, "max_iter")
    check_positive(memory_budget, "memory_budget")
    if method == "auto":
        method = auto_method(n, m, d, p, uniform, memory_budget)
    elif method == "1d" and d != 1:
        raise ValueError(f"method='1d' needs one-dimensional points, got d={d}")

    need_plan = return_result or kind == "torch"
    xn, yn, an, bn = (to_numpy64(v) for v in (x, y, a, b))
    sol, method, s = solve_clouds(xn, yn, an, bn, p, method=method, uniform=uniform,
                                  need_plan=need_plan, max_iter=limit,
                                  memory_budget=memory_budget)
    if not np.isfinite(sol.cost):
        raise ValueError(f"|x − y|^p overflows float64 at p={p:g} for these points (the "
                         "farthest pairs cost more than 1e308 times the nearest); use a "
                         "smaller p")
    if not sol.converged:
        warn_not_converged(
            f"wasserstein(method={method!r})",
            f"the network simplex stopped with status {sol.status!r} after max_iter={limit} "
            "pivots; the value is not the optimum — raise max_iter or leave it None",
        )
    if kind == "torch":
        value = root(support_value(x / s, y / s, a, b, sol.rows, sol.cols, sol.mass, sol.f,
                                   sol.g, p), p) * s
    else:
        value = sol.cost ** (1.0 / p) * s
    if not return_result:
        return value
    sol = at_scale(sol, s, p)
    return TransportResult(
        value=value,
        cost=sol.cost,
        f=sol.f,
        g=sol.g,
        converged=sol.converged,
        status=sol.status,
        method=method,
        n_iter=sol.n_iter,
        marginal_error=support_marginal_error(sol.rows, sol.cols, sol.mass, an, bn),
        transport_cost=sol.cost,
        plan_support=(sol.rows, sol.cols, sol.mass),
        _plan_fn=lambda: sol.dense_plan(n, m),
    )
