"""One LP (or GP) critic on one toy, for sweeps of width, steps and lr beyond the full table.

Trains ``otdiv.train_critic`` (cosine schedule, training seed 0 unless --seed) and audits it with
``otdiv.audit_critic`` (4000 held-out points per side, 3 draws, audit seed 1); prints one
JSON line with the settings, the wall and CPU seconds, the raw and gradient-normalised
relative errors. Run one per core, on one thread, e.g.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/audit_sweep.py --hidden 96,96,96 \
        --steps 12000 >> benchmarks/results/audit_sweep.jsonl

docs/audit.md ("The 25 Gaussians") quotes the lines in benchmarks/results/audit_sweep.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import otdiv
from otdiv.audit import make_toy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", default="25gaussians")
    parser.add_argument("--constraint", default="lp", choices=("gp", "lp"))
    parser.add_argument("--hidden", default="128,128,128")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lambda-gp", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    toy = make_toy(args.toy)
    t0, c0 = time.perf_counter(), time.process_time()
    trained = otdiv.train_critic(toy.sample_real, toy.sample_fake, constraint=args.constraint,
                                 steps=args.steps, hidden=hidden, lr=args.lr,
                                 schedule="cosine", batch_size=args.batch_size,
                                 lambda_gp=args.lambda_gp, seed=args.seed, progress=False)
    t_train = time.perf_counter() - t0
    audit = otdiv.audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=4000,
                               repeats=3, w1=toy.w1, seed=1)
    print(json.dumps({
        "toy": args.toy, "constraint": args.constraint, "hidden": hidden, "steps": args.steps,
        "lr": args.lr, "batch_size": args.batch_size, "lambda_gp": args.lambda_gp,
        "seed": args.seed,
        "train_s": round(t_train, 1), "total_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(time.process_time() - c0, 1), "estimate": audit.estimate,
        "exact_w1": audit.exact_w1, "rel_error": audit.rel_error, "slope_G": audit.grad_norm,
        "rel_error_normalized": audit.rel_error_normalized,
    }))


if __name__ == "__main__":
    main()
