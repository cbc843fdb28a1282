"""The full audit table of docs/audit.md: every toy x constraint, as critic-audit sweeps.

A thin caller of :func:`otdiv.audit.sweep`: the problems (the WGAN-GP paper's three toy
sets, the translated and the scaled Gaussian for d in {2, 16, 64}) are grouped by the
settings that depend on them — the critic's first hidden layer max(width, 8 d), its steps
(fewer when that layer is wider than 256), the held-out points (more for the paper toys,
whose truth is exact W1 between samples) — and each group is one grid ``toy x constraint``
run by ``otdiv.audit.sweep`` into ``OUT/<group>/`` (results.jsonl, summary.md; resumable:
run the same command again and only the missing jobs run). Every job is one
``otdiv audit`` (:func:`otdiv.audit.run.run_audit`): training seed 0, audit seed 1, the
recipe's optimiser (Adam 2e-3, cosine decay, for gp/lp/spectral; the published RMSProp 5e-5,
constant, for clip). Then it prints the markdown table of every job, the independent check
of the paper toys' truth (:func:`atom_bracket`) and the parallel-lines sweep.

Run it alone; the sweep's workers run one thread each (torch, Numba), e.g.

    nohup .venv/bin/python benchmarks/audit_table.py --out benchmarks/results/audit_table \
        > benchmarks/results/audit_table.txt &

``--quick`` runs a tiny table (two problems, one constraint, 50 steps) in seconds, to check
that the script works. Settings (defaults of the options below): ReLU MLP, first hidden layer
max(128, 8 d) wide then 128, 128 (a radial critic in d = 64 needs the wide first layer: 128
or 256 units left it 11 % and 6 % short of W1); batch 256; 6000 steps, 4000 when the first
layer is wider than 256 (d = 64), to stay within 2 minutes a run on a 2-core CPU; lambda =
10 (published). The audit takes 4000 held-out points per side for the paper toys and 2000
for the others, 3 draws each.
"""

from __future__ import annotations

import argparse
import sys

from _harness import machine

from otdiv.audit import lines_sweep, make_toy, sweep
from otdiv.audit.report import audit_row, table
from otdiv.audit.toys import PAPER_TOYS

PROBLEMS = [("8gaussians", 2), ("25gaussians", 2), ("swissroll", 2),
            ("translate", 2), ("translate", 16), ("translate", 64),
            ("scale", 2), ("scale", 16), ("scale", 64)]


def hidden_widths(d: int, width: int, first_per_dim: int) -> tuple[int, int, int]:
    """(max(width, first_per_dim * d), width, width): a first layer that grows with d."""
    return (max(width, first_per_dim * d), width, width)


def atom_bracket(name: str, *, n: int = 400_000, seed: int = 0) -> tuple[float, float]:
    """(W1(D, Q), r): D = the mixture's centres as atoms, Q the toy's fake distribution.

    An independent check of the paper toys' truth, by semi-discrete OT: W1(D, Q) =
    max_psi mean_j psi_j + E_Q min_j (||y - c_j|| - psi_j), a concave problem in K = 8 or
    25 variables, with E_Q over n fresh draws (L-BFGS; value read on another n draws).
    P is D blurred by N(0, s^2 I), so |W1(P, Q) - W1(D, Q)| <= W1(P, D) <= r = s E||Z||.
    """
    import numpy as np
    import scipy.optimize

    from otdiv.audit.toys import paper_mixture

    centres, s = paper_mixture(name)
    sigma = make_toy(name).params["sigma"]
    k = len(centres)
    rng = np.random.default_rng(seed)

    def distances() -> np.ndarray:  # Q = centre + s Z1 + sigma Z2 = centre + sqrt(s^2 + sigma^2) Z
        y = centres[rng.integers(0, k, n)] + np.sqrt(s * s + sigma * sigma) * \
            rng.standard_normal((n, 2))
        return np.linalg.norm(y[:, None, :] - centres[None], axis=2)

    dist = distances()

    def negative_dual(psi):
        m = dist - psi[None]
        j = m.argmin(axis=1)
        grad = 1.0 / k - np.bincount(j, minlength=k) / n
        return -(psi.mean() + m[np.arange(n), j].mean()), -grad

    psi = scipy.optimize.minimize(negative_dual, np.zeros(k), jac=True, method="L-BFGS-B").x
    value = psi.mean() + (distances() - psi[None]).min(axis=1).mean()
    return float(value), s * float(np.sqrt(np.pi / 2))  # E||Z|| in 2-D = sqrt(pi / 2)


