"""Properties of otdiv.wasserstein and otdiv.sliced_wasserstein, tested with otdiv.testing:
metric axioms, monotonicity in p, known-answer pairs (two Diracs, translates, sorted 1-D samples,
permutations, a point against a cloud), invariance to weight scaling and to splitting a point,
agreement with POT's emd2, and the Kantorovich–Rubinstein bound for critics of known constant."""

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from otdiv import sliced_wasserstein, wasserstein
from otdiv.testing import assert_kantorovich_bound, assert_metric
from otdiv.testing import strategies as ots

P = st.sampled_from([1.0, 1.5, 2.0, 3.0])

# A regression: rounding once pushed the running sum of weights past 1 before a last point of
# zero weight, giving W(x, x) < 0, complex W_p (p > 1) and NaN sliced values.
REPRO = ots.Measure(np.arange(4.0), np.array([0.1, 0.4, 0.1, 0.0]))


pytestmark = pytest.mark.threads(numba=1)  # thousands of calls on a few points

SMALL = {"max_n": 6}


def W(u, v, p=1.0, **kw):
    return wasserstein(u.x, v.x, u.a, v.a, p=p, **kw)


def SW(u, v, p=1.0, seed=0, n_projections=16):
    return sliced_wasserstein(u.x, v.x, u.a, v.a, p=p, n_projections=n_projections, seed=seed)


def scale_of(*measures):
    return max(1.0, *(float(np.abs(m.points()).max()) for m in measures))


def cost_close(value, reference, p, scale, rtol=1e-9):
    """W_p agree where it matters numerically: on the cost W_p^p, relative to scale^p."""
    slack = rtol * (2 * scale) ** p
    assert abs(value**p - reference**p) <= slack, (value, reference)


# ---------------------------------------------------------------------------- metric axioms


@given(ots.measure_tuples(3, **SMALL), P)
def test_wasserstein_is_a_metric(ms, p):
    assert_metric(lambda u, v: W(u, v, p), *ms)


@given(ots.measure_tuples(3, **SMALL), P, st.integers(0, 2**32 - 1))
def test_sliced_wasserstein_is_a_metric_for_fixed_directions(ms, p, seed):
    # with the directions fixed, SW_p is an L^p average of 1-D W_p: a pseudo-metric
    assert_metric(lambda u, v: SW(u, v, p, seed), *ms, rtol=1e-6)


# ---------------------------------------------------------------------------- inequalities


@given(ots.measure_tuples(2, **SMALL))
def test_wasserstein_grows_with_p(ms):
    # Jensen: W_p = (E|X - Y|^p)^(1/p) under the optimal coupling for p, is nondecreasing in p
    u, v = ms
    w1, w2, w3 = W(u, v, 1), W(u, v, 2), W(u, v, 3)
    tol = 1e-9 * scale_of(u, v)
    assert w1 <= w2 + tol
    assert w2 <= w3 + tol


@given(ots.measure_tuples(2, **SMALL), P, st.integers(0, 2**32 - 1))
def test_sliced_is_at_most_wasserstein(ms, p, seed):
    # projecting onto a unit vector is 1-Lipschitz, so each sliced W_p^p <= W_p^p
    u, v = ms
    sw, w = SW(u, v, p, seed), W(u, v, p)
    # compared on the cost: a zero W_p^p with rounding 1e-17 has a p-th root of 1e-9
    assert sw**p <= w**p * (1 + 1e-9) + 1e-12 * (2 * scale_of(u, v)) ** p


@given(ots.measure_tuples(2, d=1, **SMALL), P, st.integers(0, 2**32 - 1))
def test_sliced_equals_wasserstein_on_the_line(ms, p, seed):
    u, v = ms  # every direction in 1-D is +1 or -1
    cost_close(SW(u, v, p, seed), W(u, v, p), p, scale_of(u, v))


# ---------------------------------------------------------------------------- known answers


@given(ots.measure_pairs(P, dtype=None, **SMALL))
def test_wasserstein_known_answer_pairs(pair):
    pair.check(wasserstein(pair.x, pair.y, pair.a, pair.b, p=pair.p))


