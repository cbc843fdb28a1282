"""Entropic OT: otdiv.sinkhorn, sinkhorn_divergence and transport(eps=...).

Truths: POT (ot.solve with reg=eps, ot.sinkhorn2), GeomLoss (cost ‖x−y‖²/2, eps = blur²),
exact OT (POT emd) as eps → 0, scipy's logsumexp for the kernels, finite differences for
gradients, and invariants (S_eps ≥ 0, marginals recomputed from the plan, zero weights).
"""

import itertools
import warnings

import numpy as np
import ot
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import logsumexp

import otdiv
from otdiv import ConvergenceWarning, sinkhorn, sinkhorn_divergence, transport


def cloud(rng, n, d, shift=0.0):
    return rng.random((n, d)) + shift


def weights(rng, n):
    w = rng.random(n) + 0.1
    return w / w.sum()


def sqdist(x, y, p=2.0):
    return ot.dist(x, y, metric="euclidean") ** p


def plan_errors(P, a, b):
    return np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()


# ---------------------------------------------------------------------------- against POT


# the numba backend's two kernels: the stored (scaling-domain) Gibbs kernel, and the online
# log-domain one that a budget of one entry (8 bytes) forces
NUMBA_PATHS = pytest.mark.parametrize("budget", [1 << 25, 1], ids=["gibbs", "online"])
# budgets below are in stored entries; memory_budget takes bytes, 8 an entry


@NUMBA_PATHS
@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
@pytest.mark.parametrize("d", [1, 3])
def test_value_and_transport_cost_match_pot(rng, p, d, budget):
    x, y = cloud(rng, 60, d), cloud(rng, 45, d, 0.3)
    a, b = weights(rng, 60), weights(rng, 45)
    C = sqdist(x, y, p)
    eps = 0.05 * C.max()
    res = sinkhorn(x, y, a, b, eps=eps, p=p, tol=1e-10, return_result=True,
                   memory_budget=8 * budget)
    pot = ot.solve(C, a, b, reg=eps, tol=1e-13, max_iter=100_000)
    np.testing.assert_allclose(res.value, float(pot.value), rtol=1e-8)
    cost2 = ot.sinkhorn2(a, b, C, eps, method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)
    np.testing.assert_allclose(res.transport_cost, float(cost2), rtol=1e-7)
    assert res.converged and res.marginal_error <= 1e-10


def test_transport_entropic_matches_pot_with_unnormalized_equal_masses(rng):
    a, b = 3 * weights(rng, 30), 3 * weights(rng, 20)
    C = rng.random((30, 20)) * 4 - 1  # any finite cost, negative entries included
    res = transport(a, b, C, eps=0.1, tol=1e-11)
    plan = ot.bregman.sinkhorn_log(a, b, C, 0.1, stopThr=1e-14, numItermax=100_000)
    kl = (plan * np.log(plan / np.outer(a, b))).sum()  # plain KL, as POT's ot.solve
    np.testing.assert_allclose(res.value, (plan * C).sum() + 0.1 * kl, rtol=1e-8)
    np.testing.assert_allclose(res.transport_cost, (plan * C).sum(), rtol=1e-8)
    np.testing.assert_allclose(res.plan, plan, atol=1e-9)


def test_transport_matches_point_cloud_solver(rng):
    x, y = cloud(rng, 25, 2), cloud(rng, 35, 2)
    C = sqdist(x, y)
    a, b = np.full(25, 1 / 25), np.full(35, 1 / 35)
    t = transport(a, b, C, eps=0.02, tol=1e-11)
    s = sinkhorn(x, y, eps=0.02, tol=1e-11, return_result=True)
    np.testing.assert_allclose(t.value, s.value, rtol=1e-9)
    np.testing.assert_allclose(t.f + t.g.mean(), s.f + s.g.mean(), atol=1e-8)


# ---------------------------------------------------------------------------- GeomLoss


