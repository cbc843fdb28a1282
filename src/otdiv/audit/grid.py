"""A grid of critic audits: every combination of ``otdiv audit`` settings, run as Dask jobs.

A grid is two tables, ``[grid]`` (each key a non-empty list of values) and ``[fixed]``
(single values); the jobs are the Cartesian product of the lists, each with the fixed
settings. Keys are the options of ``otdiv audit``, that is the fields of
:class:`~otdiv.audit.settings.AuditSettings` (``toy``, ``dim``, ``constraint``, ``lambda_gp``,
``softplus_beta``, ``hidden``, ``steps``, ``lr``, ``schedule``, ``optimizer``, ``seed``, ``n``,
``repeats`` ...), each value checked as :func:`~otdiv.audit.settings.check_setting` checks it
before anything runs. A job is one :func:`~otdiv.audit.run.run_audit` (its report.json goes
to ``OUT/jobs/ID/``).

Each finished job appends one JSON line to ``OUT/results.jsonl`` at once: ``job`` (an id
made from the settings), ``settings``, ``status`` ("ok" or "failed"), ``error`` (one line,
or null), ``audit`` (every :class:`~otdiv.audit.critic.CriticAudit` field, or null),
``seconds``, ``worker`` and ``recipe``: what the job's training ran of the settings whose
default otdiv resolves (``RECIPE``: ``softplus_beta``, ``lr``, ``schedule``, ``optimizer``
and the ``hidden`` widths), read back from its report.json; null for a job that audits a
checkpoint. These settings are resolved when the grid is loaded
(:meth:`~otdiv.audit.settings.AuditSettings.recipe`, and a toy's widths) and passed to the job as
given settings, so every worker runs the client's recipe (a worker whose torch lacks Muon
fails that job in one line rather than train with Adam).

A job already in the file is never run again, so rerunning the same grid runs exactly the
jobs that are missing — and those whose row records another recipe than the one the grid
resolves to today (when a default changes: Muon became the LP critic's optimiser on
2026-12-05), so that one directory never mixes two recipes under one setting. A row written
before rows recorded their recipe is judged by the ``training`` record of its
``jobs/ID/report.json``; without that file it is kept, and summary.md counts it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from otdiv._cluster import cluster_client, local_workers, pin_threads, worker_name
from otdiv._files import replaced
from otdiv.audit.run import run_audit
from otdiv.audit.settings import AuditSettings, check_setting

# audit options a job cannot take: the sweep sets them
RESERVED = ("out", "no_progress", "save_critic")
# the settings whose default otdiv resolves (AuditSettings.recipe, then the widths)
RECIPE = ("softplus_beta", "lr", "schedule", "optimizer", "hidden")
SPREAD_OVER = "seed"  # the summary's mean ± std runs over this key


@dataclass(frozen=True)
class Job:
    """One audit: its id, its settings as written in the grid, the audit's arguments, and
    the recipe its training will run (``RECIPE``, JSON values as results.jsonl records them;
    ``hidden`` "auto" for data files, whose dimension is read with them; None when the job
    audits a checkpoint)."""

    id: str
    settings: dict[str, Any]
    args: dict[str, Any]
    recipe: dict[str, Any] | None


@dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` did. ``rows``: the latest row of every job of the grid found in
    results.jsonl, in grid order; ``ran``: ids of the jobs run by this call; ``skipped``:
    ids already in the file; ``rerun``: ids among ``ran`` whose earlier row recorded another
    recipe; ``unrecorded``: ids of ``rows`` from an otdiv that recorded no recipe (kept);
    ``summary``: the markdown table also written to summary.md; ``plot``: the PNG, or None
    when matplotlib is missing (``plot_note`` says why)."""

    jobs: tuple[Job, ...]
    rows: tuple[dict[str, Any], ...]
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: int
    summary: str
    results: Path
    summary_path: Path
    plot: Path | None
    plot_note: str | None
    rerun: tuple[str, ...] = ()
    unrecorded: tuple[str, ...] = ()


# --------------------------------------------------------------------------- the grid


def _check(key: str, value: Any) -> Any:
    """A grid value checked as the setting ``key``; ValueError (one line) naming ``key``."""
    try:
        return check_setting(_key(key), value, lambda name: f"grid key {key!r}")
    except (TypeError, ValueError) as exc:
        raise ValueError(" ".join(str(exc).split())) from None


