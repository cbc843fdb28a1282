"""kl, jsd, kl_knn and jsd_knn over the whole float range, numpy and torch float32/float64.

Truths: 60-digit mpmath on the exact values of the float inputs (for ratios that leave the
float range, where scipy's rel_entr itself overflows), scipy where its arithmetic is exact
enough, analytic gradients, exact homogeneity of the k-NN estimators, and the invariants
KL >= 0, 0 <= JSD <= log 2. Tolerances come from an error bound: each bin's log ratio is
good to a few ulps of the logs it is made of.
"""

import math

import mpmath as mp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.stats import entropy

from otdiv import jsd, jsd_knn, kl, kl_knn

LOG2 = math.log(2.0)
EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)
mp.mp.dps = 60


def _jsd_bin(a, b):
    """a log(2a/(a+b)) + b log(2b/(a+b)) without cancellation.

    With d = (a − b)/(a + b) it is (a + b)/2 · [(1 + d) log(1 + d) + (1 − d) log(1 − d)],
    whose two first-order terms cancel: taken directly, 60 digits leave nothing of a bin with
    a ≈ b to 1e-48. The series Σ_k d^{2k} / (k (2k − 1)) has no cancellation.
    """
    if a == 0 or b == 0:
        return (a + b) * mp.log(2)
    d = (a - b) / (a + b)
    if abs(d) > mp.mpf("0.01"):
        return a * mp.log(2 * a / (a + b)) + b * mp.log(2 * b / (a + b))
    series = mp.fsum(d ** (2 * k) / (k * (2 * k - 1)) for k in range(1, 40))
    return (a + b) / 2 * series


def _exact(p, q):
    """(KL, JSD, Σ p_j |log(p_j/q_j)| + Σ |p_j − q_j|) of the normalised histograms, in 60 digits.

    The third is the error scale: a log ratio is good to a few ulps of itself, and the JSD
    of p ≈ q, Σ (p − q)²/(4(p + q)), moves by |p_j − q_j|·ε when p_j and q_j round by ε.
    """
    P = [mp.mpf(float(v)) for v in p]
    Q = [mp.mpf(float(v)) for v in q]
    sp, sq = sum(P), sum(Q)
    P, Q = [v / sp for v in P], [v / sq for v in Q]
    kl_v, spread, js = mp.mpf(0), mp.mpf(0), mp.mpf(0)
    for a, b in zip(P, Q, strict=True):
        if a > 0:
            if b == 0:
                kl_v = mp.inf
            else:
                kl_v += a * mp.log(a / b)
                spread += a * abs(mp.log(a / b))
        js += _jsd_bin(a, b)
        spread += abs(a - b)
    return float(kl_v), float(js / 2), float(spread)


def _js_tol(exact_js, spread):
    """The JSD's error bound: a few ulps of the value and of the spread, plus the floor that
    normalising in floating point leaves. p/Σp and q/Σq round by ~ε each, so bins equal in
    exact arithmetic (p ∝ q) come out with a relative difference d ~ 2ε, and the JSD, whose
    bins are (p_j + q_j)·d_j²/4 to leading order, can be ~ε² with a true value of 0."""
    return 16 * EPS64 * (exact_js + spread) + 8 * EPS64**2


def _t(v, dtype=torch.float64, grad=False):
    return torch.tensor(np.asarray(v, dtype=np.float64), dtype=dtype, requires_grad=grad)


# ------------------------------------------------------------------ defect 1: extreme histograms

EXTREME = [
    ([1e-200, 1.0], [1e200, 1.0]),  # was 0.0 on numpy (ratio 1e-400 underflowed)
    ([4.0, 1.0], [2.22e-308, 1.0]),  # was inf (4/2.22e-308 overflowed; q has no zero)
    ([5e-324, 0.0], [1.0, 1.0]),  # was inf (1/Σp overflowed), jsd NaN
    ([1.0, 1.0], [5e-324, 1e10]),  # a subnormal q bin far below its row's largest
    ([1e308, 1e308, 1.0], [1.0, 3.0, 1e308]),  # Σp overflows float64
    ([1e-310, 3e-310], [2e-310, 1e-310]),  # all subnormal
    ([1e300, 5e-324], [5e-324, 1e300]),  # ratio 1e624
    ([0.25, 0.25, 0.5], [0.25 + 1e-9, 0.25 - 1e-9, 0.5]),  # p ≈ q: KL ≈ 4e-18
]


