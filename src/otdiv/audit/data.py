"""Where the samples of P and Q come from: arrays (minibatches drawn with replacement) or
samplers ``f(n, rng) -> (n, d) array`` (fresh draws), and the hold-out split of a sample.

:func:`sources` turns the ``real``/``fake`` arguments of :func:`~otdiv.audit.train_critic`
and :func:`~otdiv.audit.audit_critic` into two :class:`Source` objects of one dimension.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from otdiv._array import as_points, check_same_dim, is_tensor, to_numpy64

Data = Any  # an (n, d) array/tensor, or a sampler ``f(n, rng) -> (n, d) array``


class Source:
    """Minibatches from an array (drawn with replacement) or from a sampler (fresh draws)."""

    def __init__(self, data: Data, name: str):
        if callable(data) and not is_tensor(data) and not isinstance(data, np.ndarray):
            self.sampler = data
            self.points = None
            probe = as_points(data(2, np.random.default_rng(0)), f"{name} (sampler output)")
            self.dim = probe.shape[1]
        else:
            self.sampler = None
            self.points = to_numpy64(as_points(data, name))
            self.dim = self.points.shape[1]

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.sampler is not None:
            return np.asarray(self.sampler(n, rng), dtype=np.float64).reshape(n, self.dim)
        return self.points[rng.integers(0, len(self.points), size=n)]

    def fixed(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A fixed evaluation set: all points (up to n of them) or n fresh draws."""
        if self.sampler is None:
            if len(self.points) <= n:
                return self.points
            return self.points[rng.choice(len(self.points), size=n, replace=False)]
        return self.draw(n, rng)


def sources(real: Data, fake: Data) -> tuple[Source, Source]:
    """The two sources of ``real`` (P) and ``fake`` (Q); ValueError when their dimensions
    differ."""
    r, f = Source(real, "real"), Source(fake, "fake")
    if r.dim != f.dim:
        check_same_dim(np.zeros((1, r.dim)), np.zeros((1, f.dim)), ("real", "fake"))
    return r, f


def holdout_split(points: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, held out): the first and second half of a random permutation of the rows.

    With n rows, train has ⌊n/2⌋ and held out n − ⌊n/2⌋: a critic trained on one half is
    audited on points it never saw.
    """
    idx = rng.permutation(len(points))
    half = len(points) // 2
    return points[idx[:half]], points[idx[half:]]


def check_pair(real: object, fake: object) -> tuple[np.ndarray, np.ndarray]:
    """Two point clouds (n, d), (m, d) as float64 numpy arrays, for the CLI."""
    x = to_numpy64(as_points(real, "real"))
    y = to_numpy64(as_points(fake, "fake"))
    check_same_dim(x, y, ("real", "fake"))
    return x, y
