"""The held-out envelope bound on the population W1: checked against exact OT (POT) of
discrete distributions and against MinFunnel pairs whose W1 is known by construction."""

import numpy as np
import pytest
import torch
from _problems import exact_w1
from hypothesis import given, settings
from hypothesis import strategies as st

from otdiv.audit.funnels import MinFunnel
from otdiv.audit.population import (
    critic_population_bound,
    descent_anchors,
    envelope_values,
    population_bound,
)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 30), m=st.integers(2, 30),
       d=st.integers(1, 4), n_anchors=st.integers(1, 40), log_v=st.floats(-3, 3))
def test_on_the_whole_support_the_bound_never_exceeds_exact_w1(seed, n, m, d, n_anchors,
                                                                log_v):
    # P, Q uniform on n and m points: the test pair is their whole support, so the test
    # means are the expectations and the bound is exact arithmetic, whatever the anchors
    # and values (any critic, Lipschitz or not)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d)) + rng.standard_normal(d)
    anchors = rng.standard_normal((n_anchors, d)) * 2
    values = rng.standard_normal(n_anchors) * 10.0**log_v
    validation = (rng.standard_normal((5, d)), rng.standard_normal((6, d)))
    b = population_bound(anchors, values, validation, (x, y))
    assert b.value <= exact_w1(x, y) + 1e-12 * (1 + np.abs(x).max() + np.abs(y).max()
                                                + np.abs(anchors).max())
    assert b.lower <= b.value


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 5), s=st.floats(0.01, 100))
def test_the_envelope_is_one_lipschitz(seed, d, s):
    rng = np.random.default_rng(seed)
    anchors = rng.standard_normal((20, d))
    values = rng.standard_normal(20) * 5
    z = rng.standard_normal((40, d)) * 3
    h = envelope_values(values, anchors, z, [s])[0]
    dist = np.linalg.norm(z[:, None] - z[None], axis=2)
    assert np.all(np.abs(h[:, None] - h[None]) <= dist + 1e-12 * (1 + np.abs(h).max()))


def test_descent_anchors_follow_the_gradient_at_unit_speed():
    e = np.array([0.6, 0.8])
    pts = descent_anchors(lambda z: np.tile(3.0 * e, (len(z), 1)), np.zeros((2, 2)),
                          step=0.5, n_steps=3)
    assert pts.shape == (8, 2)
    np.testing.assert_allclose(pts[-2:], np.tile(-1.5 * e, (2, 1)), atol=1e-15)


def test_adaptive_steps_double_along_a_ray_and_shrink_onto_an_apex():
    # f(z) = <z, e>: every step is taken and the lengths double, 1, 2, 4, 8 -> the path
    # ends 15 down the ray
    e = np.array([0.6, 0.8])
    pts = descent_anchors(lambda z: np.tile(e, (len(z), 1)), np.zeros((1, 2)), step=1.0,
                          n_steps=4, score=lambda z: z @ e, grow=2.0)
    np.testing.assert_allclose(pts @ e, [0.0, -1.0, -3.0, -7.0, -15.0], atol=1e-12)
    # f(z) = |z - 0.3| from 10: the steps 1, 2, 4 are taken, the one of 8 would pass the
    # apex (f falls by 2.6 < 8 / 2) and is refused; then the path closes in on the apex
    pts = descent_anchors(lambda z: np.sign(z - 0.3), np.array([[10.0]]), step=1.0,
                          n_steps=30, score=lambda z: np.abs(z[:, 0] - 0.3), grow=2.0)
    np.testing.assert_allclose(pts[:4, 0], [10.0, 9.0, 7.0, 3.0])
    assert np.all(np.diff(np.abs(pts[:, 0] - 0.3)) < 0)  # f falls at every step taken
    assert abs(pts[-1, 0] - 0.3) < 0.01


class _Potential(torch.nn.Module):
    """u(z) = min_k |z - c_k| + b_k, the optimal critic of a MinFunnel pair."""

    def __init__(self, mf):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(mf.apexes, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor(mf.offsets, dtype=torch.float64))

    def forward(self, z):
        return (torch.cdist(z, self.c) + self.b).min(dim=1).values


