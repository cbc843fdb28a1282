"""Critic constraints: gradient penalties, the WGAN-GP loss, weight clipping, spectral norm.

A WGAN critic estimates W1 only if it is (close to) 1-Lipschitz. The penalties push the
norm of the critic's input gradient towards 1 where they are evaluated; weight clipping and
spectral normalisation bound the weights instead. None of them *guarantees* a
1-Lipschitz critic: docs/gan.md says what each one does and does not promise, and
:func:`otdiv.lipschitz_bounds` measures the result.

Gradient norms are taken per sample over all non-batch dimensions, so inputs of any rank
(vectors, images, sequences) are handled alike; the batch dimension is the first one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from otdiv._array import (
    array_kind,
    check_batch,
    check_callable,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_scores,
)
from otdiv.gan.losses import wgan_critic_loss

if TYPE_CHECKING:
    import torch

PENALTY_KINDS = ("two-sided", "one-sided", "r1", "r2")


@dataclass(frozen=True)
class CriticLossResult:
    """The parts of :func:`wgan_gp_loss`: loss = −estimate + lambda_gp · penalty.

    Attributes:
        loss: the critic loss to minimise (0-d tensor, with its graph).
        estimate: mean(critic(real)) − mean(critic(fake)), the critic's W1 estimate
            (0-d tensor, detached: it is for logging).
        penalty: the unweighted gradient penalty (0-d tensor, detached).
    """

    loss: torch.Tensor
    estimate: torch.Tensor
    penalty: torch.Tensor


def _check_pair(real: object, fake: object, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    r, f = (check_batch(v, name, "otdiv's gradient penalties are torch only")
            for v, name in ((real, "real"), (fake, "fake")))
    array_kind({"real": r, "fake": f})  # same device
    if r.dtype != f.dtype:
        raise ValueError(f"real and fake must have the same dtype, got {r.dtype} and {f.dtype}")
    if kind in ("two-sided", "one-sided"):
        if r.shape != f.shape:
            raise ValueError(
                f"real and fake shapes differ: real.shape={tuple(r.shape)}, "
                f"fake.shape={tuple(f.shape)}; interpolation pairs real[i] with fake[i], so "
                "they need the same shape"
            )
    elif r.shape[1:] != f.shape[1:]:
        raise ValueError(
            f"real and fake samples differ in shape: real.shape={tuple(r.shape)}, "
            f"fake.shape={tuple(f.shape)}; they must agree in every dimension but the first"
        )
    return r, f


def _scores(critic: Callable, x: torch.Tensor) -> torch.Tensor:
    """critic(x) as n scores (``check_scores``: shape (n,) or (n, 1), returned as (n,))."""
    return check_scores(critic(x), x.shape[0], "critic", verb="return", tensor=True,
                        detail=f" for an input of shape {tuple(x.shape)}")


def _penalty_at(
    critic: Callable, x: torch.Tensor, kind: str, target: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty, critic scores) at the points x, which are detached into a fresh leaf."""
    import torch

    x = x.detach().requires_grad_(True)
    # enable_grad: the penalty is also wanted for logging inside torch.no_grad() blocks
    with torch.enable_grad():
        scores = _scores(critic, x)
        if scores.requires_grad:
            (grad,) = torch.autograd.grad(
                scores.sum(), x, create_graph=True, allow_unused=True
            )
        else:
            grad = None
        if grad is None:  # the critic ignores its input: its gradient is zero
            grad = torch.zeros_like(x)
        # scores of different samples are independent (no batch norm), so the gradient of
        # their sum holds each sample's own input gradient in its row
        grad = grad.reshape(x.shape[0], -1)
        if kind in ("r1", "r2"):
            # squared norm directly: no square root, no kink at a zero gradient
            penalty = grad.square().sum(dim=1).mean()
        else:
            # vector_norm's backward is 0 (not NaN) at a zero gradient
            excess = torch.linalg.vector_norm(grad, dim=1) - target
            if kind == "one-sided":
                excess = excess.clamp(min=0)
            penalty = excess.square().mean()
    return penalty, scores