def grids(problems: list[tuple[str, int]], constraints: list[str], args) -> dict[str, dict]:
    """One grid ``toy x constraint`` per group of problems that share their fixed settings."""
    groups: dict[str, dict] = {}
    for name, d in problems:
        paper = name in PAPER_TOYS
        hidden = hidden_widths(2 if paper else d, args.hidden, args.first_per_dim)
        fixed = {"dim": d, "hidden": list(hidden),
                 "steps": args.wide_steps if hidden[0] > 256 else args.steps,
                 "n": args.n_paper if paper else args.n, "repeats": args.repeats,
                 "softplus_beta": "none" if args.softplus_beta is None else args.softplus_beta,
                 "lambda_gp": args.lambda_gp, "seed": 0, "device": "cpu"}
        group = groups.setdefault("paper" if paper else f"d{d}",
                                  {"grid": {"toy": [], "constraint": constraints},
                                   "fixed": fixed})
        if name not in group["grid"]["toy"]:
            group["grid"]["toy"].append(name)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/audit_table",
                        help="directory of the sweeps (one folder per group)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--wide-steps", type=int, default=4000,
                        help="steps when the first layer is wider than 256 (d = 64)")
    parser.add_argument("--first-per-dim", type=int, default=8,
                        help="first hidden layer at least this many units per input dim")
    parser.add_argument("--softplus-beta", type=float, default=None,
                        help="Softplus(beta) critics instead of ReLU (mlp_critic)")
    parser.add_argument("--lambda-gp", type=float, default=10.0)
    parser.add_argument("--n", type=int, default=2000, help="held-out points, closed-form toys")
    parser.add_argument("--n-paper", type=int, default=4000, help="held-out points, paper toys")
    parser.add_argument("--repeats", type=int, default=3, help="held-out draws")
    parser.add_argument("--constraints", default="gp,lp,spectral,clip")
    parser.add_argument("--problems", default=None, help="e.g. 8gaussians:2,translate:16")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the local Dask cluster (default: one per "
                        "core)")
    parser.add_argument("--scheduler", default=None, help="a running Dask scheduler")
    parser.add_argument("--no-sweep", action="store_true", help="no parallel-lines sweep")
    parser.add_argument("--no-bracket", action="store_true", help="no atom_bracket check")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny table in seconds (checks that the script works)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.hidden, args.n, args.n_paper, args.repeats = 50, 16, 200, 200, 1
        args.problems = args.problems or "8gaussians:2,translate:2"
        args.constraints, args.no_sweep, args.no_bracket = "gp", True, True
    problems = PROBLEMS if args.problems is None else [
        (p.split(":")[0], int(p.split(":")[1])) for p in args.problems.split(",")]
    constraints = args.constraints.split(",")
    rows = {}
    for group, grid in grids(problems, constraints, args).items():
        result = sweep(grid, f"{args.out}/{group}", client=args.scheduler,
                       workers=args.workers, progress=False)
        jobs = {job.id: job for job in result.jobs}
        for row in result.rows:
            job = jobs[row["job"]]
            rows[(job.args["toy"], job.args["dim"], job.args["constraint"])] = row
    act = "ReLU" if args.softplus_beta is None else f"Softplus({args.softplus_beta:g})"
    print("## Critic audit: every toy x constraint\n")
    print(f"`benchmarks/audit_table.py {' '.join(sys.argv[1:])}` (otdiv.audit.sweep, one "
          f"thread per worker), {machine()}. Critic: {act} MLP (max({args.hidden}, "
          f"{args.first_per_dim} d), {args.hidden}, {args.hidden}), {args.steps} steps of "
          f"batch 256 ({args.wide_steps} when the first layer is wider than 256); "
          "gp/lp/spectral: Adam lr 2e-3 (cosine schedule), betas (0.5, 0.9), lambda "
          f"{args.lambda_gp:g}; clip: RMSProp 5e-5 (constant), c = 0.01. Audit: "
          f"{args.n_paper} (paper toys) or {args.n} (others) held-out samples per side, "
          f"{args.repeats} draws (mean ± std). Truth: the closed form when there is one, else "
          "exact W1 between the same samples. 'rel. error' is the raw estimate's; 'slope G' "
          "the mean gradient norm along the exact OT segments, 'estimate / G' the gradient-"
          "normalised estimate and 'rel. error (/ G)' its error. 'time' is training plus "
          f"audit, wall seconds of one job. Every job's row: {args.out}/*/results.jsonl.\n")
    lines, failed = [], []
    for constraint in constraints:
        for name, d in problems:
            row = rows.get((name, d, constraint))
            label = name if name in PAPER_TOYS else f"{name} d={d}"
            if row is None or row["status"] != "ok":
                failed.append(f"{label} {constraint}: {row and row['error']}")
                continue
            lines.append(audit_row(label, constraint, row["audit"], row["seconds"]))
    print(table(lines, markdown=True))
    for line in failed:
        print(f"\nfailed: {line}")
    paper = [name for name, _ in problems if name in ("8gaussians", "25gaussians")]
    if paper and not args.no_bracket:
        print("\nIndependent check of the paper toys' truth (semi-discrete OT from the "
              "mixture's centres, `atom_bracket`): W1(P, Q) lies in W1(D, Q) ± r.\n")
        print("| problem | W1(D, Q) | r = W1(P, D) bound | bracket |")
        print("|---|---|---|---|")
        for name in dict.fromkeys(paper):
            value, r = atom_bracket(name)
            print(f"| {name} | {value:.4f} | {r:.4f} | [{value - r:.4f}, {value + r:.4f}] |")
    if not args.no_sweep:
        lines_table()


def lines_table() -> None:
    """The parallel-lines sweep: critic W1 vs discriminator JSD (otdiv.audit.lines_sweep)."""
    import torch

    torch.set_num_threads(1)
    result = lines_sweep(device="cpu", seed=0, progress=False)
    print("\n### Parallel lines: critic W1 vs discriminator JSD\n")
    print("| theta | W1 = abs(theta) | exact W1 (samples) | critic estimate | "
          "discriminator JSD |")
    print("|---|---|---|---|---|")
    for t, w, e, c, j in zip(result.theta, result.w1_true, result.w1_exact,
                             result.w1_estimate, result.jsd_estimate, strict=True):
        print(f"| {t:.2f} | {w:.3f} | {e:.3f} | {c:.3f} | {j:.3f} |")
    print(f"\n(log 2 = 0.693; sweep time {result.seconds:.0f} s)")


if __name__ == "__main__":
    main()
