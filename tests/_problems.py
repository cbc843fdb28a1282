"""Problems and truths shared by several test modules (imported as ``_problems``: pytest puts
``tests/`` on the path; fixtures live in conftest.py).

* :func:`weighted_clouds` — x ~ U[0, 1]^d (n points), y ~ U[0, 1]^d + shift (m points), with
  positive random weights (optionally some zero), normalised to probability vectors.
* :func:`cost` — C_ij = ‖x_i − y_j‖^p, computed densely in float64.
* :func:`marginal_error` — ‖P 1 − a‖₁ + ‖Pᵀ 1 − b‖₁ of the entropic plan
  P_ij = a_i b_j exp((f_i + g_j − C_ij) / eps) rebuilt densely from the potentials.
* :func:`exact_w1` — W1 between two uniform samples, by POT's network simplex.
"""

import numpy as np
import ot


def weighted_clouds(rng, n, m, d=3, zeros=False, shift=0.2):
    """(x, y, a, b); with ``zeros``, every 7th a and every 5th b is 0."""
    x, y = rng.random((n, d)), rng.random((m, d)) + shift
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    if zeros:
        a[::7], b[::5] = 0.0, 0.0
    return x, y, a / a.sum(), b / b.sum()


def cost(x, y, p=2.0):
    """C_ij = ‖x_i − y_j‖^p."""
    return (((x[:, None] - y[None]) ** 2).sum(-1)) ** (p / 2)


def marginal_error(C, a, b, f, g, eps):
    """The L1 marginal error of the plan a_i b_j exp((f_i + g_j − C_ij) / eps)."""
    with np.errstate(divide="ignore"):
        P = np.exp(np.log(a)[:, None] + np.log(b)[None] + (f[:, None] + g[None] - C) / eps)
    return np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()


def exact_w1(x, y):
    """W1 between the uniform measures on the rows of x and of y (POT, exact)."""
    return ot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)),
                   ot.dist(x, y, metric="euclidean"))