def load_grid(grid: Mapping[str, Any] | str | os.PathLike) -> list[Job]:
    """The jobs of ``grid``: a mapping with tables "grid" and "fixed", or a TOML file path.

    ValueError (one line, naming the key) for an unknown key, an empty list, a value of the
    wrong type, a key in both tables, or a table other than these two.
    """
    if isinstance(grid, (str, os.PathLike)):
        path = Path(grid)
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            with path.open("rb") as f:
                grid = tomllib.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"grid: no such file: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"grid: {path} is not valid TOML: {exc}") from None
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping or a TOML file path, got {type(grid).__name__}")
    unknown = set(grid) - {"grid", "fixed"}
    if unknown:
        raise ValueError(f"grid: unknown table(s) {sorted(unknown)}; use [grid] and [fixed]")
    lists, fixed = dict(grid.get("grid", {})), dict(grid.get("fixed", {}))
    if not lists:
        raise ValueError("grid: the [grid] table is empty or missing; give at least one list")
    keys = [f.name for f in fields(AuditSettings) if f.name not in RESERVED]
    both = set(map(_key, lists)) & set(map(_key, fixed))
    if both:
        raise ValueError(f"grid: {sorted(both)} in both [grid] and [fixed]")
    for table, entries in (("grid", lists), ("fixed", fixed)):
        for key in entries:
            if _key(key) not in keys:
                hint = " (the sweep sets it)" if _key(key) in RESERVED else ""
                raise ValueError(f"[{table}] {key!r} is not an option of otdiv audit{hint}; "
                                 f"keys: {', '.join(sorted(keys))}")
    converted: dict[str, list[tuple[Any, Any]]] = {}
    for key, values in lists.items():
        if not isinstance(values, list):
            raise ValueError(f"[grid] {key!r} must be a list of values, got {values!r}")
        if not values:
            raise ValueError(f"[grid] {key!r} is an empty list")
        converted[_key(key)] = [(v, _check(key, v)) for v in values]
    for key, value in fixed.items():
        converted[_key(key)] = [(value, _check(key, value))]
    defaults = {k: getattr(AuditSettings(), k) for k in keys}
    defaults["no_plots"] = True  # a job draws its plots only when asked (no_plots = false)
    jobs, seen = [], set()
    for combo in itertools.product(*converted.values()):
        settings = {k: raw for k, (raw, _) in zip(converted, combo, strict=True)}
        job_id = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        if job_id in seen:
            raise ValueError(f"grid: a list repeats a value (job {settings} twice)")
        seen.add(job_id)
        args = {**defaults, **{k: v for k, (_, v) in zip(converted, combo, strict=True)}}
        resolved, recipe = _recipe(args)
        jobs.append(Job(job_id, settings, {**args, **resolved},
                        json.loads(json.dumps(recipe))))  # as results.jsonl will read back
    return jobs