def _interpolates(real, fake, generator):
    """One uniform coefficient per sample: x̂_i = fake_i + t_i (real_i − fake_i)."""
    import torch

    n = real.shape[0]
    t = torch.rand(n, dtype=real.dtype, device=real.device, generator=generator)
    return torch.lerp(fake.detach(), real.detach(), t.view(n, *([1] * (real.ndim - 1))))


def _check_generator(generator: object, device) -> None:
    if generator is None:
        return
    import torch

    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but real and fake are on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )


def _check_options(critic, real, fake, kind, target, generator):
    check_callable(critic, "critic", " (an nn.Module or a function)")
    kind = check_choice(kind, "kind", PENALTY_KINDS)
    target = check_positive(target, "target")
    if kind in ("r1", "r2") and target != 1.0:
        raise ValueError(
            f"target applies to the 'two-sided' and 'one-sided' penalties only; kind={kind!r} "
            f"penalises ||grad||^2 itself, got target={target}"
        )
    real, fake = _check_pair(real, fake, kind)
    _check_generator(generator, real.device)
    return real, fake, kind, target


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    kind: str = "two-sided",
    target: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """GP = mean_i (‖∇ₓ critic(x̂_i)‖ − target)², x̂_i = t_i real_i + (1 − t_i) fake_i, t_i ~ U[0, 1].

    That is the two-sided penalty of WGAN-GP (Gulrajani et al. 2017), the default. Kinds:

    * ``"two-sided"``: the formula above, at random interpolates.
    * ``"one-sided"``: mean_i max(0, ‖∇ critic(x̂_i)‖ − target)², at the same interpolates
      (WGAN-LP, Petzka et al. 2018): only gradients steeper than ``target`` are penalised.
    * ``"r1"``: mean_i ‖∇ critic(real_i)‖², at the real samples (Mescheder et al. 2018).
      The paper's regulariser is R1 = γ/2 · E‖∇D(x)‖²; this function returns
      E‖∇D(x)‖² **without** the ½, so R1 = ``gamma / 2 * gradient_penalty(..., kind="r1")``.
    * ``"r2"``: mean_i ‖∇ critic(fake_i)‖², the same at the generated samples (no ½ either).

    The gradient norm is the Euclidean norm of each sample's gradient over all its
    non-batch dimensions (an image's gradient is flattened, never summed over the batch),
    so ``real`` and ``fake`` may have any shape (n, ...). One interpolation coefficient is
    drawn per sample. ``real`` and ``fake`` are detached: the penalty is a function of the
    critic's parameters only, and it is computed with ``create_graph=True`` so that
    ``penalty.backward()`` reaches them (double backpropagation). A zero gradient gives a
    finite penalty and finite parameter gradients, never NaN.

    The critic must score each sample independently (layer norm, not batch norm, as the
    WGAN-GP paper advises): with batch norm the row i of the batch gradient is not the
    gradient of sample i's score alone.

    Args:
        critic: a callable mapping a batch (n, ...) to n scores, shape (n,) or (n, 1).
        real: real samples, shape (n, ...), floating point.
        fake: generated samples; for the interpolating kinds the same shape as ``real``,
            for "r1"/"r2" the same shape except possibly the batch size.
        kind: "two-sided", "one-sided", "r1" or "r2".
        target: the gradient norm aimed at by the two-sided and one-sided kinds (> 0);
            "r1"/"r2" accept only the default 1.0 as they have no target.
        generator: a ``torch.Generator`` on the samples' device, for reproducible
            interpolation coefficients (None: torch's global generator).

    Returns:
        A 0-d tensor (the dtype of the input gradient, the samples' device), differentiable
        with respect to the critic's parameters.
    """
    real, fake, kind, target = _check_options(critic, real, fake, kind, target, generator)
    if kind == "r1":
        x = real
    elif kind == "r2":
        x = fake
    else:
        x = _interpolates(real, fake, generator)
    return _penalty_at(critic, x, kind, target)[0]


