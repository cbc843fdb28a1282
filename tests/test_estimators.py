"""OT-free W1 estimates of a critic, on critics whose answer is known.

Truths: the closed-form optimal potentials of the translate and MinFunnel pairs (unit slope
everywhere, E_P u − E_Q u = W1(P, Q)), the penalty model s W1 − λ (s − 1)² maximised
numerically, exact OT by POT on the very samples for the certificate.
"""

import math

import numpy as np
import pytest
import torch
from _problems import exact_w1
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from otdiv.audit import audit_critic, make_toy
from otdiv.audit.estimators import (
    ctransform_pairs,
    flow_corrected,
    interpolates,
    penalty_corrected,
    segment_points,
    slope_corrected,
)
from otdiv.audit.funnels import MinFunnel


class Linear(torch.nn.Module):
    """f(z) = s <z, u> in float64."""

    def __init__(self, u, s=1.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(s * np.asarray(u), dtype=torch.float64))

    def forward(self, z):
        return z @ self.w


class Funnels(torch.nn.Module):
    """s times the MinFunnel potential u(z) = min_k |z - c_k| + b_k, in float64."""

    def __init__(self, mf, s=1.0):
        super().__init__()
        self.c = torch.nn.Parameter(torch.as_tensor(mf.apexes), requires_grad=False)
        self.b = torch.nn.Parameter(torch.as_tensor(mf.offsets), requires_grad=False)
        self.s = s

    def forward(self, z):
        return self.s * (torch.cdist(z, self.c) + self.b).min(dim=1).values


# ------------------------------------------------------------------ penalty_corrected


