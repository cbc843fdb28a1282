"""``otdiv benchmark-critics``: which W1 estimate of a trained critic to quote.

For each problem × constraint × seed: train a critic (:func:`otdiv.audit.train_critic`),
audit it on held-out samples (:func:`otdiv.audit.audit_critic`, with the training λ and
the penalty's kind) and print one markdown row: the raw estimate, the OT-free corrections
of :mod:`otdiv.audit.estimators` (slope-, penalty-, c-transform- and flow-corrected), the
gradient-normalised estimate (needs exact OT: a diagnostic), the envelope certificate,
exact W1 between the samples, the population W1 (the truth, below), each estimate's error
against it, the certificate / exact W1, with ``--population`` the held-out envelope bound
on the population W1 (:mod:`otdiv.audit.population`; a critic that allows none, whose
gradient vanishes say, leaves those cells empty, with a note on stderr and the reason in
its JSON row), and wall seconds. A row that fails (training that diverges, say) ends the
run with one line naming it; the rows before it are written.

Problems: ``8gaussians``, ``25gaussians``, ``swissroll``, ``translate:D``, ``scale:D``,
``funnels:D:K``, ``funnels:all`` (the 28 settings of Korotin et al. 2022). Default critic:
the recommended one — LP, Softplus(30), 3 × 96 for d < 8, 3 × max(256, 2d) from
d = 8 on, the first layer 1024 wide from d = 16 on
(:func:`otdiv.audit.models.recommended_hidden`), lr 2e-3 with a cosine schedule, Muon for
the hidden weight matrices and Adam for the rest (Adam alone on torch < 2.9). ``--device
auto`` trains and audits on CUDA when present. The OT-free estimates are read on
``--n-estimate`` points per side (default 50,000: their sampling error is then a fifth of
that at the ``--n`` = 2000 points of exact W1 and the envelope).

The truth is the population W1: its closed form (translate, scale, funnels), or for the
paper toys, which have none, a **reference**: the mean exact W1 between ``--reference-n``
fresh points per side (default 20,000) over ``--reference-repeats`` draws (default 4),
computed once per problem and printed with its standard error. Exact W1 of a row's own
``--n`` = 2000 held-out points (``--reference-n 0``, the truth before 2026-12-05) scatters
by ±1–2 % from draw to draw on the paper toys — the 25 Gaussians' mixture weights
fluctuate by √(25 / n) — which is half the 3 % the estimates are held to.

``--json FILE`` holds the rows, written after each one, each with its ``settings`` (what
decides its numbers: :func:`otdiv.cli._critic_files.settings`); a run resumes from it: a
row already there with the same settings is read back instead of trained again (with
``--save-critics DIR``, only if DIR still holds the critic it audited), and rows of other
settings are kept, also those another run writes to the same file meanwhile
(:mod:`otdiv.cli._rows`). Repeated problems, constraints or seeds run once. The problems
are read by :mod:`otdiv.cli._critic_problems`, a row's files are named and written by
:mod:`otdiv.cli._critic_files`.
Progress goes to stderr (a bar on a terminal, a line every 10 s in a log; ``--no-progress``).

Also runnable as ``python -m otdiv.cli.benchmark_critics [options]``.
"""

from __future__ import annotations

import os
import sys
import time

from otdiv.cli._common import CLIError, float_arg, int_arg, one_line
from otdiv.cli._critic_files import (
    critic_path,
    drop_state,
    reusable,
    save,
    settings,
    state_path,
    write,
)
from otdiv.cli._critic_problems import (
    DEFAULT_PROBLEMS,
    MAX_REFERENCE_REPEATS,
    problem,
    reference,
    widths_arg,
)
from otdiv.cli.audit import MAX_STEPS

