"""Hypothesis strategies for distances between distributions.

They need hypothesis, the ``testing`` extra (from a clone: ``pip install -e '.[testing]'``).

* :func:`histograms`, :func:`histogram_pairs` — probability vectors with zeros and tiny masses;
* :func:`point_clouds`, :func:`measure_tuples` — weighted point clouds (:class:`Measure`) of any
  size, dimension and dtype, with duplicate points and zero weights;
* :func:`measure_pairs` — pairs of measures that carry their exact W_p (:class:`KnownPair`);
* :func:`lipschitz_critics` — torch critics whose Lipschitz constant is known exactly
  (:class:`KnownCritic`).

Each strategy takes plain values or strategies for its size arguments, so
``point_clouds(n=st.integers(1, 50))`` and ``point_clouds(n=5)`` both work.
"""

from __future__ import annotations

from otdiv.testing.critics import KnownCritic, lipschitz_critics
from otdiv.testing.known_pairs import PAIR_KINDS, KnownPair, measure_pairs
from otdiv.testing.measures import (
    Measure,
    histogram_pairs,
    histograms,
    measure_tuples,
    point_clouds,
)

__all__ = [
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
]
