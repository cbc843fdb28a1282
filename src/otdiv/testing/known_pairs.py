"""Pairs of weighted point clouds that carry their exact W_p (closed forms)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from otdiv._array import is_tensor
from otdiv.testing._report import _fail
from otdiv.testing._strategy import _check_kind, _float_dtype, _strategy, _to_kind, _value
from otdiv.testing.measures import _cloud, _coordinates

Array = Any
PAIR_KINDS = ("diracs", "translate", "sorted_1d", "permutation", "dirac_cloud")


@dataclass(frozen=True, eq=False)
class KnownPair:
    """Two weighted point clouds with their exact W_p.

    ``value`` is W_p in exact arithmetic on the stored arrays, up to the rounding of building
    them (``tol``). Near W_p = 0 the p-th root magnifies rounding, so :meth:`check` also
    accepts a W_p^p within ``cost_tol``.
    """

    x: Array
    y: Array
    a: Array | None
    b: Array | None
    p: float
    value: float
    kind: str
    tol: float
    cost_tol: float

    def check(self, computed: Any, *, tol: float | None = None) -> None:
        """Raise AssertionError unless ``computed`` (a float or 0-d tensor) is W_p.

        ``tol`` (None: the pair's own ``tol``) widens or narrows the accepted error
        ``|computed - value| <= tol``; the W_p^p tolerance ``cost_tol`` is scaled with it.
        """
        if tol is not None:
            from otdiv.testing._report import _nonnegative

            tol = _nonnegative(tol, "tol")
        inputs = {"x": self.x, "y": self.y, "a": self.a, "b": self.b}
        if is_tensor(computed):
            computed = computed.detach().cpu().numpy()
        if np.iscomplexobj(computed) or np.isnan(computed):
            _fail("KnownPair.check", "a real value", f"computed {computed!r}", inputs)
        w = float(computed)
        tol = self.tol if tol is None else tol
        cost_tol = self.cost_tol * tol / self.tol if self.tol > 0 else tol
        if abs(w - self.value) <= tol:
            return
        if math.isfinite(w) and w >= 0 and abs(w**self.p - self.value**self.p) <= cost_tol:
            return
        _fail("KnownPair.check", f"known answer W_p = {self.value!r} ({self.kind}, p={self.p})",
              f"computed {w!r}, expected {self.value!r} (difference {abs(w - self.value):.3g} "
              f"> tol {tol:.3g})", inputs)


def _tolerances(dt: np.dtype, p: float, *arrays) -> tuple[float, float]:
    scale = max((float(np.max(np.abs(v))) for v in arrays if v is not None and v.size),
                default=0.0)
    tol = 256 * float(np.finfo(dt).eps) * (1.0 + scale)
    return tol, p * tol * (1.0 + 2.0 * scale) ** (p - 1)


def _norms(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(v, dtype=np.float64).reshape(v.shape[0], -1), axis=1)


@_strategy
def measure_pairs(
    draw,
    p: float | st.SearchStrategy[float] = 1.0,
    *,
    kinds: tuple[str, ...] = PAIR_KINDS,
    d: int | st.SearchStrategy[int] | None = None,
    max_n: int = 8,
    max_d: int = 3,
    dtype=np.float64,
    bound: float = 100.0,
    zero_weights: bool = True,
    tiny_weights: bool = True,
    kind: str = "numpy",
) -> KnownPair:
    """Pairs of weighted point clouds whose W_p is known in closed form.

    Kinds (``kinds`` selects among them):

    * ``"diracs"`` — one point each: W_p = ||x - y|| for every p;
    * ``"translate"`` — y = x + t, same weights: W_p = ||t|| for every p >= 1 (Jensen gives
      W_1 >= ||E x - E y|| = ||t||, the translation coupling gives W_p <= ||t||);
    * ``"sorted_1d"`` — n points each, uniform weights, on the line, shuffled:
      ``W_p^p = (1/n) Σ |x_(i) - y_(i)|^p`` over the sorted samples;
    * ``"permutation"`` — y, b a permutation of x, a: W_p = 0;
    * ``"dirac_cloud"`` — a point against a weighted cloud (either side): the only coupling
      gives W_p^p = Σ_j b_j ||x - y_j||^p.

    Args:
        p: the exponent (float or strategy), >= 1.
        d: dimension (ignored by ``"sorted_1d"``); None: 1..max_d.
        dtype: float32 or float64 (None: either).
        zero_weights, tiny_weights: drawn weights may contain zeros / tiny masses.
        kind: ``"numpy"`` or ``"torch"``.
    """
    _check_kind(kind)
    unknown = set(kinds) - set(PAIR_KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be a nonempty subset of {PAIR_KINDS}, got {kinds!r}")
    p = float(_value(draw, p))
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    dt = _float_dtype(dtype if dtype is not None else draw(st.sampled_from(["float64",
                                                                            "float32"])))
    which = draw(st.sampled_from(kinds))
    d = _value(draw, d, "d") if d is not None else draw(st.integers(1, max_d))
    n = draw(st.integers(1, max_n))

    if which == "diracs":
        x = _coordinates(draw, (1, d), dt, bound)
        y = _coordinates(draw, (1, d), dt, bound)
        a = b = None
        value = float(_norms(x - y.astype(np.float64))[0])
    elif which == "translate":
        x, a = _cloud(draw, n, d, dt, None, True, False, bound, zero_weights,
                      tiny_weights)
        t = _coordinates(draw, (d,), dt, bound)
        y = (x + t).astype(dt)
        b = a
        value = float(np.linalg.norm(t.astype(np.float64)))
    elif which == "sorted_1d":
        x = _coordinates(draw, (n,), dt, bound)
        y = _coordinates(draw, (n,), dt, bound)
        gaps = np.abs(np.sort(x.astype(np.float64)) - np.sort(y.astype(np.float64)))
        value = float(np.mean(gaps**p) ** (1.0 / p)) if gaps.max() > 0 else 0.0
        a = b = None
    elif which == "permutation":
        x, a = _cloud(draw, n, d, dt, None, True, False, bound, zero_weights,
                      tiny_weights)
        perm = np.array(draw(st.permutations(range(n))), dtype=np.int64)
        y = x[perm]
        b = None if a is None else a[perm]
        value = 0.0
    else:  # dirac_cloud
        x = _coordinates(draw, (1, d), dt, bound)
        y, b = _cloud(draw, n, d, dt, None, True, False, bound, zero_weights,
                      tiny_weights)
        bw = np.full(n, 1.0 / n) if b is None else b.astype(np.float64) / b.astype(
            np.float64).sum()
        dist = _norms(y.astype(np.float64) - x.astype(np.float64))
        value = float(np.sum(bw * dist**p) ** (1.0 / p))
        a = None
        if draw(st.booleans()):
            x, y, a, b = y, x, b, a
    tol, cost_tol = _tolerances(dt, p, x, y)
    return KnownPair(_to_kind(x, kind), _to_kind(y, kind), _to_kind(a, kind),
                     _to_kind(b, kind), p, value, which, tol, cost_tol)


