import os

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
