"""Train a WGAN critic (or a standard GAN discriminator) between two fixed distributions.

The critic maximises E_P f − E_Q f under a Lipschitz constraint; every loss and penalty is
otdiv's layer 2 (:func:`otdiv.wgan_critic_loss`, :func:`otdiv.gradient_penalty`,
:func:`otdiv.clip_weights_`, :func:`otdiv.spectral_normalize_`,
:func:`otdiv.discriminator_loss`). The optimiser settings default to the published ones:

=============  ======================================================================
constraint     loss and optimiser (source)
=============  ======================================================================
``"clip"``     WGAN loss, weights clipped to [−0.01, 0.01] after each step, RMSProp lr 5e-5
               (Arjovsky et al. 2017, Algorithm 1).
``"gp"``       WGAN-GP loss, two-sided penalty, lambda = 10, Adam lr 1e-4, betas (0.5, 0.9)
               (Gulrajani et al. 2017, Algorithm 1 and ``gan_toy.py``).
``"lp"``       the same with the one-sided penalty of WGAN-LP (Petzka et al. 2018), who
               keep WGAN-GP's optimiser; lambda = 10 as in WGAN-GP.
``"spectral"`` WGAN loss on a spectrally normalised critic, Adam lr 1e-4, betas (0.5, 0.9)
               (Miyato et al. 2018, setting "A", the WGAN-GP setting).
=============  ======================================================================

The critic is updated at every step: there is no generator here, so WGAN's "5 critic steps
per generator step" becomes "all steps are critic steps". ``lr`` and ``betas`` override
the defaults; ``schedule="cosine"`` decays the learning rate to 0 over the run (the
published runs keep it constant, but there the generator keeps moving the target; against
a fixed Q a decaying rate lets the last steps average out the minibatch noise).
docs/audit.md shows what these buy on a CPU budget.

This module checks the arguments and builds the critic; the loop itself (its state and its
step) is :mod:`otdiv.audit.loop`, the network is built in :mod:`otdiv.audit.models`, the
optimisers in :mod:`otdiv.audit.optimizers`, the samples come from :mod:`otdiv.audit.data`,
the progress line is :mod:`otdiv.audit.progress`, the thread count
:mod:`otdiv.audit.threads`, a stopped loop's state :mod:`otdiv.audit.resume`, the trained
critic is saved by :mod:`otdiv.audit.checkpoint`, and the GAN discriminator (the JSD
estimate) is trained in :mod:`otdiv.audit.discriminator`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from otdiv._array import check_nonnegative
from otdiv.audit.data import Data, sources
from otdiv.audit.loop import TrainedCritic, TrainingLoop
from otdiv.audit.models import (
    DEFAULT_HIDDEN,
    check_softplus_beta,
    check_training_size,
    mlp_critic,
    resolve_device,
    seeded_module,
)
from otdiv.audit.progress import progress_reporter
from otdiv.audit.recipe import (  # noqa: F401  (the names train.py held: importable here)
    CONSTRAINTS,
    DEFAULTS,
    MAX_STEPS,
    PRECISIONS,
    SCHEDULES,
    Recipe,
    check_precision,
    check_steps,
)
from otdiv.audit.subnormals import flushed_denormals, subnormal_prone
from otdiv.audit.threads import resolve_threads, torch_threads

if TYPE_CHECKING:
    import torch


def train_critic(
    real: Data,
    fake: Data,
    *,
    constraint: str = "gp",
    steps: int = 2000,
    batch_size: int = 256,
    penalty_batch: int | None = None,
    critic: torch.nn.Module | None = None,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    softplus_beta: float | None = None,
    lr: float | None = None,
    betas: tuple[float, float] | None = None,
    optimizer: str | None = None,
    lambda_gp: float = 10.0,
    clip: float = 0.01,
    schedule: str = "constant",
    eval_every: int | None = None,
    eval_size: int = 2000,
    device: object = "auto",
    seed: int | None = None,
    progress: bool | None = None,
    threads: int | str | None = "auto",
    precision: str = "float32",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_seconds: float = 60.0,
) -> TrainedCritic:
    """Maximise E_P f − E_Q f over critics f under a Lipschitz ``constraint``; return f.

    That is: minimise :func:`otdiv.wgan_critic_loss` (mean f(fake) − mean f(real)), plus
    ``lambda_gp`` times :func:`otdiv.gradient_penalty` for "gp" (two-sided) and "lp"
    (one-sided), with :func:`otdiv.clip_weights_` after each step for "clip" and
    :func:`otdiv.spectral_normalize_` applied once for "spectral". Optimiser defaults are
    the published ones (module docstring, :data:`otdiv.audit.recipe.DEFAULTS`).

    Args:
        real, fake: samples of P and Q, arrays of shape (n, d) (numpy or torch; minibatches
            are drawn with replacement), or samplers ``f(n, rng) -> (n, d) array`` drawing
            fresh points each step (``rng`` a numpy Generator), e.g. ``toy.sample_real``.
        constraint: "clip", "gp", "lp" or "spectral".
        steps: optimiser steps (>= 1). batch_size: samples of each side per step.
        penalty_batch: random interpolates of the gradient penalty per step ("gp", "lp"),
            at most ``batch_size`` (default: ``batch_size``, as published); they join the
            first ``penalty_batch`` pairs of the step's samples.
        critic: your own module mapping (n, d) to n scores; default
            ``mlp_critic(d, hidden, softplus_beta=softplus_beta)`` (a ReLU MLP unless
            ``softplus_beta`` is given). It is trained in place (moved to ``device``).
        lr, betas: override the published learning rate and Adam betas.
        optimizer: None (the published one: RMSProp for "clip", Adam otherwise), "adam",
            "rmsprop" or "muon": :class:`torch.optim.Muon` for the hidden weight matrices
            (momentum 0.95, Nesterov; each update W ← W − lr · 0.2 √max(m, n) · O, O the
            orthogonalised momentum (U Vᵀ of its SVD, by Newton–Schulz), so its RMS matches
            Adam's at the same lr) and Adam (``betas``) for the biases and the last layer.
            On the MinFunnel pairs Muon aligns the critic with the transport in fewer
            samples than Adam (docs/critic_benchmark.md).
        lambda_gp: the penalty weight of "gp" and "lp" (10, as published).
        clip: the clipping bound c of "clip" (0.01, as published).
        schedule: "constant" (as published) or "cosine": lr_k = lr (1 + cos(pi k / steps)) / 2
            at step k = 0 .. steps − 1.
        eval_every: steps between two records of the estimate (default steps // 50).
        eval_size: size of the fixed evaluation set of each side.
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:N" or a torch.device.
        seed: seeds initialisation, minibatches, penalty interpolates and spectral
            normalisation's power-iteration start vectors, without touching torch's global
            RNG: the same seed trains the same critic (None: random; else an integer in
            [0, 2**63 - 2**20)).
        progress: None (default): a tqdm bar on stderr when stderr is a terminal, else
            one line every 10 s (step, estimate, elapsed and remaining seconds); True: a
            tqdm bar wherever stderr goes; False: nothing.
        threads: torch's intra-op threads during the loop, restored afterwards. "auto"
            (default): one thread on a CPU when batch_size × parameters <= 2**28 (every
            MLP up to 3 × 512 hidden at batch 256; a second thread gains nothing there and
            loses much on a busy CPU), and for a float32 Softplus(β >= 10) critic on a CPU
            that flushes subnormal floats while torch runs at most 6 threads (one flushed
            thread outran two unflushed ones 3.4 × on the d = 64 benchmark critic); torch's
            setting otherwise and on CUDA; None: torch's setting; an int: that many.
        precision: "float32" (default): every pass in the critic's own dtype.
            "bfloat16": each step's forward and backward passes (scores, penalty, their
            gradients) under ``torch.autocast(device, bfloat16)`` — the matrix products in
            bfloat16 with float32 accumulation, the weights, the optimiser and the recorded
            estimates in float32. On a CPU with AMX or AVX512-BF16 (Intel Sapphire Rapids
            on) a step of the benchmark's (1024, 256, 256) critics takes 0.64 × the
            float32 time at batch 256 and 0.43–0.46 × at 1024–4096, with the same alignment
            with the transport on the MinFunnel pairs (docs/critic_benchmark.md, "Half the
            time a sample: bfloat16"); a small critic (3 × 64) is slower in bfloat16, on
            other CPUs bfloat16 is emulated and slower, and GPUs with native bfloat16 are
            expected to gain (not measured here; one without it is refused). Only for a
            float32 critic; the trained critic, and every audit of it, stays float32.
        checkpoint: a file for the loop's whole state (:mod:`otdiv.audit.resume`), written
            every ``checkpoint_seconds`` (default 60) and at the last step. Given again with
            the same settings after a stop, training goes on from the last state written,
            and the critic returned is the one an uninterrupted run returns (bit for bit on
            the same machine; give the same data); a state of other settings is a
            ValueError naming ``checkpoint``. The file stays when training ends (delete it
            once the critic is saved; ``otdiv benchmark-critics --json`` does).

    Sizes are checked before anything is allocated: ``steps`` <= 1e9, ``lr`` in (0, 1],
    and the memory of :func:`training_bytes` — 16 bytes per parameter plus
    96 · batch_size · (d + Σ hidden + 1) bytes a step — at most ``MEMORY_BUDGET`` (4 GiB);
    beyond it a ValueError names the argument to lower.

    Returns:
        A :class:`TrainedCritic`; its ``critic`` is in eval mode.
    """
    import torch

    recipe = Recipe.checked(
        constraint=constraint, steps=steps, batch_size=batch_size,
        penalty_batch=penalty_batch, hidden=hidden, lambda_gp=lambda_gp, clip=clip,
        schedule=schedule, eval_every=eval_every, eval_size=eval_size, optimizer=optimizer,
        lr=lr, betas=betas, seed=seed)
    dev = resolve_device(device)
    precision = check_precision(precision, dev)
    checkpoint_seconds = check_nonnegative(checkpoint_seconds, "checkpoint_seconds")
    if checkpoint is not None:
        from otdiv._files import writable_file

        checkpoint = writable_file(checkpoint, "checkpoint")
    src_real, src_fake = sources(real, fake)
    dim = src_real.dim
    check_training_size(dim, recipe.hidden if critic is None else (), recipe.batch_size,
                        recipe.eval_size)  # with your own critic: the batches at least
    softplus_beta = check_softplus_beta(softplus_beta)
    critic = _critic_to_train(critic, dim, recipe, softplus_beta, dev)
    params = [p for p in critic.parameters() if p.requires_grad]
    if not params:
        raise ValueError("critic has no trainable parameters")
    n_threads = resolve_threads(threads, dev, recipe.batch_size,
                                sum(p.numel() for p in params),
                                subnormals=subnormal_prone(critic))
    if precision == "bfloat16" and params[0].dtype != torch.float32:  # autocast: as it is
        raise ValueError(f"precision='bfloat16' runs a float32 critic's passes in bfloat16; "
                         f"this critic's parameters are {params[0].dtype}: use "
                         f"precision='float32' or a float32 critic")
    loop = TrainingLoop(recipe, critic, params, src_real, src_fake, dev, precision,
                        softplus_beta)
    if checkpoint is not None:
        loop.resume(checkpoint, checkpoint_seconds)
    with torch_threads(n_threads), flushed_denormals(dev) as flushed, \
            progress_reporter(recipe.steps, progress, f"critic ({recipe.constraint})",
                              loop.done) as bar:
        loop.run(bar, flushed)
    critic.eval()
    return loop.result


def _critic_to_train(critic: torch.nn.Module | None, dim: int, recipe: Recipe,
                     softplus_beta: float | None, dev: torch.device) -> torch.nn.Module:
    """The default MLP (seeded) or the caller's module, on ``dev`` in train mode, spectrally
    normalised for "spectral"."""
    import torch

    from otdiv.gan.constraints import spectral_normalize_

    if critic is None:
        critic = seeded_module(
            lambda: mlp_critic(dim, recipe.hidden, softplus_beta=softplus_beta), recipe.seed)
    elif softplus_beta is not None:
        raise ValueError("softplus_beta shapes the default critic; it cannot be combined "
                         "with critic=")
    elif not isinstance(critic, torch.nn.Module):
        raise TypeError(f"critic must be a torch.nn.Module to be trained, got "
                        f"{type(critic).__name__}")
    critic = critic.to(dev).train()
    if recipe.constraint == "spectral":  # its start vectors come from torch's RNG: seed them
        seeded_module(lambda: spectral_normalize_(critic), recipe.seed, dev)
    return critic
