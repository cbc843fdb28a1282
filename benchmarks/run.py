"""Run benchmarks/bench_*.py and assemble docs/benchmarks.md from their sections.

Each bench script prints one markdown section; its output is kept in
benchmarks/results/<name>.md, so running one script updates only its own section.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

from _harness import machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/benchmarks.md", help="markdown file to write")
    parser.add_argument("--assemble-only", action="store_true",
                        help="do not run anything; rebuild --out from benchmarks/results/")
    parser.add_argument("only", nargs="*", help="bench names to run (e.g. wasserstein)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    for script in [] if args.assemble_only else scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{script.name} failed")
        (RESULTS / f"{script.stem.removeprefix('bench_')}.md").write_text(out.stdout)
    sections = [p.read_text() for p in sorted(RESULTS.glob("*.md"))]
    text = (
        "# Benchmarks\n\n"
        f"Machine: {machine()}. Assembled on {datetime.date.today()} by `make bench` "
        "(`python benchmarks/run.py`); each section names the script that produced it. "
        "Times are medians of repeated runs in one process; ratios are otdiv / peer in "
        "the same run (below 1: otdiv is faster).\n\n" + "\n\n".join(sections)
    )
    Path(args.out).write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
