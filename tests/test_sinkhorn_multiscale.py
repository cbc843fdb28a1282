"""The large-cloud strategies of the OT core at small sizes: the multiscale warm start, the
float32 online soft-min with its exact finish, the carried over-relaxation, and the
vectorised ⟨P, C⟩.

Truth: POT's ``ot.solve`` (entropic value at the same eps) and a dense plan built here from
the returned potentials (the marginal error is recomputed from it); the float32 soft-min is
checked against the float64 one within the float32 rounding bound.
"""

import warnings

import numpy as np
import ot
import pytest
from _problems import cost, marginal_error, weighted_clouds

from otdiv.kernels.softmin_numba import plan_cost_points, softmin_points, softmin_points32
from otdiv.ot.geometry import NumbaClouds, NumbaClouds32, geometry
from otdiv.ot.sinkhorn import iterate, solve
from otdiv.ot.sinkhorn_multiscale import kd_clusters


def test_kd_clusters_keep_the_mass_and_the_mean(rng):
    x, _, a, _ = weighted_clouds(rng, 300, 250, zeros=True)
    centroids, mass = kd_clusters(x, a, leaf=8)
    np.testing.assert_allclose(mass.sum(), a.sum(), rtol=1e-12)
    np.testing.assert_allclose(mass @ centroids, a @ x, rtol=1e-12)  # first moment kept
    assert (mass > 0).all() and len(mass) >= (a > 0).sum() / 8
    assert (centroids >= x.min(0) - 1e-12).all() and (centroids <= x.max(0) + 1e-12).all()


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # POT's log(0) weights
@pytest.mark.parametrize("multiscale", [True, False])
@pytest.mark.parametrize("float32", [True, False])
@pytest.mark.parametrize("zeros", [False, True])
def test_strategies_match_pot_and_report_themarginal_error(rng, multiscale, float32, zeros):
    x, y, a, b = weighted_clouds(rng, 300, 250, zeros=zeros)
    C = cost(x, y)
    eps, tol = 0.02 * C.max(), 1e-8
    geo = NumbaClouds(x, y, a, b, 2.0)
    if float32:
        geo = NumbaClouds32(geo)
    run = solve(geo, a, b, eps, tol, 10_000, 0.5, "test", multiscale=multiscale)
    assert run.converged
    # the reported error is the returned plan's, recomputed densely
    true = marginal_error(C, a, b, run.f, run.g, eps)
    np.testing.assert_allclose(run.error, true, rtol=1e-6, atol=1e-15)
    assert true <= tol
    value = float(a @ run.f + b @ run.g) - eps * run.excess
    pot = ot.solve(C, a, b, reg=eps, tol=1e-13, max_iter=100_000)
    # two duals within marginal error tol of the same optimum: |Δ| <= ~tol · (max C + eps)
    assert abs(value - float(pot.value)) <= 10 * tol * C.max()


def test_float32_softmin_within_its_rounding_bound(rng):
    x, y, _, b = weighted_clouds(rng, 200, 150)
    g = rng.normal(size=150) * 0.1
    for eps in (0.5, 0.02, 0.002):
        h = np.log(b) + g / eps
        exact = softmin_points(x, np.ascontiguousarray(y.T), h, eps, 2.0)
        f32 = np.float32
        got = softmin_points32(x.astype(f32), np.ascontiguousarray(y.T).astype(f32),
                               h.astype(f32), eps, 2.0)
        # each exponent h_j − C_ij/eps is rounded to float32 (2^-24 relative, a few times:
        # h, C, the product and the difference), the exp polynomial adds ~2^-22
        bound = 2.0**-21 * (np.abs(h).max() + cost(x, y).max() / eps) + 2.0**-20
        assert np.abs(got - exact).max() <= bound


