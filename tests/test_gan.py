"""Tests of otdiv.gan: GAN losses, gradient penalties, the WGAN-GP loss and critic constraints.

Truths are independent of the code under test: numpy formulas (np.logaddexp for softplus),
closed forms of penalties on linear and quadratic critics, interpolates recorded by the
critic itself, singular values from numpy's SVD, and finite differences (gradcheck).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import otdiv
from otdiv.gan import (
    CriticLossResult,
    clip_weights_,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    spectral_normalize_,
    wgan_critic_loss,
    wgan_generator_loss,
    wgan_gp_loss,
)

KINDS = ["minimax", "non-saturating", "hinge", "least-squares"]
PENALTIES = ["two-sided", "one-sided", "r1", "r2"]

# penalties carry a graph even for parameter-free critics (create_graph=True); reading them
# with float() is what these tests mean to do
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def softplus(x):
    return np.logaddexp(0.0, x)


def d_loss_np(r, f, kind):
    if kind in ("minimax", "non-saturating"):
        return softplus(-r).mean() + softplus(f).mean()
    if kind == "hinge":
        return np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean()
    return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()


def g_loss_np(f, kind):
    return {
        "minimax": -softplus(f).mean(),
        "non-saturating": softplus(-f).mean(),
        "hinge": -f.mean(),
        "least-squares": 0.5 * ((f - 1) ** 2).mean(),
    }[kind]


def t64(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


# --------------------------------------------------------------------------- losses


def test_public_names_resolve_from_otdiv():
    assert otdiv.wgan_gp_loss is wgan_gp_loss
    assert otdiv.gradient_penalty is gradient_penalty
    assert otdiv.discriminator_loss is discriminator_loss
    assert otdiv.CriticLossResult is CriticLossResult


def test_wgan_losses_closed_form(rng):
    r, f = rng.normal(size=7), rng.normal(size=(5, 1))
    np.testing.assert_allclose(float(wgan_critic_loss(t64(r), t64(f))), f.mean() - r.mean(),
                               rtol=1e-14)
    np.testing.assert_allclose(float(wgan_generator_loss(t64(f))), -f.mean(), rtol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
@given(
    r=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-1e4, 1e4)),
    f=hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 3)),
                 elements=st.floats(-1e4, 1e4)),
)
# a logit above 20, where torch's F.softplus returns t and drops log1p(e^-t) ~ 1e-9
@example(r=np.array([0.0]), f=np.array([[21.0]]))
def test_gan_losses_match_numpy_formulas(kind, r, f):
    got_d = float(discriminator_loss(t64(r), t64(f), kind=kind))
    got_g = float(generator_loss(t64(f), kind=kind))
    np.testing.assert_allclose(got_d, d_loss_np(r, f, kind), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_g, g_loss_np(f, kind), rtol=1e-12, atol=1e-12)


def test_bce_kinds_match_torch_bce_on_probabilities(rng):
    # an independent route: sigmoid, then torch's BCE on probabilities
    r, f = t64(rng.normal(size=9)), t64(rng.normal(size=9))
    bce = torch.nn.functional.binary_cross_entropy
    expect = bce(torch.sigmoid(r), torch.ones(9, dtype=torch.float64)) + bce(
        torch.sigmoid(f), torch.zeros(9, dtype=torch.float64))
    for kind in ("minimax", "non-saturating"):  # the same loss for the discriminator
        np.testing.assert_allclose(float(discriminator_loss(r, f, kind=kind)), float(expect),
                                   rtol=1e-12)
    np.testing.assert_allclose(float(generator_loss(f, kind="minimax")),
                               float(torch.log1p(-torch.sigmoid(f)).mean()), rtol=1e-12)
    np.testing.assert_allclose(float(generator_loss(f, kind="non-saturating")),
                               float(-torch.log(torch.sigmoid(f)).mean()), rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_every_loss(kind, rng):
    r = t64(rng.normal(size=(6, 1))).requires_grad_()
    f = t64(rng.normal(size=5)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: discriminator_loss(a, b, kind=kind), (r, f))
    assert torch.autograd.gradcheck(lambda b: generator_loss(b, kind=kind), (f,))
    assert torch.autograd.gradcheck(wgan_critic_loss, (r, f))
    assert torch.autograd.gradcheck(wgan_generator_loss, (f,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_extreme_logits_finite_loss_and_gradient(kind, dtype):
    big = torch.tensor([1e4, -1e4, 0.5], dtype=dtype)
    r, f = big.clone().requires_grad_(), big.flip(0).clone().requires_grad_()
    d = discriminator_loss(r, f, kind=kind)
    g = generator_loss(f, kind=kind)
    (d + g).backward()
    for t in (d, g, r.grad, f.grad):
        assert bool(torch.isfinite(t).all())
    # the value itself, against numpy in float64 on the same (rounded) logits
    rn = r.detach().double().numpy()
    fn = f.detach().double().numpy()
    np.testing.assert_allclose(float(d.detach()), d_loss_np(rn, fn, kind), rtol=1e-6)
    np.testing.assert_allclose(float(g.detach()), g_loss_np(fn, kind), rtol=1e-6)


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", KINDS)
def test_losses_finite_under_autocast(kind, amp_dtype):
    lin = torch.nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(1e4)
        lin.bias.zero_()
    x = torch.tensor([[1.0], [-1.0], [0.0]])
    with torch.autocast("cpu", dtype=amp_dtype):
        logits = lin(x)
        assert logits.dtype == amp_dtype
        d = discriminator_loss(logits, logits.flip(0), kind=kind)
        g = generator_loss(logits, kind=kind)
    assert d.dtype == torch.float32 and g.dtype == torch.float32  # promoted, as autocast does
    (d + g).backward()
    assert bool(torch.isfinite(d)) and bool(torch.isfinite(g))
    assert bool(torch.isfinite(lin.weight.grad).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_keep_dtype(dtype):
    x = torch.zeros(3, dtype=dtype)
    for out in (wgan_critic_loss(x, x), wgan_generator_loss(x),
                *(discriminator_loss(x, x, kind=k) for k in KINDS),
                *(generator_loss(x, kind=k) for k in KINDS)):
        assert out.dtype == dtype and out.ndim == 0 and out.device == x.device


def test_loss_input_errors():
    x = torch.zeros(3)
    with pytest.raises(TypeError, match="real_scores must be a torch tensor"):
        wgan_critic_loss(np.zeros(3), x)
    with pytest.raises(TypeError, match="fake_logits must be a torch tensor"):
        generator_loss([0.0, 1.0])
    with pytest.raises(ValueError, match="kind must be one of"):
        discriminator_loss(x, x, kind="wasserstein")
    with pytest.raises(ValueError, match="kind must be one of"):
        generator_loss(x, kind="saturating")
    with pytest.raises(ValueError, match="fake_logits contains NaN"):
        discriminator_loss(x, torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="real_scores is empty"):
        wgan_critic_loss(torch.zeros(0), x)
    with pytest.raises(ValueError, match="same dtype"):
        wgan_critic_loss(x, x.double())
    with pytest.raises(TypeError, match="real_logits must be real"):
        discriminator_loss(torch.zeros(2, dtype=torch.complex64), x)


# --------------------------------------------------------------------------- penalties


def linear_critic(w):
    """f(x) = <w, x> per sample, for samples of w's shape: gradient w everywhere."""
    return lambda x: (x * w).reshape(x.shape[0], -1).sum(dim=1)


