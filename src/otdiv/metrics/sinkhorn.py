"""Entropic optimal transport (Sinkhorn) and the debiased Sinkhorn divergence.

One algorithm, written once over a soft-min (entropic c-transform) primitive,

    T_b(g)_i = −eps log Σ_j b_j exp((g_j − C_ij) / eps),

with one implementation of the primitive per kernel (the "problem" classes below):

* ``numba`` — CPU kernels over point clouds, parallel over rows. When the n × m Gibbs kernel
  fits in ``dense_budget`` entries it is stored, stabilised around a reference pair of
  potentials, and each soft-min is a matrix–vector product (scaling-domain Sinkhorn with
  absorption, :class:`_NumbaGibbs`, src/otdiv/kernels/gibbs_numba.py); otherwise C_ij is
  recomputed on the fly, memory O(n + m) (src/otdiv/kernels/softmin_numba.py). The scaling
  path's result is re-checked with the exact log-domain kernel;
* ``torch`` — CPU or GPU: the cost is stored when it fits in ``dense_budget`` elements,
  otherwise recomputed in row chunks (src/otdiv/kernels/softmin_torch.py);
* a given cost matrix (``transport(a, b, cost, eps=...)``) uses the dense form of either.

The torch kernel also solves batches of B problems, x (B, n, d), y (B, m, d), in one loop
(:func:`_iterate_batched`): every problem is swept until its own marginal error is <= tol,
then drops out of the batch, so fast problems do not pay for slow ones.

The iteration is log-domain Sinkhorn, f ← T_b(g), g ← T_a(f), so nothing under- or overflows
for any eps; eps-scaling (annealing) runs one sweep at each of eps_k = Cmax · s^k (s =
``eps_scaling``) down to eps, then iterates at eps until the L1 error of the row marginal of
the returned plan is at most tol (the column marginal is exact by construction). That error
comes for free from the next update: Σ_j P_ij = a_i exp((f_i − T_b(g)_i) / eps).

Value and gradients: at convergence OT_eps = ⟨a, f⟩ + ⟨b, g⟩ (the dual), and by the envelope
theorem ∂OT_eps/∂a = f, ∂OT_eps/∂b = g, ∂OT_eps/∂C = P. The torch path runs the solver without
autograd and attaches exactly these gradients, so backward memory does not depend on the
number of iterations.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np

from otdiv._array import (
    array_kind,
    as_float_array,
    as_points,
    as_weights,
    check_choice,
    check_int,
    check_p,
    check_positive,
    check_same_dim,
    common_dtype,
    is_tensor,
    to_numpy64,
)
from otdiv.ot.envelope import add_weight_gradients
from otdiv.ot.results import MAX_ITER, NOT_FINITE, OPTIMAL, TransportResult, warn_not_converged

BACKENDS = ("auto", "numba", "torch")
DEFAULT_MAX_ITER = 10_000
DEFAULT_EPS_SCALING = 0.5
DENSE_BUDGET = 1 << 25  # kernel entries a solver may store (256 MiB in float64, 128 in float32)
_EXP_CAP = 700.0  # exp() argument cap in error estimates far from convergence
_OMEGA_MAX = 1.98  # over-relaxation cap: the linearised rate ω − 1 stays <= 0.98
_ASCENT = 0.01  # an over-relaxed half-step must raise the dual by 1 % of the plain step's rise
_PLAIN_EVERY = 4  # in that window, the plain plan is measured every 4th sweep (and the last)
_HALVINGS = 4  # ω − 1 halved at most this often before the plain step is taken
_ABSORB = 30.0  # scaling-domain kernel: absorb once a potential is 30·eps above its reference
_TINY_EPS = 1e-300  # eps of the unit-scale problem is kept in [_TINY_EPS, 1/_TINY_EPS]
_TINY_SUM = 1e-200  # ... or once a soft-min sum is this small (its log is no longer trusted)


# ---------------------------------------------------------------------------- problems


class _NumpyOps:
    """The few vector operations the iteration needs, on float64 numpy arrays."""

    @staticmethod
    def zeros_m(m):
        return np.zeros(m)

    @staticmethod
    def marginal_error(a, f, f_next, eps):
        """Σ_i a_i |exp((f_i − f_next_i)/eps) − 1|: the L1 error of a marginal of the plan."""
        return float(a @ np.abs(np.expm1(np.minimum((f - f_next) / eps, _EXP_CAP))))


class _NumbaClouds(_NumpyOps):
    """Point clouds on the CPU; costs recomputed on the fly (never an n × m array)."""

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



class _NumbaGibbs(_NumbaClouds):
    """Point clouds on the CPU with a stored (float32 or float64) Gibbs kernel: each soft-min
    is one matrix–vector product (scaling-domain Sinkhorn), stabilised by absorption.

    The kernel K_ij = exp((F_i + G_j − C_ij)/eps) is built around a reference pair (F, G) of
    mutual c-transforms (src/otdiv/kernels/gibbs_numba.py), so entries lie in [0, 1] with a 1 in
    every row and column. It is recomputed for each new eps (squared in place when eps
    halves), and rebuilt around the current potentials (absorbed into a new reference) when
    one moves more than ``_ABSORB``·eps above its reference (the scalings would grow without
    bound) or when a soft-min sum comes out too small to trust. The inherited log-domain
    methods stay available as ``exact``, for the final error check.

    The kernel covers the support only (the points of positive weight): at a point of zero
    weight the reference pair is not a pair of mutual c-transforms, so its entries could
    exceed 1 and overflow (most of all when K ← K ∘ K). The potentials of zero-weight points
    (which enter neither the plan nor the value, but are ∂OT/∂a there) are exact log-domain
    soft-mins, as on the online path.
    """

    def __init__(self, x, y, a, b, p, dtype):
        super().__init__(x, y, a, b, p)
        from otdiv.kernels import gibbs_numba

        self.g_k = gibbs_numba
        # the exact kernel on the same arrays: a _NumbaClouds sharing this object's state
        self.exact = object.__new__(_NumbaClouds)
        self.exact.__dict__ = self.__dict__
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
        if self.F is None or float(np.max(h - ref())) > _ABSORB * eps:
            absorb()
        elif self.eps_k != eps:  # the reference still centres h: only the kernel changes
            if self.eps_k == 2 * eps:  # the default annealing halves eps: K ← K ∘ K is exact
                np.multiply(self.K, self.K, out=self.K)  # in math (one multiply, no exp)
            else:
                self.g_k.gibbs(self.xs, self.yst, self.F, self.G, eps, self.p, self.K)
            self.eps_k = eps
        for _ in range(2):
            s = product(self.K, weights * np.exp(np.minimum((h - ref()) / eps, _ABSORB)))
            if float(s.min()) > _TINY_SUM:
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


class _NumbaDense(_NumpyOps):
    """A given (n, m) cost matrix on the CPU."""

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



class _Torch:
    """Point clouds (cost recomputed in chunks, or stored when it fits) or a given cost matrix,
    as torch tensors on any device; all work runs without autograd."""

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

    def zeros_m(self, m):
        return self.torch.zeros(m, dtype=self.a.dtype, device=self.a.device)

    def subset(self, idx):
        """The same problem restricted to the batch entries ``idx`` (batched problems only)."""
        sub = copy.copy(self)
        for name in ("a", "b", "la", "lb", "x", "y", "c", "ct"):
            t = getattr(self, name, None)
            if t is not None:
                setattr(sub, name, t[idx])
        return sub

    def batch_marginal_error(self, a, f, f_next, eps):
        """Per-problem Σ_i a_i |exp((f_i − f_next_i)/eps) − 1| over the last axis: (B,)."""
        ratio = ((f - f_next) / eps).clamp(max=_EXP_CAP)
        return (a * self.torch.expm1(ratio).abs()).sum(-1)

    def marginal_error(self, a, f, f_next, eps):
        ratio = ((f - f_next) / eps).clamp(max=_EXP_CAP)
        return float((a * self.torch.expm1(ratio).abs()).sum())


def _log_weights(w, log_zero):
    with np.errstate(divide="ignore"):
        lw = np.log(w)
    return np.where(w > 0, lw, log_zero)


def _dense_plan(cost, a, b, f, g, eps):
    with np.errstate(divide="ignore"):
        return np.exp(np.log(a)[:, None] + np.log(b)[None, :] + (f[:, None] + g[None, :] - cost)
                      / eps)


# ---------------------------------------------------------------------------- the algorithm


def _plan_error(prob, a, b, f, g, f_next, g_next, eps):
    """The L1 marginal error ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ of the plan P(f, g), from the soft-mins
    f_next = T_b(g) and g_next = T_a(f): every loop measures the plan it returns with this."""
    return prob.marginal_error(a, f, f_next, eps) + prob.marginal_error(b, g, g_next, eps)


def _schedule(cmax: float, eps: float, scaling: float | None) -> list[float]:
    """eps_k = cmax · s^k while above eps, then eps (one Sinkhorn sweep at each)."""
    if scaling is None or not cmax > eps:
        return [eps]
    steps = math.ceil(math.log(eps / cmax) / math.log(scaling))
    return [cmax * scaling**k for k in range(steps)] + [eps]


def _iterate(prob, a, b, eps, tol, max_iter, scaling, init=None):
    """Log-domain Sinkhorn with eps-scaling and safeguarded over-relaxation.

    Returns f, g, the L1 marginal error of the plan P(f, g), the sweep count, and whether
    that error is <= tol · mass. Each sweep is g ← (1−ω) g + ω T_a(f), f ← (1−ω) f + ω T_b(g);
    both marginal errors of the plan (f, g) just before the f-update come for free from the
    two soft-mins (:func:`_plan_error`).

    ω = 1 is plain Sinkhorn: block-coordinate ascent on the concave dual
    D(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − eps (⟨a ⊗ b, exp((f ⊕ g − C)/eps)⟩ − 1). Once the error decays
    geometrically at a measured rate r, the target ω is 2 / (1 + sqrt(1 − r)), the optimal
    over-relaxation of the linearised iteration (Thibault et al. 2017), whose rate is ω − 1
    instead of r. Far from the solution the linearisation does not hold (the iterate can
    oscillate without progress), so each half-step is safeguarded with D as a Lyapunov
    function (in the spirit of Lehmann et al. 2021): it takes the largest ω of
    ω_target, 1 + (ω_target − 1)/2, ..., 1 whose ascent is at least ``_ASCENT`` times the
    plain step's (:func:`_relaxed`). Every half-step then raises the bounded D by a fixed
    fraction of what plain Sinkhorn would, so the marginal errors tend to 0 as for plain
    Sinkhorn, whatever ω the rate suggested.
    """
    mass = float(a.sum())
    if init is None:
        schedule = _schedule(prob.cmax, eps, scaling)[-max_iter:]  # annealing counts as sweeps
        f = prob.rows(prob.zeros_m(b.shape[-1]), schedule[0])
        g = prob.cols(f, schedule[0])
        for e in schedule[1:]:
            # symmetric (averaged, simultaneous) updates, as GeomLoss anneals: alternating ones
            # leave f and g tilted against each other along the slow modes of a nearly
            # diagonal kernel (coincident or nested supports), which plain Sinkhorn then
            # needs thousands of sweeps to undo at the final eps
            f, g = 0.5 * (f + prob.rows(g, e)), 0.5 * (g + prob.cols(f, e))
    else:  # a warm start at eps: init is the f of a previous run
        schedule, f = [eps], init
    g = None  # only read once omega != 1, by which time it holds the last iterate
    n_iter = len(schedule) - 1
    omega, errors = 1.0, []
    while True:
        g_plain = prob.cols(f, eps)
        g_new = g_plain if omega == 1.0 else _relaxed(b, g, g_plain, omega, eps)
        f_plain = prob.rows(g_new, eps)
        n_iter += 1
        err = _plan_error(prob, a, b, f, g_new, f_plain, g_plain, eps)
        if omega != 1.0 and math.isfinite(err) and (
                n_iter >= max_iter or (err <= _plain_window(omega) * tol * mass
                                       and n_iter % _PLAIN_EVERY == 0)):
            # the over-relaxed g overshoots: near the fixed point its plan's error is up to
            # 2 / (2 − ω) times that of the plain g = T_a(f), whose plan is measured with one
            # more soft-min (its columns are exact) and returned when it is the better one
            plain_err = _plan_error(prob, a, b, f, g_plain, prob.rows(g_plain, eps), g_plain,
                                    eps)
            if plain_err < err and (plain_err <= tol * mass or n_iter >= max_iter):
                return f, g_plain, plain_err, n_iter, plain_err <= tol * mass
        if err <= tol * mass or n_iter >= max_iter or not math.isfinite(err):
            return f, g_new, err, n_iter, err <= tol * mass
        g = g_new
        f = f_plain if omega == 1.0 else _relaxed(a, f, f_plain, omega, eps)
        errors.append(err)
        if len(errors) >= 6 and errors[-1] < errors[-2] < errors[-3] < errors[-4]:
            target = _omega_from_rate((errors[-1] / errors[-4]) ** (1 / 3), omega,
                                      _omega_cap(f))
            if abs(target - omega) > 1e-3:
                omega, errors = target, []


def _plain_window(omega: float) -> float:
    """How far above tol an over-relaxed plan's error may be while the plain plan at the same
    f can already be within tol (its error is about (2 − ω) / 2 times as large)."""
    return 2.0 / (2.0 - omega)


def _omega_cap(f) -> float:
    """_OMEGA_MAX in float64; 1.9 in float32, whose rounding the linearised rate ω − 1 near 1
    would amplify by 1 / (2 − ω)."""
    return _OMEGA_MAX if f.dtype == np.float64 or str(f.dtype) == "torch.float64" else 1.9


def _omega_from_rate(mu: float, omega: float, cap: float) -> float:
    """The optimal ω for the plain rate λ implied by the rate mu observed under omega.

    The linearised over-relaxed iteration's rates mu solve (mu + ω − 1)² = mu ω² λ for each
    rate λ of plain Sinkhorn (real for ω below the optimum 2 / (1 + sqrt(1 − λ))), so one
    observed rate gives λ back; ω = 1 observes λ itself.
    """
    lam = min(max((mu + omega - 1.0) ** 2 / (mu * omega**2), 0.0), 1.0)
    return min(cap, 2.0 / (1.0 + math.sqrt(1.0 - lam)))


def _bregman(t):
    """e^t − 1 − t >= 0, accurate for small |t| (numpy array or torch tensor)."""
    if is_tensor(t):
        import torch

        small = t.abs() < 1e-3
        series = t * t * (0.5 + t * (1 / 6 + t * (1 / 24 + t / 120)))
        return torch.where(small, series, torch.expm1(t.clamp(max=_EXP_CAP)) - t)
    with np.errstate(over="ignore"):
        series = t * t * (0.5 + t * (1 / 6 + t * (1 / 24 + t / 120)))
        return np.where(np.abs(t) < 1e-3, series, np.expm1(np.minimum(t, _EXP_CAP)) - t)


def _relaxed(w, h, h_plain, omega, eps):
    """h + ω' (h_plain − h) for the largest ω' in ω, 1 + (ω − 1)/2, ..., 1 that raises the dual
    D by at least ``_ASCENT`` times the plain step (ω' = 1) does.

    With δ = (h_plain − h)/eps, the block of D in h changes by eps Σ w (φ(−δ) − φ((ω'−1)δ)),
    φ(t) = e^t − 1 − t (the plain step, ω' = 1, maximises the block: eps Σ w φ(−δ)). The test
    Σ w φ((ω'−1)δ) <= (1 − _ASCENT) Σ w φ(−δ) costs O(n), no soft-min.
    """
    delta = (h_plain - h) / eps
    gain = float((w * _bregman(-delta)).sum())
    step = omega - 1.0
    for _ in range(_HALVINGS):
        if float((w * _bregman(step * delta)).sum()) <= (1.0 - _ASCENT) * gain:
            return h + (1.0 + step) * (h_plain - h)
        step *= 0.5
    return h_plain


def _iterate_symmetric(prob, a, eps, tol, max_iter, scaling, init=None):
    """OT_eps(a, a): the averaged fixed-point iteration f ← (f + T_a(f)) / 2 (as in GeomLoss),
    which converges in a few dozen sweeps where the alternating one crawls (the self-plan is
    nearly diagonal, so the alternating iteration's kernel is nearly decoupled). The plan
    P(f, f) is symmetric: each of its marginals has the L1 error Σ a |exp((f − T_a f)/eps) − 1|.
    """
    mass = float(a.sum())
    if init is None:
        schedule = _schedule(prob.cmax, eps, scaling)[-max_iter:]
        f = prob.rows(prob.zeros_m(a.shape[-1]), schedule[0])
        for e in schedule[:-1]:
            f = 0.5 * (f + prob.rows(f, e))
    else:
        schedule, f = [eps], init
    n_iter = len(schedule) - 1
    while True:
        f_next = prob.rows(f, eps)
        n_iter += 1
        err = 2 * prob.marginal_error(a, f, f_next, eps)
        if err <= tol * mass or n_iter >= max_iter or not math.isfinite(err):
            return f, f, err, n_iter, err <= tol * mass
        f = 0.5 * (f + f_next)


def _iterate_batched(prob, eps, tol, max_iter, scaling):
    """Log-domain Sinkhorn on a batch of B problems, each stopped by its own marginal error.

    The annealing sweeps are shared (one schedule from the largest Cmax of the batch). Then
    each sweep g ← T_a(f), f ← T_b(g) runs on the problems still active only: a problem
    leaves the batch as soon as its L1 marginal error is <= tol · mass (or is not finite, or
    max_iter is reached), keeping the (f, g) whose error was measured, exactly as the
    unbatched loop does. Plain Sinkhorn (ω = 1): the adaptive over-relaxation of
    :func:`_iterate` is not used here. Returns f (B, n), g (B, m), and per-problem tensors
    err (B,), n_iter (B,), converged (B,).
    """
    torch = prob.torch
    a, b = prob.a, prob.b
    mass = a.sum(-1)
    schedule = _schedule(prob.cmax, eps, scaling)[-max_iter:]
    f = prob.rows(prob.zeros_m(b.shape[-1]), schedule[0])
    for e in schedule[:-1]:
        f = prob.rows(prob.cols(f, e), e)
    g = torch.zeros_like(b)
    n_batch = a.shape[0]
    n_iter = torch.full((n_batch,), len(schedule) - 1, dtype=torch.long, device=a.device)
    err = torch.full((n_batch,), math.inf, dtype=a.dtype, device=a.device)
    active = torch.arange(n_batch, device=a.device)
    sub = prob
    while True:
        f_act = f[active]
        g_act = sub.cols(f_act, eps)
        f_next = sub.rows(g_act, eps)
        e_act = sub.batch_marginal_error(sub.a, f_act, f_next, eps)
        n_iter[active] += 1
        err[active] = e_act
        g[active] = g_act
        done = ((e_act <= tol * mass[active]) | ~torch.isfinite(e_act)
                | (n_iter[active] >= max_iter))
        keep = ~done
        f[active[keep]] = f_next[keep]  # finished problems keep the f their error belongs to
        if not bool(keep.any()):
            return f, g, err, n_iter, err <= tol * mass
        if bool(done.any()):  # shrink the batch: later sweeps skip the finished problems
            active = active[keep]
            sub = prob.subset(active)


def _check_exactly(prob, a, b, eps, tol, max_iter, run, symmetric):
    """Re-measure the marginal error of a scaling-domain run with the exact log-domain kernel,
    converged or not: one exact sweep g = T_a(f), then the error of P(f, g) (its column
    marginal is exact; for a symmetric problem, P(f, f) and both marginals). If the float32
    kernel's rounding (or max_iter) left it above tol, iterate on with the exact kernel from
    there, to max_iter sweeps in all. The caller leaves at least one sweep for this, so the
    reported error is always that of the returned plan."""
    f, n_iter = run[0], run[3]
    rest = max(1, max_iter - n_iter)  # the first of these sweeps is the re-check itself
    if symmetric:
        f, g, err, more, converged = _iterate_symmetric(prob.exact, a, eps, tol, rest, None,
                                                        init=f)
    else:
        f, g, err, more, converged = _iterate(prob.exact, a, b, eps, tol, rest, None, init=f)
    return f, g, err, n_iter + more, converged


def _all_finite(v) -> bool:
    return bool(v.isfinite().all()) if is_tensor(v) else bool(np.isfinite(v).all())


def _check_resolvable(eps: float, cmax: float, tol: float, ulp: float) -> None:
    """Refuse an eps whose plan the working precision (ulp) cannot represent to tol.

    Small eps: P_ij = exp((f_i + g_j − C_ij)/eps) with potentials of size Cmax, rounded to
    ulp·Cmax, so an entry can carry a relative error of ulp·Cmax/eps; the entries that carry
    the mass have f_i + g_j ≈ C_ij and their rounding errors partly cancel in the row sums
    (measured: float32 at eps = 1e-3·Cmax reaches tol = 1e-4), so eps < ulp·Cmax/(8·tol) is
    refused: there no marginal error can be measured or reached (and OT_eps is then within
    eps·log(n) of exact OT: use otdiv.wasserstein). Large eps: the soft-min
    −eps log Σ b exp((g − C)/eps) keeps C/eps only to ulp, a relative error of about
    ulp·eps/Cmax in the potentials and the value.
    """
    if not cmax > 0:
        return
    lo, hi = ulp / (8 * tol), tol / ulp
    ratio = eps / cmax
    if not lo <= ratio <= hi:
        raise ValueError(
            f"eps is {ratio:.3g} times the largest cost; Sinkhorn in this precision "
            f"resolves eps between {lo:.3g} and {hi:.3g} times it at tol={tol:g} (the plan's "
            "rounding would exceed tol). For smaller eps use otdiv.wasserstein (OT_eps is within "
            "eps·log(n) of it); for larger eps OT_eps is <a⊗b, C> to float precision"
        )


def _solve(prob, a, b, eps, tol, max_iter, scaling, what, symmetric=False):
    _check_resolvable(eps, prob.cmax, tol, 2.0 ** -23 if "float32" in str(a.dtype) else 2.0 ** -52)
    exact = getattr(prob, "exact", None)
    if exact is not None and max_iter < 2:  # no sweep left for the exact re-check
        prob, exact = exact, None
    budget = max_iter if exact is None else max_iter - 1
    loop = _iterate_symmetric if symmetric else _iterate
    args = (a, eps, tol) if symmetric else (a, b, eps, tol)
    try:
        run = loop(prob, *args, budget, scaling)
    except FloatingPointError:  # the stored kernel cannot hold this eps: the log domain can
        prob, exact = exact, None
        run = loop(prob, *args, max_iter, scaling)
    if exact is not None:
        run = _check_exactly(prob, a, b, eps, tol, max_iter, run, symmetric)
    f, g, err, n_iter, converged = run
    if not (math.isfinite(err) and _all_finite(f) and _all_finite(g)):
        converged = False
    if not converged:
        warn_not_converged(
            what,
            f"the L1 marginal error {err:.3g} is above tol={tol:g} after max_iter={max_iter} "
            "Sinkhorn sweeps; raise max_iter, raise eps, or loosen tol",
        )
    return f, g, err, n_iter, converged


def _result(value, dual, transport_cost, f, g, err, n_iter, converged, method, plan_fn):
    return TransportResult(
        value=value, cost=dual, f=to_numpy64(f), g=to_numpy64(g), converged=converged,
        status=OPTIMAL if converged else MAX_ITER if math.isfinite(err) else NOT_FINITE,
        method=method,
        n_iter=n_iter, marginal_error=err, transport_cost=transport_cost, _plan_fn=plan_fn,
    )


def _check_options(tol, max_iter, eps_scaling):
    check_positive(tol, "tol")
    check_int(max_iter, "max_iter")
    if eps_scaling is not None:
        s = check_positive(eps_scaling, "eps_scaling")
        if s >= 1:
            raise ValueError(f"eps_scaling must be in (0, 1) or None, got {s}")


# ---------------------------------------------------------------------------- entry points


def _pick_backend(backend: str, kind: str) -> str:
    if backend == "auto":
        return "torch" if kind == "torch" else "numba"
    if backend == "torch" and kind == "numpy":
        raise ValueError("backend='torch' needs torch tensors; numpy inputs use 'numba' or 'auto'")
    return backend


def _times_pow2(v, e: float):
    """v · 2^e for a float, numpy array or tensor, in factors of at most 2^±1000 so that no
    factor over- or underflows where the product does not (0 or inf where it does)."""
    while e != 0:
        step = max(-1000.0, min(1000.0, e))
        if isinstance(v, float):
            with np.errstate(over="ignore", under="ignore"):
                v = float(np.float64(v) * np.exp2(step))
        else:
            v = v * float(np.exp2(step))
        e -= step
    return v


def _coordinate_exponent(x, y) -> int:
    """k with max |coordinate| < 2^k (0 when all coordinates are 0): dividing by 2^k is exact."""
    peak = max(float(abs(v).max()) for v in (x, y))
    return math.frexp(peak)[1] if peak > 0 else 0


def _entropic_clouds(x, y, a, b, kind, *, eps, p, **options):
    """Solve OT_eps between validated clouds; returns a TransportResult (value differentiable
    on the torch path). symmetric: y is x and b is a (the debiasing terms).

    OT_eps is homogeneous: for x' = x / 2^k, y' = y / 2^k the cost is C / 2^(kp), and
    OT_eps(x, y) = 2^(kp) · OT_{eps / 2^(kp)}(x', y'). The solver sees coordinates below 1 in
    magnitude, so no cost over- or underflows whatever the scale of the data (1e±300).
    """
    k = _coordinate_exponent(x if kind == "numpy" else x.detach(),
                             y if kind == "numpy" else y.detach())
    if k == 0:
        return _entropic_clouds_unit(x, y, a, b, kind, eps=eps, p=p, **options)
    scale = k * p  # C = 2^scale · C'
    eps_unit = min(max(_times_pow2(eps, -scale), _TINY_EPS), 1.0 / _TINY_EPS)
    res = _entropic_clouds_unit(_times_pow2(x, -k), _times_pow2(y, -k), a, b, kind,
                                eps=eps_unit, p=p, **options)
    return dataclasses.replace(
        res, value=_times_pow2(res.value, scale), cost=_times_pow2(res.cost, scale),
        transport_cost=_times_pow2(res.transport_cost, scale), f=_times_pow2(res.f, scale),
        g=_times_pow2(res.g, scale),
    )


def _entropic_clouds_unit(x, y, a, b, kind, *, eps, p, tol, max_iter, eps_scaling, backend,
                          dense_budget, what, symmetric=False):
    """:func:`_entropic_clouds` on coordinates of magnitude < 1."""
    backend = _pick_backend(backend, kind)
    if backend == "numba":
        xn, yn, an, bn = (to_numpy64(v) for v in (x, y, a, b))
        gibbs = xn.shape[0] * yn.shape[0] <= dense_budget
        if gibbs:  # float32 entries carry a relative error of 6e-8: enough above tol 1e-7
            prob = _NumbaGibbs(xn, yn, an, bn, p, np.float32 if tol >= 1e-7 else np.float64)
        else:
            prob = _NumbaClouds(xn, yn, an, bn, p)
        f, g, err, n_iter, ok = _solve(prob, an, bn, eps, tol, max_iter, eps_scaling, what,
                                       symmetric)
        dual = float(an @ f + bn @ g)
        tcost = prob.transport_cost(f, g, eps)
        if kind == "torch":
            import torch

            ft = torch.as_tensor(f, dtype=x.dtype, device=x.device)
            gt = torch.as_tensor(g, dtype=x.dtype, device=x.device)
            value = _torch_value(x, y, a, b, ft, gt, dual, eps, p, dense_budget)[0]
        else:
            value = dual
        method = "sinkhorn_scaling/numba" if gibbs else "sinkhorn_log/numba"
        return _result(value, dual, tcost, f, g, err, n_iter, ok, method,
                       lambda: prob.plan(f, g, eps))

    import torch

    with torch.no_grad():
        prob = _Torch(x, y, a, b, p, budget=dense_budget)
        f, g, err, n_iter, ok = _solve(prob, prob.a, prob.b, eps, tol, max_iter, eps_scaling,
                                       what, symmetric)
        dual_t = (prob.a * f).sum() + (prob.b * g).sum()
    value, tcost = _torch_value(x, y, a, b, f, g, dual_t, eps, p, dense_budget)
    return _result(value, float(dual_t), tcost, f, g, err, n_iter, ok, "sinkhorn_log/torch",
                   lambda: to_numpy64(prob.plan(f, g, eps)))


def _torch_value(x, y, a, b, f, g, dual, eps, p, budget):
    """dual + ⟨P, C(x, y)⟩ − sg(⟨P, C⟩) + weight terms: value = dual, ∂/∂x = Σ_j P_ij ∇c, ∂/∂a = f.

    Returns (value tensor, transport cost ⟨P, C⟩ as a float).
    """
    import torch

    from otdiv.kernels.softmin_torch import PlanCost, rows_per_chunk

    with torch.no_grad():
        u = torch.log(a.detach()) + f / eps
        v = torch.log(b.detach()) + g / eps
    chunk = rows_per_chunk(y.shape[-2], budget)
    pc = PlanCost.apply(x, y, u, v, eps, p, chunk)
    value = torch.as_tensor(dual, dtype=x.dtype, device=x.device) + (pc - pc.detach())
    return add_weight_gradients(value, a, f, b, g), float(pc.detach())


def _sinkhorn_batched(x, y, a, b, *, eps, p, tol, max_iter, eps_scaling, dense_budget):
    """B independent OT_eps problems (validated torch tensors x (B, n, d), y (B, m, d),
    a (B, n), b (B, m)); returns a TransportResult with per-problem fields."""
    import torch

    from otdiv.kernels.softmin_torch import PlanCost, rows_per_chunk

    with torch.no_grad():
        prob = _Torch(x, y, a, b, p, budget=dense_budget)
        f, g, err, n_iter, ok = _iterate_batched(prob, eps, tol, max_iter, eps_scaling)
        ok = ok & torch.isfinite(err)
        dual = (prob.a * f).sum(-1) + (prob.b * g).sum(-1)
        u = prob.la + f / eps
        v = prob.lb + g / eps
    err_np, n_iter_np, ok_np = to_numpy64(err), n_iter.cpu().numpy(), ok.cpu().numpy()
    if not ok_np.all():
        bad = np.flatnonzero(~ok_np)
        warn_not_converged(
            "sinkhorn (batched)",
            f"problems {bad.tolist()} have L1 marginal errors {err_np[bad].tolist()} above "
            f"tol={tol:g} after max_iter={max_iter} Sinkhorn sweeps; raise max_iter, raise "
            "eps, or loosen tol",
        )
    chunk = rows_per_chunk(y.shape[-2] * x.shape[0], dense_budget)
    pc = PlanCost.apply(x, y, u, v, eps, p, chunk)  # (B,): ⟨P_k, C_k⟩, gradient in x and y
    value = add_weight_gradients(dual + (pc - pc.detach()), a, f, b, g)
    return TransportResult(
        value=value, cost=to_numpy64(dual), f=to_numpy64(f), g=to_numpy64(g), converged=ok_np,
        status=(OPTIMAL if ok_np.all() else MAX_ITER if np.isfinite(err_np).all()
                else NOT_FINITE),
        method="sinkhorn_log/torch/batched", n_iter=n_iter_np, marginal_error=err_np,
        transport_cost=to_numpy64(pc.detach()),
        _plan_fn=lambda: to_numpy64(prob.plan(f, g, eps)),
    )


def _validate_batched(x, y, a, b, kind, backend):
    """Batched clouds x (B, n, d), y (B, m, d) and weights (B, n), (B, m): torch tensors only."""
    if kind != "torch":
        raise ValueError(
            "batched (B, n, d) inputs need torch tensors (backend 'torch'); for numpy arrays "
            "call sinkhorn once per problem"
        )
    if backend == "numba":
        raise ValueError("batched (B, n, d) inputs need backend='torch' or 'auto', not 'numba'")
    import torch

    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    for t, name in ((x, "x"), (y, "y")):
        if t.dim() != 3 or 0 in t.shape:
            raise ValueError(f"batched {name} must have shape (B, n, d) with B, n, d >= 1, "
                             f"got shape {tuple(t.shape)}")
    if y.shape[0] != x.shape[0] or y.shape[2] != x.shape[2]:
        raise ValueError(f"batched x and y must agree in B and d, got x.shape={tuple(x.shape)} "
                         f"and y.shape={tuple(y.shape)}")
    y = y.to(dtype=x.dtype)
    out = []
    for w, pts, name in ((a, x, "a"), (b, y, "b")):
        n_batch, n = pts.shape[:2]
        if w is None:
            out.append(torch.full((n_batch, n), 1.0 / n, dtype=x.dtype, device=x.device))
            continue
        if not is_tensor(w) or w.dim() != 2 or w.shape[0] != n_batch:
            raise ValueError(f"batched {name} must be a ({n_batch}, {n}) tensor of weights, "
                             f"got {tuple(getattr(w, 'shape', ()))}")
        # row by row through the shared validation (nonnegative, positive mass, normalized)
        out.append(torch.stack([as_weights(w[k], n, f"{name}[{k}]", like=pts)
                                for k in range(n_batch)]))
    return x, y, out[0], out[1]


def transport_entropic(a, b, C, *, eps: float, kind: str, tol: float = 1e-6,
                       max_iter: int = DEFAULT_MAX_ITER,
                       eps_scaling: float | None = DEFAULT_EPS_SCALING) -> TransportResult:
    """The entropic path of :func:`otdiv.transport` (inputs already validated, equal masses).

    OT_eps = min_{P ∈ Π(a, b)} ⟨P, C⟩ + eps Σ_ij P_ij log(P_ij / (a_i b_j)).
    """
    _check_options(tol, max_iter, eps_scaling)
    what = "transport(eps=...)"
    if kind == "numpy":
        prob = _NumbaDense(C, a, b)
        f, g, err, n_iter, ok = _solve(prob, a, b, eps, tol, max_iter, eps_scaling, what)
        dual = float(a @ f + b @ g)
        return _result(dual, dual, prob.transport_cost(f, g, eps), f, g, err, n_iter, ok,
                       "sinkhorn_log/numba", lambda: prob.plan(f, g, eps))

    import torch

    with torch.no_grad():
        prob = _Torch(None, None, a, b, 1.0, cost=C)
        f, g, err, n_iter, ok = _solve(prob, prob.a, prob.b, eps, tol, max_iter, eps_scaling,
                                       what)
        P = prob.plan(f, g, eps)
        dual_t = (prob.a * f).sum() + (prob.b * g).sum()
        tcost = float((P * prob.c).sum())
    value = dual_t + ((P * C).sum() - tcost)
    value = add_weight_gradients(value, a, f, b, g)
    return _result(value, float(dual_t), tcost, f, g, err, n_iter, ok, "sinkhorn_log/torch",
                   lambda: to_numpy64(P))


def _ndim(x) -> int:
    if is_tensor(x):
        return x.dim()
    try:
        return np.ndim(x)
    except Exception:  # ragged input: let the ordinary validation name the problem
        return -1


def _validate(x, y, a, b, eps, p, tol, max_iter, eps_scaling, backend):
    kind = array_kind({"x": x, "y": y, "a": a, "b": b})
    x = as_points(x, "x")
    y = as_points(y, "y")
    check_same_dim(x, y)
    x, y = common_dtype(x, y)
    a = as_weights(a, x.shape[0], "a", like=x)
    b = as_weights(b, y.shape[0], "b", like=y)
    eps = check_positive(eps, "eps")
    p = check_p(p)
    _check_options(tol, max_iter, eps_scaling)
    check_choice(backend, "backend", BACKENDS)
    return kind, x, y, a, b, eps, p


def sinkhorn(
    x,
    y,
    a=None,
    b=None,
    *,
    eps: float,
    p: float = 2,
    tol: float = 1e-6,
    max_iter: int = DEFAULT_MAX_ITER,
    eps_scaling: float | None = DEFAULT_EPS_SCALING,
    return_result: bool = False,
    backend: str = "auto",
    dense_budget: int = DENSE_BUDGET,
):
    r"""OT_eps = min_{P ∈ Π(a, b)} ⟨P, C⟩ + eps·KL(P ‖ a⊗b), C_ij = ‖x_i − y_j‖^p (default p = 2).

    .. math:: \mathrm{OT}_\varepsilon(a, b) = \min_{P \in \Pi(a, b)} \sum_{ij} P_{ij}
              \|x_i - y_j\|_2^p + \varepsilon\,\mathrm{KL}(P \,\|\, a \otimes b),\quad
              \mathrm{KL}(P \,\|\, q) = \sum_{ij} P_{ij} \log (P_{ij} / q_{ij})

    eps is absolute, in the units of the cost ‖x − y‖^p (GeomLoss's ``blur`` is eps^{1/p} and
    its p = 2 cost is ‖x − y‖²/2: see docs/sinkhorn.md). Solved by log-domain Sinkhorn with
    eps-scaling; never under- or overflows, whatever eps.

    Args:
        x: (n,) or (n, d) points (numpy array or torch tensor). y: (m,) or (m, d), same kind.
            Batched (torch only): x (B, n, d) and y (B, m, d) are B independent problems
            (numpy 3-D arrays raise ValueError; loop over them instead).
        a, b: nonnegative weights (n,) and (m,) — (B, n) and (B, m) when batched, each row
            normalized on its own; uniform when None; normalized to sum 1.
        eps: entropic regularisation > 0, in units of the cost.
        p: exponent of the ground cost, p >= 1.
        tol: stop when the L1 error of the returned plan's marginals is <= tol.
        max_iter: cap on Sinkhorn sweeps (annealing sweeps included); reaching it warns with
            :class:`ConvergenceWarning` and sets ``converged=False``.
        eps_scaling: annealing factor s in (0, 1): one sweep at each eps_k = Cmax·s^k before
            iterating at eps (Cmax bounds the cost). None: start at eps.
        return_result: return a :class:`TransportResult` (``value``, ``transport_cost`` =
            ⟨P, C⟩, potentials ``f``, ``g``, ``n_iter``, ``marginal_error``, ``converged``,
            and a lazily built ``plan``) instead of the value alone.
        backend: ``"auto"`` (numpy → ``"numba"``, torch → ``"torch"``), ``"numba"`` (CPU;
            torch inputs are solved on the CPU and keep their gradients) or ``"torch"``
            (CPU/GPU, log-domain, cost stored when n·m <= dense_budget).
        dense_budget: number of n·m entries a kernel may hold at once (for the whole batch
            when batched). ``"numba"`` stores the stabilised Gibbs kernel when n·m <=
            dense_budget (float32 when tol >= 1e-7, else float64) and runs scaling-domain
            sweeps, two matrix–vector products each; above it, the online log-domain kernel
            (memory O(n + m)).

    Returns:
        OT_eps: a Python float for numpy input; for torch input a 0-d tensor on the input's
        device and dtype, differentiable in x, y, a and b (gradients from the potentials by
        the envelope theorem: ∂/∂a = f, ∂/∂b = g, ∂/∂x_i = Σ_j P_ij ∇_x c(x_i, y_j)).
        Batched: a (B,) tensor; problem k depends on x[k], y[k], a[k], b[k] only. Each problem
        is swept until its own marginal error is <= tol and then left alone (plain Sinkhorn,
        without the adaptive over-relaxation of the unbatched loop); the result's ``f``,
        ``g`` (B, n) and (B, m), ``cost``, ``transport_cost``, ``n_iter``,
        ``marginal_error`` and ``converged`` are per-problem numpy arrays, ``plan`` is
        (B, n, m), and one warning names the problems that reached max_iter.

    Example:
        >>> import numpy as np
        >>> from otdiv import sinkhorn
        >>> round(sinkhorn(np.array([0.0]), np.array([2.0]), eps=0.1), 6)
        4.0
    """
    if _ndim(x) == 3 or _ndim(y) == 3:
        kind = array_kind({"x": x, "y": y, "a": a, "b": b})
        check_choice(backend, "backend", BACKENDS)
        x, y, a, b = _validate_batched(x, y, a, b, kind, backend)
        eps, p = check_positive(eps, "eps"), check_p(p)
        _check_options(tol, max_iter, eps_scaling)
        check_positive(dense_budget, "dense_budget")
        res = _sinkhorn_batched(x, y, a, b, eps=eps, p=p, tol=tol, max_iter=max_iter,
                                eps_scaling=eps_scaling, dense_budget=int(dense_budget))
        return res if return_result else res.value
    kind, x, y, a, b, eps, p = _validate(x, y, a, b, eps, p, tol, max_iter, eps_scaling,
                                         backend)
    check_positive(dense_budget, "dense_budget")
    res = _entropic_clouds(x, y, a, b, kind, eps=eps, p=p, tol=tol, max_iter=max_iter,
                           eps_scaling=eps_scaling, backend=backend,
                           dense_budget=int(dense_budget), what="sinkhorn")
    return res if return_result else res.value


def sinkhorn_divergence(
    x,
    y,
    a=None,
    b=None,
    *,
    eps: float,
    p: float = 2,
    tol: float = 1e-6,
    max_iter: int = DEFAULT_MAX_ITER,
    eps_scaling: float | None = DEFAULT_EPS_SCALING,
    backend: str = "auto",
    dense_budget: int = DENSE_BUDGET,
):
    r"""S_eps = OT_eps(a, b) − ½ OT_eps(a, a) − ½ OT_eps(b, b) >= 0, cost ‖x − y‖^p (default p = 2).

    The debiased Sinkhorn divergence, zero exactly when the measures are equal.

    .. math:: S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
              - \tfrac12 \mathrm{OT}_\varepsilon(a, a) - \tfrac12 \mathrm{OT}_\varepsilon(b, b)

    with OT_eps as in :func:`sinkhorn` (cost ‖x − y‖^p, eps absolute in units of the cost).
    It interpolates between W_p^p (eps → 0) and an MMD (eps → ∞).

    Args:
        x, y, a, b, eps, p, tol, max_iter, eps_scaling, backend, dense_budget: as in
            :func:`sinkhorn`; each of the three problems is solved to ``tol``.

    Returns:
        S_eps, clipped at 0 against rounding: a Python float for numpy input; for torch
        input a 0-d tensor differentiable in x, y, a and b.
    """
    kind, x, y, a, b, eps, p = _validate(x, y, a, b, eps, p, tol, max_iter, eps_scaling,
                                         backend)
    check_positive(dense_budget, "dense_budget")
    opts = dict(eps=eps, p=p, tol=tol, max_iter=max_iter, eps_scaling=eps_scaling,
                backend=backend, dense_budget=int(dense_budget))
    xy = _entropic_clouds(x, y, a, b, kind, what="sinkhorn_divergence (x, y)", **opts).value
    xx = _entropic_clouds(x, x, a, a, kind, what="sinkhorn_divergence (x, x)", symmetric=True,
                          **opts).value
    yy = _entropic_clouds(y, y, b, b, kind, what="sinkhorn_divergence (y, y)", symmetric=True,
                          **opts).value
    value = xy - 0.5 * (xx + yy)
    # one rule for both kinds: S_eps >= 0, so a negative value is rounding (of the three
    # solves to tol) and is clipped; the torch clip keeps the gradient where S_eps > 0
    if kind == "numpy":
        return max(float(value), 0.0)
    return value.clamp(min=0.0)


__all__ = ["sinkhorn", "sinkhorn_divergence", "transport_entropic"]
