"""Invariant checks for users' test suites: metric and divergence axioms, Lipschitz bounds.

Each check evaluates a user's function on the samples it is given and raises an
``AssertionError`` naming the axiom, the inputs and the values when the axiom fails. None of
them needs hypothesis: pass explicit samples, or draw them with :mod:`otdiv.testing.strategies`.

Numbers are compared with a tolerance ``atol + rtol * scale`` because a correct implementation
in floating point breaks an exact axiom by rounding; a real bug breaks it by far more.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from otdiv._array import (
    array_kind,
    as_points,
    as_weights,
    check_callable,
    check_positive,
    check_scores,
    is_tensor,
    to_numpy64,
)

__all__ = [
    "assert_divergence",
    "assert_kantorovich_bound",
    "assert_lipschitz",
    "assert_metric",
]

_MAX_SHOWN = 2000  # characters of one input's repr in a failure message


# ---------------------------------------------------------------------------- formatting


def _show(obj: Any) -> str:
    """A readable, copy-pasteable description of one input (arrays at full precision)."""
    if is_tensor(obj):
        arr = obj.detach().cpu().numpy()
        text = f"torch.tensor({_show(arr)}, dtype={obj.dtype})"
    elif isinstance(obj, np.ndarray):
        text = np.array2string(
            obj, separator=", ", precision=17, floatmode="maxprec", threshold=200,
            max_line_width=sys.maxsize,
        )
        text = " ".join(line.strip() for line in text.splitlines())  # one line per input
        text = f"np.array({text}, dtype=np.{obj.dtype})"
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        parts = (f"{f.name}={_show(getattr(obj, f.name))}" for f in dataclasses.fields(obj))
        text = f"{type(obj).__name__}({', '.join(parts)})"
    elif isinstance(obj, (tuple, list)):
        inner = ", ".join(_show(o) for o in obj)
        text = f"({inner})" if isinstance(obj, tuple) else f"[{inner}]"
    else:
        text = repr(obj)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + f"... ({len(text) - _MAX_SHOWN} more characters)"
    return text


def _fail(check: str, axiom: str, detail: str, inputs: dict[str, Any]) -> None:
    lines = [f"{check}: {axiom} violated", f"  {detail}", "  counterexample:"]
    lines += [f"    {name} = {_show(value)}" for name, value in inputs.items()]
    raise AssertionError("\n".join(lines))


def _labels(count: int) -> list[str]:
    return list("xyz")[:count] if count <= 3 else [f"s{i}" for i in range(count)]


def _scalar(value: Any, what: str, check: str, inputs: dict[str, Any]) -> float:
    """A function's value as a Python float; NaN or a complex number is a failure."""
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    if np.iscomplexobj(value):
        _fail(check, "a real value", f"{what} = {value!r}", inputs)
    try:
        number = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise TypeError(
            f"{check}: {what} must return a real number, got {type(value).__name__}"
        ) from None
    if math.isnan(number):
        _fail(check, "a defined value (not NaN)", f"{what} = nan", inputs)
    return number


def _tolerance(scale: float, atol: float, rtol: float) -> float:
    return atol + rtol * abs(scale)


