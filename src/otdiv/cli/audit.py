"""``otdiv audit`` and ``otdiv demo``: train or load a WGAN critic, audit it against exact W1.

This module parses and prints; the audit itself is :func:`otdiv.audit.run.run_audit`, which
takes the parsed options as :class:`~otdiv.audit.settings.AuditSettings` (the same names) and
names them in its errors as they are spelled here (``--batch-size``). ``otdiv demo`` is the
audit parser run on preset arguments (``DEMO_ARGS``).
"""

from __future__ import annotations

import argparse
import sys

from otdiv.cli._common import add_command, float_arg, int_arg, one_line

MAX_STEPS = 10**9  # otdiv.audit.recipe.MAX_STEPS (not imported: --help stays light)
# the defaults below are AuditSettings' (tests/test_cli_audit.py checks that they agree)


def _beta(text: str) -> float | str | None:
    if text in ("auto", "none", "relu"):
        return None if text != "auto" else "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'auto' or 'none', got {text!r}") \
            from None


def option(name: str) -> str:
    """How the command line spells a setting of AuditSettings: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def settings(args):
    """The :class:`~otdiv.audit.settings.AuditSettings` of parsed ``otdiv audit`` options."""
    from dataclasses import fields

    from otdiv.audit.settings import AuditSettings

    return AuditSettings(**{f.name: getattr(args, f.name) for f in fields(AuditSettings)})


def _print_summary(run) -> None:
    import math

    print(run.table)
    audit = run.audit
    if audit.certified_lower is not None:
        print(f"certified lower bound on exact W1: {audit.certified_lower:.4f} "
              f"(gap to exact W1 {audit.exact_w1 - audit.certified_lower:.4f})")
    if audit.normalized_estimate is not None:
        print(f"gradient-normalised estimate: {audit.normalized_estimate:.4f} = estimate / "
              f"{audit.grad_norm:.3f}, the mean |grad f| along the exact OT segments "
              f"(at most exact W1, up to the sampling of t)")
    sweep = run.sweep
    if sweep is not None:
        print()
        print(f"parallel lines (W1 = |theta|, JSD = log 2 = {math.log(2):.4f} for theta != 0)")
        print(f"{'theta':>7} {'W1 est':>8} {'W1 exact':>9} {'JSD est':>8}")
        for t, w, e, j in zip(sweep.theta, sweep.w1_estimate, sweep.w1_exact,
                              sweep.jsd_estimate, strict=True):
            print(f"{t:>7.2f} {w:>8.4f} {e:>9.4f} {j:>8.4f}")
    print()
    print(f"report: {run.report}")
    print(f"table:  {run.out / 'report.md'}")
    if run.critic_file is not None:
        print(f"critic: {run.critic_file}")


_NO_MPL = ("plots skipped: matplotlib is not installed "
           "(pip install -e '.[plot]' from the clone)")


def _audit(args) -> int:
    """Run the audit (otdiv.audit.run), print the summary (already on disk), draw the plots,
    then the verdict; 0 unless a plot fails (2, with one line on stderr: the results are on
    disk)."""
    from otdiv.audit.run import draw_plots, run_audit

    run = run_audit(settings(args), label=option)
    _print_summary(run)
    code = 0
    if not args.no_plots:
        try:
            plots = draw_plots(run)
        except Exception as exc:
            print(f"otdiv audit: error: plotting failed ({type(exc).__name__}: "
                  f"{one_line(exc)}); report.json, report.md and the critic are written",
                  file=sys.stderr)
            code = 2
        else:
            if plots is None:
                print(_NO_MPL, file=sys.stderr)
            for p in plots or []:
                print(f"plot:   {p}")
    print(f"verdict: {run.verdict.message}")
    return code


# `otdiv demo` is `otdiv audit` with these options (a later value replaces an earlier one),
# parsed by the audit's own parser, so every audit option has its value in the demo too
DEMO_ARGS = {"--toy": "8gaussians", "--constraint": "gp", "--steps": "1200",
             "--hidden": "64,64,64", "--softplus-beta": "none", "--lr": "2e-3",
             "--schedule": "constant", "--n": "2000",
             "--repeats": "3", "--sweep": None, "--thetas": "-1,-0.5,0,0.5,1",
             "--sweep-steps": "200"}
DEMO_QUICK = {"--steps": "400", "--hidden": "32,32", "--n": "400", "--repeats": "1",
              "--thetas": "0,1", "--sweep-steps": "100"}


def demo_argv(args) -> list[str]:
    """The ``otdiv audit`` arguments that ``otdiv demo`` (with its options ``args``) runs."""
    opts = {**DEMO_ARGS, **(DEMO_QUICK if args.quick else {})}
    if args.steps is not None:
        opts["--steps"] = str(args.steps)
    opts.update({"--device": args.device, "--out": args.out, "--seed": str(args.seed)})
    opts.update({"--no-progress": None} if args.no_progress else {})
    opts.update({"--no-plots": None} if args.no_plots else {})
    # "--thetas=-1,..." so that a negative first value is not read as an option
    argv: list[str] = []
    for key, value in opts.items():
        argv += [key] if value is None else [f"{key}={value}"]
    return argv


def audit_parser():
    """A stand-alone parser of ``otdiv audit``'s options (the demo parses with it)."""
    from otdiv.cli._common import Parser

    parser = Parser(prog="otdiv audit")
    add_audit_arguments(parser)
    return parser


