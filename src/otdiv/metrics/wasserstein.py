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

import math
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
    from otdiv.kernels.cost_numba import cost_matrix

    return _emd(a, b, cost_matrix(x, y, p), max_iter)


def _emd(a, b, cost, max_iter) -> _Solution:
    """POT's dense network simplex on a cost matrix, as a sparse _Solution."""
    import ot

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


def _unit_scale(x: np.ndarray, y: np.ndarray, p: float) -> float:
    """A power of two s with every |x_i − y_j| / s below 1 and the largest of order 1 (1 when
    every point coincides); a power of two so that dividing by it is exact."""
    lo = np.minimum(x.min(axis=0), y.min(axis=0))
    hi = np.maximum(x.max(axis=0), y.max(axis=0))
    half = 0.5 * hi - 0.5 * lo  # half the bounding box, without overflow
    reach = float(np.max(half))
    if not reach > 0:
        return 1.0
    # the diagonal of the box is at most 2·sqrt(d)·reach
    return float(2.0 ** np.ceil(np.log2(reach) + 1 + 0.5 * np.log2(x.shape[1])))


_LARGE_P = 10.0  # from this p on, a cost range beyond _RANGE is refused
_RANGE = 1e-20  # optimum / largest cost below which a large-p plan cannot be resolved
_CAP = 1e6  # at the optimum's scale, pairs costing more are capped while solving
_SMALL_COST = 1e-6  # an optimum this far below the largest cost (1) is solved again at its scale
_EXP_MAX = 690.0  # costs are capped at e^690 ~ 1e300 (a pair that expensive is never used)


def _log_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    with np.errstate(divide="ignore"):
        return np.log(cdist(x, y))


def _solve_capped(x, y, a, b, p) -> _Solution:
    """The problem at the scale of its optimum (about 1), solved with the costs capped at
    _CAP: capping only lowers costs, so a plan that uses no capped pair is optimal for the
    uncapped problem too (and the capped one is well conditioned for the simplex); else the
    cap is raised to the float range."""
    sol = _solve_log_cost(x, y, a, b, p, math.log(_CAP))
    if sol.rows.size and np.max(np.linalg.norm(x[sol.rows] - y[sol.cols], axis=1)) ** p < _CAP:
        return sol
    return _solve_log_cost(x, y, a, b, p)


def _solve_log_cost(x, y, a, b, p, log_cap: float = _EXP_MAX) -> _Solution:
    """POT's simplex on C = exp(min(p log|x − y|, log_cap)), flushed to 0 below e^-745
    (|x − y|^p within the float range near the optimum; the scale is chosen by the caller)."""
    return _emd(a, b, np.exp(np.minimum(p * _log_distances(x, y), log_cap)), _UNLIMITED)


def _moves_mass(x, y, sol: _Solution) -> bool:
    """Whether the plan moves mass over a positive distance (else W_p = 0 exactly)."""
    if sol.rows.size == 0:
        return sol.cost > 0
    return bool((np.abs(x[sol.rows] - y[sol.cols]) > 0).any())


def _check_dense(x, y, p, memory_budget) -> None:
    if 16 * x.shape[0] * y.shape[0] > memory_budget:
        raise ValueError(
            f"W_p at p={p:g} is below float64's range at the scale of these points "
            "((W_p / diameter)^p underflows) and the dense log-domain solver that handles it "
            "does not fit memory_budget; use a smaller p or raise memory_budget")