PENALTIES = ("gp", "lp")  # the constraints trained with a gradient penalty (--penalty-batch)
CHECKPOINT_SECONDS = 300.0  # --json: a row's training state saved this often (resume)
COLUMNS = ("problem", "constraint", "seed", "raw", "slope-corr.", "penalty-corr.",
           "c-transf.-corr.", "flow-corr.", "/G (OT)", "envelope cert.", "exact W1 (samples)",
           "population W1", "err raw", "err slope", "err penalty", "err c-transf.",
           "err flow", "err /G", "cert / exact", "pop. cert.", "pop. cert. / W1", "s")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else ""


def _pct(v) -> str:
    return "" if v is None or v != v else f"{100 * v:+.1f} %"


def row(label: str, toy, constraint: str, seed: int, args, ref, chosen: dict,
        state: str | None = None) -> tuple[str, dict, object]:
    """Train, audit, and format one row: (markdown, JSON record, critic); ``ref``: the
    problem's reference W1 (:func:`otdiv.cli._critic_problems.reference`), the truth where
    there is no closed form (None: a closed form); ``chosen``: the row's settings
    (:func:`otdiv.cli._critic_files.settings`); ``state``: where its training state is kept
    while it trains (:func:`otdiv.cli._critic_files.state_path`), or None."""
    from otdiv.audit import audit_critic, train_critic

    t0 = time.perf_counter()
    if args.load_critics:
        from otdiv.audit.checkpoint import load_critic

        critic = load_critic(chosen["critic"])
        flushed = None
    else:
        if state is not None:  # a row stopped mid-training goes on from its last state
            os.makedirs(os.path.dirname(state), exist_ok=True)
        trained = train_critic(toy.sample_real, toy.sample_fake, constraint=constraint,
                              steps=args.steps, batch_size=args.batch_size,
                              penalty_batch=args.penalty_batch
                              if constraint in PENALTIES else None,
                              hidden=tuple(chosen["hidden"]),
                              softplus_beta=chosen["softplus_beta"], lr=chosen["lr"],
                              optimizer=chosen["optimizer"],
                              lambda_gp=args.lambda_gp, schedule=args.schedule,
                              device=args.device, seed=seed,
                              progress=False if args.no_progress else None,
                              precision=args.precision, checkpoint=state,
                              checkpoint_seconds=CHECKPOINT_SECONDS)
        critic, flushed = trained.critic, trained.settings["subnormals_flushed"]
    lam = chosen["lambda_gp"]
    truth = toy.w1 if ref is None else ref.value
    a = audit_critic(critic, toy.sample_real, toy.sample_fake, n=args.n,
                     n_estimate=args.n_estimate, repeats=2,
                     w1=truth, lambda_gp=lam, lipschitz=False, device=args.device,
                     penalty="two-sided" if constraint == "gp" else "one-sided",
                     seed=seed + 1000)
    pop = pop_error = None
    if args.population:  # a bound this critic does not allow leaves its cells empty
        from otdiv.audit.population import critic_population_bound

        try:
            pop = critic_population_bound(critic, toy.sample_real, toy.sample_fake,
                                          n=args.n, n_test=2 * args.n, seed=seed + 2000)
        except (ValueError, FloatingPointError) as exc:
            pop_error = one_line(exc) or type(exc).__name__
    sec = time.perf_counter() - t0
    if args.load_critics:  # the checkpoint's training settings are not recorded in it
        record = {"problem": label, "constraint": constraint, "seed": seed,
                  "critic": chosen["critic"]}
    else:
        record = {key: chosen[key] for key in (
            "problem", "constraint", "seed", "steps", "batch_size", "penalty_batch", "hidden",
            "softplus_beta", "lr", "optimizer", "schedule", "precision") if key in chosen}
    record.update(**a.to_dict(), row_seconds=sec)
    if ref is not None:  # the truth (a.closed_form_w1) is this reference, not a closed form
        record.update(reference_w1=ref.value, reference_w1_se=ref.se,
                      reference_n=ref.n, reference_values=list(ref.values))
    if pop is not None:
        record.update(population_value=pop.value, population_se=pop.se,
                      population_lower=pop.lower, population_scale=pop.scale)
    if pop_error is not None:  # why the pop. cells are empty (note())
        record["population_error"] = pop_error
    if flushed is not None:  # how it ran, not what decides its numbers: not in settings
        record["subnormals_flushed"] = flushed
    record["settings"] = chosen
    return line(record), record, critic


