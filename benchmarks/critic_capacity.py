"""Can the critic network represent the MinFunnel potential? Supervised fit of u and ∇u.

The WGAN critics of the MinFunnel pairs end misaligned with the transport at d >= 64 and
K = 64 funnels (cos = D_T / G_T well below 1, docs/critic_benchmark.md). This script
separates the two possible causes. It fits the same MLP (``mlp_critic``, Softplus(30),
Adam 2e-3 (0.5, 0.9), cosine schedule, batch 256 of each of P and Q, fresh every step)
to the *known* optimal potential by regression,

    loss = mean_z [(f(z) − mean f) − (u(z) − mean u)]² + mean_z ||∇f(z) − ∇u(z)||²,

and measures its alignment on the true transport segments x → T(x) as the alignment
script does (``benchmarks/results/critic_alignment.md``): G_T = mean ||∇f||, D_T = mean
<∇f, e> at one uniform point of each segment (e its unit direction), cos = D_T / G_T.
If the regression reaches cos ≈ 1 where WGAN training does not, the network can hold the
potential and the training signal (E_P f − E_Q f under the penalty) is what is slow; if the
regression stalls too, the network's capacity is the limit.

    OMP_NUM_THREADS=1 python benchmarks/critic_capacity.py --dim 64 --funnels 64 \
        --steps 3000 --hidden 256,256,256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from otdiv.audit.funnels import MinFunnel
from otdiv.audit.models import mlp_critic


def alignment(critic: torch.nn.Module, pair: MinFunnel, n: int,
              rng: np.random.Generator) -> tuple[float, float]:
    """(G_T, D_T) of ``critic`` on n true segments x → T(x), one uniform point on each."""
    x = pair.sample_real(n, rng)
    tx = pair.transport(x, rng)[0]
    seg = x - tx
    unit = seg / np.linalg.norm(seg, axis=1, keepdims=True)
    z = torch.tensor(tx + rng.random((n, 1)) * seg, dtype=torch.float32, requires_grad=True)
    (g,) = torch.autograd.grad(critic(z).sum(), z)
    g = g.double().numpy()
    return float(np.linalg.norm(g, axis=1).mean()), float(np.sum(g * unit, axis=1).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--funnels", type=int, default=64)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--hidden", default="256,256,256")
    p.add_argument("--softplus-beta", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    hidden = tuple(int(w) for w in args.hidden.split(","))
    pair = MinFunnel(args.dim, args.funnels, seed=0)  # the benchmark's pair (apex seed 0)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    critic = mlp_critic(args.dim, hidden, softplus_beta=args.softplus_beta)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.5, 0.9))
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        z = np.concatenate([pair.sample_real(256, rng), pair.sample_fake(256, rng)])
        u, du = pair.potential(z), pair.gradient(z)
        zt = torch.tensor(z, dtype=torch.float32, requires_grad=True)
        out = critic(zt).reshape(-1)
        (g,) = torch.autograd.grad(out.sum(), zt, create_graph=True)
        ut = torch.tensor(u, dtype=torch.float32)
        loss = ((out - out.mean()) - (ut - ut.mean())).pow(2).mean() \
            + (g - torch.tensor(du, dtype=torch.float32)).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    gt, dt = alignment(critic, pair, 4000, rng)
    print(f"| d={args.dim} K={args.funnels} | {hidden} | {args.steps} | {gt:.3f} | {dt:.3f} "
          f"| {dt / gt:.3f} | {loss.item():.3f} | {time.perf_counter() - t0:.0f} |")


if __name__ == "__main__":
    main()
