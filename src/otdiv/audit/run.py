"""One critic audit from plain settings, as ``otdiv audit`` runs it.

:class:`AuditSettings` holds the options of ``otdiv audit`` under the same names
(``--batch-size`` is ``batch_size``) with the same defaults. :func:`run_audit` checks them,
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
* ``report.md``: the table row and the verdict.

:func:`draw_plots` draws the PNGs afterwards, so that a plot that fails loses no training.
``otdiv audit`` and ``otdiv demo`` (the audit with preset settings), every job of
:func:`otdiv.audit.sweep` and the benchmarks run this one function.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from otdiv._array import (
    MAX_COUNT,
    check_choice,
    check_int,
    check_nonnegative,
    check_seed,
)
from otdiv.audit.models import check_softplus_beta
from otdiv.audit.optimizers import check_lr, check_optimizer
from otdiv.audit.toys import TOYS
from otdiv.audit.train import CONSTRAINTS, SCHEDULES, check_steps

DIM_TOYS = ("translate", "scale", "funnels")  # the toys of dimension ``dim`` (others: 2-D)
MAX_REPEATS = 1000
EVAL_SIZE = 2000  # train_critic's default evaluation set, counted in the memory check

Label = Callable[[str], str]  # a setting's name -> how the caller spells it in messages


@dataclass(frozen=True)
class AuditSettings:
    """The options of ``otdiv audit`` (``docs/audit.md``), as Python values.

    Data: ``toy`` (one of ``TOYS``; ``dim``, ``funnels``, ``theta`` shape it, and
    ``funnel_seed`` draws the funnels' apexes — None: ``seed``, so that each training seed
    is another pair; 0: the pairs of ``otdiv benchmark-critics``) or ``real``
    and ``fake`` (.npy/.csv paths), optionally with ``critic`` (a checkpoint to audit
    instead of training). Training: ``constraint``, ``steps``, ``batch_size``, ``hidden``
    (widths, a string "96,96,96", or "auto": 3 x 96 below d = 8, then 3 x max(256, 2d)
    up to 1024 with a first layer of 1024 from d = 16 on,
    :func:`otdiv.audit.models.recommended_hidden`), ``softplus_beta`` ("auto",
    None or β), ``lr``, ``schedule`` and ``optimizer`` ("adam", "rmsprop" or "muon",
    :mod:`otdiv.audit.optimizers`; None: the recipe, :meth:`recipe`), ``lambda_gp``,
    ``save_critic``.
    Audit: ``n`` held-out points per side, ``n_estimate`` those of the OT-free estimates
    (None: n; :func:`~otdiv.audit.critic.audit_critic`), ``repeats`` draws, ``sweep`` (also the
    parallel-lines sweep over ``thetas``, ``sweep_steps`` steps each). ``device``, ``seed``
    (training; the audit uses seed + 1, the plots seed + 2), ``out`` (the directory),
    ``no_progress``, ``no_plots``.
    """

    toy: str | None = None
    dim: int = 2
    funnels: int = 16
    funnel_seed: int | None = None
    theta: float = 0.5
    real: str | None = None
    fake: str | None = None
    critic: str | None = None
    constraint: str = "lp"
    steps: int = 12000
    batch_size: int = 256
    hidden: tuple[int, ...] | str = "auto"
    softplus_beta: float | str | None = "auto"
    lr: float | None = None
    lambda_gp: float = 10.0
    schedule: str | None = None
    optimizer: str | None = None
    save_critic: str | None = None
    n: int = 2000
    n_estimate: int | None = None
    repeats: int = 3
    sweep: bool = False
    thetas: tuple[float, ...] | str = (-1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0)
    sweep_steps: int = 300
    device: str = "auto"
    seed: int = 0
    out: str = "otdiv-report"
    no_progress: bool = False
    no_plots: bool = False

    def checked(self, label: Label = str) -> AuditSettings:
        """A copy with every setting checked (:func:`check_setting`) and normalised:
        ``hidden`` and ``thetas`` tuples, ``softplus_beta`` "auto", None or a float."""
        return replace(self, **{f.name: check_setting(f.name, getattr(self, f.name), label)
                                for f in fields(self)})

    def recipe(self) -> tuple[float | None, float | None, str, str]:
        """(softplus β, lr, schedule, optimizer) after resolving "auto" and None:
        docs/audit.md's recipe.

        β = 30 (the recommended critic of docs/critic_benchmark.md: on the paper toys, whose
        transport converges on clusters or a thin curve, and off them, where its
        flow-corrected estimate is within 0.3 % of a ReLU critic's on the scale pairs and
        closer on the funnels); lr 2e-3 with a cosine decay for gp, lp and spectral, and
        the published constant RMSProp 5e-5 (lr None) for clip; the optimiser of
        :func:`~otdiv.audit.optimizers.recipe_optimizer` (Muon for lp on torch >= 2.9).
        """
        from otdiv.audit.optimizers import recipe_optimizer

        beta = self.softplus_beta
        if beta == "auto":
            beta = 30.0
        clip = self.constraint == "clip"
        lr = self.lr if self.lr is not None else (None if clip else 2e-3)
        schedule = self.schedule if self.schedule is not None else \
            ("constant" if clip else "cosine")
        optimizer = self.optimizer or recipe_optimizer(self.constraint)
        return beta, lr, schedule, optimizer

    def toy_dim(self) -> int | None:
        """The dimension of the toy's samples: ``dim`` for translate, scale and funnels, 2 for
        the others; None for data files (read with them)."""
        if self.toy is None:
            return None
        return self.dim if self.toy in DIM_TOYS else 2


# ----------------------------------------------------------------------- the settings


def _no_text(value: object, name: str) -> None:
    if isinstance(value, str):
        raise TypeError(f"{name}: expected a number, got the string {value!r}")


def _whole(minimum: int, maximum: int = MAX_COUNT):
    def check(value: object, name: str) -> int:
        _no_text(value, name)
        return check_int(value, name, minimum=minimum, maximum=maximum)
    return check


def _number(value: object, name: str) -> float:
    _no_text(value, name)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
            not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value: object, name: str, parse: type) -> tuple:
    """A tuple from a sequence of numbers or a comma-separated string of them."""
    if isinstance(value, str):
        try:
            value = [parse(v) for v in value.split(",")]
        except ValueError:
            raise ValueError(f"{name} must be comma-separated numbers, got {value!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {value!r}")
    return tuple(value)


def _hidden(value: object, name: str) -> tuple[int, ...] | str:
    if value == "auto":
        return "auto"
    text = value
    try:
        widths = _numbers(value, name, int)
    except ValueError:
        raise ValueError(f"{name} must be comma-separated widths such as 256,256,256, got "
                         f"{text!r}") from None
    return tuple(_whole(1)(w, f"{name} widths") for w in widths)


def _beta(value: object, name: str) -> float | str | None:
    if isinstance(value, str):
        if value in ("auto", "none", "relu"):
            return None if value != "auto" else "auto"
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, 'auto' or 'none', got {value!r}") \
                from None
    return check_softplus_beta(value, name)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} is a flag: give true or false, got {value!r}")
    return value


def _path(value: object, name: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, got {type(value).__name__}")
    return os.fspath(value)


def _optional(check: Callable[[Any, str], Any]):
    return lambda value, name: None if value is None else check(value, name)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


def _seed(value: object, name: str) -> int:
    _no_text(value, name)
    if value is None:
        raise TypeError(f"{name} must be an integer in [0, 2**63), got None")
    return check_seed(value, name)


# setting -> check(value, name) -> normalised value; TypeError/ValueError naming ``name``
CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "toy": _optional(lambda v, name: check_choice(v, name, TOYS)),
    "dim": _whole(1),
    "funnels": _whole(1),
    "funnel_seed": _optional(_seed),
    "theta": _number,
    "real": _optional(_path),
    "fake": _optional(_path),
    "critic": _optional(_path),
    "constraint": lambda v, name: check_choice(v, name, CONSTRAINTS),
    "steps": lambda v, name: check_steps(_whole(1)(v, name), name),
    "batch_size": _whole(1),
    "hidden": _hidden,
    "softplus_beta": _beta,
    "lr": _optional(lambda v, name: check_lr(_number(v, name), name)),
    "lambda_gp": lambda v, name: check_nonnegative(_number(v, name), name),
    "schedule": _optional(lambda v, name: check_choice(v, name, SCHEDULES)),
    "optimizer": _optional(check_optimizer),
    "save_critic": _optional(_path),
    "n": _whole(2),
    "n_estimate": _optional(_whole(2)),
    "repeats": _whole(1, MAX_REPEATS),
    "sweep": _flag,
    "thetas": lambda v, name: tuple(_number(t, name) for t in _numbers(v, name, float)),
    "sweep_steps": lambda v, name: check_steps(_whole(1)(v, name), name),
    "device": _text,
    "seed": _seed,
    "out": _path,
    "no_progress": _flag,
    "no_plots": _flag,
}


def check_setting(name: str, value: object, label: Label = str) -> Any:
    """``value`` checked and normalised as the setting ``name`` of :class:`AuditSettings`;
    a TypeError or ValueError naming ``label(name)`` (e.g. "--batch-size") otherwise."""
    return CHECKS[name](value, label(name))


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


def widths(hidden: tuple[int, ...] | str, dim: int) -> tuple[int, ...]:
    """The hidden widths: "auto" -> :func:`otdiv.audit.models.recommended_hidden` (d)."""
    from otdiv.audit.models import recommended_hidden

    return recommended_hidden(dim) if hidden == "auto" else hidden


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
    check_audit_size(s.n, dim, name=label("n"))
    if s.n_estimate is not None:
        check_audit_size(s.n, dim, n_estimate=s.n_estimate, name=label("n_estimate"))


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
                                     progress=progress)
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
    sweep = None
    if s.toy == "lines" or s.sweep:
        sweep = lines.lines_sweep(
            s.thetas, constraint="gp" if constraint == "given" else constraint,
            steps=s.sweep_steps, disc_steps=s.sweep_steps, device=device, seed=s.seed,
            progress=progress)
        payload["lines_sweep"] = sweep.to_dict()
        write_json(out / "report.json", payload)
    (out / "report.md").write_text(table([row], markdown=True) + "\n\nverdict: "
                                   + judged.message + "\n")
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
