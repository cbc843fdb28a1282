"""The basis tree of the transportation simplex, and the pivots that change it.

    min Σ_k c_k φ_k  over arcs k = (i → j),  Σ_{k out of i} φ_k = a_i,  Σ_{k into j} φ_k = b_j,
    φ ≥ 0.

Nodes 0..n−1 are the sources, n..n+m−1 the sinks; every arc goes from a source to a sink. The
basis is a spanning tree stored as parent pointers, the tree arc of each node (``pred``) and
its orientation (``up``: the node is the arc's source), a preorder of the nodes as a cyclic
doubly linked list (``thread``: the next node, ``rev``: the previous one), the last node of
each subtree in that order (``last``) and its size (``size``, the node included), and node
potentials π with c_k + π_src − π_dst = 0 on tree arcs. A subtree is the run of the thread
from its top node to its ``last``.

A pivot brings in arc e = (u, v) of reduced cost r = c_e + π_u − π_v < 0:

* the apex (the meeting point of the tree paths from u and from v) is found by walking up
  from whichever of s, t has the smaller subtree (an ancestor's subtree is strictly larger),
  so no depths are stored; the two sides of the cycle are recorded on the way, and every
  later pass over the cycle (blocking arcs, flows, sizes, the reversed path) reads them
  from that record, its loads independent of each other instead of a chain of parents;
* the leaving arc is the last blocking arc of the cycle walked from its apex (Cunningham's
  strongly feasible trees: degenerate pivots cannot cycle);
* the subtree S below the leaving arc is re-hung from e: its run is cut out of the thread,
  re-ordered as the preorder of S re-rooted at e's endpoint (pieces of the old run, spliced
  along the reversed path inside S) and spliced in after e's other endpoint; sizes change
  only along the two cycle paths and the reversed path; ``last`` changes on the reversed path
  and on the ancestors whose run ended where S's run was cut or is put (O(cycle length)
  beyond those ancestors);
* potentials are defined up to a constant, so either S moves by ±r or its complement by ∓r:
  whichever side is smaller, a run of the thread, is shifted — node by node when short,
  else per chunk of the thread (``thread_chunks_numba``: π = base + offset of the node's
  chunk while pivoting). The complement's shift moves π at the root; π is re-anchored
  (π_root = 0) when |π_root| exceeds the largest arc cost, so that the tolerance
  max(c, |π_u|, |π_v|) keeps its scale.
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels import thread_chunks_numba as tc
from otdiv.kernels._numba import nb


@nb.njit(cache=True)
def build_tree(src, dst, pred, up, root, parent, size, thread, rev, last, pi, cost, order):
    """From the tree arcs of each node (pred, up): parents, the preorder thread, subtree sizes
    and last nodes, and the potentials π (π_root = 0, c + π_src − π_dst = 0 on tree arcs).
    ``order`` is a work array of n + m + 1 nodes; returns how many nodes the root reaches
    (n + m for a spanning tree)."""
    nn = parent.shape[0]
    # children as linked lists in rev (first child) and last (next sibling), for the DFS
    first, sibling = rev, last
    first[:] = -1
    parent[root] = -1
    for w in range(nn):
        if w == root:
            continue
        e = pred[w]
        p = dst[e] if up[w] else src[e]
        parent[w] = p
        sibling[w] = first[p]
        first[p] = w
    # preorder by an explicit stack; π on the way down
    pi[root] = 0.0
    stack = thread  # the thread is written afterwards from ``order``
    top, count = 0, 0
    stack[0] = root
    while top >= 0:
        w = stack[top]
        top -= 1
        order[count] = w
        count += 1
        c = first[w]
        while c != -1:
            e = pred[c]
            pi[c] = pi[w] - cost[e] if up[c] else pi[w] + cost[e]
            top += 1
            stack[top] = c
            c = sibling[c]
    for t in range(count):
        thread[order[t]] = order[(t + 1) % count]
        rev[order[(t + 1) % count]] = order[t]
    size[:] = 1
    for t in range(count - 1, 0, -1):
        size[parent[order[t]]] += size[order[t]]
    for t in range(count):
        last[order[t]] = order[t + size[order[t]] - 1]
    return count


@nb.njit(cache=True)
def simplex(src, dst, cost, flow, n_arcs, root, parent, pred, up, size, thread, rev, last, pi,
            start, tol, max_pivots, work, block, chunks, anchor):
    """Pivot until no arc among the first ``n_arcs`` has reduced cost
    r = c + π_u − π_v < −tol · max(c, |π_u|, |π_v|) (the rounding scale of r), or
    ``max_pivots`` pivots; the entering arc is the most negative of a block of ``block``
    arcs. ``dst`` holds node indices (n + j); ``work`` is (6, n + m + 1). Returns (pivots
    done, optimal on these arcs, next block start). ``chunks`` = (node (n + m, 2), offsets
    (n + m + 1,), table (5, n + m + 1), state (1,), width, large) of
    ``thread_chunks_numba``: the potentials live there while pivoting; ``pi`` holds them
    again on return. ``anchor`` >= the largest arc cost: |π_root| beyond it re-anchors π."""
    node, off, table, state, width, _ = chunks
    tc.init_chunks(root, thread, pi, node, off, table, state, width)
    pivots = 0
    k = start % n_arcs
    while pivots < max_pivots:
        best, best_k, seen, scanned = 0.0, -1, 0, 0
        while scanned < n_arcs:
            u, v = src[k], dst[k]
            pu, pv = tc.potential(u, node, off), tc.potential(v, node, off)
            rc = cost[k] + pu - pv
            # a tree arc's rc is rounding noise around 0: never let it enter
            if rc < best and rc < -tol * max(cost[k], abs(pu), abs(pv)) and \
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
            tc.materialize(pi, node, off)
            return pivots, True, k
        pivot(best_k, src, dst, cost, flow, root, parent, pred, up, size, thread, rev, last,
              work, chunks)
        offset = tc.potential(root, node, off)
        if abs(offset) > anchor:
            tc.reanchor(offset, node, off)
        pivots += 1
    tc.materialize(pi, node, off)
    return pivots, False, k


@nb.njit(cache=True)
def pivot(e, src, dst, cost, flow, root, parent, pred, up, size, thread, rev, last, work,
          chunks):
    """Bring arc e into the basis (its reduced cost must be negative); ``work`` is
    (6, n + m + 1), ``chunks`` the potentials as in :func:`simplex` (initialised)."""
    node, off, table, state, width, large = chunks
    u, v = src[e], dst[e]
    rc = cost[e] + tc.potential(u, node, off) - tc.potential(v, node, off)
    # the two sides of the cycle, u and v up to (not including) the apex, recorded once: the
    # walks below read them from these arrays, their loads independent of each other
    side_u, side_v = work[4], work[5]
    s, t, nu, nv = u, v, 0, 0
    while s != t:
        if size[s] < size[t]:
            side_u[nu] = s
            nu += 1
            s = parent[s]
        else:
            side_v[nv] = t
            nv += 1
            t = parent[t]
    # The cycle runs u → v along e, then up from v to the apex and down to u. Arcs whose
    # flow the push decreases block it; take the last blocking arc from the apex: on v's
    # side the one nearest the apex (<=), else on u's side the one nearest u (<).
    delta = np.inf
    at, in_u = -1, True
    for i in range(nu):
        w = side_u[i]
        if up[w] and flow[pred[w]] < delta:
            delta, at, in_u = flow[pred[w]], i, True
    for i in range(nv):
        w = side_v[i]
        if not up[w] and flow[pred[w]] <= delta:
            delta, at, in_u = flow[pred[w]], i, False
    if delta > 0.0:
        flow[e] += delta
        for i in range(nu):
            w = side_u[i]
            flow[pred[w]] += -delta if up[w] else delta
        for i in range(nv):
            w = side_v[i]
            flow[pred[w]] += delta if up[w] else -delta
    # S (the subtree below the leaving arc) is re-hung from e at w0; `out` is e's other end
    if in_u:
        w0, out, path, n_path, n_out, other, shift = u, v, side_u, nu, nv, side_v, -rc
    else:
        w0, out, path, n_path, n_out, other, shift = v, u, side_v, nv, nu, side_u, rc
    leave = path[at]
    flow[pred[leave]] = 0.0
    moved = size[leave]
    # sizes along the cycle: S leaves the path above `leave`, joins the path above `out`
    for i in range(at + 1, n_path):
        size[path[i]] -= moved
    for i in range(n_out):
        size[other[i]] += moved
    # the reversed path w_0 = w0, ..., w_k = leave (path[0 .. k]), with each node's old run
    # (its ends and the nodes just before and after it)
    old_last, old_rev, old_after = work[1], work[2], work[3]
    k = at
    for i in range(k + 1):
        w = path[i]
        old_last[i] = last[w]
        old_rev[i] = rev[w]
        old_after[i] = thread[last[w]]
    # the nodes whose successor in the thread changes below (their chunks may break)
    for i in range(k + 1):
        tc.touch(old_rev[i], node, table)
        tc.touch(old_last[i], node, table)
    tc.touch(out, node, table)
    # cut S's run out of the thread; ancestors whose run ended with S's now end before it
    before, after = old_rev[k], old_after[k]
    thread[before] = after
    rev[after] = before
    w = parent[leave]
    while w != -1 and last[w] == old_last[k]:
        last[w] = before
        w = parent[w]
    # S's new preorder: w_0's old run, then for each w_{i+1} its old run without w_i's
    # (the piece before w_i's run and the piece after it)
    tail = old_last[0]
    for i in range(k):
        q = path[i + 1]
        thread[tail] = q
        rev[q] = tail
        tail = old_rev[i]
        if old_last[i] != old_last[i + 1]:
            thread[tail] = old_after[i]
            rev[old_after[i]] = tail
            tail = old_last[i + 1]
    for i in range(k + 1):
        last[path[i]] = tail
    # parents, tree arcs and sizes along the reversed path
    for i in range(k - 1, -1, -1):
        a, b = path[i], path[i + 1]
        pred[b] = pred[a]
        up[b] = not up[a]
        parent[b] = a
        size[b] = moved - size[a]
    size[w0] = moved
    pred[w0] = e
    up[w0] = in_u
    parent[w0] = out
    # splice S's run in right after `out`; if `out` was a leaf, the runs that ended at it
    # now end at S's last node
    after = thread[out]
    thread[out] = w0
    rev[w0] = out
    thread[tail] = after
    rev[after] = tail
    if last[out] == out:
        w = out
        while w != -1 and last[w] == out:
            last[w] = tail
            w = parent[w]
    # potentials of the smaller side: S's run (w0 .. tail) or the rest (after .. out)
    if 2 * moved <= parent.shape[0]:
        tc.shift_run(w0, tail, moved, shift, thread, rev, node, off, table, state, width,
                     large)
    else:
        tc.shift_run(after, out, parent.shape[0] - moved, -shift, thread, rev, node, off,
                     table, state, width, large)
