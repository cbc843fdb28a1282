"""The Sinkhorn loops over a geometry's soft-min, and the tricks each may use.

Log-domain Sinkhorn, f ← T_b(g), g ← T_a(f), on any geometry of :mod:`otdiv.ot.geometry`.
Every loop returns the potentials whose plan P(f, g) it measured, that plan's L1 marginal
error (from the next soft-mins, for free: Σ_j P_ij = a_i exp((f_i − T_b(g)_i)/eps)), the sweep
count (annealing sweeps included) and whether the error is <= tol · mass. The strategies,
each named, each changing only how fast that point is reached, never what is reported:

* **annealing** (:func:`annealing`): one averaged sweep at each eps_k = Cmax · s^k down to eps;
* **over-relaxation** (:mod:`otdiv.ot.overrelaxation`, in :func:`iterate`): ω from the
  measured rate, each half-step safeguarded by the dual; near tol the plain plan is measured
  too (the **plain window**) and returned when it is the better one;
* **averaged symmetric iteration** (:func:`iterate_symmetric`) for OT_eps(a, a);
* **shrinking batches** (:func:`iterate_batched`): a problem leaves the batch once its own
  error is <= tol, keeping the (f, g) that error belongs to;
* **a float32 kernel with a reserved exact sweep** (:func:`solve`): a scaling-domain run on the
  stored float32 Gibbs kernel (with **absorption** and **kernel squaring**,
  :class:`~otdiv.ot.geometry.NumbaGibbs`) leaves one sweep of ``max_iter`` for the exact
  log-domain kernel, which measures the returned plan (and iterates on if rounding left it
  above tol);
* **kernel truncation** (:class:`~otdiv.ot.truncation.TruncatedClouds`, a geometry with a
  ``floor`` like the float32 one): sweeps on a soft-min certified within eps·log(1 + δ) of
  the exact one, down to tol/4 of its own measure; the exact kernel then measures the plan;
* **the oscillation guard** (in :func:`iterate`): ω lowered to the optimum read off an
  over-optimal oscillation of the error (:func:`~otdiv.ot.overrelaxation.oscillation_omega`);
* **the large-eps limit**: the :class:`~otdiv.ot.geometry.Centred` soft-min, converged in a
  sweep or two when eps is far above the largest cost.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from otdiv._array import check_int, check_positive, is_tensor
from otdiv.ot import sinkhorn_multiscale as ms
from otdiv.ot.geometry import EXP_CAP
from otdiv.ot.overrelaxation import (
    PLAIN_EVERY,
    omega_cap,
    omega_from_rate,
    oscillation_omega,
    plain_window,
    relaxed,
)
from otdiv.ot.results import warn_not_converged

DEFAULT_MAX_ITER = 10_000
DEFAULT_EPS_SCALING = 0.5
STALL = 40  # a loop with a rounding floor stops after this many sweeps without a new best
OSCILLATION = 8  # > 0: after this many sweeps with ω > 1, an over-optimal oscillation of
# the error (overrelaxation.oscillation_omega) lowers ω to the optimum it implies; 0: off


class Run(NamedTuple):
    """What a loop returns: the potentials of the returned plan P(f, g), that plan's L1
    marginal error, the sweeps used (annealing included), whether error <= tol · mass, and
    its mass excess ΣP − Σa (the dual objective at (f, g) is ⟨a, f⟩ + ⟨b, g⟩ − eps · excess,
    which every loop's caller reports: exact at the fixed point, and below it the one
    lower bound on OT_eps whose error is second order in that of the potentials)."""

    f: Any
    g: Any
    error: float
    n_iter: int
    converged: bool
    excess: float = 0.0
    omega: float = 1.0  # the over-relaxation reached (carried to a finer level or kernel)
    cap: float = math.inf  # the oscillation guard's cap on ω, carried with it


def _row_sums(a, f, f_next, eps, signed: bool = False):
    """Σ_i a_i |exp((f_i − f_next_i)/eps) − 1| over the last axis: the L1 error of the row
    marginal of P(f, g) when f_next = T_b(g) (Σ_j P_ij = a_i exp((f_i − f_next_i)/eps)); with
    signed=True, the mass excess ΣP − Σa instead. A float, or a (B,) tensor for a batch."""
    t = (f - f_next) / eps
    if isinstance(t, np.ndarray):
        e = np.expm1(np.minimum(t, EXP_CAP))
        return float(a @ (e if signed else np.abs(e)))
    import torch

    e = torch.expm1(t.clamp(max=EXP_CAP))
    out = (a * (e if signed else e.abs())).sum(-1)
    return float(out) if out.dim() == 0 else out


def _excess(a, f, f_next, eps) -> float:
    """ΣP − Σa = Σ_i a_i (exp((f_i − f_next_i)/eps) − 1) for f_next = T_b(g)."""
    return _row_sums(a, f, f_next, eps, signed=True)


def _zeros(w):
    """Zero potentials of w's length, kind, dtype and device."""
    return np.zeros(w.shape[-1]) if isinstance(w, np.ndarray) else w.new_zeros(w.shape[-1])