@pytest.mark.parametrize("p, q", EXTREME)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_extreme_histograms_match_60_digit_truth(p, q, backend):
    exact_kl, exact_js, spread = _exact(p, q)
    if backend == "numpy":
        got_kl, got_js = kl(p, q), jsd(p, q)
    else:
        got_kl, got_js = float(kl(_t(p), _t(q))), float(jsd(_t(p), _t(q)))
    # each bin's log ratio is good to a few ulps of its logs; terms below 2^-1022 may vanish
    tol = 16 * EPS64 * (spread + exact_kl + 1) + 1e-300
    assert abs(got_kl - exact_kl) <= tol, (got_kl, exact_kl)
    assert abs(got_js - exact_js) <= _js_tol(exact_js, spread), (got_js, exact_js)


def test_listed_cases_give_the_listed_values():
    assert kl([1e-200, 1.0], [1e200, 1.0]) == pytest.approx(math.log(1e200), rel=1e-14)
    assert kl([4.0, 1.0], [2.22e-308, 1.0]) == pytest.approx(
        0.8 * math.log(0.8 / 2.22e-308) + 0.2 * math.log(0.2), rel=1e-14)
    assert kl([5e-324, 0.0], [1.0, 1.0]) == pytest.approx(LOG2, rel=1e-15)
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])  # what [5e-324, 0] normalises to
    assert jsd([5e-324, 0.0], [1.0, 1.0]) == pytest.approx(
        0.5 * (rel_entr(p, (p + q) / 2).sum() + rel_entr(q, (p + q) / 2).sum()), rel=1e-14)


@pytest.mark.parametrize("to", [np.asarray, _t, lambda v: _t(v, torch.float32)])
def test_negative_zero_in_q_is_a_zero(to):
    # scipy: q = −0.0 where p > 0 gives KL = +inf; the numpy kernel once took log(−0.0·…)
    assert entropy([0.5, 1.0], [-0.0, 1.0]) == math.inf
    assert float(kl(to([0.5, 1.0]), to([-0.0, 1.0]))) == math.inf
    assert float(kl(to([0.0, 1.0]), to([-0.0, 1.0]))) == 0.0
    assert float(jsd(to([0.5, 1.0]), to([-0.0, 1.0]))) == pytest.approx(
        float(jsd(to([0.5, 1.0]), to([0.0, 1.0]))), rel=1e-15)


@st.composite
def _wide_pair(draw, lo=-320, hi=300):
    """Two histograms whose entries span 10^lo .. 10^hi, some exactly 0 (and −0.0 in q)."""
    n = draw(st.integers(1, 8))

    def one():
        exps = draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))
        mant = draw(st.lists(st.floats(1.0, 9.99), min_size=n, max_size=n))
        zero = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        h = np.array([0.0 if z else m * 10.0**e if e > -300 else m * 1e-300 * 10.0**(e + 300)
                      for m, e, z in zip(mant, exps, zero, strict=True)])
        return h if h.sum() > 0 else np.r_[h[:-1], 1.0]

    p, q = one(), one()
    if draw(st.booleans()):
        q = np.where(q == 0, -0.0, q)
    return p, q


@given(_wide_pair())
def test_wide_range_kl_jsd_match_truth_and_invariants(pq):
    p, q = pq
    exact_kl, exact_js, spread = _exact(p, q)
    tol = 16 * EPS64 * (spread + 1) + 1e-300
    for got_kl, got_js in ((kl(p, q), jsd(p, q)),
                           (float(kl(_t(p), _t(q))), float(jsd(_t(p), _t(q))))):
        assert got_kl >= 0.0 and 0.0 <= got_js <= LOG2
        if math.isinf(exact_kl):
            assert got_kl == math.inf
        else:
            assert abs(got_kl - exact_kl) <= tol, (got_kl, exact_kl)
        assert abs(got_js - exact_js) <= _js_tol(exact_js, spread), (got_js, exact_js)
    for base in (2, 10):
        assert 0.0 <= jsd(p, q, base=base) <= LOG2 / math.log(base) * (1 + 4 * EPS64)