def _real(value: Any, name: str) -> float:
    """A real number argument (Python or numpy scalar, not bool) as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _nonnegative(value: Any, name: str) -> float:
    number = _real(value, name)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _check_tolerances(atol: float, rtol: float) -> tuple[float, float]:
    return _nonnegative(atol, "atol"), _nonnegative(rtol, "rtol")


# ---------------------------------------------------------------------------- metric


def assert_metric(
    dist: Callable[[Any, Any], Any],
    *samples: Any,
    atol: float = 1e-9,
    rtol: float = 1e-7,
) -> None:
    """Check d(x, y) >= 0, d(x, x) = 0, d(x, y) = d(y, x), d(x, z) <= d(x, y) + d(y, z).

    .. math:: d(x, y) \\ge 0,\\quad d(x, x) = 0,\\quad d(x, y) = d(y, x),\\quad
              d(x, z) \\le d(x, y) + d(y, z)

    Every sample is checked for identity, every pair for nonnegativity and symmetry, every
    ordered triple for the triangle inequality. Values may be floats or 0-d tensors; ``+inf``
    is allowed (a distance between measures of different mass, say) but NaN is a failure.
    ``d(x, y) = 0`` for ``x != y`` is *not* a failure: equal measures have many
    representations (duplicate points, permuted or split weights).

    Args:
        dist: ``dist(u, v)`` for two samples.
        samples: two or more points of the space (anything ``dist`` accepts).
        atol, rtol: slack ``atol + rtol * scale``, where scale is the largest value compared.

    Raises:
        AssertionError: naming the axiom, the samples and the values.

    Example:
        >>> import numpy as np
        >>> from otdiv import wasserstein
        >>> from otdiv.testing import assert_metric
        >>> x, y, z = np.array([0.0, 1.0]), np.array([3.0]), np.array([-1.0, 5.0])
        >>> assert_metric(wasserstein, x, y, z)
    """
    check = "assert_metric"
    if len(samples) < 2:
        raise ValueError(f"{check} needs at least two samples, got {len(samples)}")
    check_callable(dist, "dist")
    atol, rtol = _check_tolerances(atol, rtol)
    names = _labels(len(samples))
    values: dict[tuple[int, int], float] = {}

    def d(i: int, j: int) -> float:
        if (i, j) not in values:
            inputs = {names[i]: samples[i]} if i == j else {names[i]: samples[i],
                                                             names[j]: samples[j]}
            values[i, j] = _scalar(dist(samples[i], samples[j]),
                                   f"d({names[i]}, {names[j]})", check, inputs)
        return values[i, j]

    for i, name in enumerate(names):
        v = d(i, i)
        if abs(v) > atol:
            _fail(check, "identity d(x, x) = 0",
                  f"d({name}, {name}) = {v!r}, expected 0 (atol={atol:g})",
                  {name: samples[i]})
    for i, j in itertools.combinations(range(len(samples)), 2):
        ni, nj = names[i], names[j]
        vij, vji = d(i, j), d(j, i)
        pair = {ni: samples[i], nj: samples[j]}
        for (u, w), v in (((ni, nj), vij), ((nj, ni), vji)):
            if v < -atol:
                _fail(check, "nonnegativity d(x, y) >= 0", f"d({u}, {w}) = {v!r} < 0", pair)
        if vij != vji and not abs(vij - vji) <= _tolerance(max(abs(vij), abs(vji)), atol, rtol):
            _fail(check, "symmetry d(x, y) = d(y, x)",
                  f"d({ni}, {nj}) = {vij!r} but d({nj}, {ni}) = {vji!r} "
                  f"(difference {abs(vij - vji):.3g})", pair)
    for i, j, k in itertools.permutations(range(len(samples)), 3):
        direct, via = d(i, k), d(i, j) + d(j, k)
        if direct > via + _tolerance(via, atol, rtol):
            ni, nj, nk = names[i], names[j], names[k]
            _fail(check, "triangle inequality d(x, z) <= d(x, y) + d(y, z)",
                  f"d({ni}, {nk}) = {direct!r} > d({ni}, {nj}) + d({nj}, {nk}) = "
                  f"{d(i, j)!r} + {d(j, k)!r} = {via!r} (excess {direct - via:.3g})",
                  {ni: samples[i], nj: samples[j], nk: samples[k]})


# ---------------------------------------------------------------------------- divergence


def assert_divergence(
    div: Callable[[Any, Any], Any],
    *samples: Any,
    symmetric: bool = False,
    upper: float | None = None,
    atol: float = 1e-9,
    rtol: float = 1e-7,
) -> None:
    """Check D(p || q) >= 0 and D(p || p) = 0 on the given samples (histograms, say).

    .. math:: D(p \\,\\|\\, q) \\ge 0,\\qquad D(p \\,\\|\\, p) = 0

    and optionally ``D(p || q) = D(q || p)`` (``symmetric=True``, e.g. JSD) and
    ``D(p || q) <= upper`` (e.g. ``upper=log(2)`` for JSD in nats). ``+inf`` is allowed (KL
    where q = 0 < p) unless ``upper`` forbids it; NaN is always a failure.

    Args:
        div: ``div(p, q)``.
        samples: one or more samples; every ordered pair is checked.
        symmetric: also check symmetry.
        upper: also check this upper bound.
        atol, rtol: slack ``atol + rtol * scale``.

    Raises:
        AssertionError: naming the axiom, the samples and the values.

    Example:
        >>> import numpy as np
        >>> from scipy.stats import entropy
        >>> from otdiv.testing import assert_divergence
        >>> assert_divergence(entropy, np.array([0.5, 0.5]), np.array([0.9, 0.1]))
    """
    check = "assert_divergence"
    if not samples:
        raise ValueError(f"{check} needs at least one sample")
    check_callable(div, "div")
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric must be a bool, got {type(symmetric).__name__}")
    if upper is not None:
        upper = _real(upper, "upper")
        if math.isnan(upper):
            raise ValueError("upper must be a number or +inf, not nan")
    atol, rtol = _check_tolerances(atol, rtol)
    names = ["p", "q"] if len(samples) == 2 else _labels(len(samples))

    def D(i: int, j: int) -> float:
        inputs = {names[i]: samples[i]} if i == j else {names[i]: samples[i],
                                                         names[j]: samples[j]}
        return _scalar(div(samples[i], samples[j]), f"D({names[i]} || {names[j]})",
                       check, inputs)

    for i, name in enumerate(names):
        v = D(i, i)
        if not abs(v) <= atol:
            _fail(check, "identity D(p || p) = 0",
                  f"D({name} || {name}) = {v!r}, expected 0 (atol={atol:g})",
                  {name: samples[i]})
    for i, j in itertools.permutations(range(len(samples)), 2):
        ni, nj = names[i], names[j]
        pair = {ni: samples[i], nj: samples[j]}
        v = D(i, j)
        if v < -atol:
            _fail(check, "nonnegativity D(p || q) >= 0", f"D({ni} || {nj}) = {v!r} < 0", pair)
        if upper is not None and v > upper + _tolerance(upper, atol, rtol):
            _fail(check, f"upper bound D(p || q) <= {upper!r}",
                  f"D({ni} || {nj}) = {v!r} > {upper!r}", pair)
        if symmetric and i < j:
            w = D(j, i)
            if v != w and not abs(v - w) <= _tolerance(max(abs(v), abs(w)), atol, rtol):
                _fail(check, "symmetry D(p || q) = D(q || p)",
                      f"D({ni} || {nj}) = {v!r} but D({nj} || {ni}) = {w!r} "
                      f"(difference {abs(v - w):.3g})", pair)


# ---------------------------------------------------------------------------- critics


def _is_module(f: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(f, torch.nn.Module)


def _epsilon(v: Any) -> float:
    """Machine epsilon of an array's precision (float64 for anything not float32/16)."""
    dtype = v.dtype if hasattr(v, "dtype") else None
    if is_tensor(v):
        import torch

        single = dtype in (torch.float32, torch.float16, torch.bfloat16)
    else:
        single = dtype in (np.float32, np.float16)
    return float(np.finfo(np.float32 if single else np.float64).eps)