def _large_p_scale(x, y, a, b, p, memory_budget) -> float:
    """A scale B with min_P Σ P (|x − y| / B)^p between 1e-200 and 1e200 (bisection on log B
    over the pairs' distances). x, y are at unit scale (distances < 1)."""
    _check_dense(x, y, p, memory_budget)
    logd = _log_distances(x, y)
    finite = logd[np.isfinite(logd)]
    lo, hi = float(finite.min()), 0.0  # log B in [log d_min, log 1]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        sol = _solve_log_cost(x / np.exp(mid), y / np.exp(mid), a, b, p)
        log10v = math.log10(sol.cost) if sol.cost > 0 else -math.inf
        if abs(log10v) <= 200:
            return float(np.exp(mid))
        if log10v > 200:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def _times(v, factor: float):
    if v is None:
        return None
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        out = np.where(v == 0, 0.0, v * factor)  # 0 stays 0 when the factor is inf
    return float(out) if isinstance(v, float) else out


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
    limit = _UNLIMITED if max_iter is None else check_int(max_iter, "max_iter")
    check_positive(memory_budget, "memory_budget")
    if method == "auto":
        method = _auto_method(n, m, d, p, uniform, memory_budget)
    elif method == "1d" and d != 1:
        raise ValueError(f"method='1d' needs one-dimensional points, got d={d}")

    need_plan = return_result or kind == "torch"
    xn, yn, an, bn = (to_numpy64(v) for v in (x, y, a, b))
    # W_p is homogeneous, W_p(s x, s y) = s W_p(x, y): every solver sees the problem at unit
    # scale (costs of order 1, no overflow or underflow of |x − y|^p, no absolute tolerance
    # of POT's simplex applied to costs of 1e-300), and the result is scaled back
    s = _unit_scale(xn, yn, p)
    sol = _SOLVERS[method](xn / s, yn / s, an, bn, p, uniform=uniform, need_plan=need_plan,
                           max_iter=limit, memory_budget=memory_budget)
    if p >= _LARGE_P and sol.cost < _RANGE:
        # (|x − y| / s)^p underflows: equal measures (W_1 = 0, then W_p = 0) are the one case
        # a plan can still be trusted
        same = _SOLVERS[method](xn / s, yn / s, an, bn, 1.0, uniform=uniform, need_plan=True,
                                max_iter=limit, memory_budget=memory_budget)
        if same.cost != 0.0 or _moves_mass(xn / s, yn / s, same):
            raise ValueError(
                f"p={p:g} is too large for these points in float64: the costs |x − y|^p "
                "span more than 1e20 between the optimum and the farthest pairs, so no "
                "simplex can resolve the plan (its potentials lose the pairs that decide it); "
                "use a smaller p (the limit depends on W_p / diameter: p = 20 resolves "
                "W_p down to a tenth of the diameter)")
        sol = _Solution(0.0, same.rows, same.cols, same.mass, np.zeros(n), np.zeros(m),
                        same.converged, same.status, same.n_iter)
    for _ in range(3):
        # the optimum is far below the largest cost (a large p, or clouds much closer to
        # each other than their spread): the simplex's tolerances and the underflow of
        # (|x − y| / s)^p act at the scale of the largest cost, so solve again at the scale
        # of W_p itself, where the optimum costs about 1
        if sol.cost >= _SMALL_COST or not _moves_mass(xn / s, yn / s, sol):
            break
        far = sol.cost ** (1.0 / p) if sol.cost > 0 else _large_p_scale(
            xn / s, yn / s, an, bn, p, memory_budget)
        s = s * far
        if 16 * n * m <= memory_budget:
            sol, method = _solve_capped(xn / s, yn / s, an, bn, p), "network_simplex"
        elif p * math.log(1.0 / far) < _EXP_MAX:  # the largest cost still fits the range
            sol = _SOLVERS[method](xn / s, yn / s, an, bn, p, uniform=uniform,
                                   need_plan=True, max_iter=limit, memory_budget=memory_budget)
        else:
            _check_dense(xn, yn, p, memory_budget)
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
        value = root(differentiable_cost(x / s, y / s, a, b, sol, p), p) * s
    else:
        value = sol.cost ** (1.0 / p) * s
    with np.errstate(over="ignore", under="ignore"):
        sp = np.float64(s) ** p  # cost and potentials scale by s^p (inf or 0 past the range)
    sol.cost, sol.f, sol.g = _times(sol.cost, sp), _times(sol.f, sp), _times(sol.g, sp)
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

