"""A critic's training recipe: each constraint's published optimiser, and a run's checked
settings (:class:`Recipe`), which :func:`otdiv.audit.train_critic` builds from its arguments
and :class:`otdiv.audit.loop.TrainingLoop` runs.

Also the checks shared with the audit's settings and the discriminator: ``check_steps``,
``check_precision``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otdiv._array import (
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_seed,
)
from otdiv.audit.optimizers import check_lr, check_optimizer

if TYPE_CHECKING:
    import torch

CONSTRAINTS = ("clip", "gp", "lp", "spectral")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "bfloat16")

# constraint -> (optimiser, lr, betas or None, penalty kind or None)
DEFAULTS: dict[str, dict[str, Any]] = {
    "clip": {"optimizer": "rmsprop", "lr": 5e-5, "betas": None, "kind": None},
    "gp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.5, 0.9), "kind": "two-sided"},
    "lp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.5, 0.9), "kind": "one-sided"},
    "spectral": {"optimizer": "adam", "lr": 1e-4, "betas": (0.5, 0.9), "kind": None},
}
MAX_STEPS = 10**9  # about 12 days at 1 ms a step


def _at_most(value, maximum, message: str):
    """``value``, or ValueError(message) when it exceeds ``maximum``."""
    if value > maximum:
        raise ValueError(message)
    return value


def check_steps(steps: object, name: str = "steps") -> int:
    """An integer in [1, MAX_STEPS]."""
    steps = check_int(steps, name)
    return _at_most(steps, MAX_STEPS, f"{name} must be at most {MAX_STEPS:.0e} (about 12 "
                    f"days at 1 ms a step), got {steps}")


def check_precision(precision: object, device: torch.device, name: str = "precision") -> str:
    """One of ``PRECISIONS``, and "bfloat16" only where ``device`` has it: every CPU (with
    AMX or AVX512-BF16 in hardware, else emulated) and CUDA GPUs with native bfloat16
    (compute capability 8.0 on; an emulating GPU would be slower, not faster)."""
    precision = check_choice(precision, name, PRECISIONS)
    if precision == "bfloat16" and device.type == "cuda":
        import torch

        with torch.cuda.device(device):
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        if not native:
            raise ValueError(f"{name}='bfloat16' needs a GPU with native bfloat16; {device} "
                             f"has none: use {name}='float32'")
    return precision


@dataclass(frozen=True)
class Recipe:
    """train_critic's checked settings: the constraint's published optimiser (``DEFAULTS``)
    with the caller's overrides, and the loop's sizes."""

    constraint: str
    steps: int
    batch_size: int
    penalty_batch: int
    hidden: tuple[int, ...]
    lambda_gp: float
    clip: float
    schedule: str
    eval_every: int
    eval_size: int
    optimizer: str
    lr: float
    betas: tuple[float, float] | None
    kind: str | None  # the gradient penalty's kind, None for "clip" and "spectral"
    seed: int | None

    @classmethod
    def checked(cls, *, constraint, steps, batch_size, penalty_batch, hidden, lambda_gp,
                clip, schedule, eval_every, eval_size, optimizer, lr, betas, seed) -> Recipe:
        """Each argument checked, in train_critic's order, before anything is built."""
        constraint = check_choice(constraint, "constraint", CONSTRAINTS)
        steps = check_steps(steps)
        batch_size = check_int(batch_size, "batch_size")
        penalty_batch = (batch_size if penalty_batch is None else _at_most(
            check_int(penalty_batch, "penalty_batch"), batch_size,
            f"penalty_batch must be at most batch_size = {batch_size}, got {penalty_batch}"))
        eval_size = check_int(eval_size, "eval_size")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Iterable):
            raise TypeError(f"hidden must be a sequence of widths such as (256, 256, 256), "
                            f"got {type(hidden).__name__}")
        hidden = tuple(check_int(h, "hidden") for h in hidden)
        lambda_gp = check_nonnegative(lambda_gp, "lambda_gp")
        clip = check_positive(clip, "clip")
        schedule = check_choice(schedule, "schedule", SCHEDULES)
        eval_every = (max(1, steps // 50) if eval_every is None
                      else check_int(eval_every, "eval_every"))
        cfg = dict(DEFAULTS[constraint])
        if optimizer is not None:
            cfg["optimizer"] = check_optimizer(optimizer)
            if cfg["betas"] is None and cfg["optimizer"] != "rmsprop":
                cfg["betas"] = (0.5, 0.9)
        if lr is not None:
            cfg["lr"] = check_lr(lr)
        if betas is not None:
            cfg["betas"] = _check_betas(betas)
        return cls(constraint, steps, batch_size, penalty_batch, hidden, lambda_gp, clip,
                   schedule, eval_every, eval_size, cfg["optimizer"], cfg["lr"],
                   cfg["betas"], cfg["kind"], check_seed(seed))


def _check_betas(betas: object) -> tuple[float, float]:
    """Two real numbers in [0, 1)."""
    pair = () if isinstance(betas, (str, bytes)) or not isinstance(betas, Iterable) \
        else tuple(betas)
    if len(pair) != 2 or not all(isinstance(b, numbers.Real) and not isinstance(b, bool)
                                 for b in pair):
        raise TypeError(f"betas must be two real numbers, got {betas!r}")
    if not all(0 <= float(b) < 1 for b in pair):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    return (float(pair[0]), float(pair[1]))
