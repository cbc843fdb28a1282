"""Exact W_p between point clouds at a scale float64 resolves (homogeneity, then solve).

W_p is homogeneous, W_p(s x, s y) = s W_p(x, y): every solver sees the problem at unit scale
(costs of order 1, no overflow or underflow of |x − y|^p, no absolute tolerance of a
simplex applied to costs of 1e-300). When the optimum is still far below the largest cost
(a large p, or clouds much closer to each other than their spread) the problem is solved
again at the scale of W_p itself, with costs capped at ``_CAP`` times the optimum (a plan that
uses no capped pair is optimal for the uncapped problem). From p = ``_LARGE_P`` on, a cost
range float64 cannot resolve is a ValueError, not a silent number.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv.ot.exact import SOLVERS, UNLIMITED, ExactSolution, emd


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


def _solve_capped(x, y, a, b, p) -> ExactSolution:
    """The problem at the scale of its optimum (about 1), solved with the costs capped at
    _CAP: capping only lowers costs, so a plan that uses no capped pair is optimal for the
    uncapped problem too (and the capped one is well conditioned for the simplex); else the
    cap is raised to the float range."""
    sol = _solve_log_cost(x, y, a, b, p, math.log(_CAP))
    if sol.rows.size and np.max(np.linalg.norm(x[sol.rows] - y[sol.cols], axis=1)) ** p < _CAP:
        return sol
    return _solve_log_cost(x, y, a, b, p)


def _solve_log_cost(x, y, a, b, p, log_cap: float = _EXP_MAX) -> ExactSolution:
    """POT's simplex on C = exp(min(p log|x − y|, log_cap)), flushed to 0 below e^-745
    (|x − y|^p within the float range near the optimum; the scale is chosen by the caller)."""
    return emd(a, b, np.exp(np.minimum(p * _log_distances(x, y), log_cap)), UNLIMITED)


def _moves_mass(x, y, sol: ExactSolution) -> bool:
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


def solve_clouds(x, y, a, b, p: float, *, method: str, uniform: bool, need_plan: bool,
                 max_iter: int, memory_budget: float) -> tuple[ExactSolution, str, float]:
    """min Σ P_ij |x_i − y_j|^p for validated float64 clouds (weights summing to 1).

    Returns (solution, method used, s): the solution of the problem for x / s, y / s (its
    cost is min ⟨P, C⟩ / s^p), s a scale where float64 resolves it; :func:`at_scale` gives it
    back at the scale of x and y.
    """
    n, m = x.shape[0], y.shape[0]
    if n == m and np.array_equal(x, y) and np.array_equal(a, b):
        # a measure against itself: W_p = 0 exactly, with the diagonal plan. A simplex run
        # would leave flows rounded at (n + m)·eps on some costly pairs, and the p-th root
        # turns a cost of 1e-17 into W_2 = 4e-9, where d(x, x) = 0 is the first axiom
        # users check
        idx = np.arange(n)
        return (ExactSolution(0.0, idx, idx, np.asarray(a, dtype=np.float64).copy(),
                              np.zeros(n), np.zeros(m), True, "optimal", 0), method, 1.0)
    s = _unit_scale(x, y, p)
    sol = SOLVERS[method](x / s, y / s, a, b, p, uniform=uniform, need_plan=need_plan,
                          max_iter=max_iter, memory_budget=memory_budget)
    if p >= _LARGE_P and sol.cost < _RANGE:
        # (|x − y| / s)^p underflows: equal measures (W_1 = 0, then W_p = 0) are the one case
        # a plan can still be trusted
        same = SOLVERS[method](x / s, y / s, a, b, 1.0, uniform=uniform, need_plan=True,
                               max_iter=max_iter, memory_budget=memory_budget)
        if same.cost != 0.0 or _moves_mass(x / s, y / s, same):
            raise ValueError(
                f"p={p:g} is too large for these points in float64: the costs |x − y|^p "
                "span more than 1e20 between the optimum and the farthest pairs, so no "
                "simplex can resolve the plan (its potentials lose the pairs that decide it); "
                "use a smaller p (the limit depends on W_p / diameter: p = 20 resolves "
                "W_p down to a tenth of the diameter)")
        sol = ExactSolution(0.0, same.rows, same.cols, same.mass, np.zeros(n), np.zeros(m),
                            same.converged, same.status, same.n_iter)
    for _ in range(3):
        # the optimum is far below the largest cost (a large p, or clouds much closer to
        # each other than their spread): the simplex's tolerances and the underflow of
        # (|x − y| / s)^p act at the scale of the largest cost, so solve again at the scale
        # of W_p itself, where the optimum costs about 1
        if sol.cost >= _SMALL_COST or not _moves_mass(x / s, y / s, sol):
            break
        far = sol.cost ** (1.0 / p) if sol.cost > 0 else _large_p_scale(
            x / s, y / s, a, b, p, memory_budget)
        s = s * far
        if 16 * n * m <= memory_budget:
            sol, method = _solve_capped(x / s, y / s, a, b, p), "network_simplex"
        elif p * math.log(1.0 / far) < _EXP_MAX:  # the largest cost still fits the range
            sol = SOLVERS[method](x / s, y / s, a, b, p, uniform=uniform, need_plan=True,
                                  max_iter=max_iter, memory_budget=memory_budget)
        else:
            _check_dense(x, y, p, memory_budget)
    return sol, method, s


def at_scale(sol: ExactSolution, s: float, p: float) -> ExactSolution:
    """The solution for (x, y) from that for (x / s, y / s): cost and potentials times s^p
    (inf or 0 past the float range; the plan does not change)."""
    with np.errstate(over="ignore", under="ignore"):
        sp = np.float64(s) ** p
    return ExactSolution(_times(sol.cost, sp), sol.rows, sol.cols, sol.mass, _times(sol.f, sp),
                         _times(sol.g, sp), sol.converged, sol.status, sol.n_iter)
