"""Run benchmarks/bench_*.py and assemble docs/benchmarks.md from their sections.

Each bench script prints one markdown section; its output is kept in
benchmarks/results/<name>.md, so running one script updates only its own section.
``--quick`` runs every script at its tiny sizes (a smoke test, `make bench-smoke`) and
writes nothing: neither benchmarks/results/ nor the assembled page.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path

from _harness import drop_notices, machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/benchmarks.md", help="markdown file to write")
    parser.add_argument("--assemble-only", action="store_true",
                        help="do not run anything; rebuild --out from benchmarks/results/")
    parser.add_argument("--quick", action="store_true",
                        help="run every script with --quick (tiny sizes) and write nothing")
    parser.add_argument("only", nargs="*", help="bench names to run (e.g. wasserstein)")
    args = parser.parse_args()
    if args.quick and args.assemble_only:
        parser.error("--quick runs the scripts and writes nothing; --assemble-only runs nothing")
    scripts = sorted(HERE.glob("bench_*.py"))
    names = [s.stem.removeprefix("bench_") for s in scripts]
    unknown = sorted(set(args.only) - set(names))
    if unknown:
        parser.error(f"no bench named {', '.join(unknown)} (known: {', '.join(names)})")
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    for script in [] if args.assemble_only else scripts:
        print(f"running {script.name}{' --quick' if args.quick else ''} ...", file=sys.stderr,
              flush=True)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, str(script), *(["--quick"] if args.quick else [])],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{script.name} failed")
        print(f"  {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        section = drop_notices(out.stdout)  # the section, without pykeops's import notice
        if args.quick:
            print(section)
        else:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"{script.stem.removeprefix('bench_')}.md").write_text(section)
    if args.quick:
        return
    # only the bench scripts' sections: results/ also keeps other scripts' outputs
    sections = [p.read_text() for p in (RESULTS / f"{name}.md" for name in names) if p.exists()]
    text = (
        "# Benchmarks\n\n"
        f"Assembled on {datetime.date.today()} on {machine()} by `make bench` "
        "(`python benchmarks/run.py`); each section names the script that produced it and "
        "the machine it ran on (a section is rerun alone: `python benchmarks/run.py NAME`). "
        "Times are medians of repeated runs in one process; ratios are otdiv / peer in "
        "the same run (below 1: otdiv is faster).\n\n" + "\n\n".join(sections)
    )
    Path(args.out).write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
