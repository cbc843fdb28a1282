"""What every subcommand shares: the one-line error and strict option parsers (the file
reader is :func:`otdiv._files.load_array`)."""

from __future__ import annotations

import argparse
import math
import re

from otdiv._files import load_array, one_line

__all__ = ["CLIError", "Parser", "add_command", "float_arg", "int_arg", "load_array",
           "one_line"]


class CLIError(Exception):
    """An error reported to the user as one line on stderr with exit status 2."""


def add_command(sub, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    """The subcommand ``name`` of ``sub`` (argparse's subparsers), run as ``func(args)``."""
    parser = sub.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func)
    return parser


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