@settings(max_examples=200, deadline=None)
@given(w1=st.floats(1e-6, 1e3), lam=st.floats(1e-3, 1e4))
def test_penalty_correction_inverts_the_penalised_optimum(w1, lam):
    # the best s of s W1 − λ (s − 1)², found numerically, gives raw = s W1
    res = minimize_scalar(lambda s: -(s * w1 - lam * (s - 1) ** 2), bounds=(0, 1e6),
                          method="bounded", options={"xatol": 1e-12})
    s = 1 + w1 / (2 * lam)  # the closed form of the maximiser
    assert res.x == pytest.approx(s, rel=1e-6)
    assert penalty_corrected(s * w1, lam) == pytest.approx(w1, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(raw=st.floats(0, 1e6), lam=st.floats(1e-6, 1e6))
def test_penalty_correction_lies_between_its_bounds(raw, lam):
    w = penalty_corrected(raw, lam)
    assert raw / (1 + raw / (2 * lam)) * (1 - 1e-12) <= w <= raw * (1 + 1e-12)


def test_penalty_correction_edge_cases_and_checks():
    assert penalty_corrected(-0.3, 10.0) == -0.3  # no slope to remove
    assert penalty_corrected(0.7, 0.0) == 0.7     # no penalty
    with pytest.raises(ValueError, match="lambda_gp"):
        penalty_corrected(1.0, -1.0)
    with pytest.raises(ValueError, match="raw"):
        penalty_corrected(float("nan"), 10.0)


# ------------------------------------------------------------------ slope_corrected


def test_slope_correction_of_a_uniform_slope_is_exact():
    est, g, se = slope_corrected(3.0, np.full(10, 1.5))
    assert (est, g, se) == (2.0, 1.5, 0.0)
    assert slope_corrected(1.0, np.zeros(4)) is None          # no slope to divide by
    assert slope_corrected(1.0, np.array([1.0, np.nan])) is None


def test_interpolates_lie_on_segments_between_the_samples():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((40, 3)) + 5.0
    pts = interpolates(x, y, np.random.default_rng(1), k=3)
    assert pts.shape == (150, 3)
    # the same draws, replayed: each point is t x_i + (1 − t) y_j with t in [0, 1]
    r = np.random.default_rng(1)
    for c in range(3):
        j = r.integers(0, 40, size=50)
        t = r.random((50, 1))
        np.testing.assert_allclose(pts[50 * c:50 * (c + 1)], t * x + (1 - t) * y[j])
    with pytest.raises(ValueError, match="x and y"):
        interpolates(x, y[:, :2], rng)


@settings(max_examples=100, deadline=None)
@given(g=st.lists(st.floats(0, 50), min_size=1, max_size=40), raw=st.floats(-10, 10))
def test_flow_slope_is_a_mean_of_the_slopes_above_one(g, raw):
    g = np.asarray(g)
    steep = g[g > 1]
    if len(steep) == 0:
        assert flow_corrected(raw, g) is None  # no interpolate carries the flow
        return
    est, slope = flow_corrected(raw, g)
    # a weighted mean of the gradient norms above 1, weights g − 1
    assert steep.min() * (1 - 1e-12) <= slope <= steep.max() * (1 + 1e-12)
    assert slope == pytest.approx(np.sum(steep * (steep - 1)) / np.sum(steep - 1), rel=1e-9)
    assert est == pytest.approx(raw / slope, rel=1e-12)


def test_flow_slope_two_sided_and_checks():
    assert flow_corrected(3.0, np.full(5, 1.5), "two-sided") == (2.0, 1.5)
    assert flow_corrected(3.0, np.full(5, 0.5), "two-sided") is None  # G_V < 0: no slope
    assert flow_corrected(3.0, np.full(5, 1.0), "two-sided") is None  # no flow at all
    with pytest.raises(ValueError, match="kind"):
        flow_corrected(1.0, np.ones(3), "both")


# ------------------------------------------------------- audits of known critics


@pytest.mark.parametrize("s", [1.0, 0.05, 3.0])
def test_translate_optimal_potential_and_its_scaled_copies(s):
    # P = N(0, I), Q = P + t, |t| = 1: u(z) = −<z, t>/|t| is optimal, |∇u| = 1 everywhere
    toy = make_toy("translate", d=4, shift=1.0)
    t = np.full(4, 0.5)
    base = audit_critic(Linear(-t), toy.sample_real, toy.sample_fake, n=400, repeats=2,
                        w1=1.0, lipschitz=False, lambda_gp=10.0, device="cpu", seed=3)
    a = audit_critic(Linear(-t, s), toy.sample_real, toy.sample_fake, n=400, repeats=2,
                     w1=1.0, lipschitz=False, lambda_gp=10.0, device="cpu", seed=3)
    # raw of u is W1 up to the sampling error of a mean of n differences (std sqrt(2/n))
    assert abs(base.estimate - 1.0) < 5 * math.sqrt(2 / 400 / 2)
    assert a.estimate == pytest.approx(s * base.estimate, rel=1e-12)        # raw = s W1
    assert a.interp_grad_norm == pytest.approx(s, rel=1e-12)
    assert a.slope_corrected == pytest.approx(base.estimate, rel=1e-12)     # corrected = W1
    assert a.ctransform_grad_norm == pytest.approx(s, rel=1e-12)
    assert a.ctransform_corrected == pytest.approx(base.estimate, rel=1e-12)
    if s > 1:  # the flow runs only where the slope is above 1
        assert a.flow_grad_norm == pytest.approx(s, rel=1e-12)
        assert a.flow_corrected == pytest.approx(base.estimate, rel=1e-12)
    else:
        assert a.flow_corrected is None and a.rel_error_flow_corrected is None
    assert a.penalty_corrected == pytest.approx(penalty_corrected(a.estimate, 10.0))
    for audit in (a, base):  # certified: at most exact W1 between the same samples
        assert audit.envelope_lower <= audit.exact_w1 * (1 + 1e-12)
        assert audit.certified_lower <= audit.exact_w1 * (1 + 1e-12)
    # the envelope undoes any scale: as good as u's own value on the samples
    assert a.envelope_lower >= base.estimate - 0.02


def test_penalty_correction_of_the_penalised_optimum_recovers_w1():
    # the critic of the penalised optimum: s u with s = 1 + W1/(2λ)
    toy = make_toy("translate", d=2, shift=2.0)
    lam = 2.0
    s = 1 + 2.0 / (2 * lam)
    t = np.full(2, 2.0 / math.sqrt(2))
    a = audit_critic(Linear(-t / 2.0, s), toy.sample_real, toy.sample_fake, n=400,
                     repeats=1, w1=2.0, lipschitz=False, lambda_gp=lam, device="cpu", seed=0)
    raw_u = a.estimate / s  # E_P u − E_Q u on the samples
    assert abs(raw_u - 2.0) < 5 * math.sqrt(2 / 400)
    # the correction maps s W1 to W1 and has slope <= 1, so it moves the sampling error
    # s (raw_u − W1) of the raw estimate by at most that much
    assert abs(a.penalty_corrected - 2.0) <= s * abs(raw_u - 2.0) * (1 + 1e-9) + 1e-12
    assert a.slope_corrected == pytest.approx(raw_u, rel=1e-12)


@pytest.mark.parametrize("s", [1.0, 1.3])
def test_minfunnel_optimal_potential(s):
    mf = MinFunnel(8, 16, seed=1)
    rng = np.random.default_rng(5)
    x, y = mf.sample_real(600, rng), mf.sample_fake(600, rng)
    a = audit_critic(Funnels(mf, s), x, y, n=600, w1=mf.w1, lipschitz=False,
                     device="cpu", seed=0)
    ux, uy = mf.potential(x), mf.potential(y)
    se = math.sqrt(ux.var(ddof=1) / len(x) + uy.var(ddof=1) / len(y))
    assert a.estimate == pytest.approx(s * (ux.mean() - uy.mean()), rel=1e-9)
    assert abs(a.estimate / s - mf.w1) < 5 * se                       # raw of u = W1
    assert a.interp_grad_norm == pytest.approx(s, rel=1e-9)            # |∇u| = 1 a.e.
    assert a.slope_corrected == pytest.approx(ux.mean() - uy.mean(), rel=1e-9)
    assert a.ctransform_corrected == pytest.approx(ux.mean() - uy.mean(), rel=1e-9)
    if s > 1:
        assert a.flow_corrected == pytest.approx(ux.mean() - uy.mean(), rel=1e-9)
    assert a.envelope_lower <= exact_w1(x, y) * (1 + 1e-12)


class Wild(torch.nn.Module):
    """A critic of any slope: a random tanh/ReLU MLP with weights over decades, plus a cube."""

    def __init__(self, d, rng):
        super().__init__()
        scale = 10.0 ** rng.uniform(-2, 2)
        self.w1 = torch.nn.Parameter(torch.as_tensor(rng.standard_normal((d, 16)) * scale))
        self.w2 = torch.nn.Parameter(torch.as_tensor(rng.standard_normal(16)))
        self.c = float(rng.uniform(-1, 1))

    def forward(self, z):
        h = torch.tanh(z @ self.w1) + torch.relu(z @ self.w1)
        return h @ self.w2 + self.c * z[:, 0] ** 3


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 60), d=st.integers(1, 5))
def test_certificate_of_any_critic_is_below_exact_w1(seed, n, d):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * rng.uniform(0.1, 3)
    y = rng.standard_normal((n, d)) + rng.standard_normal(d)
    critic = Wild(d, rng)
    a = audit_critic(critic, x, y, n=n, lipschitz=False, lambda_gp=10.0, device="cpu",
                     seed=0)
    w1 = exact_w1(x, y)
    assert a.certified_lower <= w1 + 1e-9 * (1 + w1)


