"""KL and JSD on histograms and logits, and the k-NN estimators on samples.

Truths: scipy (entropy, jensenshannon**2, rel_entr), closed forms (Gaussian KL, disjoint
supports, logits of ±1e4), a numerical integral (JSD of two Gaussians), numpy's log,
finite differences on the torch path, and hypothesis invariants.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr, softmax
from scipy.stats import entropy

from otdiv import jsd, jsd_knn, kl, kl_knn

LOG2 = math.log(2.0)


def _histograms(rng, shape, zero_fraction=0.2):
    h = rng.random(shape)
    h[rng.random(shape) < zero_fraction] = 0.0
    return h


# ------------------------------------------------------------------ histograms vs scipy


@pytest.mark.parametrize("shape, axis", [((7,), -1), ((50, 13), 1), ((13, 50), 0),
                                         ((3, 9, 4), 1), ((300, 1000), -1)])
def test_kl_matches_scipy_entropy(rng, shape, axis):
    p, q = _histograms(rng, shape), _histograms(rng, shape, 0.0) + 0.01
    np.testing.assert_allclose(kl(p, q, axis=axis), entropy(p, q, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(kl(p, q, axis=axis, base=2), entropy(p, q, axis=axis, base=2),
                               rtol=1e-12)


@pytest.mark.parametrize("shape, axis", [((7,), -1), ((50, 13), 1), ((13, 50), 0),
                                         ((3, 9, 4), -2), ((300, 1000), -1)])
def test_jsd_matches_scipy_squared(rng, shape, axis):
    p, q = _histograms(rng, shape), _histograms(rng, shape)
    # make sure no histogram is all-zero
    np.moveaxis(p, axis, -1)[..., 0] += 0.5
    np.moveaxis(q, axis, -1)[..., 1] += 0.5
    expected = jensenshannon(p, q, axis=axis) ** 2
    np.testing.assert_allclose(jsd(p, q, axis=axis), expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(jsd(p, q, axis=axis, base=2),
                               jensenshannon(p, q, axis=axis, base=2) ** 2, rtol=1e-10)


def test_kl_is_rel_entr_sum_of_normalised(rng):
    p, q = _histograms(rng, (20, 30)), rng.random((20, 30)) + 0.1
    pn, qn = p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)
    np.testing.assert_allclose(kl(p, q), rel_entr(pn, qn).sum(1), rtol=1e-12)


def test_broadcasting_one_reference_against_a_batch(rng):
    p, q = rng.random((6, 10)), rng.random(10)
    np.testing.assert_allclose(kl(p, q), entropy(p, np.broadcast_to(q, p.shape), axis=1),
                               rtol=1e-12)
    np.testing.assert_allclose(jsd(q, p), jensenshannon(q[None], p, axis=1) ** 2, rtol=1e-10)


def test_return_types(rng):
    p, q = rng.random(5), rng.random(5)
    assert type(kl(p, q)) is float and type(jsd(p, q)) is float
    out = jsd(rng.random((2, 3, 5)), rng.random((2, 3, 5)))
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)
    assert kl(np.ones((0, 4)), np.ones((0, 4))).shape == (0,)
    t = kl(torch.rand(5), torch.rand(5))
    assert isinstance(t, torch.Tensor) and t.shape == () and t.dtype == torch.float32
    assert jsd(torch.rand(4, 5, dtype=torch.float64), torch.rand(4, 5)).dtype == torch.float64


# ------------------------------------------------------------------ exact edge cases


def test_zero_bins_and_infinite_kl():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.0, 0.5, 0.5])
    assert kl(p, q) == math.inf  # p > 0 = q in the first bin
    # 0 log 0 = 0: a bin empty in both changes nothing
    np.testing.assert_allclose(kl([0.2, 0.8, 0.0], [0.5, 0.5, 0.0]),
                               0.2 * math.log(0.4) + 0.8 * math.log(1.6), rtol=1e-14)
    assert kl(q[::-1], [0.2, 0.3, 0.5]) < math.inf  # q = 0 where p = 0 is fine
    assert kl(p, p) == 0.0


def test_disjoint_supports_give_log2_exactly():
    p, q = np.array([0.3, 0.7, 0.0, 0.0]), np.array([0.0, 0.0, 0.1, 0.9])
    assert jsd(p, q) == pytest.approx(LOG2, rel=1e-15)
    assert jsd(p, q, base=2) == pytest.approx(1.0, rel=1e-15)
    assert float(jsd(torch.tensor(p), torch.tensor(q))) == pytest.approx(LOG2, rel=1e-15)
    assert kl(p, q) == math.inf and float(kl(torch.tensor(p), torch.tensor(q))) == math.inf


def test_scipy_nan_cases_are_values_or_errors_here():
    # scipy returns nan for an all-zero histogram; here it is a ValueError naming it
    with np.errstate(invalid="ignore"):
        assert np.isnan(jensenshannon([0.0, 0.0], [1.0, 0.0]))
    with pytest.raises(ValueError, match="p is an all-zero histogram"):
        jsd([0.0, 0.0], [1.0, 0.0])
    # unnormalised, tiny and huge masses: the same values as normalised ones
    p, q = np.array([1e-300, 3e-300]), np.array([2e-300, 1e-300])
    np.testing.assert_allclose(kl(p, q), kl(p * 1e300, q * 1e300), rtol=1e-14)
    np.testing.assert_allclose(jsd(p * 1e300, q), jsd([1, 3], [2, 1]), rtol=1e-14)


@pytest.mark.parametrize("tiny", [2.2250738585072014e-308, 5e-324, 3.3e-121])
def test_jsd_with_subnormal_and_tiny_bins(tiny):
    # found by hypothesis: 1/(a+b) overflows for a subnormal bin, 1 − d loses a tiny side
    p, q = np.array([1.0, 0.0]), np.array([1.0, tiny])
    expected = 0.5 * tiny / (1 + tiny) * LOG2  # only the second bin: ½ b log(2b/b)
    np.testing.assert_allclose(jsd(p, q), expected, rtol=1e-12, atol=1e-323)
    np.testing.assert_allclose(float(jsd(torch.tensor(p), torch.tensor(q))), expected,
                               rtol=1e-12, atol=1e-323)
    p2 = np.array([1.0, 1.0])
    np.testing.assert_allclose(jsd(p2, q), jensenshannon(p2, q) ** 2, rtol=1e-12)


@pytest.mark.parametrize("eps", [1e-4, 1e-6, 1e-7])
def test_small_jsd_keeps_relative_precision(eps):
    mp = pytest.importorskip("mpmath")  # 50-digit reference (mpmath ships with torch's sympy)
    mp.mp.dps = 50
    p = np.array([0.25, 0.25, 0.5])
    q = p + eps * np.array([1.0, -1.0, 0.0])  # JSD ≈ eps²: 1e-8 down to 1e-14
    P, Q = [mp.mpf(float(v)) for v in p], [mp.mpf(float(v)) for v in q]
    P, Q = [v / sum(P) for v in P], [v / sum(Q) for v in Q]
    exact = float(sum(a * mp.log(2 * a / (a + b)) + b * mp.log(2 * b / (a + b))
                      for a, b in zip(P, Q, strict=True)) / 2)
    np.testing.assert_allclose(jsd(p, q), exact, rtol=1e-8)
    np.testing.assert_allclose(float(jsd(torch.tensor(p), torch.tensor(q))), exact, rtol=1e-8)


def test_kernel_log_matches_numpy_log(rng):
    from otdiv.kernels.divergence_numba import log_array

    x = np.concatenate([rng.random(10_000), np.exp(rng.uniform(-740, 709, 10_000)),
                        1 + rng.uniform(-1e-9, 1e-9, 1000), rng.uniform(0.7, 1.5, 10_000),
                        [5e-324, 1e-310, 2.2250738585072014e-308, 1.0, 2.0, 0.5,
                         1.7976931348623157e308]])
    out = np.empty_like(x)
    log_array(x, out)
    ref = np.log(x)
    assert np.all(np.abs(out - ref) <= np.spacing(np.abs(ref)))  # within 1 ulp
    special = np.array([0.0, np.inf])
    log_array(special, out[:2])
    assert out[0] == -np.inf and out[1] == np.inf


# ------------------------------------------------------------------ logits


def test_logits_match_softmax_histograms(rng):
    lp, lq = rng.normal(size=(8, 6)) * 3, rng.normal(size=(8, 6)) * 3
    np.testing.assert_allclose(kl(lp, lq, logits=True), entropy(softmax(lp, 1), softmax(lq, 1),
                                                                axis=1), rtol=1e-12)
    np.testing.assert_allclose(jsd(lp, lq, logits=True, axis=0),
                               jensenshannon(softmax(lp, 0), softmax(lq, 0), axis=0) ** 2,
                               rtol=1e-10)


@pytest.mark.parametrize("to", [np.asarray, lambda v: torch.tensor(v, dtype=torch.float64)])
def test_logits_of_1e4_are_finite_and_exact(to):
    lp, lq = to([1e4, -1e4]), to([-1e4, 1e4])
    # softmax(lp) = (1, e^-2e4): KL = 1 * (0 - (-2e4)) + e^-2e4 * (...) = 2e4
    assert float(kl(lp, lq, logits=True)) == pytest.approx(2e4, rel=1e-15)
    assert float(jsd(lp, lq, logits=True)) == pytest.approx(LOG2, rel=1e-15)
    assert float(kl(lp, lp, logits=True)) == 0.0
    # shifting logits changes nothing
    assert float(kl(lp + 1e4, lq, logits=True)) == pytest.approx(2e4, rel=1e-15)


def test_logits_of_1e4_in_float32():
    lp, lq = torch.tensor([1e4, -1e4]), torch.tensor([-1e4, 1e4])
    assert float(kl(lp, lq, logits=True)) == pytest.approx(2e4, rel=1e-6)
    assert float(jsd(lp, lq, logits=True)) == pytest.approx(LOG2, rel=1e-6)


# ------------------------------------------------------------------ torch


def test_torch_matches_numpy_and_keeps_device(rng):
    p, q = _histograms(rng, (5, 7)) + 1e-3, _histograms(rng, (5, 7))
    for f in (kl, jsd):
        out = f(torch.tensor(p), torch.tensor(q), axis=1, base=3)
        np.testing.assert_allclose(out.numpy(), f(p, q, axis=1, base=3), rtol=1e-12)
        assert out.device == torch.device("cpu")


@pytest.mark.parametrize("f", [kl, jsd])
@pytest.mark.parametrize("logits", [False, True])
def test_torch_gradients_match_finite_differences(rng, f, logits):
    p = torch.tensor(rng.random((3, 5)) + 0.1, requires_grad=True)
    q = torch.tensor(rng.random((3, 5)) + 0.1, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: f(a, b, logits=logits), (p, q))


def test_torch_gradients_finite_with_zero_bins():
    p = torch.tensor([0.0, 0.3, 0.7], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.2, 0.0, 0.8], dtype=torch.float64, requires_grad=True)
    jsd(p, q).backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()
    # gradient in the bins where both are positive, against a finite difference
    h = 1e-6
    dp = torch.tensor([0.0, 0.0, h], dtype=torch.float64)
    fd = (jsd(p.detach() + dp, q.detach()) - jsd(p.detach() - dp, q.detach())) / (2 * h)
    np.testing.assert_allclose(float(p.grad[2]), float(fd), rtol=1e-6)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("f", [kl, jsd])
def test_bad_input_errors_name_the_argument(f):
    good = np.ones(3)
    with pytest.raises(ValueError, match="q is an all-zero histogram"):
        f(good, np.zeros(3))
    with pytest.raises(ValueError, match=r"p is an all-zero histogram at batch index \(1, 0\)"):
        f(np.array([[[1.0, 1]], [[0, 0]]]), np.ones((2, 1, 2)))
    with pytest.raises(ValueError, match="p has negative entries"):
        f([1.0, -0.5, 1], good)
    with pytest.raises(ValueError, match="q contains NaN or inf"):
        f(good, [1.0, np.nan, 1])
    with pytest.raises(ValueError, match="p contains NaN or inf"):
        f([np.inf, 1, 1], good)
    with pytest.raises(ValueError, match="p contains NaN or inf"):
        f([np.inf, 1, 1], good, logits=True)
    with pytest.raises(ValueError, match="broadcastable shapes"):
        f(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        f(np.ones((2, 3)), np.ones((2, 3)), axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        f(good, good, axis=1.0)
    # a base in (0, 1) makes log(base) < 0 and the divergence negative: only base > 1
    for base in (1, 0.5, 0.0, -2, math.inf, math.nan):
        with pytest.raises(ValueError, match=r"base must be a finite number > 1 .* got"):
            f(good, good, base=base)
    with pytest.raises(TypeError, match="base must be a real number > 1"):
        f(good, good, base="2")
    with pytest.raises(ValueError, match="p must have at least one dimension"):
        f(1.0, good)
    with pytest.raises(ValueError, match="no bins"):
        f(np.ones((2, 0)), np.ones((2, 0)))
    with pytest.raises(TypeError, match="mixed array kinds"):
        f(torch.ones(3), good)
    with pytest.raises(ValueError, match="q is an all-zero histogram at batch index"):
        f(torch.ones(2, 3), torch.tensor([[1.0, 1, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match="p has negative entries"):
        f(torch.tensor([1.0, -1, 1]), torch.ones(3))


# ------------------------------------------------------------------ invariants

@st.composite
def _pair(draw, count=2):
    n = draw(st.integers(1, 12))
    h = arrays(np.float64, n, elements=st.floats(0, 1e6, allow_subnormal=False))
    return [draw(h.filter(lambda v: v.sum() > 0)) for _ in range(count)]


@given(_pair())
def test_kl_nonnegative_and_zero_on_itself(pq):
    p, q = pq
    assert kl(p, q) >= 0.0
    assert kl(p, p) == pytest.approx(0.0, abs=1e-12)


@given(_pair())
def test_jsd_bounded_and_symmetric(pq):
    p, q = pq
    v = jsd(p, q)
    assert 0.0 <= v <= LOG2
    np.testing.assert_allclose(v, jsd(q, p), rtol=1e-12, atol=1e-15)
    # scipy's own sum, which can round below 0 (then jensenshannon's sqrt gives nan)
    pn, qn = p / p.sum(), q / q.sum()
    m = 0.5 * (pn + qn)
    expected = max(0.5 * (rel_entr(pn, m).sum() + rel_entr(qn, m).sum()), 0.0)
    np.testing.assert_allclose(v, expected, rtol=1e-8, atol=1e-14)


@given(_pair(3))
def test_sqrt_jsd_triangle_inequality(pqr):
    p, q, r = pqr
    assert math.sqrt(jsd(p, r)) <= math.sqrt(jsd(p, q)) + math.sqrt(jsd(q, r)) + 1e-7


# ------------------------------------------------------------------ k-NN estimators


def test_kl_knn_gaussians_within_10_percent(rng):
    # KL(N(0, I) ‖ N(μ, I)) = |μ|²/2 in any dimension
    mu = np.array([1.5, 1.0])
    x = rng.standard_normal((5000, 2))
    y = rng.standard_normal((5000, 2)) + mu
    assert kl_knn(x, y) == pytest.approx(0.5 * mu @ mu, rel=0.10)
    # and a scale change in 1-D: KL(N(0,1) ‖ N(0,s²)) = log s + 1/(2s²) − ½
    s = 3.0
    x1, y1 = rng.standard_normal(5000), s * rng.standard_normal(6000)
    assert kl_knn(x1, y1, k=1) == pytest.approx(math.log(s) + 1 / (2 * s * s) - 0.5, rel=0.10)


def _jsd_gaussians_1d(delta):
    p, q = stats.norm(0, 1), stats.norm(delta, 1)

    def f(t):
        a, b = p.pdf(t), q.pdf(t)
        m = 0.5 * (a + b)
        return 0.5 * (rel_entr(a, m) + rel_entr(b, m))

    return integrate.quad(f, -30, 30 + delta, limit=200)[0]


def test_jsd_knn_gaussians_within_10_percent(rng):
    mu = np.array([1.5, 1.0])  # JSD depends on |μ| only: a 1-D integral gives the truth
    x = rng.standard_normal((5000, 2))
    y = rng.standard_normal((4000, 2)) + mu
    assert jsd_knn(x, y) == pytest.approx(_jsd_gaussians_1d(np.linalg.norm(mu)), rel=0.10)
    assert jsd_knn(x, rng.standard_normal((5000, 2))) == pytest.approx(0.0, abs=0.02)


def test_estimators_on_disjoint_and_singular_supports(rng):
    # parallel lines P_0 = (0, Z), P_θ = (θ, Z): JSD = log 2, KL = inf
    def lines(n, theta):
        z = rng.random(n)
        return np.c_[np.zeros(n), z], np.c_[np.full(n, theta), rng.random(n)]

    x, y = lines(2000, 0.5)
    assert jsd_knn(x, y) == pytest.approx(LOG2, rel=1e-3)
    # the KL estimate diverges like (d / intrinsic dimension) · log n = 2 log n: within a
    # line the neighbour distance ρ shrinks like 1/n while ν to the other line stays ~θ
    small, large = kl_knn(*lines(500, 0.5)), kl_knn(*lines(50_000, 0.5))
    assert large - small == pytest.approx(2 * math.log(100), rel=0.1)


def test_knn_torch_matches_numpy_and_is_differentiable(rng):
    x, y = rng.standard_normal((300, 2)), rng.standard_normal((200, 2)) + 0.5
    for f in (kl_knn, jsd_knn):
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.tensor(y, requires_grad=True)
        out = f(tx, ty)
        assert out.shape == ()
        np.testing.assert_allclose(float(out.detach()), f(x, y), rtol=1e-12)
        out.backward()
        assert torch.isfinite(tx.grad).all() and ty.grad.abs().sum() > 0
    # the neighbours do not change under a tiny step: finite differences are exact there
    tx = torch.tensor(x[:50], requires_grad=True)
    ty = torch.tensor(y[:40])
    assert torch.autograd.gradcheck(lambda a: kl_knn(a, ty, k=2), (tx,))


def test_knn_bad_input():
    x = np.arange(10.0).reshape(5, 2)
    with pytest.raises(ValueError, match="x has repeated points"):
        kl_knn(np.r_[x, x[:1]], x + 0.5)
    with pytest.raises(ValueError, match="coincide with points of y"):
        kl_knn(x, x[:3])
    with pytest.raises(ValueError, match="x and y share points"):
        jsd_knn(x, np.r_[x[:1], x[1:] + 0.5], k=1)
    with pytest.raises(ValueError, match="x has 5 points; k=5 needs at least 6"):
        kl_knn(x, x + 0.5, k=5)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        jsd_knn(x, x + 0.5, k=0)
    with pytest.raises(ValueError, match="same dimension"):
        kl_knn(x, np.ones((4, 3)))
    with pytest.raises(TypeError, match="mixed array kinds"):
        jsd_knn(torch.tensor(x), x + 0.5, k=1)
    with pytest.raises(ValueError, match="x contains NaN"):
        kl_knn(np.r_[x, [[np.nan, 0]]], x + 0.5)
