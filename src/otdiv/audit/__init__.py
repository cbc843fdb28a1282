"""The critic audit: train a WGAN critic and check its estimate against exact W1.

``toys`` (distribution pairs with known W1), ``models`` (:func:`mlp_critic`, devices,
memory), ``data`` (sample sources, the hold-out split), ``optimizers`` (Adam, RMSProp,
Muon), ``train`` (:func:`train_critic`), ``discriminator`` (:func:`train_discriminator`,
the JSD estimate), ``checkpoint`` (:func:`save_critic`, :func:`load_critic`),
``slopes`` (the critic's ‖∇f‖ along segments), ``critic`` (:func:`audit_critic`,
:class:`CriticAudit`), ``lines`` (:func:`lines_sweep`), ``report``
(table, JSON, plots), ``verdict``, ``run`` (:func:`~otdiv.audit.run.run_audit`: one
audit from :class:`~otdiv.audit.settings.AuditSettings`, as ``otdiv audit`` runs it), ``grid``
(:func:`sweep`: a grid of audits, on Dask). Importing this package imports neither torch
nor matplotlib; they load when a function needs them.
"""

from otdiv.audit.checkpoint import load_critic, save_critic
from otdiv.audit.critic import CriticAudit, audit_critic
from otdiv.audit.discriminator import TrainedDiscriminator, train_discriminator
from otdiv.audit.grid import SweepResult, load_grid, sweep
from otdiv.audit.lines import LinesSweep, lines_sweep
from otdiv.audit.loop import TrainedCritic
from otdiv.audit.models import mlp_critic
from otdiv.audit.recipe import CONSTRAINTS
from otdiv.audit.toys import TOYS, ReferenceW1, ToyProblem, make_toy, reference_w1
from otdiv.audit.train import train_critic

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