@pytest.mark.parametrize("debias", [False, True])
def test_geomloss_after_converting_conventions(rng, debias):
    from geomloss import SamplesLoss

    x, y = cloud(rng, 40, 2), cloud(rng, 30, 2, 0.2)
    blur = 0.2
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, debias=debias, scaling=0.99,
                       backend="tensorized")
    theirs = 2 * loss(torch.tensor(x), torch.tensor(y)).item()  # their cost is ‖x−y‖²/2
    fn = sinkhorn_divergence if debias else sinkhorn
    ours = fn(x, y, eps=2 * blur**2, tol=1e-10)  # their eps = blur^p, in units of ‖x−y‖²/2
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


# ---------------------------------------------------------------------------- invariants


@NUMBA_PATHS
@pytest.mark.parametrize("tol", [1e-6, 1e-9])  # float32 and float64 Gibbs kernels
def test_result_fields_are_consistent_with_the_plan(rng, budget, tol):
    x, y = cloud(rng, 50, 2), cloud(rng, 40, 2, 0.5)
    a, b = weights(rng, 50), weights(rng, 40)
    eps = 0.01
    res = sinkhorn(x, y, a, b, eps=eps, tol=tol, return_result=True, memory_budget=8 * budget)
    assert res.method == ("sinkhorn_scaling/numba" if budget > 1 else "sinkhorn_log/numba")
    P, C = res.plan, sqdist(x, y)
    np.testing.assert_allclose(res.marginal_error, plan_errors(P, a, b), rtol=1e-6, atol=1e-14)
    assert res.marginal_error <= tol
    np.testing.assert_allclose(res.transport_cost, (P * C).sum(), rtol=1e-10)
    primal = (P * C).sum() + eps * (P * np.log(P / np.outer(a, b))).sum()
    np.testing.assert_allclose(res.value, primal, rtol=1e-5)
    np.testing.assert_allclose(res.value, a @ res.f + b @ res.g, rtol=1e-12)
    np.testing.assert_allclose(P, np.outer(a, b) * np.exp((res.f[:, None] + res.g - C) / eps),
                               rtol=1e-10)


@pytest.mark.parametrize("rel_eps", [1e-1, 1e-2, 1e-3])
def test_bracketed_by_exact_ot(rng, rel_eps):
    # W ≤ OT_eps ≤ W + eps·min(H(a), H(b)) (KL of the exact plan to a⊗b is at most that)
    n, m = 40, 30
    x, y = cloud(rng, n, 2), cloud(rng, m, 2, 0.4)
    C = sqdist(x, y)
    exact = ot.emd2(np.full(n, 1 / n), np.full(m, 1 / m), C)
    eps = rel_eps * C.max()
    res = sinkhorn(x, y, eps=eps, tol=1e-8, return_result=True)
    assert exact - 1e-12 <= res.value <= exact + eps * np.log(m) + 1e-12
    assert exact - 1e-12 <= res.transport_cost <= res.value + 1e-12


def test_converges_to_exact_ot_as_eps_shrinks(rng):
    x, y = cloud(rng, 20, 2), cloud(rng, 20, 2, 0.3)
    exact = otdiv.wasserstein(x, y, p=2) ** 2
    cmax = sqdist(x, y).max()
    gaps = [sinkhorn(x, y, eps=e * cmax) - exact for e in (1e-1, 1e-2, 1e-3)]
    assert all(g2 < g1 for g1, g2 in itertools.pairwise(gaps))
    assert 0 <= gaps[-1] <= 1e-3 * cmax * np.log(20)


point_clouds = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, (n, 2), elements=st.floats(-1, 1)),
        arrays(np.float64, (n, 2), elements=st.floats(-1, 1)),
    )
)


@settings(max_examples=10)
@given(point_clouds, st.sampled_from([0.2, 1.0, 5.0]))
def test_divergence_is_nonnegative_and_zero_on_identical_inputs(xy, eps):
    # tol 1e-4: on clusters far apart relative to eps (e.g. x = [[1, -.5], [-.5, -.5] x 2] at
    # eps = 0.2) Sinkhorn's linear rate is 1 - O(exp(-Cmax/eps)), and 1e-6 takes more than
    # 10,000 sweeps; the solver then warns, as it must, which this suite turns into an error
    x, y = xy
    cmax = float(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).max())
    # beyond eps ~ 1e11·Cmax at tol 1e-4 float64 cannot resolve the plan and Sinkhorn refuses
    # with a ValueError (tests/test_sinkhorn_range.py); hypothesis finds such pairs, e.g.
    # x = [[0, 0]], y = [[1e-9, 1e-9]] at eps = 0.2
    assume(cmax == 0 or eps / cmax < 1e9)
    s = sinkhorn_divergence(x, y, eps=eps, tol=1e-4)
    assert s >= 0.0
    np.testing.assert_allclose(sinkhorn_divergence(x, x, eps=eps, tol=1e-4), 0.0, atol=1e-7)