def _evaluate(f: Callable, x: Any, name: str, check: str) -> tuple[np.ndarray, float]:
    """f(x) as a float64 (n, k) array, and the machine epsilon it was computed in.

    A torch module given numpy points gets a tensor in its parameters' dtype, evaluated
    without autograd."""
    eps = _epsilon(x)
    if _is_module(f):
        import torch

        if not is_tensor(x):
            param = next(f.parameters(), None)
            dtype = param.dtype if param is not None else torch.get_default_dtype()
            device = param.device if param is not None else "cpu"
            x = torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
            eps = max(eps, _epsilon(x))
        with torch.no_grad():
            out = f(x)
    else:
        out = f(x)
    eps = max(eps, _epsilon(out))
    out = to_numpy64(out) if is_tensor(out) else np.asarray(out, dtype=np.float64)
    n = x.shape[0]
    if out.ndim == 0 or out.shape[0] != n:
        raise ValueError(
            f"{check}: the function must map {n} points of {name} to {n} values (shape (n,) "
            f"or (n, k)), got output shape {out.shape}"
        )
    return out.reshape(n, -1), eps


def _default_atol(eps: float, L: float, outputs: Sequence[np.ndarray],
                  points: Sequence[np.ndarray]) -> float:
    """Rounding slack of f evaluated in precision eps: of its values and of its inputs (an
    input rounded by eps|x| moves an L-Lipschitz f by L eps |x|)."""
    def biggest(arrays):
        return max((float(np.abs(v).max()) for v in arrays if v.size), default=0.0)

    return 64 * eps * (1.0 + biggest(outputs) + L * biggest(points))