def _recipe(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the ``RECIPE`` settings as this otdiv and this torch resolve them, to pass to the job;
    the recipe its training will record: the same with clip's published lr for None)."""
    from otdiv.audit.recipe import DEFAULTS
    from otdiv.audit.settings import widths

    settings = AuditSettings(**args)
    resolved = dict(zip(RECIPE[:4], settings.recipe(), strict=True))
    dim = settings.toy_dim()
    resolved["hidden"] = settings.hidden if dim is None else widths(settings.hidden, dim)
    if settings.critic is not None:  # a checkpoint is audited, not trained
        return resolved, None
    lr = resolved["lr"] if resolved["lr"] is not None else DEFAULTS[settings.constraint]["lr"]
    return resolved, {**resolved, "lr": lr}


def recipe_ran(report: Path) -> dict[str, Any] | None:
    """The ``RECIPE`` settings a job's training ran, read from the ``training`` record of its
    report.json; None when there is none (a checkpoint audited, or no such file)."""
    try:
        training = json.loads(report.read_text()).get("training")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(training, dict) or not isinstance(training.get("settings"), dict):
        return None
    ran = {k: training["settings"].get(k) for k in RECIPE[:4]}
    return {**ran, "hidden": training.get("hidden")}


def same_recipe(expected: dict[str, Any] | None, ran: dict[str, Any] | None) -> bool:
    """Whether a row's recipe ``ran`` is the one a job is ``expected`` to run today (keys
    left "auto" — the widths of data files — are not compared)."""
    if expected is None or ran is None:
        return expected is None and ran is None
    return all(ran.get(k) == v for k, v in expected.items() if v != "auto")


def _key(key: str) -> str:
    return key.replace("-", "_")


# --------------------------------------------------------------------------- one job


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_job(job: Job, out: str) -> dict[str, Any]:
    """Run one audit (as ``otdiv audit`` would) and return its results.jsonl row."""
    pin_threads()
    start = time.perf_counter()
    row: dict[str, Any] = {"job": job.id, "settings": job.settings}
    report = Path(out) / job.id / "report.json"
    report.unlink(missing_ok=True)  # a rerun's recipe is read from its own report
    try:
        run = run_audit(AuditSettings(**job.args, out=str(Path(out) / job.id),
                                      no_progress=True, save_critic=None))
        row.update(status="ok", error=None, audit=run.audit.to_dict())
    except Exception as exc:
        row.update(status="failed", error=_one_line(exc), audit=None)
    # what the training ran; a job that failed before training records the recipe it was given
    ran = recipe_ran(report)
    row["recipe"] = ran if ran is not None or job.recipe is None else job.recipe
    row.update(seconds=time.perf_counter() - start, worker=worker_name())
    return row


def _execute(client, jobs: list[Job], out: Path) -> Iterator[dict[str, Any]]:
    """Each job's row as soon as it finishes (in this process when ``client`` is None)."""
    job_dir = str(out / "jobs")
    if client is None:
        for job in jobs:
            yield run_job(job, job_dir)
        return
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = {client.submit(run_job, job, job_dir, key=f"otdiv-audit-{job.id}-{token}",
                             pure=False): job for job in jobs}
    try:
        for future in as_completed(futures):
            if future.status == "finished":
                yield future.result()
            else:  # the scheduler gave up on it (KilledWorker after repeated worker deaths)
                job = futures[future]
                yield {"job": job.id, "settings": job.settings, "recipe": job.recipe,
                       "status": "failed",
                       "error": _one_line(future.exception()), "audit": None,
                       "seconds": None, "worker": None}
    finally:
        client.cancel(list(futures))


# --------------------------------------------------------------------------- results


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of results.jsonl; a last line cut short by a crash is dropped from the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # a torn last write: drop it, it reruns
        data = data[: data.rfind(b"\n") + 1]
        with path.open("r+b") as f:
            f.truncate(len(data))
    rows = []
    for number, line in enumerate(data.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{number} is not a JSON line; move the file away or "
                             "fix that line") from None
    return rows


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _mean_std(values: list[float], fmt: str, pct: bool = False) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "-"
    scale = 100.0 if pct else 1.0
    mean = scale * sum(values) / len(values)
    unit = " %" if pct else ""
    if len(values) < 2:
        return f"{mean:{fmt}}{unit}"
    std = scale * math.sqrt(sum((v - mean / scale) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:{fmt}} ± {std:{fmt.lstrip('+')}}{unit}"


def _settings_label(settings: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={settings[k]}" for k in keys) or "all"


def summarize(rows: list[dict[str, Any]], grid_keys: list[str]) -> tuple[str, list]:
    """A markdown table: one line per setting of ``grid_keys`` other than seed, with the
    mean ± sample standard deviation over its seeds; and the (label, rows) groups."""
    keys = [k for k in grid_keys if k != SPREAD_OVER]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_settings_label(row["settings"], keys), []).append(row)
    head = ["setting", "runs", "failed", "rel. error", "rel. error (flow)",
            "rel. error (/ G)", "estimate", "exact W1", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for label, group in groups.items():
        ok = [r["audit"] for r in group if r["status"] == "ok"]
        lines.append("| " + " | ".join([
            label, str(len(group)), str(len(group) - len(ok)),
            _mean_std([_num(a["rel_error"]) for a in ok], "+.1f", pct=True),
            _mean_std([_num(a.get("rel_error_flow_corrected")) for a in ok], "+.1f",
                      pct=True),
            _mean_std([_num(a["rel_error_normalized"]) for a in ok], "+.1f", pct=True),
            _mean_std([_num(a["estimate"]) for a in ok], ".4f"),
            _mean_std([_num(a["exact_w1"]) for a in ok], ".4f"),
            _mean_std([_num(r["seconds"]) for r in group], ".1f"),
        ]) + " |")
    return "\n".join(lines), list(groups.items())


def plot_rel_error(groups: list, path: Path) -> Path:
    """Each setting's relative errors (one dot per seed; raw, flow-corrected (no exact OT)
    and / G (exact OT)) with their mean."""
    from otdiv.audit.report import figure

    fig = figure(7.0, 1.2 + 0.35 * len(groups))
    ax = fig.add_subplot(111)
    for y, (_, group) in enumerate(groups):
        ok = [r["audit"] for r in group if r["status"] == "ok"]
        for field, color, marker in (("rel_error", "C0", "o"),
                                     ("rel_error_flow_corrected", "C2", "^"),
                                     ("rel_error_normalized", "C1", "s")):
            values = [100 * _num(a.get(field)) for a in ok
                      if math.isfinite(_num(a.get(field)))]
            ax.scatter(values, [y] * len(values), color=color, marker=marker, s=18,
                       alpha=0.7, label=None)
            if values:
                ax.plot([sum(values) / len(values)] * 2, [y - 0.3, y + 0.3], color=color)
    ax.scatter([], [], color="C0", marker="o", label="rel. error")
    ax.scatter([], [], color="C2", marker="^", label="rel. error (flow-corrected)")
    ax.scatter([], [], color="C1", marker="s", label="rel. error (/ G)")
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([label for label, _ in groups], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("relative error of the critic's estimate [%] (bar: mean over seeds)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------- the sweep


def sweep(grid: Mapping[str, Any] | str | os.PathLike, out: str | os.PathLike,
          client: Any = None, *, workers: int | None = None,
          progress: bool = True) -> SweepResult:
    """Run every job of ``grid`` (:func:`load_grid`) not yet in ``out/results.jsonl``, or
    there with another recipe than today's (``RECIPE``: a directory begun before a default
    changed; the new row supersedes the old, which stays in the file).

    The jobs J = Π_k grid[k] × fixed run on ``client`` (a ``dask.distributed.Client``, a
    scheduler address, or None: a ``LocalCluster`` of ``workers`` single-threaded worker
    processes, default one per core, started for this call; one missing job runs in this
    process). A row is appended to results.jsonl as each job finishes; a job that raises is
    a "failed" row and the others go on. Then summary.md (mean ± std over seeds per
    setting) and rel_error.png (when matplotlib is installed) are written.
    """
    jobs = load_grid(grid)  # everything is checked before anything runs
    if workers is not None:
        if client is not None:
            raise ValueError("workers is for the local cluster; a client brings its own")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    earlier = {row.get("job"): row for row in read_rows(results)}  # the latest row of a job
    # a row's recipe; for a row from before rows recorded one, its report.json's (or None)
    recorded = {job.id: earlier[job.id]["recipe"] if "recipe" in earlier[job.id]
                else recipe_ran(out / "jobs" / job.id / "report.json")
                for job in jobs if job.id in earlier}
    rerun = tuple(job.id for job in jobs if job.id in recorded
                  and ("recipe" in earlier[job.id] or recorded[job.id] is not None)
                  and not same_recipe(job.recipe, recorded[job.id]))
    done = set(earlier) - set(rerun)
    todo = [job for job in jobs if job.id not in done]
    ran = []
    if todo:
        with cluster_client(client, n_workers=local_workers(len(todo), workers),
                            in_process=client is None and len(todo) == 1) as dask_client:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="jobs", unit="job", file=sys.stderr,
                       disable=not (progress and sys.stderr.isatty()))
            try:
                for row in _execute(dask_client, todo, out):
                    _append(results, row)
                    ran.append(row["job"])
                    bar.update(1)
            finally:
                bar.close()
    latest = {row.get("job"): row for row in read_rows(results)}
    rows = tuple(latest[job.id] for job in jobs if job.id in latest)
    grid_keys = [k for k in jobs[0].settings if len({json.dumps(j.settings[k], sort_keys=True)
                                                     for j in jobs}) > 1]
    table, groups = summarize(list(rows), grid_keys)
    failed = sum(row["status"] != "ok" for row in rows)
    fixed = {k: v for k, v in jobs[0].settings.items() if k not in grid_keys}
    unrecorded = tuple(row["job"] for row in rows if "recipe" not in row
                       and recorded.get(row["job"]) is None
                       and row["status"] == "ok" and "critic" not in row["settings"])
    recipes = {json.dumps(row.get("recipe"), sort_keys=True) for row in rows}
    recipe_note = f" Recipe: {_settings_label(rows[0]['recipe'], RECIPE)}." \
        if len(recipes) == 1 and rows and rows[0].get("recipe") else ""
    if unrecorded:
        recipe_note += (f" {len(unrecorded)} row(s) come from an otdiv that recorded no recipe "
                        "(optimiser, lr, schedule, β, widths), and their report.json is gone: "
                        "they may have run another one; a new --out runs the grid under "
                        "today's.")
    text = (f"# Critic audit sweep\n\n{len(rows)} of {len(jobs)} jobs done, {failed} failed. "
            f"Fixed: {_settings_label(fixed, list(fixed))}.{recipe_note} Each line: mean ± "
            f"sample standard deviation over {SPREAD_OVER}s.\n\n{table}\n")
    summary_path = out / "summary.md"
    with replaced(summary_path) as fh:
        fh.write(text)
    plot, note = None, None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        note = "plots skipped (matplotlib is not installed)"
    else:
        plot = plot_rel_error(groups, out / "rel_error.png")
    return SweepResult(tuple(jobs), rows, tuple(ran), tuple(j.id for j in jobs if j.id in done),
                       failed, text, results, summary_path, plot, note, rerun, unrecorded)
