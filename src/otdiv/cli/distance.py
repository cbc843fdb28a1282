"""``otdiv distance``: a distance between two sample files, labelled with what it is.

Each method calls one public function with that function's defaults (p included), so the
command and the Python API agree on the same files:

    exact                W_p = (min_P ⟨P, C⟩)^{1/p}                   otdiv.wasserstein
    sinkhorn             OT_eps = min_P ⟨P, C⟩ + eps·KL(P ‖ a⊗b)      otdiv.sinkhorn
    sinkhorn_divergence  S_eps = OT_eps(x, y) − ½OT_eps(x, x) − ½OT_eps(y, y)
    sliced               SW_p = (mean_θ W_p^p(θᵀx, θᵀy))^{1/p}        otdiv.sliced_wasserstein

with C_ij = ‖x_i − y_j‖^p. Nothing heavy is imported before the arguments are parsed, and
POT (needed by the exact solver only) is imported without the optional libraries its
``__init__`` would otherwise load (torch, GeomLoss, networkx, scikit-learn): numpy input
never needs them, and they were most of the command's start-up time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import warnings
from typing import NamedTuple

from otdiv.cli._common import CLIError, float_arg, int_arg, load_array, one_line


class Method(NamedTuple):
    function: str  # the public function the method calls
    formula: str
    what: str
    rooted: bool  # a p-th root (a distance in the units of x) or not (units of the cost)

    @property
    def quantity(self) -> str:
        return f"{self.formula}, {self.what}"


METHODS = {
    "exact": Method("wasserstein", "W_p = (min_P <P, C>)^(1/p)",
                    "the exact Wasserstein distance (rooted)", True),
    "sinkhorn": Method("sinkhorn", "OT_eps = min_P <P, C> + eps*KL(P | a x b)",
                       "entropic OT (unrooted, entropy term included: not W_p)", False),
    "sinkhorn_divergence": Method(
        "sinkhorn_divergence", "S_eps = OT_eps(x, y) - OT_eps(x, x)/2 - OT_eps(y, y)/2",
        "the Sinkhorn divergence (unrooted; tends to W_p^p as eps -> 0)", False),
    "sliced": Method("sliced_wasserstein", "SW_p = (mean_t W_p^p(t.x, t.y))^(1/p)",
                     "the sliced Wasserstein distance over random unit directions t "
                     "(rooted)", True),
}
COST = "C_ij = |x_i - y_j|^p"

# what POT's __init__ imports when present, none of which numpy input needs
_POT_BACKEND_SWITCHES = ("POT_BACKEND_DISABLE_PYTORCH", "POT_BACKEND_DISABLE_JAX",
                         "POT_BACKEND_DISABLE_TENSORFLOW", "POT_BACKEND_DISABLE_CUPY")
_POT_OPTIONAL = ("geomloss", "networkx", "sklearn", "cvxopt", "cvxpy")


@contextlib.contextmanager
def lean_pot():
    """While active, a first ``import ot`` skips POT's optional backends and extras.

    POT reads its ``POT_BACKEND_DISABLE_*`` switches once, at import; the extras it tries
    inside ``try: import ... except ImportError`` are hidden by a ``None`` entry in
    ``sys.modules``. Both are undone on exit, so libraries imported later are unaffected.
    Does nothing when POT is already imported.
    """
    if "ot" in sys.modules:
        yield
        return
    saved = {key: os.environ.get(key) for key in _POT_BACKEND_SWITCHES}
    hidden = [name for name in _POT_OPTIONAL if name not in sys.modules]
    os.environ.update(dict.fromkeys(_POT_BACKEND_SWITCHES, "1"))
    sys.modules.update(dict.fromkeys(hidden, None))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def api_default_p(method: str) -> float:
    """The default p of the public function behind ``method``."""
    import inspect

    import otdiv

    function = getattr(otdiv, METHODS[method].function)
    return float(inspect.signature(function).parameters["p"].default)


def _sliced_bytes(n: int, m: int, d: int, n_projections: int) -> int:
    """Peak bytes of the numpy sliced path: directions, two copies of the projections of
    both clouds and their sort indices (float64/int64)."""
    return 8 * n_projections * (3 * (n + m) + 2 * d)


def _compute(args, x, y, p: float) -> dict:
    import numpy as np

    import otdiv

    out: dict = {}
    budget = int(args.memory_gb * 2**30)
    if args.method == "exact":
        res = otdiv.wasserstein(x, y, p=p, return_result=True, memory_budget=budget)
        if not res.converged:
            raise CLIError(f"the exact solver stopped with status {res.status!r}: no W_p "
                           "to report")
        out["value"] = float(res.value)
        out["solver"] = res.method
    elif args.method == "sinkhorn":
        res = otdiv.sinkhorn(x, y, eps=args.eps, p=p, return_result=True)
        out["value"] = float(res.value)
        out["transport_cost"] = float(res.transport_cost)
        out.update(converged=bool(res.converged), n_iter=int(res.n_iter),
                   marginal_error=float(res.marginal_error))
    elif args.method == "sinkhorn_divergence":
        out["value"] = float(otdiv.sinkhorn_divergence(x, y, eps=args.eps, p=p))
    else:
        pts = [np.reshape(v, (len(v), -1)) for v in (x, y)]
        need = _sliced_bytes(len(pts[0]), len(pts[1]), pts[0].shape[1], args.n_projections)
        if need > budget:
            raise CLIError(f"--n-projections {args.n_projections} needs about "
                           f"{need / 2**30:.3g} GiB for {len(x)} + {len(y)} points, over "
                           f"--memory-gb {args.memory_gb:g}; lower it (or raise --memory-gb)")
        out["value"] = otdiv.sliced_wasserstein(x, y, p=p, n_projections=args.n_projections,
                                                seed=args.seed)
    return out


def _text(report: dict) -> str:
    rows = [("method", report["method"]), ("quantity", report["quantity"]),
            ("cost", report["cost"]), ("p", f"{report['p']:g}")]
    if report["eps"] is not None:
        rows.append(("eps", f"{report['eps']:g}"))
    if report["n_projections"] is not None:
        rows.append(("projections", f"{report['n_projections']} (seed {report['seed']})"))
    rows.append(("points", f"x {report['n']}, y {report['m']}, dimension {report['d']}"))
    if "converged" in report:
        rows.append(("converged", f"{report['converged']} after {report['n_iter']} sweeps "
                                  f"(marginal error {report['marginal_error']:.2g})"))
    if "transport_cost" in report:
        rows.append(("<P, C>", repr(report["transport_cost"])))
    rows.append(("value", repr(report["value"])))
    return "\n".join(f"{key:<12}{value}" for key, value in rows)


def _distance(args) -> int:
    if args.method in ("sinkhorn", "sinkhorn_divergence") and args.eps is None:
        raise CLIError(f"--eps is required with --method {args.method} (in units of the cost "
                       "|x - y|^p)")
    with warnings.catch_warnings(record=True) as caught:
        # numpy's and the solvers' warnings become at most one line on stderr, below;
        # deprecation notices of the libraries imported on the way are not the user's
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", RuntimeWarning)
        warnings.simplefilter("always", UserWarning)
        try:
            x = load_array(args.x, "x")
            y = load_array(args.y, "y")
            p = api_default_p(args.method) if args.p is None else args.p
            for name, arr in (("x", x), ("y", y)):
                if arr.ndim not in (1, 2):
                    raise CLIError(f"{name}: expected points of shape (n,) or (n, d), got "
                                   f"shape {arr.shape}")
            with lean_pot():
                result = _compute(args, x, y, p)
        except MemoryError:
            raise CLIError("out of memory; try fewer points (or --n-projections)") from None
        except FloatingPointError as exc:
            raise CLIError(f"numerical failure: {one_line(exc)}") from None
    if not math.isfinite(result["value"]):
        raise CLIError(f"the result is {result['value']}, not a number: the data are out of "
                       "the range this method can handle")
    n, m = len(x), len(y)
    d = 1 if x.ndim == 1 else int(x.shape[1])
    uses_eps = args.method.startswith("sinkhorn")
    report = {
        "method": args.method, "quantity": METHODS[args.method].quantity, "cost": COST,
        "rooted": METHODS[args.method].rooted, "p": p, "eps": args.eps if uses_eps else None,
        "n_projections": args.n_projections if args.method == "sliced" else None,
        "seed": args.seed if args.method == "sliced" else None,
        "n": n, "m": m, "d": d, **result,
    }
    notes = [one_line(f"{w.category.__name__}: {w.message}") for w in caught]
    if notes:
        more = f" (and {len(notes) - 1} more warnings)" if len(notes) > 1 else ""
        print(f"otdiv distance: note: {notes[0]}{more}", file=sys.stderr)
        report["warnings"] = notes
    print(json.dumps(report) if args.json else _text(report))
    return 0


def _description() -> str:
    table = "\n".join(f"  {name:<21}{m.formula}\n  {'':<21}otdiv.{m.function}, "
                      f"{'rooted' if m.rooted else 'unrooted'}"
                      for name, m in METHODS.items())
    return (f"A distance between the point clouds in two files (uniform weights),\nwith the "
            f"cost {COST}:\n\n{table}\n\nEach method is the Python function below it, with "
            "its defaults.\nPrints the method, the quantity, p, eps and the value (--json: "
            "one JSON object);\nan error is one line on stderr and exit status 2.")


def register(sub) -> None:
    import argparse

    dist = sub.add_parser(
        "distance", help="a distance between two sample files (.npy or .csv), labelled",
        description=_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    dist.add_argument("x", help="points of the first cloud: .npy (never unpickled) or .csv "
                      "(comma-separated), shape (n,) or (n, d)")
    dist.add_argument("y", help="points of the second cloud, same format, shape (m,) or "
                      "(m, d)")
    dist.add_argument("--method", choices=list(METHODS), default="exact",
                      help="exact W_p (default), sinkhorn OT_eps, sinkhorn_divergence S_eps or "
                      "sliced SW_p")
    dist.add_argument("--p", type=float_arg(1.0), default=None,
                      help="exponent of the cost |x - y|^p, >= 1 (default: the Python "
                      "function's, 1 for exact and sliced, 2 for sinkhorn and "
                      "sinkhorn_divergence)")
    dist.add_argument("--eps", type=float_arg(0.0, strict=True), default=None,
                      help="entropic regularisation > 0 in units of the cost |x - y|^p; "
                      "required by sinkhorn and sinkhorn_divergence")
    dist.add_argument("--n-projections", type=int_arg(1), default=100, metavar="L",
                      help="sliced: number of random directions (default 100)")
    dist.add_argument("--seed", type=int_arg(0, 2**63 - 2**20 - 1), default=0,
                      help="sliced: seed of the random directions (default 0)")
    dist.add_argument("--memory-gb", type=float_arg(0.0, strict=True), default=1.0,
                      metavar="GB", help="memory the exact solver may spend on n x m arrays "
                      "and the sliced projections may take; larger problems take a "
                      "memory-light exact path or are refused (default 1)")
    dist.add_argument("--json", action="store_true",
                      help="print one JSON object (method, quantity, p, eps, value, ...)")
    dist.set_defaults(func=_distance)
