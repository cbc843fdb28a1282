"""Soft-min (entropic c-transform) kernels on the CPU: online, parallel over rows.

The one primitive of every Sinkhorn iteration is, for each row i,

    lse_i = log Σ_j exp(h_j − C_ij / eps)          (h_j = log b_j + g_j / eps)

so that the c-transform is f_i = −eps · lse_i. ``softmin_points`` computes C_ij = ‖x_i − y_j‖^p
on the fly (memory O(n + m), never the n × m cost); ``softmin_dense`` reads rows of a given
cost matrix. Both work on float32 or float64 inputs; sums and exponentials run in float64.

Why a polynomial exponential: numba calls libm's scalar ``exp`` (no SVML here), which costs
~5 ns; the 2^k · poly(r) form below is branch-free, so LLVM vectorises it (AVX2/AVX-512), which
is what brings an iteration close to the machine's ``np.exp`` throughput. Arguments are
≤ 0 (the row maximum is subtracted first) and clamped at −700, so there is no overflow and
no subnormal; the degree-12 Taylor polynomial on |r| ≤ ln2/2 is accurate to ~1e-15.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv.kernels._numba import nb, twins
from otdiv.kernels.power import power, power_fast

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125  # ln 2 split so that k · _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.42860682030941723212e-6
_FLOOR = -700.0  # exp(-700) ~ 1e-304: negligible next to the row maximum's exp(0) = 1
NEG_LARGE = -1e30  # stands for log 0 (a zero weight) while keeping fastmath's finite rules


@nb.njit(inline="always", fastmath=True)
def _exp_poly(v, bits, j):
    """exp(v) for _FLOOR <= v <= 0 as poly(r) · 2^k; 2^k is written into bits[j] (an int64
    work buffer, read back as float64 by the caller): numba has no scalar bit cast."""
    k = math.floor(v * _LOG2E + 0.5)
    r = (v - k * _LN2_HI) - k * _LN2_LO
    bits[j] = (np.int64(k) + 1023) << 52  # the float64 2^k, built from its exponent bits
    return 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (
        1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (
            1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800
                                                      + r * (1.0 / 479001600))))))))))))


@nb.njit(inline="always", fastmath=True)
def _logsumexp_buffer(buf, bits, m):
    """log Σ_j exp(buf_j) for j < m; buf and bits (int64) are work buffers of length >= m."""
    top = buf[0]
    for j in range(1, m):
        top = max(top, buf[j])
    scale = bits.view(np.float64)
    total = 0.0
    for j in range(m):
        total += _exp_poly(max(buf[j] - top, _FLOOR), bits, j) * scale[j]
    return top + math.log(total)


def _blocks(n: int) -> int:
    return max(1, min(n, 8 * nb.get_num_threads()))


@nb.njit(inline="always", fastmath=True)
def sq_dists(x, yt, i, buf):
    """buf_j ← ‖x_i − y_j‖² for every column j of yt (d, m): coordinate by coordinate, so the
    inner loop runs over contiguous j and vectorises."""
    m = yt.shape[1]
    for j in range(m):
        buf[j] = 0.0
    for k in range(x.shape[1]):
        xk = x[i, k]
        for j in range(m):
            t = xk - yt[k, j]
            buf[j] += t * t


@nb.njit(inline="always", fastmath=True)
def _points_rows(x, yt, h, inv_eps, p, out, lo, hi, buf, bits):
    m = yt.shape[1]
    for i in range(lo, hi):
        sq_dists(x, yt, i, buf)
        for j in range(m):
            buf[j] = h[j] - power_fast(buf[j], 0.5 * p) * inv_eps
        out[i] = _logsumexp_buffer(buf, bits, m)


@twins(fastmath=True)
def _softmin_points(x, yt, h, inv_eps, p, out, n_blocks):
    n, m = x.shape[0], yt.shape[1]
    for blk in nb.prange(n_blocks):
        buf = np.empty(m, dtype=np.float64)
        bits = np.empty(m, dtype=np.int64)
        _points_rows(x, yt, h, inv_eps, p, out, blk * n // n_blocks, (blk + 1) * n // n_blocks,
                     buf, bits)


def softmin_points(x, yt, h, eps: float, p: float, out=None) -> np.ndarray:
    """lse_i = log Σ_j exp(h_j − ‖x_i − y_j‖^p / eps), with y given transposed as yt (d, m).

    x, yt: C-contiguous, one float dtype; h: (m,) float64 (finite; use NEG_LARGE for log 0).
    Returns float64 (n,).
    """
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64) if out is None else out
    _softmin_points(n * yt.size, x, yt, h, 1.0 / eps, float(p), out, _blocks(n))
    return out


@nb.njit(inline="always", fastmath=True)
def _dense_rows(cost, h, inv_eps, out, lo, hi, buf, bits):
    m = cost.shape[1]
    for i in range(lo, hi):
        for j in range(m):
            buf[j] = h[j] - cost[i, j] * inv_eps
        out[i] = _logsumexp_buffer(buf, bits, m)


@twins(fastmath=True)
def _softmin_dense(cost, h, inv_eps, out, n_blocks):
    n, m = cost.shape
    for blk in nb.prange(n_blocks):
        buf = np.empty(m, dtype=np.float64)
        bits = np.empty(m, dtype=np.int64)
        _dense_rows(cost, h, inv_eps, out, blk * n // n_blocks, (blk + 1) * n // n_blocks,
                    buf, bits)


def softmin_dense(cost, h, eps: float, out=None) -> np.ndarray:
    """lse_i = log Σ_j exp(h_j − C_ij / eps) for a C-contiguous (n, m) cost matrix."""
    n = cost.shape[0]
    out = np.empty(n, dtype=np.float64) if out is None else out
    _softmin_dense(cost.size, cost, h, 1.0 / eps, out, _blocks(n))
    return out


@nb.njit(parallel=True, fastmath=False, cache=True)
def _plan_cost_points(x, yt, u, v, inv_eps, p, out, n_blocks):
    # Σ_j P_ij C_ij with P_ij = exp(u_i + v_j − C_ij / eps); libm exp: one pass only.
    n, d = x.shape
    m = yt.shape[1]
    for blk in nb.prange(n_blocks):
        sq = np.empty(m, dtype=np.float64)
        for i in range(blk * n // n_blocks, (blk + 1) * n // n_blocks):
            for j in range(m):
                sq[j] = 0.0
            for k in range(d):
                xk = x[i, k]
                for j in range(m):
                    t = xk - yt[k, j]
                    sq[j] += t * t
            s = 0.0
            for j in range(m):
                c = power(sq[j], 0.5 * p)
                s += math.exp(u[i] + v[j] - c * inv_eps) * c
            out[i] = s


def plan_cost_points(x, yt, u, v, eps: float, p: float) -> float:
    """⟨P, C⟩ for P_ij = exp(u_i + v_j − ‖x_i − y_j‖^p / eps), without forming P or C."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    _plan_cost_points(x, yt, u, v, 1.0 / eps, float(p), out, _blocks(n))
    return float(out.sum())