def assert_lipschitz(
    f: Callable[[Any], Any],
    L: float,
    x: Any,
    y: Any = None,
    *,
    atol: float | None = None,
    rtol: float = 1e-7,
) -> None:
    """Check ``|f(u) - f(v)| <= L ||u - v||_2`` on sample pairs (a necessary condition for f
    to be L-Lipschitz; one violating pair proves it is not).

    .. math:: \\|f(x_i) - f(x_j)\\|_2 \\le L\\,\\|x_i - x_j\\|_2

    Pairs are all pairs of rows of ``x`` when ``y`` is None (n(n-1)/2 of them: pass ``y`` for
    large batches), else the rows ``(x_i, y_i)``. The worst pair is reported.

    Args:
        f: maps an (n, d) batch to (n,) or (n, k) values — a function or a torch module
            (numpy points are converted to its parameters' dtype).
        L: the claimed Lipschitz constant, > 0.
        x: (n, d) or (n,) points, numpy or torch.
        y: optional (n, d) points paired with ``x`` row by row.
        atol: slack on ``|f(u) - f(v)|``; None: 64 machine epsilons of the precision f is
            evaluated in (float32 or float64) times ``(1 + max |f| + L max |x|)``.
        rtol: relative slack on ``L ||u - v||``.

    Raises:
        AssertionError: with the pair, the values and the ratio they certify.
    """
    check = "assert_lipschitz"
    check_callable(f, "f")
    L = check_positive(L, "L")
    rtol = _nonnegative(rtol, "rtol")
    if atol is not None:
        atol = _nonnegative(atol, "atol")
    array_kind({"x": x, "y": y})  # mixed numpy/torch is a TypeError
    xs = as_points(x, "x")
    fx, eps = _evaluate(f, xs, "x", check)
    x64 = to_numpy64(xs)
    points = [x64]
    if y is None:
        if x64.shape[0] < 2:
            raise ValueError(f"{check}: x needs at least two points to form a pair")
        from scipy.spatial.distance import pdist

        gaps, dists = pdist(fx), pdist(x64)  # condensed: pair (i < j) in row-major order
        pairs = ("x", "x")
    else:
        ys = as_points(y, "y")
        if tuple(ys.shape) != tuple(xs.shape):
            raise ValueError(
                f"y must have the shape of x to pair their rows, got x.shape={tuple(xs.shape)} "
                f"and y.shape={tuple(ys.shape)}"
            )
        fy, eps_y = _evaluate(f, ys, "y", check)
        eps = max(eps, eps_y)
        points.append(to_numpy64(ys))
        gaps = np.linalg.norm(fx - fy, axis=1)
        dists = np.linalg.norm(x64 - to_numpy64(ys), axis=1)
        pairs = ("x", "y")
        fx = np.concatenate([fx, fy])
    if atol is None:
        atol = _default_atol(eps, L, [fx], points)
    _check_tolerances(atol, rtol)
    excess = gaps - L * dists * (1 + rtol) - atol
    worst = int(np.argmax(excess))
    if excess[worst] <= 0:
        return
    if y is None:
        i, j = (int(k[worst]) for k in np.triu_indices(x64.shape[0], 1))
        u, v = x64[i], x64[j]
        fu, fv = fx[i], fx[j]
    else:
        i = j = worst
        u, v = x64[i], to_numpy64(ys)[i]
        fu, fv = fx[i], fx[x64.shape[0] + i]
    dist, gap = float(dists[worst]), float(gaps[worst])
    ratio = gap / dist if dist > 0 else math.inf
    _fail(check, f"Lipschitz bound |f(u) - f(v)| <= L ||u - v|| with L={L!r}",
          f"|f(u) - f(v)| = {gap!r} > L * ||u - v|| = {L!r} * {dist!r}: this pair alone "
          f"needs a constant >= {ratio!r}",
          {f"u ({pairs[0]}[{i}])": u, f"v ({pairs[1]}[{j}])": v, "f(u)": fu, "f(v)": fv})