def plan_error(a, b, f, g, f_next, g_next, eps):
    """The L1 marginal error ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ of the plan P(f, g), from the soft-mins
    f_next = T_b(g) and g_next = T_a(f): every loop measures the plan it returns with this."""
    return _row_sums(a, f, f_next, eps) + _row_sums(b, g, g_next, eps)


def annealing(cmax: float, eps: float, scaling: float | None) -> list[float]:
    """eps_k = cmax · s^k while above eps, then eps (one Sinkhorn sweep at each)."""
    if scaling is None or not cmax > eps:
        return [eps]
    steps = math.ceil(math.log(eps / cmax) / math.log(scaling))
    return [cmax * scaling**k for k in range(steps)] + [eps]


def iterate(prob, a, b, eps, tol, max_iter, scaling, init=None, omega=1.0, floor=0.0,
            cap=math.inf):
    """Log-domain Sinkhorn with eps-scaling and safeguarded over-relaxation.

    Returns f, g, the L1 marginal error of the plan P(f, g), the sweep count, and whether
    that error is <= tol · mass. ``init`` (an f at eps) replaces the annealing, ``omega`` is
    the over-relaxation to start from (a coarser level's or a float32 kernel's), ``cap`` the
    oscillation guard's cap on it found there, and the loop
    also stops once the error is <= ``floor`` · mass (a kernel's rounding floor: the caller
    finishes with the exact kernel). Each sweep is g ← (1−ω) g + ω T_a(f), f ← (1−ω) f + ω T_b(g);
    both marginal errors of the plan (f, g) just before the f-update come for free from the
    two soft-mins (:func:`plan_error`).

    ω = 1 is plain Sinkhorn: block-coordinate ascent on the concave dual
    D(f, g) = ⟨a, f⟩ + ⟨b, g⟩ − eps (⟨a ⊗ b, exp((f ⊕ g − C)/eps)⟩ − 1). Once the error decays
    geometrically at a measured rate r, the target ω is 2 / (1 + sqrt(1 − r)), the optimal
    over-relaxation of the linearised iteration (Thibault et al. 2017), whose rate is ω − 1
    instead of r. Far from the solution the linearisation does not hold (the iterate can
    oscillate without progress), so each half-step is safeguarded with D as a Lyapunov
    function (in the spirit of Lehmann et al. 2021): it takes the largest ω of
    ω_target, 1 + (ω_target − 1)/2, ..., 1 whose ascent is at least ``ASCENT`` times the
    plain step's (:func:`~otdiv.ot.overrelaxation.relaxed`). Every half-step then raises
    the bounded D by a fixed fraction of what plain Sinkhorn would, so the marginal errors
    tend to 0 as for plain Sinkhorn, whatever ω the rate suggested.
    """
    mass = float(a.sum())
    if init is None:
        schedule = annealing(prob.cmax, eps, scaling)[-max_iter:]  # annealing counts as sweeps
        f = prob.rows(_zeros(b), schedule[0])
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
    errors = []  # since ω last changed (the rate formula's window)
    history = []  # since ω was last above 1 and not lowered by the guard (the guard's window)
    stop = max(tol, floor) * mass
    best, since_best = math.inf, 0  # a kernel with a rounding floor also stops on a stall
    # cap: lowered when the relaxed iteration is seen to oscillate (or carried in)
    while True:
        g_plain = prob.cols(f, eps)
        # (a warm start has no last g yet: its first half-step is plain)
        g_new = g_plain if omega == 1.0 or g is None else relaxed(b, g, g_plain, omega, eps)
        f_plain = prob.rows(g_new, eps)
        n_iter += 1
        err = plan_error(a, b, f, g_new, f_plain, g_plain, eps)
        if omega != 1.0 and math.isfinite(err) and (
                n_iter >= max_iter or (err <= plain_window(omega) * stop
                                       and n_iter % PLAIN_EVERY == 0)):
            # the over-relaxed g overshoots: near the fixed point its plan's error is up to
            # 2 / (2 − ω) times that of the plain g = T_a(f), whose plan is measured with one
            # more soft-min (its columns are exact) and returned when it is the better one
            f_next = prob.rows(g_plain, eps)
            plain_err = plan_error(a, b, f, g_plain, f_next, g_plain, eps)
            if plain_err < err and (plain_err <= stop or n_iter >= max_iter):
                return Run(f, g_plain, plain_err, n_iter, plain_err <= tol * mass,
                           _excess(a, f, f_next, eps), omega, cap)
        best, since_best = (err, 0) if err < best else (best, since_best + 1)
        if (err <= stop or n_iter >= max_iter or not math.isfinite(err)
                or (floor > 0 and since_best >= STALL)):
            return Run(f, g_new, err, n_iter, err <= tol * mass, _excess(a, f, f_plain, eps),
                       omega, cap)
        g = g_new
        f = f_plain if omega == 1.0 else relaxed(a, f, f_plain, omega, eps)
        errors.append(err)
        if omega > 1.0:
            history.append(err)
        else:
            history = []
        if OSCILLATION and len(history) >= OSCILLATION:
            # complex rates of modulus ω − 1: ω is above its optimum, which the rate formula
            # cannot see; the oscillation's period gives the optimum, kept as a cap from now
            # on. Its window outlives the small ω moves of the rate formula (which keeps
            # asking for the cap), so that three maxima of the oscillation can be seen
            lowered = oscillation_omega(history, omega)
            if lowered is not None and lowered < omega - 1e-3:
                cap = lowered
                omega, errors, history = cap, [], []
        if len(errors) >= 6 and errors[-1] < errors[-2] < errors[-3] < errors[-4]:
            target = omega_from_rate((errors[-1] / errors[-4]) ** (1 / 3), omega,
                                      min(cap, omega_cap(f)))
            if abs(target - omega) > 1e-3:
                omega, errors = target, []