@given(_wide_pair(lo=-45, hi=38))
def test_float32_kl_jsd_match_truth_and_invariants(pq):
    p, q = pq
    p, q = (np.clip(h, 0, 3e38).astype(np.float32).astype(np.float64) for h in (p, q))
    if not (p.sum() > 0 and q.sum() > 0):
        return
    exact_kl, exact_js, spread = _exact(p, q)
    got_kl = float(kl(_t(p, torch.float32), _t(q, torch.float32)))
    got_js = float(jsd(_t(p, torch.float32), _t(q, torch.float32)))
    assert got_kl >= 0.0 and 0.0 <= got_js <= LOG2 * (1 + 2 * EPS32)
    if math.isinf(exact_kl):
        assert got_kl == math.inf
    else:
        assert abs(got_kl - exact_kl) <= 16 * EPS32 * (spread + 1) + 1e-38, (got_kl, exact_kl)
    assert abs(got_js - exact_js) <= 16 * EPS32 * (exact_js + spread) + 1e-38, (got_js, exact_js)


# ------------------------------------------------------------------ defect 2: gradients


def _jsd_grad_exact(P, Q):
    """∂JSD/∂P and ∂JSD/∂Q in 60 digits (the one-sided slope at an empty bin taken as 0)."""
    P, Q = [mp.mpf(float(v)) for v in P], [mp.mpf(float(v)) for v in Q]
    sp, sq = sum(P), sum(Q)
    a, b = [v / sp for v in P], [v / sq for v in Q]
    ga = [mp.log(2 * u / (u + v)) / 2 if u > 0 else 0 for u, v in zip(a, b, strict=True)]
    gb = [mp.log(2 * v / (u + v)) / 2 if v > 0 else 0 for u, v in zip(a, b, strict=True)]
    ma = sum(u * g for u, g in zip(a, ga, strict=True))
    mb = sum(v * g for v, g in zip(b, gb, strict=True))
    return (np.array([float((g - ma) / sp) for g in ga]),
            np.array([float((g - mb) / sq) for g in gb]))


@pytest.mark.parametrize("dtype, tiny", [(torch.float32, 1e-8), (torch.float64, 1e-17),
                                         (torch.float32, 1e-45), (torch.float64, 5e-324),
                                         (torch.float32, 0.0)])
def test_jsd_gradients_finite_and_right_with_a_tiny_bin(dtype, tiny):
    P = np.array([tiny, 1.0, 0.3], dtype=np.float64)
    Q = np.array([0.5, 0.5, 0.0])
    P = P.astype(np.float32).astype(np.float64) if dtype == torch.float32 else P
    p, q = _t(P, dtype, True), _t(Q, dtype, True)
    jsd(p, q).backward()  # was NaN in every entry
    gp, gq = _jsd_grad_exact(P, Q)
    eps = EPS32 if dtype == torch.float32 else EPS64
    np.testing.assert_allclose(p.grad.double().numpy(), gp, rtol=64 * eps, atol=64 * eps)
    np.testing.assert_allclose(q.grad.double().numpy(), gq, rtol=64 * eps, atol=64 * eps)


def test_kl_gradient_with_a_float32_subnormal_bin_is_finite_and_right():
    P, Q = np.array([0.5, 0.5]), np.array([float(np.float32(1e-45)), 1.0])
    p, q = _t(P, torch.float32, True), _t(Q, torch.float32, True)
    kl(p, q).backward()  # was (nan, inf) for q
    # ∂KL/∂Q_j = −p_j/Q_j + 1/ΣQ: −3.5e44 does not fit float32 and saturates at its largest
    big = torch.finfo(torch.float32).max
    assert float(q.grad[0]) == -big
    assert float(q.grad[1]) == pytest.approx(-0.5 / 1.0 + 1 / Q.sum(), rel=1e-6)
    # ∂KL/∂P_j = (log(p_j/q_j) − KL)/ΣP
    pn, qn = P / P.sum(), Q / Q.sum()
    lr = np.log(pn / qn)
    np.testing.assert_allclose(p.grad.double().numpy(), (lr - pn @ lr) / P.sum(), rtol=1e-5)
    # p with the subnormal bin: finite, and its own bin's slope is log(p_0/q_0) − KL
    p2, q2 = _t(Q[::-1].copy(), torch.float32, True), _t(P, torch.float32, True)
    kl(p2, q2).backward()
    assert torch.isfinite(p2.grad).all() and torch.isfinite(q2.grad).all()


