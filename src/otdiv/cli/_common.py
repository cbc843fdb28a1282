"""What every subcommand shares: the one-line error, strict option parsers, file readers."""

from __future__ import annotations

import argparse
import math
import re
import warnings
from pathlib import Path


class CLIError(Exception):
    """An error reported to the user as one line on stderr with exit status 2."""


def one_line(text: object) -> str:
    """``text`` with its whitespace (newlines included) collapsed, for a one-line message."""
    return " ".join(str(text).split())


def load_array(path: str, name: str):
    """Load .npy (never pickles) or .csv into a numpy array; every failure is a CLIError.

    A directory, an empty file, a file numpy warns about and one too large for memory are
    refused with a message that names ``name``; numpy's warnings never reach the terminal.
    """
    import numpy as np

    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{name}: {path} is a directory, not a .npy or .csv file")
    if not p.is_file():
        raise CLIError(f"{name}: no such file: {path}")
    if p.suffix not in (".npy", ".csv"):
        raise CLIError(f"{name}: unsupported file type {p.suffix!r}; use .npy or .csv")
    try:
        if p.stat().st_size == 0:
            raise CLIError(f"{name}: {path} is empty")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if p.suffix == ".npy":
                arr = np.load(p, allow_pickle=False)
            else:
                arr = np.loadtxt(p, delimiter=",", ndmin=2)
        if arr.size == 0 and p.suffix == ".csv":  # loadtxt warns "input contained no data"
            raise CLIError(f"{name}: {path} holds no numbers")
        if caught:
            raise CLIError(f"{name}: cannot read {path}: {one_line(caught[0].message)}")
        if p.suffix == ".csv" and arr.shape[1] == 1:
            arr = arr[:, 0]
    except CLIError:
        raise
    except MemoryError:
        raise CLIError(f"{name}: {path} does not fit in memory") from None
    except Exception as exc:
        raise CLIError(f"{name}: cannot read {path}: {one_line(exc)}") from None
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


_INT = re.compile(r"[+]?[0-9]+")


def int_arg(minimum: int = 1, maximum: int | None = None):
    """An argparse ``type``: a decimal integer in [minimum, maximum], written as one.

    "1e12", "2.0" and "0x10" are refused (argparse names the option), never rounded.
    """
    def parse(text: str) -> int:
        if not _INT.fullmatch(text.strip().replace("_", "")):
            raise argparse.ArgumentTypeError(f"expected a whole number such as 100, got {text!r}")
        value = int(text.strip().replace("_", ""))
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(minimum: float | None = None, *, strict: bool = False):
    """An argparse ``type``: a finite float >= minimum (> minimum when strict)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if strict else '>='} {minimum:g}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage dump) and exits with 2.

    A value that starts with a minus and a digit ("-1,0,1", "-0.5", "-1e-3") is a value,
    never an option: ``--thetas -1,0,1`` works as ``--thetas=-1,0,1`` does (no option of
    otdiv's looks like a negative number).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")