@settings(max_examples=10)
@given(point_clouds)
def test_shift_of_both_clouds_changes_nothing(xy):
    x, y = xy
    shift = np.array([1.5, -0.7])
    np.testing.assert_allclose(sinkhorn(x + shift, y + shift, eps=0.3, tol=1e-10),
                               sinkhorn(x, y, eps=0.3, tol=1e-10), rtol=1e-7, atol=1e-10)


@NUMBA_PATHS
def test_zero_weights_equal_dropping_the_points(rng, budget):
    x, y = cloud(rng, 20, 2), cloud(rng, 15, 2)
    a, b = weights(rng, 20), weights(rng, 15)
    a[[3, 7, 11]] = 0.0
    b[[0, 14]] = 0.0
    ka, kb = a > 0, b > 0
    full = sinkhorn(x, y, a, b, eps=0.05, tol=1e-11, memory_budget=8 * budget)
    dropped = sinkhorn(x[ka], y[kb], a[ka], b[kb], eps=0.05, tol=1e-11, memory_budget=8 * budget)
    np.testing.assert_allclose(full, dropped, rtol=1e-9)


def test_single_points_have_the_closed_form():
    # one point each: P = 1, KL = 0, OT_eps = ‖x − y‖^p for every eps
    np.testing.assert_allclose(sinkhorn(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), eps=0.1,
                                        p=1), 5.0, rtol=1e-12)


# ---------------------------------------------------------------------------- stability


def test_float64_small_eps_is_finite_and_close_to_exact(rng):
    # at eps = 1e-4·Cmax Sinkhorn is in its slow (sublinear) regime on small discrete
    # problems: ask for tol 1e-4 and check stability (no warning of any kind) and accuracy
    x, y = cloud(rng, 40, 2), cloud(rng, 40, 2, 0.3)
    C = sqdist(x, y)
    exact = ot.emd2(np.full(40, 1 / 40), np.full(40, 1 / 40), C)
    eps = 1e-4 * C.max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # also no overflow / underflow RuntimeWarning
        res = sinkhorn(x, y, eps=eps, tol=1e-4, return_result=True)
    assert res.converged and np.isfinite(res.f).all() and np.isfinite(res.g).all()
    np.testing.assert_allclose(res.value, exact, atol=eps * np.log(40) + 1e-4 * C.max())
    np.testing.assert_allclose(res.marginal_error, plan_errors(res.plan, np.full(40, 1 / 40),
                                                               np.full(40, 1 / 40)), rtol=1e-6)


@pytest.mark.parametrize("rel_eps", [1e-3, 1e-4])
def test_scaling_path_absorbs_far_clusters_at_small_eps(rng, rel_eps):
    # two clusters 30 apart, eps down to 1e-4·Cmax: exp(−C/eps) underflows to 0 for almost
    # every pair, so the stored kernel must be rebuilt around the potentials (absorption)
    x = np.concatenate([cloud(rng, 40, 2), cloud(rng, 25, 2, 30.0)])
    y = np.concatenate([cloud(rng, 30, 2, 0.2), cloud(rng, 35, 2, 30.3)])
    a, b = weights(rng, 65), weights(rng, 65)
    eps = rel_eps * sqdist(x, y).max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or underflow RuntimeWarning either
        gibbs = sinkhorn(x, y, a, b, eps=eps, tol=1e-5, max_iter=100_000, return_result=True)
        online = sinkhorn(x, y, a, b, eps=eps, tol=1e-5, max_iter=100_000, return_result=True,
                          memory_budget=8)
    assert gibbs.method == "sinkhorn_scaling/numba" and online.method == "sinkhorn_log/numba"
    assert gibbs.converged and np.isfinite(gibbs.f).all() and np.isfinite(gibbs.g).all()
    np.testing.assert_allclose(gibbs.value, online.value, rtol=1e-6)
    np.testing.assert_allclose(gibbs.marginal_error,
                               plan_errors(gibbs.plan, a, b), rtol=1e-6, atol=1e-14)


