"""Dask scaling: otdiv.pairwise and otdiv.audit.sweep on 1 and 2 local workers vs a loop.

* A 12 x 12 symmetric matrix of exact W1 between clouds of 3000 points in 2-D (66 pairs):
  the plain serial loop ``otdiv.wasserstein(xs[i], xs[j])`` for i < j in this process, then
  ``otdiv.pairwise(xs, client=...)`` on a LocalCluster of 1 and of 2 single-threaded worker
  processes.
* A 16-job critic-audit sweep (2 toys x 2 constraints x 4 seeds, 150 steps, 500 held-out
  points): the jobs one after another in this process, then ``otdiv.audit.sweep`` on 1 and
  2 workers.
* Per-task overhead: 400 no-op tasks on one worker, and (pairwise on 1 worker − loop) / tasks.

Every run uses one thread per process (NUMBA_NUM_THREADS=1, torch at 1 thread); clusters
are started and warmed (imports, numba cache) before the clock starts; their start-up time
is reported apart. Prints one markdown section (benchmarks/results/dask.md).

    .venv/bin/python benchmarks/bench_dask.py > benchmarks/results/dask.md
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
from _harness import ONE_THREAD_ENV, LoadLog, machine, options, pin_threads, table

import otdiv
from otdiv.audit import load_grid, sweep
from otdiv.audit.grid import run_job

SIZES = {"N_CLOUDS": (12, 3), "N_POINTS": (3000, 200), "STEPS": (150, 10), "N_AUDIT": (500, 100),
         "SEEDS": (4, 1), "NOOP_TASKS": (400, 20)}
S = options(__doc__, SIZES)
GRID = {"grid": {"toy": ["8gaussians", "swissroll"], "constraint": ["gp", "lp"],
                 "seed": list(range(S.SEEDS))},
        "fixed": {"steps": S.STEPS, "n": S.N_AUDIT, "repeats": 1, "hidden": [64, 64, 64],
                  "device": "cpu"}}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def clouds() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((S.N_POINTS, 2)) @ rng.standard_normal((2, 2)) + rng.normal(0, 2, 2)
            for _ in range(S.N_CLOUDS)]


def _warm() -> None:
    """Imports, numba's cache and torch's first calls: one tiny W1 and one audit job."""
    otdiv.wasserstein(np.zeros((3, 2)), np.ones((3, 2)))
    with tempfile.TemporaryDirectory() as tmp:
        run_job(load_grid(GRID)[0], tmp)


def _noop(i: int) -> int:
    return i


def concurrency(stream, prefix: str, wall: float) -> float:
    """Task compute seconds (every worker) per wall second: the workers busy at once."""
    return sum(s["stop"] - s["start"] for d in stream.data if d["key"].startswith(prefix)
               for s in d["startstops"] if s["action"] == "compute") / wall


def cpu_seconds(client) -> float:
    """CPU seconds used so far by this process and every worker process."""
    return time.process_time() + sum(client.run(time.process_time).values())


def cluster(workers: int):
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    c = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                     dashboard_address=":0", env=dict(ONE_THREAD_ENV))
    client = Client(c)
    client.run(_warm)
    return c, client, time.perf_counter() - start


def main() -> None:
    from distributed import get_task_stream

    pin_threads(1)  # numba is not loaded yet: the loop runs on one core
    load = LoadLog()
    xs = clouds()
    _warm()
    import matplotlib.figure  # noqa: F401  (the sweep draws its plot; its import is untimed)
    log("serial W1 loop ...")
    start, cpu = time.perf_counter(), time.process_time()
    loop = np.zeros((S.N_CLOUDS, S.N_CLOUDS))
    for i in range(S.N_CLOUDS):
        for j in range(i + 1, S.N_CLOUDS):
            loop[i, j] = loop[j, i] = otdiv.wasserstein(xs[i], xs[j])
    t_loop, c_loop = time.perf_counter() - start, time.process_time() - cpu
    n_pairs = S.N_CLOUDS * (S.N_CLOUDS - 1) // 2
    jobs = load_grid(GRID)
    with tempfile.TemporaryDirectory() as tmp:
        log("serial audit loop ...")
        start, cpu = time.perf_counter(), time.process_time()
        serial_rows = [run_job(job, tmp) for job in jobs]
        t_jobs, c_jobs = time.perf_counter() - start, time.process_time() - cpu
    assert all(r["status"] == "ok" for r in serial_rows), serial_rows
    load.sample()
    matrix_rows, sweep_rows, overhead = [], [], {}
    for workers in (1, 2):
        local, client, t_start = cluster(workers)
        try:
            log(f"pairwise on {workers} worker(s) ...")
            start, cpu = time.perf_counter(), cpu_seconds(client)
            with get_task_stream(client) as stream:
                got = otdiv.pairwise(xs, client=client, progress=False)
            t, c = time.perf_counter() - start, cpu_seconds(client) - cpu
            assert np.allclose(got, loop, rtol=1e-12, atol=0), "pairwise != loop"
            matrix_rows.append([workers, t, t_loop / t, t / t_loop, c / c_loop,
                                concurrency(stream, "_solve_batch", t), t_start])
            if workers == 1:
                overhead["pairwise"] = (t - t_loop) / n_pairs
                start = time.perf_counter()
                client.gather(client.map(_noop, range(S.NOOP_TASKS), pure=False))
                overhead["noop"] = (time.perf_counter() - start) / S.NOOP_TASKS
            log(f"sweep on {workers} worker(s) ...")
            with tempfile.TemporaryDirectory() as tmp:
                start, cpu = time.perf_counter(), cpu_seconds(client)
                with get_task_stream(client) as stream:
                    result = sweep(GRID, tmp, client=client, progress=False)
                t, c = time.perf_counter() - start, cpu_seconds(client) - cpu
            assert result.failed == 0 and len(result.ran) == len(jobs)
            sweep_rows.append([workers, t, t_jobs / t, t / t_jobs, c / c_jobs,
                               concurrency(stream, "otdiv-audit", t), t_start])
        finally:
            client.close()
            local.close()
        load.sample()
    m1, m2 = matrix_rows[0][1], matrix_rows[1][1]
    s1, s2 = sweep_rows[0][1], sweep_rows[1][1]
    header = ["workers", "wall [s]", "speed-up vs loop", "time / loop", "CPU / loop CPU",
              "tasks running at once", "cluster start [s]"]
    print("## Dask: pairwise matrices and audit sweeps\n")
    print(f"`benchmarks/bench_dask.py`, {machine()}; one thread per process. The machine "
          "was shared with other work while this ran (1-minute load average "
          f"{load} at the start, after the loops and after "
          "each cluster), so wall times carry that noise. 'CPU / loop CPU' compares CPU "
          "seconds (this process and every worker) with the loop's, which the other work "
          "disturbs less; 'tasks running at once' is the tasks' compute seconds per wall "
          "second (at most the number of workers): below it, the scheduler left a worker "
          "idle; at it with a smaller speed-up, the workers waited for the cores.\n")
    print(f"**W1 matrix**: {S.N_CLOUDS} x {S.N_CLOUDS} symmetric, clouds of {S.N_POINTS} points in "
          f"2-D, {n_pairs} exact W1 problems ({t_loop / n_pairs:.2f} s each on one core). "
          f"Serial loop: {t_loop:.1f} s.\n")
    print(table(header, matrix_rows))
    print(f"\nSpeed-up 2 workers vs 1: **{m1 / m2:.2f}x**; per pair on 1 worker: "
          f"{m1 / n_pairs:.2f} s wall.\n")
    print(f"**Audit sweep**: {len(jobs)} jobs ({json.dumps(GRID['grid'])}, "
          f"{json.dumps(GRID['fixed'])}); jobs one after another in this process: "
          f"{t_jobs:.1f} s ({t_jobs / len(jobs):.2f} s a job).\n")
    print(table(header, sweep_rows))
    print(f"\nSpeed-up 2 workers vs 1: **{s1 / s2:.2f}x**.\n")
    print(f"**Overhead per task** on a one-worker LocalCluster: {1000 * overhead['noop']:.1f} "
          f"ms for a no-op task ({S.NOOP_TASKS} tasks); pairwise on one worker vs the loop: "
          f"{1000 * overhead['pairwise']:+.1f} ms per pair (one pair a task here).")


if __name__ == "__main__":
    main()
