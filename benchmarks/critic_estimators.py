"""Which W1 estimate of a trained critic to quote: raw, slope-corrected, penalty-corrected.

For each problem × constraint × seed: train a critic (``otdiv.audit.train_critic``), audit
it on held-out samples (``otdiv.audit.audit_critic``, with the training λ) and print, as a
markdown row: the raw estimate, the three OT-free corrections (slope-corrected: raw / mean
‖∇f‖ at the penalty's interpolates; penalty-corrected: λ(√(1 + 2 raw/λ) − 1);
c-transform-corrected: raw / mean ‖∇f‖ along the critic's c-transform pairs;
flow-corrected: raw / the flux-weighted slope at the interpolates), the
gradient-normalised estimate (needs exact OT, for comparison), the envelope certificate,
exact W1 between the samples, the population W1 where known, the errors of each estimate
against the truth (population W1 when known, else exact W1 of the samples) and seconds.

Problems: ``8gaussians``, ``25gaussians``, ``swissroll``, ``translate:D``, ``scale:D``,
``funnels:D:K``. Default critic: the recommended one — LP, Softplus(30), 3 × 96, Adam 2e-3,
cosine schedule. ``--device auto`` trains on CUDA when present.

    NUMBA_NUM_THREADS=1 python benchmarks/critic_estimators.py --steps 3000 \\
        --problems 8gaussians,25gaussians,swissroll,translate:2,scale:2,funnels:2:4
"""

from __future__ import annotations

import argparse
import json
import time

from otdiv.audit import audit_critic, make_toy, train_critic

PAPER = ("8gaussians", "25gaussians", "swissroll")
DEFAULT_PROBLEMS = ("8gaussians,25gaussians,swissroll,translate:2,translate:16,scale:2,"
                    "scale:16,funnels:2:4,funnels:16:4")


def problem(spec: str):
    """(label, toy) from 'name', 'translate:D', 'scale:D' or 'funnels:D:K'."""
    parts = spec.split(":")
    if parts[0] in PAPER:
        return spec, make_toy(parts[0])
    if parts[0] in ("translate", "scale"):
        return f"{parts[0]} d={parts[1]}", make_toy(parts[0], d=int(parts[1]))
    if parts[0] == "funnels":
        d, k = int(parts[1]), int(parts[2])
        return f"funnels d={d} K={k}", make_toy("funnels", d=d, funnels=k, seed=0)
    raise ValueError(f"unknown problem {spec!r}")


def pct(v: float | None) -> str:
    return "" if v is None or v != v else f"{100 * v:+.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=DEFAULT_PROBLEMS)
    parser.add_argument("--constraints", default="lp")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--softplus-beta", type=float, default=30.0,
                        help="0 for a ReLU critic")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lambda-gp", type=float, default=10.0)
    parser.add_argument("--n", type=int, default=2000, help="held-out points per side")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    beta = args.softplus_beta or None
    print("| problem | constraint | seed | raw | slope-corr. | penalty-corr. | c-transf.-corr. | "
          "flow-corr. | /G (OT) | envelope cert. | exact W1 (samples) | population W1 | "
          "err raw | err slope | err penalty | err c-transf. | err flow | err /G | "
          "cert / exact | s |")
    print("|" + "---|" * 20)
    rows = []
    for spec in args.problems.split(","):
        label, toy = problem(spec)
        for constraint in args.constraints.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                t0 = time.perf_counter()
                lr = 5e-5 if constraint == "clip" else args.lr
                trained = train_critic(toy.sample_real, toy.sample_fake,
                                       constraint=constraint, steps=args.steps,
                                       hidden=(args.hidden,) * 3, softplus_beta=beta, lr=lr,
                                       lambda_gp=args.lambda_gp, schedule="cosine",
                                       device=args.device, seed=seed, progress=False)
                lam = args.lambda_gp if constraint in ("gp", "lp") else None
                a = audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=args.n,
                                 repeats=2, w1=toy.w1, lambda_gp=lam, device=args.device,
                                 penalty="two-sided" if constraint == "gp" else "one-sided",
                                 lipschitz=False, seed=seed + 1000)
                sec = time.perf_counter() - t0
                cert = a.envelope_lower / a.exact_w1
                pen = "" if a.penalty_corrected is None else f"{a.penalty_corrected:.4f}"
                print(f"| {label} | {constraint} | {seed} | {a.estimate:.4f} | "
                      f"{a.slope_corrected:.4f} | {pen} | {a.ctransform_corrected:.4f} | "
                      f"{a.flow_corrected:.4f} | "
                      f"{a.normalized_estimate:.4f} | "
                      f"{a.envelope_lower:.4f} | {a.exact_w1:.4f} | "
                      f"{'' if toy.w1 is None else f'{toy.w1:.4f}'} | {pct(a.rel_error)} | "
                      f"{pct(a.rel_error_slope_corrected)} | "
                      f"{pct(a.rel_error_penalty_corrected)} | "
                      f"{pct(a.rel_error_ctransform_corrected)} | "
                      f"{pct(a.rel_error_flow_corrected)} | {pct(a.rel_error_normalized)} | "
                      f"{cert:.3f} | {sec:.0f} |", flush=True)
                rows.append({"problem": label, "constraint": constraint, "seed": seed,
                             "steps": args.steps, "seconds": sec, **a.to_dict()})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