def note(record: dict) -> str | None:
    """The note printed on stderr under a row whose population bound could not be computed
    (``--population``; the reason is the row's ``population_error``), else None."""
    reason = record.get("population_error")
    if reason is None:
        return None
    return (f"note: {record['problem']}, {record['constraint']}, seed {record['seed']}: no "
            f"population bound (--population): {reason}; its pop. cells are empty")


def line(record: dict) -> str:
    """The markdown row of a JSON record (a fresh one, or one read back from ``--json``)."""
    def num(key: str) -> float:  # JSON holds nan and inf as strings
        value = record.get(key)
        return float("nan") if value is None else float(value)

    def cell(key: str) -> str:
        return "" if record.get(key) is None else f"{num(key):.4f}"

    def pct(key: str) -> str:
        return "" if record.get(key) is None else _pct(num(key))

    truth = record.get("closed_form_w1")
    if record.get("reference_w1") is not None:
        truth_cell = f"{record['reference_w1']:.4f} ± {record['reference_w1_se']:.4f} (ref.)"
    else:
        truth_cell = "" if truth is None else f"{float(truth):.4f}"
    pop = record.get("population_value")
    cells = (record["problem"], record["constraint"], str(record["seed"]), cell("estimate"),
             cell("slope_corrected"), cell("penalty_corrected"), cell("ctransform_corrected"),
             cell("flow_corrected"), cell("normalized_estimate"), cell("envelope_lower"),
             cell("exact_w1"), truth_cell,
             *(pct(f"rel_error{key}") for key in ("", "_slope_corrected", "_penalty_corrected",
                                                  "_ctransform_corrected",
                                                  "_flow_corrected", "_normalized")),
             _ratio(num("envelope_lower"), num("exact_w1")),
             "" if pop is None else f"{pop:.4f} ± {record['population_se']:.4f}",
             "" if pop is None or truth is None else f"{pop / float(truth):.3f}",
             f"{record['row_seconds']:.0f}")
    return "| " + " | ".join(cells) + " |"


def _seeds(text: str) -> list[int]:
    """--seeds: comma-separated whole numbers in [0, 2**63 - 2**20) (``check_seed``), at
    least one, repeats once."""
    from otdiv._array import SEED_RANGE, check_seed

    try:
        seeds = list(dict.fromkeys(int(s) for s in text.split(",") if s.strip()))
    except ValueError:
        raise CLIError(f"--seeds must be whole numbers, got {text!r}") from None
    if not seeds:
        raise CLIError(f"--seeds names no seed, got {text!r}")
    for seed in seeds:
        try:
            check_seed(seed, "--seeds")
        except ValueError:
            raise CLIError(f"--seeds must be whole numbers in {SEED_RANGE}, got {seed}") \
                from None
    return seeds


def _check_options(args) -> None:
    """The options the rows pass to train_critic and audit_critic, checked as those check
    them but named as the command spells them, before any work."""
    from otdiv._files import out_dir
    from otdiv.audit.models import check_softplus_beta, resolve_device
    from otdiv.audit.optimizers import check_lr
    from otdiv.audit.recipe import check_precision

    try:
        device = resolve_device(args.device)  # its message says "device"
    except ValueError as exc:
        raise CLIError(f"--device: {exc}") from None
    check_lr(args.lr, "--lr")
    if args.load_critics and args.precision != "float32":
        raise CLIError("--precision applies to training; --load-critics audits saved "
                       "critics (float32) instead")
    check_precision(args.precision, device, "--precision")
    if args.softplus_beta:
        check_softplus_beta(args.softplus_beta, "--softplus-beta")
    if args.save_critics:  # a folder it can write in, before any row trains
        folder = out_dir(args.save_critics, "--save-critics")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise CLIError(f"--save-critics: cannot write in {folder}")


