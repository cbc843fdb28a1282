"""The stabilised Gibbs kernel of scaling-domain Sinkhorn, on the CPU.

For a reference pair of potentials (F, G) that are c-transforms of each other,
F_i = min_j (C_ij − G_j) and G_j = min_i (C_ij − F_i), the kernel

    K_ij = exp((F_i + G_j − C_ij) / eps)

has every entry in [0, 1] and the value 1 somewhere in every row and every column, so it can
be stored (in float32 when the tolerance allows) without overflow, and the soft-min of any
potential g near G is a matrix–vector product:

    −eps log Σ_j b_j exp((g_j − C_ij)/eps) = F_i − eps log Σ_j K_ij b_j exp((g_j − G_j)/eps).

A sweep then costs two passes over K (memory bound) instead of 2·n·m exponentials. Products
accumulate in float64; float32 storage costs a relative error of 6e-8 per entry, and
the solver re-measures its final marginal error with the exact log-domain kernel.
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels._numba import nb, twins
from otdiv.kernels.power import power_fast
from otdiv.kernels.softmin_numba import _FLOOR, _blocks, _exp_poly, sq_dists


@twins(fastmath=True)
def _ctransform(x, yt, g, p, out, n_blocks):
    n = x.shape[0]
    m = yt.shape[1]
    for blk in nb.prange(n_blocks):
        sq = np.empty(m, dtype=np.float64)
        for i in range(blk * n // n_blocks, (blk + 1) * n // n_blocks):
            sq_dists(x, yt, i, sq)
            best = np.inf
            for j in range(m):
                best = min(best, power_fast(sq[j], 0.5 * p) - g[j])
            out[i] = best


def ctransform(x, yt, g, p: float) -> np.ndarray:
    """F_i = min_j (‖x_i − y_j‖^p − g_j), with y given transposed as yt (d, m); g finite
    float64."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    _ctransform(n * yt.size, x, yt, g, float(p), out, _blocks(n))
    return out


@twins(fastmath=True)
def _gibbs(x, yt, F, G, inv_eps, p, out, n_blocks):
    n = x.shape[0]
    m = yt.shape[1]
    for blk in nb.prange(n_blocks):
        buf = np.empty(m, dtype=np.float64)
        bits = np.empty(m, dtype=np.int64)
        scale = bits.view(np.float64)
        for i in range(blk * n // n_blocks, (blk + 1) * n // n_blocks):
            sq_dists(x, yt, i, buf)
            # three simple loops, not one: LLVM vectorises each of these (measured 5x faster
            # than the fused loop)
            for j in range(m):
                buf[j] = max((F[i] + G[j] - power_fast(buf[j], 0.5 * p)) * inv_eps, _FLOOR)
            for j in range(m):
                buf[j] = _exp_poly(buf[j], bits, j) * scale[j]
            for j in range(m):
                out[i, j] = buf[j]  # rounded to out's dtype (float32 or float64)


def gibbs(x, yt, F, G, eps: float, p: float, out: np.ndarray) -> np.ndarray:
    """out_ij = exp((F_i + G_j − ‖x_i − y_j‖^p)/eps) into a float32 or float64 (n, m) array."""
    _gibbs(out.size * yt.shape[0], x, yt, F, G, 1.0 / eps, float(p), out, _blocks(x.shape[0]))
    return out


@twins(fastmath=True)
def _matvec(K, w, out, n_blocks):
    # four rows per pass share each load of w (measured 1.7x faster than one row at a time)
    n, m = K.shape
    for blk in nb.prange(n_blocks):
        i, hi = blk * n // n_blocks, (blk + 1) * n // n_blocks
        while i + 4 <= hi:
            s0 = s1 = s2 = s3 = 0.0
            for j in range(m):
                wj = w[j]
                s0 += K[i, j] * wj
                s1 += K[i + 1, j] * wj
                s2 += K[i + 2, j] * wj
                s3 += K[i + 3, j] * wj
            out[i], out[i + 1], out[i + 2], out[i + 3] = s0, s1, s2, s3
            i += 4
        while i < hi:
            s0 = 0.0
            for j in range(m):
                s0 += K[i, j] * w[j]
            out[i] = s0
            i += 1


@twins(fastmath=True)
def _rmatvec(K, w, acc, n_blocks):
    # each worker sums its block of rows into its own row of acc (four rows per pass over
    # the accumulator); the caller adds the workers' rows
    n, m = K.shape
    for blk in nb.prange(n_blocks):
        i, hi = blk * n // n_blocks, (blk + 1) * n // n_blocks
        row = acc[blk]
        for j in range(m):
            row[j] = 0.0
        while i + 4 <= hi:
            w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
            for j in range(m):
                row[j] += K[i, j] * w0 + K[i + 1, j] * w1 + K[i + 2, j] * w2 + K[i + 3, j] * w3
            i += 4
        while i < hi:
            wi = w[i]
            for j in range(m):
                row[j] += K[i, j] * wi
            i += 1


def _workers(n: int) -> int:
    return max(1, min(n // 64, nb.get_num_threads()))


def matvec(K: np.ndarray, w: np.ndarray) -> np.ndarray:
    """K @ w for a float32 or float64 (n, m) K and float64 w, accumulated in float64."""
    out = np.empty(K.shape[0], dtype=np.float64)
    _matvec(K.size, K, w, out, _workers(K.shape[0]))
    return out


def rmatvec(K: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Kᵀ @ w for a float32 or float64 (n, m) K and float64 w, accumulated in float64."""
    blocks = _workers(K.shape[0])
    acc = np.empty((blocks, K.shape[1]), dtype=np.float64)
    _rmatvec(K.size, K, w, acc, blocks)
    return acc.sum(0)