@given(ots.measure_pairs(P, kinds=("diracs",)))
def test_two_diracs(pair):
    # atol: ||x - y||^p underflows when ||x - y|| < 1e-100 or so
    w = wasserstein(pair.x, pair.y, p=pair.p)
    np.testing.assert_allclose(w, np.linalg.norm(pair.x - pair.y), rtol=1e-12, atol=pair.tol)
    pair.check(w)


@given(ots.measure_pairs(P, kinds=("translate",), dtype=None, **SMALL))
def test_translation_moves_by_the_norm_of_t(pair):
    pair.check(wasserstein(pair.x, pair.y, pair.a, pair.b, p=pair.p))


@given(ots.measure_pairs(P, kinds=("sorted_1d",), max_n=12), st.sampled_from(["auto", "1d",
                                                                               "network_simplex",
                                                                               "sparse_simplex"]))
def test_sorted_1d_pairs_by_every_method(pair, method):
    pair.check(wasserstein(pair.x, pair.y, p=pair.p, method=method))


@given(ots.measure_pairs(P, kind="torch", dtype=None, **SMALL))
def test_wasserstein_known_answer_pairs_torch(pair):
    value = wasserstein(pair.x, pair.y, pair.a, pair.b, p=pair.p)
    assert isinstance(value, torch.Tensor) and value.dtype == pair.x.dtype
    pair.check(value)


@given(ots.measure_pairs(P, kinds=("permutation",), **SMALL), st.integers(0, 2**32 - 1))
def test_sliced_vanishes_on_permutations(pair, seed):
    pair.check(sliced_wasserstein(pair.x, pair.y, pair.a, pair.b, p=pair.p, seed=seed))


@given(ots.measure_pairs(P, kinds=("translate",), **SMALL), st.integers(0, 2**32 - 1))
def test_sliced_of_a_translate_is_sliced_of_two_diracs(pair, seed):
    # every projection moves by θ·t, so SW_p(μ, μ + t) = SW_p(δ_0, δ_t) for the same directions
    x, y = np.asarray(pair.x), np.asarray(pair.y)
    t = (y - x).mean(axis=0, keepdims=True)
    got = sliced_wasserstein(x, y, pair.a, pair.b, p=pair.p, seed=seed)
    ref = sliced_wasserstein(np.zeros_like(t), t, p=pair.p, seed=seed)
    cost_close(got, ref, pair.p, max(1.0, np.abs(x).max(), np.abs(y).max()), rtol=1e-7)


# ---------------------------------------------------------------------------- invariances


