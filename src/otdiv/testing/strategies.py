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

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from otdiv._array import is_tensor, to_numpy64
from otdiv.testing.invariants import _fail

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

Array = Any
PAIR_KINDS = ("diracs", "translate", "sorted_1d", "permutation", "dirac_cloud")
_TINY = (1e-30, 1e-15, 1e-9)  # masses that stay normal in float32 and vanish next to 1


# The first otdiv call in a process loads compiled kernels, slower than hypothesis's default
# 200 ms deadline: ``settings.load_profile("otdiv")`` (or ``@settings(deadline=None)``).
settings.register_profile("otdiv", deadline=None)

_SIZES = {"n": 1, "d": 1, "count": 1, "max_size": 1, "max_n": 1, "max_d": 1, "max_depth": 1}
_FLAGS = {"zeros", "tiny", "absolutely_continuous", "zero_weights", "tiny_weights",
          "duplicates", "weighted", "flat"}


def _size(value: Any, name: str) -> int:
    """A size argument: an int >= its minimum (checked when given and when drawn)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < _SIZES[name]:
        raise ValueError(f"{name} must be >= {_SIZES[name]}, got {value}")
    return int(value)


def _check_arguments(args: dict[str, Any]) -> None:
    """Check a strategy's arguments when it is built, not when hypothesis first draws."""
    for name, value in args.items():
        if isinstance(value, st.SearchStrategy):
            continue  # drawn values are checked when drawn
        if name in _SIZES and value is not None:
            _size(value, name)
        elif name in _FLAGS and value is not None and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        elif name == "bound":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                 np.floating)):
                raise TypeError(f"bound must be a real number, got {type(value).__name__}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"bound must be a finite number > 0, got {value!r}")
        elif name == "p" and not (isinstance(value, (int, float, np.integer, np.floating))
                                  and not isinstance(value, bool) and value >= 1
                                  and math.isfinite(value)):
            raise ValueError(f"p must be a finite number >= 1, got {value!r}")
        elif name == "L" and value is not None and not (
                isinstance(value, (int, float, np.integer, np.floating))
                and not isinstance(value, bool) and 0 < value < math.inf):
            raise ValueError(f"L must be a finite number > 0, got {value!r}")
        elif name == "kind":
            _check_kind(value)
        elif name == "kinds":
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                raise TypeError(f"kinds must be a tuple of names, got {value!r}")
            if not tuple(value):
                raise ValueError("kinds must be a nonempty tuple of names, got ()")


def _strategy(fn):
    """``st.composite`` whose arguments are checked when the strategy is built."""
    composite = st.composite(fn)
    sig = inspect.signature(fn)
    sig = sig.replace(parameters=list(sig.parameters.values())[1:])

    @functools.wraps(fn)
    def build(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        values = dict(bound.arguments)
        values.update(values.pop("kwargs", {}))
        _check_arguments(values)
        return composite(*args, **kwargs)

    build.__signature__ = sig
    return build


def _value(draw, v, name: str | None = None):
    v = draw(v) if isinstance(v, st.SearchStrategy) else v
    return _size(v, name) if name in _SIZES else v


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


# ---------------------------------------------------------------------------- histograms


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


def _to_kind(arr, kind: str):
    if arr is None or kind == "numpy":
        return arr
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr))


def _check_kind(kind: str) -> None:
    if kind not in ("numpy", "torch"):
        raise ValueError(f"kind must be 'numpy' or 'torch', got {kind!r}")


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


# ---------------------------------------------------------------------------- known pairs


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
            from otdiv.testing.invariants import _nonnegative

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


# ---------------------------------------------------------------------------- critics


@dataclass(frozen=True, eq=False)
class KnownCritic:
    """A torch critic R^d -> R with Lipschitz constant exactly ``L`` (Euclidean norms).

    ``module`` maps an (n, d) tensor of ``dtype`` to (n, 1) scores; ``direction`` is a unit
    vector u along which ``f(x + s u) - f(x) = L s`` for every x (``kind == "linear"``; None
    for ``"groupsort"``).
    """

    module: Any
    L: float
    d: int
    kind: str
    direction: np.ndarray | None


