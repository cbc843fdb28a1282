"""Geometries of entropic OT: the soft-min T_b(g)_i = −eps log Σ_j b_j exp((g_j − C_ij)/eps),
one implementation per kind of cost × backend, and the one table that picks among them.

Every geometry answers the same few questions (the protocol the loops in
:mod:`otdiv.ot.sinkhorn` rely on): ``rows(g, eps)`` = T_b(g), ``cols(f, eps)`` = T_a(f),
``cmax`` (>= every C_ij, the start of the annealing), ``transport_cost`` ⟨P, C⟩ and
``plan`` for the plan P(f, g) = a⊗b ∘ exp((f ⊕ g − C)/eps) (the loops measure its marginals
from the potentials themselves).

=================  ==========================================  ================================
geometry           cost                                        when (:func:`geometry`)
=================  ==========================================  ================================
``NumbaClouds``    |x_i − y_j|^p recomputed on the fly (numba)  numpy, n·m above the budget
``NumbaGibbs``     a stored Gibbs kernel, scaling domain        numpy, n·m within the budget
``NumbaCost``      a given cost matrix (numba)                  ``transport(..., eps)``, numpy
``TorchCost``      clouds (stored or row chunks) or a matrix     torch, CPU or GPU, batched too
``Centred``        any of these, soft-min centred on its mean   eps far above the largest cost
=================  ==========================================  ================================
"""

from __future__ import annotations

import copy

import numpy as np

DENSE_BUDGET = 1 << 25  # kernel entries a geometry may store (256 MiB in float64)
ABSORB = 30.0  # scaling-domain kernel: absorb once a potential is 30·eps above its reference
TINY_SUM = 1e-200  # ... or once a soft-min sum is this small (its log is no longer trusted)
EXP_CAP = 700.0  # exp() argument cap in error estimates far from convergence
LARGE_EPS = 1e3  # eps / cmax above which the centred soft-min is used (float64 at tol 1e-6)
F32_FLOOR = 2.0**-28  # NumbaClouds32: trusted marginal error per unit of cmax / eps
LARGE_CLOUDS_MIN_EPS = 0.005  # NumbaClouds32 and the multiscale start from this eps / cmax:
# at 0.001 (without the oscillation guard, docs/sinkhorn.md) they took more sweeps than before
TRUNCATION = True  # large clouds below that eps: TruncatedClouds (otdiv/ot/truncation.py)


def bregman(t):
    """φ(t) = e^t − 1 − t >= 0, accurate for small |t| (numpy array or torch tensor)."""
    if not isinstance(t, np.ndarray):
        import torch

        series = t * t * (0.5 + t * (1 / 6 + t * (1 / 24 + t / 120)))
        return torch.where(t.abs() < 1e-3, series, torch.expm1(t.clamp(max=EXP_CAP)) - t)
    with np.errstate(over="ignore", invalid="ignore"):
        series = t * t * (0.5 + t * (1 / 6 + t * (1 / 24 + t / 120)))
        return np.where(np.abs(t) < 1e-3, series, np.expm1(np.minimum(t, EXP_CAP)) - t)


class NumbaClouds:
    """Point clouds on the CPU; costs recomputed on the fly (never an n × m array)."""

    method = "sinkhorn_log/numba"
    online = True

    def __init__(self, x, y, a, b, p):
        from otdiv.kernels import softmin_numba as kernel

        self.k = kernel
        self.x, self.y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        self.xt, self.yt = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
        self.a, self.b, self.p = a, b, p
        self.la, self.lb = _log_weights(a, kernel.NEG_LARGE), _log_weights(b, kernel.NEG_LARGE)
        lo = np.minimum(x.min(0), y.min(0))
        hi = np.maximum(x.max(0), y.max(0))
        self.cmax = float(np.linalg.norm(hi - lo)) ** p  # >= every C_ij

    def rows(self, g, eps):
        return -eps * self.k.softmin_points(self.x, self.yt, self.lb + g / eps, eps, self.p)

    def cols(self, f, eps):
        return -eps * self.k.softmin_points(self.y, self.xt, self.la + f / eps, eps, self.p)

    def transport_cost(self, f, g, eps):
        return self.k.plan_cost_points(self.x, self.yt, self.la + f / eps, self.lb + g / eps,
                                       eps, self.p)

    def plan(self, f, g, eps):
        from otdiv.kernels.cost_numba import cost_matrix

        return _dense_plan(cost_matrix(self.x, self.y, self.p), self.a, self.b, f, g, eps)