def quadratic_critic(a):
    """f(x) = a ||x||^2 / 2 per sample: gradient a x."""
    return lambda x: 0.5 * a * x.reshape(x.shape[0], -1).square().sum(dim=1)


@pytest.mark.parametrize("shape", [(4,), (3,), (2, 5, 5), (3, 4, 2)])
def test_linear_critic_closed_forms(shape, rng):
    n = 6
    w = rng.normal(size=shape)
    wn = np.linalg.norm(w)
    real, fake = t64(rng.normal(size=(n, *shape))), t64(rng.normal(size=(n, *shape)))
    for target in (1.0, 0.5, 3.0):
        got = gradient_penalty(linear_critic(t64(w)), real, fake, kind="two-sided",
                               target=target)
        np.testing.assert_allclose(float(got), (wn - target) ** 2, rtol=1e-12)
        got = gradient_penalty(linear_critic(t64(w)), real, fake, kind="one-sided",
                               target=target)
        np.testing.assert_allclose(float(got), max(0.0, wn - target) ** 2, rtol=1e-12,
                                   atol=1e-15)
    for kind in ("r1", "r2"):
        got = gradient_penalty(linear_critic(t64(w)), real, fake, kind=kind)
        np.testing.assert_allclose(float(got), wn**2, rtol=1e-12)


