"""Exact Wasserstein distances W_p between weighted point clouds.

Solvers (chosen from a table by ``method``):

* ``"1d"`` — the closed form on the line: sort, then couple quantiles (O(n log n));
* ``"sparse_simplex"`` — otdiv's network simplex on a sparse arc set completed by pricing all
  pairs against its potentials, started coarse-to-fine (``otdiv.metrics.network_simplex``);
  no n x m matrix beyond ``memory_budget``, any p;
* ``"network_simplex"`` — POT's exact network simplex on otdiv's dense cost matrix;
* ``"network_simplex_lazy"`` — the same simplex computing costs on the fly, O(n + m) memory
  (p = 1 or 2 only, the costs POT's lazy solver knows);
* ``"auto"`` — 1-D closed form when d = 1; ``"sparse_simplex"`` for uniform weights with
  n = m >= 1000 (an assignment problem, where its coarse-to-fine start pays); POT's dense
  simplex for other problems that fit ``memory_budget`` (faster on small and on weighted
  problems, docs/benchmarks.md); beyond the budget, POT's lazy simplex for weighted p = 1, 2
  and ``"sparse_simplex"`` otherwise.

Every solver returns the optimal coupling as a sparse support (rows, cols, masses) and dual
potentials (f, g); the torch path builds a differentiable value from them (envelope
theorem): ∂W_p^p/∂x_i = Σ_j P_ij ∇_x c(x_i, y_j), ∂W_p^p/∂a = f, ∂W_p^p/∂b = g.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
from otdiv.metrics.envelope import add_weight_gradients, root
from otdiv.metrics.results import TransportResult, warn_not_converged

METHODS = ("auto", "1d", "sparse_simplex", "network_simplex", "network_simplex_lazy")
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes for the dense path: cost matrix + plan, float64
_SPARSE_MIN_PAIRS = 1000 * 1000  # below this, POT's dense simplex is faster (docs/benchmarks.md)
_UNLIMITED = 2**62  # the network simplex terminates; no practical cap unless asked


@dataclass
class _Solution:
    cost: float  # min ⟨P, C⟩
    rows: np.ndarray
    cols: np.ndarray
    mass: np.ndarray
    f: np.ndarray | None
    g: np.ndarray | None
    converged: bool = True
    status: str = "optimal"
    n_iter: int | None = None


# ---------------------------------------------------------------------------- solvers


def _on_two_threads(fn, first: tuple, second: tuple):
    """fn(*first), fn(*second) on two threads (numpy releases the GIL while sorting and
    gathering)."""
    if first[0].size + second[0].size < 200_000:
        return fn(*first), fn(*second)
    with ThreadPoolExecutor(2) as pool:
        f1, f2 = pool.submit(fn, *first), pool.submit(fn, *second)
        return f1.result(), f2.result()


def _sort_both(x: np.ndarray, y: np.ndarray, argsort: bool):
    """Sort two arrays on two threads."""
    return _on_two_threads(np.argsort if argsort else np.sort, (x,), (y,))


def _sorted_with_cumulative(v: np.ndarray, w: np.ndarray):
    order = np.argsort(v)
    return v[order], _cumulative(w[order])


def _cumulative(w: np.ndarray) -> np.ndarray:
    # the weights sum to 1; clip the rounding of the running sum (past 1 it would make the
    # cumulative weights decrease at the end, and a quantile interval negative)
    c = np.minimum(np.cumsum(w), 1.0)
    c[-1] = 1.0
    return c


def _solve_1d(x, y, a, b, p, *, uniform: bool, need_plan: bool, **_) -> _Solution:
    from otdiv.kernels import transport1d_numba as k1

    x, y = x[:, 0], y[:, 0]
    if not need_plan:
        if uniform and x.shape[0] == y.shape[0]:
            xs, ys = _sort_both(x, y, argsort=False)
            cost = k1.sorted_equal_uniform(xs, ys, p)
        else:
            (xs, ca), (ys, cb) = _on_two_threads(_sorted_with_cumulative, (x, a), (y, b))
            cost = k1.sorted_weighted(xs, ca, ys, cb, p)
        empty = np.empty(0, dtype=np.int64)
        return _Solution(float(cost), empty, empty, np.empty(0), None, None)
    ix, iy = _sort_both(x, y, argsort=True)
    rows, cols, mass, fs, gs = k1.sorted_weighted_plan(
        x[ix], _cumulative(a[ix]), y[iy], _cumulative(b[iy]), p
    )
    f = np.empty_like(fs)
    g = np.empty_like(gs)
    f[ix] = fs
    g[iy] = gs
    keep = mass > 0
    rows, cols, mass = ix[rows[keep]], iy[cols[keep]], mass[keep]
    cost = float(mass @ np.abs(x[rows] - y[cols]) ** p)
    return _Solution(cost, rows, cols, mass, f, g)


def _status(code: int) -> tuple[bool, str]:
    return {1: (True, "optimal"), 0: (False, "infeasible"), 2: (False, "unbounded")}.get(
        code, (False, "max_iter_reached")
    )


def _solve_network_simplex(x, y, a, b, p, *, max_iter, **_) -> _Solution:
    import ot

    from otdiv.kernels.cost_numba import cost_matrix

    cost = cost_matrix(x, y, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the status is read from result_code
        plan, log = ot.emd(a, b, cost, numItermax=max_iter, log=True)
    rows, cols = np.nonzero(plan)
    mass = plan[rows, cols]
    converged, status = _status(log["result_code"])
    return _Solution(float(mass @ cost[rows, cols]), rows, cols, mass, log["u"], log["v"],
                     converged, status)


def _solve_network_simplex_lazy(x, y, a, b, p, *, max_iter, need_plan, **_) -> _Solution:
    import ot

    if p not in (1.0, 2.0):
        raise ValueError(
            f"method='network_simplex_lazy' supports p = 1 or 2, got p={p}; use "
            "method='network_simplex' (dense cost matrix) for other exponents"
        )
    metric = "euclidean" if p == 1.0 else "sqeuclidean"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # the sparse plan costs memory: ask for it only when a gradient or result needs it
        _, log = ot.emd2_lazy(x, y, a, b, metric=metric, numItermax=max_iter, log=True,
                              return_matrix=need_plan)
    converged, status = _status(log["result_code"])
    if not need_plan:
        empty = np.empty(0, dtype=np.int64)
        return _Solution(float(log["cost"]), empty, empty, np.empty(0), log["u"], log["v"],
                         converged, status)
    plan = log["G"].tocoo()
    rows, cols, mass = plan.row.astype(np.int64), plan.col.astype(np.int64), plan.data
    keep = mass > 0
    rows, cols, mass = rows[keep], cols[keep], mass[keep]
    from otdiv.kernels.cost_numba import pair_cost

    cost = float(mass @ pair_cost(x, y, rows, cols, p))
    return _Solution(cost, rows, cols, mass, log["u"], log["v"], converged, status)


def _solve_sparse_simplex(x, y, a, b, p, *, max_iter, uniform, memory_budget, **_) -> _Solution:
    from otdiv.metrics.network_simplex import exact_transport

    sol = exact_transport(x, y, a, b, p, uniform=uniform, max_pivots=max_iter,
                          memory_budget=memory_budget)
    status = "optimal" if sol.converged else "max_iter_reached"
    return _Solution(sol.cost, sol.rows, sol.cols, sol.mass, sol.f, sol.g, sol.converged,
                     status, sol.pivots)


_SOLVERS = {
    "1d": _solve_1d,
    "sparse_simplex": _solve_sparse_simplex,
    "network_simplex": _solve_network_simplex,
    "network_simplex_lazy": _solve_network_simplex_lazy,
}


def _auto_method(n: int, m: int, d: int, p: float, uniform: bool, memory_budget: float) -> str:
    if d == 1:
        return "1d"
    assignment = uniform and n == m  # the coarse-to-fine start applies
    if 16 * n * m > memory_budget:  # memory-light exact paths
        return "network_simplex_lazy" if not assignment and p in (1.0, 2.0) else "sparse_simplex"
    if assignment and n * m >= _SPARSE_MIN_PAIRS:
        return "sparse_simplex"
    return "network_simplex"


# ---------------------------------------------------------------------------- torch


def differentiable_cost(x, y, a, b, sol: _Solution, p: float):
    """⟨P*, C(x, y)⟩ + ⟨a − sg(a), f⟩ + ⟨b − sg(b), g⟩ — equal to the optimum in value, with
    the envelope-theorem gradients in x, y, a and b (sg = stop-gradient)."""
    import torch

    from otdiv.kernels.cost_torch import pair_cost

    dev = x.device
    rows = torch.as_tensor(sol.rows, device=dev)
    cols = torch.as_tensor(sol.cols, device=dev)
    mass = torch.as_tensor(sol.mass, dtype=x.dtype, device=dev)
    value = (mass * pair_cost(x, y, rows, cols, p)).sum()
    return add_weight_gradients(value, a, sol.f, b, sol.g)


# ---------------------------------------------------------------------------- public


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
    r"""Exact Wasserstein distance W_p between two weighted point clouds.

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
    limit = _UNLIMITED if max_iter is None else check_int(max_iter, "max_iter")
    check_positive(memory_budget, "memory_budget")
    if method == "auto":
        method = _auto_method(n, m, d, p, uniform, memory_budget)
    elif method == "1d" and d != 1:
        raise ValueError(f"method='1d' needs one-dimensional points, got d={d}")

    need_plan = return_result or kind == "torch"
    xn, yn, an, bn = (to_numpy64(v) for v in (x, y, a, b))
    sol = _SOLVERS[method](xn, yn, an, bn, p, uniform=uniform, need_plan=need_plan,
                           max_iter=limit, memory_budget=memory_budget)
    if not sol.converged:
        warn_not_converged(
            f"wasserstein(method={method!r})",
            f"the network simplex stopped with status {sol.status!r} after max_iter={limit} "
            "pivots; the value is not the optimum — raise max_iter or leave it None",
        )

    if kind == "torch":
        value = root(differentiable_cost(x, y, a, b, sol, p), p)
    else:
        value = sol.cost ** (1.0 / p)
    if not return_result:
        return value

    def dense_plan(sol=sol):
        plan = np.zeros((n, m))
        np.add.at(plan, (sol.rows, sol.cols), sol.mass)
        return plan

    return TransportResult(
        value=value,
        cost=sol.cost,
        f=sol.f,
        g=sol.g,
        converged=sol.converged,
        status=sol.status,
        method=method,
        n_iter=sol.n_iter,
        plan_support=(sol.rows, sol.cols, sol.mass),
        _plan_fn=dense_plan,
    )