def iterate_symmetric(prob, a, eps, tol, max_iter, scaling, init=None):
    """OT_eps(a, a): the averaged fixed-point iteration f ← (f + T_a(f)) / 2 (as in GeomLoss),
    which converges in a few dozen sweeps where the alternating one crawls (the self-plan is
    nearly diagonal, so the alternating iteration's kernel is nearly decoupled). The plan
    P(f, f) is symmetric: each of its marginals has the L1 error Σ a |exp((f − T_a f)/eps) − 1|.
    """
    mass = float(a.sum())
    if init is None:
        schedule = annealing(prob.cmax, eps, scaling)[-max_iter:]
        f = prob.rows(_zeros(a), schedule[0])
        for e in schedule[:-1]:
            f = 0.5 * (f + prob.rows(f, e))
    else:
        schedule, f = [eps], init
    n_iter = len(schedule) - 1
    while True:
        f_next = prob.rows(f, eps)
        n_iter += 1
        err = 2 * _row_sums(a, f, f_next, eps)
        if err <= tol * mass or n_iter >= max_iter or not math.isfinite(err):
            return Run(f, f, err, n_iter, err <= tol * mass, _excess(a, f, f_next, eps))
        f = 0.5 * (f + f_next)


def iterate_batched(prob, eps, tol, max_iter, scaling):
    """Log-domain Sinkhorn on a batch of B problems, each stopped by its own marginal error.

    The annealing sweeps are shared (one schedule from the largest Cmax of the batch). Then
    each sweep g ← T_a(f), f ← T_b(g) runs on the problems still active only: a problem
    leaves the batch as soon as its L1 marginal error is <= tol · mass (or is not finite, or
    max_iter is reached), keeping the (f, g) whose error was measured, exactly as the
    unbatched loop does. Plain Sinkhorn (ω = 1): the adaptive over-relaxation of
    :func:`iterate` is not used here. Returns f (B, n), g (B, m), and per-problem tensors
    err (B,), n_iter (B,), converged (B,).
    """
    torch = prob.torch
    a, b = prob.a, prob.b
    mass = a.sum(-1)
    schedule = annealing(prob.cmax, eps, scaling)[-max_iter:]
    f = prob.rows(_zeros(b), schedule[0])
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
        e_act = _row_sums(sub.a, f_act, f_next, eps)
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


def _exact_sweeps(prob, a, b, eps, tol, max_iter, run, symmetric, omega=1.0):
    """Re-measure the marginal error of a scaling-domain run with the exact log-domain kernel,
    converged or not: one exact sweep g = T_a(f), then the error of P(f, g) (its column
    marginal is exact; for a symmetric problem, P(f, f) and both marginals). If the float32
    kernel's rounding (or max_iter) left it above tol, iterate on with the exact kernel from
    there, to max_iter sweeps in all. The caller leaves at least one sweep for this, so the
    reported error is always that of the returned plan."""
    f, n_iter = run[0], run[3]
    rest = max(1, max_iter - n_iter)  # the first of these sweeps is the re-check itself
    if symmetric:
        run = iterate_symmetric(prob.exact, a, eps, tol, rest, None, init=f)
    else:
        run = iterate(prob.exact, a, b, eps, tol, rest, None, init=f, omega=omega)
    return run._replace(n_iter=n_iter + run.n_iter)