def test_quadratic_critic_real_equals_fake_is_per_sample(rng):
    # from the issue: with real = fake the interpolates are the samples themselves, so the
    # penalty is mean_i (||x_i|| - 1)^2; a norm over the whole batch gives something else
    x = rng.normal(size=(8, 3, 4)) * rng.uniform(0.1, 3.0, size=(8, 1, 1))
    norms = np.linalg.norm(x.reshape(8, -1), axis=1)
    got = gradient_penalty(quadratic_critic(1.0), t64(x), t64(x))
    np.testing.assert_allclose(float(got), np.mean((norms - 1) ** 2), rtol=1e-12)
    got = gradient_penalty(quadratic_critic(1.0), t64(x), t64(x), kind="one-sided")
    np.testing.assert_allclose(float(got), np.mean(np.maximum(norms - 1, 0) ** 2), rtol=1e-12)


@given(
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
    n=st.integers(1, 5),
    n_fake=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_r1_r2_quadratic_any_rank(shape, n, n_fake, seed):
    # R1 of a * ||x||^2 / 2 is a^2 mean_i ||x_i||^2 at the reals; R2 the same at the fakes
    g = np.random.default_rng(seed)
    a = g.uniform(0.1, 2.0)
    real, fake = g.normal(size=(n, *shape)), g.normal(size=(n_fake, *shape))
    r1 = gradient_penalty(quadratic_critic(a), t64(real), t64(fake), kind="r1")
    r2 = gradient_penalty(quadratic_critic(a), t64(real), t64(fake), kind="r2")
    np.testing.assert_allclose(float(r1), a**2 * np.mean(np.sum(real.reshape(n, -1) ** 2, 1)),
                               rtol=1e-12)
    np.testing.assert_allclose(
        float(r2), a**2 * np.mean(np.sum(fake.reshape(n_fake, -1) ** 2, 1)), rtol=1e-12)


def test_interpolates_one_coefficient_per_sample(rng):
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return 0.5 * x.reshape(x.shape[0], -1).square().sum(dim=1)

    n = 64
    real, fake = rng.normal(size=(n, 2, 3)), rng.normal(size=(n, 2, 3)) + 5.0
    got = gradient_penalty(critic, t64(real), t64(fake))
    (xhat,) = [s.numpy() for s in seen]
    t = (xhat - fake) / (real - fake)  # one coefficient per sample, same in every entry
    np.testing.assert_allclose(t, np.broadcast_to(t[:, :1, :1], t.shape), rtol=1e-9)
    assert t.min() >= 0.0 and t.max() <= 1.0
    assert len(np.unique(t[:, 0, 0].round(12))) == n  # drawn per sample, not per batch
    norms = np.linalg.norm(xhat.reshape(n, -1), axis=1)  # gradient of ||x||^2/2 is x
    np.testing.assert_allclose(float(got), np.mean((norms - 1) ** 2), rtol=1e-12)


def test_generator_makes_penalty_reproducible(rng):
    real, fake = t64(rng.normal(size=(16, 3))), t64(rng.normal(size=(16, 3)))
    crit = quadratic_critic(1.0)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return float(gradient_penalty(crit, real, fake, generator=g))

    assert run(3) == run(3)
    assert run(3) != run(4)
    g = torch.Generator().manual_seed(3)
    a = float(wgan_gp_loss(crit, real, fake, generator=g))
    g = torch.Generator().manual_seed(3)
    assert a == float(wgan_gp_loss(crit, real, fake, generator=g))


def test_double_backprop_matches_closed_form_gradients(rng):
    # two-sided on a linear critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    w0 = rng.normal(size=5)
    x = t64(rng.normal(size=(7, 5)))
    for kind, grad in (
        ("two-sided", 2 * (np.linalg.norm(w0) - 1) * w0 / np.linalg.norm(w0)),
        ("r1", 2 * w0),
    ):
        w = t64(w0).requires_grad_()
        gradient_penalty(linear_critic(w), x, x.flip(0), kind=kind).backward()
        np.testing.assert_allclose(w.grad.numpy(), grad, rtol=1e-12)
    # quadratic a ||x||^2/2 with real = fake: d/da mean (a||x_i|| - 1)^2
    norms = np.linalg.norm(x.numpy(), axis=1)
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    gradient_penalty(quadratic_critic(a), x, x).backward()
    np.testing.assert_allclose(float(a.grad), np.mean(2 * (0.7 * norms - 1) * norms),
                               rtol=1e-12)


@pytest.mark.parametrize("kind", PENALTIES)
def test_gradcheck_penalty_and_wgan_gp_loss(kind, rng):
    x_real = t64(rng.normal(size=(5, 3)))
    x_fake = t64(rng.normal(size=(5, 3)))
    w1 = t64(rng.normal(size=(3, 4))).requires_grad_()
    w2 = t64(rng.normal(size=4)).requires_grad_()

    def critic_of(a, b):
        return lambda x: torch.tanh(x @ a) @ b

    def penalty(a, b):
        g = torch.Generator().manual_seed(0)  # the same interpolates at every evaluation
        return gradient_penalty(critic_of(a, b), x_real, x_fake, kind=kind, generator=g)

    def loss(a, b):
        g = torch.Generator().manual_seed(0)
        return wgan_gp_loss(critic_of(a, b), x_real, x_fake, kind=kind, generator=g)

    assert torch.autograd.gradcheck(penalty, (w1, w2))
    assert torch.autograd.gradcheck(loss, (w1, w2))


def test_zero_gradient_gives_no_nan():
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 3, dtype=torch.float64)
    critics = {
        "flat": lambda z: (z * w).sum(dim=1) + b,  # gradient w = 0
        "ignores input": lambda z: b.expand(z.shape[0]),  # not connected to z at all
    }
    expect = {"two-sided": 1.0, "one-sided": 0.0, "r1": 0.0, "r2": 0.0}
    for critic in critics.values():
        for kind in PENALTIES:
            w.grad = b.grad = None
            p = gradient_penalty(critic, x, x.flip(0), kind=kind)
            np.testing.assert_allclose(float(p), expect[kind])
            (p + b).backward()
            assert w.grad is None or bool(torch.isfinite(w.grad).all())
            assert bool(torch.isfinite(b.grad))


