"""otdiv.audit.sweep and ``otdiv sweep`` on a real Dask LocalCluster (2 worker processes).

Jobs are tiny audits (a 16 x 16 critic, 20 steps, 150 held-out points, 1 draw): seconds in
all. What is checked is the bookkeeping: every job in results.jsonl exactly once after a
worker is killed mid-job, exactly the missing jobs after an interrupted run, the same rows
from the embedded default, failed rows, and a bad grid refused before anything runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from otdiv.audit.grid import load_grid, sweep
from otdiv.cli import main

pytest.importorskip("distributed")  # the whole module runs on Dask (conftest.client)

TINY = {"steps": 20, "n": 150, "repeats": 1, "hidden": [16, 16], "device": "cpu"}
# fields that are timings (differ between runs); everything else must agree
TIMINGS = {"seconds", "w1_seconds"}


def grid(**lists):
    return {"grid": lists, "fixed": dict(TINY)}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def comparable(row: dict) -> dict:
    audit = {k: v for k, v in (row["audit"] or {}).items() if k not in TIMINGS}
    return {"job": row["job"], "settings": row["settings"], "status": row["status"],
            "audit": audit}


def test_rows_and_summary(client, tmp_path):
    result = sweep(grid(toy=["8gaussians", "swissroll"], seed=[0, 1]), tmp_path / "a",
                   client=client, progress=False)
    rows = lines(tmp_path / "a" / "results.jsonl")
    assert len(rows) == 4 and {r["job"] for r in rows} == {j.id for j in result.jobs}
    assert all(r["status"] == "ok" and r["worker"].startswith("tcp://") for r in rows)
    recipes = {j.id: j.recipe for j in result.jobs}
    assert all(r["recipe"] == recipes[r["job"]] for r in rows)  # read back on the workers
    fields = set(rows[0]["audit"])
    assert {"estimate", "exact_w1", "rel_error", "rel_error_normalized", "lipschitz_upper",
            "certified_lower", "n", "repeats"} <= fields
    assert rows[0]["settings"]["steps"] == 20 and rows[0]["audit"]["n"] == 150
    # the summary: one line per toy, mean over the two seeds
    summary = (tmp_path / "a" / "summary.md").read_text()
    assert summary == result.summary and "toy=8gaussians | 2 | 0 |" in summary
    by_toy = [r["audit"]["rel_error"] for r in rows if r["settings"]["toy"] == "swissroll"]
    assert f"{100 * sum(by_toy) / 2:+.1f}" in summary.split("toy=swissroll")[1]
    # 20-step critics are nowhere steeper than 1: no flow correction (null), shown as "-"
    cells = summary.split("toy=swissroll")[1].split("|")
    assert {r["audit"]["rel_error_flow_corrected"] for r in rows} == {None}
    assert cells[4].strip() == "-"
    assert result.plot is not None and result.plot.stat().st_size > 0


def test_the_summary_has_the_flow_corrected_error_per_setting():
    # summarize is a pure function of the rows: mean ± sample std over seeds, per setting
    from otdiv.audit.grid import summarize

    def row(toy, seed, raw, flow):
        return {"settings": {"toy": toy, "seed": seed}, "status": "ok", "seconds": 1.0,
                "audit": {"rel_error": raw, "rel_error_flow_corrected": flow,
                          "rel_error_normalized": 0.0, "estimate": 1.0, "exact_w1": 1.0}}

    rows = [row("a", 0, 0.10, 0.01), row("a", 1, 0.08, -0.03), row("b", 0, 0.2, "nan")]
    text, groups = summarize(rows, ["toy", "seed"])
    line_a = next(line for line in text.splitlines() if line.startswith("| toy=a "))
    flow = np.array([0.01, -0.03]) * 100
    assert line_a.split("|")[5].strip() == f"{flow.mean():+.1f} ± {flow.std(ddof=1):.1f} %"
    line_b = next(line for line in text.splitlines() if line.startswith("| toy=b "))
    assert line_b.split("|")[5].strip() == "-" and [g for g, _ in groups] == ["toy=a", "toy=b"]


@pytest.mark.slow  # starts and stops a second cluster whose workers import torch cold
def test_the_embedded_default_gives_the_same_rows(client, tmp_path):
    g = grid(toy=["8gaussians"], seed=[0, 1])
    on_client = sweep(g, tmp_path / "a", client=client, progress=False)
    embedded = sweep(g, tmp_path / "b", progress=False)  # a LocalCluster for this call
    assert {r["worker"] for r in embedded.rows}.isdisjoint(client.scheduler_info()["workers"])
    assert sorted(map(json.dumps, map(comparable, embedded.rows))) == \
        sorted(map(json.dumps, map(comparable, on_client.rows)))


def test_a_killed_worker_loses_no_job_and_runs_none_twice(client, tmp_path):
    g = grid(toy=["8gaussians", "swissroll", "25gaussians"], seed=[0, 1])
    pids = client.run(os.getpid)
    killed = {}

    def kill_a_busy_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [(w, keys) for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(0.3)  # let the job start computing
                worker, keys = busy[0]
                if client.processing().get(worker):
                    killed.update(worker=worker, keys=list(keys))
                    os.kill(pids[worker], signal.SIGKILL)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    result = sweep(g, tmp_path, client=client, progress=False)
    killer.join()
    assert killed, "no worker was seen busy"
    rows = lines(tmp_path / "results.jsonl")
    assert sorted(r["job"] for r in rows) == sorted(j.id for j in result.jobs)
    assert all(r["status"] == "ok" for r in rows)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_interrupted_sweep_resumes_with_exactly_the_missing_jobs(client, tmp_path):
    toml = tmp_path / "grid.toml"
    # four quick jobs and four slow ones: the sweep is surely still running when the quick
    # rows are in (with eight quick jobs it could finish before the signal, exit 0)
    toml.write_text('[grid]\ntoy = ["8gaussians"]\nseed = [0, 1, 2, 3]\nsteps = [20, 3000]\n'
                    '[fixed]\nn = 150\nrepeats = 1\nhidden = [16, 16]\n'
                    'device = "cpu"\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
    for attempt in range(3):
        # on a starved machine the whole sweep can end between two polls, before the signal:
        # then there is nothing to interrupt, and the attempt is made again in a new folder
        out = tmp_path / f"out{attempt}"
        results = out / "results.jsonl"
        proc = subprocess.Popen([sys.executable, "-m", "otdiv.cli", "sweep", str(toml),
                                 "--out", str(out), "--scheduler", client.scheduler.address,
                                 "--no-progress"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and len(results.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0 or len(lines(results)) < 8:
            break
    if proc.returncode == 0 and len(lines(results)) == 8:
        # the signal never landed while the sweep ran (seen on loaded CI runners): keep the
        # first two rows as an interrupted run would have, and test the resume on them
        kept = results.read_text().splitlines(keepends=True)[:2]
        results.write_text("".join(kept))
        warnings.warn("the sweep finished before SIGINT landed; resume tested on 2 kept rows",
                      stacklevel=1)
    else:
        assert proc.returncode == 130, err
    first = [r["job"] for r in lines(results)]
    jobs = [j.id for j in load_grid(toml)]
    assert 2 <= len(first) < len(jobs) and len(set(first)) == len(first)
    result = sweep(toml, out, client=client, progress=False)
    assert sorted(result.ran) == sorted(set(jobs) - set(first))
    assert sorted(result.skipped) == sorted(first)
    assert sorted(r["job"] for r in lines(results)) == sorted(jobs)
    again = sweep(toml, out, client=client, progress=False)  # complete: nothing runs
    assert again.ran == () and len(lines(results)) == len(jobs)


def test_a_failing_job_is_a_row_and_the_sweep_goes_on(client, tmp_path):
    # a checkpoint that is not there passes the grid check and fails when its job runs
    missing = str(tmp_path / "missing.pt")
    result = sweep(grid(toy=["8gaussians"], critic=[missing], seed=[0]), tmp_path / "a",
                   client=client, progress=False)
    rows = lines(tmp_path / "a" / "results.jsonl")
    assert len(rows) == 1 and rows[0]["status"] == "failed" and rows[0]["audit"] is None
    assert rows[0]["error"].startswith(("ValueError: ", "FileNotFoundError: ", "CLIError: "))
    assert "\n" not in rows[0]["error"] and result.failed == 1
    assert "1 failed" in result.summary


def test_a_torn_last_line_is_dropped_and_its_job_reruns(tmp_path):
    g = grid(toy=["8gaussians"])
    (tmp_path / "results.jsonl").write_text('{"job": "abc", "sett')
    result = sweep(g, tmp_path, progress=False)  # one job: runs in this process
    rows = lines(tmp_path / "results.jsonl")
    assert [r["job"] for r in rows] == [result.jobs[0].id] and rows[0]["worker"] == "local"


def training_record(out: Path, job_id: str) -> dict:
    training = json.loads((out / "jobs" / job_id / "report.json").read_text())["training"]
    return {**{k: training["settings"][k] for k in ("softplus_beta", "lr", "schedule",
                                                    "optimizer")},
            "hidden": training["hidden"]}


def test_each_row_records_the_recipe_its_training_ran(tmp_path):
    # hidden and the optimiser settings left to otdiv: each constraint's recipe, as the
    # report.json of the job's training records it; a second sweep then runs nothing
    g = {"grid": {"constraint": ["lp", "clip", "spectral"]},
         "fixed": {"toy": "8gaussians", "steps": 3, "n": 100, "repeats": 1, "device": "cpu"}}
    first = sweep(g, tmp_path, client=None, workers=1, progress=False)
    rows = {r["settings"]["constraint"]: r for r in lines(tmp_path / "results.jsonl")}
    for job in first.jobs:
        row = rows[job.settings["constraint"]]
        assert row["recipe"] == training_record(tmp_path, job.id) == job.recipe
    assert rows["clip"]["recipe"]["optimizer"] == "rmsprop"  # the published WGAN's
    assert rows["clip"]["recipe"]["lr"] == 5e-5 and rows["lp"]["recipe"]["lr"] == 2e-3
    assert rows["lp"]["recipe"]["hidden"] == [96, 96, 96]  # 2-D: 3 x 96 (docs/audit.md)
    again = sweep(g, tmp_path, client=None, workers=1, progress=False)
    assert again.ran == () and again.rerun == () and len(again.skipped) == 3


def test_a_row_of_another_recipe_runs_again_and_one_without_a_recipe_is_judged(tmp_path):
    g = grid(toy=["8gaussians"])  # lp, the optimiser, lr and schedule left to the recipe
    first = sweep(g, tmp_path, progress=False)  # one job: runs in this process
    (job,) = first.jobs
    (row,) = lines(tmp_path / "results.jsonl")
    assert row["recipe"] == training_record(tmp_path, job.id)
    assert "Recipe: softplus_beta=30.0" in first.summary
    # a row of another recipe (a directory begun before a default changed) runs again; the
    # new row supersedes it and the old one stays in the file
    other = "rmsprop" if row["recipe"]["optimizer"] != "rmsprop" else "adam"
    stale = dict(row, recipe=dict(row["recipe"], optimizer=other))
    (tmp_path / "results.jsonl").write_text(json.dumps(stale) + "\n")
    again = sweep(g, tmp_path, progress=False)
    assert again.rerun == again.ran == (job.id,) and again.skipped == ()
    old, new = lines(tmp_path / "results.jsonl")
    assert old == stale and comparable(new) == comparable(row) and new["recipe"] == row["recipe"]
    assert again.rows == (new,) and again.unrecorded == ()
    # a row from before rows recorded their recipe is judged by its report.json: the same
    # training is kept, another one runs again
    bare = {k: v for k, v in row.items() if k != "recipe"}
    (tmp_path / "results.jsonl").write_text(json.dumps(bare) + "\n")
    kept = sweep(g, tmp_path, progress=False)
    assert kept.ran == () and kept.skipped == (job.id,) and kept.unrecorded == ()
    report = tmp_path / "jobs" / job.id / "report.json"
    data = json.loads(report.read_text())
    data["training"]["settings"]["optimizer"] = other
    report.write_text(json.dumps(data))
    assert sweep(g, tmp_path, progress=False).rerun == (job.id,)
    # ... and without its report.json it is kept, and the summary says so
    (tmp_path / "results.jsonl").write_text(json.dumps(bare) + "\n")
    report.unlink()
    kept = sweep(g, tmp_path, progress=False)
    assert kept.ran == () and kept.unrecorded == (job.id,)
    assert "recorded no recipe" in kept.summary and "Recipe:" not in kept.summary


def test_the_recipe_resolves_a_toys_widths_and_leaves_a_data_files_to_it(tmp_path):
    # "auto": 3 x 96 below d = 8, a first layer of 1024 and 256 after from d = 16 on
    # (docs/audit.md); the 2-D toys stay 2-D whatever dim says
    jobs = load_grid({"grid": {"toy": ["funnels", "8gaussians"]}, "fixed": {"dim": 16}})
    assert [j.recipe["hidden"] for j in jobs] == [[1024, 256, 256], [96, 96, 96]]
    assert [tuple(j.args["hidden"]) for j in jobs] == [(1024, 256, 256), (96, 96, 96)]
    assert jobs[0].settings == {"toy": "funnels", "dim": 16}  # the id still hashes the grid's
    np.save(tmp_path / "p.npy", np.zeros((5, 3)))
    (job,) = load_grid({"grid": {"real": [str(tmp_path / "p.npy")]},
                        "fixed": {"fake": str(tmp_path / "p.npy")}})
    assert job.recipe["hidden"] == "auto" == job.args["hidden"]
    (job,) = load_grid({"grid": {"real": [str(tmp_path / "p.npy")]},
                        "fixed": {"fake": str(tmp_path / "p.npy"),
                                  "critic": str(tmp_path / "c.pt")}})
    assert job.recipe is None  # a checkpoint is audited, not trained


@pytest.mark.parametrize(("bad", "match"), [
    ({"grid": {"toyy": ["8gaussians"]}}, "'toyy' is not an option of otdiv audit"),
    ({"grid": {"toy": []}}, "'toy' is an empty list"),
    ({"grid": {"toy": "8gaussians"}}, "must be a list"),
    ({"grid": {"toy": ["9gaussians"]}}, "must be one of"),
    ({"grid": {"steps": [1.5]}}, "'steps'"),
    ({"grid": {"steps": ["300"]}}, "expected a number"),
    ({"grid": {"lr": [0.002, -1.0]}}, "lr"),
    ({"grid": {"seed": [0]}, "fixed": {"no_plots": 1}}, "flag"),
    ({"grid": {"seed": [0]}, "fixed": {"out": "x"}}, "the sweep sets it"),
    ({"grid": {"seed": [0]}, "fixed": {"seed": 1}}, "both"),
    ({"grid": {"seed": [0, 0]}}, "repeats a value"),
    ({"grid": {"seed": [0]}, "fixd": {}}, "unknown table"),
    ({"fixed": {"seed": 0}}, "empty or missing"),
])
def test_bad_grid_is_one_line_before_anything_runs(bad, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        sweep(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_bad_grid_and_unreachable_scheduler_exit_2(tmp_path, capsys):
    toml = tmp_path / "g.toml"
    toml.write_text('[grid]\ntoy = ["8gaussians"]\nconstraint = ["gpp"]\n')
    assert main(["sweep", str(toml), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'constraint' must be one of" in err
    toml.write_text("[grid\n")
    assert main(["sweep", str(toml), "--out", str(tmp_path / "o")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    toml.write_text('[grid]\ntoy = ["8gaussians"]\n')
    start = time.perf_counter()
    assert main(["sweep", str(toml), "--out", str(tmp_path / "o"), "--scheduler",
                 "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - start < 10
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler" in err
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_the_shipped_critic_benchmark_grid_is_the_28_funnel_settings():
    # benchmarks/critic_funnels.toml: every (d, K) of Korotin et al. x 4 constraints x 3 seeds
    from otdiv.audit.funnels import FUNNEL_SETTINGS
    from otdiv.audit.grid import load_grid

    jobs = load_grid(Path(__file__).parents[1] / "benchmarks" / "critic_funnels.toml")
    assert len(jobs) == len(FUNNEL_SETTINGS) * 4 * 3
    assert {(j.args["dim"], j.args["funnels"]) for j in jobs} == set(FUNNEL_SETTINGS)
    assert {j.args["toy"] for j in jobs} == {"funnels"}
    assert {j.args["n_estimate"] for j in jobs} == {50_000}
    # the pairs of benchmark-critics (apex seed 0) for every training seed
    assert {j.args["funnel_seed"] for j in jobs} == {0}
