"""The simplex's basis tree (otdiv.kernels.spanning_tree_numba) after random pivots, against a
brute-force recomputation of everything it stores: parents, the thread (a preorder: every
subtree is one run of it, from the node to its ``last``), its reverse, subtree sizes,
potentials, flows (a coupling) and strong feasibility; and its optimum against POT."""

from __future__ import annotations

import numpy as np
import ot
import pytest
from scipy.spatial.distance import cdist

from otdiv.kernels import simplex_numba as sx
from otdiv.kernels import spanning_tree_numba as st
from otdiv.kernels import thread_chunks_numba as tc


def chunks(nodes, width, large):
    """The potentials' chunk state (thread_chunks_numba) for ``nodes`` nodes."""
    return (np.empty((nodes, 2)), np.zeros(nodes + 1), np.empty((5, nodes + 1), np.int64),
            np.zeros(1, np.int64), width, large)


def check_chunks(thread, state):
    """Every clean chunk is exactly the run of the thread from its first to its last node,
    holding the nodes labelled with it; every node's chunk is live."""
    node, _, table, height, _, _ = state
    label = node[:, 1].astype(np.int64)
    free = set(table[tc.FREE, :height[0]].tolist())
    assert not free & set(label.tolist())
    for c in np.unique(label):
        members = np.flatnonzero(label == c)
        assert table[tc.SIZE, c] == members.shape[0]
        if table[tc.CLEAN, c]:
            w, run = table[tc.FIRST, c], []
            while True:
                run.append(w)
                if w == table[tc.LAST, c]:
                    break
                w = thread[w]
                assert len(run) <= members.shape[0]
            assert sorted(run) == members.tolist()


def problem(n, m, seed, p, uniform):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, 2)), rng.standard_normal((m, 2)) + 0.5
    if uniform:
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
        a, b = a / a.sum(), b / b.sum()
    ix, iy = rng.permutation(n), rng.permutation(m)
    src, dst, flow, pred, up = sx.northwest_tree(ix, a, iy, b, 1e-15)
    # every other pair as a candidate arc
    used = set(zip(src.tolist(), dst.tolist(), strict=True))
    rest = [(i, j) for i in range(n) for j in range(m) if (i, j) not in used]
    src = np.r_[src, [i for i, _ in rest]].astype(np.int64)
    dst = np.r_[dst, [j for _, j in rest]].astype(np.int64) + n
    flow = np.r_[flow, np.zeros(len(rest))]
    cost = cdist(x, y)[src, dst - n] ** p
    return x, y, a, b, src, dst, flow, pred, up, cost, int(ix[0])


def check_tree(n, m, a, b, src, dst, flow, pred, up, cost, root, parent, size, thread, rev,
               last, pi):
    nodes = n + m
    # parents from the tree arcs, and child lists that list exactly the children
    assert pred[root] == -1 and (np.delete(pred, root) >= 0).all()
    for w in range(nodes):
        if w == root:
            continue
        e = pred[w]
        assert w in (src[e], dst[e])
        assert up[w] == (src[e] == w)
        assert parent[w] == (dst[e] if up[w] else src[e])
    # descendants and subtree sizes, by walking every node up to the root (it must reach it)
    below = np.zeros((nodes, nodes), bool)  # below[u, w]: w is in u's subtree
    for w in range(nodes):
        u, steps = w, 0
        while u != -1:
            below[u, w] = True
            u = parent[u] if u != root else -1
            steps += 1
            assert steps <= nodes
    np.testing.assert_array_equal(size, below.sum(1))
    # the thread is one cycle through all nodes, rev its inverse, every subtree one run
    seq = [root]
    while thread[seq[-1]] != root:
        seq.append(thread[seq[-1]])
        assert len(seq) <= nodes
    assert sorted(seq) == list(range(nodes))
    np.testing.assert_array_equal(rev[thread], np.arange(nodes))
    pos = np.empty(nodes, np.int64)
    pos[seq] = np.arange(nodes)
    for w in range(nodes):
        run = seq[pos[w]:pos[w] + size[w]]
        assert run[0] == w and last[w] == run[-1]
        assert sorted(run) == sorted(np.flatnonzero(below[w]).tolist())
    # potentials: zero reduced cost on tree arcs
    arcs = pred[pred >= 0]
    rc = cost[arcs] + pi[src[arcs]] - pi[dst[arcs]]
    assert np.abs(rc).max() <= 1e-12 * max(cost.max(), np.abs(pi).max())
    # flows: a coupling of (a, b) carried by the tree, strongly feasible
    supply = np.zeros(nodes)
    np.add.at(supply, src, flow)
    np.add.at(supply, dst, -flow)
    np.testing.assert_allclose(supply, np.r_[a, -b], atol=1e-13)
    assert (flow >= -1e-15).all()
    off = np.ones(src.shape[0], bool)
    off[arcs] = False
    assert (flow[off] == 0).all()
    tree_nodes = np.flatnonzero(pred >= 0)
    zero = flow[pred[tree_nodes]] <= 1e-15
    assert up[tree_nodes[zero]].all()


