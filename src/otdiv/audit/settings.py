"""The settings of one critic audit: the options of ``otdiv audit`` as Python values.

:class:`AuditSettings` holds them under the command's names (``--batch-size`` is
``batch_size``) with its defaults; :func:`check_setting` checks and normalises one of them,
with errors naming it as the caller spells it (TypeError or ValueError); the recipe's
defaults resolve in :meth:`AuditSettings.recipe` and the widths in :func:`widths`.
:func:`otdiv.audit.run.run_audit` runs the audit they describe, and every job of
:func:`otdiv.audit.sweep` is one set of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from otdiv._array import (
    MAX_COUNT,
    SEED_RANGE,
    check_choice,
    check_int,
    check_nonnegative,
    check_seed,
)
from otdiv.audit.models import check_softplus_beta
from otdiv.audit.optimizers import check_lr, check_optimizer
from otdiv.audit.recipe import CONSTRAINTS, PRECISIONS, SCHEDULES, check_steps
from otdiv.audit.toys import TOYS

DIM_TOYS = ("translate", "scale", "funnels")  # the toys of dimension ``dim`` (others: 2-D)
MAX_REPEATS = 1000

Label = Callable[[str], str]  # a setting's name -> how the caller spells it in messages


@dataclass(frozen=True)
class AuditSettings:
    """The options of ``otdiv audit`` (``docs/audit.md``), as Python values.

    Data: ``toy`` (one of ``TOYS``; ``dim``, ``funnels``, ``theta`` shape it, and
    ``funnel_seed`` draws the funnels' apexes — None: ``seed``, so that each training seed
    is another pair; 0: the pairs of ``otdiv benchmark-critics``) or ``real``
    and ``fake`` (.npy/.csv paths), optionally with ``critic`` (a checkpoint to audit
    instead of training). Training: ``constraint``, ``steps``, ``batch_size``, ``hidden``
    (widths, a string "96,96,96", or "auto": 3 x 96 below d = 8, then 3 x max(256, 2d)
    up to 1024 with a first layer of 1024 from d = 16 on,
    :func:`otdiv.audit.models.recommended_hidden`), ``softplus_beta`` ("auto",
    None or β), ``lr``, ``schedule`` and ``optimizer`` ("adam", "rmsprop" or "muon",
    :mod:`otdiv.audit.optimizers`; None: the recipe, :meth:`recipe`), ``lambda_gp``,
    ``precision`` ("float32" or "bfloat16": the training passes under autocast,
    :func:`~otdiv.audit.train.train_critic`), ``save_critic``.
    Audit: ``n`` held-out points per side, ``n_estimate`` those of the OT-free estimates
    (None: n; :func:`~otdiv.audit.critic.audit_critic`), ``repeats`` draws, ``sweep`` (also the
    parallel-lines sweep over ``thetas``, ``sweep_steps`` steps each). ``device``, ``seed``
    (training; the audit uses seed + 1, the plots seed + 2), ``out`` (the directory),
    ``no_progress``, ``no_plots``.
    """

    toy: str | None = None
    dim: int = 2
    funnels: int = 16
    funnel_seed: int | None = None
    theta: float = 0.5
    real: str | None = None
    fake: str | None = None
    critic: str | None = None
    constraint: str = "lp"
    steps: int = 12000
    batch_size: int = 256
    hidden: tuple[int, ...] | str = "auto"
    softplus_beta: float | str | None = "auto"
    lr: float | None = None
    lambda_gp: float = 10.0
    schedule: str | None = None
    optimizer: str | None = None
    precision: str = "float32"
    save_critic: str | None = None
    n: int = 2000
    n_estimate: int | None = None
    repeats: int = 3
    sweep: bool = False
    thetas: tuple[float, ...] | str = (-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0)
    sweep_steps: int = 300
    device: str = "auto"
    seed: int = 0
    out: str = "otdiv-report"
    no_progress: bool = False
    no_plots: bool = False

    def checked(self, label: Label = str) -> AuditSettings:
        """A copy with every setting checked (:func:`check_setting`) and normalised:
        ``hidden`` and ``thetas`` tuples, ``softplus_beta`` "auto", None or a float."""
        return replace(self, **{f.name: check_setting(f.name, getattr(self, f.name), label)
                                for f in fields(self)})

    def recipe(self) -> tuple[float | None, float | None, str, str]:
        """(softplus β, lr, schedule, optimizer) after resolving "auto" and None:
        docs/audit.md's recipe.

        β = 30 (the recommended critic of docs/critic_benchmark.md, measured in
        docs/critic_benchmark_history.md, "From d = 64 on": on the paper toys, whose
        transport converges on clusters or a thin curve, and off them, where its
        flow-corrected estimate is within 0.3 % of a ReLU critic's on the scale pairs and
        closer on the funnels); lr 2e-3 with a cosine decay for gp, lp and spectral, and
        the published constant RMSProp 5e-5 (lr None) for clip; the optimiser of
        :func:`~otdiv.audit.optimizers.recipe_optimizer` (Muon for lp on torch >= 2.9).
        """
        from otdiv.audit.optimizers import recipe_optimizer

        beta = self.softplus_beta
        if beta == "auto":
            beta = 30.0
        clip = self.constraint == "clip"
        lr = self.lr if self.lr is not None else (None if clip else 2e-3)
        schedule = self.schedule if self.schedule is not None else \
            ("constant" if clip else "cosine")
        optimizer = self.optimizer or recipe_optimizer(self.constraint)
        return beta, lr, schedule, optimizer

    def toy_dim(self) -> int | None:
        """The dimension of the toy's samples: ``dim`` for translate, scale and funnels, 2 for
        the others; None for data files (read with them)."""
        if self.toy is None:
            return None
        return self.dim if self.toy in DIM_TOYS else 2


def _no_text(value: object, name: str) -> None:
    if isinstance(value, str):
        raise TypeError(f"{name}: expected a number, got the string {value!r}")


def _whole(minimum: int, maximum: int = MAX_COUNT):
    def check(value: object, name: str) -> int:
        _no_text(value, name)
        return check_int(value, name, minimum=minimum, maximum=maximum)
    return check


def _offset(value: float, name: str) -> float:
    """A lines toy's offset θ: |θ| at most ``TOY_PARAM_MAX``, as make_toy requires."""
    from otdiv.audit.toys import TOY_PARAM_MAX

    if abs(value) > TOY_PARAM_MAX:
        raise ValueError(f"{name} must be in [-{TOY_PARAM_MAX:g}, {TOY_PARAM_MAX:g}] (the "
                         f"critics train in float32), got {value:g}")
    return value