def assert_kantorovich_bound(
    critic: Callable[[Any], Any],
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    L: float = 1.0,
    w1: float | None = None,
    atol: float | None = None,
    rtol: float = 1e-7,
) -> None:
    """Check ``|E_P f - E_Q f| <= L W_1(P, Q)`` for a critic f claimed to be L-Lipschitz.

    .. math:: \\Big|\\sum_i a_i f(x_i) - \\sum_j b_j f(y_j)\\Big| \\le L\\, W_1(a, b)

    W_1 is computed exactly with :func:`otdiv.wasserstein` (``p=1``, Euclidean ground cost)
    unless given. A violation proves that f is not L-Lipschitz, or that ``w1`` is too small.

    Args:
        critic: maps an (n, d) batch to n scores ((n,) or (n, 1)); function or torch module.
        x, y: (n, d) and (m, d) samples of P and Q (numpy or torch).
        a, b: optional nonnegative weights (normalized to sum 1), uniform when None.
        L: the claimed Lipschitz constant, > 0.
        w1: W_1(P, Q) if already known (it is then trusted).
        atol: slack; None: 64 machine epsilons of the precision f is evaluated in, times
            ``(1 + max |f| + L max |x|)``.
        rtol: relative slack on ``L * W_1``.

    Raises:
        AssertionError: with the samples, both means, W_1 and the constant they certify.
    """
    check = "assert_kantorovich_bound"
    check_callable(critic, "critic")
    L = check_positive(L, "L")
    rtol = _nonnegative(rtol, "rtol")
    if atol is not None:
        atol = _nonnegative(atol, "atol")
    if w1 is not None:
        w1 = _nonnegative(w1, "w1")
    array_kind({"x": x, "y": y, "a": a, "b": b})
    xs, ys = as_points(x, "x"), as_points(y, "y")
    an = to_numpy64(as_weights(a, xs.shape[0], "a", like=xs))
    bn = to_numpy64(as_weights(b, ys.shape[0], "b", like=ys))
    (fx, eps_x), (fy, eps_y) = _evaluate(critic, xs, "x", check), _evaluate(critic, ys, "y",
                                                                              check)
    fx, fy = (check_scores(out, out.shape[0], f"{check}: the critic", verb="return",
                           per=f"point of {name}") for out, name in ((fx, "x"), (fy, "y")))
    if w1 is None:
        from otdiv.metrics.wasserstein import wasserstein

        w1 = wasserstein(to_numpy64(xs), to_numpy64(ys), an, bn, p=1)
    w1 = float(w1)
    if atol is None:
        atol = _default_atol(max(eps_x, eps_y), L, [fx, fy],
                             [to_numpy64(xs), to_numpy64(ys)])
    atol, rtol = _check_tolerances(atol, rtol)
    mean_x, mean_y = float(an @ fx), float(bn @ fy)
    gap = mean_x - mean_y
    if abs(gap) <= L * w1 * (1 + rtol) + atol:
        return
    ratio = abs(gap) / w1 if w1 > 0 else math.inf
    _fail(check, f"Kantorovich bound |E_P f - E_Q f| <= L W_1(P, Q) with L={L!r}",
          f"E_P f - E_Q f = {mean_x!r} - {mean_y!r} = {gap!r}, but L * W_1 = {L!r} * {w1!r}"
          f" = {L * w1!r}: these samples need a constant >= {ratio!r}",
          {"x": x, "y": y, "a": a, "b": b})
