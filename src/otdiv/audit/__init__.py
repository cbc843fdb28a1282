"""The critic audit: train a WGAN critic and check its estimate against exact W1.

``toys`` (distribution pairs with known W1), ``train`` (:func:`train_critic`,
:func:`train_discriminator`), ``critic`` (:func:`audit_critic`, :class:`CriticAudit`,
:func:`lines_sweep`), ``report`` (table, JSON, plots), ``grid`` (:func:`sweep`: a grid
of audits, on Dask). Importing this package imports neither torch nor matplotlib; they load
when a function needs them.
"""

from otdiv.audit.critic import CriticAudit, LinesSweep, audit_critic, lines_sweep
from otdiv.audit.grid import SweepResult, load_grid, sweep
from otdiv.audit.toys import TOYS, ReferenceW1, ToyProblem, make_toy, reference_w1
from otdiv.audit.train import (
    CONSTRAINTS,
    TrainedCritic,
    TrainedDiscriminator,
    load_critic,
    mlp_critic,
    save_critic,
    train_critic,
    train_discriminator,
)

__all__ = [
    "CONSTRAINTS",
    "TOYS",
    "CriticAudit",
    "LinesSweep",
    "ReferenceW1",
    "SweepResult",
    "ToyProblem",
    "TrainedCritic",
    "TrainedDiscriminator",
    "audit_critic",
    "lines_sweep",
    "load_critic",
    "load_grid",
    "make_toy",
    "mlp_critic",
    "reference_w1",
    "save_critic",
    "sweep",
    "train_critic",
    "train_discriminator",
]
