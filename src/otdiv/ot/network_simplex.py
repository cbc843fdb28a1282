r"""otdiv's exact solver: a network simplex on a sparse arc set, completed by dual pricing.

The transportation problem

.. math:: \min_{P \ge 0} \sum_{ij} P_{ij} c_{ij}, \quad P\mathbf 1 = a, \; P^\top \mathbf 1 = b,
          \qquad c_{ij} = \|x_i - y_j\|_2^p,

is solved by a primal network simplex (``otdiv.kernels.spanning_tree_numba``) on a few arcs per
point — the arcs of the starting tree and candidate arcs near it. When the simplex is
optimal on those arcs, its potentials (f, g) are priced against all n·m pairs (from a
stored cost matrix when it fits ``memory_budget``, else computed on the fly); the most
violated pairs of each row are added and the same basis resumes. A pair
is violated when c_ij − f_i − g_j < −tol · max(c_ij, |f_i|, |g_j|): a tolerance at the
rounding scale of the reduced cost itself (tol = ``_TOL``, 1e-14), as POT's solver uses,
so that no scale of the coordinates — clusters far apart, one far outlier — makes a
needed pivot look like rounding. The loop ends when no pair is violated: then the
potentials are feasible up to that rounding, with equality on the plan, so the plan is
optimal for the dense problem.

Without a ``Start`` the tree is the north-west-corner coupling along the principal axis of
both clouds, and the arc set adds the k nearest neighbours of each point on the other side.
``otdiv.ot.multiscale`` gives a ``Start`` instead: a coarse problem's plan lifted to a
strongly feasible tree, with the neighbourhoods of the tree's arcs priced before all pairs.
The measurements behind these choices are in docs/architecture.md ("The exact solver").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otdiv.kernels import lift_numba as lift
from otdiv.kernels import pricing_numba
from otdiv.kernels import simplex_numba as sx
from otdiv.kernels import spanning_tree_numba as st
from otdiv.kernels.cost_numba import cost_matrix, pair_cost
from otdiv.ot.arcs import ArcSet
from otdiv.ot.kdtree import kd_permutation

_NEIGHBOURS = 16  # initial arcs: k nearest neighbours from each side
_PER_ROW = 16  # violated pairs added per row and pricing round
_BLOCK = 0.05  # entering arc: the best of blocks of _BLOCK·sqrt(arcs) arcs
_TOL = 1e-14  # reduced-cost tolerance, relative to max(c_ij, |f_i|, |g_j|)
_CHUNK = 64  # nodes per chunk of the thread (potentials of long runs shifted per chunk)
_LARGE = 512  # runs of the thread shifted chunk by chunk from this length on


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
    return kd_permutation(z, 2)[0]


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


def _unique_pairs(r: np.ndarray, c: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    key = np.unique(r * m + c)
    return key // m, key % m


class _Tree:
    """The simplex state: arcs (sources 0..n−1, sinks n..n+m−1), flows and the basis tree."""

    def __init__(self, n: int, m: int):
        nodes = n + m
        self.n = n
        self.parent = np.empty(nodes, np.int64)
        self.size = np.empty(nodes, np.int64)
        self.thread = np.empty(nodes, np.int64)
        self.rev = np.empty(nodes, np.int64)
        self.last = np.empty(nodes, np.int64)
        self.pi = np.empty(nodes)
        self.work = np.empty((6, nodes + 1), np.int64)
        # the potentials while pivoting: (base, chunk) per node, offset per chunk
        self.chunks = (np.empty((nodes, 2)), np.zeros(nodes + 1),
                       np.empty((5, nodes + 1), np.int64),
                       np.zeros(1, np.int64), _CHUNK, _LARGE)

    def rebuild(self, arcs: ArcSet, pred, up, root) -> None:
        """Parents, thread, subtree sizes and potentials afresh from the tree arcs (no
        drift)."""
        reached = st.build_tree(arcs.src, arcs.dst, pred, up, root, self.parent, self.size,
                                self.thread, self.rev, self.last, self.pi, arcs.cost,
                                self.work[0])
        assert reached == self.parent.shape[0], "the basis is not a spanning tree"


@dataclass
class Start:
    """A strongly feasible basis to start from: arcs (src, dst = n + j, flow), the tree arc
    of each node (pred, up: the node is the arc's source), the root; ``near`` = the k
    nearest neighbours of each point on its own side (near_x (n, k), near_y (m, k)): the
    simplex then prices the tree's neighbourhoods first and all pairs only when they hold no
    violated pair."""

    src: np.ndarray
    dst: np.ndarray
    flow: np.ndarray
    pred: np.ndarray
    up: np.ndarray
    root: int
    near: tuple[np.ndarray, np.ndarray] | None = None


def solve(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, p: float, *,
          start: Start | None = None, certify: bool = True, max_pivots: int,
          memory_budget: float) -> SimplexSolution:
    """Exact transport between x (n, d) with masses a > 0 and y (m, d) with masses b > 0
    (equal sums), started from ``start`` or else the north-west corner along the principal
    axis. ``certify=False`` stops when the neighbourhoods of ``start.near`` hold no violated
    pair (a start for a finer level, not an optimum)."""
    n, m = x.shape[0], y.shape[0]
    dense = cost_matrix(x, y, p) if 8.0 * n * m <= memory_budget / 2 else None

    def costs(r, c):
        return dense[r, c] if dense is not None else pair_cost(x, y, r, c, p)

    if start is None:
        ix, iy = _principal_orders(x, y)
        snap = 1e-12 * min(a.min(), b.min())
        src, dst, flow, pred, up = sx.northwest_tree(ix, a, iy, b, snap)
        rows, cols = _neighbour_arcs(x, y)
        src = np.concatenate([src, rows])
        dst = np.concatenate([dst, cols]) + n
        flow = np.concatenate([flow, np.zeros(rows.shape[0])])
        root, near = int(ix[0]), None
    else:
        src, dst, flow, pred, up = start.src, start.dst, start.flow, start.pred, start.up
        root, near = start.root, start.near
    # sorted arcs only where the points are in k-d order (the multiscale start): in higher
    # dimension (the cold start) sorting gave no locality and 13 % more pivots at d = 16
    arcs = ArcSet(src, dst, flow, costs(src, dst - n), pred, n, m, keep_sorted=start is not None)
    tree = _Tree(n, m)
    tree.rebuild(arcs, pred, up, root)
    if near is not None:  # room for every pair the neighbourhood pricing looks at
        looked = (n + m) * (near[0].shape[1] + near[1].shape[1])
        found_r, found_c = np.empty(looked, np.int64), np.empty(looked, np.int64)
    begin, pivots, rounds, converged = 0, 0, 0, False
    while pivots < max_pivots:
        done, optimal, begin = st.simplex(arcs.src, arcs.dst, arcs.cost, arcs.flow, arcs.count,
                                          root, tree.parent, pred, up, tree.size, tree.thread,
                                          tree.rev, tree.last, tree.pi, begin, _TOL,
                                          max_pivots - pivots, tree.work,
                                          max(int(_BLOCK * np.sqrt(arcs.count)), 16),
                                          tree.chunks, arcs.max_cost)
        pivots += done
        rounds += 1
        tree.rebuild(arcs, pred, up, root)  # potentials afresh from the tree arcs
        if not optimal:
            break
        f, g = -tree.pi[:n], tree.pi[n:]
        if near is not None:
            tree_arcs = pred[pred >= 0]
            k = lift.local_violations(x, y, float(p), f, g, _TOL, arcs.src[tree_arcs],
                                      arcs.dst[tree_arcs], n, near[0], near[1], found_r,
                                      found_c)
            if k > 0:
                r, c = _unique_pairs(found_r[:k], found_c[:k], m)
                arcs.add(r, c, costs(r, c), pred)
                continue
        if not certify:
            break
        if dense is not None:
            r, c, violated = sx.most_negative_dense(dense, f, g, _TOL, _PER_ROW)
        else:
            r, c, violated = pricing_numba.most_negative(x, y, p, f, g, _TOL, _PER_ROW)
        if violated == 0:
            converged = True
            break
        arcs.add(r, c, costs(r, c), pred)
    # exact marginals: recompute the tree's flows from the masses (pivots add rounding)
    src, dst, flow, cost = arcs.used()
    sx.tree_flows(tree.work[0, :n + m], tree.parent, pred, up, np.concatenate([a, -b]), flow)
    used = pred[pred >= 0]
    keep = used[flow[used] > 0]
    mass = flow[keep]
    return SimplexSolution(float(mass @ cost[keep]), src[keep], dst[keep] - n, mass,
                           -tree.pi[:n].copy(), tree.pi[n:].copy(), converged, pivots, rounds)
