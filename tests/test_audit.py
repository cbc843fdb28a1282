"""The critic audit: toys with their truths, critic training, audit_critic, reports.

Truths are independent of the audit: closed forms (scipy.stats.chi for E||Z||, |theta|,
||t||), scipy's 1-D W1 and POT's exact solver on the very samples the audit uses.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import ot
import pytest
import scipy.stats
import torch

from otdiv.audit import (
    audit_critic,
    load_critic,
    make_toy,
    mlp_critic,
    reference_w1,
    save_critic,
    train_critic,
    train_discriminator,
)
from otdiv.audit.report import (
    audit_row,
    plot_history,
    plot_level_sets,
    plot_lines_sweep,
    table,
    write_json,
)
from otdiv.audit.toys import mean_gaussian_norm, paper_mixture
from otdiv.gan.constraints import spectral_normalize_

pytestmark = pytest.mark.threads(torch=1)  # tiny MLPs (see conftest.threads)


def _pot_w1(x, y):
    return float(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), ot.dist(x, y, metric="euclidean")))


def _identity_critic(d: int = 1) -> torch.nn.Linear:
    """f(x) = x_1: 1-Lipschitz, and optimal when all of P lies right of Q (1-D)."""
    lin = torch.nn.Linear(d, 1, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, 0] = 1.0
        lin.bias.zero_()
    return lin


# --------------------------------------------------------------------------------- toys


def test_paper_toys_match_gan_toy_scales():
    rng = np.random.default_rng(0)
    toy = make_toy("8gaussians")
    x = toy.sample_real(4000, rng)
    angles = np.arange(8) * np.pi / 4
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1) / 1.414
    dist = np.linalg.norm(x[:, None, :] - centres[None], axis=2).min(axis=1)
    # noise std 0.02 / 1.414 per coordinate: all points well within 6 std of a centre
    assert dist.max() < 6 * 0.02 / 1.414 * math.sqrt(2)
    np.testing.assert_allclose(np.std(dist * 1.414 / 0.02), math.sqrt(2 - math.pi / 2),
                               rtol=0.1)  # Rayleigh(1) spread of the noise radius

    g25 = make_toy("25gaussians").sample_real(4000, rng)
    grid = 2.0 * np.arange(-2, 3) / 2.828
    np.testing.assert_allclose(np.sort(np.unique(np.round(g25 / (2 / 2.828)))),
                               np.round(grid / (2 / 2.828)))

    roll = make_toy("swissroll").sample_real(4000, rng)
    radius = np.linalg.norm(roll, axis=1) * 7.5  # t in [1.5 pi, 4.5 pi] before noise
    assert 1.5 * np.pi - 1.5 < radius.min() and radius.max() < 4.5 * np.pi + 1.5


def test_paper_toy_fake_is_real_plus_unit_noise():
    rng = np.random.default_rng(1)
    toy = make_toy("25gaussians")
    x, y = toy.sample_real(20000, rng), toy.sample_fake(20000, rng)
    np.testing.assert_allclose(y.mean(axis=0), x.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(np.cov(y.T), np.cov(x.T) + np.eye(2), atol=0.06)


@pytest.mark.parametrize("d", [1, 2, 16, 64])
def test_mean_gaussian_norm_is_chi_mean(d):
    np.testing.assert_allclose(mean_gaussian_norm(d), scipy.stats.chi(d).mean(), rtol=1e-12)


def test_closed_forms_against_one_dimensional_exact_w1():
    rng = np.random.default_rng(2)
    for toy in (make_toy("translate", d=1, shift=0.7), make_toy("scale", d=1, scale=1.8)):
        x, y = toy.sample_real(200_000, rng), toy.sample_fake(200_000, rng)
        np.testing.assert_allclose(scipy.stats.wasserstein_distance(x[:, 0], y[:, 0]),
                                   toy.w1, atol=0.015)


def test_lines_closed_form_and_reference():
    toy = make_toy("lines", theta=-0.3)
    assert toy.w1 == pytest.approx(0.3)
    ref = reference_w1(toy, n=300, repeats=2, seed=0)
    # the two lines are coupled horizontally (cost 0.3) plus a vertical quantile mismatch
    assert 0.3 <= ref.value < 0.33
    assert len(ref.values) == 2 and ref.std >= 0


def test_toy_bad_input():
    with pytest.raises(ValueError, match="name"):
        make_toy("9gaussians")
    with pytest.raises(ValueError, match="shift"):
        make_toy("translate", shift=-1.0)
    with pytest.raises(TypeError, match="d must be an integer"):
        make_toy("scale", d=2.5)
    with pytest.raises(ValueError, match="theta"):
        make_toy("lines", theta=float("nan"))
    # parameters whose samples would leave float32's range, and the count named as spelled
    with pytest.raises(ValueError, match="theta"):
        make_toy("lines", theta=1e308)
    for kwargs in ({"scale": 1e308}, {"shift": 1e7}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            make_toy("scale" if "scale" in kwargs else "translate", d=4, **kwargs)
    with pytest.raises(ValueError, match="sigma"):
        make_toy("8gaussians", sigma=1e300)
    with pytest.raises(ValueError, match="funnels"):
        make_toy("funnels", d=2, funnels=0)
    with pytest.raises(TypeError, match="funnels"):
        make_toy("funnels", d=2, funnels=True)
    with pytest.raises(ValueError, match="lower funnels"):
        make_toy("funnels", d=2**20, funnels=2**10)
    with pytest.raises(TypeError, match="theta"):
        make_toy("lines", theta="0.5")


@pytest.mark.parametrize("theta", [np.float32(0.5), np.int64(-1), np.float64(2.5)])
def test_lines_take_numpy_scalars(theta):
    toy = make_toy("lines", theta=theta)
    real, fake = toy.sample(50, seed=0)
    assert toy.w1 == abs(float(theta))
    np.testing.assert_array_equal(fake[:, 0] - real[:, 0], float(theta))


# ------------------------------------------------------------------------ audit_critic


def test_optimal_1d_critic_estimate_equals_exact_w1(rng):
    # all of P right of Q: f(x) = x is optimal, so E_P f − E_Q f = W1 exactly
    x = rng.normal(5.0, 1.0, 300).clip(3.0, None)
    y = rng.normal(0.0, 1.0, 250).clip(None, 2.0)
    truth = scipy.stats.wasserstein_distance(x, y)
    audit = audit_critic(_identity_critic(), x[:, None], y[:, None], n=1000, device="cpu")
    np.testing.assert_allclose(audit.estimate, truth, rtol=1e-10)
    np.testing.assert_allclose(audit.exact_w1, truth, rtol=1e-10)
    np.testing.assert_allclose(audit.rel_error_exact, 0.0, atol=1e-10)
    np.testing.assert_allclose([audit.lipschitz_lower, audit.lipschitz_upper], [1.0, 1.0],
                               rtol=1e-6)
    np.testing.assert_allclose(audit.certified_lower, truth, rtol=1e-6)
    assert audit.repeats == 1 and (audit.n, audit.m) == (300, 250)


def test_plain_callable_critic_is_certified_by_its_envelope(rng):
    x, y = rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 1.0
    audit = audit_critic(lambda t: -t.sum(dim=1), x, y, n=100, device="cpu")
    np.testing.assert_allclose(audit.estimate, (y.sum(1) - x.sum(1)).mean(), rtol=1e-6)
    np.testing.assert_allclose(audit.exact_w1, _pot_w1(x, y), rtol=1e-9)
    # no Lipschitz bound of a plain callable, but its envelope certifies: at most exact W1,
    # and at least what the 1-Lipschitz f / sqrt(2) certifies (its scale is searched)
    assert math.isinf(audit.lipschitz_upper)
    assert audit.certified_lower == audit.envelope_lower
    assert audit.certified_lower <= audit.exact_w1 + 1e-9
    assert audit.certified_lower >= 0.98 * abs(audit.estimate) / math.sqrt(2)
    bare = audit_critic(lambda t: -t.sum(dim=1), x, y, n=100, device="cpu", envelope=False)
    assert bare.certified_lower is None and bare.envelope_lower is None
    # torch-differentiable: the gradient of x_1 + x_2 has norm sqrt(2) everywhere
    np.testing.assert_allclose(audit.grad_norm, math.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(audit.normalized_estimate, audit.estimate / math.sqrt(2),
                               rtol=1e-6)
    # outside autograd: no gradient, so no normalised estimate (None), never an error
    opaque = audit_critic(lambda t: torch.as_tensor(-t.detach().numpy().sum(1)), x, y, n=100,
                          device="cpu", lipschitz=False)
    assert opaque.grad_norm is None and opaque.normalized_estimate is None
    assert opaque.rel_error_normalized is None and opaque.flow_corrected is None
    np.testing.assert_allclose(opaque.estimate, audit.estimate, rtol=1e-6)


def test_normalized_estimate_divides_out_the_slope(rng):
    # f(x) = 3x on a 1-D pair with all of P right of Q: estimate = 3 W1, grad norm 3
    x = rng.uniform(2.0, 3.0, size=(400, 1))
    y = rng.uniform(-1.0, 1.5, size=(300, 1))
    critic = _identity_critic(1)
    with torch.no_grad():
        critic.weight.mul_(3.0)
    audit = audit_critic(critic, x, y, n=400, device="cpu")
    truth = scipy.stats.wasserstein_distance(x[:, 0], y[:, 0])
    np.testing.assert_allclose(audit.estimate, 3 * truth, rtol=1e-6)
    np.testing.assert_allclose([audit.grad_norm, audit.grad_norm_std], [3.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(audit.normalized_estimate, truth, rtol=1e-6)
    assert audit.rel_error_normalized == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certified_bound_never_exceeds_exact_w1(seed):
    gen = np.random.default_rng(seed)
    x = gen.normal(size=(150, 3)) * gen.uniform(0.5, 2.0)
    y = gen.normal(size=(120, 3)) + gen.normal(size=3)
    torch.manual_seed(seed)
    critic = mlp_critic(3, (32, 32)).double()
    audit = audit_critic(critic, x, y, n=500, device="cpu", seed=seed)
    exact = _pot_w1(x, y)  # the same samples: all points are used
    np.testing.assert_allclose(audit.exact_w1, exact, rtol=1e-9)
    assert audit.lipschitz_lower <= audit.lipschitz_upper
    assert abs(audit.estimate) <= audit.lipschitz_upper * exact * (1 + 1e-9)
    assert audit.certified_lower <= exact * (1 + 1e-9)
    # estimate = sum pi_ij (f(x_i) - f(y_j)) <= G W1: the normalised estimate is below W1 too
    assert audit.grad_norm > 0 and audit.normalized_estimate <= exact


def test_audit_repeats_use_fresh_samplers():
    toy = make_toy("translate", d=2, shift=2.0)
    audit = audit_critic(_identity_critic(2), toy.sample_real, toy.sample_fake, n=300,
                         repeats=3, w1=toy.w1, device="cpu", seed=5)
    assert audit.repeats == 3 and len(set(audit.exact_values)) == 3
    assert audit.estimate_std > 0 and audit.closed_form_w1 == 2.0
    # f = x_1 sees the shift's first coordinate, 2/sqrt(2): a certified but loose bound
    np.testing.assert_allclose(audit.estimate, -math.sqrt(2), atol=0.2)


def test_n_estimate_draws_the_ot_free_estimates_from_more_points(rng):
    # arrays: with n_estimate >= their size the raw estimate is the mean over all of them
    # (numpy's mean, an independent truth), while exact W1 and the envelope use n of them
    x, y = rng.normal(size=(3000, 2)), rng.normal(size=(2500, 2)) + np.array([1.0, 0.5])
    critic = _identity_critic(2)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.2, 0.3]]))
    audit = audit_critic(critic, x, y, n=300, n_estimate=10**4, device="cpu", seed=3)
    want = (x @ [1.2, 0.3]).mean() - (y @ [1.2, 0.3]).mean()
    np.testing.assert_allclose(audit.estimate, want, rtol=1e-6)
    assert (audit.n, audit.m, audit.n_estimate) == (300, 300, 3000)
    # the slope is uniform, so the slope and flow corrections divide it out exactly
    g = math.hypot(1.2, 0.3)
    np.testing.assert_allclose([audit.interp_grad_norm, audit.flow_grad_norm], [g, g],
                               rtol=1e-6)
    np.testing.assert_allclose(audit.slope_corrected, want / g, rtol=1e-6)
    # certificates and the normalised estimate still concern the n points of exact W1
    assert audit.certified_lower <= audit.exact_w1 * (1 + 1e-9)
    assert audit.normalized_estimate <= audit.exact_w1 * (1 + 1e-9)
    plain = audit_critic(critic, x, y, n=300, device="cpu", seed=3)
    assert plain.n_estimate == 300


def test_n_estimate_shrinks_the_sampling_error_of_an_optimal_critic():
    # translate by t, |t| = 1: u(z) = <z, t> is optimal, E_P u - E_Q u = -1 with f = -u, and
    # the sample mean of u(x) - u(y) over n points per side has standard deviation sqrt(2/n)
    toy = make_toy("translate", d=4, shift=1.0)
    direction = np.full(4, 0.5)                            # the toy's unit shift direction
    critic = _identity_critic(4)
    with torch.no_grad():
        critic.weight.copy_(-torch.tensor(direction)[None])
    big, repeats = 40_000, 2
    audit = audit_critic(critic, toy.sample_real, toy.sample_fake, n=200, n_estimate=big,
                         repeats=repeats, w1=toy.w1, lipschitz=False, envelope=False,
                         device="cpu", seed=1)
    assert audit.n_estimate == big
    assert abs(audit.estimate - 1.0) <= 4 * math.sqrt(2 / (big * repeats))
    assert abs(audit.slope_corrected - audit.estimate) <= 1e-6  # unit slope: nothing to divide


def test_audit_bad_input(rng):
    x = rng.normal(size=(50, 2))
    with pytest.raises(TypeError, match="critic"):
        audit_critic("not a critic", x, x)
    with pytest.raises(ValueError, match="same dimension"):
        audit_critic(_identity_critic(2), x, rng.normal(size=(50, 3)))
    with pytest.raises(ValueError, match="one score per sample"):
        audit_critic(lambda t: t, x, x, device="cpu")
    with pytest.raises(ValueError, match="n must be"):
        audit_critic(_identity_critic(2), x, x, n=1)
    with pytest.raises(ValueError, match="n_estimate"):
        audit_critic(_identity_critic(2), x, x, n_estimate=0)
    with pytest.raises(TypeError, match="n_estimate"):
        audit_critic(_identity_critic(2), x, x, n_estimate=2.5)
    with pytest.raises(ValueError, match=r"n_estimate=.*memory budget"):
        audit_critic(_identity_critic(2), x, x, n_estimate=10**9)
    with pytest.raises(ValueError, match="NaN"):
        audit_critic(_identity_critic(2), np.full((5, 2), np.nan), x)
    with pytest.raises(ValueError, match=r"critic cannot score samples of dimension 2"):
        audit_critic(torch.nn.Linear(3, 1), x, x, device="cpu")
    with pytest.raises(ValueError, match=r"real has values up to .*e\+200.*float32"):
        audit_critic(torch.nn.Linear(2, 1), x * 1e200, x, device="cpu")
    for flag in ("lipschitz", "envelope"):
        with pytest.raises(TypeError, match=flag):
            audit_critic(_identity_critic(2), x, x, device="cpu", **{flag: "no"})
    with pytest.raises(TypeError, match="w1"):
        audit_critic(_identity_critic(2), x, x, device="cpu", w1=False)


def _reshaped_sampler(n, rng):  # (2, n) where (n, 2) is meant
    return rng.standard_normal((2, n))


def _sampler_failing_later():
    calls = []

    def sample(n, rng):
        calls.append(n)
        out = rng.standard_normal((n, 2))
        return out if len(calls) == 1 else out * np.nan  # fine on the first call only

    return sample


@pytest.mark.parametrize("train", [True, False])
def test_every_sampler_draw_is_checked(train, rng):
    def run(real, fake):
        if train:
            return train_critic(real, fake, steps=3, batch_size=16, hidden=(8,), eval_size=32,
                                device="cpu", progress=False)
        return audit_critic(torch.nn.Linear(2, 1), real, fake, n=20, device="cpu",
                            lipschitz=False)

    def good(n, r):
        return r.standard_normal((n, 2))

    with pytest.raises(ValueError, match=r"real \(sampler\) returned shape \(2, "):
        run(_reshaped_sampler, good)
    with pytest.raises(ValueError, match=r"fake \(sampler\) returned NaN"):
        run(good, _sampler_failing_later())
    with pytest.raises(ValueError, match=r"real \(sampler\) returned shape \(3, 2\)"):
        run(lambda n, r: r.standard_normal((3, 2)), good)  # ignores n


# ----------------------------------------------------------------------------- training


def test_short_gp_training_lands_within_ten_percent():
    toy = make_toy("translate", d=2, shift=1.0)
    trained = train_critic(toy.sample_real, toy.sample_fake, constraint="gp", steps=300,
                           hidden=(64, 64), lr=1e-3, seed=0, device="cpu", progress=False)
    audit = audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=1000, repeats=1,
                         w1=toy.w1, device="cpu", seed=1)
    assert abs(audit.rel_error) < 0.10
    assert audit.certified_lower <= audit.exact_w1
    assert trained.history_step[0] == 0 and trained.history_step[-1] == 300
    assert len(trained.history_estimate) == len(trained.history_penalty)


@pytest.mark.parametrize("penalty_batch", [None, 16])
def test_gp_overshoot_of_a_linear_critic_and_its_normalisation(penalty_batch):
    # f(x) = <w, x> + b on a translate by t (||t|| = 4): the GP objective
    # s ||t|| - lambda (s - 1)^2, s = ||w||, peaks at s = 1 + ||t|| / (2 lambda) = 1.2 --
    # the same population objective whatever the number of penalty interpolates per step
    toy = make_toy("translate", d=2, shift=4.0)
    torch.manual_seed(0)
    trained = train_critic(toy.sample_real, toy.sample_fake, constraint="gp",
                           critic=torch.nn.Linear(2, 1), steps=400, lr=2e-2,
                           penalty_batch=penalty_batch,
                           schedule="cosine", seed=0, device="cpu", progress=False)
    audit = audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=2000, repeats=1,
                         w1=toy.w1, lipschitz=False, device="cpu", seed=1)
    assert audit.grad_norm == pytest.approx(1.2, rel=0.01)
    assert audit.estimate / 4.0 == pytest.approx(1.2, abs=0.03)  # raw: +20 %
    assert abs(audit.rel_error_normalized) < 0.03  # normalised: the closed form
    assert trained.settings["schedule"] == "cosine"
    assert trained.settings["penalty_batch"] == (penalty_batch or 256)


def test_muon_trains_the_hidden_matrices_to_the_closed_form_optimum():
    # a deep linear critic f(x) = <W2 W1 x> + b: its hidden 8 × 2 and 8 × 8 matrices go to
    # Muon, the 1 × 8 output and the biases to Adam; the GP optimum is still the slope
    # s = 1 + ||t|| / (2 lambda) = 1.2 along t, whatever the optimiser
    toy = make_toy("translate", d=2, shift=4.0)
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Linear(8, 8),
                                 torch.nn.Linear(8, 1))
    trained = train_critic(toy.sample_real, toy.sample_fake, constraint="gp", critic=critic,
                           steps=400, lr=2e-2, optimizer="muon", schedule="cosine", seed=0,
                           device="cpu", progress=False)
    audit = audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=2000, repeats=1,
                         w1=toy.w1, lipschitz=False, device="cpu", seed=1)
    assert audit.grad_norm == pytest.approx(1.2, rel=0.02)
    assert abs(audit.rel_error_normalized) < 0.03
    assert trained.settings["optimizer"] == "muon"


def test_optimizer_choice_changes_the_run_and_is_checked():
    x = np.random.default_rng(0).normal(size=(200, 2))
    runs = {name: train_critic(x, x + 1, constraint="lp", steps=20, hidden=(8, 8),
                               batch_size=32, optimizer=name, seed=3, device="cpu",
                               progress=False)
            for name in (None, "adam", "muon", "rmsprop")}
    assert runs[None].history_estimate == runs["adam"].history_estimate  # lp: Adam
    assert runs["muon"].history_estimate != runs["adam"].history_estimate
    assert runs["rmsprop"].history_estimate != runs["adam"].history_estimate
    assert all(np.isfinite(r.estimate) for r in runs.values())
    with pytest.raises(ValueError, match="optimizer"):
        train_critic(x, x + 1, optimizer="sgd", progress=False)


def test_muon_on_a_torch_without_it_is_a_clear_error(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=r"optimizer='muon' needs torch.optim.Muon"):
        train_critic(x, x + 1, optimizer="muon", steps=2, progress=False, device="cpu")


def test_penalty_batch_of_the_whole_batch_is_the_default():
    x = np.random.default_rng(0).normal(size=(200, 2))
    a = train_critic(x, x + 1, constraint="lp", steps=20, hidden=(8,), batch_size=32,
                     seed=3, device="cpu", progress=False)
    b = train_critic(x, x + 1, constraint="lp", steps=20, hidden=(8,), batch_size=32,
                     penalty_batch=32, seed=3, device="cpu", progress=False)
    np.testing.assert_allclose(a.history_estimate, b.history_estimate, rtol=0, atol=0)
    # the two-sided penalty acts from the first step: fewer interpolates change the run
    c, d = (train_critic(x, x + 1, constraint="gp", steps=20, hidden=(8,), batch_size=32,
                         penalty_batch=m, seed=3, device="cpu", progress=False)
            for m in (8, None))
    assert c.history_estimate != d.history_estimate
    with pytest.raises(ValueError, match="penalty_batch must be at most batch_size = 32"):
        train_critic(x, x + 1, batch_size=32, penalty_batch=33, progress=False)
    with pytest.raises(ValueError, match="penalty_batch"):
        train_critic(x, x + 1, penalty_batch=0, progress=False)


def test_the_penalised_training_step_is_the_published_wgan_gp_loss():
    # train_critic's step is wgan_critic_loss + λ gradient_penalty on the first pairs; with
    # every pair it must be wgan_gp_loss itself, value and gradient, for the same draws
    from otdiv import gradient_penalty, wgan_critic_loss, wgan_gp_loss
    from otdiv.audit.models import mlp_critic, scores

    torch.manual_seed(0)
    critic = mlp_critic(3, (8, 8), softplus_beta=30.0)
    with torch.no_grad():  # steep (slope > 1 at the interpolates): the LP penalty acts too
        critic[0].weight.mul_(20.0)
    x, y = torch.randn(16, 3), torch.randn(16, 3) + 1.0
    params = list(critic.parameters())
    for kind in ("one-sided", "two-sided"):
        assert float(gradient_penalty(critic, x, y, kind=kind).detach()) > 0.01
        ref = wgan_gp_loss(critic, x, y, lambda_gp=10.0, kind=kind,
                           generator=torch.Generator().manual_seed(5))
        step = wgan_critic_loss(scores(critic, x), scores(critic, y)) + 10.0 * \
            gradient_penalty(critic, x[:16], y[:16], kind=kind,
                             generator=torch.Generator().manual_seed(5))
        assert float(ref.detach()) != 0.0
        np.testing.assert_allclose(float(step.detach()), float(ref.detach()), rtol=1e-6)
        for a, b in zip(torch.autograd.grad(step, params), torch.autograd.grad(ref, params),
                        strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def test_training_is_seeded():
    x = np.random.default_rng(0).normal(size=(200, 2))
    a = train_critic(x, x + 1, steps=20, hidden=(8,), seed=3, device="cpu", progress=False)
    b = train_critic(x, x + 1, steps=20, hidden=(8,), seed=3, device="cpu", progress=False)
    np.testing.assert_allclose(a.history_estimate, b.history_estimate, rtol=0, atol=0)


@pytest.mark.parametrize("constraint", ["clip", "lp", "spectral"])
def test_other_constraints_train_and_certify(constraint):
    x = np.random.default_rng(1).normal(size=(400, 2))
    y = x + np.array([1.0, 0.0])
    trained = train_critic(x, y, constraint=constraint, steps=30, hidden=(16, 16), seed=0,
                           device="cpu", progress=False)
    audit = audit_critic(trained.critic, x, y, n=400, device="cpu")
    np.testing.assert_allclose(audit.exact_w1, _pot_w1(x, y), rtol=1e-9)
    assert audit.certified_lower <= audit.exact_w1 * (1 + 1e-9)
    if constraint == "clip":
        assert all(p.abs().max() <= 0.01 for p in trained.critic.parameters())
        assert trained.settings["optimizer"] == "rmsprop" and trained.settings["lr"] == 5e-5
    if constraint == "spectral":
        assert audit.lipschitz_upper <= 1.05  # each layer normalised, ReLU 1-Lipschitz


def test_train_critic_bad_input():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="constraint"):
        train_critic(x, x, constraint="weight-decay")
    with pytest.raises(ValueError, match="steps"):
        train_critic(x, x, steps=0)
    with pytest.raises(ValueError, match="same dimension"):
        train_critic(x, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="device"):
        train_critic(x, x, device="tpu")
    with pytest.raises(ValueError, match="betas"):
        train_critic(x, x, betas=(0.5, 1.5))
    with pytest.raises(ValueError, match="schedule"):
        train_critic(x, x, schedule="step")
    with pytest.raises(ValueError, match="real"):
        train_critic(np.zeros((2, 2, 2)), x)
    with pytest.raises(TypeError, match="hidden"):
        train_critic(x, x, hidden=8)
    for betas in (0.5, ("a", "b"), (True, 0.9), "ab", (0.5, 0.9, 0.9)):
        with pytest.raises(TypeError, match="betas"):
            train_critic(x, x, betas=betas)
    with pytest.raises(ValueError, match="threads"):
        train_critic(x, x, threads=2**31)
    with pytest.raises(TypeError, match="progress"):
        train_critic(x, x, steps=1, progress="no")
    with pytest.raises(ValueError, match=r"critic cannot score samples of dimension 2"):
        train_critic(x, x, critic=torch.nn.Linear(3, 1), steps=1, progress=False)
    with pytest.raises(ValueError, match=r"fake has values up to 1e\+200.*float32"):
        train_critic(x, x + 1e200, steps=1, progress=False, device="cpu")


def test_numpy_flags_and_betas_are_accepted():
    # numpy in: a numpy pair of betas and numpy bools are the numbers and flags they hold
    x = np.random.default_rng(0).normal(size=(40, 2))
    kw = {"steps": 2, "batch_size": 8, "hidden": (4,), "eval_size": 16, "device": "cpu",
          "seed": 0}
    a = train_critic(x, x + 1, betas=np.array([0.5, 0.9]), progress=np.False_, **kw)
    b = train_critic(x, x + 1, betas=(0.5, 0.9), progress=False, **kw)
    assert a.settings["betas"] == (0.5, 0.9) and a.history_estimate == b.history_estimate
    audit = audit_critic(a.critic, x, x + 1, n=20, device="cpu", lipschitz=np.False_,
                         envelope=np.True_)
    assert audit.lipschitz_upper is None and np.isfinite(audit.certified_lower)


def test_discriminator_names_data_beyond_float32():
    x = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match=r"real has values up to .*float32"):
        train_discriminator(x * 1e200, x, steps=2, device="cpu", progress=False)


def test_discriminator_jsd_saturates_on_parallel_lines():
    far = make_toy("lines", theta=1.0)
    same = make_toy("lines", theta=0.0)
    kw = {"steps": 200, "lr": 1e-2, "device": "cpu", "seed": 0, "progress": False}
    jsd_far = train_discriminator(far.sample_real, far.sample_fake, **kw).jsd
    jsd_same = train_discriminator(same.sample_real, same.sample_fake, **kw).jsd
    assert math.log(2) - 0.05 < jsd_far <= math.log(2)
    assert abs(jsd_same) < 0.02


def test_save_load_roundtrip_and_unsafe_checkpoint(tmp_path):
    torch.manual_seed(0)
    critic = mlp_critic(3, (8, 4))
    path = tmp_path / "c.pt"
    save_critic(critic, path)
    loaded = load_critic(str(path))
    x = torch.randn(10, 3)
    np.testing.assert_allclose(loaded(x).detach().numpy(), critic(x).detach().numpy(),
                               rtol=1e-6)
    # a plain nn.Sequential state dict loads too
    torch.save(critic.state_dict(), tmp_path / "sd.pt")
    np.testing.assert_allclose(load_critic(str(tmp_path / "sd.pt"))(x).detach().numpy(),
                               critic(x).detach().numpy(), rtol=1e-6)
    # a pickled module is refused by weights_only loading
    torch.save(critic, tmp_path / "module.pt")
    with pytest.raises(ValueError, match="weights-only"):
        load_critic(str(tmp_path / "module.pt"))
    with pytest.raises(ValueError, match="no such file"):
        load_critic(str(tmp_path / "missing.pt"))


def test_softplus_critic_is_the_formula_and_round_trips(tmp_path):
    # mlp_critic(softplus_beta=b): W2 (log(1 + e^{b z}) / b) + b2 with z = W1 x + b1
    torch.manual_seed(0)
    beta = 30.0
    critic = mlp_critic(3, (8,), softplus_beta=beta)
    (w1, b1), (w2, b2) = [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
                          for m in critic if isinstance(m, torch.nn.Linear)]
    x = np.random.default_rng(0).normal(size=(50, 3))
    z = x @ w1.T + b1
    expect = (np.logaddexp(0.0, beta * z) / beta) @ w2.T + b2
    got = critic(torch.as_tensor(x, dtype=torch.float32)).detach().double().numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    # within log(2) / beta * sum|w2| of the ReLU MLP with the same weights
    relu = (np.maximum(z, 0.0) @ w2.T + b2)
    assert np.all(np.abs(got - relu) <= np.log(2) / beta * np.abs(w2).sum() + 1e-6)
    path = tmp_path / "sp.pt"
    save_critic(critic, path)
    loaded = load_critic(str(path))
    assert isinstance(loaded[1], torch.nn.Softplus) and loaded[1].beta == beta
    xt = torch.as_tensor(x, dtype=torch.float32)
    np.testing.assert_allclose(loaded(xt).detach().numpy(), critic(xt).detach().numpy(),
                               rtol=1e-6)
    # spectral normalisation's helper modules are not activations; its weights are baked in
    spectral_normalize_(critic)
    critic.eval()
    save_critic(critic, path)
    np.testing.assert_allclose(load_critic(str(path))(xt).detach().numpy(),
                               critic(xt).detach().numpy(), rtol=1e-5)
    # what save_critic cannot describe is refused, not saved as another function
    lin, relu = torch.nn.Linear, torch.nn.ReLU
    refused = {
        "Tanh": torch.nn.Sequential(lin(3, 4), torch.nn.Tanh(), lin(4, 1)),
        "threshold=1": torch.nn.Sequential(lin(3, 4), torch.nn.Softplus(2.0), lin(4, 4),
                                           torch.nn.Softplus(2.0, threshold=1.0), lin(4, 1)),
        "Linear, Linear": torch.nn.Sequential(lin(3, 4), lin(4, 1)),  # no activation
        "Linear, ReLU, Linear, ReLU": torch.nn.Sequential(lin(3, 4), relu(), lin(4, 1), relu()),
        "beta=2": torch.nn.Sequential(lin(3, 4), torch.nn.Softplus(2.0), lin(4, 4),
                                      torch.nn.Softplus(3.0), lin(4, 1)),
    }
    for message, bad in refused.items():
        with pytest.raises(ValueError, match=message):
            save_critic(bad, tmp_path / "bad.pt")
    # nested Sequentials, Dropout and Identity (identities in eval mode) are fine
    nested = torch.nn.Sequential(torch.nn.Sequential(lin(3, 4), relu()), torch.nn.Dropout(0.1),
                                 torch.nn.Identity(), lin(4, 1)).eval()
    save_critic(nested, tmp_path / "nested.pt")
    np.testing.assert_allclose(load_critic(str(tmp_path / "nested.pt"))(xt).detach().numpy(),
                               nested(xt).detach().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="too small"):
        mlp_critic(3, (8,), softplus_beta=1e-320)
    # a checkpoint's beta is validated by the same rule
    payload = torch.load(path, weights_only=True)
    payload["softplus_beta"] = -1.0
    torch.save(payload, tmp_path / "neg.pt")
    with pytest.raises(ValueError, match="softplus_beta must be a finite number > 0"):
        load_critic(str(tmp_path / "neg.pt"))
    with pytest.raises(ValueError, match="softplus_beta"):
        mlp_critic(3, (8,), softplus_beta=0.0)
    with pytest.raises(ValueError, match="softplus_beta"):
        train_critic(x, x + 1, critic=critic, softplus_beta=10.0, steps=1, progress=False)


def test_softplus_critic_trains_and_its_certificate_holds():
    x = np.random.default_rng(2).normal(size=(400, 2))
    y = x + np.array([0.0, 1.0])
    trained = train_critic(x, y, constraint="lp", steps=60, hidden=(16, 16), softplus_beta=30,
                           seed=0, device="cpu", progress=False)
    assert trained.settings["softplus_beta"] == 30
    audit = audit_critic(trained.critic, x, y, n=400, device="cpu")
    np.testing.assert_allclose(audit.exact_w1, _pot_w1(x, y), rtol=1e-9)
    assert audit.lipschitz_lower <= audit.lipschitz_upper < np.inf
    assert audit.certified_lower <= audit.exact_w1 * (1 + 1e-9)


# ------------------------------------------------------------------------------ reports


def test_report_table_json_and_plots(tmp_path, rng):
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 0.5
    trained = train_critic(x, y, steps=10, hidden=(8,), seed=0, device="cpu", progress=False)
    audit = audit_critic(trained.critic, x, y, n=60, device="cpu")
    row = audit_row("toy", "gp", audit, 1.25)
    text = table([row])
    assert f"{audit.exact_w1:.4f}" in text and "1.2" in text
    assert table([row], markdown=True).startswith("| problem |")
    path = write_json(tmp_path / "r.json", {"audit": audit.to_dict(), "x": float("inf")})
    back = json.loads(path.read_text())
    np.testing.assert_allclose(back["audit"]["exact_w1"], audit.exact_w1)
    assert back["x"] == "inf"
    from otdiv.audit.critic import LinesSweep

    sweep = LinesSweep((0.0, 1.0), (0.0, 1.0), (0.01, 1.0), (0.0, 0.9), (0.0, 0.69), "gp", 1.0)
    for p in (plot_history(trained, tmp_path / "h.png", exact_w1=audit.exact_w1,
                           exact_std=0.01, closed_form=0.7),
              plot_level_sets(trained.critic, x, y, tmp_path / "l.png"),
              plot_lines_sweep(sweep, tmp_path / "s.png")):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="2-D"):
        plot_level_sets(trained.critic, np.zeros((3, 3)), np.zeros((3, 3)), tmp_path / "x.png")


@pytest.mark.cuda
def test_short_audit_on_gpu():
    toy = make_toy("translate", d=2)
    trained = train_critic(toy.sample_real, toy.sample_fake, steps=200, hidden=(64, 64),
                           lr=1e-3, seed=0, device="cuda", progress=False)
    assert trained.device.startswith("cuda")
    audit = audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=1000,
                         repeats=1, w1=toy.w1, device="cuda")
    assert abs(audit.rel_error) < 0.15 and audit.certified_lower <= audit.exact_w1


RING_SPACING = 2 * math.sin(math.pi / 8) * 2 / 1.414  # neighbours on the circle of radius 2/1.414


@pytest.mark.parametrize("name, k, spacing", [("8gaussians", 8, RING_SPACING),
                                               ("25gaussians", 25, 2 / 2.828)])
def test_paper_mixture_is_what_the_samplers_draw(name, k, spacing):
    # the closed-form description (centres, s) used by the truth check must match the
    # sampler: nearest centres as far apart as gan_toy.py's geometry says, every point within
    # 6 s of a centre, every centre hit about n / k times, residuals with mean 0 and std s
    centres, s = paper_mixture(name)
    assert centres.shape == (k, 2)
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(k) * 1e9
    np.testing.assert_allclose(gaps.min(), spacing, rtol=1e-12)
    x, _ = make_toy(name).sample(20_000, seed=0)
    dist = np.linalg.norm(x[:, None] - centres[None], axis=2)
    nearest = dist.argmin(axis=1)
    assert dist.min(axis=1).max() < 6 * s
    counts = np.bincount(nearest, minlength=k)
    assert np.all(np.abs(counts - 20_000 / k) < 5 * math.sqrt(20_000 / k))
    residual = x - centres[nearest]
    np.testing.assert_allclose(residual.std(axis=0), s, rtol=0.03)
    np.testing.assert_allclose(residual.mean(axis=0), 0.0, atol=4 * s / math.sqrt(20_000))
    with pytest.raises(ValueError, match="name"):
        paper_mixture("swissroll")


def _constant_critic():
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.fill_(0.3)
    return lin


def _flat_critic():  # slope 0.1 everywhere: nowhere steeper than 1, no congested flow
    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.1, 0.0]]))
    return lin


@pytest.mark.parametrize("case", ["opaque", "constant", "flat", "same samples", "w1 zero"])
def test_a_value_that_does_not_exist_is_none_never_nan(case):
    """DESIGN.md: no public function returns NaN for valid input. Each case leaves some
    fields undefined — no gradient, a zero slope, no flow, W1 = 0 — and every one of them
    is None (JSON null), every other a number."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = x if case == "same samples" else x + np.array([1.0, 0.0])
    critic = {"opaque": lambda t: torch.as_tensor(-t.detach().numpy().sum(1)),
              "constant": _constant_critic(), "flat": _flat_critic()}.get(case, _flat_critic())
    audit = audit_critic(critic, x, y, n=60, device="cpu", lambda_gp=10.0,
                         lipschitz=case != "opaque", w1=0.0 if case == "w1 zero" else None)
    values = dataclasses.asdict(audit)
    assert not [k for k, v in values.items() if isinstance(v, float) and math.isnan(v)]
    assert "nan" not in json.dumps(audit.to_dict())
    undefined = {k for k, v in values.items() if v is None}
    expected = {"opaque": {"grad_norm", "normalized_estimate", "rel_error_normalized",
                           "slope_corrected", "flow_corrected", "ctransform_corrected"},
                "constant": {"grad_norm", "slope_corrected", "flow_corrected"},
                "flat": {"flow_corrected", "rel_error_flow_corrected"},
                "same samples": {"rel_error", "rel_error_exact", "rel_error_normalized"},
                "w1 zero": {"rel_error", "rel_error_slope_corrected"}}[case]
    assert expected <= undefined, undefined
    if case == "opaque":
        assert audit.lipschitz_upper is None and audit.lipschitz_lower is None


