"""Pairwise ground cost ‖x_i − y_j‖₂^p on the CPU, parallel over rows."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(inline="always", fastmath=False)
def _power_of_sq(sq, p):
    if p == 2.0:
        return sq
    if p == 1.0:
        return np.sqrt(sq)
    return sq ** (0.5 * p)


@nb.njit(parallel=True, cache=True)
def _cost_rows(x, y, p, out, row0):
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
    _cost_rows(np.ascontiguousarray(x), np.ascontiguousarray(y), float(p), out, start)
    return out


@nb.njit(parallel=True, cache=True)
def pair_cost(x, y, rows, cols, p):
    """c_k = ‖x[rows_k] − y[cols_k]‖^p for a list of index pairs (a sparse plan's support)."""
    out = np.empty(rows.shape[0], dtype=x.dtype)
    d = x.shape[1]
    for t in nb.prange(rows.shape[0]):
        sq = 0.0
        for k in range(d):
            u = x[rows[t], k] - y[cols[t], k]
            sq += u * u
        out[t] = _power_of_sq(sq, p)
    return out
