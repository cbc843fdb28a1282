"""Regenerate every docs figure: runs each docs/figures/*.py script (`make docs`)."""

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "figures"

for script in sorted(HERE.glob("*.py")):
    print(f"figure script {script.name}", file=sys.stderr)
    runpy.run_path(str(script), run_name="__main__")