def _demo(args) -> int:
    ns = audit_parser().parse_args(demo_argv(args))
    print(f"otdiv demo: train a WGAN-GP critic (lambda 10) on the 8 Gaussians of the WGAN-GP "
          f"paper against the same set plus N(0, I)\nnoise, audit it against exact W1 on "
          f"held-out samples, then run the parallel-lines sweep (critic W1 vs\ndiscriminator "
          f"JSD). Adam lr 2e-3 (the published 1e-4 needs far more steps than a 2-minute "
          f"budget).\nThe same as: otdiv audit {' '.join(demo_argv(args))}\n", flush=True)
    return _audit(ns)


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from None
    return values


_NO_PROGRESS = ("no progress: by default a bar on stderr when it is a terminal, a line every "
                "10 s otherwise")


def add_audit_arguments(audit) -> None:
    """The options of ``otdiv audit`` (choices spelled out: --help imports nothing heavy)."""
    toys = ["8gaussians", "25gaussians", "swissroll", "translate", "scale", "lines",
            "funnels"]
    src = audit.add_argument_group("data")
    src.add_argument("--toy", choices=toys, help="a toy problem with known W1")
    src.add_argument("--dim", type=int_arg(1), default=2,
                     help="dimension of translate, scale and funnels (2)")
    src.add_argument("--funnels", type=int_arg(1), default=16, metavar="K",
                     help="funnels: the number K of cones of the MinFunnel pair, whose W1 "
                     "is 1 in any dimension (16)")
    src.add_argument("--funnel-seed", type=int_arg(0), default=None, metavar="S",
                     help="funnels: the seed of the apexes' draw (default: --seed, so that "
                     "each seed is another pair; 0: the pairs of otdiv benchmark-critics); "
                     "other toys ignore it, so that a sweep grid can fix it across toys")
    src.add_argument("--theta", type=float_arg(), default=0.5, help="theta of lines (0.5)")
    src.add_argument("--real", help="samples of P, .npy (no pickle) or .csv, shape (n, d)")
    src.add_argument("--fake", help="samples of Q, same format and dimension")
    src.add_argument("--critic", help="a critic checkpoint (save_critic or an nn.Sequential "
                     "state dict), loaded with weights_only=True")
    tr = audit.add_argument_group("training")
    tr.add_argument("--constraint", choices=["clip", "gp", "lp", "spectral"], default="lp",
                    help="the Lipschitz constraint (lp: the one-sided penalty)")
    tr.add_argument("--steps", type=int_arg(1, MAX_STEPS), default=12000,
                    help="critic steps (12000)")
    tr.add_argument("--batch-size", type=int_arg(1), default=256,
                    help="samples per side and step (256)")
    tr.add_argument("--hidden", default="auto",
                    help="hidden widths, e.g. 96,96,96; auto (default): 96,96,96 below d = 8, "
                    "3 x max(256, 2d) up to 1024, first layer 1024 from d = 16 on "
                    "(docs/critic_benchmark.md)")
    tr.add_argument("--softplus-beta", type=_beta, default="auto", metavar="BETA",
                    help="Softplus(BETA) activations instead of ReLU (a ReLU rounded over "
                    "1/BETA); 'none' for ReLU; auto (default): 30, the recommended critic "
                    "(docs/critic_benchmark.md)")
    tr.add_argument("--lr", type=float_arg(0, strict=True), default=None,
                    help="learning rate in (0, 1] (default: 2e-3; clip: the published 5e-5)")
    tr.add_argument("--lambda-gp", type=float_arg(0), default=10.0,
                    help="penalty weight (10)")
    tr.add_argument("--schedule", choices=["constant", "cosine"], default=None,
                    help="learning rate: cosine decay to 0 (default) or constant (default "
                    "for clip)")
    tr.add_argument("--optimizer", choices=["adam", "rmsprop", "muon"], default=None,
                    help="muon: Muon for the hidden weight matrices, Adam for the rest "
                    "(torch >= 2.9); default: muon for lp (adam on an older torch), the "
                    "published one otherwise: RMSProp for clip, Adam for gp and spectral "
                    "(docs/critic_benchmark.md)")
    tr.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                    help="bfloat16: each training step's passes under torch.autocast "
                    "(bfloat16 products, float32 weights): 0.43-0.64 x the time a step of "
                    "a (1024, 256, 256) critic on a CPU with AMX or AVX512-BF16, slower for "
                    "small critics and on other CPUs; the audit and the lines sweep stay "
                    "float32 (default: float32)")
    tr.add_argument("--save-critic", metavar="FILE", help="write the trained critic to FILE "
                    "(default: critic.pt in --out), checked before training")
    au = audit.add_argument_group("audit")
    au.add_argument("--n", type=int_arg(2), default=2000,
                    help="held-out samples per side (2000)")
    au.add_argument("--n-estimate", type=int_arg(2), default=None,
                    help="held-out samples per side of the OT-free estimates (default: --n; "
                    "they cost O(n), so 50000 is cheap and cuts their sampling error)")
    au.add_argument("--repeats", type=int_arg(1, 1000), default=3, help="held-out draws (3)")
    au.add_argument("--sweep", action="store_true", help="also run the parallel-lines sweep")
    au.add_argument("--thetas", type=_float_list, default=(-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0))
    au.add_argument("--sweep-steps", type=int_arg(1, MAX_STEPS), default=300,
                    help="critic and discriminator steps per theta of the sweep (300)")
    _add_run_options(audit, "otdiv-report")


