"""Certified lower bounds on W1 from trained critics: the envelope against estimate / Lip.

For each toy × constraint: train a critic (``otdiv.train_critic``, 96x3 MLP, cosine
schedule, Adam 2e-3 (5e-5 for clipping), Softplus(30) for LP), audit it on held-out
samples (``otdiv.audit_critic``, n = 2000 per side, 2 draws) and print the raw estimate,
exact W1 between the samples, the envelope certificate and the Lipschitz certificate
(estimate / Lip upper), as a markdown table. On the MinFunnel pairs (W1 = 1 by
construction) it also prints the population W1 and the envelope on held-out samples.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/critic_certificate.py \
        > benchmarks/results/critic_certificate.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import otdiv
from otdiv.audit import make_toy
from otdiv.audit.envelope import envelope_bound
from otdiv.audit.funnels import MinFunnel

CONSTRAINTS = (("lp", 30.0, 2e-3), ("gp", None, 2e-3), ("clip", None, 5e-5))


def row(name, constraint, real, fake, steps, w1=None):
    beta, lr = {c: (b, lr) for c, b, lr in CONSTRAINTS}[constraint]
    t0 = time.perf_counter()
    trained = otdiv.train_critic(real, fake, constraint=constraint, steps=steps,
                                 hidden=(96, 96, 96), softplus_beta=beta, lr=lr,
                                 schedule="cosine", seed=0, progress=False)
    audit = otdiv.audit_critic(trained.critic, real, fake, n=2000, repeats=2, seed=1)
    held = ""
    if w1 is not None:
        rng = np.random.default_rng(7)
        x, y, x2, y2 = real(2000, rng), fake(2000, rng), real(2000, rng), fake(2000, rng)
        with torch.no_grad():
            score = lambda z: trained.critic(torch.as_tensor(z, dtype=torch.float32))  # noqa
            b = envelope_bound(x, y, score(x).numpy(), score(y).numpy(), held_out=(x2, y2))
        held = f"{b.held_out:.4f} ± {b.held_out_se:.4f}"
    lip = audit.estimate / audit.lipschitz_upper
    seconds = time.perf_counter() - t0
    return (f"| {name} | {constraint} | {audit.estimate:.4f} | {audit.exact_w1:.4f} | "
            f"{'' if w1 is None else f'{w1:.4f}'} | {audit.envelope_lower:.4f} "
            f"({audit.envelope_lower / audit.exact_w1:.3f}×) | {lip:.4f} "
            f"({lip / audit.exact_w1:.3f}×) | {held} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--funnels", default="2:4,16:16,64:64",
                        help="d:K settings of the MinFunnel rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| problem | constraint | raw estimate | exact W1 (samples) | population W1 | "
          "envelope certificate | estimate / Lip upper | envelope on held-out samples | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for toy_name in ("8gaussians", "25gaussians"):
        toy = make_toy(toy_name)
        for constraint, _, _ in CONSTRAINTS:
            print(row(toy_name, constraint, toy.sample_real, toy.sample_fake, args.steps),
                  flush=True)
    for setting in args.funnels.split(","):
        d, k = (int(v) for v in setting.split(":"))
        mf = MinFunnel(d, k, seed=0)
        print(row(f"MinFunnel d={d} K={k}", "lp", mf.sample_real, mf.sample_fake,
                  args.steps, w1=mf.w1), flush=True)


if __name__ == "__main__":
    main()
