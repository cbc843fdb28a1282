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
from hypothesis import assume, example, given, settings
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


# ------------------------------------------- the float range and inputs that are wrong

BIG = np.finfo(np.float64).max


@settings(max_examples=300, deadline=None)
@given(log_w=st.floats(-300, 300), log_lam=st.floats(-10, 10))
@example(log_w=math.log10(1.4142135623730951e145), log_lam=-10.0)  # raw = 1e300: was 0.0
@example(log_w=154.6505, log_lam=1.0)                             # raw ≈ 1e308: was NaN
@example(log_w=300.0, log_lam=10.0)
@example(log_w=-300.0, log_lam=10.0)
def test_penalty_correction_inverts_the_model_over_the_float_range(log_w, log_lam):
    # raw = W (1 + W / (2λ)) for W in [1e-300, 1e300], λ in [1e-10, 1e10]: back to W
    w, lam = 10.0**log_w, 10.0**log_lam
    raw = w * (1.0 + w / (2.0 * lam))
    assume(math.isfinite(raw))
    assert penalty_corrected(raw, lam) == pytest.approx(w, rel=1e-12)


@settings(max_examples=300, deadline=None)
@given(raw=st.floats(5e-324, BIG), lam=st.floats(5e-324, BIG))
@example(raw=1e308, lam=10.0)
@example(raw=1e300, lam=1e-10)
@example(raw=BIG, lam=5e-324)
def test_penalty_correction_is_the_formula_to_a_few_ulp_for_every_finite_input(raw, lam):
    import mpmath

    with mpmath.workdps(60):
        r, la = mpmath.mpf(raw), mpmath.mpf(lam)
        true = 2 * r / (mpmath.sqrt(1 + 2 * r / la) + 1)  # λ (√(1 + 2r/λ) − 1), no cancellation
        w = penalty_corrected(raw, lam)
        assert math.isfinite(w) and 0 < w <= raw
        if true >= np.finfo(np.float64).tiny:  # a normal result: relative accuracy
            assert abs(mpmath.mpf(w) / true - 1) < 1e-14


def test_penalty_correction_checks_its_arguments():
    for raw in (None, "1.0", True, np.bool_(True), 1j, [1.0], np.ones(2)):
        with pytest.raises(TypeError, match="raw"):
            penalty_corrected(raw, 10.0)
    for raw in (10**400, -(10**400), float("inf"), -float("inf"), float("nan")):
        with pytest.raises(ValueError, match="raw"):
            penalty_corrected(raw, 10.0)
    for lam in (float("inf"), float("nan"), -1.0, 10**400):
        with pytest.raises(ValueError, match="lambda_gp"):
            penalty_corrected(1.0, lam)
    for lam in (None, "10", True):
        with pytest.raises(TypeError, match="lambda_gp"):
            penalty_corrected(1.0, lam)
    # numbers of other kinds are their values
    assert penalty_corrected(np.float32(3.0), 10) == penalty_corrected(3.0, 10.0)
    assert penalty_corrected(np.array(3.0), 10) == penalty_corrected(3.0, 10.0)
    assert penalty_corrected(torch.tensor(3.0, requires_grad=True), 10) == \
        penalty_corrected(3.0, 10.0)
    assert penalty_corrected(3, 10) == penalty_corrected(3.0, 10.0)
    # raw <= 0, also below −λ/2 where the formula's root would be of a negative: unchanged
    assert penalty_corrected(-100.0, 10.0) == -100.0
    assert penalty_corrected(-5.0, 10.0) == -5.0


BAD_RAW = [(None, TypeError), ("1.0", TypeError), (True, TypeError), (1j, TypeError),
           (float("nan"), ValueError), (float("inf"), ValueError),
           (-float("inf"), ValueError), (10**400, ValueError)]


@pytest.mark.parametrize(("raw", "error"), BAD_RAW)
def test_slope_and_flow_corrections_check_the_raw_estimate(raw, error):
    with pytest.raises(error, match="raw"):
        slope_corrected(raw, np.full(3, 2.0))
    with pytest.raises(error, match="raw"):
        flow_corrected(raw, np.full(3, 2.0))