def wgan_gp_loss(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    lambda_gp: float = 10.0,
    kind: str = "two-sided",
    generator: torch.Generator | None = None,
    return_result: bool = False,
) -> torch.Tensor | CriticLossResult:
    """L = mean(critic(fake)) − mean(critic(real)) + lambda_gp · GP, GP = :func:`gradient_penalty`.

    The WGAN-GP critic loss (Gulrajani et al. 2017, lambda_gp = 10) with any penalty kind of
    :func:`gradient_penalty` (target 1). With ``kind="r1"`` the paper's γ/2 is
    ``lambda_gp``: R1 with γ = 10 is ``lambda_gp=5``. For "r1"/"r2" the critic's scores at
    the penalised points are reused, so the critic runs twice, not three times.

    ``fake`` is detached along with ``real`` (the critic step does not train the
    generator); pass ``fake`` straight from the generator without ``.detach()``.

    Args:
        critic: a callable mapping a batch (n, ...) to n scores, shape (n,) or (n, 1).
        real: real samples, shape (n, ...).
        fake: generated samples, the same shape (for "r1"/"r2", any batch size).
        lambda_gp: the penalty weight, >= 0 (0 gives the plain WGAN critic loss).
        kind: "two-sided", "one-sided", "r1" or "r2" (see :func:`gradient_penalty`).
        generator: a ``torch.Generator`` for the interpolation coefficients.
        return_result: return a :class:`CriticLossResult` (loss, estimate, penalty)
            instead of the loss alone; estimate and penalty are detached, for logging.

    Returns:
        The loss, a 0-d tensor to minimise, or a :class:`CriticLossResult`.
    """
    lambda_gp = check_nonnegative(lambda_gp, "lambda_gp")
    real, fake, kind, target = _check_options(critic, real, fake, kind, 1.0, generator)
    if kind == "r1":
        penalty, real_scores = _penalty_at(critic, real, kind, target)
        fake_scores = _scores(critic, fake.detach())
    elif kind == "r2":
        penalty, fake_scores = _penalty_at(critic, fake, kind, target)
        real_scores = _scores(critic, real.detach())
    else:
        real_scores = _scores(critic, real.detach())
        fake_scores = _scores(critic, fake.detach())
        penalty, _ = _penalty_at(critic, _interpolates(real, fake, generator), kind, target)
    critic_loss = wgan_critic_loss(real_scores, fake_scores)
    loss = critic_loss + lambda_gp * penalty.to(critic_loss.dtype)
    if not return_result:
        return loss
    return CriticLossResult(loss=loss, estimate=-critic_loss.detach(), penalty=penalty.detach())


