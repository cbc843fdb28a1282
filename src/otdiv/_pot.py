"""POT, imported without writing to the caller's stdout.

POT imports GeomLoss when it is installed, and GeomLoss imports pykeops, which prints a
CUDA notice on stdout at import. A library call (``otdiv.wasserstein`` routing to POT's
simplex) must not write into the caller's output, so the first import of POT goes through
:func:`import_pot`: whatever it prints is moved to stderr. POT itself is unchanged (its
backends and extras load as usual).
"""

from __future__ import annotations

import contextlib
import io
import sys
from types import ModuleType


def import_pot() -> ModuleType:
    """The ``ot`` module; its import's stdout, if any, goes to stderr."""
    if "ot" in sys.modules:
        return sys.modules["ot"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        import ot
    if printed.getvalue():
        sys.stderr.write(printed.getvalue())
    return ot