def _all_finite(v) -> bool:
    return bool(v.isfinite().all()) if is_tensor(v) else bool(np.isfinite(v).all())


def _check_resolvable(eps: float, cmax: float, tol: float, ulp: float) -> None:
    """Refuse an eps whose plan the working precision (ulp) cannot represent to tol.

    P_ij = exp((f_i + g_j − C_ij)/eps) with potentials of size Cmax, rounded to ulp·Cmax, so
    an entry can carry a relative error of ulp·Cmax/eps; the entries that carry the mass have
    f_i + g_j ≈ C_ij and their rounding errors partly cancel in the row sums (measured:
    float32 at eps = 1e-3·Cmax reaches tol = 1e-4), so eps < ulp·Cmax/(8·tol) is refused:
    there no marginal error can be measured or reached (and OT_eps is then within eps·log(n)
    of exact OT: use otdiv.wasserstein). Large eps has no limit: the centred soft-min
    (:class:`~otdiv.ot.geometry.Centred`) keeps full precision however large eps is.
    """
    lo = ulp / (8 * tol)
    if cmax > 0 and eps < lo * cmax:
        raise ValueError(
            f"eps is {eps / cmax:.3g} times the largest cost; Sinkhorn in this precision "
            f"resolves eps from {lo:.3g} times it at tol={tol:g} (the plan's rounding would "
            "exceed tol). For smaller eps use otdiv.wasserstein (OT_eps is within eps·log(n) "
            "of it)"
        )


def solve(prob, a, b, eps, tol, max_iter, scaling, what, symmetric=False, multiscale=None):
    """Run the loop for (a, b) — or the symmetric one for (a, a) — on the geometry ``prob``;
    with a stored float32 kernel, reserve the last sweep for the exact kernel; with a float32
    online kernel (a ``floor``), run it down to its floor and finish with the exact one. On
    large clouds (``multiscale`` None: :func:`otdiv.ot.sinkhorn_multiscale.applies`) the
    coarse level replaces the fine annealing. Warns when the returned plan's error is above
    tol. Returns the :class:`Run`."""
    _check_resolvable(eps, prob.cmax, tol, 2.0**-23 if "float32" in str(a.dtype) else 2.0**-52)
    exact = getattr(prob, "exact", None)
    floor = prob.floor(eps) if hasattr(prob, "floor") else 0.0
    if exact is not None and (max_iter < 2 or (symmetric and floor > 0)):
        prob, exact, floor = exact, None, 0.0  # no sweep left for the exact re-check
    budget = max_iter if exact is None else max_iter - 1
    loop = iterate_symmetric if symmetric else iterate
    args = (a, eps, tol) if symmetric else (a, b, eps, tol)
    options, levels = {}, 0  # levels: the coarse level counts as one sweep
    if multiscale if multiscale is not None else ms.applies(prob, symmetric, max_iter, eps):
        # the coarse problem solved at eps (not converging is harmless: a warm start)
        coarse = ms.coarse_problem(prob)
        run = iterate(coarse, coarse.a, coarse.b, eps, tol, max_iter, scaling)
        f0 = ms.extend(prob, coarse, run.g, eps)
        options, levels = {"init": f0, "omega": run.omega, "cap": run.cap}, 1
        budget -= 1
    if floor > 0:
        options["floor"] = max(floor, tol / 4)
    try:
        run = loop(prob, *args, budget, scaling, **options)
    except FloatingPointError:  # the stored kernel cannot hold this eps: the log domain can
        prob, exact = exact, None
        run = loop(prob, *args, max_iter, scaling)
    run = run._replace(n_iter=run.n_iter + levels)
    if exact is not None:
        run = _exact_sweeps(prob, a, b, eps, tol, max_iter, run, symmetric,
                            run.omega if floor > 0 else 1.0)
    f, g, err, n_iter, converged, excess = run[:6]
    if not (math.isfinite(err) and _all_finite(f) and _all_finite(g)):
        converged = False
    if not converged:
        warn_not_converged(
            what,
            f"the L1 marginal error {err:.3g} is above tol={tol:g} after max_iter={max_iter} "
            "Sinkhorn sweeps; raise max_iter, raise eps, or loosen tol",
        )
    return Run(f, g, err, n_iter, converged, excess)


def check_options(tol, max_iter, eps_scaling) -> None:
    """The loop's options: tol > 0, max_iter an int >= 1, eps_scaling in (0, 1) or None."""
    check_positive(tol, "tol")
    check_int(max_iter, "max_iter")
    if eps_scaling is not None:
        s = check_positive(eps_scaling, "eps_scaling")
        if s >= 1:
            raise ValueError(f"eps_scaling must be in (0, 1) or None, got {s}")