def _add_run_options(parser, out: str) -> None:
    """The options that say where and how a run goes (the audit's and the demo's)."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--seed", type=int_arg(0), default=0, help="seed (0)")
    parser.add_argument("--out", default=out, help=f"output directory ({out})")
    parser.add_argument("--no-progress", action="store_true", help=_NO_PROGRESS)
    parser.add_argument("--no-plots", action="store_true", help="no PNG plots")


def register(sub) -> None:
    audit = add_command(
        sub, "audit", _audit,
        "train (or load) a WGAN critic and audit it against exact W1",
        "Train a WGAN critic on a toy problem (--toy) or on your samples (--real/--fake), or "
        "load one (--critic), then compare its estimate E_P f - E_Q f with exact W1 on "
        "held-out samples. Writes the critic, report.json, report.md and PNG plots to --out.")
    add_audit_arguments(audit)

    demo = add_command(
        sub, "demo", _demo,
        "a short audit (under 2 minutes on a 2-core CPU; --quick: seconds)",
        "otdiv audit on the 8 Gaussians with a WGAN-GP critic, plus the parallel-lines "
        "sweep; it prints the equivalent otdiv audit command.")
    demo.add_argument("--quick", action="store_true",
                      help="a run of a few seconds (a smaller critic, fewer steps and points)")
    demo.add_argument("--steps", type=int_arg(1, MAX_STEPS), default=None,
                      help="critic steps (1200; 400 with --quick)")
    _add_run_options(demo, "otdiv-report/demo")
