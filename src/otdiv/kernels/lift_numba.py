"""Kernels of the multiscale start: a coarse transport plan lifted to a strongly feasible
basis of the fine problem, and the local pricing of the plan's neighbourhoods.

Fine points are grouped in clusters of consecutive indices (``start[I]`` .. ``start[I+1]``
are the children of coarse point I). A coarse plan with masses M_IJ is lifted by splitting
each coarse point's children's masses over its coarse arcs in north-west order (at most two
pieces an arc for two children), then each arc's row and column pieces by the cheaper of
the two north-west couplings of a 2 × 2 block. The support of the lifted plan is a forest;
its components are joined into a spanning tree by zero-flow arcs, each from a source of an
unjoined component up to a sink of a joined one (so the tree is strongly feasible), chosen
Prim-fashion by the smallest reduced cost c_ij − f_i − g_j under the coarse potentials.
"""

from __future__ import annotations

import heapq

import numpy as np

from otdiv.kernels._numba import nb, twins
from otdiv.kernels.power import power


@nb.njit(inline="always")
def _cost(x, y, i, j, p):
    sq = 0.0
    for t in range(x.shape[1]):
        u = x[i, t] - y[j, t]
        sq += u * u
    return power(sq, 0.5 * p)


@nb.njit(cache=True)
def split_masses(owner, mass, start, w, snap, node, amt):
    """North-west split of each coarse point's children's masses w over its arcs: arc k
    (owner[k], taken in the order given; arcs of one owner consecutive) receives pieces
    (node[k, s], amt[k, s]), s = 0, 1 (node −1 where unused)."""
    k, K = 0, owner.shape[0]
    while k < K:
        o = owner[k]
        c, stop = start[o], start[o + 1]
        rest = w[c]
        while k < K and owner[k] == o:
            need = mass[k]
            s = 0
            while need > snap and c < stop:
                take = min(rest, need)
                if s < 2:
                    node[k, s], amt[k, s] = c, take
                    s += 1
                else:  # rounding: a third piece joins the second
                    amt[k, 1] += take
                need -= take
                rest -= take
                if rest <= snap:
                    c += 1
                    if c < stop:
                        rest = w[c]
            if s == 0:  # a rounding-size arc: its mass goes to the current child
                node[k, 0], amt[k, 0] = min(c, stop - 1), mass[k]
            k += 1


@nb.njit(cache=True)
def _corner(x, y, p, k, rn, ra, cn, ca, nr, nc, o, snap, r_amt, c_amt, rows, cols, flow, out):
    """The north-west corner of block k with column order o (o = 1 reverses): its cost, and,
    when ``rows`` has room (``out`` >= 0), its pieces above ``snap`` written from ``out`` on.
    Returns (cost, next free slot)."""
    r_amt[0], r_amt[1] = ra[k, 0], ra[k, 1] if nr == 2 else 0.0
    for s in range(nc):
        c_amt[s] = ca[k, (s + o) % nc]
    i, j, total = 0, 0, 0.0
    while i < nr and j < nc:
        f = min(r_amt[i], c_amt[j])
        col = cn[k, (j + o) % nc]
        if f > 0:
            total += f * _cost(x, y, rn[k, i], col, p)
        if out >= 0 and f > snap:
            rows[out], cols[out], flow[out] = rn[k, i], col, f
            out += 1
        r_amt[i] -= f
        c_amt[j] -= f
        if r_amt[i] <= snap:
            i += 1
        else:
            j += 1
    return total, out


@nb.njit(cache=True)
def block_plans(x, y, p, rn, ra, cn, ca, snap):
    """Each coarse arc's 2 × 2 block (row pieces rn, ra; column pieces cn, ca) coupled by
    the cheaper north-west corner of its two column orders. Returns fine (rows, cols, flow)."""
    K = rn.shape[0]
    rows = np.empty(3 * K, np.int64)
    cols = np.empty(3 * K, np.int64)
    flow = np.empty(3 * K)
    out = 0
    r_amt = np.empty(2)
    c_amt = np.empty(2)
    for k in range(K):
        nr = 2 if rn[k, 1] >= 0 else 1
        nc = 2 if cn[k, 1] >= 0 else 1
        best, best_o = np.inf, 0
        for o in range(nc):
            total, _ = _corner(x, y, p, k, rn, ra, cn, ca, nr, nc, o, snap, r_amt, c_amt,
                               rows, cols, flow, -1)
            if total < best:
                best, best_o = total, o
        _, out = _corner(x, y, p, k, rn, ra, cn, ca, nr, nc, best_o, snap, r_amt, c_amt,
                         rows, cols, flow, out)
    return rows[:out], cols[:out], flow[:out]


@nb.njit(cache=True)
def _find(comp, u):
    while comp[u] != u:
        comp[u] = comp[comp[u]]
        u = comp[u]
    return u


