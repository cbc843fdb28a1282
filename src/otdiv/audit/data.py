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
        self.name = name
        self._range_checked = None  # the dtype the array's rows were checked against
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
        """n points: a sampler's fresh draw, checked at every call (shape (n, d) — or (n,)
        when d = 1 — and finite: a sampler may go wrong after its first draw), or n rows
        of the array drawn with replacement."""
        if self.sampler is None:
            return self.points[rng.integers(0, len(self.points), size=n)]
        out = self.sampler(n, rng)
        points = to_numpy64(out) if is_tensor(out) else np.asarray(out, dtype=np.float64)
        if points.shape == (n,) and self.dim == 1:
            points = points.reshape(n, 1)
        if points.shape != (n, self.dim):
            raise ValueError(f"{self.name} (sampler) returned shape {points.shape} when asked "
                             f"for n={n} points; expected ({n}, {self.dim})")
        if not np.isfinite(points).all():
            raise ValueError(f"{self.name} (sampler) returned NaN or inf when asked for "
                             f"n={n} points")
        return points

    def tensor(self, points: np.ndarray, dtype, device):
        """``points`` (drawn from this source) as a torch tensor of the critic's ``dtype``
        on ``device``, range-checked (:func:`check_range`): a sampler's every draw, an
        array's rows once for all."""
        import torch

        if self.sampler is not None:
            check_range(points, self.name, dtype)
        elif self._range_checked != dtype:
            check_range(self.points, self.name, dtype)
            self._range_checked = dtype
        return torch.as_tensor(points, dtype=dtype).to(device)

    def fixed(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A fixed evaluation set: all points (up to n of them) or n fresh draws."""
        if self.sampler is None:
            if len(self.points) <= n:
                return self.points
            return self.points[rng.choice(len(self.points), size=n, replace=False)]
        return self.draw(n, rng)


def check_range(points: np.ndarray, name: str, dtype) -> np.ndarray:
    """``points`` when every |value| fits the critic's floating ``dtype`` (a torch dtype);
    else ValueError naming ``name``: finite float64 data such as 1e200 would become inf in
    float32 and every score after it NaN."""
    import torch

    limit = torch.finfo(dtype).max
    top = float(np.max(np.abs(points))) if points.size else 0.0
    if top > limit:
        raise ValueError(f"{name} has values up to {top:.3g}, beyond the range of the "
                         f"critic's {str(dtype).replace('torch.', '')} ({limit:.3g}); "
                         "rescale the data")
    return points


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
