"""Train a standard GAN discriminator between two fixed distributions: a JSD estimate.

At the optimal discriminator D* = p / (p + q) the GAN value
V(D, G) = E_P log D + E_Q log(1 − D) equals 2 JSD(P, Q) − 2 log 2 (Goodfellow et al. 2014),
so a trained D gives the lower bound JSD ≥ (V(D, G) + 2 log 2) / 2, tight at D*. The
parallel-lines sweep (:mod:`otdiv.audit.lines`) sets it beside the WGAN critic's estimate:
JSD saturates at log 2 once the supports separate, W1 does not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from otdiv._array import check_int, check_seed
from otdiv.audit.data import Data, sources
from otdiv.audit.models import (
    check_training_size,
    mlp_critic,
    resolve_device,
    scores,
    seeded_module,
)
from otdiv.audit.optimizers import check_lr
from otdiv.audit.progress import progress_reporter
from otdiv.audit.recipe import check_steps
from otdiv.audit.subnormals import flushed_denormals
from otdiv.audit.threads import resolve_threads, torch_threads

if TYPE_CHECKING:
    import torch


@dataclass
class TrainedDiscriminator:
    """A trained GAN discriminator D = sigmoid(logits) and its JSD estimate.

    ``jsd`` = (V(D, G) + 2 log 2) / 2 on the evaluation set, V = E_P log D + E_Q log(1 − D):
    a lower bound on JSD(P, Q) that is tight at the optimal D = p / (p + q).
    """

    discriminator: torch.nn.Module
    jsd: float
    steps: int
    seconds: float


def train_discriminator(
    real: Data,
    fake: Data,
    *,
    steps: int = 500,
    batch_size: int = 256,
    hidden: Sequence[int] = (64, 64),
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    eval_size: int = 2000,
    device: object = "auto",
    seed: int | None = None,
    progress: bool | None = None,
    threads: int | str | None = "auto",
) -> TrainedDiscriminator:
    """JSD ≈ (2 log 2 − L_D) / 2 after minimising L_D = −E_P log D − E_Q log(1 − D).

    L_D is :func:`otdiv.discriminator_loss` (kind "minimax").

    The standard GAN discriminator (Goodfellow et al. 2014) with the DCGAN optimiser (Adam,
    lr 2e-4, betas (0.5, 0.999), Radford et al. 2016). ``real``/``fake`` as in
    :func:`train_critic`, and so are ``threads`` and ``progress``. The JSD estimate is
    taken on fresh evaluation samples.
    """
    import torch

    from otdiv.gan.losses import discriminator_loss

    steps = check_steps(steps)
    batch_size = check_int(batch_size, "batch_size")
    eval_size = check_int(eval_size, "eval_size")
    hidden = tuple(check_int(h, "hidden") for h in hidden)
    lr = check_lr(lr)
    seed = check_seed(seed)
    dev = resolve_device(device)
    src_real, src_fake = sources(real, fake)
    check_training_size(src_real.dim, hidden, batch_size, eval_size)
    disc = seeded_module(lambda: mlp_critic(src_real.dim, hidden), seed).to(dev)
    opt = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    rng = np.random.default_rng(seed)
    eval_real = src_real.tensor(src_real.fixed(eval_size, rng), torch.float32, dev)
    eval_fake = src_fake.tensor(src_fake.fixed(eval_size, rng), torch.float32, dev)

    n_threads = resolve_threads(threads, dev, batch_size,
                                sum(p.numel() for p in disc.parameters()))
    start = time.perf_counter()
    with torch_threads(n_threads), flushed_denormals(dev), \
            progress_reporter(steps, progress, "discriminator") as bar:
        for _ in range(steps):
            x = src_real.tensor(src_real.draw(batch_size, rng), torch.float32, dev)
            y = src_fake.tensor(src_fake.draw(batch_size, rng), torch.float32, dev)
            loss = discriminator_loss(scores(disc, x), scores(disc, y), kind="minimax")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
    disc.eval()
    with torch.no_grad():
        loss = float(discriminator_loss(scores(disc, eval_real), scores(disc, eval_fake),
                                        kind="minimax"))
    # V(D, G) = −L_D
    jsd = (2.0 * math.log(2.0) - loss) / 2.0
    return TrainedDiscriminator(disc, jsd, steps, time.perf_counter() - start)
