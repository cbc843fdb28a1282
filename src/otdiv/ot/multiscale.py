r"""The multiscale start of otdiv's exact solver: solve a coarse problem, lift its plan.

Both clouds are put in k-d order (``network_simplex.kd_order``) and consecutive points are
merged in pairs — masses summed, positions averaged by mass — level after level, on each
side until it has at most ``_BASE`` points. The coarsest problem is solved by the network
simplex from the north-west corner; each finer one starts from the coarser one's plan,
lifted (``otdiv.kernels.lift_numba``): every coarse arc I → J with mass M_IJ becomes a
coupling of the children of I and J (at most three fine arcs), the lifted plan's components
are joined into a strongly feasible tree by the zero-flow arcs of smallest reduced cost
c_ij − F_I − G_J under the coarse potentials, and the fine arc set is the tree's
neighbourhood: (i, j') and (i', j) for every tree arc (i, j), with j' among the ``_LOCAL``
nearest neighbours of y_j and i' among those of x_i. The simplex then prices these
neighbourhoods of its current tree until none holds a violated pair (Schmitzer's
shielding idea, used as a heuristic), and only then all n·m pairs — the certificate, which
at the finest level decides optimality exactly as for a cold start.

Beyond d = ``_MAX_DIM`` (5) merged k-d neighbours are no longer near each other, the lifted
plan is a poor start and 8 neighbours a poor neighbourhood: the simplex then starts cold,
from the north-west corner along the principal axis with the k nearest neighbours as arcs.
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels import lift_numba as lift
from otdiv.kernels.cost_numba import cost_matrix, pair_cost
from otdiv.ot.network_simplex import SimplexSolution, Start, kd_order, solve

_BASE = 500  # coarsest size of a side
_MAX_DIM = 5  # beyond, merged k-d neighbours are not near: the cold start wins (d = 8: 2.3x)
_LOCAL = 8  # neighbours on the own side that span a tree arc's neighbourhood


def _coarsen(z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive pairs merged: (positions averaged by mass, masses summed)."""
    parent = np.arange(z.shape[0]) // 2
    k = (z.shape[0] + 1) // 2
    mass = np.bincount(parent, w, k)
    pos = np.stack([np.bincount(parent, w * z[:, t], k) for t in range(z.shape[1])], 1)
    return pos / mass[:, None], mass