class NumbaClouds32:
    """The online soft-min of :class:`NumbaClouds` evaluated in float32 (8 AVX2 lanes instead
    of 4: src/otdiv/kernels/softmin_numba.py), for the sweeps far from tol.

    Each term exp(h_j − C_ij/eps) is rounded to float32, a relative error of about
    2^-24 · (|h_j| + C_ij/eps) (h_j = log b_j + g_j/eps); the marginal errors it measures are
    trusted down to ``floor(eps)`` only. The loop stops there (:func:`otdiv.ot.sinkhorn.iterate`,
    ``floor``) and finishes with ``exact`` (the float64 geometry of the same clouds), which
    also measures the returned plan: the reported error is never a float32 one.
    """

    method = NumbaClouds.method
    online = True

    def __init__(self, exact: NumbaClouds):
        from otdiv.kernels import softmin_numba as kernel

        self.exact, self.k = exact, kernel
        self.a, self.b, self.p, self.cmax = exact.a, exact.b, exact.p, exact.cmax
        self.transport_cost, self.plan = exact.transport_cost, exact.plan
        f32 = np.float32
        self.x, self.y = exact.x.astype(f32), exact.y.astype(f32)
        self.xt, self.yt = exact.xt.astype(f32), exact.yt.astype(f32)
        self.la, self.lb = exact.la, exact.lb

    def floor(self, eps: float) -> float:
        """The relative marginal error below which float32 rounding may dominate."""
        return F32_FLOOR * (self.cmax / eps + 1.0)

    def rows(self, g, eps):
        h = (self.lb + g / eps).astype(np.float32)
        return -eps * self.k.softmin_points32(self.x, self.yt, h, eps, self.p)

    def cols(self, f, eps):
        h = (self.la + f / eps).astype(np.float32)
        return -eps * self.k.softmin_points32(self.y, self.xt, h, eps, self.p)


