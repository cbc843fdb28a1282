"""The full audit table of docs/audit.md: every toy x constraint, trained and audited.

For each toy problem (the WGAN-GP paper's three toy sets, the translated and the scaled
Gaussian for d in {2, 16, 64}) and each constraint (gp, lp, spectral, clip), train a critic
with :func:`otdiv.train_critic` and audit it with :func:`otdiv.audit_critic` on held-out
samples: estimate, exact W1 between those samples, closed form, relative error (against the
closed form when there is one, else against exact W1), Lipschitz bounds, certified lower
bound, time. Then the parallel-lines sweep (critic W1 vs discriminator JSD).

Slow (about a minute per row on a 2-core CPU): run it alone, e.g.

    nohup .venv/bin/python benchmarks/audit_table.py > benchmarks/results/audit_table.log &

It prints one markdown section (rows also go to stderr as they finish). Settings: ReLU MLP
3 x 64, batch 256, 2000 steps; Adam (0.5, 0.9) at lr 2e-3 for gp/lp/spectral (20x the
published 1e-4, so that 2000 steps converge), RMSProp 5e-5 with c = 0.01 for clip
(published), lambda = 10.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _harness import machine

from otdiv.audit import audit_critic, lines_sweep, make_toy, train_critic
from otdiv.audit.report import audit_row, table

PROBLEMS = [("8gaussians", 2), ("25gaussians", 2), ("swissroll", 2),
            ("translate", 2), ("translate", 16), ("translate", 64),
            ("scale", 2), ("scale", 16), ("scale", 64)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lambda-gp", type=float, default=10.0)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--constraints", default="gp,lp,spectral,clip")
    parser.add_argument("--problems", default=None, help="e.g. 8gaussians:2,translate:16")
    parser.add_argument("--json", default="benchmarks/results/audit_table.json")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small MLPs: one thread is fastest on a shared CPU
    problems = PROBLEMS if args.problems is None else [
        (p.split(":")[0], int(p.split(":")[1])) for p in args.problems.split(",")]
    constraints = args.constraints.split(",")

    print("## Critic audit: every toy x constraint\n")
    print(f"`benchmarks/audit_table.py`, {machine()}. Critic: ReLU MLP 3 x {args.hidden}, "
          f"{args.steps} steps of batch 256; gp/lp/spectral: Adam lr {args.lr:g}, betas "
          f"(0.5, 0.9), lambda {args.lambda_gp:g}; clip: RMSProp 5e-5, c = 0.01. Audit: "
          f"{args.n} held-out samples per side, 3 draws (mean ± std). Relative error "
          "against the closed form when there is one, else against exact W1.\n", flush=True)
    rows, records = [], []
    for constraint in constraints:
        for name, d in problems:
            toy = make_toy(name, d=d)
            label = name if name in ("8gaussians", "25gaussians", "swissroll") else \
                f"{name} d={d}"
            start = time.perf_counter()
            lr = None if constraint == "clip" else args.lr
            trained = train_critic(toy.sample_real, toy.sample_fake, constraint=constraint,
                                   steps=args.steps, hidden=(args.hidden,) * 3, lr=lr,
                                   lambda_gp=args.lambda_gp, device="cpu", seed=0,
                                   progress=False)
            audit = audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=args.n,
                                 repeats=3, w1=toy.w1, device="cpu", seed=1)
            seconds = time.perf_counter() - start
            rows.append(audit_row(label, constraint, audit, seconds))
            records.append({"problem": label, "constraint": constraint,
                            "train_seconds": trained.seconds, "seconds": seconds,
                            "audit": audit.to_dict()})
            print(f"| {' | '.join(rows[-1].values())} |", file=sys.stderr, flush=True)
            Path(args.json).write_text(json.dumps(records, indent=1, default=str))
    print(table(rows, markdown=True))
    if not args.no_sweep:
        sweep = lines_sweep(device="cpu", seed=0, progress=False)
        print("\n### Parallel lines: critic W1 vs discriminator JSD\n")
        print("| theta | W1 = abs(theta) | exact W1 (samples) | critic estimate | "
              "discriminator JSD |")
        print("|---|---|---|---|---|")
        for t, w, e, c, j in zip(sweep.theta, sweep.w1_true, sweep.w1_exact,
                                 sweep.w1_estimate, sweep.jsd_estimate, strict=True):
            print(f"| {t:.2f} | {w:.3f} | {e:.3f} | {c:.3f} | {j:.3f} |")
        print(f"\n(log 2 = 0.693; sweep time {sweep.seconds:.0f} s)")


if __name__ == "__main__":
    main()
