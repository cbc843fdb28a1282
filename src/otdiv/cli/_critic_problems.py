"""``otdiv benchmark-critics``'s problems: a ``--problems`` spec to a toy pair, the memory
its rows need (checked before any work), the critic's widths for its dimension, and the
reference W1 of a paper toy that has no closed form (its memory also checked before any
work).
"""

from __future__ import annotations

import argparse
import sys
import time

from otdiv.cli._common import CLIError, int_arg

MAX_REFERENCE_REPEATS = 1000  # as otdiv audit --repeats: a standard error needs no more
# exact W1 of n points per side of a 2-D toy: 3.4 KiB a point measured at n = 300,000 (the
# 25 Gaussians: 1.2 GB peak, 8 minutes a draw on one core), twice that planned
REFERENCE_POINT_BYTES = 8192
DEFAULT_PROBLEMS = ("8gaussians,25gaussians,swissroll,translate:2,translate:16,scale:2,"
                    "scale:16,funnels:2:4,funnels:16:4")


def problem(spec: str, args: argparse.Namespace | None = None):
    """(label, toy) from 'name', 'translate:D', 'scale:D' or 'funnels:D:K'; with ``args``,
    the memory of training and auditing a critic on its d-dimensional samples is checked
    (:func:`check_sizes`) before the toy is built."""
    from otdiv._array import MAX_COUNT
    from otdiv.audit import make_toy
    from otdiv.audit.toys import PAPER_TOYS

    parts = spec.strip().split(":")
    try:
        if parts[0] in PAPER_TOYS and len(parts) == 1:
            d, build = 2, lambda: make_toy(parts[0])
        elif parts[0] in ("translate", "scale") and len(parts) == 2:
            d = int(parts[1])  # the label spells d as an integer: "02" and " 2" are 2
            build = lambda: make_toy(parts[0], d=d)  # noqa: E731
        elif parts[0] == "funnels" and len(parts) == 3:
            d, k = int(parts[1]), int(parts[2])
            build = lambda: make_toy("funnels", d=d, funnels=k, seed=0)  # noqa: E731
        else:
            raise CLIError(f"--problems: unknown problem {spec!r}; use 8gaussians, "
                           "25gaussians, swissroll, translate:D, scale:D or funnels:D:K")
        if not 1 <= d <= MAX_COUNT:
            raise ValueError(f"d must be an integer in [1, {MAX_COUNT}], got {d}")
    except ValueError as exc:
        raise CLIError(f"--problems: {spec!r}: {exc}") from None
    if args is not None:
        check_sizes(d, args)
        if parts[0] in PAPER_TOYS:  # the truth is a reference: its draws and exact W1
            check_reference_size(args)
    try:
        toy = build()
    except ValueError as exc:
        raise CLIError(f"--problems: {spec!r}: {exc}") from None
    label = parts[0] if parts[0] in PAPER_TOYS else (
        f"funnels d={d} K={k}" if parts[0] == "funnels" else f"{parts[0]} d={d}")
    return label, toy


def check_sizes(d: int, args) -> None:
    """The memory checks train_critic, audit_critic and (with ``--population``)
    critic_population_bound make, for a row's d-dimensional samples, before any work,
    naming the options (``--hidden``, ``--batch-size``, ``--n``, ``--n-estimate``) and the
    problem's d."""
    from otdiv.audit.critic import check_audit_size
    from otdiv.audit.models import check_training_size
    from otdiv.audit.population import check_population_size

    try:
        check_training_size(d, hidden_for(args.hidden, d), args.batch_size, 2000,
                            names={"dim": "d (--problems)", "hidden": "--hidden",
                                   "batch_size": "--batch-size"})
        # the rows audit with lipschitz=False: no Lipschitz points
        check_audit_size(args.n, d, 0, name="--n")
        if args.n_estimate > args.n:
            check_audit_size(args.n, d, 0, n_estimate=args.n_estimate, name="--n-estimate")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if getattr(args, "population", False):
        try:  # n anchors a side and n_test = 2 n, the run's call (8 steps, two grows)
            check_population_size(args.n, 2 * args.n, 8, 2, d)
        except ValueError as exc:
            text = str(exc)
            why, hint = text[text.index(" needs"):text.rindex("; lower")], text[text.rindex(" ("):]
            raise CLIError(f"--n={args.n} (--population){why}; lower --n{hint}") from None


def check_reference_size(args, budget: float | None = None) -> None:
    """--reference-n against the memory budget (``otdiv.audit.models.memory_budget``):
    exact W1 between --reference-n points per side of a paper toy (d = 2) is planned at
    ``REFERENCE_POINT_BYTES`` a point (the draws, the sparse simplex's arcs and tree), so
    at most 524,288 points per side; --reference-repeats is bounded by its parser
    (``MAX_REFERENCE_REPEATS``)."""
    from otdiv.audit.models import check_budget

    try:
        check_budget(REFERENCE_POINT_BYTES * args.reference_n, "--reference-n",
                     args.reference_n, "for exact W1 between that many points per side",
                     budget)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def widths_arg(text: str) -> int | tuple[int, ...]:
    """An argparse ``type`` for --hidden: one whole number >= 0 (the width of three layers;
    0: Korotin et al.'s), or comma-separated widths >= 1 such as 1024,256,256 (checked as
    ``otdiv audit --hidden`` checks them)."""
    if "," not in text:
        return int_arg(0)(text)
    from otdiv.audit.settings import check_setting

    try:
        return check_setting("hidden", text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected one width or comma-separated widths >= 1 such as 1024,256,256, "
            f"got {text!r}") from None


def hidden_for(option: int | tuple[int, ...] | None, dim: int) -> tuple[int, ...]:
    """--hidden: None -> the recommended widths for d (``recommended_hidden``), 0 ->
    max(2 d, 128) (Korotin et al.), an int -> three layers of that width, a tuple -> those
    widths."""
    from otdiv.audit.models import recommended_hidden

    if option is None:
        return recommended_hidden(dim)
    if isinstance(option, tuple):
        return option
    return (option or max(2 * dim, 128),) * 3


def reference(label: str, toy, args):
    """The paper toy's reference W1 (:func:`otdiv.audit.toys.reference_w1`, --reference-n
    points per side, --reference-repeats draws), or None: a closed form, or
    --reference-n 0."""
    if toy.w1 is not None or args.reference_n == 0:
        return None
    from otdiv.audit.toys import REFERENCE_SEED, reference_w1

    t0 = time.perf_counter()
    ref = reference_w1(toy, n=args.reference_n, repeats=args.reference_repeats,
                       seed=REFERENCE_SEED)
    print(f"reference W1 of {label}: {ref.value:.4f} ± {ref.se:.4f} (mean exact W1 of "
          f"{len(ref.values)} draws of {ref.n} points per side, ± its standard error; "
          f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return ref
