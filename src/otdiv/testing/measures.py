"""Strategies for measures: histograms (probability vectors) and weighted point clouds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from otdiv._array import to_numpy64
from otdiv.testing._strategy import _check_kind, _float_dtype, _strategy, _to_kind, _value

Array = Any
_TINY = (1e-30, 1e-15, 1e-9)  # masses that stay normal in float32 and vanish next to 1


def _masses(draw, n: int, zeros: bool, tiny: bool) -> np.ndarray:
    # decimal masses (0.1 + 0.2 != 0.3) make running sums overshoot 1 by a rounding error
    choices = [st.floats(0.01, 1.0), st.sampled_from((0.1, 0.2, 0.3, 0.7))]
    if zeros:
        choices.append(st.just(0.0))
    if tiny:
        choices.append(st.sampled_from(_TINY))
    w = np.array(draw(st.lists(st.one_of(choices), min_size=n, max_size=n)), dtype=np.float64)
    if not w.sum() > 0:
        w[draw(st.integers(0, n - 1))] = 1.0
    return w / w.sum()


@_strategy
def histograms(
    draw,
    n: int | st.SearchStrategy[int] | None = None,
    *,
    max_size: int = 8,
    zeros: bool = True,
    tiny: bool = True,
    dtype=np.float64,
) -> np.ndarray:
    """Probability vectors: nonnegative, sum 1 (to the dtype's rounding), at least one > 0.

    Args:
        n: length (int or strategy); None: 1 to ``max_size``.
        zeros: allow zero masses.
        tiny: allow tiny masses (1e-30, 1e-15, 1e-9 before normalization).
        dtype: float32 or float64.
    """
    dt = _float_dtype(dtype)
    n = _value(draw, n, "n") if n is not None else draw(st.integers(1, max_size))
    return _masses(draw, n, zeros, tiny).astype(dt)


@_strategy
def histogram_pairs(
    draw,
    n: int | st.SearchStrategy[int] | None = None,
    *,
    max_size: int = 8,
    zeros: bool = True,
    tiny: bool = True,
    absolutely_continuous: bool = False,
    dtype=np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Two histograms ``(p, q)`` of one length.

    ``absolutely_continuous=True`` keeps ``q > 0`` wherever ``p > 0``, so KL(p || q) is finite.
    """
    dt = _float_dtype(dtype)
    n = _value(draw, n, "n") if n is not None else draw(st.integers(1, max_size))
    p = _masses(draw, n, zeros, tiny)
    q = _masses(draw, n, zeros, tiny)
    if absolutely_continuous:
        q = np.where((p > 0) & (q == 0), draw(st.floats(0.01, 1.0)), q)
        q = q / q.sum()
    return p.astype(dt), q.astype(dt)


# ---------------------------------------------------------------------------- point clouds


@dataclass(frozen=True, eq=False)
class Measure:
    """A weighted point cloud: points ``x`` ((n,) or (n, d)) and weights ``a`` (None: uniform)."""

    x: Array
    a: Array | None = None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        return 1 if self.x.ndim == 1 else int(self.x.shape[1])

    def points(self) -> np.ndarray:
        """The points as a float64 (n, d) numpy array."""
        return to_numpy64(self.x).reshape(self.n, self.d)

    def weights(self) -> np.ndarray:
        """The weights as float64 numpy, normalized to sum 1 (uniform when ``a`` is None)."""
        if self.a is None:
            return np.full(self.n, 1.0 / self.n)
        w = to_numpy64(self.a)
        return w / w.sum()


def _coordinates(draw, shape, dt: np.dtype, bound: float) -> np.ndarray:
    elements = st.floats(-bound, bound, width=8 * dt.itemsize, allow_subnormal=False)
    return draw(hnp.arrays(dt, shape, elements=elements))


def _duplicate_rows(draw, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    if n < 2:
        return x
    copies = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                           max_size=n // 2))
    x = x.copy()
    for dst, src in copies:
        x[dst] = x[src]
    return x


def _cloud(draw, n, d, dt, weighted, duplicates, flat, bound, zeros, tiny):
    shape = (n,) if flat else (n, d)
    x = _coordinates(draw, shape, dt, bound)
    if duplicates:
        x = _duplicate_rows(draw, x)
    if weighted is None:
        weighted = draw(st.booleans())
    a = _masses(draw, n, zeros=zeros, tiny=tiny).astype(dt) if weighted else None
    return x, a


@_strategy
def point_clouds(
    draw,
    n: int | st.SearchStrategy[int] | None = None,
    d: int | st.SearchStrategy[int] | None = None,
    *,
    max_n: int = 8,
    max_d: int = 3,
    dtype=None,
    weighted: bool | None = None,
    zero_weights: bool = True,
    tiny_weights: bool = True,
    duplicates: bool = True,
    flat: bool | None = None,
    bound: float = 100.0,
    kind: str = "numpy",
) -> Measure:
    """Weighted point clouds.

    Args:
        n, d: number of points and dimension (int or strategy); None: 1..max_n, 1..max_d.
        dtype: float32, float64 or None (either).
        weighted: weights drawn (True), None for uniform (False), or either (None).
        zero_weights: drawn weights may contain zeros (at least one stays > 0).
        tiny_weights: drawn weights may contain tiny masses (down to 1e-30 relative).
        duplicates: some points may be copies of others.
        flat: shape (n,) instead of (n, 1) when d = 1; None: either.
        bound: coordinates lie in [-bound, bound].
        kind: ``"numpy"`` or ``"torch"`` (CPU tensors).
    """
    _check_kind(kind)
    n = _value(draw, n, "n") if n is not None else draw(st.integers(1, max_n))
    d = _value(draw, d, "d") if d is not None else draw(st.integers(1, max_d))
    dt = _float_dtype(dtype if dtype is not None else draw(st.sampled_from(["float64",
                                                                            "float32"])))
    if flat is None:
        flat = d == 1 and draw(st.booleans())
    x, a = _cloud(draw, n, d, dt, weighted, duplicates, flat and d == 1, bound, zero_weights,
                  tiny_weights)
    return Measure(_to_kind(x, kind), _to_kind(a, kind))


@_strategy
def measure_tuples(
    draw,
    count: int = 3,
    *,
    d: int | st.SearchStrategy[int] | None = None,
    max_d: int = 3,
    dtype=None,
    **kwargs,
) -> tuple[Measure, ...]:
    """``count`` point clouds of one dimension and dtype (for metric axioms); other keyword
    arguments go to :func:`point_clouds`."""
    d = _value(draw, d, "d") if d is not None else draw(st.integers(1, max_d))
    dt = dtype if dtype is not None else draw(st.sampled_from(["float64", "float32"]))
    flat = kwargs.pop("flat", None)
    if flat is None:
        flat = d == 1 and draw(st.booleans())
    return tuple(draw(point_clouds(d=d, dtype=dt, flat=flat, **kwargs)) for _ in range(count))


