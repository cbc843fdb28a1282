"""The paper toys' truth: how exact W1 between samples scatters with n, and saved rows
re-scored against the reference W1 that ``otdiv benchmark-critics`` now uses as their truth.

The paper toys (8 and 25 Gaussians, Swiss roll) have no closed-form W1. Rows written before
2026-12-05 took as truth exact W1 between each row's own 2000 held-out points per side
(mean of two draws), which scatters by ±1–2 % from draw to draw; the OT-free estimates are
read on 50,000 points and scatter far less. This script computes the reference exactly as
the command does (:func:`otdiv.audit.toys.reference_w1`: mean exact W1 of
``--reference-repeats`` draws of ``--reference-n`` points per side, seed
``otdiv.audit.toys.REFERENCE_SEED``) and prints,
per LP row, each estimate's error against the row's old truth and against the reference:

    python benchmarks/paper_toys_truth.py benchmarks/results/critic_muon_seed0_mixed.json ...

``--scatter 2000,5000,20000,50000`` first prints, per paper toy and n, the mean and standard
deviation of exact W1 between ``--draws`` independent pairs of n points per side (the draws
of the reference are the last n's; the seed differs from the command's).
"""

from __future__ import annotations

import argparse
import json
import time

from otdiv.audit import make_toy
from otdiv.audit.toys import PAPER_TOYS, REFERENCE_SEED, reference_w1


def at_least(minimum: int):
    """An argparse type: a whole number >= minimum (a standard error needs two draws)."""
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return int(text)
    return parse


ESTIMATES = (("raw", "estimate"), ("flow", "flow_corrected"), ("/G (OT)", "normalized_estimate"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="JSON rows of otdiv benchmark-critics --json")
    parser.add_argument("--reference-n", type=at_least(2), default=20_000)
    parser.add_argument("--reference-repeats", type=at_least(2), default=4)
    parser.add_argument("--scatter", default=None, metavar="N1,N2,...",
                        help="also the scatter of exact W1 between samples at these n")
    parser.add_argument("--draws", type=at_least(2), default=4, help="draws per n of --scatter")
    args = parser.parse_args()
    if args.scatter:
        print("| toy | n per side | draws | mean exact W1 | sd of a draw | sd / mean | s |\n"
              "|---|---|---|---|---|---|---|")
        for name in PAPER_TOYS:
            for n in (int(v) for v in args.scatter.split(",")):
                t0 = time.perf_counter()
                ref = reference_w1(make_toy(name), n=n, repeats=args.draws, seed=n)
                print(f"| {name} | {n} | {args.draws} | {ref.value:.4f} | {ref.std:.4f} | "
                      f"{100 * ref.std / ref.value:.1f} % | {time.perf_counter() - t0:.0f} |",
                      flush=True)
    refs = {}
    if not args.files:
        return
    head = ["file", "problem", "optimizer", "seed", "old truth", "reference"]
    for label, _ in ESTIMATES:
        head += [f"err {label} (old)", f"err {label} (ref.)"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for path in args.files:
        for row in json.load(open(path)):
            if row["problem"] not in PAPER_TOYS or row.get("constraint") != "lp":
                continue
            if row["problem"] not in refs:
                refs[row["problem"]] = reference_w1(
                    make_toy(row["problem"]), n=args.reference_n,
                    repeats=args.reference_repeats, seed=REFERENCE_SEED)
            ref = refs[row["problem"]]
            old = row["exact_w1"]  # the truth of the rows before the reference
            cells = [path.rsplit("/", 1)[-1], row["problem"], row.get("optimizer", "adam"),
                     str(row["seed"]), f"{old:.4f}", f"{ref.value:.4f}"]
            for _, key in ESTIMATES:
                if row.get(key) in (None, "nan"):  # not defined for this critic
                    cells += ["-", "-"]
                    continue
                value = float(row[key])
                cells += [f"{100 * (value / old - 1):+.1f} %",
                          f"{100 * (value / ref.value - 1):+.1f} %"]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
