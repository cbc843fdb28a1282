"""The online soft-min on blocks of spatially sorted points, skipping the block pairs whose
Gibbs mass is certified negligible (kernel truncation).

For each row i, lse_i = log Σ_j exp(h_j − C_ij / eps) with C_ij = ‖x_i − y_j‖^p, as in
:func:`otdiv.kernels.softmin_numba.softmin_points`. The points come in blocks (consecutive
rows of x, consecutive columns of yt: k-d tree leaves, so each block is spatially tight) with
bounding boxes. For a row block I and a column block J every term is bounded by

    exp(h_j − C_ij / eps) <= exp(max_{j∈J} h_j − dist(box_I, box_J)^p / eps)

so β_IJ = |J| · exp(max_J h − dist(box_I, box_J)^p / eps) bounds the block's share of each
row sum. The blocks J are ranked by decreasing β_IJ. Those within e^-FIRST of the best are
summed first, which gives every row of I a partial sum; then the blocks from the first k on
whose bound Σ_{J from k on} β_IJ is at most ``delta`` times the smallest of those partial
sums are skipped, and the others are gathered into one contiguous buffer and summed in one
vectorised pass per row. For every row the skipped mass is then at most
delta × (its partial sum) <= delta × (its true sum), so

    lse_i − log(1 + delta) <= returned lse_i <= lse_i     (the bound is on the sum itself).

Each pass subtracts its own row maximum, so no sum under- or overflows; sums and
exponentials in float64 (the cost's rounding, ~1e-16 · C/eps, is all that is not certified).
"""

from __future__ import annotations

import math

import numpy as np

from otdiv.kernels._numba import nb, twins
from otdiv.kernels.power import power_fast
from otdiv.kernels.softmin_numba import _FLOOR, _exp_poly

_NONE = -1e300  # log 0 under fastmath's finite rules
FIRST = 4.0  # the blocks whose bound is within e^-FIRST of the best one are summed first


@nb.njit(inline="always", fastmath=True)
def _logaddexp(s, t):
    hi, lo = max(s, t), min(s, t)
    return hi + math.log1p(math.exp(max(lo - hi, _FLOOR)))


@nb.njit(inline="always", fastmath=True)
def _box_sq_dist(lo_a, hi_a, lo_b, hi_b, ia, jb):
    s = 0.0
    for k in range(lo_a.shape[1]):
        gap = max(0.0, max(lo_b[jb, k] - hi_a[ia, k], lo_a[ia, k] - hi_b[jb, k]))
        s += gap * gap
    return s


@nb.njit(inline="always", fastmath=True)
def _row_lse(x, i, ct, hc, w, inv_eps, p, buf, bits):
    """(max, Σ exp(· − max)) of h_j − ‖x_i − y_j‖^p / eps over the w gathered columns."""
    for j in range(w):
        buf[j] = 0.0
    for q in range(x.shape[1]):
        xq = x[i, q]
        for j in range(w):
            s = xq - ct[q, j]
            buf[j] += s * s
    for j in range(w):
        buf[j] = hc[j] - power_fast(buf[j], 0.5 * p) * inv_eps
    m = buf[0]
    for j in range(1, w):
        m = max(m, buf[j])
    scale = bits.view(np.float64)
    acc = 0.0
    for j in range(w):
        acc += _exp_poly(max(buf[j] - m, _FLOOR), bits, j) * scale[j]
    return m, acc


@nb.njit(inline="always", fastmath=True)
def _gather(yt, h, ys, order, k0, k1, d):
    """The columns of blocks order[k0:k1], coordinates (d, w) and h (w,), contiguous."""
    w = 0
    for k in range(k0, k1):
        w += ys[order[k] + 1] - ys[order[k]]
    ct = np.empty((d, max(w, 1)))
    hc = np.empty(max(w, 1))
    c = 0
    for k in range(k0, k1):
        jb = order[k]
        for j in range(ys[jb], ys[jb + 1]):
            for q in range(d):
                ct[q, c] = yt[q, j]
            hc[c] = h[j]
            c += 1
    return ct, hc, w


@twins(fastmath=True)
def _softmin_blocks(x, yt, h, inv_eps, p, xs, ys, xlo, xhi, ylo, yhi, log_delta, out, kept):
    # per row block: the best column block first (its sums give each row a partial sum),
    # then the cut: the first k whose bound of everything left is <= delta times the least
    # partial sum; blocks order[1:cut] are gathered and summed in one pass per row
    nbx, nby, d = xs.shape[0] - 1, ys.shape[0] - 1, x.shape[1]
    hmax = np.empty(nby)
    for jb in range(nby):
        t = h[ys[jb]]
        for j in range(ys[jb] + 1, ys[jb + 1]):
            t = max(t, h[j])
        hmax[jb] = t
    for ib in nb.prange(nbx):
        lb = np.empty(nby)
        for jb in range(nby):
            c = power_fast(_box_sq_dist(xlo, xhi, ylo, yhi, ib, jb), 0.5 * p)
            lb[jb] = math.log(ys[jb + 1] - ys[jb]) + hmax[jb] - c * inv_eps
        order = np.argsort(-lb)
        tail = np.empty(nby + 1)
        tail[nby] = _NONE
        for k in range(nby - 1, -1, -1):
            tail[k] = _logaddexp(tail[k + 1], lb[order[k]])
        lo, hi = xs[ib], xs[ib + 1]
        first = 1  # the blocks within a factor e^-FIRST of the best bound: summed first
        while first < nby and lb[order[first]] >= lb[order[0]] - FIRST:
            first += 1
        ct, hc, w = _gather(yt, h, ys, order, 0, first, d)
        buf = np.empty(yt.shape[1])
        bits = np.empty(yt.shape[1], dtype=np.int64)
        least = 1e300
        for i in range(lo, hi):
            m, acc = _row_lse(x, i, ct, hc, w, inv_eps, p, buf, bits)
            out[i] = m + math.log(acc)
            least = min(least, out[i])
        cut = first
        while cut < nby and tail[cut] > log_delta + least:
            cut += 1
        kept[ib] = cut
        if cut == first:
            continue
        ct, hc, w = _gather(yt, h, ys, order, first, cut, d)
        for i in range(lo, hi):
            m, acc = _row_lse(x, i, ct, hc, w, inv_eps, p, buf, bits)
            out[i] = _logaddexp(out[i], m + math.log(acc))


def softmin_blocks(x, yt, h, eps: float, p: float, blocks, delta: float):
    """lse_i = log Σ_j exp(h_j − ‖x_i − y_j‖^p / eps) up to a factor 1 + delta in the sum,
    certified: lse_i − log(1 + delta) <= returned_i <= lse_i (module docstring).

    x (n, d), yt (d, m): float64, C-contiguous, sorted so that blocks are spatially tight;
    h (m,) float64, finite (NEG_LARGE for log 0). ``blocks`` = (xs, ys, xlo, xhi, ylo, yhi):
    block boundaries (int64, first 0, last n or m) and the blocks' bounding boxes (k, d).
    Returns (lse (n,), the number of block pairs summed).
    """
    xs, ys, xlo, xhi, ylo, yhi = blocks
    n = x.shape[0]
    out = np.empty(n)
    kept = np.zeros(xs.shape[0] - 1, dtype=np.int64)
    _softmin_blocks(n * yt.size, x, yt, h, 1.0 / eps, float(p), xs, ys, xlo, xhi, ylo, yhi,
                    math.log(delta), out, kept)
    return out, int(kept.sum())