def _near(z: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other points of each point (itself excluded when there are more)."""
    from scipy.spatial import cKDTree

    k = min(k + 1, z.shape[0])
    scale = max(float(np.abs(z).max()), 1e-300)  # neighbours are scale-free
    _, idx = cKDTree(z / scale).query(z / scale, k)
    idx = idx.reshape(z.shape[0], k)
    return np.ascontiguousarray(idx[:, 1:] if k > 1 else idx).astype(np.int64)


def _starts(size: int, halved: bool) -> np.ndarray:
    """start[I] .. start[I+1]: the fine children of coarse point I."""
    return np.minimum(np.arange(0, size + 2, 2), size) if halved else np.arange(size + 1)


def _lift(x, y, a, b, p, coarse: SimplexSolution, halved_x: bool, halved_y: bool,
          near: tuple[np.ndarray, np.ndarray]) -> Start | None:
    """The fine start from the coarse solution (None when the lift fails)."""
    n, m = x.shape[0], y.shape[0]
    snap = 1e-12 * min(a.min(), b.min())
    keep = coarse.mass > 0
    R, C, M = coarse.rows[keep], coarse.cols[keep], coarse.mass[keep]
    K = R.shape[0]
    rn, ra, cn, ca = (np.full((K, 2), -1, np.int64), np.zeros((K, 2)),
                      np.full((K, 2), -1, np.int64), np.zeros((K, 2)))
    for owner, other, pieces, masses, starts, w in ((R, C, rn, ra, _starts(n, halved_x), a),
                                                     (C, R, cn, ca, _starts(m, halved_y), b)):
        order = np.lexsort((other, owner))  # each owner's arcs in k-d order of the partner
        node, amt = np.full((K, 2), -1, np.int64), np.zeros((K, 2))
        lift.split_masses(owner[order], M[order], starts, w, snap, node, amt)
        pieces[order], masses[order] = node, amt
    rows, cols, flow = lift.block_plans(x, y, float(p), rn, ra, cn, ca, snap)
    # candidate arcs: the neighbourhoods of the lifted plan's arcs
    near_x, near_y = near
    ky, kx = near_y.shape[1], near_x.shape[1]
    cand_r = np.concatenate([np.repeat(rows, ky), near_x[rows].reshape(-1)])
    cand_c = np.concatenate([near_y[cols].reshape(-1), np.repeat(cols, kx)])
    key = np.unique(cand_r * m + cand_c)
    key = np.setdiff1d(key, rows * m + cols, assume_unique=True)
    cand_r, cand_c = key // m, key % m
    n_pos, n_arcs = rows.shape[0], rows.shape[0] + cand_r.shape[0]
    src = np.concatenate([rows, cand_r, np.zeros(n, np.int64)])
    dst = np.concatenate([cols, cand_c, np.zeros(n, np.int64)]) + n
    fx = coarse.f[np.arange(n) // 2] if halved_x else coarse.f
    gy = coarse.g[np.arange(m) // 2] if halved_y else coarse.g
    key_c = np.full(n_arcs, np.inf)
    key_c[n_pos:] = pair_cost(x, y, cand_r, cand_c, p) - fx[cand_r] - gy[cand_c]
    in_arc = n_pos + np.argsort(cand_c, kind="stable")
    in_ptr = np.searchsorted(cand_c, np.arange(m + 1), sorter=in_arc - n_pos)
    pred, up, used = lift.spanning_basis(n, m, src, dst, n_pos, n_arcs, key_c, in_ptr,
                                         in_arc)
    if used < 0 or (pred < 0).sum() != 1:
        return None
    flows = np.concatenate([flow, np.zeros(used - n_pos)])
    return Start(src[:used], dst[:used], flows, pred, up, 0, near)


def multiscale_transport(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray,
                         p: float, *, max_pivots: int, memory_budget: float) -> SimplexSolution:
    """Exact transport between x (n, d), masses a > 0, and y (m, d), masses b > 0 (equal
    sums), both in k-d order, by the coarse-to-fine start above. ``max_pivots`` caps the
    pivots of all levels together; a level that reaches it hands its (feasible) plan on, and
    the finest solution is then not converged."""
    levels = [(x, a, y, b)]
    while max(levels[-1][0].shape[0], levels[-1][2].shape[0]) > _BASE:
        cx, ca, cy, cb = levels[-1]
        if cx.shape[0] > _BASE:
            cx, ca = _coarsen(cx, ca)
        if cy.shape[0] > _BASE:
            cy, cb = _coarsen(cy, cb)
        levels.append((cx, ca, cy, cb))
    cx, ca, cy, cb = levels[-1]
    sol = solve(cx, cy, ca, cb, p, max_pivots=max_pivots, memory_budget=memory_budget)
    pivots = sol.pivots
    for level in range(len(levels) - 2, -1, -1):
        fx, fa, fy, fb = levels[level]
        halved_x = levels[level + 1][0].shape[0] < fx.shape[0]
        halved_y = levels[level + 1][2].shape[0] < fy.shape[0]
        start = _lift(fx, fy, fa, fb, p, sol, halved_x, halved_y,
                      (_near(fx, _LOCAL), _near(fy, _LOCAL)))
        if start is None:  # a cycle in the lifted plan (rounding): start cold
            sol = solve(x, y, a, b, p, max_pivots=max(max_pivots - pivots, 0),
                        memory_budget=memory_budget)
            sol.pivots += pivots
            return sol
        # all pairs priced on the fly: a few rounds at the finest level, none below it
        sol = solve(fx, fy, fa, fb, p, start=start, certify=level == 0,
                    max_pivots=max(max_pivots - pivots, 0), memory_budget=0.0)
        pivots += sol.pivots
    sol.pivots = pivots
    return sol


def _c_transform(u: np.ndarray, v: np.ndarray, h: np.ndarray, p: float) -> np.ndarray:
    """min_j ‖u_i − v_j‖^p − h_j, in blocks of rows."""
    out = np.empty(u.shape[0])
    u, v = np.ascontiguousarray(u), np.ascontiguousarray(v)
    step = max(1, (1 << 24) // max(v.shape[0], 1))
    for s in range(0, u.shape[0], step):
        out[s:s + step] = (cost_matrix(u[s:s + step], v, p) - h).min(1)
    return out


def exact_transport(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, p: float, *,
                    max_pivots: int, memory_budget: float) -> SimplexSolution:
    """min ⟨P, C⟩ over couplings of (x, a) and (y, b), C_ij = ‖x_i − y_j‖^p, float64 inputs
    with a, b >= 0 summing to 1. Points of zero mass are left out of the simplex; their
    potentials are the c-transforms of the positive-mass side's, f_i = min_{b_j > 0}
    c_ij − g_j (and likewise g_j): the one-sided derivatives of the cost in their mass, which
    is what the torch gradient w.r.t. a and b needs. So f_i + g_j ≤ c_ij holds for every pair
    with at least one point of positive mass; between two zero-mass points it need not."""
    n, m = x.shape[0], y.shape[0]
    kx, ky = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
    if x.shape[1] <= _MAX_DIM:  # the multiscale start merges neighbours in k-d order
        kx, ky = kx[kd_order(x[kx])], ky[kd_order(y[ky])]
    sub_a, sub_b = a[kx], b[ky]
    sub_b = sub_b * (sub_a.sum() / sub_b.sum())
    sub_x, sub_y = np.ascontiguousarray(x[kx]), np.ascontiguousarray(y[ky])
    if x.shape[1] <= _MAX_DIM:
        sol = multiscale_transport(sub_x, sub_y, sub_a, sub_b, p, max_pivots=max_pivots,
                                   memory_budget=memory_budget)
    else:
        sol = solve(sub_x, sub_y, sub_a, sub_b, p, max_pivots=max_pivots,
                    memory_budget=memory_budget)
    f, g = np.empty(n), np.empty(m)
    f[kx], g[ky] = sol.f, sol.g
    f[a == 0] = _c_transform(x[a == 0], y[ky], sol.g, p)  # f_i = min_j c_ij − g_j
    g[b == 0] = _c_transform(y[b == 0], x[kx], sol.f, p)
    sol.rows, sol.cols, sol.f, sol.g = kx[sol.rows], ky[sol.cols], f, g
    return sol
