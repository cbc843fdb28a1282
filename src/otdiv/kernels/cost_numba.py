"""Pairwise ground cost ‖x_i − y_j‖₂^p on the CPU, parallel over rows."""

from __future__ import annotations

import numpy as np

from otdiv.kernels._numba import Twins, nb
from otdiv.kernels.power import power


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
            out[r, j] = power(sq, 0.5 * p)


_cost_rows_twins = Twins(_cost_rows)


def cost_matrix(x: np.ndarray, y: np.ndarray, p: float, rows: slice | None = None) -> np.ndarray:
    """C[i, j] = ‖x_i − y_j‖^p for the rows ``rows`` of x (all rows by default).

    x, y: C-contiguous (n, d) and (m, d) arrays of one float dtype; the result has that dtype.
    """
    start, stop = (0, x.shape[0]) if rows is None else (rows.start or 0, rows.stop)
    out = np.empty((stop - start, y.shape[0]), dtype=x.dtype)
    _cost_rows_twins(out.size * x.shape[1], np.ascontiguousarray(x), np.ascontiguousarray(y),
                     float(p), out, start)
    return out


def _pair_cost(x, y, rows, cols, p):
    out = np.empty(rows.shape[0], dtype=x.dtype)
    d = x.shape[1]
    for t in nb.prange(rows.shape[0]):
        sq = 0.0
        for k in range(d):
            u = x[rows[t], k] - y[cols[t], k]
            sq += u * u
        out[t] = power(sq, 0.5 * p)
    return out


_pair_cost_twins = Twins(_pair_cost)


def pair_cost(x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray, p: float):
    """c_k = ‖x[rows_k] − y[cols_k]‖^p for a list of index pairs (a sparse plan's support)."""
    return _pair_cost_twins(rows.shape[0] * x.shape[1], x, y, rows, cols, float(p))
