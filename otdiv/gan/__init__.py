"""Layer 2 (torch only): GAN losses and critic constraints.

``import otdiv.gan`` imports torch lazily: the names below load their module on first use.
"""

from __future__ import annotations

from otdiv._lazy import lazy_names

_NAMES = {
    "wgan_critic_loss": "otdiv.gan.losses",
    "wgan_generator_loss": "otdiv.gan.losses",
    "discriminator_loss": "otdiv.gan.losses",
    "generator_loss": "otdiv.gan.losses",
    "gradient_penalty": "otdiv.gan.constraints",
    "wgan_gp_loss": "otdiv.gan.constraints",
    "CriticLossResult": "otdiv.gan.constraints",
    "clip_weights_": "otdiv.gan.constraints",
    "spectral_normalize_": "otdiv.gan.constraints",
}

__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("otdiv.gan", _NAMES, globals())