def test_penalty_works_under_no_grad_and_leaves_generator_alone(rng):
    gen = torch.nn.Linear(2, 2).double()
    real = t64(rng.normal(size=(5, 2)))
    fake = gen(t64(rng.normal(size=(5, 2))))  # carries the generator's graph
    with torch.no_grad():
        p = gradient_penalty(quadratic_critic(1.0), real, real.clone(), kind="two-sided")
    norms = np.linalg.norm(real.numpy(), axis=1)
    np.testing.assert_allclose(float(p), np.mean((norms - 1) ** 2), rtol=1e-12)
    w = t64(rng.normal(size=2)).requires_grad_()
    wgan_gp_loss(linear_critic(w), real, fake).backward()
    assert gen.weight.grad is None and w.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_penalty_keeps_dtype_and_device(dtype):
    critic = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    critic = critic.to(dtype)
    x = torch.randn(6, 3, dtype=dtype)
    for kind in PENALTIES:
        p = gradient_penalty(critic, x, x.flip(0), kind=kind)
        assert p.dtype == dtype and p.device == x.device and p.ndim == 0
    res = wgan_gp_loss(critic, x, x.flip(0), return_result=True)
    for t in (res.loss, res.estimate, res.penalty):
        assert t.dtype == dtype and t.device == x.device


