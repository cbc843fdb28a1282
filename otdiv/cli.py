"""The ``otdiv`` command. Heavy imports happen inside subcommands so ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
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


def _distance(args) -> int:
    import numpy as np

    import otdiv

    x = load_array(args.x, "x")
    y = load_array(args.y, "y")
    if args.method == "exact":
        value = otdiv.wasserstein(x, y, p=args.p)
    elif args.method == "sliced":
        value = otdiv.sliced_wasserstein(x, y, p=args.p, n_projections=args.n_projections,
                                         seed=args.seed)
    else:
        if args.eps is None:
            raise CLIError("--eps is required with --method sinkhorn")
        value = otdiv.sinkhorn(x, y, eps=args.eps, p=args.p)
    print(np.format_float_positional(value, precision=12, trim="-"))
    return 0


def _demo(args) -> int:
    import time

    import numpy as np

    import otdiv

    rng = np.random.default_rng(0)
    rows = []
    for n, d in ((1000, 1), (1000, 2), (2000, 2)):
        x = rng.standard_normal((n, d))
        t = np.zeros(d)
        t[0] = 1.0
        y = rng.standard_normal((n, d)) + t
        t0 = time.perf_counter()
        w1 = otdiv.wasserstein(x, y, p=1)
        w2 = otdiv.wasserstein(x, y, p=2)
        rows.append((n, d, w1, w2, time.perf_counter() - t0))
    print("Exact W between N(0, I) and N(e1, I) samples (population value of W_2: 1)")
    print(f"{'n':>6} {'d':>3} {'W1':>10} {'W2':>10} {'time [s]':>9}")
    for n, d, w1, w2, dt in rows:
        print(f"{n:>6} {d:>3} {w1:>10.5f} {w2:>10.5f} {dt:>9.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otdiv", description="Distances between distributions and WGAN critic audits."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dist = sub.add_parser("distance", help="distance between two sample files (.npy or .csv)")
    dist.add_argument("x")
    dist.add_argument("y")
    dist.add_argument("--method", choices=["exact", "sinkhorn", "sliced"], default="exact")
    dist.add_argument("--p", type=float, default=1.0)
    dist.add_argument("--eps", type=float, default=None)
    dist.add_argument("--n-projections", type=int, default=100)
    dist.add_argument("--seed", type=int, default=0)
    dist.set_defaults(func=_distance)

    demo = sub.add_parser("demo", help="a short run that shows what otdiv does")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError) as exc:
        print(f"otdiv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("otdiv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