@pytest.mark.parametrize("fn", [slope_corrected, flow_corrected])
def test_slope_and_flow_corrections_check_the_gradient_norms(fn):
    with pytest.raises(ValueError, match=r"grad_norms.*negative"):
        fn(1.0, [-1.0, 3.0])
    with pytest.raises(ValueError, match=r"grad_norms.*negative"):
        fn(1.0, [-np.inf, 3.0])
    with pytest.raises(ValueError, match=r"grad_norms.*empty"):
        fn(1.0, [])
    for bad in (None, "1.0", ["a", "b"], np.array([1 + 1j]), torch.tensor([1 + 1j])):
        with pytest.raises(TypeError, match="grad_norms"):
            fn(1.0, bad)
    # a norm torch could not compute: no estimate, as documented
    assert fn(1.0, [2.0, np.nan]) is None
    assert fn(1.0, [2.0, np.inf]) is None


@pytest.mark.parametrize("fn", [slope_corrected, flow_corrected])
def test_slope_and_flow_corrections_take_tensors_of_any_float_dtype(fn):
    g = np.array([1.5, 2.0, 3.25, 0.5])  # exact in bfloat16
    want = fn(3.0, g)
    for t in (torch.tensor(g, dtype=torch.bfloat16), torch.tensor(g, dtype=torch.float16),
              torch.tensor(g, dtype=torch.float32, requires_grad=True),
              torch.tensor(g, requires_grad=True).reshape(2, 2) * 1.0):
        assert fn(3.0, t) == want
    assert fn(torch.tensor(3.0), g) == want


@settings(max_examples=200, deadline=None)
@given(h=st.lists(st.one_of(st.just(0.0), st.floats(1e-300, 50)), min_size=1, max_size=40),
       e=st.integers(0, 1017), raw=st.floats(-10, 10))
@example(h=[1.0, 1.0], e=1023, raw=1.0)  # [2^1023, 2^1023]: the mean was inf, G = inf
def test_slope_correction_scales_with_the_norms_up_to_the_float_range(h, e, raw):
    # norms c h, c = 2^e: G and its standard error are c times those of h (exact in
    # floating point), the sums of c h may overflow but their mean does not
    h = np.asarray(h)
    base = slope_corrected(0.0, h)
    res = slope_corrected(raw, np.ldexp(h, e))
    if base is None:  # every h is 0
        assert res is None
        return
    _, g, se = base
    if not math.isfinite(raw / math.ldexp(g, e)):  # the estimate is beyond the floats
        assert res is None
        return
    est, g_c, se_c = res
    assert g_c == pytest.approx(math.ldexp(g, e), rel=1e-12)
    assert math.isfinite(g_c) and g_c <= np.max(np.ldexp(h, e)) * (1 + 1e-15)
    if len(h) > 1:
        assert se_c == pytest.approx(math.ldexp(se, e), rel=1e-9, abs=0)
    assert est == pytest.approx(raw / g_c, rel=1e-12, abs=0)


def test_slope_correction_of_norms_near_the_float_range():
    assert slope_corrected(1.0, [1e308, 1e308]) == (1e-308, 1e308, 0.0)
    est, g, se = slope_corrected(2.0, [1e308, 1.7e308])
    assert g == pytest.approx(1.35e308, rel=1e-15) and est == pytest.approx(2 / 1.35e308)
    assert se == pytest.approx(0.35e308, rel=1e-12)  # std 0.7e308 / √2, over √2
    # a raw estimate over a slope so small the quotient is beyond the float range: None
    assert slope_corrected(1e300, [1e-300, 1e-300]) is None
    assert slope_corrected(1.0, [7.0]) == (1.0 / 7.0, 7.0, math.inf)  # one norm: se unknown


@settings(max_examples=100, deadline=None)
@given(h=st.lists(st.floats(1, 50), min_size=1, max_size=40), e=st.integers(960, 1017),
       kind=st.sampled_from(["one-sided", "two-sided"]))
def test_flow_slope_of_norms_beyond_the_overflow_of_their_squares(h, e, kind):
    # g = 2^e h ≫ 1: w = g − 1 ≈ g, so G_V = Σ g² / Σ g = 2^e Σ h² / Σ h; the squares
    # overflow, the answer does not
    h = np.asarray(h)
    est, slope = flow_corrected(5.0, np.ldexp(h, e), kind)
    assert slope == pytest.approx(math.ldexp(np.sum(h * h) / np.sum(h), e), rel=1e-12)
    assert est == pytest.approx(5.0 / slope, rel=1e-12)