def test_float32_floor_below_tol_is_finished_by_the_exact_kernel(rng):
    # tol far below float32's floor: the float32 loop stops at its floor (or a stall) and
    # the exact kernel takes the plan to tol, within max_iter
    x, y, a, b = weighted_clouds(rng, 200, 180)
    C = cost(x, y)
    eps, tol = 0.01 * C.max(), 1e-11
    geo = NumbaClouds32(NumbaClouds(x, y, a, b, 2.0))
    assert geo.floor(eps) > tol
    run = solve(geo, a, b, eps, tol, 10_000, 0.5, "test")
    assert run.converged and marginal_error(C, a, b, run.f, run.g, eps) <= tol


def test_max_iter_on_the_new_paths_never_hides_a_non_converged_plan(rng):
    x, y, a, b = weighted_clouds(rng, 200, 180)
    C = cost(x, y)
    eps = 0.005 * C.max()
    geo = NumbaClouds32(NumbaClouds(x, y, a, b, 2.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = solve(geo, a, b, eps, 1e-9, 12, 0.5, "test", multiscale=True)
    assert not run.converged and run.n_iter <= 12 and caught
    np.testing.assert_allclose(run.error, marginal_error(C, a, b, run.f, run.g, eps), rtol=1e-6)


def test_carried_omega_reaches_the_same_plan(rng):
    x, y, a, b = weighted_clouds(rng, 150, 120)
    C = cost(x, y)
    eps, tol = 0.02 * C.max(), 1e-10
    geo = NumbaClouds(x, y, a, b, 2.0)
    f0 = geo.rows(np.zeros(120), eps)
    plain = iterate(geo, a, b, eps, tol, 10_000, None, init=f0)
    carried = iterate(geo, a, b, eps, tol, 10_000, None, init=f0, omega=1.6)
    assert plain.converged and carried.converged
    for run in (plain, carried):
        assert marginal_error(C, a, b, run.f, run.g, eps) <= tol
    # potentials of two plans within tol of the same fixed point (up to the constant shift)
    shift = np.mean(plain.f - carried.f)
    np.testing.assert_allclose(plain.f - shift, carried.f, atol=1e3 * tol * eps)


def test_the_table_picks_float32_online_only_for_large_unstored_clouds(rng):
    x, y, a, b = weighted_clouds(rng, 60, 50)
    eps = 0.05
    assert isinstance(geometry("numpy", x=x, y=y, a=a, b=b, p=2.0, eps=eps, tol=1e-6,
                               budget=1), NumbaClouds32)
    assert not isinstance(geometry("numpy", x=x, y=y, a=a, b=b, p=2.0, eps=eps, tol=1e-6),
                          NumbaClouds32)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_plan_cost_points_matches_the_dense_sum(rng, p):
    x, y, a, b = weighted_clouds(rng, 120, 90)
    C = cost(x, y, p)
    eps = 0.05 * C.max()
    u = np.log(a) + rng.normal(size=120) * 0.2
    v = np.log(b) + rng.normal(size=90) * 0.2
    ref = (np.exp(u[:, None] + v[None] - C / eps) * C).sum()
    got = plan_cost_points(x, np.ascontiguousarray(y.T), u, v, eps, p)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("oscillation", [0, 12])
def test_the_oscillation_guard_reaches_pot_s_plan(rng, monkeypatch, oscillation):
    # small eps: the rate formula drives ω to its cap, above the optimum; the guard lowers
    # it on an error rise. With or without it the loop ends at POT's fixed point
    import otdiv.ot.sinkhorn as sinkhorn_loops

    monkeypatch.setattr(sinkhorn_loops, "OSCILLATION", oscillation)
    x, y = rng.random((120, 3)), rng.random((120, 3)) + 0.2
    a = np.full(120, 1 / 120)
    C = cost(x, y)
    eps, tol = 0.002 * C.max(), 1e-9
    run = solve(NumbaClouds(x, y, a, a, 2.0), a, a, eps, tol, 10_000, 0.5, "test")
    assert run.converged and marginal_error(C, a, a, run.f, run.g, eps) <= tol
    pot = ot.solve(C, a, a, reg=eps, tol=1e-12, max_iter=200_000)
    value = float(a @ run.f + a @ run.g) - eps * run.excess
    assert abs(value - float(pot.value)) <= 10 * tol * C.max()
