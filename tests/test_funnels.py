"""MinFunnel pairs: W1 known by construction, checked by exact OT (POT) and by duality."""

import numpy as np
import pytest
from _problems import exact_w1
from hypothesis import given, settings
from hypothesis import strategies as st

from otdiv.audit.funnels import FUNNEL_SETTINGS, MinFunnel, mean_step_error


def test_the_benchmark_has_28_settings():
    assert len(set(FUNNEL_SETTINGS)) == 28


@pytest.mark.parametrize("d,k", [(2, 4), (2, 64), (8, 16), (32, 256)])
def test_paired_samples_are_an_optimal_coupling(d, k):
    # u is 1-Lipschitz and u(x_i) - u(y_i) = |x_i - y_i|: the pairing is optimal, so exact OT
    # between the paired empirical measures is the mean step
    mf = MinFunnel(d, k, delta=0.7, seed=d + k)
    rng = np.random.default_rng(0)
    x = mf.sample_real(300, rng)
    y, s = mf.transport(x, rng)
    np.testing.assert_allclose(np.linalg.norm(x - y, axis=1), s, rtol=1e-12)
    np.testing.assert_allclose(mf.potential(x) - mf.potential(y), s, rtol=1e-9, atol=1e-12)
    assert exact_w1(x, y) == pytest.approx(s.mean(), rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 12), k=st.integers(1, 40))
def test_the_potential_is_one_lipschitz(seed, d, k):
    mf = MinFunnel(d, k, seed=seed)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((50, d)) * 5
    b = a + rng.standard_normal((50, d)) * rng.uniform(1e-3, 3)
    gap = np.abs(mf.potential(a) - mf.potential(b))
    assert (gap <= np.linalg.norm(a - b, axis=1) * (1 + 1e-12) + 1e-12).all()


def test_the_mean_step_is_delta():
    mf = MinFunnel(4, 16, delta=2.0, seed=1)
    n = 20000
    _, s = mf.transport(mf.sample_real(n, np.random.default_rng(5)), np.random.default_rng(6))
    assert abs(s.mean() - mf.w1) < 5 * mean_step_error(n, 2.0)
    assert mf.w1_error < 1e-12 * mf.w1


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="d"):
        MinFunnel(0, 4)
    with pytest.raises(TypeError, match="n_funnels"):
        MinFunnel(2, 4.0)
    with pytest.raises(ValueError, match="delta"):
        MinFunnel(2, 4, delta=-1.0)
    with pytest.raises(ValueError, match="n_funnels"):
        MinFunnel(2**20, 2**10)
    # W1 = delta only where the steps are resolved and the distances representable
    for delta in (1e-300, 1e-7, 1e7, 1e308):
        with pytest.raises(ValueError, match=r"^delta must be in \[1e-06, 1e\+06\]"):
            MinFunnel(2, 4, delta=delta)
    mf = MinFunnel(2, 4)
    rng = np.random.default_rng(0)
    for bad in (np.zeros((3, 4)), np.zeros((2, 2, 2)), np.zeros(3), [[np.nan, 0.0]]):
        with pytest.raises(ValueError, match=r"^z "):
            mf.potential(bad)
        with pytest.raises(ValueError, match=r"^z "):
            mf.gradient(bad)
        with pytest.raises(ValueError, match=r"^x "):
            mf.transport(bad, rng)
    assert mf.potential(np.ones(2)) == mf.potential(np.ones((1, 2)))  # one point as (d,)
    for n, exc in ((-1, ValueError), (2.0, TypeError), (10**12, ValueError)):
        with pytest.raises(exc, match=r"^n"):
            mf.sample_real(n, rng)
        with pytest.raises(exc, match=r"^n"):
            mf.sample_fake(n, rng)
    for bad_rng in (None, 0, np.random.RandomState(0)):
        with pytest.raises(TypeError, match=r"^rng must be a numpy.random.Generator"):
            mf.sample_fake(2, bad_rng)


@pytest.mark.parametrize("scale", [1e-150, 1.0, 1e150, 1e160, 1e300])
def test_the_potential_far_out_is_finite_and_exact(scale):
    """u(z) = min_k ‖z − c_k‖ + b_k against math.dist, which does not overflow: where the
    squares of the coordinates leave float64 (|z| ≳ 1e154) the cells are still found."""
    import math

    mf = MinFunnel(3, 16, seed=4)
    z = np.random.default_rng(1).standard_normal((20, 3)) * scale
    truth = [min(math.dist(p, c) + b for c, b in zip(mf.apexes, mf.offsets, strict=True))
             for p in z]
    np.testing.assert_allclose(mf.potential(z), truth, rtol=1e-12)
    g = mf.gradient(z)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, rtol=1e-12)


