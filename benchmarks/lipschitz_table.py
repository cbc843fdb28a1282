"""Lipschitz bounds of two trained WGAN critics (gradient penalty, weight clipping).

Trains two 3 x 128 ReLU MLP critics for a few hundred steps on a 2-D toy problem (real:
eight Gaussians on a circle of radius 2, std 0.05; fake: a standard normal), then prints a
markdown table of their Lipschitz estimates. Its output is pasted into docs/lipschitz.md.

Run: ``python benchmarks/lipschitz_table.py``
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from _harness import options, table

import otdiv

SIZES = {"STEPS": (500, 10), "BATCH": (256, 32), "WIDTH": (128, 16), "N": (1000, 100)}
S = options(__doc__, SIZES)
SEED = 0


def critic() -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, S.WIDTH), nn.ReLU(), nn.Linear(S.WIDTH, S.WIDTH), nn.ReLU(),
        nn.Linear(S.WIDTH, S.WIDTH), nn.ReLU(), nn.Linear(S.WIDTH, 1),
    )


def sample(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    angles = rng.integers(8, size=n) * (np.pi / 4)
    real = 2 * np.stack([np.cos(angles), np.sin(angles)], 1) + 0.05 * rng.normal(size=(n, 2))
    fake = rng.normal(size=(n, 2))
    return torch.tensor(real, dtype=torch.float32), torch.tensor(fake, dtype=torch.float32)


def train(kind: str) -> nn.Module:
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    net = critic()
    gen = torch.Generator().manual_seed(SEED)
    if kind == "gp":  # WGAN-GP (Gulrajani et al. 2017) settings
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.5, 0.9))
    else:  # WGAN (Arjovsky et al. 2017) settings
        opt = torch.optim.RMSprop(net.parameters(), lr=5e-5)
    for _ in range(S.STEPS):
        real, fake = sample(S.BATCH, rng)
        if kind == "gp":
            loss = otdiv.wgan_gp_loss(net, real, fake, lambda_gp=10.0, generator=gen)
        else:
            loss = otdiv.wgan_critic_loss(net(real), net(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if kind == "clip":
            otdiv.clip_weights_(net, 0.01)
    return net


def main() -> None:
    rng = np.random.default_rng(SEED + 1)
    real, fake = sample(S.N, rng)
    x = torch.cat([real, fake])
    w1 = otdiv.wasserstein(real.double().numpy(), fake.double().numpy(), p=1)
    rows = []
    for kind, label in (("gp", "WGAN-GP (λ = 10)"), ("clip", "weight clipping (c = 0.01)")):
        net = train(kind)
        b = otdiv.lipschitz_bounds(net, x, seed=SEED)
        emp = float(otdiv.lipschitz_empirical(net, x).detach())
        with torch.no_grad():
            est = float(net(real).mean() - net(fake).mean())
        rows.append([label, emp, b.lower, b.upper, b.product_upper, b.ratio, est,
                     est / b.upper])
    print(f"Critics: 3 x {S.WIDTH} ReLU MLPs, {S.STEPS} steps, batch {S.BATCH}; bounds on "
          f"{2 * S.N:,} points ({S.N:,} real + {S.N:,} fake). Exact W1 of these samples: "
          f"{w1:.4f}.\n")
    print(table(["critic", "pairwise slope", "lower (∇, attained)", "upper (certified)",
                 "product of layer norms", "upper / lower", "estimate E_P f − E_Q f",
                 "estimate / upper (≤ W1)"], rows))


if __name__ == "__main__":
    main()