def check_saved_critic(folder: str, label: str, dim: int, constraint: str, seed: int) -> None:
    """--load-critics: the row's checkpoint is a file that loads as a critic
    (:func:`otdiv.audit.checkpoint.load_critic`, weights only) and scores d-dimensional
    samples, or a one-line error naming the option and the row (a cheap check: the critic
    is loaded again when its row runs)."""
    path = critic_path(folder, label, constraint, seed)
    if not os.path.exists(path):
        raise CLIError(f"--load-critics: no saved critic {path} for {label}, {constraint}, "
                       f"seed {seed}")
    import torch

    from otdiv.audit.checkpoint import load_critic
    from otdiv.audit.models import check_applies

    try:
        check_applies(load_critic(path), dim, torch.float32, torch.device("cpu"))
    except ValueError as exc:
        raise CLIError(f"--load-critics: the saved critic of {label}, {constraint}, seed "
                       f"{seed} (d = {dim}): {exc}") from None


def _run(args) -> int:
    from otdiv.audit import CONSTRAINTS

    _check_options(args)  # before any toy is built or any reference computed
    specs = []
    for p in args.problems.split(","):
        if p.strip() == "funnels:all":  # the 28 settings of Korotin et al. 2022
            from otdiv.audit.funnels import FUNNEL_SETTINGS

            specs += [f"funnels:{d}:{k}" for d, k in FUNNEL_SETTINGS]
        elif p.strip():
            specs.append(p)
    if not specs:
        raise CLIError(f"--problems names no problem, got {args.problems!r}")
    problems = list({label: (label, toy) for label, toy in
                     (problem(spec, args) for spec in specs)}.values())
    constraints = list(dict.fromkeys(c.strip() for c in args.constraints.split(",")
                                     if c.strip()))
    if not constraints:
        raise CLIError(f"--constraints names no constraint, got {args.constraints!r}")
    for c in constraints:
        if c not in CONSTRAINTS:
            raise CLIError(f"--constraints: unknown constraint {c!r}; use {CONSTRAINTS}")
    seeds = _seeds(args.seeds)
    if args.reference_n == 1:
        raise CLIError("--reference-n must be 0 (none) or at least 2, got 1")
    if args.penalty_batch is not None and args.penalty_batch > args.batch_size and \
            any(c in PENALTIES for c in constraints):  # clip and spectral have no penalty
        raise CLIError(f"--penalty-batch must be at most --batch-size = {args.batch_size} "
                       f"(the penalty's interpolates are drawn between the batch's pairs), "
                       f"got {args.penalty_batch}")
    earlier = []
    if args.json:  # readable rows and a writable place, before anything trains
        from otdiv._files import writable_file
        from otdiv.cli._rows import read_rows

        earlier = read_rows(args.json)
        writable_file(args.json, "--json")
    if args.load_critics:  # every checkpoint is there and fits before the first row runs
        for label, toy in problems:
            for constraint in constraints:
                for seed in seeds:
                    check_saved_critic(args.load_critics, label, toy.dim, constraint, seed)
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS), flush=True)
    records, total, reused = [], len(problems) * len(constraints) * len(seeds), 0
    for label, toy in problems:
        ref = None
        for constraint in constraints:
            for seed in seeds:
                chosen = settings(label, constraint, seed, args, toy)
                done = next((r for r in earlier if r.get("settings") == chosen
                             and reusable(r, chosen, args)), None)
                critic = state = None
                if done is not None:  # recorded by an earlier run with these settings
                    record, reused = done, reused + 1
                    try:
                        text = line(done)
                    except (KeyError, TypeError, ValueError) as exc:
                        raise CLIError(
                            f"--json: the row of {label}, {constraint}, seed {seed} in "
                            f"{args.json} is damaged ({type(exc).__name__}: {exc}); delete "
                            "that row or name another file") from None
                else:
                    if ref is None:
                        ref = reference(label, toy, args)
                    if not args.no_progress:
                        print(f"row {len(records) + 1}/{total}: {label}, {constraint}, "
                              f"seed {seed}", file=sys.stderr, flush=True)
                    state = (state_path(args.json, chosen, args.device)
                             if args.json and not args.load_critics else None)
                    try:
                        text, record, critic = row(label, toy, constraint, seed, args, ref,
                                                   chosen, state)
                    except (ValueError, FloatingPointError) as exc:  # name the row
                        kept = f"; the {len(records)} rows before it are in {args.json}" \
                            if args.json and records else ""
                        raise CLIError(f"{label}, {constraint}, seed {seed}: "
                                       f"{one_line(exc)}{kept}") from None
                print(text, flush=True)
                if note(record) is not None:  # why its population cells are empty
                    print(note(record), file=sys.stderr, flush=True)
                records.append(record)
                write(records, args)  # the row first: a failed save below cannot lose it
                if critic is not None and args.save_critics:
                    save(critic, record, args)
                    write(records, args)
                if critic is not None and state is not None:
                    drop_state(state)
    if reused:
        print(f"{reused} of {total} rows read back from {args.json} (recorded with the same "
              "settings); delete it or name another file to run them again",
              file=sys.stderr, flush=True)
    return 0


