"""The matrix D_ij = D(P_i, Q_j) of a distance or divergence between many point clouds.

Every entry is an independent problem, so the matrix is computed on a Dask ``distributed``
cluster when there is one (``otdiv[dask]``): each cloud is scattered to the workers once,
pairs are grouped into tasks of at least :data:`MIN_TASK_SECONDS` (estimated), and tasks
finish in any order. Each entry is the very call ``metric(xs[i], ys[j], **options)`` of a
serial loop, so the numbers are those of the loop, bit for bit when the metric is
deterministic.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from otdiv._array import as_points, check_same_dim, to_numpy64
from otdiv._cluster import cluster_client, local_workers, n_threads, pin_threads

# metric -> (module, whether D(P, P) = 0 so that the diagonal of the symmetric matrix is 0,
# whether D(P, Q) = D(Q, P) so that the symmetric matrix solves each pair once)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "wasserstein": ("otdiv.metrics.wasserstein", True, True),
    "sinkhorn": ("otdiv.metrics.sinkhorn", False, True),
    "sinkhorn_divergence": ("otdiv.metrics.sinkhorn", True, True),
    "sliced_wasserstein": ("otdiv.metrics.sliced", True, True),
    "kl_knn": ("otdiv.metrics.knn", True, False),
    "jsd_knn": ("otdiv.metrics.knn", True, True),
}

MIN_TASK_SECONDS = 0.1  # a task's estimated work; Dask's overhead is ~1-3 ms per task
TASKS_PER_THREAD = 4  # at least this many tasks per worker thread, for load balance
MAX_TASKS = 50_000  # a Dask scheduler handles ~1-5 thousand tasks a second
IN_PROCESS_SECONDS = 10.0  # client=None: below this estimate, no cluster is started

# seconds per unit of the cost model below, measured on one core of a 2-core x86 CPU
_RATE = {"wasserstein": 2.5e-7, "sinkhorn": 1.5e-7, "sinkhorn_divergence": 2e-7,
         "sliced_wasserstein": 5e-8, "kl_knn": 1e-6, "jsd_knn": 3e-6}


def _cost(metric: str, n: int, m: int, options: dict) -> float:
    """Estimated seconds of one pair: n m for the O(nm)-or-worse solvers, (n + m) log(n + m)
    (times the projections) for the sorting and k-NN ones."""
    if metric in ("wasserstein", "sinkhorn", "sinkhorn_divergence"):
        return _RATE[metric] * n * m
    size = (n + m) * math.log2(n + m + 1)
    if metric == "sliced_wasserstein":
        size *= options.get("n_projections", 100) / 10
    return _RATE[metric] * size


def _metric(name: str):
    module, _, _ = METRICS[name]
    return getattr(__import__(module, fromlist=[name]), name)


def _solve_batch(metric: str, options: dict, second: str,
                 pairs: list[tuple[int, int, int, int]],
                 *clouds: np.ndarray) -> list[tuple[int, int, float]]:
    """[(i, j, metric(clouds[a], clouds[b], **options))] for each (i, j, a, b) in pairs;
    ``second`` names the sequence of j ("xs" or "ys") in error messages."""
    fn = _metric(metric)
    pin_threads()
    out = []
    for i, j, a, b in pairs:
        try:
            value = fn(clouds[a], clouds[b], **options)
        except (ValueError, TypeError, FloatingPointError) as exc:
            raise type(exc)(f"xs[{i}] vs {second}[{j}]: {exc}") from None
        out.append((i, j, float(value)))
    return out


def _clouds(xs: object, name: str) -> list[np.ndarray]:
    if isinstance(xs, np.ndarray) and xs.ndim == 3:
        xs = list(xs)
    if isinstance(xs, (str, bytes)) or not isinstance(xs, Sequence):
        raise TypeError(f"{name} must be a sequence (list or tuple) of point clouds, got "
                        f"{type(xs).__name__}")
    if len(xs) == 0:
        raise ValueError(f"{name} is empty; it needs at least one point cloud")
    return [np.ascontiguousarray(to_numpy64(as_points(x, f"{name}[{i}]")))
            for i, x in enumerate(xs)]


def _batches(pairs: list[tuple[int, int]], cost: list[float],
             threads: int) -> list[list[int]]:
    """Consecutive runs of pair indices. A run closes once it holds MIN_TASK_SECONDS of
    estimated work and at least len(pairs) / MAX_TASKS pairs (so the scheduler never holds
    more than about MAX_TASKS tasks), or once it holds its share of the pairs for
    TASKS_PER_THREAD tasks per thread (load balance)."""
    least = max(1, math.ceil(len(pairs) / MAX_TASKS))
    cap = max(least, math.ceil(len(pairs) / (TASKS_PER_THREAD * threads)))
    out: list[list[int]] = []
    run: list[int] = []
    total = 0.0
    for k in range(len(pairs)):
        run.append(k)
        total += cost[k]
        if (total >= MIN_TASK_SECONDS and len(run) >= least) or len(run) >= cap:
            out.append(run)
            run, total = [], 0.0
    if run:
        out.append(run)
    return out


def pairwise(
    xs: Sequence[Any],
    ys: Sequence[Any] | None = None,
    *,
    metric: str = "wasserstein",
    client: Any = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    **options: Any,
) -> np.ndarray:
    r"""The matrix D_ij = D(xs[i], ys[j]) of ``metric`` between point clouds (uniform weights).

    Args:
        xs, ys: sequences of point clouds, arrays (n_i, d) (sizes may differ, d may not).
            ``ys=None``: the square matrix of xs against itself, each pair solved once:
            D_ij = D(xs[i], xs[j]) for i < j, mirrored to D_ji when the metric is symmetric
            (all but ``"kl_knn"``, which gets every ordered pair), and a zero diagonal for a
            divergence (every metric but ``"sinkhorn"``, whose diagonal is computed).
        metric: ``"wasserstein"``, ``"sinkhorn"``, ``"sinkhorn_divergence"``,
            ``"sliced_wasserstein"``, ``"kl_knn"`` or ``"jsd_knn"``.
        client: a ``dask.distributed.Client``, or a scheduler address such as
            ``"tcp://10.0.0.5:8786"`` (ConnectionError if it does not answer within 5 s), or
            None: in this process when the whole matrix is estimated to take under 10 s (or
            ``distributed`` is not installed), else on a ``LocalCluster`` of one
            single-threaded worker process per core, started and closed by this call.
        progress: a bar of pairs done / total on stderr (when it is a terminal).
        checkpoint: a file (.npz) that keeps the entries solved so far: written every 30 s
            and when the call ends, also by an error or an interrupt; a call with the same
            clouds, metric and options solves only the entries it lacks. A file of another
            matrix is a ValueError naming it (delete it or name another file), an option
            that is not a number or a string a TypeError. None (default): no file.
        **options: keyword arguments of the metric (``p``, ``eps``, ``seed``, ``k`` ...),
            the same for every pair.

    Returns:
        numpy float64 array of shape (len(xs), len(ys)); entry (i, j) is the float that
        ``metric(xs[i], ys[j], **options)`` returns.
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}; "
                         f"got {metric!r}")
    for bad in ("a", "b", "return_result"):
        if bad in options:
            raise TypeError(f"pairwise does not take {bad!r}: every cloud has uniform weights "
                            "and every entry is a float")
    fn = _metric(metric)
    try:
        inspect.signature(fn).bind(None, None, **options)
    except TypeError as exc:
        raise TypeError(f"{metric}: {exc}") from None
    _, zero_diagonal, symmetric = METRICS[metric]
    square = ys is None
    clouds = _clouds(xs, "xs")
    if not square:
        clouds += _clouds(ys, "ys")
    for c, cloud in enumerate(clouds[1:], 1):
        first = "xs[0]"
        this = f"xs[{c}]" if c < len(xs) else f"ys[{c - len(xs)}]"
        check_same_dim(clouds[0], cloud, (first, this))
    nx = len(xs)
    ny = nx if square else len(clouds) - nx
    # (i, j) entries to solve, each with the indices of its two clouds in ``clouds``
    if square:
        pairs = [(i, j) for i in range(nx) for j in range(nx)
                 if (i < j or (i > j and not symmetric) or (i == j and not zero_diagonal))]
        where = [(i, j) for i, j in pairs]
    else:
        pairs = [(i, j) for i in range(nx) for j in range(ny)]
        where = [(i, nx + j) for i, j in pairs]
    out = np.zeros((nx, ny))
    solved = np.zeros((nx, ny), dtype=bool)
    every = len(pairs)
    if checkpoint is not None:
        from otdiv.metrics._matrix_file import Checkpoint, key_of

        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a file path, got {type(checkpoint).__name__}")

        kept = Checkpoint(checkpoint, key_of(metric, fn, options, square, clouds),
                          mirror=square and symmetric)
        kept.read(out, solved)
        keep = [k for k, (i, j) in enumerate(pairs) if not solved[i, j]]
        pairs, where = [pairs[k] for k in keep], [where[k] for k in keep]
    cost = [_cost(metric, len(clouds[a]), len(clouds[b]), options) for a, b in where]
    with cluster_client(client, n_workers=local_workers(len(pairs)),
                        in_process=len(pairs) <= 1 or (os.cpu_count() or 1) < 2
                        or sum(cost) < IN_PROCESS_SECONDS) as dask_client:
        threads = 1 if dask_client is None else n_threads(dask_client)
        batches = _batches(pairs, cost, threads)
        bar = _progress_bar(every, progress, initial=every - len(pairs))
        try:
            for done in _run(dask_client, (metric, options, "xs" if square else "ys"), clouds,
                             pairs, where, batches):
                for i, j, value in done:
                    out[i, j] = value
                    solved[i, j] = True
                bar.update(len(done))
                if checkpoint is not None:
                    kept.write(out, solved)   # every 30 s
        finally:
            bar.close()
            if checkpoint is not None:  # also on an error or an interrupt: nothing is lost
                kept.write(out, solved, final=True)
    if square and symmetric:
        upper = np.triu_indices(nx, 1)
        out[upper[1], upper[0]] = out[upper]
    return out


def _progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="pairs", unit="pair", file=sys.stderr,
                disable=not (enabled and sys.stderr.isatty()))


def _run(client, head, clouds, pairs, where, batches):
    """Yield each batch's [(i, j, value)] as it finishes (in this process when no client)."""
    tasks = []
    for run in batches:
        used = sorted({c for k in run for c in where[k]})
        slot = {c: s for s, c in enumerate(used)}
        tasks.append(([(*pairs[k], slot[where[k][0]], slot[where[k][1]]) for k in run], used))
    if client is None:
        for task, used in tasks:
            yield _solve_batch(*head, task, *(clouds[c] for c in used))
        return
    from distributed import as_completed

    futures = client.scatter(clouds, hash=False)  # each cloud leaves this process once
    submitted = [client.submit(_solve_batch, *head, task,
                               *(futures[c] for c in used), pure=False)
                 for task, used in tasks]
    try:
        for future in as_completed(submitted):
            yield future.result()
    finally:
        client.cancel(submitted + futures)
