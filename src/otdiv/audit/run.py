"""One critic audit from plain settings, as ``otdiv audit`` runs it.

:class:`~otdiv.audit.settings.AuditSettings` holds the options of ``otdiv audit`` under the
same names (``--batch-size`` is ``batch_size``) with the same defaults
(:mod:`otdiv.audit.settings`). :func:`run_audit` checks them,
builds the data (a toy, whose truth W1 is known; or two sample files, split in halves: the
critic trains on one and is audited on the other, or a given critic is audited on all of
them), trains or loads the critic, audits it (:func:`~otdiv.audit.audit_critic`), gives the
verdict and writes, in this order,

* ``critic.pt`` (or ``save_critic``) right after training,
* ``report.json`` after training, after the audit and after the lines sweep: ``problem``,
  ``data`` (the toy's name, dimension and parameters — a MinFunnel pair's apex seed among
  them — or the two files, as absolute paths), ``constraint``, ``critic_file`` (the critic
  saved, or the one given as ``critic``) and, when a critic was trained, ``training`` (steps,
  seconds, device, the optimiser settings, hidden widths, the history of the estimate),
  ``audit`` (every :class:`~otdiv.audit.CriticAudit` field), ``seconds`` (training plus
  audit), ``verdict`` and, with ``sweep`` or the lines toy, ``lines_sweep``;
* ``report.md`` after the audit (before the lines sweep): the table row and the verdict.

:func:`draw_plots` draws the PNGs afterwards, so that a plot that fails loses no training.
``otdiv audit`` and ``otdiv demo`` (the audit with preset settings), every job of
:func:`otdiv.audit.sweep` and the benchmarks run this one function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from otdiv.audit.settings import (  # noqa: F401  (check_setting: its old home)
    AuditSettings,
    Label,
    check_setting,
    widths,
)

EVAL_SIZE = 2000  # train_critic's default evaluation set, counted in the memory check


# ----------------------------------------------------------------------- the audit


@dataclass
class AuditRun:
    """What :func:`run_audit` did: the checked settings, the problem's label, the critic (and
    ``trained``, its training, unless it was loaded), the audit, its verdict and table row,
    the lines sweep (or None) and where everything was written. ``held`` is the held-out
    pair (arrays, or the toy's samplers) and ``w1`` the closed form (or None)."""

    settings: AuditSettings
    problem: str
    constraint: str
    critic: Any
    trained: Any
    audit: Any
    verdict: Any
    row: dict[str, str]
    sweep: Any
    out: Path
    report: Path
    critic_file: Path | None
    held: tuple[Any, Any]
    w1: float | None
    plot_range: float
    seconds: float

    @property
    def table(self) -> str:
        """The audit as an aligned text table (report.md holds it as markdown)."""
        from otdiv.audit.report import table

        return table([self.row])


def run_audit(settings: AuditSettings | None = None, *, label: Label = str,
              **options: Any) -> AuditRun:
    """Train (or load) a critic f, compare E_P f − E_Q f on held-out samples with exact
    W1 = min_π E_π ‖x − y‖ (:func:`~otdiv.audit.audit_critic`), write report.json,
    report.md and the critic to ``out``; return what was done (:class:`AuditRun`).

    The settings are ``settings`` (default: ``AuditSettings()``) with ``options`` replacing
    fields, e.g. ``run_audit(toy="translate", steps=300, out="report")``. Every setting, the
    memory each size needs (:func:`~otdiv.audit.models.check_training_size`,
    :func:`~otdiv.audit.critic.check_audit_size`) and the place of ``save_critic`` are
    checked before anything is trained or written; errors are ValueError or TypeError
    naming the setting as ``label`` spells it (the command line passes "--batch-size").
    On a CPU, torch runs on one thread (the critics are small MLPs) and its thread count
    is restored afterwards.
    """
    import torch

    base = AuditSettings() if settings is None else settings
    if not isinstance(base, AuditSettings):
        raise TypeError(f"settings must be an AuditSettings, got {type(base).__name__}")
    unknown = set(options) - {f.name for f in fields(AuditSettings)}
    if unknown:
        raise TypeError(f"run_audit got unknown setting(s) {sorted(unknown)}")
    s = replace(base, **options).checked(label)
    before = torch.get_num_threads()
    try:
        return _run(s, label)
    finally:
        torch.set_num_threads(before)


class _Problem(NamedTuple):
    """The data of a run: its label, ``data`` (what report.json records to rebuild them: the
    toy's name, dimension and parameters — a MinFunnel pair's apex seed among them — or the
    two files), the train and held-out pairs, the closed-form W1 (or None), the plot's
    range and the critic's hidden widths."""

    label: str
    data: dict[str, Any]
    train: tuple[Any, Any] | None
    held: tuple[Any, Any]
    w1: float | None
    plot_range: float
    hidden: tuple[int, ...]


def _problem(s: AuditSettings, label: Label) -> _Problem:
    """The run's data (:class:`_Problem`), read and split here, with the memory checks done
    before a toy is built."""
    from otdiv._files import load_array
    from otdiv.audit.data import check_pair, holdout_split
    from otdiv.audit.toys import make_toy

    if s.toy is not None:  # sizes first: before a toy of dimension dim is built
        hidden = widths(s.hidden, s.toy_dim())
        _check_sizes(s, label, s.toy_dim(), hidden)
        toy = make_toy(s.toy, d=s.dim, theta=s.theta, funnels=s.funnels,
                       seed=s.seed if s.funnel_seed is None else s.funnel_seed)
        problem = toy.name if toy.dim == 2 else f"{toy.name} d={toy.dim}"
        if toy.name == "funnels":
            problem += f" K={toy.params['funnels']}"
        pair = (toy.sample_real, toy.sample_fake)
        data = {"toy": toy.name, "dim": toy.dim,
                **{k: v for k, v in toy.params.items() if k != "d"}}  # d is dim
        return _Problem(problem, data, pair, pair, toy.w1, toy.plot_range, hidden)
    x, y = check_pair(load_array(s.real, label("real")), load_array(s.fake, label("fake")))
    problem = f"{Path(s.real).name} vs {Path(s.fake).name}"
    data = {"real": str(Path(s.real).resolve()), "fake": str(Path(s.fake).resolve()),
            "dim": int(x.shape[1])}
    hidden = widths(s.hidden, x.shape[1])
    _check_sizes(s, label, x.shape[1], hidden, train=s.critic is None)
    if s.critic is not None:
        return _Problem(problem, data, None, (x, y), None, 3.0, hidden)
    if min(len(x), len(y)) < 4:
        raise ValueError(f"{label('real')} and {label('fake')} need at least 4 points each "
                         "to train a critic on half and audit it on the other half")
    rng = np.random.default_rng(s.seed)
    (train_real, held_real), (train_fake, held_fake) = holdout_split(x, rng), \
        holdout_split(y, rng)
    return _Problem(problem, data, (train_real, train_fake), (held_real, held_fake), None,
                    3.0, hidden)


def _check_sizes(s: AuditSettings, label: Label, dim: int, hidden: tuple[int, ...],
                 train: bool = True) -> None:
    """The memory budgets of train_critic and audit_critic, with the settings' names."""
    from otdiv.audit.critic import check_audit_size
    from otdiv.audit.models import check_training_size

    if train:
        check_training_size(dim, hidden, s.batch_size, EVAL_SIZE, names={
            k: label(k) for k in ("dim", "hidden", "batch_size")})
    used = min(1000, 2 * s.n)  # the Lipschitz points audit_critic takes (its default 1000)
    check_audit_size(s.n, dim, used, name=label("n"))
    if s.n_estimate is not None:
        check_audit_size(s.n, dim, used, n_estimate=s.n_estimate, name=label("n_estimate"))


def _training_record(trained, hidden: tuple[int, ...]) -> dict[str, Any]:
    return {"steps": trained.steps, "seconds": trained.seconds, "device": trained.device,
            "settings": trained.settings, "hidden": list(hidden),
            "history": {"step": trained.history_step, "estimate": trained.history_estimate,
                        "penalty": trained.history_penalty}}


def _run(s: AuditSettings, label: Label) -> AuditRun:
    # audit_critic, lines_sweep, train_critic, load_critic and save_critic are looked up in
    # their modules at each run (tests replace them there)
    from otdiv._files import out_dir, writable_file
    from otdiv.audit import checkpoint, lines, train
    from otdiv.audit import critic as critic_module
    from otdiv.audit.models import resolve_device
    from otdiv.audit.recipe import check_precision
    from otdiv.audit.report import audit_row, table, write_json
    from otdiv.audit.verdict import verdict

    if (s.toy is None) == (s.real is None):
        raise ValueError(f"give either {label('toy')} NAME or {label('real')} FILE "
                         f"{label('fake')} FILE")
    if (s.real is None) != (s.fake is None):
        raise ValueError(f"{label('real')} and {label('fake')} go together")
    if s.critic is not None and s.toy is not None:
        raise ValueError(f"{label('critic')} audits your own data: use it with "
                         f"{label('real')} and {label('fake')}")
    beta, lr, schedule, optimizer = s.recipe()
    device = resolve_device(s.device)
    if s.critic is not None and s.precision != "float32":
        raise ValueError(f"{label('precision')} applies to training; {label('critic')} "
                         "audits a saved critic (float32)")
    check_precision(s.precision, device, label("precision"))
    if device.type == "cpu":  # small MLPs: a second thread gains little and waits on a busy CPU
        import torch

        torch.set_num_threads(1)
    start = time.perf_counter()
    problem, data, train_pair, held, w1, plot_range, hidden = _problem(s, label)
    save_path = None
    if s.critic is None and s.save_critic:  # checked before anything is written
        save_path = writable_file(s.save_critic, label("save_critic"))
    out = out_dir(s.out, label("out"))  # only once the inputs are known to be good
    if s.critic is None and save_path is None:
        save_path = out / "critic.pt"
    trained = None
    progress = False if s.no_progress else None
    if s.critic is not None:
        critic = checkpoint.load_critic(s.critic)
        if critic[0].in_features != held[0].shape[1]:
            raise ValueError(f"{label('critic')} takes inputs of dimension "
                             f"{critic[0].in_features} but the data have dimension "
                             f"{held[0].shape[1]}")
        constraint = "given"
    else:
        trained = train.train_critic(*train_pair, constraint=s.constraint, steps=s.steps,
                                     batch_size=s.batch_size, hidden=hidden,
                                     softplus_beta=beta, lr=lr, lambda_gp=s.lambda_gp,
                                     schedule=schedule, optimizer=optimizer,
                                     device=device, seed=s.seed,
                                     progress=progress, precision=s.precision)
        critic = trained.critic
        constraint = s.constraint
    payload: dict[str, Any] = {
        "problem": problem, "data": data, "constraint": constraint,
        "critic_file": str(Path(s.critic if s.critic is not None else save_path).resolve())}
    if trained is not None:
        checkpoint.save_critic(critic, str(save_path))  # the trained result first
        payload["training"] = _training_record(trained, hidden)
        write_json(out / "report.json", payload)  # kept if the audit fails
    penalised = constraint in ("gp", "lp")  # the OT-free corrections need the penalty
    audit = critic_module.audit_critic(
        critic, *held, n=s.n, n_estimate=s.n_estimate, repeats=s.repeats, w1=w1,
        device=device, seed=s.seed + 1,
        lambda_gp=s.lambda_gp if penalised else None,
        penalty="two-sided" if constraint == "gp" else "one-sided")
    seconds = time.perf_counter() - start
    row = audit_row(problem, constraint, audit, seconds)
    judged = verdict(audit, constraint=constraint, history=None if trained is None else
                     (trained.history_step, trained.history_estimate))
    payload.update({"audit": audit.to_dict(), "seconds": seconds,
                    "verdict": judged.to_dict()})
    report = write_json(out / "report.json", payload)
    (out / "report.md").write_text(table([row], markdown=True) + "\n\nverdict: "
                                   + judged.message + "\n")  # before the sweep, which may fail
    sweep = None
    if s.toy == "lines" or s.sweep:
        sweep = lines.lines_sweep(
            s.thetas, constraint="gp" if constraint == "given" else constraint,
            steps=s.sweep_steps, disc_steps=s.sweep_steps, device=device, seed=s.seed,
            progress=progress)
        payload["lines_sweep"] = sweep.to_dict()
        write_json(out / "report.json", payload)
    return AuditRun(s, problem, constraint, critic, trained, audit, judged, row, sweep, out,
                    report, None if trained is None else save_path, held, w1, plot_range,
                    seconds)


def draw_plots(run: AuditRun) -> list[Path] | None:
    """The PNG plots of ``run`` in its directory: history.png (the estimate during
    training), levels.png (the critic's level sets, 2-D data) and lines_sweep.png; None
    when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from otdiv.audit import report

    title = f"{run.problem}: {run.constraint} critic"
    plots = []
    if run.trained is not None:
        plots.append(report.plot_history(run.trained, run.out / "history.png",
                                         exact_w1=run.audit.exact_w1,
                                         exact_std=run.audit.exact_w1_std,
                                         closed_form=run.w1, title=title))
    held_real, held_fake = run.held
    draw = np.random.default_rng(run.settings.seed + 2)
    xr = held_real(1000, draw) if callable(held_real) else held_real
    xf = held_fake(1000, draw) if callable(held_fake) else held_fake
    if xr.shape[1] == 2:
        plots.append(report.plot_level_sets(run.critic, xr, xf, run.out / "levels.png",
                                            plot_range=run.plot_range, title=title))
    if run.sweep is not None:
        plots.append(report.plot_lines_sweep(run.sweep, run.out / "lines_sweep.png"))
    return plots
