"""Build the docs figures (`make docs`).

By default only the quick figure scripts run; the committed figures of slow scripts (those
that train a critic, listed in ``SLOW``) are used as they are, so the docs build in seconds
on a fresh clone. ``python docs/make_figures.py --all`` regenerates every figure, and
``python docs/make_figures.py NAME.py ...`` runs the named scripts.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "figures"
SLOW = {"audit_demo.py"}  # runs `otdiv demo` (trains a critic): minutes, not seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", help="figure scripts to run (default: quick ones)")
    parser.add_argument("--all", action="store_true",
                        help="also regenerate the slow figures (" + ", ".join(sorted(SLOW)) + ")")
    args = parser.parse_args(argv)
    available = {p.name: p for p in sorted(HERE.glob("*.py"))}
    unknown = [s for s in args.scripts if Path(s).name not in available]
    if unknown:
        print(f"make_figures: no figure script {unknown[0]!r} in {HERE}", file=sys.stderr)
        return 2
    if args.scripts:
        chosen = [available[Path(s).name] for s in args.scripts]
    else:
        chosen = [p for name, p in available.items() if args.all or name not in SLOW]
    for name in sorted(set(available) - {p.name for p in chosen}):
        print(f"figure script {name}: skipped, committed figures kept (--all regenerates)",
              file=sys.stderr)
    for script in chosen:
        print(f"figure script {script.name}", file=sys.stderr)
        runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
