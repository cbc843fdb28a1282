"""otdiv's exact solver with its multiscale start (otdiv.ot.multiscale), on small problems with
several levels, against POT's dense simplex on an independently computed cost matrix."""

from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy.spatial.distance import cdist

from otdiv.kernels import lift_numba as lift
from otdiv.kernels import spanning_tree_numba as st
from otdiv.ot import multiscale
from otdiv.ot.multiscale import exact_transport
from otdiv.ot.network_simplex import kd_order

UNLIMITED = 2**62


@pytest.fixture(autouse=True)
def _small_base(monkeypatch):
    # a coarsest level of 40 points: a few hundred points already make three or four levels
    monkeypatch.setattr(multiscale, "_BASE", 40)


def clouds(n, m, d, seed, weighted, zeros=0.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d)) + np.r_[1.0, 0.5, np.zeros(d - 2)]
    a = rng.random(n) if weighted else np.ones(n)
    b = rng.random(m) if weighted else np.ones(m)
    a[rng.random(n) < zeros] = 0.0
    b[rng.random(m) < zeros] = 0.0
    return x, y, a / a.sum(), b / b.sum()


def check_optimal(x, y, a, b, p, sol):
    """The plan is a coupling, its cost is POT's optimum, and the potentials certify it."""
    c = cdist(x, y) ** p
    reference = ot.emd2(a, b, c, numItermax=10**9)
    scale = c.max()
    assert sol.converged
    assert abs(sol.cost - reference) <= 1e-12 * scale
    plan = np.zeros((x.shape[0], y.shape[0]))
    np.add.at(plan, (sol.rows, sol.cols), sol.mass)
    assert (sol.mass > 0).all()
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-14)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-14)
    assert abs((plan * c).sum() - reference) <= 1e-12 * scale
    # dual feasibility wherever a side has mass, equality on the support
    slack = c - sol.f[:, None] - sol.g[None, :]
    mask = (a[:, None] > 0) | (b[None, :] > 0)
    assert slack[mask].min() >= -1e-11 * scale
    assert np.abs(slack[sol.rows, sol.cols]).max() <= 1e-11 * scale


@pytest.mark.parametrize("p", [1.0, 2.0])
@pytest.mark.parametrize("n, m, weighted, zeros", [
    (400, 400, False, 0.0),  # the assignment problem: four levels
    (400, 400, True, 0.0),
    (300, 500, True, 0.1),  # n != m, zero masses left out and c-transformed
    (330, 30, True, 0.0),  # one side never halves
    (257, 129, False, 0.0),  # odd sizes: a point without a partner at each level
])
def test_multiscale_solution_is_the_optimum(n, m, weighted, zeros, p):
    x, y, a, b = clouds(n, m, 2, seed=n + m, weighted=weighted, zeros=zeros)
    sol = exact_transport(x, y, a, b, p, max_pivots=UNLIMITED, memory_budget=1 << 30)
    check_optimal(x, y, a, b, p, sol)


@pytest.mark.parametrize("d", [5, 7])  # the multiscale start up to d = 5, a cold one beyond
def test_higher_dimension_and_fractional_p(d):
    x, y, a, b = clouds(200, 260, d, seed=7, weighted=True)
    sol = exact_transport(x, y, a, b, 1.5, max_pivots=UNLIMITED, memory_budget=1 << 30)
    check_optimal(x, y, a, b, 1.5, sol)


def test_duplicate_points_across_and_within_sides():
    x, y, a, b = clouds(150, 150, 2, seed=3, weighted=True)
    y[:60] = x[:60]  # zero costs
    x[60:90] = x[0]  # repeated points on one side
    sol = exact_transport(x, y, a, b, 1.0, max_pivots=UNLIMITED, memory_budget=1 << 30)
    check_optimal(x, y, a, b, 1.0, sol)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_potentials_per_chunk_of_the_thread(p, monkeypatch):
    """Runs of >= 4 nodes shifted per chunk of <= 3 (thread_chunks_numba) on a whole solve:
    every pivot's potentials through the chunk path, and the optimum still POT's."""
    from otdiv.ot import network_simplex

    monkeypatch.setattr(network_simplex, "_CHUNK", 3)
    monkeypatch.setattr(network_simplex, "_LARGE", 4)
    x, y, a, b = clouds(400, 300, 2, seed=11, weighted=p == 2.0)
    sol = exact_transport(x, y, a, b, p, max_pivots=UNLIMITED, memory_budget=1 << 30)
    check_optimal(x, y, a, b, p, sol)