# (width, large): potentials shifted node by node only; chunk by chunk from runs of 4 nodes
# in chunks of 2; from runs of 2 in chunks of 3 (every re-chunking path on 16 nodes)
@pytest.mark.parametrize("width,large", [(32, 512), (2, 4), (3, 2)])
@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_pivots_keep_every_invariant(seed, uniform, width, large):
    n, m = 9, 7
    _, _, a, b, src, dst, flow, pred, up, cost, root = problem(n, m, seed, 1.0, uniform)
    nodes = n + m
    parent, size, thread, rev, last = (np.empty(nodes, np.int64) for _ in range(5))
    pi, work = np.empty(nodes), np.empty((6, nodes + 1), np.int64)
    assert st.build_tree(src, dst, pred, up, root, parent, size, thread, rev, last, pi, cost,
                         work[0]) == nodes
    check_tree(n, m, a, b, src, dst, flow, pred, up, cost, root, parent, size, thread, rev,
                   last, pi)
    rng = np.random.default_rng(seed)
    sides = set()
    state = chunks(nodes, width, large)
    tc.init_chunks(root, thread, pi, *state[:5])
    for _ in range(200):
        rc = cost + pi[src] - pi[dst]
        rc[pred[pred >= 0]] = 0.0
        candidates = np.flatnonzero(rc < -1e-12)
        if candidates.shape[0] == 0:
            break
        e = int(rng.choice(candidates))
        st.pivot(e, src, dst, cost, flow, root, parent, pred, up, size, thread, rev, last, work,
                 state)
        tc.materialize(pi, state[0], state[1])
        check_chunks(thread, state)
        leaving_side = size[src[e]] if parent[src[e]] == dst[e] else size[dst[e]]
        sides.add(2 * leaving_side <= nodes)
        check_tree(n, m, a, b, src, dst, flow, pred, up, cost, root, parent, size, thread,
                   rev, last, pi)
    assert sides == {True, False}  # both the subtree's and the complement's update ran


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("uniform", [True, False])
def test_simplex_on_all_pairs_is_pots_optimum(p, uniform):
    n, m = 30, 23
    x, y, a, b, src, dst, flow, pred, up, cost, root = problem(n, m, 7, p, uniform)
    nodes = n + m
    parent, size, thread, rev, last = (np.empty(nodes, np.int64) for _ in range(5))
    pi, work = np.empty(nodes), np.empty((6, nodes + 1), np.int64)
    st.build_tree(src, dst, pred, up, root, parent, size, thread, rev, last, pi, cost, work[0])
    _, optimal, _ = st.simplex(src, dst, cost, flow, src.shape[0], root, parent, pred, up,
                               size, thread, rev, last, pi, 0, 1e-14, 10**6, work, 16,
                               chunks(nodes, 2, 4), cost.max())
    assert optimal
    reference = ot.emd2(a, b, cdist(x, y) ** p, numItermax=10**9)
    assert abs(flow @ cost - reference) <= 1e-13 * cost.max()
    check_tree(n, m, a, b, src, dst, flow, pred, up, cost, root, parent, size, thread, rev,
                   last, pi)
