"""Over-relaxed Sinkhorn steps, safeguarded by the dual: ω from a measured rate, one step.

A sweep h ← h + ω (T(h') − h) with ω in [1, 2): ω = 1 is plain Sinkhorn. Once the marginal
error decays geometrically at a measured rate r, the target ω is 2 / (1 + sqrt(1 − r)), the
optimal over-relaxation of the linearised iteration (Thibault et al. 2017), whose rate is
ω − 1 instead of r. Far from the solution each half-step is safeguarded with the dual D as a
Lyapunov function (Lehmann et al. 2021): :func:`relaxed` takes the largest ω of ω_target,
1 + (ω_target − 1)/2, ..., 1 whose ascent is at least ``ASCENT`` times the plain step's. The
over-relaxed g overshoots: near the fixed point its plan's error is up to 2 / (2 − ω) times
that of the plain g (:func:`plain_window`), so the loop also measures the plain plan there.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv.ot.geometry import bregman

OMEGA_MAX = 1.98  # over-relaxation cap: the linearised rate ω − 1 stays <= 0.98
ASCENT = 0.01  # an over-relaxed half-step must raise the dual by 1 % of the plain step's rise
PLAIN_EVERY = 4  # in the plain window, the plain plan is measured every 4th sweep (and the last)
HALVINGS = 4  # ω − 1 halved at most this often before the plain step is taken
ENVELOPE = 0.5  # an oscillation's envelope decays at (ω − 1)^κ, κ in [1 − ENVELOPE, 1 + ENVELOPE]
DIP = 0.5  # ... and dips between its maxima to at most DIP times the later one

def plain_window(omega: float) -> float:
    """How far above tol an over-relaxed plan's error may be while the plain plan at the same
    f can already be within tol (its error is about (2 − ω) / 2 times as large)."""
    return 2.0 / (2.0 - omega)


def omega_cap(f) -> float:
    """OMEGA_MAX in float64; 1.9 in float32, whose rounding the linearised rate ω − 1 near 1
    would amplify by 1 / (2 − ω)."""
    return OMEGA_MAX if f.dtype == np.float64 or str(f.dtype) == "torch.float64" else 1.9


def omega_from_rate(mu: float, omega: float, cap: float) -> float:
    """The optimal ω for the plain rate λ implied by the rate mu observed under omega.

    The linearised over-relaxed iteration's rates mu solve (mu + ω − 1)² = mu ω² λ for each
    rate λ of plain Sinkhorn (real for ω below the optimum 2 / (1 + sqrt(1 − λ))), so one
    observed rate gives λ back; ω = 1 observes λ itself.
    """
    lam = min(max((mu + omega - 1.0) ** 2 / (mu * omega**2), 0.0), 1.0)
    return min(cap, 2.0 / (1.0 + math.sqrt(1.0 - lam)))


def relaxed(w, h, h_plain, omega, eps):
    """h + ω' (h_plain − h) for the largest ω' in ω, 1 + (ω − 1)/2, ..., 1 that raises the dual
    D by at least ``ASCENT`` times the plain step (ω' = 1) does.

    With δ = (h_plain − h)/eps, the block of D in h changes by eps Σ w (φ(−δ) − φ((ω'−1)δ)),
    φ(t) = e^t − 1 − t (the plain step, ω' = 1, maximises the block: eps Σ w φ(−δ)). The test
    Σ w φ((ω'−1)δ) <= (1 − ASCENT) Σ w φ(−δ) costs O(n), no soft-min.
    """
    delta = (h_plain - h) / eps
    gain = float((w * bregman(-delta)).sum())
    step = omega - 1.0
    for _ in range(HALVINGS):
        if float((w * bregman(step * delta)).sum()) <= (1.0 - ASCENT) * gain:
            return h + (1.0 + step) * (h_plain - h)
        step *= 0.5
    return h_plain



def oscillation_omega(errors, omega: float) -> float | None:
    """The optimal ω read off an over-relaxed iteration that oscillates, or None when the
    errors (oldest first, ω > 1 throughout) do not show the over-optimal oscillation.

    Above its optimum 2 / (1 + sqrt(1 − λ)) the linearised iteration's dominant rates are the
    complex pair μ = (ω − 1) e^{±iθ} of (μ + ω − 1)² = μ ω² λ, so
    cos θ = (ω² λ − 2 (ω − 1)) / (2 (ω − 1)): the error behaves as (ω − 1)^k |cos(kθ + φ)|,
    with maxima every T = π / θ sweeps, zeros between them, and an envelope decaying at
    exactly ω − 1 a sweep. All three are checked on the last three maxima of the error that
    each follow a dip to ``DIP`` times their value at most: spaced alike (within a quarter,
    T their mean spacing), and decaying at (ω − 1)^κ per sweep with |κ − 1| <= ``ENVELOPE``.
    A slow monotone rise has one maximum, not three evenly spaced; a stall at a rounding
    floor or wiggles on a plateau neither dip nor decay at ω − 1. Then
    λ = 2 (ω − 1)(1 + cos(π / T)) / ω², and the ω returned is its optimum, <= ω.
    """
    r = omega - 1.0
    if r <= 0.0 or len(errors) < 7:
        return None
    e = [math.log(max(v, 1e-300)) for v in errors]
    peaks, low = [], e[0]
    for k in range(1, len(e) - 1):
        low = min(low, e[k])
        if e[k - 1] < e[k] > e[k + 1] and low <= e[k] + math.log(DIP):
            peaks.append(k)
            low = e[k]
    if len(peaks) < 3:
        return None
    p1, p2, p3 = peaks[-3:]
    if abs((p3 - p2) - (p2 - p1)) > 0.25 * max(p3 - p2, p2 - p1):
        return None
    period = 0.5 * (p3 - p1)
    kappa = (e[p3] - e[p1]) / ((p3 - p1) * math.log(r))  # envelope = r^kappa a sweep
    if abs(kappa - 1.0) > ENVELOPE:
        return None
    lam = min(2.0 * r * (1.0 + math.cos(math.pi / period)) / omega**2, 1.0)
    return min(omega, 2.0 / (1.0 + math.sqrt(1.0 - lam)))
