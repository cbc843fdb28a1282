"""The critic's slope ‖∇f‖, measured from numpy points: at given points, along the segments
of a coupling (G) and along the critic's own c-transform pairs (G_c).

These are the slopes :func:`~otdiv.audit.critic.audit_critic` divides the raw estimate
E_P f − E_Q f by. For a coupling π of the samples, f(x_i) − f(y_j) = ∫₀¹ ∇f · (x_i − y_j) dt
along each segment, so

    E_P f − E_Q f = Σ π_ij (f(x_i) − f(y_j)) <= G · Σ π_ij ‖x_i − y_j‖,

G = Σ π_ij ‖x_i − y_j‖ ∫₀¹ ‖∇f(y_j + t(x_i − y_j))‖ dt / Σ π_ij ‖x_i − y_j‖, the
length-weighted mean slope along the segments (:func:`segment_grad_norm`, the t-integral by
k stratified points a segment); with π the exact optimal plan the right side is G · W1.
:func:`ctransform_slope` is the same mean along the pairs of
:func:`~otdiv.audit.estimators.ctransform_pairs` (no exact OT). torch is imported only
inside the functions; a critic torch cannot differentiate gives None, not an error.

A critic that is a ``torch.nn.Module`` is evaluated with subnormal floats flushed to zero on a
one-thread CPU (:func:`~otdiv.audit.subnormals.flushed_denormals`): the MinFunnel benchmark's
Softplus(30) critic (d = 64) takes 0.46 s for ‖∇f‖ at 20,000 points flushed, 1.92 s unflushed
(docs/benchmarks.md, "Critic training: subnormal floats"). Another callable runs as it is:
it may start thread pools of its own (numba's, say), which would inherit the mode and keep
it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np

from otdiv._array import to_numpy64
from otdiv.audit.estimators import ctransform_pairs, segment_points
from otdiv.audit.models import scores
from otdiv.audit.subnormals import flushed_denormals

ROWS = 8192  # points per call of the critic: memory stays flat in the number of points


def _flushed(critic: Callable, device):
    """flushed_denormals(device) for a torch module, else a block that changes nothing."""
    import torch

    if isinstance(critic, torch.nn.Module):
        return flushed_denormals(device)
    return contextlib.nullcontext(False)


def score_fn(critic: Callable, device, dtype):
    """critic as x (numpy (n, d)) -> scores (numpy (n,)), evaluated without gradients, in
    blocks of :data:`ROWS` points."""
    import torch

    def block(x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(x, dtype=dtype).to(device)
        with torch.no_grad(), _flushed(critic, device):
            return to_numpy64(scores(critic, t))

    def fn(x: np.ndarray) -> np.ndarray:
        if len(x) <= ROWS:
            return block(x)
        return np.concatenate([block(x[k:k + ROWS]) for k in range(0, len(x), ROWS)])

    return fn


def gradients(critic: Callable, pts: np.ndarray, device, dtype):
    """∇f at each of the points (N, d), a torch tensor of the critic's dtype (blocks of
    :data:`ROWS` points); raises RuntimeError when torch cannot differentiate the critic."""
    import torch

    pts = np.asarray(pts)
    out = []
    for k in range(0, max(len(pts), 1), ROWS):
        t = torch.as_tensor(pts[k:k + ROWS], dtype=dtype).to(device).requires_grad_(True)
        with torch.enable_grad(), _flushed(critic, device):
            (grad,) = torch.autograd.grad(scores(critic, t).sum(), t)
        out.append(grad.detach().reshape(t.shape[0], -1) if len(t) else grad.detach())
    return out[0] if len(out) == 1 else torch.cat(out)


def grad_norms(critic: Callable, pts: np.ndarray, device, dtype) -> np.ndarray | None:
    """‖∇f‖ at each of the points (N, d); None when torch cannot differentiate the critic."""
    try:
        grad = gradients(critic, pts, device, dtype)
    except RuntimeError:  # a callable outside autograd (numpy inside, no_grad, ...)
        return None
    return np.linalg.norm(to_numpy64(grad), axis=1)  # in float64: no overflow of the sum


def ctransform_slope(critic, x, y, fx, fy, interp_norms, device, dtype,
                     rng: np.random.Generator, rounds: int = 2) -> float | None:
    """G_c: the length-weighted mean ‖∇f‖ along the critic's c-transform pairs (None when
    torch cannot differentiate the critic or its slope is not positive)."""
    if interp_norms is None or not np.isfinite(interp_norms).all():
        return None
    slope = float(np.mean(interp_norms))
    for _ in range(rounds):
        if not (math.isfinite(slope) and slope > 0):
            return None
        rows, cols = ctransform_pairs(x, y, fx, fy, slope)
        pts, weight = segment_points(x, y, rows, cols, rng)
        if weight.sum() <= 0:
            return None
        norm = grad_norms(critic, pts, device, dtype)
        if norm is None:
            return None
        slope = float(np.average(norm, weights=weight))
    return slope if math.isfinite(slope) and slope > 0 else None


def segment_grad_norm(critic: Callable, x: np.ndarray, y: np.ndarray, plan, device, dtype,
                      rng: np.random.Generator, k: int = 4) -> tuple[float, float] | None:
    """(G, weighted std of ‖∇f‖) along the coupling's segments y_j + t (x_i − y_j).

    ``plan`` is (rows, cols, masses); each segment gets ``k`` stratified t in [0, 1] and the
    weight mass · length / k. None when torch cannot differentiate the critic or no
    segment has length.
    """
    rows, cols, mass = (np.asarray(v) for v in plan)
    keep = mass > 0
    rows, cols, mass = rows[keep], cols[keep], mass[keep]
    pts, weight = segment_points(x, y, rows, cols, rng, k)  # weights length / k
    weight = weight * np.repeat(mass, k)
    if weight.sum() <= 0:
        return None
    norm = grad_norms(critic, pts, device, dtype)
    if norm is None or not np.isfinite(norm).all():
        return None
    mean = float(np.average(norm, weights=weight))
    return mean, float(np.sqrt(np.average((norm - mean) ** 2, weights=weight)))