@pytest.mark.parametrize("tol", [1e-6, 1e-9])  # float32 and float64 Gibbs kernels
def test_scaling_path_zero_weight_points_far_away(rng, tol):
    # a zero-weight point is no part of the reference c-transforms, so its kernel entries are
    # not bounded by 1: squared at each halving of eps they overflowed (FloatingPointError or
    # NaN). Truths: the online path, and POT on the problem without those points.
    x = np.concatenate([cloud(rng, 30, 2), [[8.0, 8.0]], cloud(rng, 5, 2)])
    y = np.concatenate([cloud(rng, 25, 2, 0.2), [[8.0, 8.0], [-6.0, 9.0]]])
    a, b = weights(rng, 36), weights(rng, 27)
    a[30], b[[25, 26]] = 0.0, 0.0
    a, b = a / a.sum(), b / b.sum()
    ka, kb = a > 0, b > 0
    eps = 0.005
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gibbs = sinkhorn(x, y, a, b, eps=eps, tol=tol, return_result=True)
        online = sinkhorn(x, y, a, b, eps=eps, tol=tol, return_result=True, memory_budget=8)
    assert gibbs.method == "sinkhorn_scaling/numba" and gibbs.converged
    pot = ot.solve(sqdist(x[ka], y[kb]), a[ka] / a[ka].sum(), b[kb] / b[kb].sum(), reg=eps,
                   tol=1e-13, max_iter=100_000)
    np.testing.assert_allclose(gibbs.value, float(pot.value), rtol=1e-6)
    # the potentials at the zero-weight points are soft-mins, as on the online path
    np.testing.assert_allclose(gibbs.f, online.f, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gibbs.g, online.g, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gibbs.marginal_error, plan_errors(gibbs.plan, a, b), rtol=1e-6,
                               atol=1e-14)
    # one atom on itself, with a far zero-weight atom on each side: OT_eps = 0
    one = sinkhorn([0.0, 10.0], [0.0, 10.0], [1.0, 0.0], [1.0, 0.0], eps=0.01)
    assert one == 0.0


def test_scaling_path_reports_the_exact_error_at_every_max_iter():
    # tol 1e-7 (float32 kernel): the scaling loop may stop at an error that the exact kernel
    # measures above tol. Whatever max_iter, the returned error must be that of the returned
    # plan, and converged=True must mean that this error is <= tol.
    rng = np.random.default_rng(2)
    x, y = cloud(rng, 200, 2), cloud(rng, 150, 2)
    a, b = rng.random(200), rng.random(150)
    a, b = a / a.sum(), b / b.sum()
    lo, hi = np.minimum(x.min(0), y.min(0)), np.maximum(x.max(0), y.max(0))
    eps = float(np.linalg.norm(hi - lo)) ** 2 / 64  # annealing halves eps all the way down
    tol = 1e-7
    for max_iter in range(50, 66):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = sinkhorn(x, y, a, b, eps=eps, tol=tol, max_iter=max_iter, return_result=True)
        assert res.method == "sinkhorn_scaling/numba" and res.n_iter <= max_iter
        err = plan_errors(res.plan, a, b)
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-6, atol=1e-14)
        assert res.converged == (err <= tol)
        assert res.converged != any(issubclass(w.category, ConvergenceWarning) for w in caught)


