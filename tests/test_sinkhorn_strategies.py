"""The Sinkhorn strategies of the OT core (otdiv.ot.sinkhorn), each by what it must do.

Truth: an independent plain log-domain Sinkhorn written here with scipy's logsumexp, the
exact online soft-min, and the mathematics of the Gibbs kernel (K_{eps/2} = K_eps ∘ K_eps).
"""

import numpy as np
import pytest
from scipy.special import logsumexp

from otdiv import sinkhorn
from otdiv.ot.geometry import NumbaClouds, NumbaGibbs


def _plain_sinkhorn(C, a, b, eps, tol):
    """f ← T_b(g), g ← T_a(f) from f = 0, stopping on the same criterion as otdiv (L1 error
    of both marginals of P(f, g) <= tol); returns (sweeps, ⟨P, C⟩)."""
    la, lb = np.log(a), np.log(b)
    f = np.zeros(len(a))
    for sweep in range(1, 200_000):
        g = -eps * logsumexp(la[:, None] + (f[:, None] - C) / eps, axis=0)
        f_next = -eps * logsumexp(lb[None, :] + (g[None, :] - C) / eps, axis=1)
        P = np.exp(la[:, None] + lb[None, :] + (f[:, None] + g[None, :] - C) / eps)
        err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
        if err <= tol:
            return sweep, float((P * C).sum())
        f = f_next
    raise AssertionError("plain Sinkhorn did not converge")


@pytest.mark.parametrize("rel_eps", [0.05, 0.01])
def test_over_relaxation_reaches_the_same_plan_in_fewer_sweeps(rng, rel_eps):
    x, y = rng.normal(size=(80, 2)), rng.normal(size=(70, 2)) + 0.5
    a, b = np.full(80, 1 / 80), np.full(70, 1 / 70)
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    eps, tol = rel_eps * C.max(), 1e-9
    plain_sweeps, plain_cost = _plain_sinkhorn(C, a, b, eps, tol)
    res = sinkhorn(x, y, eps=eps, tol=tol, eps_scaling=None, memory_budget=8,
                   return_result=True)  # the online kernel: no float32 rounding involved
    assert res.converged and res.n_iter < plain_sweeps
    # two plans within L1 error tol of Π(a, b) near the same optimum: ⟨P, C⟩ within ~tol·Cmax
    assert abs(res.transport_cost - plain_cost) <= 10 * tol * C.max()


def test_kernel_squaring_equals_the_kernel_at_half_eps(rng):
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    a, b = np.full(40, 1 / 40), np.full(30, 1 / 30)
    exact = NumbaClouds(x, y, a, b, 2.0)
    gibbs = NumbaGibbs(NumbaClouds(x, y, a, b, 2.0), np.float64)
    eps = 0.5
    f = exact.rows(np.zeros(30), eps)
    gibbs.cols(f, eps)  # builds the kernel at eps around f
    g = exact.cols(f, eps / 2)
    # at eps / 2 the stored kernel is squared in place (no exponential), then used
    np.testing.assert_allclose(gibbs.rows(g, eps / 2), exact.rows(g, eps / 2), rtol=1e-12,
                               atol=1e-12)
    assert gibbs.eps_k == eps / 2


def test_the_exact_kernel_sweep_is_reserved_within_max_iter(rng):
    # the float32 kernel leaves the last sweep of max_iter to the exact kernel, which
    # measures the returned plan: n_iter never exceeds max_iter, the error is the plan's
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(40, 2)) + 1
    for max_iter in (1, 2, 7):
        with pytest.warns(UserWarning):
            res = sinkhorn(x, y, eps=0.01, max_iter=max_iter, return_result=True)
        P = res.plan
        measured = np.abs(P.sum(1) - 1 / 50).sum() + np.abs(P.sum(0) - 1 / 40).sum()
        assert res.n_iter <= max_iter and not res.converged
        np.testing.assert_allclose(res.marginal_error, measured, rtol=1e-6)
