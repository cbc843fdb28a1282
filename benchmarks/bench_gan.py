"""WGAN-GP critic loss, forward + backward: otdiv.wgan_gp_loss vs a hand-written torch version.

Target (issue 5): on a 3 x 512 MLP critic, batch 256, CPU, otdiv <= 1.1 x the plain
implementation of the same penalty in the same run. The two are timed in alternating
pairs (AB, then BA) on one thread, so that load from other processes hits both alike; the
ratio is the median of the per-pair ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table

import otdiv

DIM, WIDTH, DEPTH, BATCH = 64, 512, 3, 256
PAIRS, WARMUP = 40, 3
TARGET = 1.1


def make_critic() -> torch.nn.Module:
    layers, d = [], DIM
    for _ in range(DEPTH):
        layers += [torch.nn.Linear(d, WIDTH), torch.nn.LeakyReLU(0.2)]
        d = WIDTH
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


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(ours, peer) -> tuple[float, float, float]:
    """(median otdiv time, median peer time, median per-pair ratio), alternating order."""
    for _ in range(WARMUP):
        ours()
        peer()
    t_ours, t_peer, ratios = [], [], []
    for i in range(PAIRS):
        if i % 2:
            b, a = timed(peer), timed(ours)
        else:
            a, b = timed(ours), timed(peer)
        t_ours.append(a)
        t_peer.append(b)
        ratios.append(a / b)
    return statistics.median(t_ours), statistics.median(t_peer), statistics.median(ratios)


def main() -> None:
    # one thread: on a shared machine, two threads of one process fight other jobs unevenly
    torch.set_num_threads(1)
    torch.manual_seed(0)
    critic = make_critic()
    real, fake = torch.randn(BATCH, DIM), torch.randn(BATCH, DIM) + 1.0
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
        a, b, ratio = paired(ours, peer)
        ok = ratio <= TARGET
        if name.startswith("two-sided"):
            met = ok
        rows.append([name, a * 1e3, b * 1e3, ratio, f"<= {TARGET}: {'met' if ok else 'NOT met'}"])
    print("## GAN losses: wgan_gp_loss\n")
    print(f"Script: `benchmarks/bench_gan.py`. Machine: {machine()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads.\n")
    print(f"Critic: MLP {DIM} -> {DEPTH} x {WIDTH} (LeakyReLU) -> 1, batch {BATCH}, float32, "
          "CPU. One step = loss forward + backward to the critic's parameters (double "
          "backprop through the penalty). Peer: the usual hand-written torch implementation "
          f"of the same loss. Times are medians over {PAIRS} alternating pairs of runs "
          "(AB, BA, ...); ratio = median of the per-pair otdiv/peer ratios.\n")
    print(table(["penalty", "otdiv (ms)", "hand-written (ms)", "ratio", "target"], rows))
    print(f"\nTarget (two-sided, ratio <= {TARGET}): {'met' if met else 'NOT met'}.")


if __name__ == "__main__":
    main()
