"""GAN losses and critic constraints at the ends of the float range and with hostile options."""

from __future__ import annotations

import math

import pytest
import torch

from otdiv import (
    clip_weights_,
    discriminator_loss,
    generator_loss,
    spectral_normalize_,
    wgan_critic_loss,
    wgan_generator_loss,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_wgan_loss_of_huge_finite_scores_is_exact_not_nan(dtype):
    big = torch.finfo(dtype).max / 2
    real = torch.full((8,), big, dtype=dtype, requires_grad=True)
    fake = torch.full((8,), big / 2, dtype=dtype)
    loss = wgan_critic_loss(real, fake)
    # mean(fake) - mean(real) = -big/2, representable: the sums overflow, the loss must not
    assert loss.item() == pytest.approx(-big / 2, rel=1e-6)
    loss.backward()
    torch.testing.assert_close(real.grad, torch.full_like(real, -1 / 8))
    assert wgan_generator_loss(fake).item() == pytest.approx(-big / 2, rel=1e-6)


@pytest.mark.parametrize("kind", ["minimax", "non-saturating", "hinge", "least-squares"])
def test_no_loss_is_nan_for_finite_logits(kind):
    top = torch.finfo(torch.float64).max
    for r, f in [(top, -top), (-top, top), (top, top), (5e-324, -5e-324)]:
        real = torch.full((4,), r, dtype=torch.float64)
        fake = torch.full((4,), f, dtype=torch.float64)
        for value in (discriminator_loss(real, fake, kind=kind), generator_loss(fake, kind=kind)):
            assert not math.isnan(value.item())


def test_small_scores_keep_their_rounding():
    # scaling by a power of two is exact: the loss equals the plain formula bit for bit
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(1000, generator=g), torch.randn(700, generator=g) * 3
    assert wgan_critic_loss(real, fake).item() == (fake.mean() - real.mean()).item()


def test_clip_weights_beyond_the_float_range_clips_nothing():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    before = [p.detach().clone() for p in net.parameters()]
    clip_weights_(net, c=1e300)
    for p, q in zip(net.parameters(), before, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_spectral_normalize_refuses_an_unbounded_iteration_count():
    with pytest.raises(ValueError, match="n_power_iterations must be <= 10000"):
        spectral_normalize_(torch.nn.Linear(2, 2), n_power_iterations=10**9)


def test_spectral_normalize_an_all_zero_layer_then_train_it():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 4)
    torch.nn.init.zeros_(layer.weight)
    spectral_normalize_(layer)
    out = layer(torch.ones(2, 3))
    torch.testing.assert_close(out, layer.bias.expand(2, 4))  # a zero map, not NaN
    with torch.no_grad():  # training moves the weight away from zero
        layer.parametrizations.weight.original.copy_(torch.randn(4, 3) * 7)
    layer.train()
    for _ in range(20):
        layer(torch.ones(1, 3))
    assert torch.linalg.matrix_norm(layer.weight.detach(), 2).item() == pytest.approx(1, rel=1e-4)


def test_a_zero_layer_leaving_zero_draws_its_vectors_reproducibly_off_the_global_rng():
    # the vectors are drawn again once the weight leaves zero; two runs from the same
    # state must give the same layer, and torch's global RNG must not move
    def run() -> tuple[torch.Tensor, torch.Tensor]:
        layer = torch.nn.Linear(5, 4)
        torch.nn.init.zeros_(layer.weight)
        spectral_normalize_(layer)
        layer(torch.ones(1, 5))  # the zero weight: nothing drawn
        with torch.no_grad():
            layer.parametrizations.weight.original.copy_(
                torch.arange(20.0).reshape(4, 5).sin())
        state = torch.get_rng_state()
        layer.train()
        layer(torch.ones(1, 5))  # draws the vectors, one power-iteration step
        assert torch.equal(torch.get_rng_state(), state)
        sn = layer.parametrizations.weight[0]
        return sn._u.clone(), layer.weight.detach().clone()

    torch.manual_seed(1)
    u1, w1 = run()
    torch.manual_seed(2)  # another global state: the same vectors all the same
    u2, w2 = run()
    assert torch.equal(u1, u2) and torch.equal(w1, w2)
    assert bool(u1.any())
