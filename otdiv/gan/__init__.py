"""Layer 2 (torch only): GAN losses and critic constraints.

``import otdiv.gan`` imports torch lazily: the names below load their module on first use.
"""

from __future__ import annotations

import importlib

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


def __getattr__(name: str):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'otdiv.gan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_NAMES))
