"""Invariant checks of Lipschitz functions: the slope bound |f(x) − f(y)| <= L‖x − y‖ on
samples (``assert_lipschitz``) and the Kantorovich bound |E_P f − E_Q f| <= L W_1(P, Q)
(``assert_kantorovich_bound``). Like every check of ``otdiv.testing``, each raises an
``AssertionError`` naming the axiom, the inputs and the values.
"""

from __future__ import annotations

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
from otdiv.testing._report import _check_tolerances, _fail, _nonnegative

__all__ = ["assert_kantorovich_bound", "assert_lipschitz"]


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
