"""Pairwise ground cost ‖x_i − y_j‖₂^p on the CPU, parallel over rows."""

from __future__ import annotations

import types

import numpy as np

from otdiv.kernels._numba import nb


@nb.njit(inline="always", fastmath=False)
def _power_of_sq(sq, p):
    if p == 2.0:
        return sq
    if p == 1.0:
        return np.sqrt(sq)
    return sq ** (0.5 * p)


def _cost_rows_py(x, y, p, out, row0):
    n_rows = out.shape[0]
    m, d = y.shape
    for r in nb.prange(n_rows):
        i = row0 + r
        for j in range(m):
            sq = 0.0
            for k in range(d):
                t = x[i, k] - y[j, k]
                sq += t * t
            out[r, j] = _power_of_sq(sq, p)


def cost_matrix(x: np.ndarray, y: np.ndarray, p: float, rows: slice | None = None) -> np.ndarray:
    """C[i, j] = ‖x_i − y_j‖^p for the rows ``rows`` of x (all rows by default).

    x, y: C-contiguous (n, d) and (m, d) arrays of one float dtype; the result has that dtype.
    """
    start, stop = (0, x.shape[0]) if rows is None else (rows.start or 0, rows.stop)
    out = np.empty((stop - start, y.shape[0]), dtype=x.dtype)
    kernel = _cost_rows_parallel if out.size * x.shape[1] >= PARALLEL_MIN_WORK else _cost_rows
    kernel(np.ascontiguousarray(x), np.ascontiguousarray(y), float(p), out, start)
    return out


def _pair_cost_py(x, y, rows, cols, p):
    out = np.empty(rows.shape[0], dtype=x.dtype)
    d = x.shape[1]
    for t in nb.prange(rows.shape[0]):
        sq = 0.0
        for k in range(d):
            u = x[rows[t], k] - y[cols[t], k]
            sq += u * u
        out[t] = _power_of_sq(sq, p)
    return out


# Waking numba's thread pool costs ~0.1-10 ms (more on a loaded machine); below this many
# flops-ish units of work the serial compilation of the same loop is faster.
PARALLEL_MIN_WORK = 200_000


def _serial_and_parallel(fn, **options):
    """Two compilations of one loop (``options`` go to both, e.g. fastmath). The serial twin
    gets its own name so that numba's on-disk cache (keyed by the function's qualified name)
    keeps the two apart."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial")
    twin.__qualname__ = fn.__qualname__ + "_serial"
    return (nb.njit(cache=True, **options)(twin),
            nb.njit(parallel=True, cache=True, **options)(fn))


_cost_rows, _cost_rows_parallel = _serial_and_parallel(_cost_rows_py)
_pair_cost, _pair_cost_parallel = _serial_and_parallel(_pair_cost_py)


def pair_cost(x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray, p: float):
    """c_k = ‖x[rows_k] − y[cols_k]‖^p for a list of index pairs (a sparse plan's support)."""
    kernel = _pair_cost_parallel if rows.shape[0] * x.shape[1] >= PARALLEL_MIN_WORK else _pair_cost
    return kernel(x, y, rows, cols, float(p))
