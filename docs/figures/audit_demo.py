"""The audit's figures: `otdiv demo` (a WGAN-GP critic on the 8 Gaussians, audited against
exact W1, and the parallel-lines sweep). Writes docs/figures/audit_demo/{levels,history,
lines_sweep}.png and report.json (slow: run by `python docs/make_figures.py --all`;
`make docs` uses the committed figures).
"""

from pathlib import Path

from otdiv.cli import main

OUT = Path(__file__).resolve().parent / "audit_demo"

if __name__ == "__main__":
    main(["demo", "--out", str(OUT), "--no-progress"])
