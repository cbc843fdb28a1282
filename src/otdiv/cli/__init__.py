"""The ``otdiv`` command. Heavy imports happen inside subcommands so ``--help`` is instant.

One module per subcommand (distance, audit and demo, sweep, benchmark-critics); this one
builds the parser and turns every error into one line on stderr with exit status 2.
"""

from __future__ import annotations

import os
import sys

from otdiv.cli._common import CLIError, Parser, load_array

__all__ = ["CLIError", "build_parser", "load_array", "main"]


def build_parser() -> Parser:
    # the subcommand modules are imported here, not at the top: ``python -m
    # otdiv.cli.benchmark_critics`` imports this package first, and a module the package had
    # already imported would run twice (runpy warns)
    from otdiv.cli import audit, benchmark_critics, distance, sweep

    parser = Parser(
        prog="otdiv", description="Distances between distributions and WGAN critic audits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    distance.register(sub)
    audit.register(sub)
    sweep.register(sub)
    benchmark_critics.register(sub)
    return parser


def _out_of_memory(exc: BaseException) -> bool:
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # POT imports GeomLoss when it is installed, and GeomLoss pykeops, which prints a CUDA
    # warning on stdout at import: keep it out of the command's tables (unless asked for)
    os.environ.setdefault("KEOPS_VERBOSE", "0")
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FloatingPointError, OSError) as exc:
        print(f"otdiv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        # a size no check foresaw (numpy's MemoryError, torch's allocator RuntimeError,
        # torch.OutOfMemoryError on CUDA): one line, not a traceback; other errors propagate
        if not _out_of_memory(exc):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"otdiv {args.command}: error: out of memory" + (f" ({first})" if first else "")
              + "; lower the sizes", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("otdiv: interrupted", file=sys.stderr)
        return 130

