"""One critic on one toy over width, steps, lr, λ, β and seed: a thin caller of otdiv.audit.sweep.

Every option takes one value or several (``--seed 0 1 2``, ``--hidden 96,96,96 128,128,128``,
``--lambda-gp 3 10 30``); the jobs are every combination of the options given several values
(the sweep's ``[grid]``), with the others fixed (its ``[fixed]``). The defaults are the
settings of docs/audit.md's 25-Gaussians study: LP, a ReLU critic (``--softplus-beta none``;
``30`` for Softplus(30)), Adam 2e-3 with cosine decay, batch 256, λ = 10, 4000 held-out
points per side, 3 draws. Each job is one ``otdiv audit`` (training seed s, audit seed
s + 1). Results go to OUT/results.jsonl (resumable: the same command again runs only the
missing jobs) and OUT/summary.md; printed: the summary (mean ± std over seeds) and one line
per job with the columns of docs/audit.md's tables. ``--print-grid`` prints the grid as
TOML instead, for ``otdiv sweep GRID.toml --out DIR`` (the same jobs).

    .venv/bin/python benchmarks/audit_sweep.py --hidden 96,96,96 --steps 12000 \\
        --seed 0 1 2 --out benchmarks/results/sweep_25g

Activations that ``otdiv audit`` does not offer (MaxMin, LeakyReLU, ELU, GELU, tanh):
benchmarks/audit_activations.py.
"""

from __future__ import annotations

import argparse
import json
import math

from otdiv.audit import sweep

# option -> (grid key, how a value is read, default)
OPTIONS = {
    "--toy": ("toy", str, "25gaussians"),
    "--constraint": ("constraint", str, "lp"),
    "--hidden": ("hidden", lambda t: [int(w) for w in t.split(",")], "128,128,128"),
    "--steps": ("steps", int, "6000"),
    "--lr": ("lr", float, "2e-3"),
    "--batch-size": ("batch_size", int, "256"),
    "--lambda-gp": ("lambda_gp", float, "10"),
    "--softplus-beta": ("softplus_beta", lambda t: t if t == "none" else float(t), "none"),
    "--seed": ("seed", int, "0"),
}
FIXED = {"schedule": "cosine", "device": "cpu"}


def grid_of(args: argparse.Namespace) -> dict:
    """The sweep's grid: options given several values are lists, the others fixed."""
    grid, fixed = {}, dict(FIXED, n=args.n, repeats=args.repeats)
    for key, parse, _ in OPTIONS.values():
        values = [parse(v) for v in getattr(args, key)]
        if len(values) > 1:
            grid[key] = values
        else:
            fixed[key] = values[0]
    if not grid:  # a sweep of one job: its seed is the grid
        grid["seed"] = [fixed.pop("seed")]
    return {"grid": grid, "fixed": fixed}


def toml(grid: dict) -> str:
    return "\n".join(f"[{table}]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                              for k, v in grid[table].items())
                     for table in ("grid", "fixed"))


def pct(value) -> str:
    try:
        return f"{100 * float(value):+.1f} %"
    except (TypeError, ValueError):
        return "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option, (key, _, default) in OPTIONS.items():
        parser.add_argument(option, dest=key, nargs="+", default=[default],
                            help=f"one value or several (default {default})")
    parser.add_argument("--n", type=int, default=4000, help="held-out points per side")
    parser.add_argument("--repeats", type=int, default=3, help="held-out draws")
    parser.add_argument("--out", default="benchmarks/results/audit_sweep",
                        help="the sweep's directory")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the local Dask cluster (default: one per "
                        "core)")
    parser.add_argument("--scheduler", default=None, help="a running Dask scheduler")
    parser.add_argument("--print-grid", action="store_true",
                        help="print the grid as TOML (for otdiv sweep) and stop")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny sweep in seconds (checks that the script works)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.hidden, args.n, args.repeats = ["50"], ["16,16"], 300, 1
    grid = grid_of(args)
    if args.print_grid:
        print(toml(grid), end="")
        return
    result = sweep(grid, args.out, client=args.scheduler, workers=args.workers,
                   progress=False)
    print(result.summary)
    keys = list(grid["grid"])
    print("| " + " | ".join([*keys, "train [s]", "train + audit [s]", "ms per step",
                             "raw error", "slope G", "normalised error"]) + " |")
    print("|" + "---|" * (len(keys) + 6))
    for row in result.rows:
        audit, settings = row["audit"] or {}, row["settings"]
        steps = settings.get("steps", grid["fixed"].get("steps"))
        train = row["seconds"] - audit["seconds"] if audit else math.nan
        print("| " + " | ".join([*(json.dumps(settings[k]) for k in keys), f"{train:.0f}",
                                 f"{row['seconds']:.0f}", f"{1000 * train / steps:.2f}",
                                 pct(audit.get("rel_error")),
                                 f"{float(audit.get('grad_norm') or math.nan):.3g}",
                                 pct(audit.get("rel_error_normalized"))]) + " |")
    print(f"\nrows: {result.results}")


if __name__ == "__main__":
    main()