def test_gibbs_kernels_against_numpy(rng):
    from otdiv.kernels import gibbs_numba as k

    x, y = rng.random((70, 3)), rng.random((90, 3))
    for p in (1.0, 2.0, 1.5):
        C = sqdist(x, y, p)
        g = rng.normal(size=90)
        F = k.ctransform(x, np.ascontiguousarray(y.T), g, p)
        np.testing.assert_allclose(F, (C - g).min(1), rtol=1e-12)
        G = k.ctransform(y, np.ascontiguousarray(x.T), F, p)
        np.testing.assert_allclose(G, (C - F[:, None]).min(0), rtol=1e-12)
        ref = np.exp((F[:, None] + G - C) / 0.01)
        assert ref.max() <= 1 + 1e-12 and np.allclose(ref.max(0), 1) and np.allclose(ref.max(1), 1)
        # float32: entries below its smallest normal (1e-38) round to subnormals or 0
        for dtype, rtol, atol in ((np.float64, 1e-12, 1e-300), (np.float32, 1e-6, 1e-37)):
            K = k.gibbs(x, np.ascontiguousarray(y.T), F, G, 0.01, p, np.empty((70, 90), dtype))
            np.testing.assert_allclose(K, ref, rtol=rtol, atol=atol)
            v, w = rng.random(90), rng.random(70)
            np.testing.assert_allclose(k.matvec(K, v), K.astype(float) @ v, rtol=1e-12)
            np.testing.assert_allclose(k.rmatvec(K, w), K.astype(float).T @ w, rtol=1e-12)
    # above PARALLEL_MIN_WORK the parallel twins run, over several row blocks with remainders
    K = rng.random((2051, 2050)).astype(np.float32)
    v, w = rng.random(2050), rng.random(2051)
    np.testing.assert_allclose(k.matvec(K, v), K.astype(float) @ v, rtol=1e-12)
    np.testing.assert_allclose(k.rmatvec(K, w), K.astype(float).T @ w, rtol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_float32_small_eps_is_finite_and_close_to_float64(rng, backend):
    x, y = cloud(rng, 50, 2), cloud(rng, 40, 2, 0.3)
    eps = 1e-3 * sqdist(x, y).max()
    ref = sinkhorn(x, y, eps=eps, tol=1e-9)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    v = sinkhorn(xt, yt, eps=eps, tol=1e-4, backend=backend)
    assert v.dtype == torch.float32 and torch.isfinite(v)
    np.testing.assert_allclose(v.item(), ref, rtol=2e-3)


def test_numba_kernel_float32_and_float64_against_scipy(rng):
    from otdiv.kernels.softmin_numba import softmin_dense, softmin_points

    x, y, h = rng.random((70, 3)), rng.random((90, 3)), rng.normal(size=90)
    for p in (1.0, 2.0, 1.5):
        C = sqdist(x, y, p)
        ref = logsumexp(h - C / 0.003, axis=1)
        got = softmin_points(x, np.ascontiguousarray(y.T), h, 0.003, p)
        np.testing.assert_allclose(got, ref, rtol=1e-13)
        np.testing.assert_allclose(softmin_dense(C, h, 0.003), ref, rtol=1e-13)
        x32, yt32 = x.astype(np.float32), np.ascontiguousarray(y.T.astype(np.float32))
        np.testing.assert_allclose(softmin_points(x32, yt32, h, 0.003, p), ref, rtol=1e-4)


# ---------------------------------------------------------------------------- convergence


def test_max_iter_warns_and_reports_not_converged(rng):
    x, y = cloud(rng, 30, 2), cloud(rng, 30, 2, 0.5)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = sinkhorn(x, y, eps=1e-3, max_iter=3, return_result=True)
    assert not res.converged and res.status == "max_iter_reached" and res.n_iter == 3
    assert res.marginal_error > 1e-6
    np.testing.assert_allclose(res.marginal_error, plan_errors(res.plan, np.full(30, 1 / 30),
                                                               np.full(30, 1 / 30)), rtol=1e-6)


def test_eps_scaling_saves_sweeps_at_small_eps(rng, monkeypatch):
    # the annealing alone, without the oscillation guard on ω (which, on here, cuts both
    # runs, 473 -> 241 and 549 -> 201 sweeps, and then the cold start wins: docs/sinkhorn.md)
    import otdiv.ot.sinkhorn as loops

    monkeypatch.setattr(loops, "OSCILLATION", 0)
    x, y = cloud(rng, 60, 2), cloud(rng, 60, 2, 0.3)
    with_scaling = sinkhorn(x, y, eps=2e-3, return_result=True)
    without = sinkhorn(x, y, eps=2e-3, eps_scaling=None, return_result=True)
    np.testing.assert_allclose(with_scaling.value, without.value, rtol=1e-5)
    assert with_scaling.n_iter < without.n_iter


# ---------------------------------------------------------------------------- torch


def test_torch_returns_a_tensor_matching_numpy(rng):
    x, y = cloud(rng, 30, 2), cloud(rng, 20, 2)
    ref = sinkhorn(x, y, eps=0.02, tol=1e-10)
    for backend in ("torch", "numba"):
        v = sinkhorn(torch.tensor(x), torch.tensor(y), eps=0.02, tol=1e-10, backend=backend)
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and v.dtype == torch.float64
        np.testing.assert_allclose(v.item(), ref, rtol=1e-9)
    chunked = sinkhorn(torch.tensor(x), torch.tensor(y), eps=0.02, tol=1e-10, memory_budget=8 * 50)
    np.testing.assert_allclose(chunked.item(), ref, rtol=1e-9)


@pytest.mark.parametrize("backend,budget", [("torch", 1 << 25), ("torch", 40), ("numba", 1 << 25),
                                            ("numba", 40)])
def test_gradients_match_finite_differences(rng, backend, budget):
    x = torch.tensor(cloud(rng, 12, 2), requires_grad=True)
    y = torch.tensor(cloud(rng, 9, 2, 0.3), requires_grad=True)
    a = torch.tensor(weights(rng, 12), requires_grad=True)
    b = torch.tensor(weights(rng, 9), requires_grad=True)

    def fn(x, y, a, b):
        return sinkhorn(x, y, a, b, eps=0.05, p=2, tol=1e-13, backend=backend,
                        memory_budget=8 * budget)

    assert torch.autograd.gradcheck(fn, (x, y, a, b), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_divergence_gradient_matches_finite_differences(rng):
    x = torch.tensor(cloud(rng, 10, 2), requires_grad=True)
    y = torch.tensor(cloud(rng, 8, 2, 0.3), requires_grad=True)

    def fn(x, y):
        return sinkhorn_divergence(x, y, eps=0.05, p=1.5, tol=1e-10)

    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_transport_torch_gradient_in_cost_is_the_plan(rng):
    a, b = torch.tensor(weights(rng, 8)), torch.tensor(weights(rng, 6))
    C = torch.tensor(rng.random((8, 6)), requires_grad=True)
    res = transport(a, b, C, eps=0.1, tol=1e-12)
    res.value.backward()
    np.testing.assert_allclose(C.grad.numpy(), res.plan, atol=1e-10)
    plan = ot.bregman.sinkhorn_log(a.numpy(), b.numpy(), C.detach().numpy(), 0.1, stopThr=1e-14)
    np.testing.assert_allclose(res.plan, plan, atol=1e-9)


def test_backward_does_not_keep_the_iterations(rng):
    # the graph holds x, y and the potentials only: one backward node past the solver
    x = torch.tensor(cloud(rng, 20, 2), requires_grad=True)
    v = sinkhorn(x, torch.tensor(cloud(rng, 20, 2)), eps=1e-2)
    names = set()
    stack = [v.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.add(type(node).__name__)
            stack.extend(f for f, _ in node.next_functions)
    assert not any("LogsumexpBackward" in n for n in names)


# ---------------------------------------------------------------------------- batched (torch)


def batch(rng, n_batch, n, m, d, scales=None):
    scales = np.ones(n_batch) if scales is None else np.asarray(scales)
    x = np.stack([cloud(rng, n, d) * s for s in scales])
    y = np.stack([cloud(rng, m, d, 0.3) * s for s in scales])
    a = np.stack([weights(rng, n) for _ in range(n_batch)])
    b = np.stack([weights(rng, m) for _ in range(n_batch)])
    return x, y, a, b


@pytest.mark.parametrize("p", [2.0, 1.5])
@pytest.mark.parametrize("budget", [1 << 25, 100])  # dense, and chunked rows
def test_batched_values_match_unbatched_and_pot(rng, p, budget):
    x, y, a, b = batch(rng, 3, 30, 22, 2)
    eps = 0.05
    res = sinkhorn(*map(torch.tensor, (x, y, a, b)), eps=eps, p=p, tol=1e-10,
                   memory_budget=8 * budget, return_result=True)
    assert res.value.shape == (3,) and res.converged.all()
    for k in range(3):
        C = sqdist(x[k], y[k], p)
        pot = ot.solve(C, a[k], b[k], reg=eps, tol=1e-13, max_iter=100_000)
        np.testing.assert_allclose(res.value[k].item(), float(pot.value), rtol=1e-8)
        one = sinkhorn(x[k], y[k], a[k], b[k], eps=eps, p=p, tol=1e-10, return_result=True)
        np.testing.assert_allclose(res.value[k].item(), one.value, rtol=1e-8)
        np.testing.assert_allclose(res.transport_cost[k], one.transport_cost, rtol=1e-7)
        # the reported per-problem error, recomputed from that problem's plan
        np.testing.assert_allclose(plan_errors(res.plan[k], a[k], b[k]),
                                   res.marginal_error[k], rtol=1e-3, atol=1e-14)


def test_batched_uniform_weights_and_float32(rng):
    x, y, _, _ = batch(rng, 2, 15, 15, 3)
    v = sinkhorn(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
                 eps=0.05, tol=1e-5)
    assert v.dtype == torch.float32 and v.shape == (2,)
    for k in range(2):
        pot = ot.solve(sqdist(x[k], y[k]), reg=0.05, tol=1e-12).value
        np.testing.assert_allclose(v[k].item(), float(pot), rtol=1e-4)


def test_batched_problems_converge_independently(rng):
    # problem 1 is shrunk 20x: its costs are tiny against eps, so it converges in a few sweeps
    x, y, a, b = batch(rng, 3, 25, 25, 2, scales=[1.0, 0.05, 1.0])
    eps, tol = 0.01, 1e-9
    xt, yt, at, bt = map(torch.tensor, (x, y, a, b))
    res = sinkhorn(xt, yt, at, bt, eps=eps, tol=tol, eps_scaling=None, return_result=True)
    assert res.converged.all() and (res.marginal_error <= tol).all()
    assert res.n_iter[1] * 5 < min(res.n_iter[0], res.n_iter[2])
    for k in range(3):
        # each problem is iterated exactly as if it were alone: same sweeps, same potentials
        alone = sinkhorn(xt[k:k + 1], yt[k:k + 1], at[k:k + 1], bt[k:k + 1], eps=eps, tol=tol,
                         eps_scaling=None, return_result=True)
        assert alone.n_iter[0] == res.n_iter[k]
        np.testing.assert_allclose(res.f[k], alone.f[0], rtol=1e-12, atol=1e-14)
        pot = ot.solve(sqdist(x[k], y[k]), a[k], b[k], reg=eps, tol=1e-13, max_iter=100_000)
        np.testing.assert_allclose(res.value[k].item(), float(pot.value), rtol=1e-7)


def test_batched_max_iter_warns_for_the_slow_problems_only(rng):
    x, y, a, b = batch(rng, 3, 25, 25, 2, scales=[1.0, 0.05, 1.0])
    with pytest.warns(ConvergenceWarning, match=r"problems \[0, 2\]"):
        res = sinkhorn(*map(torch.tensor, (x, y, a, b)), eps=0.001, tol=1e-9, max_iter=30,
                       return_result=True)
    assert res.converged.tolist() == [False, True, False]
    assert res.status == "max_iter_reached" and res.n_iter.max() == 30


@pytest.mark.parametrize("budget", [1 << 25, 20])
def test_batched_gradients_match_finite_differences(rng, budget):
    x, y, a, b = batch(rng, 2, 6, 5, 2)
    args = tuple(torch.tensor(v, requires_grad=True) for v in (x, y, a, b))

    def fn(x, y, a, b):  # the full (B,) Jacobian: cross-problem derivatives must be 0
        return sinkhorn(x, y, a, b, eps=0.1, tol=1e-13, memory_budget=8 * budget)

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_batched_bad_input_raises(rng):
    x, y, a, _ = batch(rng, 2, 4, 3, 2)
    with pytest.raises(ValueError, match=r"batched .* need torch tensors"):
        sinkhorn(x, y, eps=0.1)
    xt, yt = torch.tensor(x), torch.tensor(y)
    with pytest.raises(ValueError, match="backend='torch'"):
        sinkhorn(xt, yt, eps=0.1, backend="numba")
    with pytest.raises(ValueError, match="agree in B and d"):
        sinkhorn(xt, yt[:1], eps=0.1)
    with pytest.raises(ValueError, match="batched y must have shape"):
        sinkhorn(xt, yt[0], eps=0.1)
    with pytest.raises(ValueError, match="batched a must be a"):
        sinkhorn(xt, yt, torch.tensor(a[0]), eps=0.1)
    bad = torch.tensor(a)
    bad[1, 0] = -1.0
    with pytest.raises(ValueError, match=r"a\[1\] has negative weights"):
        sinkhorn(xt, yt, bad, eps=0.1)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"eps": 0.0}, ValueError, "eps must be a finite number > 0"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"eps": "big"}, TypeError, "eps"),
        ({"eps": 0.1, "tol": 0}, ValueError, "tol"),
        ({"eps": 0.1, "max_iter": 0}, ValueError, "max_iter"),
        ({"eps": 0.1, "eps_scaling": 1.5}, ValueError, "eps_scaling"),
        ({"eps": 0.1, "p": 0.5}, ValueError, "p must be"),
        ({"eps": 0.1, "backend": "keops"}, ValueError, "backend"),
        ({"eps": 0.1, "backend": "torch"}, ValueError, "backend='torch' needs torch"),
    ],
)
def test_bad_options_raise(kwargs, exc, match):
    x = np.zeros((3, 2))
    with pytest.raises(exc, match=match):
        sinkhorn(x, x, **kwargs)


