r"""The exact maximum slope of a function on a sample: a lower bound on its Lipschitz constant.

L_emp = max_{i<j, x_i≠x_j} |f_i − f_j| / ‖x_i − x_j‖₂, over every pair, without under- or
overflow anywhere in the float range (the slope is homogeneous, so the kernel sees rescaled
data). numpy in → float; torch in → 0-d tensor, differentiable through the maximising pair.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from otdiv._array import array_kind, as_float_array, check_scores, is_tensor, to_numpy64


@dataclass(frozen=True)
class EmpiricalLipschitz:
    """max_{i<j, x_i≠x_j} |f_i − f_j| / ‖x_i − x_j‖₂ on a sample, with the pair attaining it.

    Attributes:
        value: the maximum slope, a float (a 0-d tensor for torch inputs); inf when a point
            appears twice with different values.
        i, j: indices of the maximising pair (i < j); ``i == j == 0`` when every point of
            the sample is the same point (then ``value`` is 0).
        reason: why ``value`` is inf or degenerate, None otherwise.
    """

    value: float
    i: int
    j: int
    reason: str | None = None

    def __float__(self) -> float:
        return self.value



def _as_samples(x: object, name: str):
    """(n, ...) inputs as an (n, D) float array of the same kind; n >= 2."""
    arr = as_float_array(x, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have shape (n,) or (n, ...), got a scalar")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} has {arr.shape[0]} point(s); a slope needs at least 2 points")
    if arr.ndim > 1 and math.prod(arr.shape[1:]) == 0:
        raise ValueError(f"{name} has shape {tuple(arr.shape)}; points need dimension >= 1")
    return arr.reshape(arr.shape[0], -1)


def _evaluate(f: Callable, x):
    """f(x) without autograd, as a float64 numpy vector."""
    if is_tensor(x):
        import torch

        with torch.no_grad():
            return to_numpy64(f(x))
    out = f(x)
    return to_numpy64(out) if is_tensor(out) else np.asarray(out, dtype=np.float64)


def _max_abs(a: np.ndarray) -> float:
    m = float(np.max(np.abs(a))) if a.size else 0.0
    return m if m > 0.0 else 1.0


def lipschitz_empirical(x_or_f, fx_or_x, *, return_result: bool = False):
    r"""Exact maximum slope of a function on a sample.

    .. math::
        L_{emp} = \max_{i<j,\ x_i \ne x_j} \frac{|f_i - f_j|}{\lVert x_i - x_j\rVert_2}

    Call it as ``lipschitz_empirical(x, fx)`` with values, or ``lipschitz_empirical(f, x)``
    with a callable. Every pair is examined (a parallel Numba kernel, O(n) memory, float64,
    on coordinates and values rescaled by their largest magnitude so that squared distances
    neither overflow nor underflow anywhere in the float range), so the result is the exact
    maximum — a lower bound on the Lipschitz constant of f, attained by the returned pair.

    Duplicate points are handled explicitly: a pair of identical points with equal values
    is skipped (it says nothing about the slope); identical points with *different* values
    mean that no finite constant fits the sample, so the value is inf, ``reason`` says
    which pair, and a ``UserWarning`` is raised.

    Args:
        x_or_f: points x of shape (n,) or (n, ...) (numpy or torch), or a callable f.
        fx_or_x: the values f(x), n of them (shape (n,) or (n, 1)), or the points when the
            first argument is a callable.
        return_result: also return the maximising pair and the reason for a degenerate
            value, as an :class:`EmpiricalLipschitz`.

    Returns:
        numpy inputs: a float. torch inputs: a 0-d tensor on the input's device,
        differentiable in the values and the points through the maximising pair (the pair is
        found without autograd; a callable is evaluated again on that pair with autograd).
        With ``return_result=True``: an :class:`EmpiricalLipschitz` whose ``value`` is that
        float or tensor.
    """
    f_callable = None
    if callable(x_or_f) and not is_tensor(x_or_f) and not isinstance(x_or_f, np.ndarray):
        f_callable = x_or_f
        xs = as_float_array(fx_or_x, "x")
        _as_samples(xs, "x")
        fx = _evaluate(f_callable, xs)
        fname = "f(x)"
    else:
        xs, fx, fname = x_or_f, fx_or_x, "fx"
    torch_out = is_tensor(xs) or is_tensor(fx)
    if is_tensor(xs) and is_tensor(fx):
        array_kind({"x": xs, fname: fx})  # one device
    pts = to_numpy64(_as_samples(xs, "x"))
    vals = to_numpy64(as_float_array(fx, fname))
    n = pts.shape[0]
    vals = check_scores(vals, n, fname, what="value", per="point",
                        detail=f" (x has {n} points)")
    # the slope is homogeneous: |c f_i - c f_j| / ||s x_i - s x_j|| = (c/s) slope, so the
    # kernel sees data of magnitude <= 1 whatever the scale of the input
    sx, sf = _max_abs(pts), _max_abs(vals)
    from otdiv.kernels.lipschitz_numba import max_slope_pairs

    best2, arg, dup = max_slope_pairs(np.ascontiguousarray(pts / sx),
                                      np.ascontiguousarray(vals / sf))
    bad = np.flatnonzero(dup >= 0)
    if bad.size:
        i, j = int(bad[0]), int(dup[bad[0]])
        reason = (
            f"x[{i}] and x[{j}] are the same point but the values differ "
            f"({vals[i]!r} vs {vals[j]!r}): no finite Lipschitz constant fits the sample"
        )
        warnings.warn(reason, UserWarning, stacklevel=2)
        value, reason_out = math.inf, reason
    else:
        i = int(np.argmax(best2))
        if best2[i] < 0:
            i = j = 0
            value = 0.0
            reason_out = "all points of x are the same point: there is no pair to compare"
        else:
            j = int(arg[i])
            slope = _pair_slope(pts[i] / sx, pts[j] / sx, vals[i] / sf, vals[j] / sf)
            value = float(slope * (sf / sx))
            reason_out = None
    if torch_out:
        value = _torch_slope(xs, fx, f_callable, i, j, value)
    if return_result:
        return EmpiricalLipschitz(value, i, j, reason_out)
    return value


def _pair_slope(xi: np.ndarray, xj: np.ndarray, fi: float, fj: float) -> float:
    """|fi − fj| / ‖xi − xj‖ with the norm taken without under- or overflow."""
    d = xi - xj
    t = float(np.max(np.abs(d)))
    return abs(fi - fj) / t / float(np.linalg.norm(d / t))


def _torch_slope(xs, fx, f_callable, i: int, j: int, value: float):
    """The slope of pair (i, j) as a 0-d tensor carrying gradients to the values and points."""
    import torch

    ref = xs if is_tensor(xs) else fx
    dtype = ref.dtype if ref.dtype in (torch.float32, torch.float64) else torch.get_default_dtype()
    if not math.isfinite(value) or (i == j):
        return torch.tensor(value, dtype=dtype, device=ref.device)
    x = xs if is_tensor(xs) else torch.as_tensor(np.asarray(xs), dtype=dtype, device=ref.device)
    x = x.reshape(x.shape[0], -1)
    if f_callable is not None:
        pair = f_callable(xs[[i, j]]).reshape(-1)
        fi, fj = pair[0], pair[1]
    else:
        f = fx if is_tensor(fx) else torch.as_tensor(np.asarray(fx), dtype=dtype,
                                                     device=ref.device)
        f = f.reshape(-1)
        fi, fj = f[i], f[j]
    d = (x[i] - x[j]).to(dtype)
    scale = d.detach().abs().max()
    return ((fi - fj).to(dtype).abs() / scale) / torch.linalg.vector_norm(d / scale)



__all__ = ["EmpiricalLipschitz", "lipschitz_empirical"]