class NumbaGibbs:
    """Point clouds on the CPU with a stored (float32 or float64) Gibbs kernel: each soft-min
    is one matrix–vector product (scaling-domain Sinkhorn), stabilised by absorption.

    The kernel K_ij = exp((F_i + G_j − C_ij)/eps) is built around a reference pair (F, G) of
    mutual c-transforms (src/otdiv/kernels/gibbs_numba.py), so entries lie in [0, 1] with a 1 in
    every row and column. It is recomputed for each new eps (squared in place when eps
    halves), and rebuilt around the current potentials (absorbed into a new reference) when
    one moves more than ``ABSORB``·eps above its reference (the scalings would grow without
    bound) or when a soft-min sum comes out too small to trust. ``exact`` is the online
    log-domain geometry of the same clouds (:class:`NumbaClouds`), for the final error check;
    the plan, its cost and its marginal errors are always measured with it.

    The kernel covers the support only (the points of positive weight): at a point of zero
    weight the reference pair is not a pair of mutual c-transforms, so its entries could
    exceed 1 and overflow (most of all when K ← K ∘ K). The potentials of zero-weight points
    (which enter neither the plan nor the value, but are ∂OT/∂a there) are exact log-domain
    soft-mins, as on the online path.
    """

    method = "sinkhorn_scaling/numba"

    def __init__(self, exact: NumbaClouds, dtype):
        from otdiv.kernels import gibbs_numba

        self.exact = exact
        a, b, p = exact.a, exact.b, exact.p
        self.g_k, self.k, self.p, self.cmax = gibbs_numba, exact.k, p, exact.cmax
        self.x, self.y, self.xt, self.yt = exact.x, exact.y, exact.xt, exact.yt
        self.la, self.lb = exact.la, exact.lb
        self.transport_cost, self.plan = exact.transport_cost, exact.plan
        # the support: None when every point has positive weight
        self.ia = None if (a > 0).all() else np.flatnonzero(a > 0)
        self.jb = None if (b > 0).all() else np.flatnonzero(b > 0)
        self.xs, self.ys = _take_rows(self.x, self.ia), _take_rows(self.y, self.jb)
        self.xst, self.yst = np.ascontiguousarray(self.xs.T), np.ascontiguousarray(self.ys.T)
        self.a_s, self.b_s = _take(a, self.ia), _take(b, self.jb)
        self.K = np.empty((self.xs.shape[0], self.ys.shape[0]), dtype=dtype)
        self.eps_k = None
        self.F = self.G = None

    def _absorb(self, eps, f=None, g=None):
        k = self.g_k
        if g is not None:
            self.F = k.ctransform(self.xs, self.yst, g, self.p)
            self.G = k.ctransform(self.ys, self.xst, self.F, self.p)
        else:
            self.G = k.ctransform(self.ys, self.xst, f, self.p)
            self.F = k.ctransform(self.xs, self.yst, self.G, self.p)
        k.gibbs(self.xs, self.yst, self.F, self.G, eps, self.p, self.K)
        self.eps_k = eps

    def _softmin(self, h, eps, ref, out_ref, weights, product, absorb):
        if self.F is None or float(np.max(h - ref())) > ABSORB * eps:
            absorb()
        elif self.eps_k != eps:  # the reference still centres h: only the kernel changes
            if self.eps_k == 2 * eps:  # the default annealing halves eps: K ← K ∘ K is exact
                np.multiply(self.K, self.K, out=self.K)  # in math (one multiply, no exp)
            else:
                self.g_k.gibbs(self.xs, self.yst, self.F, self.G, eps, self.p, self.K)
            self.eps_k = eps
        for _ in range(2):
            s = product(self.K, weights * np.exp(np.minimum((h - ref()) / eps, ABSORB)))
            if float(s.min()) > TINY_SUM:
                return out_ref() - eps * np.log(s)
            absorb()  # after absorbing h every sum holds an entry 1 · weight: it cannot vanish
        raise FloatingPointError("Gibbs kernel lost all mass after absorption")

    def rows(self, g, eps):
        gs = _take(g, self.jb)
        fs = self._softmin(gs, eps, lambda: self.G, lambda: self.F, self.b_s, self.g_k.matvec,
                           lambda: self._absorb(eps, g=gs))
        return self._extend(fs, self.ia, self.x, self.yt, self.lb + g / eps, eps)

    def cols(self, f, eps):
        fs = _take(f, self.ia)
        gs = self._softmin(fs, eps, lambda: self.F, lambda: self.G, self.a_s, self.g_k.rmatvec,
                           lambda: self._absorb(eps, f=fs))
        return self._extend(gs, self.jb, self.y, self.xt, self.la + f / eps, eps)

    def _extend(self, vs, support, pts, other_t, h, eps):
        """The full potential from its values on the support: exact soft-mins elsewhere."""
        if support is None:
            return vs
        out = np.empty(pts.shape[0])
        out[support] = vs
        rest = np.ones(pts.shape[0], dtype=bool)
        rest[support] = False
        out[rest] = -eps * self.k.softmin_points(np.ascontiguousarray(pts[rest]), other_t, h,
                                                 eps, self.p)
        return out


def _take(v, idx):
    return v if idx is None else v[idx]


def _take_rows(pts, idx):
    return pts if idx is None else np.ascontiguousarray(pts[idx])


class NumbaCost:
    """A given (n, m) cost matrix on the CPU."""

    method = "sinkhorn_log/numba"

    def __init__(self, cost, a, b):
        from otdiv.kernels import softmin_numba as kernel

        self.k = kernel
        self.c = np.ascontiguousarray(cost)
        self.ct = np.ascontiguousarray(cost.T)
        self.a, self.b = a, b
        self.la, self.lb = _log_weights(a, kernel.NEG_LARGE), _log_weights(b, kernel.NEG_LARGE)
        self.cmax = float(cost.max() - cost.min())

    def rows(self, g, eps):
        return -eps * self.k.softmin_dense(self.c, self.lb + g / eps, eps)

    def cols(self, f, eps):
        return -eps * self.k.softmin_dense(self.ct, self.la + f / eps, eps)

    def transport_cost(self, f, g, eps):
        return float((self.plan(f, g, eps) * self.c).sum())

    def plan(self, f, g, eps):
        return _dense_plan(self.c, self.a, self.b, f, g, eps)