def clip_weights_(module: torch.nn.Module, c: float = 0.01) -> torch.nn.Module:
    """w ← clamp(w, −c, c) for every parameter w of ``module``, in place (WGAN, Arjovsky 2017).

    All parameters are clipped, biases and normalisation scales included, as the WGAN paper
    does. Call it after each critic optimiser step. It returns ``module`` for chaining.

    What it guarantees: the parameters lie in a compact box, so the critic is K-Lipschitz
    for *some* finite K fixed by the architecture and c (for a linear layer with m × k
    entries in [−c, c], the spectral norm is at most c·√(mk)). What it does not: K = 1, or
    any control of K during training, so the critic estimates K·W1 for an unknown K, and a
    small c tends to vanishing gradients, a large one to slow training.

    Args:
        module: the critic (any ``torch.nn.Module``).
        c: the clipping bound, > 0.

    Returns:
        ``module`` itself.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    c = check_positive(c, "c")
    with torch.no_grad():
        for param in module.parameters():
            # a bound beyond the parameter's float range clips nothing (and torch refuses it)
            bound = min(c, torch.finfo(param.dtype).max) if param.is_floating_point() else c
            param.clamp_(-bound, bound)
    return module


def spectral_normalize_(
    module: torch.nn.Module, *, n_power_iterations: int = 1
) -> torch.nn.Module:
    """W ← W / σ(W) for every Linear and Conv layer of ``module``, in place (Miyato et al. 2018).

    σ(W) is the largest singular value of the weight (a convolution's kernel reshaped to
    (out_channels, in_channels·k…)), estimated by power iteration through
    ``torch.nn.utils.parametrizations.spectral_norm``; the module itself is also normalised
    when it is such a layer. Layers already spectrally normalised are left as they are, so
    calling it twice is harmless. Returns ``module`` for chaining.

    What it guarantees: each normalised weight matrix has spectral norm ≈ 1 (exactly 1 only
    once the power iteration has converged; it advances ``n_power_iterations`` steps per
    forward pass in training mode and is frozen in eval mode). What it does not: a
    1-Lipschitz critic. The product of the layers' norms bounds the network's Lipschitz
    constant only for 1-Lipschitz activations and no other layers; batch norm, residual
    additions, attention and un-normalised layer types break the bound, and for a
    convolution the reshaped-kernel norm is not its operator norm (the true constant can be
    larger by up to √(kernel size)). The bound is also loose: the critic is usually far
    flatter than 1-Lipschitz, so its W1 estimate is scaled down by an unknown factor.

    Args:
        module: the critic (any ``torch.nn.Module``).
        n_power_iterations: power-iteration steps per forward pass, >= 1.

    Returns:
        ``module`` itself.
    """
    import torch
    from torch.nn.utils import parametrize

    _SpectralNorm, _ZeroSafeSpectralNorm = _zero_safe_spectral_norm_class()

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    n_power_iterations = check_int(n_power_iterations, "n_power_iterations")
    if n_power_iterations > _MAX_POWER_ITERATIONS:
        # every forward pass in training mode runs them all: 10**9 would never return
        raise ValueError(
            f"n_power_iterations must be <= {_MAX_POWER_ITERATIONS} (each training-mode "
            f"forward pass runs them all; 1 is the usual choice), got {n_power_iterations}"
        )
    # collect first: registering a parametrization adds submodules while we iterate
    layers = [
        m for m in module.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))
    ]
    for layer in layers:
        already = hasattr(layer, "weight_orig")  # torch.nn.utils.spectral_norm (old hooks)
        if parametrize.is_parametrized(layer, "weight"):
            already |= any(isinstance(p, _SpectralNorm)
                           for p in layer.parametrizations["weight"])
        if already:
            continue
        transposed = isinstance(layer, torch.nn.modules.conv._ConvTransposeNd)
        parametrize.register_parametrization(
            layer, "weight",
            _ZeroSafeSpectralNorm(layer.weight, n_power_iterations, 1 if transposed else 0)
        )
    return module


_MAX_POWER_ITERATIONS = 10_000
_REDRAW_SEED = 0x5EED  # start vectors of a layer whose weight leaves zero (any fixed seed)


@functools.cache
def _zero_safe_spectral_norm_class():
    """torch's spectral-norm parametrization, safe at an all-zero weight.

    torch divides W by σ(W) estimated from power-iteration vectors u, v; at W = 0 both σ
    and the vectors become 0, so the layer outputs 0/0 = NaN, and a layer that starts at
    zero never recovers (its u, v stay 0). Here a zero weight is returned as it is (it is
    already 1-Lipschitz), and the vectors are drawn again once the weight is non-zero —
    from a CPU generator of their own with a fixed seed (the same vectors on every device),
    so a training run stays reproducible and torch's global RNG (which the caller may have
    seeded for other draws) is untouched.
    """
    import torch
    from torch.nn.utils.parametrizations import _SpectralNorm

    class ZeroSafeSpectralNorm(_SpectralNorm):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            if weight.ndim == 1:
                return super().forward(weight)
            if not bool(weight.any()):
                return weight
            if not bool(self._u.any()):
                with torch.no_grad():  # drawn on the CPU: the same vectors on any device
                    draws = torch.Generator().manual_seed(_REDRAW_SEED)
                    for vec in (self._u, self._v):
                        vec.copy_(torch.randn(vec.shape, generator=draws, dtype=vec.dtype))
                    self._power_method(self._reshape_weight_to_matrix(weight), 15)
            return super().forward(weight)

    return _SpectralNorm, ZeroSafeSpectralNorm

