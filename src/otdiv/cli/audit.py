"""``otdiv audit`` and ``otdiv demo``: train or load a WGAN critic, audit it against exact W1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otdiv.cli._common import CLIError, _out_dir, float_arg, int_arg, load_array, one_line

MAX_STEPS = 10**9  # otdiv.audit.train.MAX_STEPS (not imported: --help stays light)


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise CLIError(f"--hidden must be comma-separated widths such as 256,256,256, "
                       f"got {text!r}") from None
    if not widths or min(widths) < 1:
        raise CLIError(f"--hidden widths must be >= 1, got {text!r}")
    return widths


def _run_restoring_threads(args) -> dict:
    """_run_audit with torch's thread count restored afterwards (main() may be called
    in-process). Training picks its threads itself (train_critic's threads="auto"); the
    audit of a small MLP runs on one CPU thread for the same reason."""
    import torch

    before = torch.get_num_threads()
    try:
        return _run_audit(args)
    finally:
        torch.set_num_threads(before)


def _set_threads(device) -> None:
    import torch

    # the critics here are small MLPs: extra intra-op threads gain little, and on a busy
    # CPU they wait on each other (docs/benchmarks.md, "Critic training threads")
    if device.type == "cpu":
        torch.set_num_threads(1)


PAPER_TOYS = ("8gaussians", "25gaussians", "swissroll")


def recipe(args) -> tuple[float | None, float | None, str]:
    """(softplus β, lr, schedule) after resolving "auto": the recipe of docs/audit.md.

    β = 30 on the paper toys (clusters and a thin curve that the transport converges on),
    ReLU (None) elsewhere; lr 2e-3 with a cosine decay for gp, lp and spectral, and the
    published constant RMSProp 5e-5 (lr None) for clip.
    """
    beta = args.softplus_beta
    if beta == "auto":
        beta = 30.0 if args.toy in PAPER_TOYS else None
    clip = args.constraint == "clip"
    lr = args.lr if args.lr is not None else (None if clip else 2e-3)
    schedule = args.schedule if args.schedule is not None else \
        ("constant" if clip else "cosine")
    return beta, lr, schedule


def _beta(text: str) -> float | str | None:
    if text in ("auto", "none", "relu"):
        return None if text != "auto" else "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'auto' or 'none', got {text!r}") \
            from None


def _split(points, rng):
    """Half of the points (shuffled) to train on, the other half held out for the audit."""
    idx = rng.permutation(len(points))
    half = len(points) // 2
    return points[idx[:half]], points[idx[half:]]


def _writable(path: str, name: str) -> Path:
    """``path`` as a file this process can write, checked before any training: a directory,
    a missing parent folder or a place without write permission is a CLIError."""
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{name}: {path} is a directory; give a file name such as critic.pt")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as exc:
        raise CLIError(f"{name}: cannot write {path}: {exc.strerror or exc}") from None
    if not existed:
        p.unlink()
    return p


def _run_audit(args) -> dict:
    """Train (or load) a critic, audit it, write report.json, report.md and the critic.

    Everything that costs training time is on disk before any plot is drawn: the critic
    right after training, report.json after training, after the audit and after the sweep.
    """
    import time

    import numpy as np

    from otdiv._array import check_seed
    from otdiv.audit.critic import audit_critic, check_pair, lines_sweep
    from otdiv.audit.report import audit_row, table, write_json
    from otdiv.audit.toys import make_toy
    from otdiv.audit.train import (
        check_lr,
        check_softplus_beta,
        load_critic,
        resolve_device,
        save_critic,
        train_critic,
    )
    from otdiv.audit.verdict import verdict

    if (args.toy is None) == (args.real is None):
        raise CLIError("give either --toy NAME or --real FILE --fake FILE")
    if (args.real is None) != (args.fake is None):
        raise CLIError("--real and --fake go together")
    if args.critic is not None and args.toy is not None:
        raise CLIError("--critic audits your own data: use it with --real and --fake")
    hidden = _hidden(args.hidden)
    beta, lr, schedule = recipe(args)
    check_softplus_beta(beta, "--softplus-beta")
    check_seed(args.seed, "--seed")
    if lr is not None:
        check_lr(lr, "--lr")
    if args.toy is not None:  # sizes first: before a toy of dimension --dim is built
        dim = args.dim if args.toy in ("translate", "scale", "funnels") else 2
        _check_sizes(args, dim, hidden)
    device = resolve_device(args.device)
    _set_threads(device)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    trained = None
    w1 = None
    plot_range = 3.0
    if args.toy is not None:
        toy = make_toy(args.toy, d=args.dim, theta=args.theta, funnels=args.funnels,
                       seed=args.seed)
        problem = toy.name if toy.dim == 2 else f"{toy.name} d={toy.dim}"
        if toy.name == "funnels":
            problem += f" K={toy.params['funnels']}"
        train_real, train_fake = toy.sample_real, toy.sample_fake
        held_real, held_fake = toy.sample_real, toy.sample_fake
        w1, plot_range = toy.w1, toy.plot_range
    else:
        x, y = check_pair(load_array(args.real, "--real"), load_array(args.fake, "--fake"))
        problem = f"{Path(args.real).name} vs {Path(args.fake).name}"
        _check_sizes(args, x.shape[1], hidden, train=args.critic is None)
        if args.critic is None:
            if min(len(x), len(y)) < 4:
                raise CLIError("--real and --fake need at least 4 points each to train a "
                               "critic on half and audit it on the other half")
            train_real, held_real = _split(x, rng)
            train_fake, held_fake = _split(y, rng)
        else:
            held_real, held_fake = x, y
    save_path = None
    if args.critic is None and args.save_critic:  # checked before anything is written
        save_path = _writable(args.save_critic, "--save-critic")
    out = _out_dir(args.out)  # only once the inputs are known to be good
    if args.critic is None and save_path is None:
        save_path = out / "critic.pt"
    if args.critic is not None:
        critic = load_critic(args.critic)
        if critic[0].in_features != held_real.shape[1]:
            raise CLIError(f"--critic takes inputs of dimension {critic[0].in_features} but "
                           f"the data have dimension {held_real.shape[1]}")
        constraint = "given"
    else:
        trained = train_critic(train_real, train_fake, constraint=args.constraint,
                               steps=args.steps, batch_size=args.batch_size, hidden=hidden,
                               softplus_beta=beta, lr=lr,
                               lambda_gp=args.lambda_gp, schedule=schedule, device=device,
                               seed=args.seed, progress=False if args.no_progress else None)
        critic = trained.critic
        constraint = args.constraint
    payload: dict = {"problem": problem, "constraint": constraint}
    if trained is not None:
        save_critic(critic, str(save_path))  # the trained result first
        payload["critic_file"] = str(save_path)
        payload["training"] = {
            "steps": trained.steps, "seconds": trained.seconds, "device": trained.device,
            "settings": trained.settings, "hidden": list(hidden),
            "history": {"step": trained.history_step, "estimate": trained.history_estimate,
                        "penalty": trained.history_penalty},
        }
        write_json(out / "report.json", payload)  # kept if the audit fails
    audit = audit_critic(critic, held_real, held_fake, n=args.n, repeats=args.repeats, w1=w1,
                         device=device, seed=args.seed + 1)
    seconds = time.perf_counter() - start
    rows = [audit_row(problem, constraint, audit, seconds)]
    judged = verdict(audit, constraint=constraint, history=None if trained is None else
                     (trained.history_step, trained.history_estimate))
    payload.update({"audit": audit.to_dict(), "seconds": seconds,
                    "verdict": judged.to_dict()})
    report = write_json(out / "report.json", payload)
    sweep = None
    if args.toy == "lines" or args.sweep:
        sweep = lines_sweep(args.thetas, constraint="gp" if constraint == "given" else
                            constraint, steps=args.sweep_steps, disc_steps=args.sweep_steps,
                            device=device, seed=args.seed,
                            progress=False if args.no_progress else None)
        payload["lines_sweep"] = sweep.to_dict()
        write_json(out / "report.json", payload)
    text = table(rows)
    (out / "report.md").write_text(table(rows, markdown=True) + "\n\nverdict: "
                                   + judged.message + "\n")
    return {"verdict": judged, "rows": rows, "table": text, "sweep": sweep, "report": report,
            "audit": audit, "out": out, "critic": critic, "trained": trained,
            "problem": problem, "constraint": constraint, "w1": w1, "plot_range": plot_range,
            "held": (held_real, held_fake), "seed": args.seed,
            "critic_file": None if trained is None else save_path}


_NO_MPL = ("plots skipped: matplotlib is not installed "
           "(pip install -e '.[plot]' from the clone)")


def _draw_plots(summary) -> list[Path]:
    """The PNG plots, drawn last: a missing matplotlib is one line on stderr, not an error."""
    import numpy as np

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(_NO_MPL, file=sys.stderr)
        return []
    from otdiv.audit.report import plot_history, plot_level_sets, plot_lines_sweep

    out, audit, trained = summary["out"], summary["audit"], summary["trained"]
    title = f"{summary['problem']}: {summary['constraint']} critic"
    plots = []
    if trained is not None:
        plots.append(plot_history(trained, out / "history.png", exact_w1=audit.exact_w1,
                                  exact_std=audit.exact_w1_std, closed_form=summary["w1"],
                                  title=title))
    held_real, held_fake = summary["held"]
    draw = np.random.default_rng(summary["seed"] + 2)
    xr = held_real(1000, draw) if callable(held_real) else held_real
    xf = held_fake(1000, draw) if callable(held_fake) else held_fake
    if xr.shape[1] == 2:
        plots.append(plot_level_sets(summary["critic"], xr, xf, out / "levels.png",
                                     plot_range=summary["plot_range"], title=title))
    if summary["sweep"] is not None:
        plots.append(plot_lines_sweep(summary["sweep"], out / "lines_sweep.png"))
    return plots


def _print_summary(summary) -> None:
    import math

    print(summary["table"])
    audit = summary["audit"]
    if audit.certified_lower is not None:
        print(f"certified lower bound on exact W1: {audit.certified_lower:.4f} "
              f"(gap to exact W1 {audit.exact_w1 - audit.certified_lower:.4f})")
    if math.isfinite(audit.normalized_estimate):
        print(f"gradient-normalised estimate: {audit.normalized_estimate:.4f} = estimate / "
              f"{audit.grad_norm:.3f}, the mean |grad f| along the exact OT segments "
              f"(at most exact W1, up to the sampling of t)")
    sweep = summary["sweep"]
    if sweep is not None:
        print()
        print(f"parallel lines (W1 = |theta|, JSD = log 2 = {math.log(2):.4f} for theta != 0)")
        print(f"{'theta':>7} {'W1 est':>8} {'W1 exact':>9} {'JSD est':>8}")
        for t, w, e, j in zip(sweep.theta, sweep.w1_estimate, sweep.w1_exact,
                              sweep.jsd_estimate, strict=True):
            print(f"{t:>7.2f} {w:>8.4f} {e:>9.4f} {j:>8.4f}")
    print()
    print(f"report: {summary['report']}")
    print(f"table:  {summary['out'] / 'report.md'}")
    if summary["critic_file"] is not None:
        print(f"critic: {summary['critic_file']}")


def _report(summary, no_plots: bool) -> int:
    """Print the summary (already on disk), draw the plots, then the verdict; 0 unless a
    plot fails (2, with one line on stderr: the results are on disk)."""
    _print_summary(summary)
    code = 0
    if not no_plots:
        try:
            for p in _draw_plots(summary):
                print(f"plot:   {p}")
        except Exception as exc:
            print(f"otdiv audit: error: plotting failed ({type(exc).__name__}: "
                  f"{one_line(exc)}); report.json, report.md and the critic are written",
                  file=sys.stderr)
            code = 2
    print(f"verdict: {summary['verdict'].message}")
    return code


def _check_sizes(args, dim: int, hidden: tuple[int, ...], train: bool = True) -> None:
    """The memory budgets of train_critic and audit_critic, with the options' names."""
    from otdiv.audit.critic import check_audit_size
    from otdiv.audit.train import check_training_size

    if train:
        check_training_size(dim, hidden, args.batch_size, 2000, names={
            "dim": "--dim", "hidden": "--hidden", "batch_size": "--batch-size"})
    check_audit_size(args.n, dim, name="--n")


def _audit(args) -> int:
    return _report(_run_restoring_threads(args), args.no_plots)


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
    return _report(_run_restoring_threads(ns), ns.no_plots)


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
                     "is 1 in any dimension (16); their apexes are drawn with --seed")
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
    tr.add_argument("--hidden", default="96,96,96", help="hidden widths (96,96,96)")
    tr.add_argument("--softplus-beta", type=_beta, default="auto", metavar="BETA",
                    help="Softplus(BETA) activations instead of ReLU (a ReLU rounded over "
                    "1/BETA); 'none' for ReLU; auto (default): 30 on the paper toys, "
                    "ReLU otherwise")
    tr.add_argument("--lr", type=float_arg(0, strict=True), default=None,
                    help="learning rate in (0, 1] (default: 2e-3; clip: the published 5e-5)")
    tr.add_argument("--lambda-gp", type=float_arg(0), default=10.0,
                    help="penalty weight (10)")
    tr.add_argument("--schedule", choices=["constant", "cosine"], default=None,
                    help="learning rate: cosine decay to 0 (default) or constant (default "
                    "for clip)")
    tr.add_argument("--save-critic", metavar="FILE", help="write the trained critic to FILE "
                    "(default: critic.pt in --out), checked before training")
    au = audit.add_argument_group("audit")
    au.add_argument("--n", type=int_arg(2), default=2000,
                    help="held-out samples per side (2000)")
    au.add_argument("--repeats", type=int_arg(1, 1000), default=3, help="held-out draws (3)")
    au.add_argument("--sweep", action="store_true", help="also run the parallel-lines sweep")
    au.add_argument("--thetas", type=_float_list, default=(-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0))
    au.add_argument("--sweep-steps", type=int_arg(1, MAX_STEPS), default=300,
                    help="critic and discriminator steps per theta of the sweep (300)")
    audit.add_argument("--device", default="auto",
                       help="auto (CUDA when present), cpu, cuda")
    audit.add_argument("--seed", type=int_arg(0), default=0, help="seed (0)")
    audit.add_argument("--out", default="otdiv-report",
                       help="output directory (otdiv-report)")
    audit.add_argument("--no-progress", action="store_true", help=_NO_PROGRESS)
    audit.add_argument("--no-plots", action="store_true", help="no PNG plots")