class TorchCost:
    """Point clouds (cost recomputed in chunks, or stored when it fits) or a given cost matrix,
    as torch tensors on any device, batched (B, n, d) too; all work runs without autograd."""

    method = "sinkhorn_log/torch"

    def __init__(self, x, y, a, b, p, cost=None, budget=DENSE_BUDGET):
        import torch

        from otdiv.kernels import softmin_torch as kernel
        from otdiv.kernels.cost_torch import cost_matrix

        self.torch, self.k = torch, kernel
        self.a, self.b, self.p = a.detach(), b.detach(), p
        self.la, self.lb = self.a.log(), self.b.log()  # log 0 = -inf is exact in logsumexp
        if cost is None:
            self.x, self.y = x.detach(), y.detach()
            n, m = x.shape[-2], y.shape[-2]
            batch = x.shape[0] if x.dim() == 3 else 1
            budget = max(1, budget // batch)  # the budget covers the whole batch
            if n * m <= budget:
                cost = cost_matrix(self.x, self.y, p)
            self.chunk = kernel.rows_per_chunk(max(n, m), budget)
            lo = torch.minimum(self.x.amin(-2), self.y.amin(-2))
            hi = torch.maximum(self.x.amax(-2), self.y.amax(-2))
            self.cmax = float(torch.linalg.vector_norm(hi - lo, dim=-1).max()) ** p
        else:
            cost = cost.detach()
            self.cmax = float(cost.max() - cost.min())
        self.c = cost
        self.ct = None if cost is None else cost.transpose(-1, -2).contiguous()

    def rows(self, g, eps):
        h = self.lb + g / eps
        if self.c is not None:
            return -eps * self.k.softmin_dense(self.c, h, eps)
        return -eps * self.k.softmin_points(self.x, self.y, h, eps, self.p, self.chunk)

    def cols(self, f, eps):
        h = self.la + f / eps
        if self.ct is not None:
            return -eps * self.k.softmin_dense(self.ct, h, eps)
        return -eps * self.k.softmin_points(self.y, self.x, h, eps, self.p, self.chunk)

    def plan(self, f, g, eps):
        from otdiv.kernels.cost_torch import cost_matrix

        c = self.c if self.c is not None else cost_matrix(self.x, self.y, self.p)
        return self.k.plan_block(c, self.la + f / eps, self.lb + g / eps, eps)

    def subset(self, idx):
        """The same problem restricted to the batch entries ``idx`` (batched problems only)."""
        sub = copy.copy(self)
        for name in ("a", "b", "la", "lb", "x", "y", "c", "ct"):
            t = getattr(self, name, None)
            if t is not None:
                setattr(sub, name, t[idx])
        return sub


def _log_weights(w, log_zero):
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    return np.where(w > 0, lw, log_zero)


def _dense_plan(cost, a, b, f, g, eps):
    with np.errstate(divide="ignore"):
        return np.exp(np.log(a)[:, None] + np.log(b)[None, :] + (f[:, None] + g[None, :] - cost)
                      / eps)


class Centred:
    """The soft-min of another geometry's cost, centred on its b-weighted mean, for eps far
    above the largest cost.

    T_b(g)_i = m_i − eps log(1 + Σ_j b_j φ(−r_ij / eps)), with R_ij = C_ij − g_j, its mean
    m_i = Σ_j b_j R_ij, r = R − m and φ(t) = e^t − 1 − t (Σ_j b_j r_ij = 0). It is the same
    function as the log-domain soft-min, but keeps full relative precision however large eps
    is: there exp((g − C)/eps) rounds to 1 and −eps log Σ b exp(...) keeps C/eps only to the
    float's resolution (eps = 1e20 gave OT_eps = 0.565 for a limit of 3.257). As
    C_max / eps → 0 the fixed point tends to f_i = Σ_j b_j C_ij − ⟨a ⊗ b, C⟩ / 2 (up to the
    constant shared by f and −g), the plan to a ⊗ b and OT_eps to ⟨a ⊗ b, C⟩; below the
    float's resolution that limit is the fixed point to rounding, reached in one sweep.

    ``base`` is the geometry whose cost is read (numba clouds or cost matrix: numpy; torch:
    tensors, batched too); the cost is formed in blocks of rows within ``budget`` entries.
    """

    def __init__(self, base, budget=DENSE_BUDGET):
        self.base, self.cmax, self.budget = base, base.cmax, max(1, int(budget))
        self.a, self.b = base.a, base.b
        self.transport_cost, self.plan = getattr(base, "transport_cost", None), base.plan
        self.torch = getattr(base, "torch", None)
        self.method = "sinkhorn_centred/" + ("torch" if self.torch else "numba")

    def subset(self, idx):
        sub = copy.copy(self)
        sub.base = self.base.subset(idx)
        sub.a, sub.b = sub.base.a, sub.base.b
        return sub

    def _blocks(self, transpose: bool):
        """(row slice, C[rows]) over the rows of C (of Cᵀ when transpose), within the budget."""
        base = self.base
        c = getattr(base, "ct" if transpose else "c", None)
        src, dst = getattr(base, "x", None), getattr(base, "y", None)
        if transpose:
            src, dst = dst, src
        first = c if c is not None else src
        n, m = first.shape[-2], (c.shape[-1] if c is not None else dst.shape[-2])
        batch = first.shape[0] if first.ndim == 3 else 1
        step = max(1, self.budget // max(1, m * batch))
        for i in range(0, n, step):
            rows = slice(i, min(n, i + step))
            if c is not None:
                yield rows, c[..., rows, :]
            elif self.torch is not None:
                from otdiv.kernels.cost_torch import cost_matrix

                yield rows, cost_matrix(src[..., rows, :], dst, base.p)
            else:
                from otdiv.kernels.cost_numba import cost_matrix

                yield rows, cost_matrix(src, dst, base.p, rows=rows)

    def _softmin(self, h, w, eps, transpose):
        parts = []
        for _, c in self._blocks(transpose):
            r = c - h[..., None, :]
            mean = (r * w[..., None, :]).sum(-1)
            r = r - mean[..., None]
            s = (w[..., None, :] * bregman(-r / eps)).sum(-1)
            parts.append(mean - eps * (self.torch.log1p(s) if self.torch else np.log1p(s)))
        return self.torch.cat(parts, -1) if self.torch else np.concatenate(parts, -1)

    def rows(self, g, eps):
        return self._softmin(g, self.b, eps, False)

    def cols(self, f, eps):
        return self._softmin(f, self.a, eps, True)


def geometry(kind: str, *, x=None, y=None, a, b, p: float = 1.0, cost=None, eps: float,
             tol: float, budget: int = DENSE_BUDGET):
    """The one kind × backend table: the geometry for clouds (x, y) or a cost matrix.

    kind ``"numpy"``: float64 numpy arrays, numba kernels — a stored Gibbs kernel when n·m <=
    budget (float32 entries when tol >= 1e-7, their relative error 6e-8), else the online
    kernel; a given cost matrix with the numba dense soft-min. kind ``"torch"``: tensors
    (batched (B, n, d) too), cost stored when it fits the budget, else row chunks. Either is
    wrapped in :class:`Centred` when eps is so far above the largest cost that the
    log-domain soft-min would lose the cost to rounding.
    """
    if kind == "torch":
        geo = TorchCost(x, y, a, b, p, cost=cost, budget=budget)
        ulp = 2.0**-23 if "float32" in str(geo.a.dtype) else 2.0**-52
    elif cost is not None:
        geo, ulp = NumbaCost(cost, a, b), 2.0**-52
    else:
        geo, ulp = NumbaClouds(x, y, a, b, p), 2.0**-52
    if geo.cmax > 0 and eps > geo.cmax * max(1.0, min(LARGE_EPS, tol / (8 * ulp))):
        return Centred(geo, budget)
    if kind == "numpy" and cost is None and x.shape[0] * y.shape[0] <= budget:
        return NumbaGibbs(geo, np.float32 if tol >= 1e-7 else np.float64)
    if isinstance(geo, NumbaClouds) and eps >= LARGE_CLOUDS_MIN_EPS * geo.cmax:
        return NumbaClouds32(geo)
    if isinstance(geo, NumbaClouds) and TRUNCATION:
        from otdiv.ot import truncation

        if truncation.applies(geo, eps):
            return truncation.TruncatedClouds(geo, tol)
    return geo
