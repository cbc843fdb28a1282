"""otdiv: distances between probability distributions for GAN research.

The public API is flat: ``from otdiv import wasserstein, wgan_gp_loss``. Names load on first
use, so ``import otdiv`` imports neither torch nor numba.
"""

from __future__ import annotations

from otdiv._lazy import lazy_names

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    # layer 1
    "wasserstein": "otdiv.metrics.wasserstein",
    "transport": "otdiv.metrics.transport",
    "sliced_wasserstein": "otdiv.metrics.sliced",
    "sinkhorn": "otdiv.metrics.sinkhorn",
    "sinkhorn_divergence": "otdiv.metrics.sinkhorn",
    "kl": "otdiv.metrics.divergence",
    "jsd": "otdiv.metrics.divergence",
    "kl_knn": "otdiv.metrics.knn",
    "jsd_knn": "otdiv.metrics.knn",
    "lipschitz_empirical": "otdiv.metrics.lipschitz",
    "lipschitz_bounds": "otdiv.metrics.lipschitz",
    "TransportResult": "otdiv.ot.results",
    "LipschitzBounds": "otdiv.metrics.lipschitz",
    "ConvergenceWarning": "otdiv.ot.results",
    "pairwise": "otdiv.metrics.pairwise",
    # layer 2
    "wgan_critic_loss": "otdiv.gan.losses",
    "wgan_generator_loss": "otdiv.gan.losses",
    "discriminator_loss": "otdiv.gan.losses",
    "generator_loss": "otdiv.gan.losses",
    "gradient_penalty": "otdiv.gan.constraints",
    "wgan_gp_loss": "otdiv.gan.constraints",
    "CriticLossResult": "otdiv.gan.constraints",
    "clip_weights_": "otdiv.gan.constraints",
    "spectral_normalize_": "otdiv.gan.constraints",
    # audit
    "train_critic": "otdiv.audit.train",
    "audit_critic": "otdiv.audit.critic",
    "CriticAudit": "otdiv.audit.critic",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_names("otdiv", _PUBLIC, globals())
