"""Sinkhorn at the ends of the float range and on coincident supports (issue 16).

Truth: POT's log-domain Sinkhorn run to 1e-12, homogeneity of OT_eps (C → c^p C with
eps → c^p eps scales the value by c^p), and S_eps >= 0.
"""

import warnings

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from otdiv import sinkhorn, sinkhorn_divergence, transport

TOL = 1e-6


def supports(kind, rng):
    x = rng.standard_normal((20, 2))
    if kind == "coincident":
        return x, x.copy()
    if kind == "nested":
        return x, np.vstack([x, rng.standard_normal((10, 2))])
    return x, np.vstack([x[:10], rng.standard_normal((12, 2))])  # partly shared


def pot_reference(x, y, eps):
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    C = ot.dist(x, y)
    P = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=200_000, stopThr=1e-12)
    return float((P * C).sum()), C.max()


@pytest.mark.parametrize("support", ["coincident", "nested", "shared"])
@pytest.mark.parametrize("rel_eps", [1.0, 0.1, 0.01, 1e-3])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_shared_supports_converge_to_pot(support, rel_eps, backend):
    x, y = supports(support, np.random.default_rng(3))
    cmax = ot.dist(x, y).max()
    eps = rel_eps * cmax
    ref, _ = pot_reference(x, y, eps)
    if backend == "torch":
        x, y = torch.tensor(x), torch.tensor(y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning fails the test
        res = sinkhorn(x, y, eps=eps, tol=TOL, return_result=True)
    assert res.converged and res.marginal_error <= TOL
    # a plan within L1 marginal error tol of Π(a, b) moves ⟨P, C⟩ by at most ~tol · Cmax
    assert abs(res.transport_cost - ref) <= 10 * TOL * cmax


def test_arange_against_itself_converges_on_every_path():
    X = np.arange(10.0).reshape(10, 1)
    u = np.full(10, 0.1)
    C = ot.dist(X, X)
    P = ot.sinkhorn(u, u, C, 0.1, method="sinkhorn_log", numItermax=200_000, stopThr=1e-13)
    ref = float((P * C).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = [sinkhorn(X, X.copy(), eps=0.1, return_result=True),
                   sinkhorn(torch.tensor(X), torch.tensor(X), eps=0.1, return_result=True),
                   transport(u, u, C, eps=0.1)]
    for res in results:
        assert res.converged and res.marginal_error <= TOL
        assert abs(res.transport_cost - ref) <= 10 * TOL * C.max()


@pytest.mark.parametrize("rel_eps", [1e3, 1.0, 1e-2, 1e-4])
def test_marginal_error_is_that_of_the_returned_plan(rel_eps):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((15, 2)), rng.standard_normal((12, 2)) + 0.3
    eps = rel_eps * ot.dist(x, y).max()
    res = sinkhorn(x, y, eps=eps, return_result=True, max_iter=100_000)
    P = res.plan
    measured = np.abs(P.sum(1) - 1 / 15).sum() + np.abs(P.sum(0) - 1 / 12).sum()
    assert res.converged
    assert measured <= TOL and abs(measured - res.marginal_error) <= TOL


@pytest.mark.parametrize("eps", [4e-16, 1e-19, 1e-300])  # large eps: test_sinkhorn_large_eps.py
@pytest.mark.parametrize("dtype", ["numpy", torch.float64, torch.float32])
def test_eps_the_precision_cannot_resolve_is_refused(eps, dtype):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 2)), rng.standard_normal((25, 2))
    if dtype != "numpy":
        x, y = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    with pytest.raises(ValueError, match=r"eps is .* times the largest cost"):
        sinkhorn(x, y, eps=eps)
    with pytest.raises(ValueError, match=r"eps is .* times the largest cost"):
        sinkhorn_divergence(x, y, eps=eps)


def test_float32_refuses_what_float64_solves():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 2)), rng.standard_normal((25, 2))
    eps = 1e-3 * ot.dist(x, y).max()  # float64 resolves it at tol 1e-6, float32 cannot
    res = sinkhorn(torch.tensor(x), torch.tensor(y), eps=eps, return_result=True)
    assert res.converged and torch.isfinite(res.value)
    with pytest.raises(ValueError, match="eps"):
        sinkhorn(torch.tensor(x).float(), torch.tensor(y).float(), eps=eps)


def test_large_p_is_refused_not_a_kernel_error():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 2)), rng.standard_normal((25, 2))
    with pytest.raises(ValueError, match="eps"):
        sinkhorn(x, y, eps=0.1, p=50)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(-300, 300), p=st.sampled_from([1.0, 2.0]), seed=st.integers(0, 2**16))
def test_homogeneous_over_the_float_range(k, p, seed):
    if abs(k * p) > 300:  # c^p itself leaves the float range
        k = int(np.sign(k) * 300 / p)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((8, 2)), rng.standard_normal((6, 2)) + 0.5
    eps = 0.3
    c = 10.0**k
    scale = c**p
    ref = sinkhorn(x, y, eps=eps, p=p)
    got = sinkhorn(c * x, c * y, eps=eps * scale, p=p)
    # the scaled coordinates carry a relative rounding of 1e-16 each; tol moves the value by
    # at most ~tol · Cmax
    np.testing.assert_allclose(got / scale, ref, rtol=1e-5)
    ref_s = sinkhorn_divergence(x, y, eps=eps, p=p)
    got_s = sinkhorn_divergence(c * x, c * y, eps=eps * scale, p=p)
    np.testing.assert_allclose(got_s / scale, ref_s, rtol=1e-4)


def test_coordinates_near_the_top_of_the_range():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((10, 2)), rng.standard_normal((12, 2))
    ref = sinkhorn(x, y, eps=0.5, p=1)
    np.testing.assert_allclose(sinkhorn(1e160 * x, 1e160 * y, eps=0.5e160, p=1) / 1e160, ref,
                               rtol=1e-5)


def test_weights_whose_sum_overflows():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((7, 2))
    np.testing.assert_allclose(sinkhorn(x, y, a=np.full(6, 1e308), eps=0.1),
                               sinkhorn(x, y, eps=0.1), rtol=1e-12)


def test_torch_divergence_of_a_cloud_with_itself_is_not_negative():
    x = torch.tensor(np.random.default_rng(0).standard_normal((20, 2)))
    for eps in (0.1, 0.01):
        assert float(sinkhorn_divergence(x, x, eps=eps)) >= 0.0


def test_mixed_float32_float64_torch_inputs_are_promoted():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 2)), rng.standard_normal((25, 2))
    ref = sinkhorn(x, y, eps=0.1)
    x64, y32 = torch.tensor(x), torch.tensor(y, dtype=torch.float32)
    v = sinkhorn(x64, y32, eps=0.1)
    assert v.dtype == torch.float64
    np.testing.assert_allclose(float(v), sinkhorn(x, y32.double().numpy(), eps=0.1), rtol=1e-6)
    assert abs(float(v) - ref) < 1e-3 * abs(ref)  # y rounded to float32
    s = sinkhorn_divergence(y32, x64, eps=0.1)
    assert s.dtype == torch.float64 and float(s) >= 0.0
