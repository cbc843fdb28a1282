"""Kernel truncation: the online soft-min of large clouds with certified skipping of far
block pairs, for the sweeps of Sinkhorn far from tol (the exact kernel measures the plan).

Both clouds are put in k-d tree order (median splits of the widest coordinate down to
leaves of at most ``LEAF`` points), so each leaf is a block of consecutive points with a
tight bounding box. The soft-min T_b(g)_i = −eps log Σ_j b_j exp((g_j − C_ij)/eps) then
skips every block pair whose mass bound (box-to-box distance, largest b_j exp(g_j/eps) of
the block) is at most ``delta`` of what the row's sum already holds
(src/otdiv/kernels/softmin_blocks_numba.py), so that for every i

    T_b(g)_i <= T~_b(g)_i <= T_b(g)_i + eps log(1 + delta).

What that does to a measured marginal error: the row sums of P(f, g) are
R_i = a_i exp((f_i − T_b(g)_i)/eps) and the truncated soft-min gives
R~_i = a_i exp((f_i − T~_b(g)_i)/eps), so R~_i <= R_i <= (1 + delta) R~_i and

    ‖R − a‖₁ <= ‖R~ − a‖₁ + delta (mass + ‖R~ − a‖₁)          (columns alike).

The loop (:func:`otdiv.ot.sinkhorn.iterate`) runs on the truncated soft-min down to
``floor`` = tol/4 of its own measure, where the true error is at most
tol/4 (1 + delta) + 2 delta · mass (delta = tol/32: under tol/2), then
:func:`otdiv.ot.sinkhorn.solve` measures the returned plan with the exact float64 kernel
(``exact``) and goes on with it if that plan is not within tol: ``marginal_error`` is
never a truncated number.
"""

from __future__ import annotations

import numpy as np

from otdiv.ot.kdtree import kd_permutation

LEAF = 64  # points per block
DELTA = 1 / 32  # relative mass a block sum may skip, as a fraction of tol
MIN_POINTS = 4096  # both clouds at least this large (below, few pairs are far enough)
MAX_EPS = 0.005  # used below this eps / cmax (above it the float32 kernel runs, and at
# eps = 0.01·cmax only 4-10 % of the block pairs could be skipped)


def _boxes(pts, bounds):
    lo = np.minimum.reduceat(pts, bounds[:-1], axis=0)
    hi = np.maximum.reduceat(pts, bounds[:-1], axis=0)
    return np.ascontiguousarray(lo), np.ascontiguousarray(hi)


def applies(clouds, eps: float) -> bool:
    """The default: both clouds at least MIN_POINTS, eps below MAX_EPS · cmax."""
    return (min(clouds.x.shape[0], clouds.y.shape[0]) >= MIN_POINTS
            and eps < MAX_EPS * clouds.cmax)


class TruncatedClouds:
    """The soft-min of :class:`~otdiv.ot.geometry.NumbaClouds` (``exact``) with certified
    block truncation (module docstring): T~ within eps log(1 + delta) above T.

    ``delta`` = DELTA · tol. ``floor(eps)`` is the measured relative error the loop runs
    down to before the exact kernel takes over. ``kept`` counts the block pairs summed and
    ``pairs`` those a full soft-min would have (for the benchmarks).
    """

    online = True

    def __init__(self, exact, tol: float, leaf: int = LEAF):
        from otdiv.kernels import softmin_blocks_numba as kernel

        self.exact, self.k = exact, kernel
        self.method = exact.method
        self.a, self.b, self.p, self.cmax = exact.a, exact.b, exact.p, exact.cmax
        self.transport_cost, self.plan = exact.transport_cost, exact.plan
        self.delta = DELTA * tol
        self.px, bx = kd_permutation(exact.x, leaf)
        self.py, by = kd_permutation(exact.y, leaf)
        self.x, self.y = exact.x[self.px], exact.y[self.py]
        self.xt, self.yt = np.ascontiguousarray(self.x.T), np.ascontiguousarray(self.y.T)
        self.la, self.lb = exact.la[self.px], exact.lb[self.py]
        (xlo, xhi), (ylo, yhi) = _boxes(self.x, bx), _boxes(self.y, by)
        self.row_blocks = (bx, by, xlo, xhi, ylo, yhi)
        self.col_blocks = (by, bx, ylo, yhi, xlo, xhi)
        self.kept = self.pairs = 0

    def floor(self, eps: float) -> float:
        """The relative error of its own measure below which the exact kernel takes over."""
        return 4 * self.delta

    def _softmin(self, pts, other_t, h, eps, blocks, perm_out):
        lse, kept = self.k.softmin_blocks(pts, other_t, h, eps, self.p, blocks, self.delta)
        self.kept += kept
        self.pairs += (len(blocks[0]) - 1) * (len(blocks[1]) - 1)
        out = np.empty_like(lse)
        out[perm_out] = -eps * lse
        return out

    def rows(self, g, eps):
        return self._softmin(self.x, self.yt, self.lb + g[self.py] / eps, eps,
                             self.row_blocks, self.px)

    def cols(self, f, eps):
        return self._softmin(self.y, self.xt, self.la + f[self.px] / eps, eps,
                             self.col_blocks, self.py)