def test_penalty_under_autocast_is_finite():
    critic = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x = torch.randn(6, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = wgan_gp_loss(critic, x, x + 1.0)
    loss.backward()
    assert bool(torch.isfinite(loss))
    assert all(bool(torch.isfinite(p.grad).all()) for p in critic.parameters())


@pytest.mark.cuda
def test_cuda_device_preserved():
    critic = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                 torch.nn.Linear(4, 1)).cuda()
    x = torch.randn(6, 3, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    for kind in PENALTIES:
        assert gradient_penalty(critic, x, x + 1, kind=kind, generator=g).device == x.device
    assert discriminator_loss(x[:, 0], x[:, 1]).device == x.device


def test_penalty_input_errors():
    critic = quadratic_critic(1.0)
    x = torch.randn(4, 3)
    with pytest.raises(TypeError, match="critic must be callable"):
        gradient_penalty("critic", x, x)
    with pytest.raises(TypeError, match="real must be a torch tensor"):
        gradient_penalty(critic, x.numpy(), x)
    with pytest.raises(TypeError, match="fake must be a floating-point tensor"):
        gradient_penalty(critic, x, torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="real and fake shapes differ"):
        gradient_penalty(critic, x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="real and fake samples differ in shape"):
        gradient_penalty(critic, x, torch.randn(5, 2), kind="r1")
    with pytest.raises(ValueError, match="real and fake must have the same dtype"):
        gradient_penalty(critic, x, x.double())
    with pytest.raises(ValueError, match="kind must be one of"):
        gradient_penalty(critic, x, x, kind="r3")
    with pytest.raises(ValueError, match="target must be a finite number > 0"):
        gradient_penalty(critic, x, x, target=0.0)
    with pytest.raises(ValueError, match="target applies to"):
        gradient_penalty(critic, x, x, kind="r1", target=2.0)
    with pytest.raises(ValueError, match="real contains NaN"):
        gradient_penalty(critic, torch.full((4, 3), float("inf")), x)
    with pytest.raises(ValueError, match="fake must have shape"):
        gradient_penalty(critic, x, x[:0], kind="r1")
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        gradient_penalty(critic, x, x, generator=0)
    with pytest.raises(ValueError, match="critic must return one score per sample"):
        gradient_penalty(lambda z: z, x, x)
    with pytest.raises(TypeError, match="critic must return a torch tensor"):
        gradient_penalty(lambda z: 1.0, x, x)
    with pytest.raises(ValueError, match="lambda_gp must be a finite number >= 0"):
        wgan_gp_loss(critic, x, x, lambda_gp=-1.0)
    with pytest.raises(TypeError, match="lambda_gp must be a real number"):
        wgan_gp_loss(critic, x, x, lambda_gp="10")


# --------------------------------------------------------------------------- wgan_gp_loss


@pytest.mark.parametrize("kind", PENALTIES)
def test_wgan_gp_loss_closed_form_and_parts(kind, rng):
    w0 = rng.normal(size=4)
    real, fake = rng.normal(size=(9, 4)), rng.normal(size=(9, 4)) + 1.0
    calls = []

    def critic(x):
        calls.append(x.shape[0])
        return x @ t64(w0)

    wn = np.linalg.norm(w0)
    penalty = {"two-sided": (wn - 1) ** 2, "one-sided": max(wn - 1, 0) ** 2,
               "r1": wn**2, "r2": wn**2}[kind]
    estimate = (real @ w0).mean() - (fake @ w0).mean()
    res = wgan_gp_loss(critic, t64(real), t64(fake), lambda_gp=3.0, kind=kind,
                       return_result=True)
    assert isinstance(res, CriticLossResult)
    np.testing.assert_allclose(float(res.estimate), estimate, rtol=1e-12)
    np.testing.assert_allclose(float(res.penalty), penalty, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(float(res.loss), -estimate + 3.0 * penalty, rtol=1e-12)
    assert not res.estimate.requires_grad and not res.penalty.requires_grad
    assert len(calls) == (2 if kind in ("r1", "r2") else 3)  # r1/r2 reuse their scores
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.loss = None
    plain = wgan_gp_loss(critic, t64(real), t64(fake), lambda_gp=0.0, kind=kind)
    np.testing.assert_allclose(float(plain), -estimate, rtol=1e-12)


def test_wgan_gp_loss_training_reaches_the_closed_form_optimum():
    # a linear critic w x + b on 1-D samples, fake mean above real mean by D: the loss is
    # w D + lambda (|w| - 1)^2, minimised at w = -(1 + D / (2 lambda)), so the estimate
    # converges to D (1 + D / (2 lambda)) -- WGAN-GP's known overshoot of W1 = D. (For
    # w > 0 the penalty makes a second, wrong-sign local minimum; start in the right basin.)
    torch.manual_seed(0)
    critic = torch.nn.Linear(1, 1).double()
    with torch.no_grad():
        critic.weight.fill_(-0.5)
    opt = torch.optim.Adam(critic.parameters(), lr=0.05)
    real = torch.randn(100, 1, dtype=torch.float64)
    fake = torch.randn(100, 1, dtype=torch.float64) + 2.0
    gap = float(fake.mean() - real.mean())
    for _ in range(150):
        opt.zero_grad()
        res = wgan_gp_loss(critic, real, fake, lambda_gp=10.0, return_result=True)
        res.loss.backward()
        opt.step()
    np.testing.assert_allclose(float(res.estimate), gap * (1 + gap / 20.0), rtol=1e-3)


# --------------------------------------------------------------------------- constraints


def test_clip_weights_bounds_and_identity(rng):
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6),
                              torch.nn.Linear(6, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.as_tensor(rng.normal(scale=0.05, size=p.shape)))
    before = [p.detach().numpy().copy() for p in net.parameters()]
    ids = [id(p) for p in net.parameters()]
    out = clip_weights_(net, c=0.03)
    assert out is net
    assert [id(p) for p in net.parameters()] == ids  # in place, same Parameter objects
    for p, b in zip(net.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.detach().numpy(), np.clip(b, -0.03, 0.03))
        assert p.requires_grad and p.grad_fn is None and p.is_leaf
    # all parameters, biases and LayerNorm scale included
    assert float(net[1].weight.max()) <= 0.03


def test_clip_weights_errors():
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module"):
        clip_weights_(lambda x: x)
    with pytest.raises(ValueError, match="c must be a finite number > 0"):
        clip_weights_(torch.nn.Linear(2, 2), c=-0.01)


def _sigma_max(weight):
    w = weight.detach().double().numpy()
    return np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0]