@pytest.mark.parametrize("f", [kl, jsd])
def test_gradcheck_at_moderate_values_beside_a_bin_empty_in_both(f, rng):
    # the divergence is smooth in the other bins; the empty one is held at 0 (no two-sided
    # difference exists there)
    zero = torch.zeros(1, dtype=torch.float64)
    p = torch.tensor(rng.random(4) + 0.1, requires_grad=True)
    q = torch.tensor(rng.random(4) + 0.1, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: f(torch.cat([a, zero]), torch.cat([b, zero])), (p, q))


@given(_wide_pair(), st.sampled_from([torch.float32, torch.float64]),
       st.sampled_from([kl, jsd]))
def test_gradients_never_nan_or_inf(pq, dtype, f):
    p, q = pq
    if dtype == torch.float32:
        p, q = np.clip(p, 0, 1e38), np.clip(q, 0, 1e38)
        if not (p.astype(np.float32).sum() > 0 and q.astype(np.float32).sum() > 0):
            return
    tp, tq = _t(p, dtype, True), _t(q, dtype, True)
    value = f(tp, tq)
    if not torch.isfinite(value):
        return  # KL = inf: p > 0 = q somewhere
    value.backward()
    assert torch.isfinite(tp.grad).all() and torch.isfinite(tq.grad).all()


# ------------------------------------------------------------------ defect 4: logits


def _exact_logits(lp, lq):
    def log_softmax(x):
        x = [mp.mpf(float(v)) for v in x]
        top = max(x)  # v − top is exact; top + log Σ would round away log Σ at 1e300
        shift = mp.log(sum(mp.exp(v - top) for v in x))
        return [(v - top) - shift for v in x]

    a, b = log_softmax(lp), log_softmax(lq)
    kl_v = sum(mp.exp(u) * (u - v) for u, v in zip(a, b, strict=True))
    js = 0
    for u, v in zip(a, b, strict=True):
        m = mp.log((mp.exp(u) + mp.exp(v)) / 2)
        js += mp.exp(u) * (u - m) + mp.exp(v) * (v - m)
    return kl_v, js / 2


LOGITS = [
    ([1e308, -1e308], [-1e308, 1e308]),  # KL 2e308 overflows: inf is the float; JSD log 2
    ([0.0, 0.0], [1e308, -1e308]),  # KL ≈ 1e308, finite
    ([1e308, -1e308], [0.0, 0.0]),  # KL = log 2
    ([1e300, 1e300], [1.0, 0.0]),  # large equal logits keep their normaliser
    ([-1.7e308, 1.7e308, 0.0], [1.7e308, 1.7e308, -1.7e308]),
]


