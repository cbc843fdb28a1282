"""Sinkhorn as eps → ∞ (issue 16): the plan tends to a⊗b and OT_eps to ⟨a⊗b, C⟩.

Truth: the closed-form limit with the bound 0 <= ⟨a⊗b, C⟩ − OT_eps <= R²/(8 eps), R the range
of C (a⊗b is feasible with KL = 0; by Pinsker, |⟨P − a⊗b, C⟩| <= R/2 · ‖P − a⊗b‖₁ <=
R/2 · sqrt(2 KL), and eps·KL − R/√2 · sqrt(KL) >= −R²/(8 eps)); POT's log-domain Sinkhorn at
moderately large eps.
"""

import numpy as np
import ot
import pytest
import torch

from otdiv import sinkhorn, sinkhorn_divergence, transport

ULP = {"numpy": 2.0**-52, torch.float64: 2.0**-52, torch.float32: 2.0**-23}


def _data(seed=0, n=20, m=25):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, 2)), rng.standard_normal((m, 2)) + 0.5
    a, b = rng.random(n) + 0.1, rng.random(m) + 0.1
    return x, y, a / a.sum(), b / b.sum()


def _limit(x, y, a, b):
    C = ot.dist(x, y)  # p = 2
    return float(a @ C @ b), float(C.max() - C.min())


def _kind(v, dtype):
    return v if dtype == "numpy" else torch.tensor(v, dtype=dtype)


@pytest.mark.parametrize("eps", [1e4, 1e8, 1e12, 1e20, 1e300])
@pytest.mark.parametrize("dtype", ["numpy", torch.float64, torch.float32])
def test_ot_eps_tends_to_the_independent_coupling(eps, dtype):
    x, y, a, b = _data()
    limit, R = _limit(x, y, a, b)
    res = sinkhorn(*(_kind(v, dtype) for v in (x, y, a, b)), eps=eps, return_result=True)
    value = float(res.value)
    rounding = 64 * ULP[dtype] * limit  # sums of order-1 terms in the working precision
    assert limit - R**2 / (8 * eps) - rounding <= value <= limit + rounding
    assert res.converged and res.status == "optimal" and 1 <= res.n_iter <= 5
    P = np.asarray(res.plan, dtype=np.float64)
    np.testing.assert_allclose(P, np.outer(a, b), rtol=R / eps + 64 * ULP[dtype])
    measured = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    assert res.marginal_error <= 1e-6 and measured <= 1e-6 + 64 * ULP[dtype]
    np.testing.assert_allclose(res.transport_cost, limit, rtol=R / eps + 64 * ULP[dtype])


@pytest.mark.parametrize("eps", [1e6, 1e20])
@pytest.mark.parametrize("dtype", ["numpy", torch.float64])
def test_divergence_tends_to_the_energy_distance_like_limit(eps, dtype):
    x, y, a, b = _data(1)
    xy, r_xy = _limit(x, y, a, b)
    xx, r_xx = _limit(x, x, a, a)
    yy, r_yy = _limit(y, y, b, b)
    limit = xy - 0.5 * xx - 0.5 * yy
    bound = (r_xy**2 + 0.5 * r_xx**2 + 0.5 * r_yy**2) / (8 * eps) + 1e-12 * xy
    got = float(sinkhorn_divergence(*(_kind(v, dtype) for v in (x, y, a, b)), eps=eps))
    assert abs(got - limit) <= bound


@pytest.mark.parametrize("rel_eps", [10.0, 1e2, 1e3, 1e4])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_matches_pot_at_moderately_large_eps(rel_eps, backend):
    x, y, a, b = _data(2)
    C = ot.dist(x, y)
    eps = rel_eps * C.max()
    P = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", stopThr=1e-14, numItermax=100_000)
    ref = float((P * C).sum() + eps * (P * np.log(P / np.outer(a, b))).sum())
    args = (x, y, a, b) if backend == "numba" else tuple(torch.tensor(v) for v in (x, y, a, b))
    res = sinkhorn(*args, eps=eps, tol=1e-12, return_result=True)
    np.testing.assert_allclose(float(res.value), ref, rtol=1e-10)
    np.testing.assert_allclose(res.transport_cost, float((P * C).sum()), rtol=1e-10)