def test_flow_slope_whose_quotient_overflows_is_none():
    # two-sided, g = [0, 1 + 2^-52]: G_V = 2^-52 > 0, and 1e300 / G_V is beyond the floats
    est, slope = flow_corrected(1.0, [0.0, 1.0 + 2.0**-52], "two-sided")
    assert slope == pytest.approx(2.0**-52) and est == pytest.approx(2.0**52)
    assert flow_corrected(1e300, [0.0, 1.0 + 2.0**-52], "two-sided") is None
    with pytest.raises(ValueError, match="kind"):
        flow_corrected(1.0, [2.0], None)


def _cloud(seed=0, n=6, m=5, d=2):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)), rng.standard_normal((m, d)),
            rng.standard_normal(n), rng.standard_normal(m))


def test_ctransform_pairs_checks_its_arguments():
    x, y, fx, fy = _cloud()
    for slope in (0.0, -1.0, float("nan"), float("inf"), 10**400):
        with pytest.raises(ValueError, match="slope"):
            ctransform_pairs(x, y, fx, fy, slope)
    for slope in (None, "1", True):
        with pytest.raises(TypeError, match="slope"):
            ctransform_pairs(x, y, fx, fy, slope)
    with pytest.raises(ValueError, match="y is empty"):
        ctransform_pairs(x, y[:0], fx, fy[:0], 1.0)
    with pytest.raises(ValueError, match="x is empty"):
        ctransform_pairs(x[:0], y, fx[:0], fy, 1.0)
    with pytest.raises(ValueError, match="fx must hold one"):
        ctransform_pairs(x, y, fx[:3], fy, 1.0)
    with pytest.raises(ValueError, match="fy must hold one"):
        ctransform_pairs(x, y, fx, np.ones((5, 2)), 1.0)
    with pytest.raises(ValueError, match="x and y"):
        ctransform_pairs(x, y[:, :1], fx, fy, 1.0)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        ctransform_pairs(bad, y, fx, fy, 1.0)
    with pytest.raises(ValueError, match="fy contains NaN"):
        ctransform_pairs(x, y, fx, np.where(fy > 0, np.inf, fy), 1.0)
    with pytest.raises(TypeError, match="fx"):
        ctransform_pairs(x, y, None, fy, 1.0)


def test_ctransform_pairs_take_columns_and_tensors():
    x, y, fx, fy = _cloud(1)
    want = ctransform_pairs(x, y, fx, fy, 0.7)
    for args in ((x, y, fx[:, None], fy[:, None]),
                 (torch.tensor(x), torch.tensor(y), torch.tensor(fx, requires_grad=True),
                  torch.tensor(fy).to(torch.float32).to(torch.float64))):
        got = ctransform_pairs(*args, 0.7)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_ctransform_pairs_of_a_slope_so_small_the_scores_overflow():
    # f / G beyond the floats (G subnormal): the pairs are those of f + G ‖x − y‖, that is
    # of the scores alone — each x with the y of least score, each y with the x of most
    x, y, fx, fy = _cloud(2, n=7, m=6)
    fx, fy = 3 * fx, 3 * fy  # several scores of each sign
    rows, cols = ctransform_pairs(x, y, fx, fy, 1e-320)
    np.testing.assert_array_equal(cols[:7], np.full(7, np.argmin(fy)))
    np.testing.assert_array_equal(rows[7:], np.full(6, np.argmax(fx)))


def test_ctransform_pairs_whose_distances_overflow_are_found_in_units_of_2e():
    # the distance 3.4e308 is beyond float64, its argmins are not: x pairs with the nearer y
    far, near = np.array([[1.7e308, 0.0]]), np.array([[-1.7e308, 0.0], [0.0, 1.0]])
    rows, cols = ctransform_pairs(far, near, [0.0], [0.0, 0.0], 1.0)
    np.testing.assert_array_equal(rows, [0, 0, 0])
    np.testing.assert_array_equal(cols, [1, 0, 1])