@given(ots.measure_tuples(2, weighted=True, **SMALL), P,
       st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_weights_are_normalized(ms, p, ca, cb):
    u, v = ms
    a, b = u.weights(), v.weights()
    scaled = wasserstein(u.x, v.x, ca * a, cb * b, p=p)
    cost_close(scaled, W(u, v, p), p, scale_of(u, v))


@given(ots.measure_tuples(2, **SMALL), P, st.data())
def test_splitting_a_point_changes_nothing(ms, p, data):
    # duplicating a point and sharing its mass between the copies is the same measure
    u, v = ms
    x, a = u.points(), u.weights()
    i = data.draw(st.integers(0, u.n - 1))
    share = data.draw(st.floats(0.0, 1.0))
    x2 = np.vstack([x, x[i:i + 1]])
    a2 = np.append(a, share * a[i])
    a2[i] *= 1 - share
    cost_close(wasserstein(x2, v.points(), a2, v.weights(), p=p), W(u, v, p), p,
               scale_of(u, v))


@given(ots.measure_tuples(2, **SMALL), P,
       st.floats(-50, 50), st.floats(0.01, 10), st.integers(0, 2**32 - 1))
def test_shift_and_scale(ms, p, shift, c, seed):
    # W_p(μ + s, ν + s) = W_p(μ, ν), W_p(cμ, cν) = c W_p(μ, ν); the same for SW_p
    u, v = ms
    x, y, a, b = u.points(), v.points(), u.weights(), v.weights()
    s = scale_of(u, v) + abs(shift)
    cost_close(wasserstein(x + shift, y + shift, a, b, p=p), W(u, v, p), p, s)
    cost_close(wasserstein(c * x, c * y, a, b, p=p), c * W(u, v, p), p, c * s)
    ref = sliced_wasserstein(x, y, a, b, p=p, seed=seed)
    got = sliced_wasserstein(c * x + shift, c * y + shift, a, b, p=p, seed=seed)
    cost_close(got, c * ref, p, c * s + abs(shift), rtol=1e-7)


# ---------------------------------------------------------------------------- POT


@given(ots.measure_tuples(2, **SMALL), P)
def test_agrees_with_pot_emd2(ms, p):
    u, v = ms
    x, y, a, b = u.points(), v.points(), u.weights(), v.weights()
    # the reference cost by direct differences (scipy): ot.dist's |x|² + |y|² − 2⟨x, y⟩ leaves
    # ~sqrt(eps)·scale between identical points, which the p-th root does not forgive
    ref = ot.emd2(a, b, cdist(x, y) ** p) ** (1 / p)
    cost_close(W(u, v, p), ref, p, scale_of(u, v))


# ---------------------------------------------------------------------------- critics


@given(ots.lipschitz_critics(dtype="float64"), st.data())
def test_kantorovich_bound_with_otdiv_w1(critic, data):
    # a W_1 that came out too small would let an honest L-Lipschitz critic break the bound
    u = data.draw(ots.point_clouds(d=critic.d, flat=False, **SMALL))
    v = data.draw(ots.point_clouds(d=critic.d, flat=False, dtype=u.x.dtype, **SMALL))
    assert_kantorovich_bound(critic.module, u.x, v.x, u.a, v.a, L=critic.L)


@given(ots.lipschitz_critics(kinds=("linear",), dtype="float64"), st.data())
def test_linear_critic_along_a_translation_attains_w1(critic, data):
    # f = L u·x + c and y = x + s u: E f(y) - E f(x) = L s = L W_1, the bound is tight
    u = data.draw(ots.point_clouds(d=critic.d, flat=False, dtype="float64", **SMALL))
    s = data.draw(st.floats(0.1, 50))
    x = u.points()
    y = x + s * critic.direction
    w1 = wasserstein(x, y, u.a, u.a, p=1)
    scores = [critic.module(torch.as_tensor(z)).numpy()[:, 0] for z in (x, y)]
    gap = u.weights() @ (scores[1] - scores[0])
    np.testing.assert_allclose(w1, s, rtol=1e-9, atol=1e-9 * scale_of(u))
    np.testing.assert_allclose(gap, critic.L * w1, rtol=1e-6, atol=1e-9 * scale_of(u))


@pytest.mark.parametrize("method", ["network_simplex", "network_simplex_lazy", "sparse_simplex"])
@given(ots.measure_pairs(st.sampled_from([1.0, 2.0]), kinds=("translate", "permutation",
                                                             "dirac_cloud"), d=2, **SMALL))
def test_known_answer_pairs_by_each_simplex(method, pair):
    pair.check(wasserstein(pair.x, pair.y, pair.a, pair.b, p=pair.p, method=method))


# ---------------------------------------------------------------------------- regression


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
def test_wasserstein_self_distance_with_a_zero_weight_last_point(p):
    # x = [0, 1, 2, 3], a = [.1, .4, .1, 0] once gave W_1(x, x) = -2.2e-16, complex W_1.5, W_2
    assert_metric(lambda u, v: W(u, v, p), REPRO, REPRO, atol=0.0)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
def test_sliced_self_distance_with_a_zero_weight_last_point(p):
    # once SW_1(x, x) = -1.1e-16, NaN SW_1.5 and SW_2
    x2 = ots.Measure(REPRO.x[:, None], REPRO.a)
    assert_metric(lambda u, v: SW(u, v, p), x2, x2, atol=0.0)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_a_weighted_cloud_with_repeated_points_against_itself_is_exactly_zero(p):
    # found by hypothesis: POT's simplex left 2^-56 of mass on a pair at distance 1 (rounded
    # flows), and the p-th root made W_2(z, z) = 3.7e-9
    x = np.array([[1.0, 1.0], [1, 1], [0, 1], [0, 1], [1, 1], [1, 1]])
    a = np.array([8, 8, 8, 2, 1, 2]) / 29.0
    assert wasserstein(x, x.copy(), a, a.copy(), p=p) == 0.0
    xt = torch.tensor(x, requires_grad=True)
    w = wasserstein(xt, xt.detach().clone(), torch.tensor(a), torch.tensor(a), p=p)
    w.backward()
    assert float(w) == 0.0 and torch.isfinite(xt.grad).all()