def test_bad_arrays_raise():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="same dimension"):
        sinkhorn(x, np.zeros((3, 3)), eps=0.1)
    with pytest.raises(ValueError, match="a has negative weights"):
        sinkhorn(x, x, np.array([1.0, -1.0, 1.0]), eps=0.1)
    with pytest.raises(ValueError, match="y contains NaN"):
        sinkhorn_divergence(x, np.full((3, 2), np.nan), eps=0.1)
    with pytest.raises(TypeError, match="mixed array kinds"):
        sinkhorn(torch.zeros(3, 2), x, eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        transport(np.ones(2), np.ones(2), np.zeros((2, 2)), eps=-1.0)
    with pytest.raises(ValueError, match="tol"):
        transport(np.ones(2), np.ones(2), np.zeros((2, 2)), eps=1.0, tol=-1.0)


def test_deprecated_dense_budget_is_the_budget_in_entries(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    for entries in (1, 1 << 25):  # online and stored-kernel paths
        with pytest.warns(DeprecationWarning, match="memory_budget in bytes"):
            old = sinkhorn(x, y, eps=0.1, dense_budget=entries, return_result=True)
        new = sinkhorn(x, y, eps=0.1, memory_budget=8 * entries, return_result=True)
        assert old.method == new.method and old.value == new.value


def test_docstring_example():
    assert round(sinkhorn(np.array([0.0]), np.array([2.0]), eps=0.1), 6) == 4.0


@pytest.mark.cuda
def test_cuda_matches_cpu_and_stays_on_device(rng):
    x, y = cloud(rng, 300, 3), cloud(rng, 200, 3, 0.2)
    ref = sinkhorn(x, y, eps=0.01, tol=1e-9)
    xc = torch.tensor(x, device="cuda", requires_grad=True)
    v = sinkhorn(xc, torch.tensor(y, device="cuda"), eps=0.01, tol=1e-9, memory_budget=8 * 10_000)
    v.backward()
    assert v.device.type == "cuda" and xc.grad.device.type == "cuda"
    np.testing.assert_allclose(v.item(), ref, rtol=1e-8)
