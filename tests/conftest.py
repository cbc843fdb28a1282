import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# the suite's own profiles ("otdiv" is the one otdiv.testing registers for users)
settings.register_profile(
    "suite", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
# CI replays the same examples on every run (no flaky reds); developers explore new ones
settings.register_profile("suite-ci", parent=settings.get_profile("suite"), derandomize=True,
                          database=None)
settings.load_profile("suite-ci" if os.environ.get("CI") else "suite")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "threads(numba=None, torch=None): run with that many numba / torch threads")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def threads(request):
    """The one thread fixture: numba's and torch's thread counts are restored after every
    test (the audit and the CLI set torch to one thread), and a test or module marked
    ``@pytest.mark.threads(numba=1)`` / ``threads(torch=1)`` runs with that many.

    One numba thread for property-based modules: thousands of calls on a few points, where
    waking numba's pool costs ~50x the work on a busy 2-core machine (the kernels are the
    same code either way); one torch thread for tiny MLPs, whose intra-op threads only add
    contention on a shared CPU.
    """
    marker = request.node.get_closest_marker("threads")
    pins = dict(marker.kwargs) if marker else {}
    libs = {name: sys.modules.get(name) for name in ("numba", "torch")}
    for name in pins:
        if libs[name] is None:
            libs[name] = __import__(name)
    before = {name: lib.get_num_threads() for name, lib in libs.items() if lib is not None}
    for name, n in pins.items():
        libs[name].set_num_threads(n)
    yield
    for name, n in before.items():
        libs[name].set_num_threads(n)


@pytest.fixture(scope="module")
def client():
    """A Dask client on a local cluster of 2 single-threaded worker processes, one per test
    module that asks for it (skipped without ``distributed``)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c