def test_scale_invariance_of_the_slope_corrected_estimate():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((80, 3)), rng.standard_normal((80, 3)) + 1.0
    critic = Wild(3, rng)

    class Scaled(torch.nn.Module):
        def __init__(self, s):
            super().__init__()
            self.inner, self.s = critic, s

        def forward(self, z):
            return self.s * self.inner(z)

    a, b = (audit_critic(Scaled(s), x, y, n=80, lipschitz=False, device="cpu", seed=0)
            for s in (1.0, 7.5))
    assert b.estimate == pytest.approx(7.5 * a.estimate, rel=1e-9)
    assert b.slope_corrected == pytest.approx(a.slope_corrected, rel=1e-9)


def test_audit_checks_lambda():
    toy = make_toy("translate", d=2)
    with pytest.raises(ValueError, match="lambda_gp"):
        audit_critic(Linear(np.ones(2)), toy.sample_real, toy.sample_fake, n=10,
                     lambda_gp=-1.0, lipschitz=False, device="cpu")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), m=st.integers(1, 30),
       d=st.integers(1, 4), slope=st.floats(0.1, 10))
def test_ctransform_pairs_are_the_brute_force_minimisers(seed, n, m, d, slope):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    fx, fy = rng.standard_normal(n) * 3, rng.standard_normal(m) * 3
    rows, cols = ctransform_pairs(x, y, fx, fy, slope)
    dist = np.linalg.norm(x[:, None, :] - y[None, :, :], axis=2)
    h = fy[None, :] / slope + dist            # (n, m): x_i's c-transform candidates
    k = fx[:, None] / slope - dist            # y_j's
    assert len(rows) == len(cols) == n + m
    np.testing.assert_array_equal(rows[:n], np.arange(n))
    np.testing.assert_array_equal(cols[n:], np.arange(m))
    np.testing.assert_allclose(h[np.arange(n), cols[:n]], h.min(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k[rows[n:], np.arange(m)], k.max(axis=0), rtol=1e-12, atol=1e-12)
    pts, w = segment_points(x, y, rows, cols, rng, k=3)
    assert pts.shape == (3 * (n + m), d)
    np.testing.assert_allclose(w.sum(), np.linalg.norm(x[rows] - y[cols], axis=1).sum())


def test_scores_and_gradients_in_blocks_equal_one_call(monkeypatch):
    # slopes.ROWS points per call of the critic: blocks of 7 give the one-call answer
    # (the gradient of a quadratic critic 0.5 |x|^2 + <b, x> is x + b: the truth)
    import torch

    from otdiv.audit import slopes

    b = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)

    def critic(x):
        return 0.5 * (x * x).sum(dim=1) + x @ b

    pts = np.random.default_rng(0).normal(size=(30, 3))
    monkeypatch.setattr(slopes, "ROWS", 7)
    grad = slopes.gradients(critic, pts, "cpu", torch.float64).numpy()
    np.testing.assert_allclose(grad, pts + b.numpy(), rtol=1e-12)
    vals = slopes.score_fn(critic, "cpu", torch.float64)(pts)
    np.testing.assert_allclose(vals, 0.5 * (pts**2).sum(1) + pts @ b.numpy(), rtol=1e-12)
    assert slopes.gradients(critic, pts[:0], "cpu", torch.float64).shape == (0, 3)