def test_spectral_normalize_every_linear_and_conv():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Sequential(torch.nn.Linear(4 * 4 * 4, 16), torch.nn.ReLU()),
        torch.nn.Linear(16, 1),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(7.0)
    assert spectral_normalize_(net, n_power_iterations=30) is net
    spectral_normalize_(net)  # a second call must not stack another normalisation
    x = torch.randn(8, 2, 6, 6)
    for _ in range(3):  # training-mode forwards advance the power iteration
        net(x)
    layers = [net[0], net[3][0], net[4]]
    for layer in layers:
        assert len(layer.parametrizations.weight) == 1
        np.testing.assert_allclose(_sigma_max(layer.weight), 1.0, rtol=1e-3)
    assert spectral_normalize_(torch.nn.Linear(3, 3)).parametrizations.weight is not None


def test_spectral_normalized_mlp_gradient_norm_at_most_one():
    # with 1-Lipschitz activations and converged power iteration, the product bound holds:
    # every input gradient has norm <= 1
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.LeakyReLU(0.2),
                              torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    spectral_normalize_(net, n_power_iterations=50)
    net(torch.randn(2, 5))
    net.eval()
    x = torch.randn(256, 5, requires_grad=True)
    (g,) = torch.autograd.grad(net(x).sum(), x)
    assert float(g.norm(dim=1).max()) <= 1.0 + 1e-3


def test_spectral_normalize_skips_legacy_and_checks_arguments():
    legacy = torch.nn.utils.spectral_norm(torch.nn.Linear(3, 3))
    spectral_normalize_(legacy)
    assert not hasattr(legacy, "parametrizations")
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module"):
        spectral_normalize_(None)
    with pytest.raises(ValueError, match="n_power_iterations must be an integer >= 1"):
        spectral_normalize_(torch.nn.Linear(2, 2), n_power_iterations=0)


# --------------------------------------------------------------------------- Sinkhorn loss


def test_sinkhorn_divergence_as_generator_loss_closed_form(rng):
    # for the cost ||x - y||^2 the divergence between a cloud and its translate by t is
    # exactly ||t||^2 for every eps (the cross term <P, 2 t.(x - y)> vanishes on equal
    # marginals and the debiasing removes OT_eps(a, a)); so a "generator" that shifts a
    # fixed cloud by mu has loss ||mu - shift||^2 and gradient 2 (mu - shift)
    x = t64(rng.normal(size=(32, 2)))
    shift = t64([2.0, -1.0])
    mu = t64([0.3, 0.4]).requires_grad_()
    for eps in (0.5, 5.0):
        mu.grad = None
        loss = otdiv.sinkhorn_divergence(x + mu, x + shift, eps=eps)
        loss.backward()
        gap = (mu - shift).detach().numpy()
        np.testing.assert_allclose(float(loss), np.sum(gap**2), rtol=1e-6)
        np.testing.assert_allclose(mu.grad.numpy(), 2 * gap, rtol=1e-5)
    opt = torch.optim.SGD([mu], lr=0.25)  # 0.25 * 2: each step halves the gap
    for _ in range(12):
        opt.zero_grad()
        otdiv.sinkhorn_divergence(x + mu, x + shift, eps=1.0).backward()
        opt.step()
    np.testing.assert_allclose(mu.detach().numpy(), shift.numpy(), atol=2e-3)