DESCRIPTION = (
    "For each problem x constraint x seed: train a WGAN critic (or read one back, "
    "--load-critics), audit it on held-out samples and print one markdown row: its raw W1 "
    "estimate, the OT-free corrections (slope-, penalty-, c-transform- and flow-corrected), "
    "the gradient-normalised estimate, the envelope certificate, exact W1 between the "
    "samples, the population W1 (the closed form, or for the paper toys a reference of "
    "large samples), each estimate's error against it and, with --population, a held-out "
    "bound on the population W1. --json keeps the rows and resumes a run; "
    "docs/critic_benchmark.md reads the results.")


def register(sub) -> None:
    p = sub.add_parser("benchmark-critics",
                       help="train critics and compare their OT-free W1 estimates",
                       description=DESCRIPTION)
    p.add_argument("--problems", default=DEFAULT_PROBLEMS,
                   help="comma-separated: 8gaussians, 25gaussians, swissroll, translate:D, "
                   "scale:D, funnels:D:K, funnels:all (the 28 settings of Korotin et al.) "
                   "(default: %(default)s)")
    p.add_argument("--constraints", default="lp",
                   help="comma-separated, of clip, gp, lp (the one-sided penalty) and "
                   "spectral (default: lp)")
    p.add_argument("--seeds", default="0",
                   help="comma-separated whole numbers in [0, 2**63 - 2**20) (default: 0)")
    p.add_argument("--steps", type=int_arg(1, MAX_STEPS), default=12_000,
                   help="training steps (default: %(default)s, as otdiv audit; at d >= 16 the "
                   "critic's alignment with the transport still improves beyond, "
                   "docs/critic_benchmark_history.md)")
    p.add_argument("--batch-size", type=int_arg(1), default=256,
                   help="samples of each side per step (default: 256)")
    p.add_argument("--penalty-batch", type=int_arg(1), default=None,
                   help="random interpolates of the gradient penalty per step (gp and lp; "
                   "clip and spectral have no penalty and ignore it), at most --batch-size: "
                   "they are drawn between the batch's pairs (default: --batch-size)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="cosine",
                   help="learning-rate schedule (default: cosine)")
    p.add_argument("--hidden", type=widths_arg, default=None,
                   help="width of the 3 layers, or comma-separated widths (e.g. 1024,256,256); "
                   "0: max(2 d, 128), as Korotin et al.; default: the recommended 96 for "
                   "d < 8, max(256, 2 d) up to 1024 from d = 8 on, first layer 1024 from "
                   "d = 16 on")
    p.add_argument("--softplus-beta", type=float_arg(0.0), default=30.0,
                   help="β of the Softplus activation, at most 3.4e38 (the critic computes "
                   "in float32); 0 for ReLU (default: 30)")
    p.add_argument("--lr", type=float_arg(0.0, strict=True), default=2e-3,
                   help="learning rate in (0, 1] (default: %(default)s, with --schedule; "
                   "clip keeps the published 5e-5)")
    p.add_argument("--optimizer", choices=("auto", "adam", "muon"), default="auto",
                   help="muon: Muon for the hidden weight matrices, Adam for the rest; auto "
                   "(default): muon for lp (adam on torch < 2.9), adam for gp and spectral; "
                   "clip keeps the published RMSProp")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: each training step's passes under torch.autocast "
                   "(bfloat16 products, float32 weights): 0.43-0.64 x the time a step of "
                   "the benchmark's critics on a CPU with AMX or AVX512-BF16 (slower on "
                   "other CPUs and for small critics; docs/critic_benchmark.md); the audit "
                   "stays float32 (default: float32)")
    p.add_argument("--lambda-gp", type=float_arg(0.0), default=10.0,
                   help="weight λ of the gradient penalty of gp and lp, also given to the "
                   "audit's penalty-corrected estimate (default: %(default)s)")
    p.add_argument("--n", type=int_arg(2), default=2000,
                   help="held-out points per side of exact W1 and the envelope (default: "
                   "%(default)s)")
    p.add_argument("--n-estimate", type=int_arg(2), default=50_000,
                   help="held-out points per side of the OT-free estimates (raw, slope-, "
                   "penalty- and flow-corrected; default: %(default)s)")
    p.add_argument("--reference-n", type=int_arg(0), default=20_000,
                   help="the truth of the paper toys (no closed form): mean exact W1 between "
                   "this many fresh points per side, once per problem (default: %(default)s, "
                   "at most 524288, the memory budget of 4 GiB; 0: exact W1 of each row's "
                   "--n held-out points)")
    p.add_argument("--reference-repeats", type=int_arg(2, MAX_REFERENCE_REPEATS), default=4,
                   help=f"draws of the reference, for its standard error: 2 to "
                   f"{MAX_REFERENCE_REPEATS} (default: %(default)s)")
    p.add_argument("--population", action="store_true",
                   help="also the held-out envelope bound on the population W1 "
                   "(otdiv.audit.population; n anchors per side and their descent paths, "
                   "2 n validation and 2 n test points per side); a row whose critic "
                   "allows no bound (a vanishing gradient) leaves these cells empty, with a "
                   "note on stderr and the reason in its JSON row (population_error)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--json", default=None,
                   help="also write the rows to this JSON file, after every row; rows it "
                   "already holds with the same settings are read back, not run again "
                   "(resume), and its other rows are kept. A row's training state is saved "
                   "every 5 minutes in the folder JSON.training/ (the file removed once the "
                   "row is written), so a row stopped mid-training goes on from there when "
                   "run again")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress on stderr (default: a bar on a terminal, else a line "
                   "every 10 s)")
    p.add_argument("--save-critics", default=None, metavar="DIR",
                   help="also save each trained critic (otdiv.audit.checkpoint) in DIR")
    p.add_argument("--load-critics", default=None, metavar="DIR",
                   help="audit the critics saved by --save-critics in DIR instead of "
                   "training (the training options are then unused)")
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """``otdiv benchmark-critics ARGV``: the same parser, errors and exit codes."""
    from otdiv.cli import main as otdiv_main

    return otdiv_main(["benchmark-critics", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