def register(sub) -> None:
    audit = sub.add_parser(
        "audit", help="train (or load) a WGAN critic and audit it against exact W1",
        description="Train a WGAN critic on a toy problem (--toy) or on your samples "
        "(--real/--fake), or load one (--critic), then compare its estimate E_P f - E_Q f "
        "with exact W1 on held-out samples. Writes the critic, report.json, report.md and "
        "PNG plots to --out.")
    add_audit_arguments(audit)
    audit.set_defaults(func=_audit)

    demo = sub.add_parser(
        "demo", help="a short audit (under 2 minutes on a 2-core CPU; --quick: seconds)",
        description="otdiv audit on the 8 Gaussians with a WGAN-GP critic, plus the "
        "parallel-lines sweep; it prints the equivalent otdiv audit command.")
    demo.add_argument("--quick", action="store_true",
                      help="a run of a few seconds (a smaller critic, fewer steps and points)")
    demo.add_argument("--steps", type=int_arg(1, MAX_STEPS), default=None,
                      help="critic steps (1200; 400 with --quick)")
    demo.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    demo.add_argument("--seed", type=int_arg(0), default=0, help="seed (0)")
    demo.add_argument("--out", default="otdiv-report/demo",
                      help="output directory (otdiv-report/demo)")
    demo.add_argument("--no-progress", action="store_true", help=_NO_PROGRESS)
    demo.add_argument("--no-plots", action="store_true", help="no PNG plots")
    demo.set_defaults(func=_demo)
