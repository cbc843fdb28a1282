"""One result contract for every OT solver (TransportResult): checked on the returned plan."""

import numpy as np
import pytest
import torch

from otdiv import sinkhorn, transport, wasserstein
from otdiv.ot.results import STATUSES


def _cost(x, y, p):
    return np.linalg.norm(x[:, None, :] - y[None, :, :], axis=-1) ** p


def _problems(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(25, 2)) + 0.5
    a, b = rng.random(30) + 0.1, rng.random(25) + 0.1
    a, b = a / a.sum(), b / b.sum()
    C2 = _cost(x, y, 2.0)
    yield "wasserstein/network_simplex", C2, a, b, wasserstein(
        x, y, a, b, p=2, method="network_simplex", return_result=True), True
    yield "wasserstein/sparse_simplex", C2, a, b, wasserstein(
        x, y, a, b, p=2, method="sparse_simplex", return_result=True), True
    yield "wasserstein/lazy", C2, a, b, wasserstein(
        x, y, a, b, p=2, method="network_simplex_lazy", return_result=True), True
    x1, y1 = x[:, :1], y[:, :1]
    yield "wasserstein/1d", _cost(x1, y1, 2.0), a, b, wasserstein(
        x1, y1, a, b, p=2, return_result=True), True
    yield "transport", C2, a, b, transport(a, b, C2), True
    yield "transport(eps)", C2, a, b, transport(a, b, C2, eps=0.1, tol=1e-10), False
    yield "sinkhorn", C2, a, b, sinkhorn(x, y, a, b, eps=0.1, tol=1e-10,
                                         return_result=True), False
    yield "sinkhorn/torch", C2, a, b, sinkhorn(torch.tensor(x), torch.tensor(y),
                                               torch.tensor(a), torch.tensor(b), eps=0.1,
                                               tol=1e-10, return_result=True), False


def test_every_solver_speaks_one_contract(rng):
    for name, C, a, b, res, exact in _problems(rng):
        P = np.asarray(res.plan, dtype=np.float64)
        assert res.status in STATUSES and res.converged == (res.status == "optimal"), name
        # transport_cost = ⟨P, C⟩ of the returned plan, for every solver
        np.testing.assert_allclose(res.transport_cost, (P * C).sum(), rtol=1e-9, err_msg=name)
        # marginal_error is the returned plan's (up to the rounding of summing its n·m entries)
        err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
        np.testing.assert_allclose(res.marginal_error, err, rtol=1e-6, atol=C.size * 2e-16,
                                   err_msg=name)
        # cost is the optimum of the problem solved (unrooted), and the dual attains it
        np.testing.assert_allclose(a @ res.f + b @ res.g, res.cost, rtol=1e-9, err_msg=name)
        if exact:
            assert res.cost == res.transport_cost, name
        else:  # OT_eps = ⟨P, C⟩ + eps KL(P ‖ a⊗b), KL >= 0
            kl = (P * np.log(P / np.outer(a, b))).sum()
            np.testing.assert_allclose(res.cost, (P * C).sum() + 0.1 * kl, rtol=1e-8,
                                       err_msg=name)


def test_non_converged_runs_say_so_in_the_shared_words(rng):
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2)) + 2
    with pytest.warns(UserWarning):
        r1 = wasserstein(x, y, method="sparse_simplex", max_iter=3, return_result=True)
    with pytest.warns(UserWarning):
        r2 = sinkhorn(x, y, eps=0.01, max_iter=3, return_result=True)
    assert r1.status == r2.status == "max_iter_reached"
    assert not r1.converged and not r2.converged