@pytest.mark.parametrize("d", [2, 16])
def test_the_optimal_potential_certifies_the_population_w1(d):
    # W1 = 1 by construction; between 2000 samples in d = 16 it is about 3. With descent
    # paths the envelope of u is u along every transport ray, so the bound is W1 up to the
    # test's sampling error (stated by se); without them it is far lower (about 0.64)
    mf = MinFunnel(d, 4, seed=0)
    b = critic_population_bound(_Potential(mf), mf.sample_real, mf.sample_fake, n=500,
                                n_test=2000, step=1.0, n_steps=8, seed=1)
    assert b.value <= mf.w1 + 5 * b.se
    assert b.value >= 0.9 * mf.w1
    assert b.lower == pytest.approx(b.value - 1.6448536 * b.se, rel=1e-6)
    flat = critic_population_bound(_Potential(mf), mf.sample_real, mf.sample_fake, n=500,
                                   n_test=2000, step=1.0, n_steps=0, seed=1)
    if d == 16:
        assert flat.value < 0.8 * mf.w1


class _Linear(torch.nn.Module):
    """u(z) = -<z, e>, the optimal critic of the translate pair Q = P + e."""

    def __init__(self, d):
        super().__init__()
        self.e = torch.nn.Parameter(torch.full((d,), d ** -0.5, dtype=torch.float64))

    def forward(self, z):
        return -(z @ self.e)


def test_adaptive_paths_certify_a_translation_where_fixed_steps_do_not():
    # parallel transport rays: an anchor t down the ray of a point at distance r across
    # leaves a gap r^2 / 2t, and r ~ sqrt(2 d) ~ 8 at d = 32, so 8 fixed steps of W = 1
    # leave about an eighth of W1 (0.84-0.88 over three seeds); the doubling steps reach
    # 255 W (0.99-1.01)
    from otdiv.audit import make_toy

    toy = make_toy("translate", d=32)
    kw = dict(n=500, n_test=8000, seed=3)
    b = critic_population_bound(_Linear(32), toy.sample_real, toy.sample_fake, **kw)
    assert b.value <= toy.w1 + 5 * b.se
    assert b.value >= 0.95 * toy.w1
    fixed = critic_population_bound(_Linear(32), toy.sample_real, toy.sample_fake,
                                    grow=1.0, **kw)
    assert fixed.value < 0.92 * toy.w1


def test_arguments_are_checked():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="values"):
        population_bound(x, np.zeros(2), (x, x), (x, x))
    with pytest.raises(TypeError, match="validation"):
        population_bound(x, np.zeros(3), x, (x, x))
    with pytest.raises(ValueError, match="test"):
        population_bound(x, np.zeros(3), (x, x), (x, np.zeros((3, 3))))
    with pytest.raises(ValueError, match="confidence"):
        population_bound(x, np.zeros(3), (x, x), (x, x), confidence=1.5)
    with pytest.raises(ValueError, match="scales"):
        population_bound(x, np.zeros(3), (x, x), (x, x), scales=[-1.0])
    with pytest.raises(ValueError, match="step"):
        descent_anchors(lambda z: z, x, step=0.0, n_steps=2)
    with pytest.raises(ValueError, match="grow"):
        descent_anchors(lambda z: z, x, step=1.0, n_steps=2, score=np.sum, grow=-1.0)
    with pytest.raises(TypeError, match="candidates"):
        population_bound(x, np.zeros(3), (x, x), (x, x), candidates=[(x, np.zeros(3))])
    with pytest.raises(ValueError, match="grow"):
        critic_population_bound(_MinusNorm(), lambda n, r: np.zeros((n, 2)),
                                lambda n, r: np.ones((n, 2)), grow=[])


