"""Kernel truncation (otdiv/ot/truncation.py, kernels/softmin_blocks_numba.py) at small sizes.

Truth: a dense log-domain soft-min computed here with scipy's ``logsumexp`` from the cost
matrix (the certified bound lse − log(1 + delta) <= truncated <= lse is checked entry by
entry), POT's ``ot.solve`` at the same eps, and the returned plan rebuilt densely from the
potentials (its marginal error must be the one reported).
"""

from itertools import pairwise

import numpy as np
import ot
import pytest
from _problems import cost, marginal_error, weighted_clouds
from scipy.special import logsumexp

import otdiv
from otdiv.ot import truncation
from otdiv.ot.geometry import NumbaClouds, geometry
from otdiv.ot.kdtree import kd_permutation
from otdiv.ot.sinkhorn import solve
from otdiv.ot.truncation import TruncatedClouds


def _dense_softmin(C, w, g, eps):
    """T_w(g)_i = −eps log Σ_j w_j exp((g_j − C_ij)/eps), zero weights dropped."""
    keep = w > 0
    return -eps * logsumexp(np.log(w[keep]) + (g[keep] - C[:, keep]) / eps, axis=1)


def test_kd_permutation_is_a_permutation_into_tight_leaves(rng):
    x = rng.random((1000, 3))
    perm, bounds = kd_permutation(x, leaf=16)
    assert np.array_equal(np.sort(perm), np.arange(1000))
    assert bounds[0] == 0 and bounds[-1] == 1000 and (np.diff(bounds) <= 16).all()
    # a leaf's box is far smaller than the cloud's: volume about 16/1000 of the cube's
    xs = x[perm]
    vol = [np.prod(np.ptp(xs[lo:hi], axis=0)) for lo, hi in pairwise(bounds)]
    assert np.median(vol) < 0.05


@pytest.mark.parametrize("p", [1.0, 2.0])
@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("tol", [1e-6, 1e-2])
def test_truncated_softmin_within_its_certified_bound(rng, p, zeros, tol):
    x, y, a, b = weighted_clouds(rng, 700, 600, zeros=zeros, shift=0.1)
    C = cost(x, y, p)
    eps = 0.001 * C.max()
    geo = TruncatedClouds(NumbaClouds(x, y, a, b, p), tol, leaf=16)
    g = _dense_softmin(C.T, a, np.zeros(len(x)), eps)  # a c-transform: realistic potentials
    f = _dense_softmin(C, b, g, eps)
    got_f, got_g = geo.rows(g, eps), geo.cols(f, eps)
    assert geo.kept < geo.pairs / 2  # most block pairs were skipped: the bound is exercised
    rounding = 1e-12 * (C.max() + eps)
    for got, ref in ((got_f, f), (got_g, _dense_softmin(C.T, a, f, eps))):
        # the skipped mass is <= delta of the sum: T <= T~ <= T + eps log(1 + delta)
        assert (got >= ref - rounding).all()
        assert (got <= ref + eps * np.log1p(geo.delta) + rounding).all()


@pytest.mark.parametrize("zeros", [False, True])
def test_truncated_solve_reports_the_returned_plans_error_and_matches_pot(rng, zeros):
    x, y, a, b = weighted_clouds(rng, 400, 300, d=2, zeros=zeros, shift=0.1)
    C = cost(x, y)
    eps, tol = 0.002 * C.max(), 1e-7
    exact = NumbaClouds(x, y, a, b, 2.0)
    geo = TruncatedClouds(exact, tol, leaf=8)
    run = solve(geo, a, b, eps, tol, 10_000, 0.5, "test")
    assert run.converged and geo.kept < 0.8 * geo.pairs
    true = marginal_error(C, a, b, run.f, run.g, eps)
    np.testing.assert_allclose(run.error, true, rtol=1e-6, atol=1e-15)
    assert true <= tol
    full = solve(exact, a, b, eps, tol, 10_000, 0.5, "test")  # truncation off
    sa, sb = a > 0, b > 0  # POT on the supports (it would give zero weights a small mass)
    pot = ot.solve(C[sa][:, sb], a[sa], b[sb], reg=eps, tol=1e-13, max_iter=200_000)
    for r in (run, full):
        value = float(a @ r.f + b @ r.g) - eps * r.excess
        # two duals within marginal error tol of the same optimum: |Δ| <= ~tol · max C
        assert abs(value - float(pot.value)) <= 10 * tol * C.max()
    # on the support the potentials of the two runs agree up to the shared constant, within
    # what tol allows a dual (the plan's marginals move each f_i by ~eps·tol/a_i)
    shift = np.mean(run.f[sa] - full.f[sa])
    assert np.abs(run.f[sa] - full.f[sa] - shift).max() <= eps * tol / a[sa].min() * 10
    assert np.abs(run.g[sb] - full.g[sb] + shift).max() <= eps * tol / b[sb].min() * 10


def test_the_table_truncates_large_online_clouds_at_small_eps_only(rng, monkeypatch):
    monkeypatch.setattr(truncation, "MIN_POINTS", 50)
    x, y, a, b = weighted_clouds(rng, 60, 50, shift=0.1)
    cmax = NumbaClouds(x, y, a, b, 2.0).cmax
    kw = dict(x=x, y=y, a=a, b=b, p=2.0, tol=1e-6, budget=1)
    assert isinstance(geometry("numpy", eps=0.001 * cmax, **kw), TruncatedClouds)
    assert not isinstance(geometry("numpy", eps=0.01 * cmax, **kw), TruncatedClouds)
    assert not isinstance(geometry("numpy", eps=0.001 * cmax, **{**kw, "budget": 1 << 25}),
                          TruncatedClouds)


def test_public_call_with_truncation_matches_pot(rng, monkeypatch):
    monkeypatch.setattr(truncation, "MIN_POINTS", 100)
    monkeypatch.setattr(truncation, "LEAF", 16)
    x, y, a, b = weighted_clouds(rng, 400, 300, d=2, zeros=True, shift=0.1)
    C = cost(x, y)
    eps = 0.002 * C.max()
    r = otdiv.sinkhorn(x, y, a, b, eps=eps, tol=1e-7, memory_budget=8, return_result=True)
    assert r.converged and r.marginal_error <= 1e-7
    np.testing.assert_allclose(r.marginal_error, marginal_error(C, a, b, r.f, r.g, eps),
                               rtol=1e-6, atol=1e-15)
    sa, sb = a > 0, b > 0
    pot = ot.solve(C[sa][:, sb], a[sa], b[sb], reg=eps, tol=1e-13, max_iter=200_000)
    assert abs(r.value - float(pot.value)) <= 10 * 1e-7 * C.max()