def test_w1_assignment_does_not_stall_on_rounding(monkeypatch):
    """W1 between 1000 + 1000 uniform points (two levels): the potentials' representation
    once drifted — chunk offsets re-anchored while the bases grew, their sum the potential —
    until its rounding, far above the potentials' own, let degenerate pivots cycle; the
    pivot cap then stopped it unconverged."""
    monkeypatch.setattr(multiscale, "_BASE", 500)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 2))[:1000]
    y = rng.standard_normal((2000, 2))[:1000] + np.array([1.0, 0.5])
    x, y = x[kd_order(x)], y[kd_order(y)]
    a = b = np.full(1000, 1e-3)
    sol = exact_transport(x, y, a, b, 1.0, max_pivots=1_000_000, memory_budget=1 << 30)
    check_optimal(x, y, a, b, 1.0, sol)


def test_pivot_cap_returns_a_coupling_that_says_it_is_not_optimal():
    x, y, a, b = clouds(300, 300, 2, seed=5, weighted=True)
    sol = exact_transport(x, y, a, b, 1.0, max_pivots=50, memory_budget=1 << 30)
    assert not sol.converged and sol.pivots <= 50
    plan = np.zeros((300, 300))
    np.add.at(plan, (sol.rows, sol.cols), sol.mass)
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-14)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-14)


@pytest.mark.parametrize("weighted", [False, True])
def test_lifted_start_is_a_strongly_feasible_spanning_tree(weighted):
    x, y, a, b = clouds(200, 120, 2, seed=11, weighted=weighted)
    ox, oy = kd_order(x), kd_order(y)
    x, y, a, b = x[ox], y[oy], a[ox], b[oy]
    cx, ca = multiscale._coarsen(x, a)
    coarse_sol = multiscale.solve(cx, y, ca, b, 1.0, max_pivots=UNLIMITED,
                                  memory_budget=1 << 30)
    near = (multiscale._near(x, 4), multiscale._near(y, 4))
    start = multiscale._lift(x, y, a, b, 1.0, coarse_sol, True, False, near)
    n, m = 200, 120
    # the flows are a coupling of (a, b)
    supply = np.zeros(n + m)
    np.add.at(supply, start.src, start.flow)
    np.add.at(supply, start.dst, -start.flow)
    np.testing.assert_allclose(supply, np.r_[a, -b], atol=1e-15)
    assert (start.flow >= 0).all()
    # a spanning tree: every node but the root has a tree arc and reaches the root
    assert (start.pred < 0).sum() == 1 and start.pred[start.root] == -1
    order = np.empty(n + m + 1, np.int64)
    parent, size, thread, rev, last = (np.empty(n + m, np.int64) for _ in range(5))
    assert st.build_tree(start.src, start.dst, start.pred, start.up, start.root, parent,
                         size, thread, rev, last, np.empty(n + m),
                         np.zeros(start.src.shape[0]), order) == n + m
    # strongly feasible: a zero-flow tree arc has its source below its sink
    tree = np.flatnonzero(start.pred >= 0)
    zero = start.flow[start.pred[tree]] == 0
    assert start.up[tree[zero]].all()
    # the lifted plan is carried by the children of the coarse plan's arcs
    coarse_pairs = set(zip(coarse_sol.rows.tolist(), coarse_sol.cols.tolist(), strict=True))
    pos = start.flow > 0
    for i, j in zip(start.src[pos], start.dst[pos] - n, strict=True):
        assert (i // 2, j) in coarse_pairs


def test_split_masses_is_a_north_west_split():
    # one coarse point with children of masses 0.3, 0.7 over arcs of masses 0.5, 0.5
    node = np.full((2, 2), -1, np.int64)
    amt = np.zeros((2, 2))
    lift.split_masses(np.array([0, 0]), np.array([0.5, 0.5]), np.array([0, 2]),
                      np.array([0.3, 0.7]), 1e-15, node, amt)
    np.testing.assert_array_equal(node, [[0, 1], [1, -1]])
    np.testing.assert_allclose(amt, [[0.3, 0.2], [0.5, 0.0]])


def test_spanning_basis_joins_components_no_candidate_reaches():
    # two positive arcs 0 -> 0 and 1 -> 1 (nodes 2, 3 are the sinks), no candidate arcs:
    # source 1's component hangs below the first joined sink by a new zero-flow arc
    src = np.array([0, 1, 0], np.int64)  # one spare entry
    dst = np.array([2, 3, 0], np.int64)
    pred, up, used = lift.spanning_basis(2, 2, src, dst, 2, 2, np.zeros(2),
                                         np.zeros(3, np.int64), np.zeros(0, np.int64))
    assert used == 3 and (src[2], dst[2]) == (1, 2)
    assert pred.tolist() == [-1, 2, 0, 1] and up.tolist() == [False, True, False, False]


def test_spanning_basis_refuses_a_cycle():
    src = np.array([0, 0, 1, 1, 0, 0], np.int64)
    dst = np.array([2, 3, 2, 3, 0, 0], np.int64)
    _, _, used = lift.spanning_basis(2, 2, src, dst, 4, 4, np.zeros(4),
                                     np.zeros(3, np.int64), np.zeros(0, np.int64))
    assert used == -1