@pytest.mark.parametrize("lp, lq", LOGITS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_logits_at_the_ends_of_the_range(lp, lq, backend):
    exact_kl, exact_js = _exact_logits(lp, lq)
    if backend == "numpy":
        got_kl, got_js = kl(lp, lq, logits=True), jsd(lp, lq, logits=True)
    else:
        got_kl = float(kl(_t(lp), _t(lq), logits=True))
        got_js = float(jsd(_t(lp), _t(lq), logits=True))
    if exact_kl > np.finfo(np.float64).max:
        assert got_kl == math.inf
    else:
        assert got_kl == pytest.approx(float(exact_kl), rel=1e-14, abs=1e-15)
    assert got_js == pytest.approx(float(exact_js), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("lp, lq", [([3e38, -3e38], [-3e38, 3e38]), ([0.0, 0.0], [3e38, -3e38]),
                                    ([3e38, -3e38], [0.0, 0.0]), ([3e38, 3e38], [1.0, 0.0])])
def test_float32_logits_at_the_ends_of_the_range(lp, lq):
    lp32, lq32 = np.float32(lp).astype(np.float64), np.float32(lq).astype(np.float64)
    exact_kl, exact_js = _exact_logits(lp32, lq32)
    p, q = _t(lp32, torch.float32, True), _t(lq32, torch.float32, True)
    got_kl, got_js = kl(p, q, logits=True), jsd(p, q, logits=True)
    if exact_kl > np.finfo(np.float32).max:
        assert got_kl.item() == math.inf
    else:
        assert got_kl.item() == pytest.approx(float(exact_kl), rel=1e-6, abs=1e-7)
        got_kl.backward()
        assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()
    assert got_js.item() == pytest.approx(float(exact_js), rel=1e-6, abs=1e-7)


@given(st.lists(st.tuples(st.floats(-1e300, 1e300), st.floats(-1e300, 1e300)),
                min_size=1, max_size=6))
def test_logits_never_nan_and_in_range(pairs):
    lp, lq = np.array(pairs).T
    for got_kl, got_js in ((kl(lp, lq, logits=True), jsd(lp, lq, logits=True)),
                           (float(kl(_t(lp), _t(lq), logits=True)),
                            float(jsd(_t(lp), _t(lq), logits=True)))):
        assert got_kl >= 0.0 and 0.0 <= got_js <= LOG2


# ------------------------------------------------------------------ defect 5: k-NN scaling


@pytest.fixture(scope="module")
def samples():
    r = np.random.default_rng(7)
    return r.standard_normal((60, 2)), r.standard_normal((45, 2)) + 0.7


@pytest.mark.parametrize("c", [1e200, 1e300, 1e-170, 1e-300, 2.0**-1000, 2.0**1000])
def test_knn_estimators_at_extreme_scales_float64(samples, c):
    x, y = samples
    for f in (kl_knn, jsd_knn):
        ref = f(x, y)
        # c·x rounds each coordinate by half an ulp: distance ratios move by ~1e-15
        assert f(c * x, c * y) == pytest.approx(ref, abs=1e-12)
        assert float(f(_t(c * x), _t(c * y))) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("c", [1e30, 1e-30, 1e38, 1e-36])
def test_knn_estimators_at_extreme_scales_float32(samples, c):
    x, y = samples
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    for f in (kl_knn, jsd_knn):
        ref = f(x32.astype(np.float64), y32.astype(np.float64))
        got = f(_t(c * x32.astype(np.float64), torch.float32),
                _t(c * y32.astype(np.float64), torch.float32))
        # float32 distances are good to ~1e-7 relative; log-distance means to a few 1e-6
        assert float(got) == pytest.approx(ref, abs=1e-4)


@given(st.integers(-300, 300), st.integers(0, 2**32 - 1))
def test_knn_homogeneity_over_the_range(k, seed):
    r = np.random.default_rng(seed)
    x, y = r.standard_normal((30, 2)), r.standard_normal((25, 2)) + 0.5
    c = 10.0**k
    for f in (kl_knn, jsd_knn):
        ref = f(x, y)
        assert f(c * x, c * y) == pytest.approx(ref, abs=1e-10)
        assert float(f(_t(c * x), _t(c * y))) == pytest.approx(ref, abs=1e-10)
        if -30 <= k <= 30:
            got = f(_t(c * x, torch.float32), _t(c * y, torch.float32))
            assert float(got) == pytest.approx(ref, abs=1e-3)


def test_knn_torch_gradients_scale_like_the_inputs(samples):
    # KL(c x, c y) does not depend on c, so ∂/∂x at scale c is (1/c)·∂/∂x at scale 1
    x, y = samples
    for c in (1.0, 2.0**-600, 2.0**600):
        tx = _t(c * x, grad=True)
        kl_knn(tx, _t(c * y)).backward()
        if c == 1.0:
            ref = tx.grad.clone()
        else:
            np.testing.assert_allclose((tx.grad * c).numpy(), ref.numpy(), rtol=1e-12)


# ------------------------------------------------------------------ defect 6: seeds


@pytest.mark.parametrize("seed, error, match", [
    ("a", TypeError, "seed must be None or an integer"),
    (1.5, TypeError, "seed must be None or an integer"),
    (True, TypeError, "seed must be None or an integer"),
    (-1, ValueError, r"seed must be None or an integer in \[0, 2\*\*63 - 2\*\*20\) "
                     r"\(at most 9223372036853727231\), got -1"),
    (2**70, ValueError, "seed must be None or an integer"),
])
@pytest.mark.parametrize("m", [40, 45])  # n == m once ignored the seed
def test_jsd_knn_checks_its_seed_up_front(samples, seed, error, match, m):
    x, y = samples
    with pytest.raises(error, match=match):
        jsd_knn(x[:40], y[:m], seed=seed)
