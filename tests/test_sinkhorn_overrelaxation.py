"""The oscillation guard on the over-relaxation ω (otdiv/ot/overrelaxation.py).

Truth: the closed form of SOR on a consistently ordered two-block linear iteration — the
over-relaxed alternating update g ← (1−ω) g + ω Kᵀf, f ← (1−ω) f + ω K g with K = diag(σ)
has rates μ with (μ + ω − 1)² = μ ω² σ², optimum ω* = 2 / (1 + sqrt(1 − σ_max²)) —
simulated here; and, end to end, a Sinkhorn problem that oscillates at the rate formula's
ω, the nested supports of tests/test_sinkhorn_range.py (which need ω at its cap), and the
returned plan's error recomputed densely.
"""

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import otdiv
import otdiv.ot.sinkhorn as loops
from otdiv.ot.overrelaxation import oscillation_omega


def _omega_opt(lam):
    return 2.0 / (1.0 + math.sqrt(1.0 - lam))


def _sor_errors(sigma, omega, sweeps, rng):
    """L1 errors |f| of the over-relaxed alternating linear iteration (fixed point 0), whose
    modes K = diag(σ) start with amplitudes 1, 0.1, 0.01, ... (a dominant mode, as near the
    end of a Sinkhorn run; above the optimum every mode keeps the modulus ω − 1)."""
    scale = 0.1 ** np.arange(len(sigma))
    f, g = scale * (rng.random(len(sigma)) + 0.5), scale * (rng.random(len(sigma)) + 0.5)
    out = []
    for _ in range(sweeps):
        g = (1 - omega) * g + omega * sigma * f
        f = (1 - omega) * f + omega * sigma * g
        out.append(float(np.abs(f).sum()))
    return out


def _lam_from_period(omega, period):
    return 2 * (omega - 1) * (1 + math.cos(math.pi / period)) / omega**2


@pytest.mark.parametrize(("lam", "omega"), [(0.98, 1.98), (0.9, 1.9), (0.95, 1.7)])
def test_the_optimum_is_read_off_the_oscillation(rng, lam, omega):
    sigma = np.sqrt(lam * np.array([1.0, 0.8, 0.5]))
    assert omega > _omega_opt(lam)  # above the optimum: complex rates of modulus ω − 1
    got = oscillation_omega(_sor_errors(sigma, omega, 120, rng), omega)
    assert got is not None
    # the period T = π/θ, cos θ = (ω²λ − 2(ω − 1)) / (2(ω − 1)), is measured from maxima at
    # whole sweeps: T within ±1/2, so ω within the optima of those two periods
    theta = math.acos((omega**2 * lam - 2 * (omega - 1)) / (2 * (omega - 1)))
    period = math.pi / theta
    lo = _omega_opt(_lam_from_period(omega, max(period - 0.5, 1.01)))
    hi = _omega_opt(min(_lam_from_period(omega, period + 0.5), 1.0))
    assert lo - 1e-9 <= got <= hi + 1e-9
    assert abs(got - _omega_opt(lam)) < abs(omega - _omega_opt(lam))  # closer to ω*


def test_below_the_optimum_it_does_not_fire(rng):
    lam = 0.98
    omega = 0.95 * _omega_opt(lam)  # real rates, monotone decay
    assert oscillation_omega(_sor_errors(np.sqrt([lam, 0.5 * lam]), omega, 200, rng),
                             omega) is None


def test_a_slow_rise_a_plateau_and_a_floor_do_not_fire(rng):
    k = np.arange(300)
    # two modes: a fast one dies, a slow one surfaces: one dip, one slow rise, one maximum
    rise = np.abs(1e-2 * 0.999**k - 1e-2 * 0.9**k) + 1e-12
    # a plateau with wiggles of 1 % and a floor of rounding noise
    plateau = 1e-4 * (1 + 0.01 * np.sin(k))
    floor = 1e-6 * (1 + 0.3 * rng.random(300))
    for errors in (rise, plateau, floor):
        assert oscillation_omega(list(errors), 1.98) is None


def _uniform_cube(n):
    rng = np.random.default_rng(0)
    return rng.random((n, 3)), rng.random((n, 3))


def _dense_error(x, y, r, eps):
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    n, m = len(x), len(y)
    P = np.exp(np.log(1 / n) + np.log(1 / m) + (r.f[:, None] + r.g[None] - C) / eps)
    return np.abs(P.sum(1) - 1 / n).sum() + np.abs(P.sum(0) - 1 / m).sum()


def test_a_problem_oscillating_at_the_rate_formulas_omega_converges_with_fewer_sweeps(
        monkeypatch):
    # n = 2000 in the unit cube at eps = 0.001·Cmax: the rate formula asks for the cap 1.98,
    # above the optimum (measured: error maxima every 13.5 sweeps, envelope 0.98 a sweep)
    x, y = _uniform_cube(2000)
    eps = 0.001 * 3.0
    runs = {}
    for guard in (0, 8):
        monkeypatch.setattr(loops, "OSCILLATION", guard)
        runs[guard] = otdiv.sinkhorn(x, y, eps=eps, tol=1e-6, return_result=True)
    for r in runs.values():
        assert r.converged and r.marginal_error <= 1e-6
        np.testing.assert_allclose(r.marginal_error, _dense_error(x, y, r, eps), rtol=1e-6)
    assert runs[8].n_iter < 0.7 * runs[0].n_iter
    # two plans within L1 marginal error tol of the same optimum: values within ~tol·max C
    assert abs(runs[8].value - runs[0].value) <= 10 * 1e-6 * 3.0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_nested_supports_keep_omega_at_its_cap(monkeypatch, backend):
    # the slow monotone rise of nested supports is not the over-optimal oscillation: the
    # guard must not fire there (the run needs ω at its cap for ~1800 sweeps)
    sys.path.insert(0, str(Path(__file__).parent))
    from test_sinkhorn_range import supports

    fired = []
    real = loops.oscillation_omega

    def spy(errors, omega):
        out = real(errors, omega)
        if out is not None:
            fired.append(out)
        return out

    monkeypatch.setattr(loops, "oscillation_omega", spy)
    x, y = supports("nested", np.random.default_rng(3))
    cmax = ((x[:, None] - y[None]) ** 2).sum(-1).max()
    if backend == "torch":
        import torch

        x, y = torch.tensor(x), torch.tensor(y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = otdiv.sinkhorn(x, y, eps=1e-3 * cmax, tol=1e-6, return_result=True)
    assert r.converged and not fired