def test_a_gradient_beyond_float32_gives_its_true_norm_not_nan():
    """‖∇f‖ of a linear critic with weights 1e20 is 1.41e20: its square overflows float32,
    so the norms are taken in float64 (a review found inf and nan here)."""
    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1e20)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    audit = audit_critic(lin, x, x + 1.0, n=40, device="cpu", lipschitz=False)
    values = dataclasses.asdict(audit)
    assert not [k for k, v in values.items() if isinstance(v, float) and math.isnan(v)]
    assert audit.grad_norm == pytest.approx(math.sqrt(2) * 1e20, rel=1e-6)
    assert audit.normalized_estimate == pytest.approx(audit.estimate / audit.grad_norm,
                                                      rel=1e-4)


def test_a_critic_outside_autograd_is_audited_without_lipschitz_bounds():
    """numpy inside the critic: no gradient, so no Lipschitz bounds (None, with the reason),
    where it raised lipschitz_bounds' ValueError; the envelope still certifies, below exact W1."""
    def critic(x):
        return torch.as_tensor(np.linalg.norm(x.detach().cpu().numpy(), axis=1))

    toy = make_toy("scale", d=2, scale=2.0)
    a = audit_critic(critic, toy.sample_real, toy.sample_fake, n=60, device="cpu", seed=0)
    assert a.lipschitz_lower is None and a.lipschitz_upper is None
    assert "cannot differentiate" in a.lipschitz_reason
    assert a.grad_norm is None
    assert 0 < a.certified_lower <= a.exact_w1 + 1e-9


@pytest.mark.parametrize("lipschitz", [False, True])
def test_a_critic_with_complex_scores_is_a_type_error(lipschitz):
    toy = make_toy("translate", d=2)
    with pytest.raises(TypeError, match=r"^critic must return real scores, got complex"):
        audit_critic(lambda x: x.to(torch.complex64).sum(1), toy.sample_real,
                     toy.sample_fake, n=20, device="cpu", lipschitz=lipschitz)
