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
from otdiv.kernels.power import power_fast

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


_F32 = np.float32
_FLOOR32 = _F32(-87.0)  # exp(-87) ~ 1.6e-38: the smallest normal float32 is 1.2e-38


@nb.njit(inline="always", fastmath=True)
def _exp_poly32(v, bits, j):
    """exp(v) for _FLOOR32 <= v <= 0 in float32 as poly(r) · 2^k (degree 7, relative error
    ~1e-7: float32's own); 2^k goes to bits[j] (int32). np.floor keeps the float32 type
    (math.floor would return an int64 and turn the loop into float64)."""
    k = np.floor(v * _F32(_LOG2E) + _F32(0.5))
    r = (v - k * _F32(0.693359375)) - k * _F32(-2.12194440e-4)
    bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    return _F32(1.0) + r * (_F32(1.0) + r * (_F32(0.5) + r * (_F32(1 / 6) + r * (
        _F32(1 / 24) + r * (_F32(1 / 120) + r * (_F32(1 / 720) + r * _F32(1 / 5040)))))))


@nb.njit(inline="always", fastmath=True)
def _power32(t, q):
    if q == _F32(1.0):
        return t
    if q == _F32(0.5):
        return np.sqrt(t)
    return t**q


@nb.njit(inline="always", fastmath=True)
def _points_rows32(x, yt, h, inv_eps, q, out, lo, hi, buf, e, bits):
    m, d = yt.shape[1], x.shape[1]
    scale = bits.view(np.float32)
    for i in range(lo, hi):
        for j in range(m):
            buf[j] = _F32(0.0)
        for k in range(d):
            xk = x[i, k]
            for j in range(m):
                t = xk - yt[k, j]
                buf[j] += t * t
        top = _F32(-3e38)
        for j in range(m):  # separate simple loops: each vectorises (8 float32 lanes)
            buf[j] = h[j] - _power32(buf[j], q) * inv_eps
        for j in range(m):
            top = max(top, buf[j])
        for j in range(m):
            e[j] = _exp_poly32(max(buf[j] - top, _FLOOR32), bits, j)
        total = 0.0
        for j in range(m):
            total += np.float64(e[j] * scale[j])
        out[i] = np.float64(top) + math.log(total)


@twins(fastmath=True)
def _softmin_points32(x, yt, h, inv_eps, q, out, n_blocks):
    n, m = x.shape[0], yt.shape[1]
    for blk in nb.prange(n_blocks):
        buf = np.empty(m, dtype=np.float32)
        e = np.empty(m, dtype=np.float32)
        bits = np.empty(m, dtype=np.int32)
        _points_rows32(x, yt, h, inv_eps, q, out, blk * n // n_blocks,
                       (blk + 1) * n // n_blocks, buf, e, bits)


def softmin_points32(x, yt, h, eps: float, p: float) -> np.ndarray:
    """lse_i as :func:`softmin_points`, evaluated in float32 (8 AVX2 lanes, ~1.6x the float64
    kernel's throughput), summed in float64. x, yt float32 C-contiguous; h (m,) float32 with
    finite entries >= -1e30. Each term carries float32 rounding of h_j − C_ij/eps (relative
    ~1e-7 · max(|h|, C/eps)), so this is for sweeps far from tol only: the caller finishes with
    the float64 kernel. Returns float64 (n,)."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    _softmin_points32(n * yt.size, x, yt, h, _F32(1.0 / eps), _F32(0.5 * p), out, _blocks(n))
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


@twins(fastmath=True)
def _plan_cost_points(x, yt, u, v, inv_eps, p, out, n_blocks):
    # Σ_j P_ij C_ij with P_ij = exp(u_i + v_j − C_ij / eps); the vectorised exponential (its
    # argument clamped to [_FLOOR, 700]: P_ij <= 1 at any plan near a fixed point)
    n = x.shape[0]
    m = yt.shape[1]
    for blk in nb.prange(n_blocks):
        c = np.empty(m, dtype=np.float64)
        e = np.empty(m, dtype=np.float64)
        bits = np.empty(m, dtype=np.int64)
        scale = bits.view(np.float64)
        for i in range(blk * n // n_blocks, (blk + 1) * n // n_blocks):
            sq_dists(x, yt, i, c)
            for j in range(m):
                c[j] = power_fast(c[j], 0.5 * p)
            for j in range(m):
                e[j] = _exp_poly(min(max(u[i] + v[j] - c[j] * inv_eps, _FLOOR), 700.0), bits, j)
            s = 0.0
            for j in range(m):
                s += e[j] * scale[j] * c[j]
            out[i] = s


def plan_cost_points(x, yt, u, v, eps: float, p: float) -> float:
    """⟨P, C⟩ for P_ij = exp(u_i + v_j − ‖x_i − y_j‖^p / eps), without forming P or C."""
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    _plan_cost_points(n * yt.size, x, yt, u, v, 1.0 / eps, float(p), out, _blocks(n))
    return float(out.sum())