def _number(value: object, name: str) -> float:
    _no_text(value, name)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value: object, name: str, parse: type) -> tuple:
    """A tuple from a sequence of numbers or a comma-separated string of them."""
    if isinstance(value, str):
        try:
            value = [parse(v) for v in value.split(",")]
        except ValueError:
            raise ValueError(f"{name} must be comma-separated numbers, got {value!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {value!r}")
    return tuple(value)


def _hidden(value: object, name: str) -> tuple[int, ...] | str:
    if value == "auto":
        return "auto"
    text = value
    try:
        widths = _numbers(value, name, int)
    except ValueError:
        raise ValueError(f"{name} must be comma-separated widths such as 256,256,256, got "
                         f"{text!r}") from None
    return tuple(_whole(1)(w, f"{name} widths") for w in widths)


def _beta(value: object, name: str) -> float | str | None:
    if isinstance(value, str):
        if value in ("auto", "none", "relu"):
            return None if value != "auto" else "auto"
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, 'auto' or 'none', got {value!r}") \
                from None
    return check_softplus_beta(value, name)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} is a flag: give true or false, got {value!r}")
    return value


def _path(value: object, name: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, got {type(value).__name__}")
    return os.fspath(value)


def _optional(check: Callable[[Any, str], Any]):
    return lambda value, name: None if value is None else check(value, name)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _seed(value: object, name: str) -> int:
    _no_text(value, name)
    if value is None:
        raise TypeError(f"{name} must be an integer in {SEED_RANGE}, got None")
    return check_seed(value, name)


# setting -> check(value, name) -> normalised value; TypeError/ValueError naming ``name``
CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "toy": _optional(lambda v, name: check_choice(v, name, TOYS)),
    "dim": _whole(1),
    "funnels": _whole(1),
    "funnel_seed": _optional(_seed),
    "theta": lambda v, name: _offset(_number(v, name), name),
    "real": _optional(_path),
    "fake": _optional(_path),
    "critic": _optional(_path),
    "constraint": lambda v, name: check_choice(v, name, CONSTRAINTS),
    "steps": lambda v, name: check_steps(_whole(1)(v, name), name),
    "batch_size": _whole(1),
    "hidden": _hidden,
    "softplus_beta": _beta,
    "lr": _optional(lambda v, name: check_lr(_number(v, name), name)),
    "lambda_gp": lambda v, name: check_nonnegative(_number(v, name), name),
    "schedule": _optional(lambda v, name: check_choice(v, name, SCHEDULES)),
    "optimizer": _optional(check_optimizer),
    "precision": lambda v, name: check_choice(v, name, PRECISIONS),
    "save_critic": _optional(_path),
    "n": _whole(2),
    "n_estimate": _optional(_whole(2)),
    "repeats": _whole(1, MAX_REPEATS),
    "sweep": _flag,
    "thetas": lambda v, name: tuple(_offset(_number(t, name), name)
                                    for t in _numbers(v, name, float)),
    "sweep_steps": lambda v, name: check_steps(_whole(1)(v, name), name),
    "device": _text,
    "seed": _seed,
    "out": _path,
    "no_progress": _flag,
    "no_plots": _flag,
}


def check_setting(name: str, value: object, label: Label = str) -> Any:
    """``value`` checked and normalised as the setting ``name`` of :class:`AuditSettings`;
    a TypeError or ValueError naming ``label(name)`` (e.g. "--batch-size") otherwise."""
    return CHECKS[name](value, label(name))


def widths(hidden: tuple[int, ...] | str, dim: int) -> tuple[int, ...]:
    """The hidden widths: "auto" -> :func:`otdiv.audit.models.recommended_hidden` (d)."""
    from otdiv.audit.models import recommended_hidden

    return recommended_hidden(dim) if hidden == "auto" else hidden
