r"""otdiv's exact solver: a network simplex on a sparse arc set, completed by dual pricing.

The transportation problem

.. math:: \min_{P \ge 0} \sum_{ij} P_{ij} c_{ij}, \quad P\mathbf 1 = a, \; P^\top \mathbf 1 = b,
          \qquad c_{ij} = \|x_i - y_j\|_2^p,

is solved by a primal network simplex (``otdiv.kernels.simplex_numba``) on a few arcs per
point — the k nearest neighbours of each point on the other side and the arcs of the starting
tree. When the simplex is optimal on those arcs, its potentials (f, g) are priced against
all n·m pairs (from a stored cost matrix when it fits ``memory_budget``, else computed on
the fly); the most violated pairs of each row are added and the same basis resumes. A pair
is violated when c_ij − f_i − g_j < −tol · max(c_ij, |f_i|, |g_j|): a tolerance at the
rounding scale of the reduced cost itself (tol = ``_TOL``, 1e-14), as POT's solver uses,
so that no scale of the coordinates — clusters far apart, one far outlier — makes a
needed pivot look like rounding. The loop ends when no pair is violated: then the
potentials are feasible up to that rounding, with equality on the plan, so the plan is
optimal for the dense problem.

The starting tree is the north-west-corner coupling along two orderings. For uniform
weights with n = m (an assignment problem) the orderings come from a coarse-to-fine pass:
consecutive points of a k-d ordering are merged in pairs, the half-size problem is solved
the same way (recursively, down to ``_BASE`` points), and its assignment, lifted to the
better of the two matchings inside each pair of pairs, starts the fine simplex. Otherwise
both sides are sorted along the principal axis of the union. The measurements behind these
choices are in docs/architecture.md ("The exact solver").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otdiv.kernels import pricing_numba
from otdiv.kernels import simplex_numba as sx
from otdiv.kernels.cost_numba import cost_matrix, pair_cost

_NEIGHBOURS = 16  # initial arcs: k nearest neighbours from each side
_PER_ROW = 16  # violated pairs added per row and pricing round
_BASE = 500  # the coarse-to-fine pass stops at this size
_TOL = 1e-14  # reduced-cost tolerance, relative to max(c_ij, |f_i|, |g_j|)


@dataclass
class SimplexSolution:
    cost: float  # Σ P_ij c_ij
    rows: np.ndarray  # support of the plan
    cols: np.ndarray
    mass: np.ndarray
    f: np.ndarray  # potentials, f_i + g_j <= c_ij (up to rounding), equality on the support
    g: np.ndarray
    converged: bool
    pivots: int
    rounds: int  # pricing rounds of the finest problem


def kd_order(z: np.ndarray) -> np.ndarray:
    """A permutation of the points z (n, d) in which consecutive points are close: halve
    the set at the median of its widest coordinate, recursively (the leaf order of a
    k-d tree)."""
    out: list[np.ndarray] = []
    stack = [np.arange(z.shape[0])]
    while stack:
        idx = stack.pop()
        if idx.shape[0] <= 2:
            out.append(idx)
            continue
        pts = z[idx]
        dim = int(np.argmax(pts.max(0) - pts.min(0)))
        half = idx.shape[0] // 2
        part = np.argpartition(pts[:, dim], half)
        stack.append(idx[part[half:]])
        stack.append(idx[part[:half]])
    return np.concatenate(out)


def _principal_orders(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.concatenate([x, y])
    z = z - z.mean(0)
    z /= max(float(np.abs(z).max()), 1e-300)  # the axis is scale-free; z.T @ z could overflow
    axis = np.linalg.eigh(z.T @ z)[1][:, -1]
    return np.argsort(x @ axis, kind="stable"), np.argsort(y @ axis, kind="stable")


def _neighbour_arcs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    n, m = x.shape[0], y.shape[0]
    k_y, k_x = min(_NEIGHBOURS, m), min(_NEIGHBOURS, n)
    scale = max(float(np.abs(x).max()), float(np.abs(y).max()))
    if scale > 0:  # neighbours do not change; squared distances of 1e155 would overflow
        x, y = x / scale, y / scale
    _, near_y = cKDTree(y).query(x, k_y)
    _, near_x = cKDTree(x).query(y, k_x)
    rows = np.concatenate([np.repeat(np.arange(n), k_y), near_x.reshape(-1)])
    cols = np.concatenate([near_y.reshape(-1), np.repeat(np.arange(m), k_x)])
    return rows.astype(np.int64), cols.astype(np.int64)


class _Tree:
    """The simplex state: arcs (sources 0..n−1, sinks n..n+m−1), flows and the basis tree."""

    def __init__(self, n: int, m: int):
        nodes = n + m
        self.n = n
        self.parent = np.empty(nodes, np.int64)
        self.depth = np.empty(nodes, np.int64)
        self.first = np.empty(nodes, np.int64)
        self.nxt = np.empty(nodes, np.int64)
        self.prv = np.empty(nodes, np.int64)
        self.pi = np.empty(nodes)
        self.work = np.empty(nodes + 1, np.int64)

    def rebuild(self, src, dst, pred, up, root, cost) -> None:
        """Parents, depths and potentials afresh from the tree arcs (no drift)."""
        reached = sx.build_tree(src, dst, pred, up, root, self.parent, self.depth, self.first,
                                self.nxt, self.prv, self.pi, cost, self.work)
        assert reached == self.parent.shape[0], "the basis is not a spanning tree"


def solve(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, p: float, *,
          orders: tuple[np.ndarray, np.ndarray] | None = None, max_pivots: int,
          memory_budget: float) -> SimplexSolution:
    """Exact transport between x (n, d) with masses a > 0 and y (m, d) with masses b > 0
    (equal sums), started from the north-west corner along ``orders`` (default: the
    principal axis)."""
    n, m = x.shape[0], y.shape[0]
    ix, iy = _principal_orders(x, y) if orders is None else orders
    snap = 1e-12 * min(a.min(), b.min())
    src, dst, flow, pred, up = sx.northwest_tree(ix, a, iy, b, snap)
    rows, cols = _neighbour_arcs(x, y)
    dense = cost_matrix(x, y, p) if 8.0 * n * m <= memory_budget / 2 else None

    def costs(r, c):
        return dense[r, c] if dense is not None else pair_cost(x, y, r, c, p)

    src = np.concatenate([src, rows])
    dst = np.concatenate([dst, cols]) + n
    flow = np.concatenate([flow, np.zeros(rows.shape[0])])
    cost = costs(src, dst - n)
    tree = _Tree(n, m)
    root = int(ix[0])
    tree.rebuild(src, dst, pred, up, root, cost)
    start, pivots, rounds, converged = 0, 0, 0, False
    while pivots < max_pivots:
        done, optimal, start = sx.simplex(src, dst, cost, flow, src.shape[0], tree.parent,
                                          pred, up, tree.depth, tree.first, tree.nxt,
                                          tree.prv, tree.pi, start, _TOL, max_pivots - pivots,
                                          tree.work)
        pivots += done
        rounds += 1
        tree.rebuild(src, dst, pred, up, root, cost)
        if not optimal:
            break
        f, g = -tree.pi[:n], tree.pi[n:]
        if dense is not None:
            r, c, violated = sx.most_negative_dense(dense, f, g, _TOL, _PER_ROW)
        else:
            r, c, violated = pricing_numba.most_negative(x, y, p, f, g, _TOL, _PER_ROW)
        if violated == 0:
            converged = True
            break
        src = np.concatenate([src, r])
        dst = np.concatenate([dst, c + n])
        flow = np.concatenate([flow, np.zeros(r.shape[0])])
        cost = np.concatenate([cost, costs(r, c)])
    # exact marginals: recompute the tree's flows from the masses (pivots add rounding)
    sx.tree_flows(tree.work[:n + m], tree.parent, pred, up, np.concatenate([a, -b]), flow)
    arcs = pred[pred >= 0]
    keep = arcs[flow[arcs] > 0]
    mass = flow[keep]
    return SimplexSolution(float(mass @ cost[keep]), src[keep], dst[keep] - n, mass,
                           -tree.pi[:n].copy(), tree.pi[n:].copy(), converged, pivots, rounds)


def _assignment(x: np.ndarray, y: np.ndarray, p: float, *, max_pivots: int,
                memory_budget: float) -> SimplexSolution:
    """Uniform n = m on points already in k-d order: coarse-to-fine start, then ``solve``."""
    n = x.shape[0]
    mass = np.full(n, 1.0 / n)
    if n <= _BASE or n % 2:
        return solve(x, y, mass, mass, p, max_pivots=max_pivots, memory_budget=memory_budget)
    coarse = _assignment(0.5 * (x[0::2] + x[1::2]), 0.5 * (y[0::2] + y[1::2]), p,
                         max_pivots=max_pivots, memory_budget=memory_budget)
    if not coarse.converged:
        return solve(x, y, mass, mass, p, max_pivots=max_pivots, memory_budget=memory_budget)
    half = coarse.mass > 0.5 / (n // 2)  # a permutation (the assignment's vertices)
    i, j = 2 * coarse.rows[half], 2 * coarse.cols[half]  # pair i, i+1 of x to pair j, j+1
    straight = pair_cost(x, y, i, j, p) + pair_cost(x, y, i + 1, j + 1, p)
    crossed = pair_cost(x, y, i, j + 1, p) + pair_cost(x, y, i + 1, j, p)
    sigma = np.empty(n, np.int64)
    swap = crossed < straight
    sigma[i] = np.where(swap, j + 1, j)
    sigma[i + 1] = np.where(swap, j, j + 1)
    return solve(x, y, mass, mass, p, orders=(np.arange(n), sigma), max_pivots=max_pivots,
                 memory_budget=memory_budget)


def _c_transform(u: np.ndarray, v: np.ndarray, h: np.ndarray, p: float) -> np.ndarray:
    """min_j ‖u_i − v_j‖^p − h_j, in blocks of rows."""
    out = np.empty(u.shape[0])
    u, v = np.ascontiguousarray(u), np.ascontiguousarray(v)
    step = max(1, (1 << 24) // max(v.shape[0], 1))
    for s in range(0, u.shape[0], step):
        out[s:s + step] = (cost_matrix(u[s:s + step], v, p) - h).min(1)
    return out


def exact_transport(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, p: float, *,
                    uniform: bool, max_pivots: int, memory_budget: float) -> SimplexSolution:
    """min ⟨P, C⟩ over couplings of (x, a) and (y, b), C_ij = ‖x_i − y_j‖^p, float64 inputs
    with a, b >= 0 summing to 1. Points of zero mass are left out of the simplex; their
    potentials are the c-transforms of the positive-mass side's, f_i = min_{b_j > 0}
    c_ij − g_j (and likewise g_j): the one-sided derivatives of the cost in their mass, which
    is what the torch gradient w.r.t. a and b needs. So f_i + g_j ≤ c_ij holds for every pair
    with at least one point of positive mass; between two zero-mass points it need not."""
    n, m = x.shape[0], y.shape[0]
    if uniform and n == m:
        ox, oy = kd_order(x), kd_order(y)
        sol = _assignment(np.ascontiguousarray(x[ox]), np.ascontiguousarray(y[oy]), p,
                          max_pivots=max_pivots, memory_budget=memory_budget)
        f, g = np.empty(n), np.empty(m)
        f[ox], g[oy] = sol.f, sol.g
        sol.rows, sol.cols, sol.f, sol.g = ox[sol.rows], oy[sol.cols], f, g
        return sol
    kx, ky = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
    sub_a, sub_b = a[kx], b[ky]
    sol = solve(np.ascontiguousarray(x[kx]), np.ascontiguousarray(y[ky]), sub_a,
                sub_b * (sub_a.sum() / sub_b.sum()), p, max_pivots=max_pivots,
                memory_budget=memory_budget)
    f, g = np.empty(n), np.empty(m)
    f[kx], g[ky] = sol.f, sol.g
    f[a == 0] = _c_transform(x[a == 0], y[ky], sol.g, p)  # f_i = min_j c_ij − g_j
    g[b == 0] = _c_transform(y[b == 0], x[kx], sol.f, p)
    sol.rows, sol.cols, sol.f, sol.g = kx[sol.rows], ky[sol.cols], f, g
    return sol
