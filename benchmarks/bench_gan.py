"""WGAN-GP critic loss, forward + backward: otdiv.wgan_gp_loss vs a hand-written torch version.

Target (issue 5): on a 3 x 512 MLP critic, batch 256, CPU, otdiv <= 1.1 x the plain
implementation of the same penalty in the same run. The two are timed in alternating
pairs (AB, then BA) on one thread, so that load from other processes hits both alike; the
ratio is the median of the per-pair ratios.
"""

from __future__ import annotations

import torch
from _harness import machine, options, paired, pin_threads, table

import otdiv

SIZES = {"DIM": (64, 8), "WIDTH": (512, 32), "DEPTH": (3, 3), "BATCH": (256, 16),
         "PAIRS": (40, 2), "WARMUP": (3, 1)}
S = options(__doc__, SIZES)
TARGET = 1.1


def make_critic() -> torch.nn.Module:
    layers, d = [], S.DIM
    for _ in range(S.DEPTH):
        layers += [torch.nn.Linear(d, S.WIDTH), torch.nn.LeakyReLU(0.2)]
        d = S.WIDTH
    return torch.nn.Sequential(*layers, torch.nn.Linear(d, 1))


def plain_gp(critic, real, fake, lambda_gp=10.0):
    """The usual hand-written WGAN-GP critic loss (Gulrajani et al.'s reference recipe)."""
    alpha = torch.rand(real.shape[0], 1)
    interp = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(interp)
    (grad,) = torch.autograd.grad(out, interp, grad_outputs=torch.ones_like(out),
                                  create_graph=True)
    gp = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    return critic(fake).mean() - critic(real).mean() + lambda_gp * gp


def plain_r1(critic, real, fake, lambda_gp=10.0):
    real = real.requires_grad_(True)
    out_real = critic(real)
    (grad,) = torch.autograd.grad(out_real.sum(), real, create_graph=True)
    r1 = grad.square().sum(dim=1).mean()
    return critic(fake).mean() - out_real.mean() + lambda_gp * r1


def step(loss_fn, critic):
    def run():
        critic.zero_grad(set_to_none=True)
        loss_fn().backward()

    return run


def main() -> None:
    # one thread: on a shared machine, two threads of one process fight other jobs unevenly
    pin_threads(1)
    torch.manual_seed(0)
    critic = make_critic()
    real, fake = torch.randn(S.BATCH, S.DIM), torch.randn(S.BATCH, S.DIM) + 1.0
    cases = {
        "two-sided (WGAN-GP)": (
            step(lambda: otdiv.wgan_gp_loss(critic, real, fake), critic),
            step(lambda: plain_gp(critic, real, fake), critic),
        ),
        "r1": (
            step(lambda: otdiv.wgan_gp_loss(critic, real, fake, kind="r1"), critic),
            step(lambda: plain_r1(critic, real.detach().clone(), fake), critic),
        ),
    }
    rows, met = [], True
    for name, (ours, peer) in cases.items():
        a, b, ratio = paired(ours, peer, S.PAIRS, warmup=S.WARMUP)
        ok = ratio <= TARGET
        if name.startswith("two-sided"):
            met = ok
        rows.append([name, a * 1e3, b * 1e3, ratio, f"<= {TARGET}: {'met' if ok else 'NOT met'}"])
    print("## GAN losses: wgan_gp_loss\n")
    print(f"Script: `benchmarks/bench_gan.py`. Machine: {machine()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads.\n")
    print(f"Critic: MLP {S.DIM} -> {S.DEPTH} x {S.WIDTH} (LeakyReLU) -> 1, batch {S.BATCH}, "
          "float32, CPU. One step = loss forward + backward to the critic's parameters (double "
          "backprop through the penalty). Peer: the usual hand-written torch implementation "
          f"of the same loss. Times are medians over {S.PAIRS} alternating pairs of runs "
          "(AB, BA, ...); ratio = median of the per-pair otdiv/peer ratios.\n")
    print(table(["penalty", "otdiv (ms)", "hand-written (ms)", "ratio", "target"], rows))
    print(f"\nTarget (two-sided, ratio <= {TARGET}): {'met' if met else 'NOT met'}.")


if __name__ == "__main__":
    main()
