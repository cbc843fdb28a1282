r"""Lipschitz constants of critics: exact slopes on a sample, attained lower bounds, certified
upper bounds.

For f: R^d → R with the Euclidean norm, Lip(f) = sup_{x≠y} |f(x) − f(y)| / ‖x − y‖.

* :func:`lipschitz_empirical` — the exact maximum of the slope over the pairs of a sample
  (a lower bound on Lip(f)).
* :func:`lipschitz_bounds` — for a torch critic, ``lower ≤ Lip(f) ≤ upper``: ``lower`` is a
  gradient norm ‖∇f(w)‖ attained at a returned point w; ``upper`` is a guaranteed bound built
  from certified operator norms of the layers (docs/lipschitz.md).

numpy users never import torch: the torch parts load inside :func:`lipschitz_bounds`.
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from otdiv._array import (
    array_kind,
    as_float_array,
    check_int,
    check_seed,
    is_tensor,
    to_numpy64,
)

# ----------------------------------------------------------------------------------------
# results


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


@dataclass(frozen=True)
class LipschitzBounds:
    """lower ≤ Lip(f) = sup_{x≠y} ``|f(x) − f(y)|`` / ‖x − y‖₂ ≤ upper, for one critic.

    Attributes:
        lower: ‖∇f(witness)‖₂, an attained gradient norm (so a true lower bound).
        upper: a guaranteed upper bound (inf when the critic's structure is not understood).
        witness: the input point where ``lower`` is attained (shape ``x.shape[1:]``, same
            kind, dtype and device as ``x``).
        upper_method: how ``upper`` was obtained ("combettes-pesquet", "operator-norm" or
            "none").
        reason: why ``upper`` is inf, None when it is finite.
        lower_method: "gradient" (verified against a secant of f at the witness) or
            "secant" when no gradient could be verified (see :func:`lipschitz_bounds`).
        product_upper: the plain product of certified layer norms and activation slopes,
            the textbook bound that ``upper`` improves on (inf when unknown).
        layers: (name, certified operator norm) of each linear layer, in forward order.
    """

    lower: float
    upper: float
    witness: Any
    upper_method: str
    reason: str | None = None
    lower_method: str = "gradient"
    product_upper: float = math.inf
    layers: tuple[tuple[str, float], ...] = field(default=())

    @property
    def ratio(self) -> float:
        """upper / lower: 1 means the constant is known exactly."""
        return self.upper / self.lower if self.lower > 0 else math.inf


# ----------------------------------------------------------------------------------------
# lipschitz_empirical


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
    if vals.size != n or (vals.ndim > 1 and vals.shape[0] != n):
        raise ValueError(
            f"{fname} must hold one value per point: x has {n} points but {fname} has shape "
            f"{tuple(vals.shape)}; expected ({n},) or ({n}, 1)"
        )
    vals = vals.reshape(-1)
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


# ----------------------------------------------------------------------------------------
# certified spectral norms (numpy, float64)

_U = 2.0**-53  # unit roundoff of float64


def _gamma(k: int) -> float:
    return k * _U / (1 - k * _U)


def _fro(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(np.abs(a) ** 2, axis=(-2, -1)))


def spectral_upper(a: np.ndarray, *, rtol: float = 1e-6, max_iter: int = 40):
    r"""Certified upper bounds on ‖A‖₂ for a batch of matrices (..., m, k), float64/complex128.

    Gram iteration (Delattre et al., ICML 2023): with G_0 = A, G_{t+1} = G_t^H G_t,
    ‖A‖₂^{2^t} = ‖G_t‖₂ ≤ ‖G_t‖_F, so ‖A‖₂ ≤ ‖G_t‖_F^{1/2^t}, and the bound is within a
    factor rank^{1/2^{t+1}} of ‖A‖₂. Iterates are rescaled to unit Frobenius norm. The
    rounding of every product is accounted for a posteriori: fl(H^H H) differs from H^H H by
    at most γ_m ‖H‖_F² in spectral norm (m the inner dimension), and this error is added
    back at each level, so the returned number bounds the norm of the exact matrix A.

    Iterates until the largest bound of the batch is within ``rtol`` of the largest lower
    estimate ‖A v‖/‖v‖ (v the dominant column of the last iterate), or ``max_iter``; every
    entry of ``upper`` is a valid bound, the largest one is also tight.

    Returns:
        (upper, lower): arrays of the batch shape; lower is an attained ‖A v‖/‖v‖.
    """
    a = np.asarray(a)
    if a.shape[-2] < a.shape[-1]:
        a = np.conj(np.swapaxes(a, -1, -2))
    cplx = np.iscomplexobj(a)
    # complex products accumulate about twice the error of real ones
    gam = (lambda k: _gamma(2 * k + 4)) if cplx else _gamma
    batch = a.shape[:-2]
    c0 = _fro(a)
    safe = np.where(c0 > 0, c0, 1.0)
    h = a / safe[..., None, None]
    cs, errs = [], []
    upper = c0.copy()
    lower = np.zeros(batch)
    for _ in range(max_iter):
        m = h.shape[-2]
        fro_h = _fro(h) * (1 + _gamma(h.shape[-1] * m + 1))
        g = np.conj(np.swapaxes(h, -1, -2)) @ h
        errs.append(gam(m) * fro_h**2)
        c = _fro(g)
        c = np.where(c > 0, c, 1.0)
        h = g / c[..., None, None]
        cs.append(c)
        # a-posteriori chain: σ(H_s)² ≤ c_{s+1} (σ(H_{s+1}) + 2u‖H_{s+1}‖_F) + err_s
        fro_last = _fro(h) * (1 + _gamma(h.shape[-1] * h.shape[-2] + 1))
        s_next = fro_last
        for s in range(len(cs) - 1, -1, -1):
            s_next = np.sqrt(cs[s] * (s_next + 2 * _U * fro_last) + errs[s]) * (1 + 4 * _U)
            fro_last = 1.0 + 1e-12  # earlier iterates have unit Frobenius norm up to rounding
        # h_0 = fl(A / c0) is off by at most u‖h_0‖_F ≈ u in spectral norm
        upper = np.where(c0 > 0, c0 * (s_next + 2 * _U) * (1 + 4 * _U), 0.0)
        # the dominant column of H_t ∝ (A^H A)^{2^{t-1}} e_j points along the top singular vector
        col = np.argmax(np.sum(np.abs(h) ** 2, axis=-2), axis=-1)
        v = np.take_along_axis(h, col[..., None, None], axis=-1)[..., 0]
        av = (a @ v[..., None])[..., 0]
        nv = np.linalg.norm(v, axis=-1)
        lower = np.where(nv > 0, np.linalg.norm(av, axis=-1) / np.where(nv > 0, nv, 1), 0.0)
        if np.max(upper, initial=0.0) <= (1 + rtol) * np.max(lower, initial=0.0):
            break
    return upper, lower


# ----------------------------------------------------------------------------------------
# structure of a torch critic: a chain of linear maps and activations


class _Unbounded(Exception):
    """The critic contains something whose Lipschitz constant is not known."""


@dataclass
class _Lin:
    """A linear map (biases do not matter for Lipschitz constants).

    dense: float64 matrix acting on the last dimension (composable with its neighbours);
    None when the map is known only through ``norm`` (convolutions, reshapes, scalings).
    """

    name: str
    dense: np.ndarray | None = None
    norm: float | None = None
    reported: bool = True  # listed in LipschitzBounds.layers

    def certified_norm(self) -> float:
        if self.norm is None:
            self.norm = float(spectral_upper(self.dense)[0])
        return self.norm


@dataclass
class _Act:
    """x ↦ α x + β N(x) with N nonexpansive: an activation with slopes in [α − β, α + β],
    or (α = 0) any map known only to be β-Lipschitz."""

    name: str
    alpha: float
    beta: float


# elementwise activations: the interval [lo, hi] that contains every slope (outward rounded)
_SLOPES = {
    "ReLU": (0.0, 1.0),
    "ReLU6": (0.0, 1.0),
    "Hardtanh": (0.0, 1.0),
    "Tanh": (0.0, 1.0),
    "Sigmoid": (0.0, 0.25),
    "Softplus": (0.0, 1.0),
    "Softsign": (0.0, 1.0),
    "Hardsigmoid": (0.0, 1.0 / 6.0),
    "GELU": (-0.1290, 1.1290),  # Φ(x) + xφ(x): extremes ∓0.128904 + {0, 1} at x = ∓√2
    "SiLU": (-0.0999, 1.0999),  # σ(x)(1 + x(1 − σ(x))): extremes ∓0.09984 at x ≈ ∓2.3994
}


def _act_from_slopes(name: str, lo: float, hi: float) -> _Act:
    return _Act(name, 0.5 * (lo + hi), 0.5 * (hi - lo))


def _activation(module) -> _Act | None:
    import torch.nn as nn

    cls = type(module).__name__
    if isinstance(module, nn.LeakyReLU):
        a = float(module.negative_slope)
        return _act_from_slopes("LeakyReLU", min(a, 1.0), max(a, 1.0))
    if isinstance(module, (nn.ELU, nn.CELU)):
        a = float(module.alpha)
        # ELU: slope α e^x on x < 0; CELU: e^{x/α}
        top = max(1.0, a) if isinstance(module, nn.ELU) else 1.0
        if a < 0:
            return None
        return _act_from_slopes(cls, 0.0, top)
    if cls in _SLOPES and type(module).__module__.startswith("torch.nn"):
        return _act_from_slopes(cls, *_SLOPES[cls])
    if cls in ("GroupSort", "MaxMin"):
        # 1-Lipschitz (it permutes coordinates); no elementwise structure to exploit
        return _Act(cls, 0.0, 1.0)
    return None


def _effective_weight(module) -> np.ndarray:
    """The weight the forward pass uses (spectral-norm parametrisations included), float64."""
    import torch

    w = module.weight
    for hook in module._forward_pre_hooks.values():
        # the hook-based torch.nn.utils.spectral_norm recomputes the weight in a pre-hook
        if type(hook).__name__ == "SpectralNorm" and hasattr(hook, "compute_weight"):
            with torch.no_grad():
                w = hook.compute_weight(module, do_power_iteration=False)
    return w.detach().to("cpu", torch.float64).numpy()


def _conv_norm(module, in_spatial: tuple[int, ...]) -> float:
    """Certified ‖conv‖₂ of a Conv1d/Conv2d on inputs of spatial size ``in_spatial``.

    A zero-padded convolution with stride s is Crop ∘ C ∘ Embed, where C is the strided
    *circular* convolution on a grid of N ≥ input + padding points (N a multiple of s; no
    wrap-around reaches the kept outputs) and Crop, Embed have norm ≤ 1; so ‖conv‖ ≤ ‖C‖.
    Splitting the input into its s polyphase components turns C into a stride-1 circular
    convolution on N/s points with s·c_in input channels, whose norm is exactly the largest
    σ_max(K̂(ω)) over the DFT frequencies ω (Sedghi et al., 2019), each certified by
    :func:`spectral_upper`. Exact for circular 'same' padding; groups make the operator
    block diagonal (max over groups).
    """
    w = _effective_weight(module)
    k = w.shape[2:]
    dil, stride = module.dilation, module.stride
    if isinstance(module.padding, str):
        total = [0 if module.padding == "valid" else d * (kk - 1)
                 for d, kk in zip(dil, k, strict=True)]
    else:
        total = [2 * p for p in module.padding]
    if module.padding_mode == "zeros":
        size = [-(-(n + t) // st) * st for n, t, st in zip(in_spatial, total, stride, strict=True)]
    elif module.padding_mode == "circular" and all(st == 1 for st in stride) and all(
        t == d * (kk - 1) for t, d, kk in zip(total, dil, k, strict=True)
    ):
        size = list(in_spatial)
    else:
        raise _Unbounded(
            f"{type(module).__name__} with padding_mode={module.padding_mode!r}, "
            f"padding={module.padding} and stride={module.stride} is not supported "
            "(zeros padding, or circular 'same' padding with stride 1, are)"
        )
    dims = len(k)
    grid = [n // st for n, st in zip(size, stride, strict=True)]
    kern = np.zeros(w.shape[:2] + tuple(stride) + tuple(grid))
    # tap j sits at p = j·dilation: polyphase component p mod s, shift (p div s) mod N/s
    phase, shift = [], []
    for t in range(dims):
        pos = np.arange(k[t]) * dil[t]
        shape = [1] * dims
        shape[t] = k[t]
        phase.append((pos % stride[t]).reshape(shape))
        shift.append(((pos // stride[t]) % grid[t]).reshape(shape))
    np.add.at(kern, (slice(None), slice(None), *phase, *shift), w)
    kern = kern.reshape(w.shape[0], w.shape[1] * math.prod(stride), *grid)
    spec = np.fft.fftn(kern, axes=tuple(range(2, 2 + dims)))
    g = module.groups
    co = w.shape[0] // g
    best = 0.0
    for grp in range(g):
        blk = spec[grp * co:(grp + 1) * co]
        mats = np.moveaxis(blk.reshape(blk.shape[0], blk.shape[1], -1), -1, 0)
        best = max(best, float(np.max(spectral_upper(mats)[0])))
    return best


def _leaf(module, z, out, name: str) -> list:
    """The chain items of one leaf module, given its input z and output out."""
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return [_Lin(name, dense=_effective_weight(module))]
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return [_Lin(name, norm=_conv_norm(module, tuple(z.shape[2:])))]
    if isinstance(module, (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout)):
        # reshapes are isometries; dropout is the identity in eval mode
        return [] if out.shape == z.shape else [_Lin(name, norm=1.0, reported=False)]
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if module.running_var is None:
            raise _Unbounded(f"{name}: BatchNorm without running statistics uses batch "
                             "statistics even in eval mode, which couples the samples")
        import torch

        with torch.no_grad():
            scale = 1.0 / torch.sqrt(module.running_var.double() + module.eps)
            if module.weight is not None:
                scale = scale * module.weight.double()
        scale = scale.cpu().numpy()
        if z.ndim == 2:
            return [_Lin(name, dense=np.diag(scale))]
        return [_Lin(name, norm=float(np.max(np.abs(scale))))]
    act = _activation(module)
    if act is not None:
        if act.alpha == 0.0 and act.name in ("GroupSort", "MaxMin"):
            a = np.sort(to_numpy64(z).reshape(z.shape[0], -1), axis=1)
            b = np.sort(to_numpy64(out).reshape(out.shape[0], -1), axis=1)
            if a.shape != b.shape or np.max(np.abs(a - b), initial=0.0) > 0:
                raise _Unbounded(f"{name} is named {act.name} but does not permute its "
                                 "input's entries")
        act.name = name
        return [act]
    return _traced(module, z, name)


def _chain(module, z, name: str):
    """(items, output) of a module applied to the sample batch z."""
    import torch.nn as nn

    if isinstance(module, nn.Sequential):
        items = []
        for child_name, child in module.named_children():
            sub, z = _chain(child, z, f"{name}.{child_name}" if name else child_name)
            items += sub
        return items, z
    out = module(z)
    return _leaf(module, z, out, name or type(module).__name__), out


# ---- modules with a custom forward: read their torch.fx graph ----------------------------

_RESHAPES = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "permute",
             "transpose", "t", "clone"}


def _fx_name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _basic_index(idx) -> bool:
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def _traced(module, z, name: str) -> list:
    """Chain items of a module with a custom forward, from its torch.fx graph.

    Submodules stay opaque nodes (analysed recursively); the functional operations allowed
    are those with a known constant: activations, reshapes, basic indexing, scaling by a
    constant, and sums and concatenations of input-dependent branches (residual blocks:
    Lip(a + b) ≤ Lip(a) + Lip(b); Lip([a, b]) ≤ (Lip(a)² + Lip(b)²)^{1/2}).
    """
    import torch
    import torch.fx as fx
    import torch.nn.functional as F

    class _Opaque(fx.Tracer):
        def is_leaf_module(self, m, qualname):  # every submodule is analysed on its own
            return True

    kind = type(module).__name__
    if not list(module.children()) and type(module).forward is torch.nn.Module.forward:
        raise _Unbounded(f"{name} ({kind}) has no forward")
    try:
        graph = _Opaque().trace(module)
    except Exception as exc:
        raise _Unbounded(
            f"{name} ({kind}) is not a module otdiv knows and torch.fx cannot trace its "
            f"forward ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None

    acts = {torch.relu: (0.0, 1.0), F.relu: (0.0, 1.0), torch.tanh: (0.0, 1.0),
            torch.sigmoid: (0.0, 0.25), F.softplus: (0.0, 1.0), F.relu6: (0.0, 1.0),
            F.hardtanh: (0.0, 1.0), F.gelu: _SLOPES["GELU"], F.silu: _SLOPES["SiLU"]}
    acts_by_method = {"relu": (0.0, 1.0), "tanh": (0.0, 1.0), "sigmoid": (0.0, 0.25)}
    env: dict = {}  # node -> (value, chain or None when the node does not depend on x)
    placeholders = 0

    def val(a):
        return fx.node.map_arg(a, lambda n: env[n][0])

    def deps(args):
        found = []
        fx.node.map_arg(args, lambda n: found.append(n) if env[n][1] is not None else None)
        return found

    def unknown(what):
        raise _Unbounded(f"{name} ({kind}) applies {what}, whose Lipschitz constant otdiv "
                         "does not know")

    for node in graph.nodes:
        label = f"{name}.{node.name}"
        if node.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                if node.args:  # an argument with a default value
                    env[node] = (node.args[0], None)
                    continue
                raise _Unbounded(f"{name} ({kind}) takes more than one input")
            env[node] = (z, [])
            continue
        if node.op == "get_attr":
            obj = module
            for part in node.target.split("."):
                obj = getattr(obj, part)
            env[node] = (obj, None)
            continue
        if node.op == "output":
            out_deps = deps(node.args[0])
            if len(out_deps) != 1 or node.args[0] is not out_deps[0]:
                raise _Unbounded(f"{name} ({kind}) must return one tensor")
            return env[out_deps[0]][1]
        args, kwargs = val(node.args), val(node.kwargs)
        dep = deps((node.args, node.kwargs))
        if node.op == "call_module":
            sub = module.get_submodule(node.target)
            if not dep:
                env[node] = (sub(*args, **kwargs), None)
                continue
            if len(dep) != 1 or node.args[0] is not dep[0] or len(node.args) + len(kwargs) > 1:
                raise _Unbounded(f"{label}: submodule {node.target} gets more than one input")
            items, out = _chain(sub, args[0], f"{name}.{node.target}")
            env[node] = (out, env[dep[0]][1] + items)
            continue
        fn = node.target
        value = (getattr(args[0], fn)(*args[1:], **kwargs) if node.op == "call_method"
                 else fn(*args, **kwargs))
        if not dep:
            env[node] = (value, None)
            continue
        chains = [env[d][1] for d in dep]
        first_is_x = bool(node.args) and node.args[0] is dep[0]
        fname = _fx_name(fn)
        if len(dep) == 1 and first_is_x and (fn in acts or fname in acts_by_method):
            lo, hi = acts.get(fn) or acts_by_method[fname]
            env[node] = (value, chains[0] + [_act_from_slopes(label, lo, hi)])
        elif len(dep) == 1 and fn is F.leaky_relu and first_is_x:
            a = float(args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01))
            env[node] = (value, chains[0] + [_act_from_slopes(label, min(a, 1), max(a, 1))])
        elif len(dep) == 1 and first_is_x and (
            fname in _RESHAPES or fn in (torch.flatten, torch.squeeze, torch.unsqueeze)
            or (fn is operator.getitem and _basic_index(args[1]))
        ):
            # reshapes are isometries; basic indexing keeps a subset of entries (norm ≤ 1)
            env[node] = (value, chains[0] + [_Lin(label, norm=1.0, reported=False)])
        elif len(dep) == 1 and first_is_x and fn is F.linear:
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if not is_tensor(weight) or env[node.args[1]][1] is not None:
                unknown("F.linear with an input-dependent weight")
            dense = weight.detach().to("cpu", torch.float64).numpy()
            env[node] = (value, chains[0] + [_Lin(label, dense=dense)])
        elif len(dep) == 1 and first_is_x and (fname in ("sum", "mean")) and (
            fn in (torch.sum, torch.mean) or node.op == "call_method"
        ):
            # summing k entries is a linear map of norm √k (a mean: 1/√k), per sample
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            nd = args[0].ndim
            dims = (dim,) if isinstance(dim, int) else tuple(dim or ())
            if not dims or any(d % nd == 0 for d in dims):
                unknown(f"{fname} over the batch dimension")
            k = math.prod(args[0].shape[d] for d in dims)
            c = math.sqrt(k) if fname == "sum" else 1.0 / math.sqrt(k)
            env[node] = (value, chains[0] + [_Lin(label, norm=c, reported=False)])
        elif len(dep) == 1 and (fn in (operator.neg, torch.neg) or fname == "neg"):
            env[node] = (value, chains[0] + [_Lin(label, norm=1.0, reported=False)])
        elif fn in (operator.add, torch.add, operator.sub, torch.sub) or fname in (
            "add", "sub"
        ):
            if "alpha" in kwargs or len(args) > 2:
                unknown(f"{fname} with a scaling factor")
            if len(dep) == 1:  # adding a constant shifts f
                env[node] = (value, chains[0])
            else:
                total = sum(_bound_chain(c)[0] for c in chains)
                env[node] = (value, [_Act(label, 0.0, total)])
        elif fn in (operator.mul, torch.mul, operator.truediv, torch.div) or fname in (
            "mul", "div"
        ):
            if len(dep) != 1 or kwargs:
                unknown(f"{fname} of two input-dependent tensors")
            other = args[1] if first_is_x else args[0]
            if (fn in (operator.truediv, torch.div) or fname == "div") and not first_is_x:
                unknown("division by an input-dependent tensor")
            if isinstance(other, numbers.Real):
                c = abs(float(other))
            elif is_tensor(other):
                c = float(other.detach().abs().max()) if other.numel() else 0.0
            else:
                unknown(f"{fname} by a {type(other).__name__}")
            if fn in (operator.truediv, torch.div) or fname == "div":
                small = float(other.detach().abs().min()) if is_tensor(other) else c
                c = math.inf if small == 0 else 1.0 / small
            env[node] = (value, chains[0] + [_Lin(label, norm=c, reported=False)])
        elif fn is torch.cat:
            total = math.sqrt(sum(_bound_chain(c)[0] ** 2 for c in chains))
            env[node] = (value, [_Act(label, 0.0, total)])
        else:
            unknown(f"{fname} ({node.op})")
    raise _Unbounded(f"{name} ({kind}): its graph has no output")


# ---- the bound on a chain ------------------------------------------------------------------


def _segments(items: list) -> tuple[list[list[_Lin]], list[_Act]]:
    segs: list[list[_Lin]] = [[]]
    acts: list[_Act] = []
    for it in items:
        if isinstance(it, _Act):
            acts.append(it)
            segs.append([])
        else:
            segs[-1].append(it)
    return segs, acts


def _product_norm(lins: list[_Lin], cache: dict, key: tuple) -> float:
    """Certified ‖L_k ⋯ L_1‖: consecutive dense maps are multiplied out (their product is
    often much smaller than the product of norms) and the rest multiply norms. The rounding
    of M' = fl(W M) is added back: ‖fl(W M) − W M‖₂ ≤ γ_n ‖|W|‖_F ‖|M|‖_F."""
    if key in cache:
        return cache[key]
    runs: list[list[_Lin]] = []
    for lin in lins:
        if (lin.dense is not None and runs and runs[-1][-1].dense is not None
                and runs[-1][-1].dense.shape[0] == lin.dense.shape[1]):
            runs[-1].append(lin)
        else:
            runs.append([lin])
    total = 1.0
    for run in runs:
        if len(run) == 1:
            total *= run[0].certified_norm()
            continue
        prod, err = run[0].dense, 0.0
        for lin in run[1:]:
            w = lin.dense
            err = (float(_fro(w)) * err
                   + _gamma(w.shape[1]) * float(_fro(np.abs(w)) * _fro(np.abs(prod))))
            err *= 1 + 4 * _U
            prod = w @ prod
        total *= float(spectral_upper(prod)[0]) + err
    cache[key] = total
    return total


def _bound_chain(items: list) -> tuple[float, float]:
    r"""(averaged-activation bound, plain product bound) for a chain S_m σ_m ⋯ σ_1 S_0.

    Each activation is σ_k = α_k Id + β_k N_k with N_k nonexpansive (slopes in
    [α − β, α + β]). Expanding every σ_k gives f as a sum over the sets C of activations
    that take their N part; the term of C is a composition of products of consecutive
    linear maps with nonexpansive maps in between, so (Combettes & Pesquet, 2020)

        Lip(f) ≤ Σ_C Π_{k∈C} β_k Π_{k∉C} |α_k| Π_{blocks B of C} ‖Π_{j∈B} S_j‖.

    The sum is evaluated by dynamic programming over the position of the last cut; it is
    never larger than the product Π ‖S_j‖ Π (|α_k| + β_k), which is returned too.
    """
    segs, acts = _segments(items)
    m = len(acts)
    flat: list[_Lin] = []
    offsets = []
    for s in segs:
        offsets.append(len(flat))
        flat += s
    offsets.append(len(flat))
    cache: dict = {}

    def block(i: int, j: int) -> float:
        """|α| of the activations inside segments i..j times the norm of their product."""
        weight = math.prod(abs(acts[k - 1].alpha) for k in range(i + 1, j + 1))
        if weight == 0:
            return 0.0
        key = (offsets[i], offsets[j + 1])
        return weight * _product_norm(flat[key[0]:key[1]], cache, key)

    total = [0.0] * (m + 1)
    for j in range(m + 1):
        acc = block(0, j)
        for i in range(1, j + 1):
            if acts[i - 1].beta > 0 and total[i - 1] > 0:
                acc += total[i - 1] * acts[i - 1].beta * block(i, j)
        total[j] = acc
    plain = math.prod(lin.certified_norm() for lin in flat)
    plain *= math.prod(abs(a.alpha) + a.beta for a in acts)
    return total[m], plain


def _upper_bound(critic, sample) -> tuple[float, float, str, str | None, tuple]:
    import torch

    try:
        with torch.no_grad():
            items, _ = _chain(critic, sample, "")
        upper, plain = _bound_chain(items)
    except _Unbounded as exc:
        return math.inf, math.inf, "none", str(exc), ()
    layers = tuple((lin.name, lin.certified_norm())
                   for lin in items if isinstance(lin, _Lin) and lin.reported)
    method = "combettes-pesquet" if any(isinstance(i, _Act) for i in items) else "operator-norm"
    return upper, plain, method, None, layers


# ----------------------------------------------------------------------------------------
# lower bound: attained gradient norms


def _scores(critic, z):
    out = critic(z)
    if not is_tensor(out) or out.numel() != z.shape[0]:
        shape = tuple(out.shape) if is_tensor(out) else type(out).__name__
        raise ValueError(
            f"critic must return one score per sample: {z.shape[0]} inputs gave {shape}; "
            "expected a tensor of shape (n,) or (n, 1)"
        )
    return out.reshape(-1)


def _differentiable(scores):
    if not scores.requires_grad:
        raise ValueError(
            "critic(x) does not require grad, so its gradient cannot be taken (a detached, "
            "numpy or no_grad computation inside the critic?); lipschitz_bounds needs a "
            "differentiable critic: for a black-box function use lipschitz_empirical(f, x)"
        )
    return scores


def _grad_norms(critic, z, *, chunk: int = 4096):
    """‖∇f(z_i)‖₂ for each row of z (samples are independent: the critic runs in eval mode)."""
    import torch

    norms = []
    for part in torch.split(z, chunk):
        p = part.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(_differentiable(_scores(critic, p)).sum(), p,
                                       allow_unused=True)
        if g is None:  # f does not depend on its input
            g = torch.zeros_like(p)
        norms.append(g.flatten(1).norm(dim=1).detach())
    return torch.cat(norms)


def _ascent_direction(critic, z):
    """∇_z ‖∇f(z)‖² per row, or zeros where f is piecewise linear (no second derivative)."""
    import torch

    p = z.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(_scores(critic, p).sum(), p, create_graph=True,
                                   allow_unused=True)
        if g is None or not g.requires_grad:
            return torch.zeros_like(z)
        (h,) = torch.autograd.grad((g * g).sum(), p, allow_unused=True)
    return torch.zeros_like(z) if h is None else h.detach()


def _unit_rows(v, tiny: float):
    n = v.flatten(1).norm(dim=1).clamp_min(tiny)
    return v / n.reshape((-1,) + (1,) * (v.ndim - 1)), n > tiny


def _lower_bound(critic, x, n_interpolates, ascent_steps, gen):
    import torch

    n = x.shape[0]
    shape = (-1,) + (1,) * (x.ndim - 1)
    cands = [x]
    if n_interpolates and n > 1:
        i = torch.randint(n, (n_interpolates,), generator=gen).to(x.device)
        j = torch.randint(n, (n_interpolates,), generator=gen).to(x.device)
        t = torch.rand(n_interpolates, generator=gen, dtype=x.dtype).to(x.device).reshape(shape)
        cands.append(x[i] + t * (x[j] - x[i]))
    pts = torch.cat(cands)
    norms = _grad_norms(critic, pts)
    # the typical distance to the mean, rescaled so that squares cannot overflow at 1e300
    centred = (x - x.mean(0)).flatten(1)
    big = float(centred.abs().max()) if centred.numel() else 0.0
    spread = big * float((centred / big).norm(dim=1).mean()) if big > 0 else 0.0
    scale = spread / math.sqrt(max(1, x[0].numel())) if spread > 0 else 1.0
    tiny = torch.finfo(x.dtype).tiny
    # ascent from the best starting points: a step along ∇‖∇f‖² (smooth critics) and a random
    # step (piecewise-linear critics, where that gradient vanishes); a point moves only when
    # its gradient norm grows, and its step size adapts (×1.5 on success, ×0.5 otherwise)
    k = min(32, pts.shape[0])
    top = torch.topk(norms, k).indices
    z, best = pts[top].clone(), norms[top].clone()
    step = torch.full((k,), 0.1 * scale, dtype=x.dtype, device=x.device)
    second_order = True
    for _ in range(ascent_steps):
        direction = _ascent_direction(critic, z) if second_order else torch.zeros_like(z)
        # a piecewise-linear critic has ∇‖∇f‖² = 0: stop paying for double backward
        second_order = second_order and bool(direction.abs().max() > 0)
        up, has = _unit_rows(direction, tiny)
        noise = torch.randn(z.shape, generator=gen, dtype=x.dtype).to(x.device)
        rnd, _ = _unit_rows(noise, tiny)
        up = torch.where(has.reshape(shape), up, rnd)
        props = torch.cat([z + step.reshape(shape) * up, z + step.reshape(shape) * rnd])
        pn = _grad_norms(critic, props).reshape(2, k)
        which = pn.argmax(0)
        cand_norm = pn.max(0).values
        better = cand_norm > best
        chosen = props.reshape((2, k, *z.shape[1:]))[which, torch.arange(k, device=z.device)]
        z = torch.where(better.reshape(shape), chosen, z)
        best = torch.where(better, cand_norm, best)
        step = torch.where(better, step * 1.5, step * 0.5).clamp_min(1e-6 * scale)
    pts = torch.cat([pts, z])
    norms = torch.cat([norms, best])
    return _verified_max(critic, pts, norms, scale)


def _widened(critic, dtype):
    """A copy of the critic in ``dtype`` (the caller's module is not touched)."""
    import copy

    return copy.deepcopy(critic).to(dtype)


def _verified_max(critic, pts, norms, scale):
    """The largest gradient norm that a central secant of f confirms.

    autograd returns *a* derivative at a kink of a piecewise-linear critic, which can
    exceed every nearby slope (relu(x) − x − relu(−x) ≡ 0 has autograd derivative −1 at 0).
    A candidate w is kept when |f(w + hu) − f(w − hu)| / 2h, u = ∇f(w)/‖∇f(w)‖, agrees
    with ‖∇f(w)‖; if none does, the best secant itself (a true slope of f) is returned.
    """
    import torch

    # float32: h = 1e-3·scale keeps the rounding of f(w ± hu) near 1e-4 of the slope
    rel = 1e-6 if pts.dtype == torch.float64 else 3e-3
    h = scale * (1e-6 if pts.dtype == torch.float64 else 1e-3)
    order = torch.argsort(norms, descending=True)[:16]
    w = pts[order].detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(_scores(critic, w).sum(), w, allow_unused=True)
    if g is None:
        g = torch.zeros_like(w)
    gn = g.flatten(1).norm(dim=1)
    if float(gn.max()) == 0:
        return 0.0, pts[order[0]].detach(), "gradient"
    u = g / gn.clamp_min(torch.finfo(pts.dtype).tiny).reshape((-1,) + (1,) * (w.ndim - 1))
    with torch.no_grad():
        sec = (_scores(critic, w + h * u) - _scores(critic, w - h * u)).abs() / (2 * h)
    ok = (sec - gn).abs() <= rel * gn
    if bool(ok.any()):
        k = int(torch.nonzero(ok)[0])
        return float(gn[k]), w[k].detach(), "gradient"
    k = int(torch.argmax(sec))
    return float(sec[k]), w[k].detach(), "secant"


# ----------------------------------------------------------------------------------------
# lipschitz_bounds


def lipschitz_bounds(
    critic,
    x,
    *,
    n_interpolates: int = 256,
    ascent_steps: int = 50,
    seed: int | None = None,
) -> LipschitzBounds:
    r"""Bracket the Lipschitz constant of a critic: lower ≤ Lip(f) ≤ upper.

    .. math::
        \lVert\nabla f(w)\rVert_2 = \text{lower} \le
        \sup_{x\ne y}\frac{|f(x)-f(y)|}{\lVert x-y\rVert_2} \le \text{upper}

    **lower** is attained: it is the gradient norm at the returned ``witness`` — the best
    of the gradient norms at the rows of x, at ``n_interpolates`` random points on segments
    between rows, and after ``ascent_steps`` of an adaptive ascent on ‖∇f‖ from the 32 best
    (steps along ∇‖∇f‖², which vanishes for ReLU critics, and random steps; a point moves
    only when its gradient norm grows). The winner is checked against a central secant of f
    so that an autograd artefact at a kink cannot inflate it (``lower_method`` says
    "secant" in the rare case where the best verified value is a secant slope).

    **upper** is guaranteed for the function computed in exact arithmetic:

    * each linear layer's operator norm is certified by the Gram iteration with a rigorous
      a-posteriori rounding term (:func:`spectral_upper`) — not by plain power iteration,
      which approaches ‖W‖₂ from *below*; consecutive linear layers are multiplied out;
      Conv1d/Conv2d use the norm of the convolution on the actual input size (bounded by the
      circulant embedding, all DFT frequencies), not that of the reshaped kernel;
      spectral-normalised layers are read through their effective ``weight``;
    * activations with slopes in [α − β, α + β] (ReLU, LeakyReLU, Tanh, Sigmoid, ELU,
      Softplus, GELU, SiLU, ...) and GroupSort/MaxMin (1-Lipschitz) are combined with the
      averaged-operator bound of Combettes & Pesquet (see ``_bound_chain``), never larger
      than the product of layer norms (``product_upper``);
    * nn.Sequential nests; other modules are read from their torch.fx graph, where sums of
      branches (residual blocks, Lip ≤ sum), concatenations, reshapes, basic indexing and
      constant scalings are understood.

    Anything else (LayerNorm, attention, data-dependent control flow, a plain callable)
    gives ``upper = inf`` and ``reason`` names it: never a finite number that might be wrong.

    The critic is run in eval mode (BatchNorm uses its running statistics, dropout is off,
    spectral-norm power iterations are frozen) and its modes are restored afterwards; its
    parameters and their ``.grad`` are not touched.

    Args:
        critic: a torch.nn.Module (or any callable: then ``upper`` is inf) mapping a batch
            (n, ...) to n scores, shape (n,) or (n, 1).
        x: inputs, shape (n, ...), a torch tensor (numpy is converted to the critic's dtype).
        n_interpolates: random points on segments between rows of x where gradients are
            also evaluated (0 switches them off).
        ascent_steps: steps of the ascent on ‖∇f‖ (0 switches it off).
        seed: seed of the random interpolates and ascent steps.

    Returns:
        :class:`LipschitzBounds`.
    """
    import torch

    if not callable(critic):
        raise TypeError(
            f"critic must be a torch.nn.Module or a callable, got {type(critic).__name__}"
        )
    n_interpolates = check_int(n_interpolates, "n_interpolates", minimum=0)
    ascent_steps = check_int(ascent_steps, "ascent_steps", minimum=0)
    seed = check_seed(seed)
    named = (list(critic.named_parameters()) if isinstance(critic, torch.nn.Module) else [])
    for pname, param in named:
        if param.is_floating_point() and not bool(torch.isfinite(param).all()):
            raise ValueError(f"critic has NaN or inf in its parameter {pname!r}: no bound on "
                             "its Lipschitz constant means anything")
    params = [param for _, param in named if param.is_floating_point()]
    numpy_in = not is_tensor(x)
    xt = as_float_array(x, "x")
    x_dtype = xt.dtype
    if numpy_in:
        like = params[0] if params else torch.empty(0)
        xt = torch.as_tensor(xt, dtype=like.dtype, device=like.device)
    elif params and params[0].dtype != xt.dtype:
        # mixed precision: compute in the wider dtype (a float64 copy of a float32 critic, or
        # the inputs promoted), never in the narrower one
        if torch.finfo(xt.dtype).bits > torch.finfo(params[0].dtype).bits:
            critic = _widened(critic, xt.dtype)
            params = [p for p in critic.parameters() if p.is_floating_point()]
        else:
            xt = xt.to(params[0].dtype)
    if xt.ndim == 0 or xt.shape[0] == 0:
        raise ValueError(f"x must have shape (n, ...) with n >= 1, got shape {tuple(xt.shape)}")
    if xt.ndim == 1:
        xt = xt.reshape(-1, 1)
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)

    modes = ({m: m.training for m in critic.modules()}
             if isinstance(critic, torch.nn.Module) else {})
    try:
        if modes:
            critic.eval()
        lower, witness, lower_method = _lower_bound(
            critic, xt.detach(), n_interpolates, ascent_steps, gen
        )
        if not math.isfinite(lower) and xt.dtype != torch.float64 and modes:
            # float32 gradients overflowed (weights or inputs near the top of the range):
            # the same critic in float64 has them
            gen.manual_seed(0 if seed is None else seed)
            lower, witness, lower_method = _lower_bound(
                _widened(critic, torch.float64), xt.detach().double(), n_interpolates,
                ascent_steps, gen)
        if not math.isfinite(lower):
            raise ValueError(
                "the critic's gradients overflow at x (its weights or inputs are too large for "
                f"{xt.dtype}); rescale x or the critic")
        if modes:
            upper, plain, method, reason, layers = _upper_bound(critic, xt[:1].detach())
        else:
            upper, plain, method, layers = math.inf, math.inf, "none", ()
            reason = (f"critic is a plain callable ({type(critic).__name__}), not a "
                      "torch.nn.Module: its structure is unknown, so no upper bound is certified")
    finally:
        for m, mode in modes.items():
            m.training = mode
    if upper < lower <= upper * (1 + 1e-5):
        # a float32 gradient can overshoot a tight bound by a few ulps (a larger excess would
        # be a bug, and is left visible)
        lower = upper
    if numpy_in:
        witness = to_numpy64(witness)
    else:
        witness = witness.to(x_dtype)
    return LipschitzBounds(
        lower=float(lower),
        upper=float(upper),
        witness=witness,
        upper_method=method,
        reason=reason,
        lower_method=lower_method,
        product_upper=float(plain),
        layers=layers,
    )


__all__ = [
    "EmpiricalLipschitz",
    "LipschitzBounds",
    "lipschitz_bounds",
    "lipschitz_empirical",
    "spectral_upper",
]
