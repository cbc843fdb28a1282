"""The 28 MinFunnel settings of Korotin et al. at the recipe, from the saved JSON rows.

Reads the rows that ``otdiv benchmark-critics --json`` wrote (default: every
``benchmarks/results/*.json`` except the ReLU runs), keeps the LP rows trained with the
recommended critic — ``recommended_hidden(d)``, 12,000 steps, batch 256, penalty on the
whole batch, lr 2e-3 with a cosine schedule,
λ = 10, Softplus(30), the OT-free estimates on 50,000 points — one per (d, K, seed; lr and
schedule None: the seed-0 rows of d = 128, K ∈ {4, 64}, re-audits of saved recipe critics
whose seconds are the audit's alone), and
prints

* the table of ``otdiv sweep``'s summary (:func:`otdiv.audit.grid.summarize`): per setting,
  mean ± standard deviation over its seeds of the raw, flow-corrected and /G (OT) errors
  and of the row's seconds (training and audit; "-" where an older row did not record them);
* per seed, and over the settings' seed means, the median |flow-corrected error| and how
  many settings are within 2, 5 and 10 % (the targets of issue 19).

    python benchmarks/critic_funnels_summary.py [--optimizer adam] [--beside muon] [FILE.json ...]
    python benchmarks/critic_funnels_summary.py --batches [--precision any] [FILE.json ...]

``--optimizer`` picks the rows trained with that optimiser (default muon: the recipe since
2026-12-05; ``adam`` rebuilds the previous recipe's three-seed table, and rows written
before the optimiser was recorded are Adam's). ``--beside OTHER`` also prints, per
setting, the flow-corrected error of both optimisers on the seeds that both have (mean over
those seeds, and the rows' mean seconds), and the tallies of both on those settings.

``--precision`` picks the rows trained in that precision (default float32, the rows
written before ``--precision`` existed; ``bfloat16`` the autocast rows; ``any`` both, a
float32 row first where a setting, seed and batch has both).

``--batches`` keeps the recipe's rows at every batch size instead (the penalty on the whole
batch, everything else the recipe's) and prints, per setting, the flow-corrected error at
each batch measured (mean over its seeds), then the tallies when each setting takes its
row at the largest batch measured up to a cap — the counts of "what would meet the targets"
in docs/critic_benchmark.md, rebuilt from the files — and last, for the settings measured
beyond the smallest batch, each seed's error at each batch.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import re
import statistics
import sys
from pathlib import Path

from otdiv.audit.grid import summarize
from otdiv.audit.models import recommended_hidden

RESULTS = Path(__file__).parent / "results"


def recipe_row(row: dict, d: int, optimizer: str = "muon", batch: int | None = 256,
               precision: str = "float32") -> bool:
    # rows written before softplus_beta was recorded (9b6f613) are Softplus(30), the default
    # then; the ReLU runs of that time are left out by their file name (collect)
    beta = row.get("softplus_beta", 30.0)
    size = row.get("batch_size")
    return (row.get("constraint") == "lp" and row.get("steps") == 12000
            and (batch is None or size == batch) and row.get("penalty_batch") in (None, size)
            and list(row.get("hidden") or []) == list(recommended_hidden(d))
            and row.get("lr") in (0.002, None) and row.get("schedule") in ("cosine", None)
            and row.get("lambda_gp") == 10.0 and row.get("n_estimate") == 50000
            and beta == 30.0 and (row.get("optimizer") or "adam") == optimizer
            # float32 rows record no precision (--precision came on 2026-12-06)
            and precision in ("any", row.get("precision", "float32"))
            and row.get("rel_error_flow_corrected") not in (None, "nan"))


def collect(files: list[str], optimizer: str = "muon", batches: bool = False,
            precision: str = "float32") -> dict:
    """(d, K, seed) -> the first recipe row found (files in the order given); with
    ``batches``, (d, K, seed, batch size) -> the first such row at any batch size; with
    ``precision`` "any", a float32 row before a bfloat16 one of the same key."""
    rows: dict[tuple[int, ...], dict] = {}
    for name in files:
        if "relu" in Path(name).name:
            continue
        data = json.loads(Path(name).read_text())
        for row in data if isinstance(data, list) else []:
            m = re.fullmatch(r"funnels d=(\d+) K=(\d+)", str(row.get("problem")))
            if m and recipe_row(row, int(m[1]), optimizer, None if batches else 256,
                                precision):
                key = (int(m[1]), int(m[2]), row["seed"])
                key = (*key, row["batch_size"]) if batches else key
                if key not in rows or ("precision" in rows[key] and "precision" not in row):
                    rows[key] = row
    return rows


def tally(errors: list[float]) -> str:
    e = [abs(x) for x in errors]
    return (f"{len(e)} settings, median |err| {100 * statistics.median(e):.2f} %, within "
            + ", ".join(f"{t} %: {sum(x <= t / 100 for x in e)}" for t in (2, 5, 10))
            + f", max {100 * max(e):.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="muon", choices=["adam", "muon"])
    parser.add_argument("--beside", default=None, choices=["adam", "muon"])
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "bfloat16", "any"],
                        help="the rows trained in this precision (any: float32 where a "
                        "setting, seed and batch has both)")
    parser.add_argument("--batches", action="store_true",
                        help="the recipe's rows at every batch size, and the tallies by cap")
    parser.add_argument("files", nargs="*", metavar="FILE.json")
    args = parser.parse_args()
    if args.beside == args.optimizer:
        parser.error(f"--beside {args.beside} is --optimizer itself")
    files = args.files or sorted(glob.glob(str(RESULTS / "*.json")))
    if args.batches:
        by_batch(collect(files, args.optimizer, batches=True, precision=args.precision))
        return
    rows = collect(files, args.optimizer, precision=args.precision)
    if not rows:
        sys.exit(f"no recipe rows with optimizer={args.optimizer} and precision="
                 f"{args.precision} at batch 256 in {len(files)} files (--batches: any batch)")
    sweep_rows = [{"settings": {"dim": d, "funnels": k, "seed": s}, "status": "ok",
                   "audit": row, "seconds": row.get("row_seconds")}
                  for (d, k, s), row in sorted(rows.items())]
    print(summarize(sweep_rows, ["dim", "funnels", "seed"])[0])
    print()
    flow = {key: row["rel_error_flow_corrected"] for key, row in rows.items()}
    for seed in sorted({s for _, _, s in flow}):
        print(f"* seed {seed}: " + tally([e for (_, _, s), e in flow.items() if s == seed]))
    settings = sorted({(d, k) for d, k, _ in flow})
    means = [statistics.mean(e for (d2, k2, _), e in flow.items() if (d2, k2) == (d, k))
             for d, k in settings]
    seeds = [sum(1 for (d2, k2, _) in flow if (d2, k2) == (d, k)) for d, k in settings]
    count = str(min(seeds)) if min(seeds) == max(seeds) else f"{min(seeds)}–{max(seeds)}"
    print(f"* mean over the seeds ({count} a setting): " + tally(means))
    if args.beside:
        print()
        beside(rows, collect(files, args.beside, precision=args.precision), args.optimizer,
               args.beside)


def by_batch(rows: dict) -> None:
    """Per (d, K): the flow-corrected error at each batch size (mean over its seeds), and the
    tallies with each setting at the largest batch measured up to each cap."""
    if not rows:
        sys.exit("no recipe rows at any batch size")
    sizes = sorted({b for *_, b in rows})
    errors: dict[tuple[int, int], dict[int, dict[int, float]]] = {}
    bf16 = {key for key, row in rows.items() if row.get("precision") == "bfloat16"}
    for (d, k, seed, b), row in rows.items():
        errors.setdefault((d, k), {}).setdefault(b, {})[seed] = row["rel_error_flow_corrected"]
    print("| setting | " + " | ".join(f"batch {b}" for b in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for (d, k), at in sorted(errors.items()):
        cells = [f"{100 * statistics.mean(at[b].values()):+.1f} % ({len(at[b])})" if b in at
                 else "" for b in sizes]
        print(f"| d={d} K={k} | " + " | ".join(cells) + " |")
    print("\n(mean over the seeds measured at that batch, their number in brackets)\n")
    for cap in sizes:
        for label, pick in (("seed 0", lambda v: v.get(0)),
                            ("mean over the seeds", lambda v: statistics.mean(v.values()))):
            chosen = []
            for at in errors.values():
                measured = [b for b in at if b <= cap and pick(at[b]) is not None]
                if measured:
                    chosen.append(pick(at[max(measured)]))
            if chosen:
                print(f"* batch up to {cap}, {label}: " + tally(chosen))
    beyond = {dk: at for dk, at in errors.items() if set(at) - {sizes[0]}}
    if beyond:
        print("\n| setting | " + " | ".join(f"batch {b}" for b in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for (d, k), at in sorted(beyond.items()):
            cells = [", ".join(f"{100 * e:+.1f} % ({seed}"
                               + (", bf16)" if (d, k, seed, b) in bf16 else ")")
                               for seed, e in sorted(at[b].items()))
                     if b in at else "" for b in sizes]
            print(f"| d={d} K={k} | " + " | ".join(cells) + " |")
        print("\n(each seed's flow-corrected error, the seed in brackets; bf16: trained with "
              "--precision bfloat16)")


def beside(rows: dict, other: dict, name: str, other_name: str) -> None:
    """Per (d, K): the flow-corrected error of both row sets on their common seeds."""
    common = sorted(set(rows) & set(other))
    if not common:
        print(f"no (d, K, seed) has rows of both {name} and {other_name}")
        return
    settings = sorted({(d, k) for d, k, _ in common})
    print(f"| setting | seeds | {other_name} | {name} | s ({other_name}) | s ({name}) |")
    print("|---|---|---|---|---|---|")
    mine, theirs = [], []
    for d, k in settings:
        keys = [key for key in common if key[:2] == (d, k)]
        a = [other[key]["rel_error_flow_corrected"] for key in keys]
        b = [rows[key]["rel_error_flow_corrected"] for key in keys]
        theirs.append(statistics.mean(a))
        mine.append(statistics.mean(b))
        # re-audits of saved critics (lr None) timed the audit alone: no training seconds
        timed = [[r[key]["row_seconds"] for key in keys
                  if r[key].get("lr") is not None and r[key].get("row_seconds")]
                 for r in (other, rows)]
        secs = [statistics.mean(t) if t else math.nan for t in timed]
        print(f"| d={d} K={k} | {','.join(str(key[2]) for key in keys)} "
              f"| {100 * theirs[-1]:+.1f} % | {100 * mine[-1]:+.1f} %"
              + "".join(" | -" if math.isnan(t) else f" | {t:.0f}" for t in secs) + " |")
    print()
    print(f"* {other_name} on these settings: " + tally(theirs))
    print(f"* {name} on these settings: " + tally(mine))


if __name__ == "__main__":
    main()
