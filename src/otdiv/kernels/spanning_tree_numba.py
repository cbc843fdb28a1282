"""The basis tree of the transportation simplex, and the pivots that change it.

    min Σ_k c_k φ_k  over arcs k = (i → j),  Σ_{k out of i} φ_k = a_i,  Σ_{k into j} φ_k = b_j,
    φ ≥ 0.

Nodes 0..n−1 are the sources, n..n+m−1 the sinks; every arc goes from a source to a sink. The
basis is a spanning tree stored as parent pointers, the tree arc of each node (``pred``) and
its orientation (``up``: the node is the arc's source), child lists (``first``, ``nxt``,
``prv``), the size of each node's subtree (``size``, the node included) and node potentials π
with c_k + π_src − π_dst = 0 on tree arcs.

A pivot brings in arc e = (u, v) of reduced cost r = c_e + π_u − π_v < 0:

* the apex (the meeting point of the tree paths from u and from v) is found by walking up
  from whichever of s, t has the smaller subtree (an ancestor's subtree is strictly larger),
  so no depths are stored;
* the leaving arc is the last blocking arc of the cycle walked from its apex (Cunningham's
  strongly feasible trees: degenerate pivots cannot cycle);
* the subtree S below the leaving arc is re-hung from e; the subtree sizes change only along
  the two cycle paths and on the reversed path inside S (O(cycle length));
* potentials are defined up to a constant, so either S moves by ±r or its complement by ∓r:
  whichever side is smaller is updated (O(min(|S|, n + m − |S|))). The complement's shift
  moves π at the root; π is re-anchored (π_root = 0) when |π_root| exceeds the largest arc
  cost, so that the tolerance max(c, |π_u|, |π_v|) keeps its scale.
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels._numba import nb


@nb.njit(cache=True)
def build_tree(src, dst, pred, up, root, parent, size, first, nxt, prv, pi, cost, order):
    """From the tree arcs of each node (pred, up): parents, child lists, subtree sizes and
    the potentials π (π_root = 0, c + π_src − π_dst = 0 on tree arcs). ``order`` is a work
    array of n + m nodes (left in breadth-first order, root first); returns how many nodes
    the root reaches (n + m for a spanning tree)."""
    nn = parent.shape[0]
    first[:] = -1
    nxt[:] = -1
    prv[:] = -1
    parent[root] = -1
    for w in range(nn):
        if w == root:
            continue
        e = pred[w]
        p = dst[e] if up[w] else src[e]
        parent[w] = p
        _add_child(first, nxt, prv, p, w)
    pi[root] = 0.0
    order[0] = root
    head, tail = 0, 1
    while head < tail:
        p = order[head]
        head += 1
        c = first[p]
        while c != -1:
            e = pred[c]
            pi[c] = pi[p] - cost[e] if up[c] else pi[p] + cost[e]
            order[tail] = c
            tail += 1
            c = nxt[c]
    size[:] = 1
    for t in range(tail - 1, 0, -1):
        w = order[t]
        size[parent[w]] += size[w]
    return tail


@nb.njit(inline="always")
def _add_child(first, nxt, prv, p, c):
    h = first[p]
    nxt[c] = h
    prv[c] = -1
    if h != -1:
        prv[h] = c
    first[p] = c


@nb.njit(inline="always")
def _remove_child(first, nxt, prv, p, c):
    if prv[c] != -1:
        nxt[prv[c]] = nxt[c]
    else:
        first[p] = nxt[c]
    if nxt[c] != -1:
        prv[nxt[c]] = prv[c]


@nb.njit(cache=True)
def simplex(src, dst, cost, flow, n_arcs, root, parent, pred, up, size, first, nxt, prv, pi,
            start, tol, max_pivots, work, block):
    """Pivot until no arc among the first ``n_arcs`` has reduced cost
    r = c + π_u − π_v < −tol · max(c, |π_u|, |π_v|) (the rounding scale of r), or
    ``max_pivots`` pivots; the entering arc is the most negative of a block of ``block``
    arcs. ``dst`` holds node indices (n + j). Returns (pivots done, optimal on these arcs,
    next block start)."""
    pivots = 0
    k = start % n_arcs
    anchor = 0.0  # |π_root| beyond which π is re-anchored
    for t in range(n_arcs):
        anchor = max(anchor, cost[t])
    while pivots < max_pivots:
        best, best_k, seen, scanned = 0.0, -1, 0, 0
        while scanned < n_arcs:
            u, v = src[k], dst[k]
            rc = cost[k] + pi[u] - pi[v]
            # a tree arc's rc is rounding noise around 0: never let it enter
            if rc < best and rc < -tol * max(cost[k], abs(pi[u]), abs(pi[v])) and \
                    pred[u] != k and pred[v] != k:
                best, best_k = rc, k
            k += 1
            if k == n_arcs:
                k = 0
            scanned += 1
            seen += 1
            if seen == block:
                if best_k >= 0:
                    break
                seen = 0
        if best_k < 0:
            return pivots, True, k
        pivot(best_k, src, dst, cost, flow, root, parent, pred, up, size, first, nxt, prv, pi,
              work)
        if abs(pi[root]) > anchor:
            offset = pi[root]
            for w in range(pi.shape[0]):
                pi[w] -= offset
        pivots += 1
    return pivots, False, k


@nb.njit(cache=True)
def pivot(e, src, dst, cost, flow, root, parent, pred, up, size, first, nxt, prv, pi, work):
    """Bring arc e into the basis (its reduced cost must be negative); ``work`` holds
    n + m + 1 nodes."""
    u, v = src[e], dst[e]
    rc = cost[e] + pi[u] - pi[v]
    s, t = u, v
    while s != t:
        if size[s] < size[t]:
            s = parent[s]
        else:
            t = parent[t]
    apex = s
    # The cycle runs u → v along e, then up from v to the apex and down to u. Arcs whose
    # flow the push decreases block it; take the last blocking arc from the apex: on v's
    # side the one nearest the apex (<=), else on u's side the one nearest u (<).
    delta = np.inf
    leave, in_u = -1, True
    w = u
    while w != apex:
        if up[w] and flow[pred[w]] < delta:
            delta, leave, in_u = flow[pred[w]], w, True
        w = parent[w]
    w = v
    while w != apex:
        if not up[w] and flow[pred[w]] <= delta:
            delta, leave, in_u = flow[pred[w]], w, False
        w = parent[w]
    if delta > 0.0:
        flow[e] += delta
        w = u
        while w != apex:
            flow[pred[w]] += -delta if up[w] else delta
            w = parent[w]
        w = v
        while w != apex:
            flow[pred[w]] += delta if up[w] else -delta
            w = parent[w]
    flow[pred[leave]] = 0.0
    w0, out = (u, v) if in_u else (v, u)
    shift = -rc if in_u else rc
    moved = size[leave]
    # sizes along the cycle: S leaves the path above `leave`, joins the path above `out`
    w = parent[leave]
    while w != apex:
        size[w] -= moved
        w = parent[w]
    w = out
    while w != apex:
        size[w] += moved
        w = parent[w]
    # Re-hang S from e: reverse the path from the entering endpoint inside it (w_0) up to
    # the leaving node (w_k); path[i + 1]'s new subtree is S minus path[i]'s old one.
    path = work
    k = 0
    w = w0
    path[0] = w
    while w != leave:
        w = parent[w]
        k += 1
        path[k] = w
    _remove_child(first, nxt, prv, parent[leave], leave)
    for i in range(k):
        _remove_child(first, nxt, prv, path[i + 1], path[i])
    for i in range(k - 1, -1, -1):
        a, b = path[i], path[i + 1]
        pred[b] = pred[a]
        up[b] = not up[a]
        parent[b] = a
        size[b] = moved - size[a]
        _add_child(first, nxt, prv, a, b)
    size[w0] = moved
    pred[w0] = e
    up[w0] = in_u
    parent[w0] = out
    _add_child(first, nxt, prv, out, w0)
    # potentials of the smaller side (path doubles as the DFS stack)
    if 2 * moved <= parent.shape[0]:
        top, skip = 0, -1
        path[0] = w0
    else:
        top, skip, shift = 0, w0, -shift
        path[0] = root
    pi[path[0]] += shift
    while top >= 0:
        p = path[top]
        top -= 1
        c = first[p]
        while c != -1:
            if c != skip:
                pi[c] += shift
                top += 1
                path[top] = c
            c = nxt[c]
