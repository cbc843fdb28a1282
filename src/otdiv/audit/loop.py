"""The critic's training loop: its state and the step that advances it.

:func:`otdiv.audit.train_critic` checks the arguments and builds the critic; a
:class:`TrainingLoop` holds everything a run changes — the critic, its optimisers and
learning-rate schedules, the numpy and torch generators, the fixed evaluation sets, the
history and the seconds — which is also what :mod:`otdiv.audit.resume` saves and restores, and
advances it one step at a time: fresh minibatches of P and Q, the loss
mean f(fake) − mean f(real) (+ λ · penalty), one optimiser step, clipping for "clip".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from otdiv.audit.models import check_applies, scores
from otdiv.audit.optimizers import build_optimizers
from otdiv.audit.resume import load_state, save_state

if TYPE_CHECKING:
    import torch

    from otdiv.audit.recipe import Recipe


@dataclass
class TrainedCritic:
    """A trained critic and how its estimate E_P f − E_Q f evolved (on a fixed eval set).

    ``history_step[k]`` is the number of steps done when ``history_estimate[k]`` (the
    critic's estimate on ``eval_size`` fixed samples) and ``history_penalty[k]`` (the last
    training batch's penalty, 0 for "clip" and "spectral") were recorded.
    """

    critic: torch.nn.Module
    constraint: str
    steps: int
    seconds: float
    device: str
    history_step: list[int] = field(default_factory=list)
    history_estimate: list[float] = field(default_factory=list)
    history_penalty: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def estimate(self) -> float:
        """The last recorded estimate on the evaluation set."""
        return self.history_estimate[-1]


class TrainingLoop:
    """One training run: the state a checkpoint holds (critic, optimisers, schedules,
    generators, evaluation sets, history, seconds) and the step that advances it."""

    def __init__(self, recipe: Recipe, critic: torch.nn.Module, params: list,
                 src_real, src_fake, dev: torch.device, precision: str,
                 softplus_beta: float | None) -> None:
        import torch

        r = self.recipe = recipe
        self.critic, self.dev, self.precision = critic, dev, precision
        self.src_real, self.src_fake = src_real, src_fake
        self.opts = build_optimizers(params, r.optimizer, r.lr, r.betas)
        self.decays = ([torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=r.steps)
                        for o in self.opts] if r.schedule == "cosine" else [])
        self.rng = np.random.default_rng(r.seed)
        self.gen = torch.Generator(device=dev)
        if r.seed is None:
            self.gen.seed()
        else:
            self.gen.manual_seed(int(self.rng.integers(2**62)))
        self.dtype = params[0].dtype
        self.eval_real = src_real.tensor(src_real.fixed(r.eval_size, self.rng), self.dtype,
                                         dev)
        self.eval_fake = src_fake.tensor(src_fake.fixed(r.eval_size, self.rng), self.dtype,
                                         dev)
        check_applies(critic, src_real.dim, self.dtype, dev)
        self.result = TrainedCritic(critic, r.constraint, r.steps, 0.0, str(dev), settings={
            "optimizer": r.optimizer, "lr": r.lr, "betas": r.betas, "kind": r.kind,
            "lambda_gp": r.lambda_gp if r.kind else None,
            "clip": r.clip if r.constraint == "clip" else None, "batch_size": r.batch_size,
            "penalty_batch": r.penalty_batch if r.kind else None, "schedule": r.schedule,
            "precision": precision, "softplus_beta": softplus_beta, "seed": r.seed})
        # what a saved state must match to be resumed
        self.key = {"constraint": r.constraint, "steps": r.steps, "batch_size": r.batch_size,
                    "penalty_batch": r.penalty_batch, "optimizer": r.optimizer, "lr": r.lr,
                    "betas": r.betas, "lambda_gp": r.lambda_gp, "clip": r.clip,
                    "schedule": r.schedule, "eval_every": r.eval_every,
                    "eval_size": r.eval_size, "seed": r.seed, "dim": src_real.dim,
                    "precision": precision, "device": dev.type, "critic": repr(critic),
                    "shapes": [list(v.shape) for v in critic.state_dict().values()]}
        self.done, self.before, self.flushed_before = 0, 0.0, True
        self.restored = False
        self.checkpoint, self.checkpoint_seconds = None, 0.0
        from otdiv.gan.constraints import clip_weights_, gradient_penalty
        from otdiv.gan.losses import wgan_critic_loss

        self._loss, self._penalty, self._clip = (wgan_critic_loss, gradient_penalty,
                                                 clip_weights_)

    def resume(self, checkpoint, checkpoint_seconds: float) -> None:
        """Save the state to ``checkpoint`` every ``checkpoint_seconds`` and at the last
        step, and take the state saved there, if there is one (a ValueError naming
        ``checkpoint`` when it was saved with other settings)."""
        self.checkpoint, self.checkpoint_seconds = checkpoint, checkpoint_seconds
        restored = load_state(checkpoint, self.key, self.critic, self.opts, self.decays,
                              self.rng, self.gen, self.dev)
        if restored is not None:
            self.restored = True
            self.done, self.before = restored.step, restored.seconds
            self.flushed_before = restored.flushed
            self.eval_real, self.eval_fake = restored.eval_real, restored.eval_fake
            (self.result.history_step, self.result.history_estimate,
             self.result.history_penalty) = restored.history

    def record(self, step: int, penalty: float) -> float:
        """The estimate E_P f − E_Q f on the evaluation sets, appended to the history."""
        import torch

        self.critic.eval()  # spectral norm: no power iteration while evaluating
        with torch.no_grad():
            est = float(scores(self.critic, self.eval_real).mean()
                        - scores(self.critic, self.eval_fake).mean())
        self.critic.train()
        self.result.history_step.append(step)
        self.result.history_estimate.append(est)
        self.result.history_penalty.append(penalty)
        return est

    def step(self, autocast) -> torch.Tensor | None:
        """One optimiser step on fresh minibatches; the penalty (detached), or None."""
        r, critic = self.recipe, self.critic
        x = self.src_real.tensor(self.src_real.draw(r.batch_size, self.rng), self.dtype,
                                 self.dev)
        y = self.src_fake.tensor(self.src_fake.draw(r.batch_size, self.rng), self.dtype,
                                 self.dev)
        with autocast:  # backward runs each op in the dtype of its forward
            loss = self._loss(scores(critic, x), scores(critic, y))
            penalty = None
            if r.kind is not None:  # wgan_gp_loss, interpolates on the first pairs
                penalty = self._penalty(critic, x[:r.penalty_batch], y[:r.penalty_batch],
                                        kind=r.kind, generator=self.gen)
                loss = loss + r.lambda_gp * penalty
                penalty = penalty.detach()
        for opt in self.opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in self.opts:
            opt.step()
        for decay in self.decays:
            decay.step()
        if r.constraint == "clip":
            self._clip(critic, r.clip)
        return penalty

    def run(self, bar, flushed: bool) -> None:
        """Steps ``done + 1 .. steps``: record every ``eval_every``, save every
        ``checkpoint_seconds`` and at the last step, and count the seconds."""
        import torch

        r, result = self.recipe, self.result
        start = time.perf_counter()
        if not self.restored:
            self.record(0, 0.0)
        result.settings["resumed_from_step"] = self.done
        # flushed on every step: this run's steps and those before its resume
        result.settings["subnormals_flushed"] = flushed and self.flushed_before
        saved_at = time.monotonic()
        autocast = torch.autocast(self.dev.type, dtype=torch.bfloat16,
                                  enabled=self.precision == "bfloat16")
        for step in range(self.done + 1, r.steps + 1):
            penalty = self.step(autocast)
            if step % r.eval_every == 0 or step == r.steps:
                est = self.record(step, 0.0 if penalty is None else float(penalty))
                if not math.isfinite(est):
                    raise FloatingPointError(
                        f"the critic's estimate became {est} at step {step}; lower lr")
                bar.set_postfix(estimate=f"{est:.4f}", refresh=False)
            if self.checkpoint is not None and (step == r.steps or time.monotonic()
                                                - saved_at >= self.checkpoint_seconds):
                save_state(self.checkpoint, self.key, step,
                           self.before + time.perf_counter() - start,
                           result.settings["subnormals_flushed"], self.critic, self.opts,
                           self.decays, self.rng, self.gen, self.eval_real, self.eval_fake,
                           (result.history_step, result.history_estimate,
                            result.history_penalty))
                saved_at = time.monotonic()
            bar.update()
        result.seconds = self.before + time.perf_counter() - start