def test_segment_points_check_their_arguments():
    x, y, _, _ = _cloud()
    rng = np.random.default_rng(0)
    rows, cols = np.arange(4), np.array([0, 1, 2, 4])
    for k in (0, -1):
        with pytest.raises(ValueError, match="k must be"):
            segment_points(x, y, rows, cols, rng, k=k)
    for k in (1.5, None, True):
        with pytest.raises(TypeError, match="k must be"):
            segment_points(x, y, rows, cols, rng, k=k)
    with pytest.raises(ValueError, match="cols holds indices"):
        segment_points(x, y, rows, np.array([0, 1, 2, 5]), rng)
    with pytest.raises(ValueError, match="cols holds indices"):
        segment_points(x, y, rows, np.array([0, 1, 2, -1]), rng)  # no wrapping around
    with pytest.raises(ValueError, match="rows holds indices"):
        segment_points(x, y, np.array([0, 6, 1, 2]), cols, rng)
    with pytest.raises(TypeError, match="rows"):
        segment_points(x, y, np.array([True, False, True, True]), cols, rng)
    with pytest.raises(TypeError, match="cols"):
        segment_points(x, y, rows, cols.astype(float), rng)
    with pytest.raises(ValueError, match="rows and cols"):
        segment_points(x, y, rows, cols[:3], rng)
    with pytest.raises(ValueError, match="rows must be a 1-D"):
        segment_points(x, y, rows.reshape(2, 2), cols.reshape(2, 2), rng)
    with pytest.raises(TypeError, match="rng"):
        segment_points(x, y, rows, cols, None)
    with pytest.raises(TypeError, match="rng"):
        segment_points(x, y, rows, cols, 0)
    with pytest.raises(ValueError, match="y contains NaN"):
        segment_points(x, y * np.nan, rows, cols, rng)
    with pytest.raises(ValueError, match=r"k=1000000000 .*memory budget"):
        segment_points(x, y, rows, cols, rng, k=10**9)
    with pytest.raises(ValueError, match=r"length of the segment .*overflows"):
        segment_points(np.array([[1.7e308, 0.0]]), np.array([[-1.7e308, 0.0]]), [0], [0], rng)
    # no segments: no points (an OT plan whose masses are all zero)
    pts, w = segment_points(x, y, [], [], rng)
    assert pts.shape == (0, 2) and w.shape == (0,)
    # lists and tensors of indices are indices
    a = segment_points(x, y, rows, cols, np.random.default_rng(1))
    b = segment_points(x, y, list(rows), torch.tensor(cols), np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_interpolates_check_their_arguments(monkeypatch):
    from otdiv.audit import models

    x, y, _, _ = _cloud()
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="rng"):
        interpolates(x, y, None)
    with pytest.raises(ValueError, match="x contains NaN"):
        interpolates(np.where(x > 0, np.nan, x), y, rng)
    with pytest.raises(ValueError, match="y is empty"):
        interpolates(x, y[:0], rng)
    for k in (0, 1.0):
        with pytest.raises((ValueError, TypeError), match="k must be"):
            interpolates(x, y, rng, k)
    # the budget is MEMORY_BUDGET, about 16 k n (d + 1) bytes
    with monkeypatch.context() as patch:
        patch.setattr(models, "MEMORY_BUDGET", 16 * 100 * 6 * 3)
        assert interpolates(x, y, rng, 100).shape == (600, 2)
        with pytest.raises(ValueError, match=r"k=101 .*memory budget"):
            interpolates(x, y, rng, 101)
    with pytest.raises(ValueError, match=r"k=1000000000 .*memory budget"):
        interpolates(x, y, rng, 10**9)  # was a loop of 10^9 draws
    # tensors are points too; the result is numpy float64
    a = interpolates(x, y, np.random.default_rng(4), 2)
    b = interpolates(torch.tensor(x, requires_grad=True), torch.tensor(y),
                     np.random.default_rng(4), 2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [0, 200, 500, 1000, -200])
