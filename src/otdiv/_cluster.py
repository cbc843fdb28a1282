"""Where many independent jobs run: a Dask ``distributed`` cluster, or this process.

Shared by :func:`otdiv.pairwise` and :func:`otdiv.audit.sweep.sweep`. ``client`` may be a
``distributed.Client``, a scheduler address string, or None; None starts an embedded
``LocalCluster`` (one single-threaded worker process per core) for the length of the call,
or runs in this process when the caller says the work is small or ``distributed`` is not
installed. Nothing here imports dask until a cluster is asked for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# every thread pool a job can start, at one thread: workers are single-threaded processes, so
# a job that spawned one thread per core would fight the other workers for the same cores
THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1"}

CONNECT_TIMEOUT = 5.0  # seconds to reach a scheduler given by its address


def have_distributed() -> bool:
    """True when ``dask.distributed`` can be imported (the ``otdiv[dask]`` extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A Client of the scheduler at ``address``; ConnectionError (one line) if it does not
    answer within ``timeout`` seconds."""
    if not have_distributed():
        raise ImportError("a scheduler address needs dask.distributed: "
                          "pip install 'otdiv[dask]'")
    from distributed import Client

    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"client: a scheduler address is a string such as "
                         f"'tcp://10.0.0.5:8786', got {address!r}")
    _probe(address, timeout)
    try:
        return Client(address, timeout=timeout)
    except Exception as exc:  # OSError on a timeout, ValueError on a malformed address, ...
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r}: "
                              f"{_one_line(exc)}") from None


def _probe(address: str, timeout: float) -> None:
    """Fail at once when a tcp address refuses connections (Client would retry until its
    timeout); other schemes (tls://, ucx://, ...) are left to Client."""
    import socket

    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return  # Client reports the malformed address
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r}: "
                              f"{_one_line(reason)}") from None


def n_threads(client) -> int:
    """Total worker threads of ``client``'s cluster (at least 1)."""
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def local_workers(n_jobs: int, workers: int | None = None) -> int:
    """Worker processes for an embedded cluster: ``workers``, else one per core, at most
    one per job."""
    if workers is not None:
        return workers
    return max(1, min(os.cpu_count() or 1, n_jobs))


@contextmanager
def cluster_client(client: Any, *, n_workers: int, in_process: bool = False) -> Iterator[Any]:
    """Yield a Client for ``client`` (a Client, an address, or None), or None to run here.

    None with ``in_process`` (or without ``distributed``) yields None; None otherwise starts
    a ``LocalCluster(n_workers, threads_per_worker=1, processes=True)`` whose workers get
    :data:`THREAD_ENV`, and closes it on exit. A Client passed in is left open.
    """
    if client is not None and not isinstance(client, str):
        if not hasattr(client, "submit") or not hasattr(client, "scatter"):
            raise TypeError("client must be a dask.distributed.Client, a scheduler address "
                            f"string or None, got {type(client).__name__}")
        yield client
        return
    if isinstance(client, str):
        own = connect(client)
        try:
            yield own
        finally:
            own.close()
        return
    if in_process or not have_distributed():
        yield None
        return
    import logging

    from distributed import Client, LocalCluster

    try:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", env=dict(THREAD_ENV),
                               silence_logs=logging.ERROR)
    except Exception as exc:
        # the usual cause: a script whose top level runs again in each spawned worker
        raise RuntimeError(
            f"could not start local Dask worker processes ({_one_line(exc)}); in a script, "
            "run this under `if __name__ == \"__main__\":`, or pass client=") from None
    try:
        own = Client(cluster)
        try:
            yield own
        finally:
            own.close()
    finally:
        cluster.close()


def worker_name() -> str:
    """The address of the Dask worker running this code, or "local" outside a worker."""
    if "distributed" not in sys.modules:
        return "local"
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:
        return "local"


def pin_threads() -> None:
    """On a Dask worker: numba and torch at one thread in this task (each worker thread runs
    its own task, so more would oversubscribe the cores). Outside a worker: nothing."""
    if worker_name() == "local":
        return
    from otdiv.kernels._numba import nb  # numba with otdiv's threading layer chosen first

    if nb.get_num_threads() != 1:
        nb.set_num_threads(1)
    if "torch" in sys.modules:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
