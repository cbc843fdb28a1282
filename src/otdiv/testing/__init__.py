"""Property-based testing for distances, divergences and critics: ``otdiv.testing``.

Invariant checks (no hypothesis needed): :func:`assert_metric`, :func:`assert_divergence`,
:func:`assert_lipschitz`, :func:`assert_kantorovich_bound`. Hypothesis strategies live in
:mod:`otdiv.testing.strategies` (install ``otdiv[testing]``); their names are also reachable
here, loaded on first use, so that importing the checks does not import hypothesis.
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
    "assert_divergence",
    "assert_kantorovich_bound",
    "assert_lipschitz",
    "assert_metric",
    "strategies",
    *_STRATEGIES,
]


def __getattr__(name: str):
    if name == "strategies" or name in _STRATEGIES:
        try:
            module = importlib.import_module("otdiv.testing.strategies")
        except ModuleNotFoundError as exc:
            if exc.name != "hypothesis":
                raise
            raise ImportError(
                f"otdiv.testing.{name} needs hypothesis; install it with "
                "pip install 'otdiv[testing]'"
            ) from exc
        return module if name == "strategies" else getattr(module, name)
    raise AttributeError(f"module 'otdiv.testing' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
