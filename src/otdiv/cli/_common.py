"""What every subcommand shares: the one-line error and the readers of user files."""

from __future__ import annotations

import argparse
from pathlib import Path


class CLIError(Exception):
    """An error reported to the user as one line on stderr with exit status 2."""


def load_array(path: str, name: str):
    """Load .npy (never pickles) or .csv into a float64 array."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise CLIError(f"{name}: no such file: {path}")
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif p.suffix == ".csv":
            arr = np.loadtxt(p, delimiter=",", ndmin=2)
            if arr.shape[1] == 1:
                arr = arr[:, 0]
        else:
            raise CLIError(f"{name}: unsupported file type {p.suffix!r}; use .npy or .csv")
    except CLIError:
        raise
    except Exception as exc:
        raise CLIError(f"{name}: cannot read {path}: {exc}") from None
    return arr


def _out_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out: {path} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"--out: cannot create {path}: {exc.strerror}") from None
    return out


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage dump) and exits with 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")