_GROUPSORT_CLASS = None


def _groupsort_critic_class():
    """A GroupSort network (built on first use so that importing this module needs no torch).

    Layers x -> W_k x + c_k (W_k orthogonal) -> sort each consecutive pair of coordinates,
    then a final row w with ||w|| = L. Almost everywhere the Jacobian is w^T Π_k (P_k W_k)
    with permutations P_k, whose norm is exactly ||w|| = L, so the constant is L.
    """
    global _GROUPSORT_CLASS
    if _GROUPSORT_CLASS is None:
        import torch

        class GroupSortCritic(torch.nn.Module):
            def __init__(self, hidden: list, head: torch.nn.Linear):
                super().__init__()
                self.hidden = torch.nn.ModuleList(hidden)
                self.head = head

            @staticmethod
            def group_sort(h):
                k = 2 * (h.shape[-1] // 2)
                pairs = h[..., :k].reshape(*h.shape[:-1], k // 2, 2)
                pairs = torch.sort(pairs, dim=-1).values.reshape(*h.shape[:-1], k)
                return torch.cat([pairs, h[..., k:]], dim=-1)

            def forward(self, x):
                for layer in self.hidden:
                    x = self.group_sort(layer(x))
                return self.head(x)

        _GROUPSORT_CLASS = GroupSortCritic
    return _GROUPSORT_CLASS


@_strategy
def lipschitz_critics(
    draw,
    d: int | st.SearchStrategy[int] | None = None,
    *,
    L: float | st.SearchStrategy[float] | None = None,
    kinds: tuple[str, ...] = ("linear", "groupsort"),
    max_d: int = 3,
    max_depth: int = 2,
    dtype=None,
) -> KnownCritic:
    """Torch critics with a known Lipschitz constant L.

    * ``"linear"`` — ``torch.nn.Linear(d, 1)`` whose weight row has norm L (its spectral norm);
    * ``"groupsort"`` — 1..max_depth orthogonal d x d layers with GroupSort (pairwise sort)
      activations and a final row of norm L: a network whose constant is exactly L.

    Args:
        d: input dimension (int or strategy); None: 1..max_d.
        L: the constant (float or strategy); None: drawn in [0.1, 10].
        dtype: ``torch.float32``/``"float32"``, ``torch.float64``/``"float64"``, None: either.
    """
    import torch

    unknown = set(kinds) - {"linear", "groupsort"}
    if unknown or not kinds:
        raise ValueError(f"kinds must be a nonempty subset of ('linear', 'groupsort'), "
                         f"got {kinds!r}")
    d = _value(draw, d, "d") if d is not None else draw(st.integers(1, max_d))
    L = float(_value(draw, L)) if L is not None else draw(st.floats(0.1, 10.0))
    if dtype is None:
        dtype = draw(st.sampled_from(["float64", "float32"]))
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    which = draw(st.sampled_from(kinds))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))

    def unit_row():
        w = torch.randn(1, d, generator=gen, dtype=torch.float64)
        return w / torch.linalg.vector_norm(w)

    head = torch.nn.Linear(d, 1, dtype=tdtype)
    w = unit_row()
    with torch.no_grad():
        head.weight.copy_(L * w)
        head.bias.copy_(torch.randn(1, generator=gen, dtype=torch.float64))
    if which == "linear":
        module = head
        direction = w[0].numpy()
    else:
        hidden = []
        for _ in range(draw(st.integers(1, max_depth))):
            q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
            layer = torch.nn.Linear(d, d, dtype=tdtype)
            with torch.no_grad():
                layer.weight.copy_(q * torch.sign(torch.diagonal(r)))  # Haar-distributed
                layer.bias.copy_(torch.randn(d, generator=gen, dtype=torch.float64))
            hidden.append(layer)
        module = _groupsort_critic_class()(hidden, head)
        direction = None  # no single direction is tight everywhere
    module.requires_grad_(False)
    return KnownCritic(module, L, d, which, direction)