class _MinusNorm(torch.nn.Module):
    """u(z) = -|z|, the optimal critic of the scale pair x -> 1.5 x."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, z):
        return -self.w * z.norm(dim=1)


def test_diverging_descent_paths_are_met_by_the_upper_envelope():
    # the scale pair: u's descent paths run outward along separate rays (no anchor lies
    # downstream of a held-out point), its ascent paths converge on the origin, where
    # k(z) = max_a u(a) - |z - a| >= u(0) - |z| = u(z)
    from otdiv.audit import make_toy

    toy = make_toy("scale", d=16)
    b = critic_population_bound(_MinusNorm(), toy.sample_real, toy.sample_fake, n=500,
                                n_test=2000, seed=2)
    assert b.envelope == "max"
    assert b.value <= toy.w1 + 5 * b.se
    assert b.value >= 0.9 * toy.w1


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 70), n_anchors=st.integers(1, 300),
       log_spread=st.floats(-3, 3), log_offset=st.floats(-2, 4), log_v=st.floats(-3, 3),
       upper=st.booleans())
def test_the_envelope_equals_brute_force_with_per_pair_distances(seed, d, n_anchors,
                                                                 log_spread, log_offset,
                                                                 log_v, upper):
    # the matrix-product distances (cancellation-prone far from the anchors' mean) only
    # pick candidates; the values must be those of per-pair distances (scipy's cdist),
    # duplicated anchors and test points on anchors included
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    anchors = (rng.standard_normal((n_anchors, d)) * 10.0**log_spread
               + rng.standard_normal(d) * 10.0**log_offset)
    # a tight cluster about one anchor, with test points inside it: there the rounding of
    # the expansion exceeds the distances, and only the per-pair re-evaluation ranks them
    tiny = 1e-9 * 10.0**log_spread
    cluster = anchors[0] + tiny * rng.standard_normal((20, d))
    anchors = np.concatenate([anchors, anchors[: n_anchors // 2], cluster])
    z = np.concatenate([anchors[rng.integers(0, len(anchors), 7)],
                        anchors[0] + tiny * rng.standard_normal((10, d)),
                        anchors.mean(0) + rng.standard_normal((30, d)) * anchors.std()])
    values = rng.standard_normal(len(anchors)) * 10.0**log_v
    values[-len(cluster):] = values[0]
    scales = 10.0 ** rng.uniform(-2, 2, 4)
    dist = cdist(z, anchors)
    want = np.array([np.max(s * values - dist, axis=1) if upper else
                     np.min(s * values + dist, axis=1) for s in scales])
    got = envelope_values(values, anchors, z, scales, upper)
    tol = 4 * d * np.finfo(float).eps * (np.abs(want).max() + dist.max())
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 20), m=st.integers(2, 20),
       d=st.integers(1, 4), log_c=st.floats(-300, 300), s=st.sampled_from([0.25, 1.0, 4.0]),
       upper=st.booleans())
def test_the_envelope_is_homogeneous_in_points_and_values_at_any_magnitude(seed, n, m, d,
                                                                           log_c, s, upper):
    # h_s is positively homogeneous in (a, z, v): points near 1e160 overflowed the squared
    # distances (every value 1.8e308) and near 1e-160 underflowed them
    rng = np.random.default_rng(seed)
    anchors = rng.standard_normal((15, d))
    values = rng.standard_normal(15)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d)) + rng.standard_normal(d)
    z = np.concatenate([x, y])
    c = 10.0**log_c
    room = 1 + np.abs(z).max() + np.abs(anchors).max()
    base = envelope_values(values, anchors, z, [s], upper)
    big = envelope_values(c * values, c * anchors, c * z, [s], upper)
    assert np.all(np.abs(big - c * base) <= 1e-9 * c * (np.abs(base) + room))
    # the whole supports as the test pair: value <= W1 exactly (up to rounding)
    b = population_bound(c * anchors, c * values, (c * x[:1], c * y[:1]), (c * x, c * y),
                         scales=[s])
    b1 = population_bound(anchors, values, (x[:1], y[:1]), (x, y), scales=[s])
    assert abs(b.value - c * b1.value) <= 1e-9 * c * (abs(b1.value) + room)
    assert abs(b.se - c * b1.se) <= 1e-9 * c * (b1.se + room)
    assert b.value <= _w1(c * x, c * y) + 1e-11 * c * room


def _w1(x, y):
    from otdiv import wasserstein

    return wasserstein(x, y, p=1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 20), m=st.integers(2, 20),
       log_v=st.floats(0, 300), log_s=st.floats(-2, 300), upper=st.booleans())
def test_huge_scaled_values_give_a_finite_valid_bound(seed, n, m, log_v, log_s, upper):
    # s v far beyond the distances: 1e300 values at s = 1e10 gave nan for value, se and
    # lower, and at 1e18 their rounding swamped the distances
    rng = np.random.default_rng(seed)
    anchors = rng.standard_normal((15, 2)) * 2
    values = rng.standard_normal(15) * 10.0**log_v
    x = rng.standard_normal((n, 2))
    y = rng.standard_normal((m, 2)) + rng.standard_normal(2)
    validation = (rng.standard_normal((4, 2)), rng.standard_normal((5, 2)))
    up = (anchors[::-1], values) if upper else None
    b = population_bound(anchors, values, validation, (x, y), scales=[10.0**log_s, 1.0],
                         upper=up)
    assert np.isfinite([b.value, b.se, b.lower, b.validation]).all()
    assert b.value <= exact_w1(x, y) + 1e-11 * (1 + np.abs(x).max() + np.abs(y).max()
                                                + np.abs(anchors).max())
    try:  # h_s itself: finite, or an error when s v is beyond the float range
        h = envelope_values(values, anchors, x, [10.0**log_s], upper)
    except ValueError as exc:
        assert "values" in str(exc)
        assert log_s + np.log10(np.abs(values).max()) > 307
    else:
        assert np.isfinite(h).all()


def test_envelope_values_beyond_the_float_range_are_an_error():
    anchors = np.random.default_rng(0).standard_normal((10, 2))
    values = 1e300 * np.arange(10.0)
    # the min-envelope is s min v + distance = the distance: fine; the max one is 9e310
    h = envelope_values(values, anchors, anchors, [1e10])
    np.testing.assert_allclose(h[0], np.linalg.norm(anchors - anchors[0], axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="values"):
        envelope_values(values, anchors, anchors, [1e10], upper=True)
    # a bound of about 2e308 (points at +-1e308): an error, not inf
    far_x = np.array([[1e308, 0.0], [0.9e308, 1.0]])
    with pytest.raises(ValueError, match="anchors, validation and test"):
        population_bound(-far_x, [0.0, 1.0], (far_x, -far_x), (far_x, -far_x))


def test_envelope_values_checks_its_arguments():
    a, z, v = np.zeros((3, 2)), np.ones((4, 2)), np.zeros(3)
    with pytest.raises(ValueError, match="values"):
        envelope_values(np.zeros(2), a, z, [1.0])  # was an array of nan
    with pytest.raises(ValueError, match="values"):
        envelope_values(np.array([0.0, np.nan, 0.0]), a, z, [1.0])
    with pytest.raises(ValueError, match="z must have dimension 2"):
        envelope_values(v, a, np.ones((4, 3)), [1.0])  # was computed silently or numpy's
    with pytest.raises(ValueError, match="z"):
        envelope_values(v, a, np.ones((0, 2)), [1.0])
    with pytest.raises(ValueError, match="anchors"):
        envelope_values(v[:0], a[:0], z, [1.0])  # was "zero-size array to reduction"
    with pytest.raises(ValueError, match="scales"):
        envelope_values(v, a, z, [])
    with pytest.raises(ValueError, match="scales"):
        envelope_values(v, a, z, [0.0])
    with pytest.raises(TypeError, match="scales"):
        envelope_values(v, a, z, 1.0)
    with pytest.raises(TypeError, match="upper"):
        envelope_values(v, a, z, [1.0], upper="no")


def test_population_bound_checks_confidence_flags_and_the_test_pair():
    x = np.random.default_rng(0).standard_normal((3, 2))
    v = np.zeros(3)
    with pytest.raises(TypeError, match="confidence"):
        population_bound(x, v, (x, x), (x, x + 1), confidence=None)  # a bare TypeError
    with pytest.raises(TypeError, match="confidence"):
        population_bound(x, v, (x, x), (x, x + 1), confidence="0.9")  # was accepted
    with pytest.raises(ValueError, match="confidence"):
        population_bound(x, v, (x, x), (x, x + 1), confidence=0.0)
    with pytest.raises(TypeError, match="candidates"):
        population_bound(x, v, (x, x), (x, x + 1), candidates=None)
    with pytest.raises(TypeError, match=r"candidates\[0\]\[2\]"):
        population_bound(x, v, (x, x), (x, x + 1), candidates=[(x, v, "no")])
    # a one-point test side: se was inf, lower -inf (nan at confidence 0.5)
    with pytest.raises(ValueError, match=r"test\[0\]"):
        population_bound(x, v, (x, x), (x[:1], x + 1), confidence=0.5)
    with pytest.raises(ValueError, match=r"test\[1\]"):
        population_bound(x, v, (x, x), (x, x[:1] + 1))
    b = population_bound(x, v, (x[:1], x[:1]), (x[:2], x[:2] + 1))  # a one-point validation
    assert np.isfinite([b.value, b.se, b.lower]).all()


def test_descent_anchors_checks_its_callables_and_sizes():
    x = np.zeros((3, 2))
    e = np.array([0.6, 0.8])
    const = lambda z: np.tile(e, (len(z), 1))  # noqa: E731
    with pytest.raises(TypeError, match="ascent"):
        descent_anchors(const, x, step=1.0, n_steps=1, ascent="no")  # was truthy
    with pytest.raises(ValueError, match="grad"):
        descent_anchors(lambda z: np.zeros((len(z), 3)), x, step=1.0, n_steps=1)
    with pytest.raises(ValueError, match="grad"):
        descent_anchors(lambda z: np.full(z.shape, np.nan), x, step=1.0, n_steps=1)
    with pytest.raises(ValueError, match="score"):
        descent_anchors(const, x, step=1.0, n_steps=1, score=lambda z: np.full(len(z), np.nan),
                        grow=2.0)
    with pytest.raises(ValueError, match="score"):
        descent_anchors(const, x, step=1.0, n_steps=1, score=lambda z: np.zeros(2), grow=2.0)
    with pytest.raises(ValueError, match="n_steps"):
        descent_anchors(const, x, step=1.0, n_steps=10**12)  # before any step
    with pytest.raises(ValueError, match="step"):
        descent_anchors(const, x, step=1e308, n_steps=3)  # fixed steps beyond the range
    # an adaptive step whose end lies beyond the float range is not taken (it was, and the
    # paths held inf)
    pts = descent_anchors(lambda z: -np.ones_like(z), np.array([[1e308]]), step=1e308,
                          n_steps=3, score=lambda z: -z[:, 0], grow=2.0)
    assert np.isfinite(pts).all() and len(pts) > 1


def _sampler(shift):
    return lambda n, rng: rng.standard_normal((n, 2)) + shift


def test_critic_population_bound_checks_its_arguments_as_audit_critic_does():
    from otdiv.audit.models import mlp_critic

    real, fake = _sampler(0.0), _sampler(1.0)
    kw = dict(n=20, n_test=20)
    critic = mlp_critic(2, (8,))
    with pytest.raises(ValueError, match="critic"):  # torch's "does not require grad"
        critic_population_bound(lambda z: torch.zeros(len(z)), real, fake, **kw)
    with pytest.raises(ValueError, match="critic cannot score samples of dimension 2"):
        critic_population_bound(mlp_critic(3, (8,)), real, fake, **kw)  # torch's shape error
    with pytest.raises(ValueError, match="seed"):
        critic_population_bound(critic, real, fake, seed=-1, **kw)
    with pytest.raises(TypeError, match="seed"):
        critic_population_bound(critic, real, fake, seed=1.5, **kw)
    with pytest.raises(ValueError, match="n=10000000000"):  # a raw MemoryError
        critic_population_bound(critic, real, fake, n=10**10, n_test=20)
    with pytest.raises(ValueError, match="fake"):  # 3 rows for 20 were accepted
        critic_population_bound(critic, real, lambda n, rng: rng.standard_normal((3, 2)), **kw)
    with pytest.raises(ValueError, match="real"):  # beyond the critic's float32
        critic_population_bound(critic, lambda n, rng: np.full((n, 2), 1e39), fake, **kw)
    with pytest.raises(ValueError, match="critic returned NaN"):  # was "values must be..."
        critic_population_bound(lambda z: z.sum(1) + float("nan"), real, fake, **kw)
    with pytest.raises(TypeError, match="confidence"):
        critic_population_bound(critic, real, fake, confidence=None, **kw)
    with pytest.raises(TypeError, match="critic"):
        critic_population_bound(None, real, fake, **kw)
    with pytest.raises(TypeError, match="real"):
        critic_population_bound(critic, np.zeros((20, 2)), fake, **kw)


def test_the_population_size_is_checked_against_the_budget():
    from otdiv.audit.population import check_population_size, population_bytes

    check_population_size(2000, 4000, 8, 2, 64)  # the defaults at d = 64
    assert population_bytes(2000, 4000, 8, 2, 64) < 2**30
    with pytest.raises(ValueError, match="n_test=1000000000"):
        check_population_size(2000, 10**9, 8, 2, 2)
    with pytest.raises(ValueError, match="n_steps=100000"):
        check_population_size(2000, 4000, 10**5, 2, 64)
