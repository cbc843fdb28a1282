r"""Pricing all n·m pairs against dual potentials without costing most of them.

The exact solver's certificate asks, for potentials (f, g), which pairs are violated,

.. math:: r_{ij} = c_{ij} - f_i - g_j < -\mathrm{tol}\cdot\max(c_{ij}, |f_i|, |g_j|),
          \qquad c_{ij} = \|x_i - y_j\|_2^p,

and :func:`most_negative` answers exactly as the brute-force pass
(``otdiv.kernels.simplex_numba.most_negative``) does — the same violated pairs, the same
count, the same ``per_row`` most negative of each row (ties aside) — while costing only the
pairs that a k-d tree over y cannot rule out. Each node of the tree holds the bounding box
of its points and, per call, two upper bounds on g over them: g_max, and a plane
g_j <= alpha + beta·(y_j − centre) (beta fitted to g by least squares). For row i a node is
skipped when either lower bound on c_ij − g_j over the node exceeds f_i by a margin:

* the box bound: L − f_i − g_max > 2^-50 (L + |f_i| + |g_max|), with
  L = (1 − 10^-15) dist(x_i, box)^p computed the way the costs are (the squared distance to
  the box summed coordinate by coordinate in the same order, every term no larger, each
  rounding monotone, the factor covering ``pow``): L is below every *computed* c_ij;
* the plane bound: the minimum over the box of s‖x_i − y‖^p − beta·(y − centre) − alpha
  (exact for p = 2, where it is separable; from the tangent plane at the centre otherwise),
  with s = 1 − (p(d + 2) + 8)·2^-53 below the ratio of computed to real costs, skipped when
  it exceeds f_i by (8d + 8p + 32)·2^-53 times the magnitude of its terms.

Both tests also ask for an absolute 2^-500 (``_GUARD``): in the subnormal range rounding is
absolute, not relative. Either way the real number c_ij − f_i − g_j is at least 2^-53 |c_ij
− f_i| for every pair of the node (it grows with c_ij and falls with g_j), so the reduced
cost computed as (c_ij − f_i) − g_j rounds to r >= 0, which no tol >= 0 calls violated:
pruning never skips a violated pair. The tolerance rule itself is applied, unchanged, to the
pairs that are costed; the count of violated pairs is exact. Where the boxes rule out too
few pairs to pay for the tree (high dimension: about 70 % of the pairs survive in d = 16), a
sample of rows says so first and the brute-force pricer answers instead (:func:`tree_pays`)
— from d = ``pricing_gemm.MIN_DIM`` on, with its distances from a matrix product
(``otdiv.kernels.pricing_gemm``: the same answer).
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels import pricing_gemm
from otdiv.kernels import simplex_numba as sx
from otdiv.kernels._numba import nb, twins
from otdiv.kernels.power import power

_LEAF = 32  # points per leaf of the tree (at most): 15 % faster than 16 on W1 at 5·10^4
_ROWS = 32  # rows per parallel task
_BELOW = 1.0 - 1e-15  # under every computed cost of a box (pow is accurate to < 1 ulp)
_MARGIN = 2.0**-50  # > the rounding of the skip test: 4·2^-53 per operand
_U = 2.0**-53  # unit roundoff
# absolute slack of both skip tests: in the subnormal range rounding is absolute, and the
# computed cost can fall below the real one by up to (d·2^-1074)^(p/2) (underflowed squares);
# 2^-500 exceeds that and every other absolute rounding, and is nothing at the solver's unit
# scale (costs near 1)
_GUARD = 2.0**-500
_SAMPLE = 256  # rows priced first to see whether the tree pays
_DENSE = 0.3  # past this fraction of pairs costed in the sample, the brute force runs


@nb.njit(cache=True)
def _select(key, perm, lo, hi, k):
    """Reorder perm[lo:hi] so that key[perm[k]] is the k-th smallest of the range, with
    no larger key before it and no smaller key after (quickselect, Hoare partition)."""
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        a, b, c = key[perm[lo]], key[perm[mid]], key[perm[hi - 1]]
        pivot = max(min(a, b), min(max(a, b), c))  # median of three
        i, j = lo, hi - 1
        while i <= j:
            while key[perm[i]] < pivot:
                i += 1
            while key[perm[j]] > pivot:
                j -= 1
            if i <= j:
                perm[i], perm[j] = perm[j], perm[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j + 1
        elif k >= i:
            lo = i
        else:
            return


@nb.njit(cache=True)
def build_tree(y, leaf):
    """A balanced k-d tree over the points y (m, d): node k has children 2k+1, 2k+2 and holds
    the points perm[start[k]:end[k]]; its box is [lo[k], hi[k]]. Every leaf is at the last
    level (first leaf: ``first_leaf``) and holds at most ``leaf`` points. Each node splits at
    the median of its widest coordinate."""
    m, d = y.shape
    levels = 0
    while (m + (1 << levels) - 1) >> levels > leaf:
        levels += 1
    nodes = (1 << (levels + 1)) - 1
    first_leaf = (1 << levels) - 1
    start = np.empty(nodes, np.int64)
    end = np.empty(nodes, np.int64)
    lo = np.empty((nodes, d))
    hi = np.empty((nodes, d))
    perm = np.arange(m)
    key = np.empty(m)
    start[0], end[0] = 0, m
    for k in range(nodes):
        s, e = start[k], end[k]
        for t in range(d):
            lo[k, t], hi[k, t] = np.inf, -np.inf
        for q in range(s, e):
            for t in range(d):
                v = y[perm[q], t]
                lo[k, t] = min(lo[k, t], v)
                hi[k, t] = max(hi[k, t], v)
        if k >= first_leaf:
            continue
        dim, width = 0, -1.0
        for t in range(d):
            if e > s and hi[k, t] - lo[k, t] > width:
                dim, width = t, hi[k, t] - lo[k, t]
        mid = s + (e - s) // 2
        for q in range(s, e):
            key[perm[q]] = y[perm[q], dim]
        if e - s > 1:
            _select(key, perm, s, e, mid)
        start[2 * k + 1], end[2 * k + 1] = s, mid
        start[2 * k + 2], end[2 * k + 2] = mid, e
    return perm, start, end, lo, hi, first_leaf


@nb.njit(cache=True)
def node_bounds(ys, gs, start, end, lo, hi, first_leaf):
    """Per node, from g in tree order: gmax = max g_j, and a plane that bounds g from above,
    g_j <= alpha + beta·(y_j − centre) (beta: the ridge least-squares slope of g over the
    node's points, any slope being valid; alpha: the smallest offset that makes it a bound,
    raised by (2d + 8)·2^-53·``amag`` for its rounding; ``amag``: the magnitude the offset
    was summed from). Empty nodes get gmax = −inf."""
    nodes = start.shape[0]
    d = ys.shape[1]
    gmax = np.full(nodes, -np.inf)
    alpha = np.zeros(nodes)
    amag = np.zeros(nodes)
    beta = np.zeros((nodes, d))
    cov = np.empty((d, d))
    rhs = np.empty(d)
    mean = np.empty(d)
    for k in range(nodes):
        s, e = start[k], end[k]
        if e == s:
            continue
        cnt = e - s
        gbar = 0.0
        for t in range(d):
            mean[t] = 0.0
        for q in range(s, e):
            gbar += gs[q]
            gmax[k] = max(gmax[k], gs[q])
            for t in range(d):
                mean[t] += ys[q, t]
        gbar /= cnt
        for t in range(d):
            mean[t] /= cnt
            rhs[t] = 0.0
            for u in range(d):
                cov[t, u] = 0.0
        for q in range(s, e):
            dg = gs[q] - gbar
            for t in range(d):
                dt = ys[q, t] - mean[t]
                rhs[t] += dt * dg
                for u in range(d):
                    cov[t, u] += dt * (ys[q, u] - mean[u])
        trace = 0.0
        for t in range(d):
            trace += cov[t, t]
        finite = np.isfinite(trace)  # coordinates near the float range overflow: no slope
        for t in range(d):
            finite = finite and np.isfinite(rhs[t])
        if finite and trace > 0.0 and cnt > 1:
            for t in range(d):
                cov[t, t] += 1e-9 * trace
            b = np.linalg.solve(cov, rhs)
            ok = True
            for t in range(d):
                ok = ok and np.isfinite(b[t])
            if ok:
                for t in range(d):
                    beta[k, t] = b[t]
        best, mag = -np.inf, 0.0
        for q in range(s, e):
            v = gs[q]
            a = abs(v)
            for t in range(d):
                w = beta[k, t] * (ys[q, t] - 0.5 * (lo[k, t] + hi[k, t]))
                v -= w
                a += abs(w)
            best = max(best, v)
            mag = max(mag, a)
        amag[k] = mag
        alpha[k] = best + mag * (2 * d + 8) * _U
    return gmax, alpha, beta, amag


@nb.njit(inline="always")
def _plane_bound(xi, lo, hi, alpha, beta, amag, p, shrink):
    """A lower bound on shrink·‖x_i − y‖^p − g(y) over the box [lo, hi] given the plane
    g(y) <= alpha + beta·(y − centre): the box minimum of the convex function
    shrink·‖x_i − y‖^p − beta·(y − centre), exact for p = 2 (separable), else from its
    tangent plane at the centre. Returns the bound (as computed) and the magnitude of the
    terms it was summed from (its rounding is a small multiple of 2^-53 times that)."""
    d = xi.shape[0]
    val = -alpha
    mag = abs(alpha) + amag
    if p == 2.0:
        for t in range(d):
            ctr = 0.5 * (lo[t] + hi[t])
            yt = min(max(xi[t] + beta[t] / (2.0 * shrink), lo[t]), hi[t])
            u = xi[t] - yt
            a1 = shrink * u * u
            a2 = beta[t] * (yt - ctr)
            val += a1 - a2
            mag += a1 + abs(a2)
        return val, mag
    dist2 = 0.0
    for t in range(d):
        u = 0.5 * (lo[t] + hi[t]) - xi[t]
        dist2 += u * u
    if dist2 == 0.0:  # no tangent plane at x_i itself (p = 1): no bound
        return -np.inf, 0.0
    hz = shrink * power(dist2, 0.5 * p)
    coef = p * hz / dist2  # gradient = coef·(centre − x_i)
    val += hz
    mag += hz
    for t in range(d):
        ctr = 0.5 * (lo[t] + hi[t])
        grad = coef * (ctr - xi[t])
        w = grad - beta[t]
        val += min(w * (lo[t] - ctr), w * (hi[t] - ctr))
        mag += (abs(grad) + abs(beta[t])) * (hi[t] - lo[t])
    return val, mag


@nb.njit(inline="always")
def _ruled_out(xi, fi, lo, hi, gm, alpha, beta, amag, p, shrink, slack):
    """True when no pair of the node [lo, hi] can be violated for row i (module docstring:
    the box bound with g_max, then the plane bound)."""
    sq = 0.0
    for t in range(xi.shape[0]):
        u = 0.0
        if xi[t] < lo[t]:
            u = lo[t] - xi[t]
        elif xi[t] > hi[t]:
            u = xi[t] - hi[t]
        sq += u * u
    bound = power(sq, 0.5 * p) * _BELOW
    if bound - fi - gm > _MARGIN * (bound + abs(fi) + abs(gm)) + _GUARD:
        return True
    val, mag = _plane_bound(xi, lo, hi, alpha, beta, amag, p, shrink)
    return val - fi > slack * (mag + abs(fi)) + _GUARD


@twins()
def _price(x, ys, perm, start, end, lo, hi, gmax, alpha, beta, amag, first_leaf, p, f, gs, tol,
           out):
    """For each row i: every pair of the leaves the tree cannot rule out is costed and judged
    by the tolerance rule; the ``out.shape[1]`` most negative violated columns go to out[i]
    (−1 where fewer). Returns the number of violated pairs and of pairs costed."""
    n, per_row = out.shape
    d = ys.shape[1]
    q = 0.5 * p
    shrink = 1.0 - (p * (d + 2) + 8) * _U  # below computed/real cost, _plane_bound
    slack = (8 * d + 8 * p + 32) * _U
    nodes = start.shape[0]
    depth = 0
    while (1 << (depth + 1)) - 1 < nodes:
        depth += 1
    counts = np.zeros(n, np.int64)
    costed = np.zeros(n, np.int64)
    tasks = (n + _ROWS - 1) // _ROWS
    for task in nb.prange(tasks):
        stack = np.empty(depth + 2, np.int64)
        vals = np.empty(per_row)
        for i in range(task * _ROWS, min(n, (task + 1) * _ROWS)):
            vals[:] = 0.0
            out[i, :] = -1
            worst, count = 0, 0
            fi = f[i]
            top = 0
            stack[0] = 0
            while top >= 0:
                k = stack[top]
                top -= 1
                if start[k] == end[k]:
                    continue
                if _ruled_out(x[i], fi, lo[k], hi[k], gmax[k], alpha[k], beta[k], amag[k], p,
                              shrink, slack):
                    continue
                if k < first_leaf:
                    stack[top + 1] = 2 * k + 2
                    stack[top + 2] = 2 * k + 1
                    top += 2
                    continue
                costed[i] += end[k] - start[k]
                for j in range(start[k], end[k]):
                    worst, hit = sx.judge_pair(x, i, ys, j, q, fi, gs[j], tol, vals, out[i],
                                               worst, perm[j])
                    count += hit
            counts[i] = count
    return counts.sum(), costed.sum()


def tree_pays(x, tree, f, gs, tol, row_work) -> bool:
    """Whether the tree rules out enough pairs to beat costing them all: the ``_SAMPLE`` rows
    spread over x (the solver passes x in a k-d order) are priced with it, and it pays when
    fewer than ``_DENSE`` of their pairs survive (d = 16: about 70 % do)."""
    rows = np.linspace(0, x.shape[0] - 1, _SAMPLE).astype(np.int64)
    _, costed = _price(_SAMPLE * row_work, x[rows], *tree, f[rows], gs, float(tol),
                       np.empty((_SAMPLE, 1), np.int64))
    return costed < _DENSE * _SAMPLE * gs.shape[0]


def most_negative(x, y, p, f, g, tol, per_row):
    """(rows, cols) of up to ``per_row`` violated pairs per row — the most negative reduced
    costs r = c_ij − f_i − g_j < −tol·max(c_ij, |f_i|, |g_j|), c_ij = ‖x_i − y_j‖^p — and the
    number of violated pairs in all: the same answer as the brute-force pricer, from the
    pairs a k-d tree over y cannot rule out (module docstring); the brute-force pricer itself
    when the tree does not pay (``tree_pays``). x (n, d), y (m, d) float64, tol >= 0;
    O((n + m)·d) memory beyond the output."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), 0
    f = np.ascontiguousarray(f, dtype=np.float64)
    perm, start, end, lo, hi, first_leaf = build_tree(y, _LEAF)
    gs = np.ascontiguousarray(g, dtype=np.float64)[perm]
    tree = (y[perm], perm, start, end, lo, hi,
            *node_bounds(y[perm], gs, start, end, lo, hi, first_leaf), first_leaf, float(p))
    # work of a row for the serial/parallel choice: about a leaf per level of the tree
    row_work = (_LEAF + 4) * x.shape[1] * max(1, first_leaf.bit_length())
    if n > 2 * _SAMPLE and not tree_pays(x, tree, f, gs, tol, row_work):
        brute = pricing_gemm if x.shape[1] >= pricing_gemm.MIN_DIM else sx
        return brute.most_negative(x, y, p, f, g, tol, per_row)
    out = np.empty((n, per_row), np.int64)
    total, _ = _price(n * row_work, x, *tree, f, gs, float(tol), out)
    rows, slots = np.nonzero(out >= 0)
    return rows, out[rows, slots], int(total)
