"""``otdiv distance``: a distance between two sample files."""

from __future__ import annotations

from otdiv.cli._common import CLIError, load_array


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


def register(sub) -> None:
    dist = sub.add_parser("distance", help="distance between two sample files (.npy or .csv)")
    dist.add_argument("x")
    dist.add_argument("y")
    dist.add_argument("--method", choices=["exact", "sinkhorn", "sliced"], default="exact")
    dist.add_argument("--p", type=float, default=1.0)
    dist.add_argument("--eps", type=float, default=None)
    dist.add_argument("--n-projections", type=int, default=100)
    dist.add_argument("--seed", type=int, default=0)
    dist.set_defaults(func=_distance)
