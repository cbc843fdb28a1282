"""Exact scaling by powers of two: a computation in units of 2^e rounds as the unscaled one
would (the mantissas are untouched) while its squares, sums and distances stay inside the
float range — how otdiv takes data from 1e-300 to 1e300 (envelopes, MinFunnel, Sinkhorn's
clouds, k-NN estimates, the audit's spreads).
"""

from __future__ import annotations

import math

import numpy as np

from otdiv._array import Array, as_numpy64, is_tensor


def pow2_exponent(*arrays: Array) -> int:
    """e with every |entry| < 2^e (0 when all entries are 0 or there are none), for numpy
    arrays, tensors and Python numbers of finite entries (integer and bool ones taken as
    float64): dividing by 2^e is exact, so a problem computed in units of 2^e has the same
    argmins and rounds as the unscaled one would."""
    top = 0.0
    for a in arrays:
        if is_tensor(a):
            a = a.detach()
            if not a.is_floating_point():
                a = a.double()
            peak = float(a.abs().max()) if a.numel() else 0.0
        else:
            a = np.asarray(a)
            if a.dtype.kind != "f":
                a = a.astype(np.float64)
            peak = float(np.max(np.abs(a))) if a.size else 0.0
        top = max(top, peak)
    return math.frexp(top)[1] if top > 0 else 0


def times_pow2(x: Array, e: int) -> Array:
    """x · 2^e, exact (no rounding unless entries leave the normal range), for either kind.

    torch multiplies by two factors 2^⌊e/2⌋ · 2^(e−⌊e/2⌋): 2^e itself may be no float of x's
    dtype (float32: 2^149 for a subnormal row); numpy uses ``ldexp``.
    """
    if is_tensor(x):
        import torch

        half = e // 2
        x = x * torch.pow(2.0, torch.tensor(float(half), dtype=x.dtype))
        return x * torch.pow(2.0, torch.tensor(float(e - half), dtype=x.dtype))
    return np.ldexp(x, e)


def mean_std(values: object, name: str = "values") -> tuple[float, float]:
    """(mean, standard deviation with ddof 1; 0 for one entry) of finite numbers of any
    magnitude, without overflow or underflow:

        mean = 2^e · mean(v / 2^e),   std = 2^e · std(v / 2^e),

    e the exponent with every |v_i| < 2^e (:func:`pow2_exponent`). Scaling by a power of two
    is exact, so these are the plain mean and std wherever those neither overflow nor
    underflow (the squares of 1e160 do), and the std is inf only when the spread itself is
    beyond the float range. ``values``: a non-empty 1-D array, list or tensor (of any real
    dtype), finite; else a ValueError or TypeError naming ``name``."""
    g = as_numpy64(values, name)
    if g.ndim != 1 or g.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of numbers, got shape "
                         f"{g.shape}")
    top = float(np.max(np.abs(g)))
    if top == 0:
        return 0.0, 0.0
    e = math.frexp(top)[1]  # pow2_exponent(g)
    s = np.ldexp(g, -e)
    m = float(s.mean())
    try:
        mean = math.ldexp(m, e)
    except OverflowError:  # a mean rounded to ±2^e, beyond the largest entry
        mean = math.copysign(top, m)
    if len(g) < 2:
        return mean, 0.0
    try:
        std = math.ldexp(float(s.std(ddof=1)), e)
    except OverflowError:  # a spread beyond the float range (entries near ±1.8e308)
        std = math.inf
    return mean, std