def test_toy_samplers_check_their_arguments():
    from otdiv.audit import TOYS, make_toy

    for name in TOYS:
        toy = make_toy(name, d=3)
        rng = np.random.default_rng(0)
        for sampler in (toy.sample_real, toy.sample_fake):
            assert sampler(4, rng).shape == (4, toy.dim)
            with pytest.raises(TypeError, match=r"^rng must be a numpy.random.Generator"):
                sampler(2, None)
            with pytest.raises(ValueError, match=r"^n must be an integer >= 1"):
                sampler(-1, rng)
            with pytest.raises(ValueError, match=r"^n=1000000000000 needs about .* for samples"):
                sampler(10**12, rng)
        with pytest.raises(ValueError, match=r"^seed must be None or an integer"):
            toy.sample(3, -1)
        with pytest.raises(TypeError, match=r"^seed must be None or an integer"):
            toy.sample(3, 1.5)
        real, fake = toy.sample(3, np.random.default_rng(0))  # a Generator is a seed too
        assert real.shape == fake.shape == (3, toy.dim)
        with pytest.raises(ValueError, match=r"^d must be an integer >= 1"):
            make_toy(name, d=-5)  # checked for the 2-D toys too


def test_make_toy_serves_the_funnels():
    from otdiv.audit import make_toy

    toy = make_toy("funnels", d=8, funnels=4, seed=2)
    real, fake = toy.sample(2000, seed=0)
    assert real.shape == fake.shape == (2000, 8)
    assert toy.w1 == 1.0 and toy.params["funnels"] == 4
    # the same apexes as the class: the known optimal critic separates the samples by ~W1
    mf = MinFunnel(8, 4, seed=2)
    gap = mf.potential(real).mean() - mf.potential(fake).mean()
    assert abs(gap - toy.w1) < 0.2


@pytest.mark.parametrize("d,k", [(2, 4), (16, 64), (64, 64)])
def test_the_gradient_is_the_potentials_and_the_transport_runs_against_it(d, k):
    mf = MinFunnel(d, k, seed=3)
    rng = np.random.default_rng(1)
    x = mf.sample_real(200, rng)
    g = mf.gradient(x)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, rtol=1e-12)
    # central differences of u (smooth inside a cell; a step of 1e-6 crosses a cell boundary
    # with probability of order 1e-6 per point): error O(h^2 / r) + rounding O(eps / h)
    h = 1e-6
    eye = np.eye(d)
    fd = np.stack([(mf.potential(x + h * eye[j]) - mf.potential(x - h * eye[j])) / (2 * h)
                   for j in range(d)], axis=1)
    np.testing.assert_allclose(fd, g, atol=1e-7)
    y, s = mf.transport(x, rng)
    np.testing.assert_allclose((x - y) / s[:, None], g, atol=1e-12)


def test_cells_in_blocks_equal_the_whole_distance_matrix(monkeypatch):
    # the n × K distances are computed in blocks of bounded memory: with blocks of a few
    # rows, the potential, its gradient and the transport equal those of the whole matrix
    import otdiv.audit.funnels as funnels

    mf = MinFunnel(5, 37, seed=4)
    z = np.random.default_rng(2).standard_normal((101, 5)) * 3
    whole = np.linalg.norm(z[:, None, :] - mf.apexes[None], axis=2) + mf.offsets
    k = np.argmin(whole, axis=1)
    monkeypatch.setattr(funnels, "_BLOCK", 37 * 3)  # three rows a block, the last one short
    np.testing.assert_allclose(mf.potential(z), whole.min(axis=1), rtol=1e-12)
    g = (z - mf.apexes[k]) / np.linalg.norm(z - mf.apexes[k], axis=1, keepdims=True)
    np.testing.assert_allclose(mf.gradient(z), g, rtol=1e-12)
    monkeypatch.setattr(funnels, "_BLOCK", 1)  # fewer entries than K: one row a block
    np.testing.assert_allclose(mf.potential(z), whole.min(axis=1), rtol=1e-12)


def test_checked_samplers_pickle_where_the_samplers_did():
    """The argument checks wrap a sampler in an object, not a closure: the funnels' samplers
    (bound methods) and the paper toys' real sampler stay picklable with plain pickle."""
    import pickle

    from otdiv.audit import make_toy

    for sampler in (make_toy("funnels", d=4, funnels=4).sample_fake,
                    make_toy("8gaussians").sample_real):
        again = pickle.loads(pickle.dumps(sampler))
        np.testing.assert_array_equal(again(5, np.random.default_rng(1)),
                                      sampler(5, np.random.default_rng(1)))