def test_pairs_and_segments_scale_exactly_with_the_points(k):
    """(c x, c y, c f) for c = 2^k has the same c-transform pairs and c times the segment
    lengths: where the squares of the distances leave float64 (|x| ≳ 1e154) too, which
    raised an overflow before."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal((25, 3)) + 1.0
    fx, fy = x[:, 0] * 1.3, y[:, 0] * 1.3
    c = 2.0 ** k
    rows, cols = ctransform_pairs(x, y, fx, fy, 1.3)
    rows_c, cols_c = ctransform_pairs(c * x, c * y, c * fx, c * fy, 1.3)
    np.testing.assert_array_equal(rows, rows_c)
    np.testing.assert_array_equal(cols, cols_c)
    pts, w = segment_points(x, y, rows, cols, np.random.default_rng(0), 3)
    pts_c, w_c = segment_points(c * x, c * y, rows, cols, np.random.default_rng(0), 3)
    np.testing.assert_allclose(w_c, c * w, rtol=1e-15)
    np.testing.assert_allclose(pts_c, c * pts, rtol=1e-15)


def test_an_audit_of_points_near_1e160_is_finite_and_certified():
    import dataclasses
    import math

    from otdiv.audit import audit_critic

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2))
    a = audit_critic(Linear([1.0, 0.0]), x * 1e160, (x + 1.0) * 1e160, n=30, repeats=1,
                     device="cpu", seed=0)
    for name, value in dataclasses.asdict(a).items():
        if isinstance(value, float) and name != "lipschitz_upper":  # inf: not an MLP
            assert math.isfinite(value), name
    assert 0 < a.certified_lower <= a.exact_w1 * (1 + 1e-9)


def test_the_audits_spreads_are_homogeneous_up_to_1e160():
    """estimate_std and exact_w1_std of a linear critic scale with the data: at 1e160 they
    are 1e160 × those of the unscaled audit (np.std squared them into inf)."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((60, 2)), rng.standard_normal((60, 2)) + 1.0
    kw = dict(n=30, repeats=3, device="cpu", seed=0, lipschitz=False, envelope=False)
    one = audit_critic(Linear([1.0, 0.0]), x, y, **kw)
    big = audit_critic(Linear([1.0, 0.0]), x * 1e160, y * 1e160, **kw)
    assert one.estimate_std > 0 and one.exact_w1_std > 0
    assert big.estimate_std == pytest.approx(1e160 * one.estimate_std, rel=1e-12)
    assert big.exact_w1_std == pytest.approx(1e160 * one.exact_w1_std, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=8),
       st.integers(-1070, 1023))
def test_mean_std_is_the_exact_mean_and_std_at_any_magnitude(mantissas, e):
    """Against exact rational arithmetic: (mean, std with ddof 1) of v · 2^e, within a few
    ulps of the exact values rounded, for every e where the entries are normal floats or
    subnormal — where np.mean and np.std overflow (2^1000 squared) or underflow."""
    from fractions import Fraction

    from otdiv._scaling import mean_std

    v = np.ldexp(np.array(mantissas), e)
    assume(np.isfinite(v).all())
    exact = [Fraction(float(a)) for a in v]
    m = sum(exact) / len(exact)
    mean, std = mean_std(v)
    top = max(abs(a) for a in exact)
    # the scaled computation rounds like the plain one: a few ulps of the largest entry
    slack = float(top) * 2.0**-52 * 8 * len(v) + 2.0**-1074
    assert abs(Fraction(mean) - m) <= Fraction(slack)
    if len(v) == 1:
        assert std == 0.0
        return
    var = sum((a - m) ** 2 for a in exact) / (len(exact) - 1)
    k = math.frexp(float(top))[1]  # the sqrt in units of 2^k: no over- or underflow
    truth = math.ldexp(math.sqrt(float(var / Fraction(4) ** k)), k)
    assert math.isfinite(std)
    assert abs(std - truth) <= slack + 1e-12 * truth


def test_mean_std_checks_its_values():
    from otdiv._scaling import mean_std

    assert mean_std(torch.tensor([1.0, 3.0], requires_grad=True)) == (2.0, math.sqrt(2.0))
    for bad, exc in (([], ValueError), ([[1.0, 2.0]], ValueError), ([1.0, np.nan], ValueError),
                     (["1", "2"], TypeError), ([1 + 1j], TypeError)):
        with pytest.raises(exc, match=r"^values"):
            mean_std(bad)
