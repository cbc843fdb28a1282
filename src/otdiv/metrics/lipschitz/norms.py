r"""Certified operator norms: upper bounds on ‖A‖₂ that hold for the exact matrix.

Power iteration approaches ‖A‖₂ from below, so a product of its estimates is not a bound;
here every norm comes from the Gram iteration ‖A‖₂ ≤ ‖G_t‖_F^{1/2^t} (G_0 = A,
G_{t+1} = G_tᴴ G_t) with the rounding of every product added back a posteriori. Matrices are
numpy float64; torch modules are read only for their weights (torch loads lazily).
"""

from __future__ import annotations

import math

import numpy as np


class _Unbounded(Exception):
    """The critic contains something whose Lipschitz constant is not known."""


_U = 2.0**-53  # unit roundoff of float64


def _gamma(k: int) -> float:
    return k * _U / (1 - k * _U)


def _fro(a: np.ndarray) -> np.ndarray:
    """‖A‖_F over the last two axes; entries are scaled by a power of two (exact) so that
    their squares neither overflow nor underflow, whatever the magnitude of A."""
    mags = np.abs(a)
    top = np.max(mags, axis=(-2, -1), initial=0.0)
    pow2 = np.ldexp(1.0, np.frexp(np.where(top > 0, top, 1.0))[1])
    scaled = mags / pow2[..., None, None]
    return np.sqrt(np.sum(scaled * scaled, axis=(-2, -1))) * pow2


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



__all__ = ["spectral_upper"]
