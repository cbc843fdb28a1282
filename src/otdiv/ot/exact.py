"""Exact optimal transport: the method table, ``auto``, and each exact solver.

Every solver takes point clouds at unit scale (float64 numpy, weights summing to 1) and
returns an :class:`ExactSolution`: the optimum min ⟨P, C⟩, the optimal plan as a sparse
support (rows, cols, masses) and dual potentials (f, g). Methods:

* ``"1d"`` — the closed form on the line: sort, then couple quantiles (O(n log n));
* ``"sparse_simplex"`` — otdiv's network simplex on a sparse arc set completed by pricing all
  pairs against its potentials, started coarse-to-fine (:mod:`otdiv.ot.network_simplex`);
* ``"network_simplex"`` — POT's exact network simplex on otdiv's dense cost matrix;
* ``"network_simplex_lazy"`` — the same simplex computing costs on the fly (p = 1 or 2).

:func:`solve_cost` is the exact problem on a given cost matrix (``otdiv.transport``).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from otdiv._pot import import_pot
from otdiv.ot.results import INFEASIBLE, MAX_ITER, OPTIMAL, UNBOUNDED

METHODS = ("auto", "1d", "sparse_simplex", "network_simplex", "network_simplex_lazy")
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes for the dense path: cost matrix + plan, float64
SPARSE_MIN_PAIRS = 1000 * 1000  # below this, POT's dense simplex is faster (docs/benchmarks.md)
UNLIMITED = 2**62  # the network simplex terminates; no practical cap unless asked


@dataclass
class ExactSolution:
    cost: float  # min ⟨P, C⟩
    rows: np.ndarray
    cols: np.ndarray
    mass: np.ndarray
    f: np.ndarray | None
    g: np.ndarray | None
    converged: bool = True
    status: str = OPTIMAL
    n_iter: int | None = None

    def dense_plan(self, n: int, m: int) -> np.ndarray:
        plan = np.zeros((n, m))
        np.add.at(plan, (self.rows, self.cols), self.mass)
        return plan

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


def _solve_1d(x, y, a, b, p, *, uniform: bool, need_plan: bool, **_) -> ExactSolution:
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
        return ExactSolution(float(cost), empty, empty, np.empty(0), None, None)
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
    return ExactSolution(cost, rows, cols, mass, f, g)


def _status(code: int) -> tuple[bool, str]:
    """POT's result_code in the one status vocabulary (otdiv.ot.results)."""
    status = {1: OPTIMAL, 0: INFEASIBLE, 2: UNBOUNDED}.get(code, MAX_ITER)
    return status == OPTIMAL, status


def _solve_network_simplex(x, y, a, b, p, *, max_iter, **_) -> ExactSolution:
    from otdiv.kernels.cost_numba import cost_matrix

    return emd(a, b, cost_matrix(x, y, p), max_iter)


def emd(a, b, cost, max_iter) -> ExactSolution:
    """POT's dense network simplex on a cost matrix, as a sparse ExactSolution."""
    ot = import_pot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the status is read from result_code
        plan, log = ot.emd(a, b, cost, numItermax=max_iter, log=True)
    rows, cols = np.nonzero(plan)
    mass = plan[rows, cols]
    converged, status = _status(log["result_code"])
    return ExactSolution(float(mass @ cost[rows, cols]), rows, cols, mass, log["u"], log["v"],
                     converged, status)


def _solve_network_simplex_lazy(x, y, a, b, p, *, max_iter, need_plan, **_) -> ExactSolution:
    ot = import_pot()
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
        return ExactSolution(float(log["cost"]), empty, empty, np.empty(0), log["u"], log["v"],
                         converged, status)
    plan = log["G"].tocoo()
    rows, cols, mass = plan.row.astype(np.int64), plan.col.astype(np.int64), plan.data
    keep = mass > 0
    rows, cols, mass = rows[keep], cols[keep], mass[keep]
    from otdiv.kernels.cost_numba import pair_cost

    cost = float(mass @ pair_cost(x, y, rows, cols, p))
    return ExactSolution(cost, rows, cols, mass, log["u"], log["v"], converged, status)


def _solve_sparse_simplex(x, y, a, b, p, *, max_iter, uniform, memory_budget,
                          **_) -> ExactSolution:
    from otdiv.ot.multiscale import exact_transport

    sol = exact_transport(x, y, a, b, p, max_pivots=max_iter,
                          memory_budget=memory_budget)
    status = OPTIMAL if sol.converged else MAX_ITER
    return ExactSolution(sol.cost, sol.rows, sol.cols, sol.mass, sol.f, sol.g, sol.converged,
                     status, sol.pivots)


SOLVERS = {
    "1d": _solve_1d,
    "sparse_simplex": _solve_sparse_simplex,
    "network_simplex": _solve_network_simplex,
    "network_simplex_lazy": _solve_network_simplex_lazy,
}


def auto_method(n: int, m: int, d: int, p: float, uniform: bool, memory_budget: float) -> str:
    """``method="auto"``: the 1-D closed form when d = 1; otdiv's ``"sparse_simplex"`` (its
    multiscale start) from n·m >= 10^6 pairs, weighted or not, and whenever the dense cost
    matrix and plan would not fit ``memory_budget``; POT's dense simplex below (its lower
    overhead wins on small problems: docs/benchmarks.md)."""
    if d == 1:
        return "1d"
    if 16 * n * m > memory_budget or n * m >= SPARSE_MIN_PAIRS:
        return "sparse_simplex"
    return "network_simplex"


def solve_cost(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> ExactSolution:
    """min ⟨P, C⟩ over couplings of a and b (equal total masses, not normalized) for a given
    finite cost matrix: POT's dense network simplex on the problem rescaled to order 1.

    The problem is homogeneous, OT(s a, s b, c C) = s c OT(a, b, C): masses are divided by
    their largest entry and by their sum, costs by their largest magnitude, before POT sees
    them (its simplex has absolute tolerances and crashes on masses near the float range's
    ends), and the solution is scaled back.
    """
    scale = max(a.max(), b.max())
    an, bn = a / scale, b / scale
    sa, sb = an.sum(), bn.sum()
    cmax = float(np.abs(cost).max())
    c = cmax if cmax > 0 else 1.0
    sol = emd(an / sa, bn / sb, cost / c, UNLIMITED)
    sol.mass = (sol.mass * sa) * scale  # entries <= min(a_i, b_j): finite even if the total is not
    with np.errstate(over="ignore"):  # a value past the float range is inf, as it should be
        sol.cost = sol.cost * c * sa * scale
    sol.f, sol.g = sol.f * c, sol.g * c
    return sol