@nb.njit(cache=True)
def spanning_basis(n, m, src, dst, n_pos, n_arcs, key, in_ptr, in_arc):
    """A strongly feasible spanning tree rooted at source 0: the arcs 0..n_pos−1 (positive
    flows, a forest; ``dst`` holds node indices n + j) joined by zero-flow arcs among
    n_pos..n_arcs−1, each from a source of a new component up to a sink already joined,
    the smallest ``key`` first (Prim). ``in_ptr``/``in_arc``: the arcs into each sink (CSR
    over j). A component no arc reaches is joined by a new arc written at src[n_arcs:],
    dst[n_arcs:] (spare room of n entries). Returns (pred, up, arcs used), or arcs used −1
    when there is no such tree (a cycle among the positive arcs)."""
    nodes = n + m
    comp = np.arange(nodes)
    for k in range(n_pos):
        ru, rv = _find(comp, src[k]), _find(comp, dst[k])
        if ru == rv:
            return np.empty(0, np.int64), np.empty(0, np.bool_), -1
        comp[ru] = rv
    for u in range(nodes):
        comp[u] = _find(comp, u)
    deg = np.zeros(nodes + 1, np.int64)  # positive-arc adjacency (CSR over nodes)
    for k in range(n_pos):
        deg[src[k] + 1] += 1
        deg[dst[k] + 1] += 1
    for u in range(nodes):
        deg[u + 1] += deg[u]
    adj = np.empty(2 * n_pos, np.int64)
    fill = deg[:-1].copy()
    for k in range(n_pos):
        adj[fill[src[k]]] = k
        fill[src[k]] += 1
        adj[fill[dst[k]]] = k
        fill[dst[k]] += 1
    pred = np.full(nodes, -1, np.int64)
    up = np.zeros(nodes, np.bool_)
    joined = np.zeros(nodes, np.bool_)
    stack = np.empty(nodes, np.int64)
    heap = [(0.0, np.int64(0))]
    heap.pop()
    used = n_arcs
    first_sink = -1
    top, pending, scan = 0, np.int64(-1), 0
    while True:
        joined[comp[top]] = True
        if pending >= 0:
            pred[top], up[top] = pending, True
        stack[0] = top  # orient the component's positive arcs away from top
        sp = 1
        while sp > 0:
            sp -= 1
            u = stack[sp]
            for t in range(deg[u], deg[u + 1]):
                k = adj[t]
                w = dst[k] if src[k] == u else src[k]
                if w != top and pred[w] == -1:
                    pred[w], up[w] = k, w == src[k]
                    stack[sp] = w
                    sp += 1
            if u >= n:  # a sink now joined: offer the arcs into it
                if first_sink < 0:
                    first_sink = u
                for t in range(in_ptr[u - n], in_ptr[u - n + 1]):
                    k = in_arc[t]
                    if not joined[comp[src[k]]]:
                        heapq.heappush(heap, (key[k], k))
        pending = -1
        while len(heap) > 0:
            k = heapq.heappop(heap)[1]
            if not joined[comp[src[k]]]:
                pending = k
                break
        if pending >= 0:
            top = src[pending]
            continue
        while scan < n and joined[comp[scan]]:  # a component no arc reaches
            scan += 1
        if scan == n:
            break
        if first_sink < 0:  # nothing to hang it from: the caller starts cold
            return pred, up, -1
        src[used], dst[used] = scan, first_sink
        pending, top = used, scan
        used += 1
    return pred, up, used


_TREE_ARCS = 4096  # tree arcs per parallel task of the neighbourhood pricing


@twins()
def _local_violations(x, y, p, f, g, tol, src, dst, n, near_x, near_y, rows, cols, found,
                      per_task):
    """Each task of ``per_task`` tree arcs writes its violated pairs at the start of its own
    slice of (rows, cols) and their number to found[task]."""
    ky, kx = near_y.shape[1], near_x.shape[1]
    for task in nb.prange(found.shape[0]):
        out = task * per_task * (kx + ky)
        first = out
        for k in range(task * per_task, min(src.shape[0], (task + 1) * per_task)):
            i, j = src[k], dst[k] - n
            for s in range(ky + kx):  # (i, j') for j' near y_j, then (i', j) for i' near x_i
                ii, jj = (i, near_y[j, s]) if s < ky else (near_x[i, s - ky], j)
                c = _cost(x, y, ii, jj, p)
                if c - f[ii] - g[jj] < -tol * max(c, abs(f[ii]), abs(g[jj])):
                    rows[out], cols[out] = ii, jj
                    out += 1
        found[task] = out - first


def local_violations(x, y, p, f, g, tol, src, dst, n, near_x, near_y, rows, cols,
                     per_task: int = _TREE_ARCS) -> int:
    """Pairs near the tree arcs (src, dst − n): (i, j') for j' among the neighbours of y_j
    and (i', j) for i' among those of x_i, whose reduced cost c − f_i − g_j is below
    −tol · max(c, |f_i|, |g_j|). Writes them to ``rows``, ``cols`` (room for every pair
    looked at: len(src) · (k_x + k_y); reused between calls, no fresh pages) and returns
    how many (repeats possible), in the order of the tree arcs."""
    width = near_x.shape[1] + near_y.shape[1]
    found = np.zeros(-(-src.shape[0] // per_task), np.int64)
    _local_violations(src.shape[0] * width * (x.shape[1] + 4), x, y, p, f, g, tol, src, dst,
                      n, near_x, near_y, rows, cols, found, per_task)
    out = 0
    for task, k in enumerate(found):  # compact the tasks' slices (a few thousand pairs)
        first = task * per_task * width
        rows[out:out + k], cols[out:out + k] = rows[first:first + k], cols[first:first + k]
        out += int(k)
    return out