def test_no_jump_where_the_centred_soft_min_takes_over():
    # the geometry switches at eps = 1e3·Cmax (float64, tol 1e-6): both sides agree with the
    # expansion OT_eps = ⟨a⊗b, C⟩ − V / (2 eps) + O(eps^-2) to the next order
    x, y, a, b = _data(3)
    C = ot.dist(x, y)
    below, above = 0.999e3 * C.max(), 1.001e3 * C.max()
    v_below = sinkhorn(x, y, a, b, eps=below, tol=1e-12)
    v_above = sinkhorn(x, y, a, b, eps=above, tol=1e-12)
    limit = float(a @ C @ b)
    # (limit − OT_eps)·eps is the same to O(1/eps) on both sides
    np.testing.assert_allclose((limit - v_below) * below, (limit - v_above) * above,
                               rtol=1e-2)


@pytest.mark.parametrize("eps", [1e3, 1e20])
def test_gradients_tend_to_those_of_the_limit(eps):
    x, y, a, b = (torch.tensor(v, requires_grad=True) for v in _data(4))
    value = sinkhorn(x, y, a, b, eps=eps)
    value.backward()
    xs, ys, as_, bs = (t.detach().clone().requires_grad_(True) for t in (x, y, a, b))
    C = ((xs[:, None, :] - ys[None, :, :]) ** 2).sum(-1)
    limit = as_ @ C @ bs  # ⟨a⊗b, C⟩; its a-gradient (C b) equals f up to a shared constant
    limit.backward()
    R = float(C.detach().max() - C.detach().min())
    for got, want in ((x.grad, xs.grad), (y.grad, ys.grad)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=10 * R**1.5 / eps + 1e-12)
    # weight gradients: potentials, defined up to f + c, g − c
    for got, want in ((a.grad, as_.grad), (b.grad, bs.grad)):
        d = (got - want).numpy()
        np.testing.assert_allclose(d - d.mean(), 0.0, atol=10 * R**2 / eps + 1e-12)


def test_batched_and_cost_matrix_paths():
    x, y, a, b = _data(5)
    eps = 1e20
    xb = torch.tensor(np.stack([x, x + 1.0]))
    yb = torch.tensor(np.stack([y, y]))
    res = sinkhorn(xb, yb, eps=eps, return_result=True)
    for k in range(2):
        C = ot.dist(xb[k].numpy(), yb[k].numpy())
        np.testing.assert_allclose(float(res.value[k]), C.mean(), rtol=1e-12)
    assert res.converged.all() and res.status == "optimal"
    C = ot.dist(x, y) - 3.0  # a given cost, negative entries too
    for args in ((a, b, C), tuple(torch.tensor(v) for v in (a, b, C))):
        r = transport(*args, eps=eps)
        np.testing.assert_allclose(float(r.value), float(a @ C @ b), rtol=1e-12)
        assert r.converged and r.marginal_error <= 1e-12


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_row_blocks_within_a_small_budget_change_nothing(kind):
    # the centred soft-min forms the cost in blocks of rows within memory_budget
    x, y, a, b = _data(6, n=40, m=30)
    if kind == "torch":
        x, y, a, b = (torch.tensor(v) for v in (x, y, a, b))
    whole = sinkhorn(x, y, a, b, eps=1e6, return_result=True)
    blocks = sinkhorn(x, y, a, b, eps=1e6, memory_budget=8 * 7 * 30, return_result=True)
    assert whole.method == blocks.method and whole.method.startswith("sinkhorn_centred")
    np.testing.assert_allclose(float(blocks.value), float(whole.value), rtol=1e-14)
    np.testing.assert_allclose(blocks.f, whole.f, rtol=1e-12, atol=1e-12)
