"""Property-based testing for distances, divergences and critics: ``otdiv.testing``.

Invariant checks (no hypothesis needed): :func:`assert_metric`, :func:`assert_divergence`,
:func:`assert_lipschitz`, :func:`assert_kantorovich_bound`. Hypothesis strategies live in
:mod:`otdiv.testing.strategies` (from a clone: ``pip install -e '.[testing]'``); their
names are also reachable here, loaded on first use, so that importing the checks does not
import hypothesis.

The first otdiv call in a process loads compiled kernels (0.2 to 1 s), longer than
hypothesis's default 200 ms deadline. Call :func:`warm_up` once before your properties, or
use the hypothesis settings profile ``"otdiv"`` (``deadline=None``), registered when the
strategies are loaded: ``settings.load_profile("otdiv")``.
"""

from __future__ import annotations

import importlib

from otdiv.testing.invariants import (
    assert_divergence,
    assert_kantorovich_bound,
    assert_lipschitz,
    assert_metric,
)

_STRATEGIES = (
    "PAIR_KINDS",
    "KnownCritic",
    "KnownPair",
    "Measure",
    "histogram_pairs",
    "histograms",
    "lipschitz_critics",
    "measure_pairs",
    "measure_tuples",
    "point_clouds",
)

__all__ = [
    "warm_up",
    "assert_divergence",
    "assert_kantorovich_bound",
    "assert_lipschitz",
    "assert_metric",
    "strategies",
    *_STRATEGIES,
]


def warm_up() -> None:
    """Compile or load from cache every otdiv kernel, so that later calls are fast.

    Runs each distance once on a two-point problem (numpy, float32 and float64). Call it
    once, e.g. at module level of a test file, before timing-sensitive code such as
    hypothesis properties with a deadline.
    """
    import numpy as np

    import otdiv

    for dtype in (np.float64, np.float32):
        x = np.array([[0.0], [1.0]], dtype=dtype)
        y = np.array([[0.5], [2.0]], dtype=dtype)
        a = np.array([0.5, 0.5], dtype=dtype)
        for p in (1, 2):
            otdiv.wasserstein(x, y, p=p)
            otdiv.wasserstein(x[:, 0], y[:, 0], p=p)
            otdiv.wasserstein(x, y, a, a, p=p)
            otdiv.sinkhorn(x, y, p=p, eps=0.5)
            otdiv.sinkhorn_divergence(x, y, p=p, eps=0.5)
        otdiv.sliced_wasserstein(x, y, n_projections=4, seed=0)
        otdiv.kl(a, a)
        otdiv.jsd(a, a)


def __getattr__(name: str):
    if name == "strategies" or name in _STRATEGIES:
        try:
            module = importlib.import_module("otdiv.testing.strategies")
        except ModuleNotFoundError as exc:
            if exc.name != "hypothesis":
                raise
            raise ImportError(
                f"otdiv.testing.{name} needs hypothesis; install it with "
                "pip install -e '.[testing]' (from a clone)"
            ) from exc
        return module if name == "strategies" else getattr(module, name)
    raise AttributeError(f"module 'otdiv.testing' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
