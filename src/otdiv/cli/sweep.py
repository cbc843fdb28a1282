"""``otdiv sweep GRID.toml --out DIR``: a grid of critic audits on Dask (otdiv.audit.sweep)."""

from __future__ import annotations

from otdiv.cli._common import CLIError, add_command, int_arg


def _sweep(args) -> int:
    from otdiv.audit.grid import sweep

    if args.scheduler is not None and args.workers is not None:
        raise CLIError("--workers sizes the local cluster; with --scheduler the cluster's "
                       "own workers run the jobs")
    try:
        result = sweep(args.grid, args.out, client=args.scheduler, workers=args.workers,
                       progress=not args.no_progress)
    except ImportError as exc:  # --scheduler without the otdiv[dask] extra
        raise CLIError(str(exc)) from None
    print(result.summary)
    again = (f" ({len(result.rerun)} again: their rows had another recipe)"
             if result.rerun else "")
    print(f"ran {len(result.ran)} job(s){again}, skipped {len(result.skipped)} already in "
          f"{result.results}")
    print(f"summary: {result.summary_path}")
    print(f"plot:    {result.plot}" if result.plot is not None else result.plot_note)
    return 0


def register(sub) -> None:
    p = add_command(
        sub, "sweep", _sweep,
        "run a grid of critic audits (resumable; on Dask when installed)",
        "Run every combination of the [grid] lists of GRID.toml, with the [fixed] settings, "
        "as one `otdiv audit` each (keys: the options of otdiv audit, with underscores: toy, "
        "dim, constraint, lambda_gp, hidden, steps, seed, n ...). Each finished job appends a "
        "line to OUT/results.jsonl; running the command again runs only the jobs missing "
        "there, or there with another recipe (optimiser, lr, widths) than today's. Writes "
        "OUT/summary.md and OUT/rel_error.png.")
    p.add_argument("grid", metavar="GRID.toml", help="the grid: [grid] lists, [fixed] values")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local "
                   "cluster for this run)")
    p.add_argument("--workers", type=int_arg(1), default=None, metavar="K",
                   help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
