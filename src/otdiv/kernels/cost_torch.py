"""Ground cost ‖x − y‖₂^p in torch (CPU/GPU), with gradients that stay finite at x = y."""

from __future__ import annotations

import torch


def power(t: torch.Tensor, q: float) -> torch.Tensor:
    """t^q for t >= 0, q >= 1/2 (numba's ``kernels.power``) with a zero (sub)gradient where
    t = 0, instead of the NaN of sqrt'(0)·0."""
    if q == 1.0:
        return t
    positive = t > 0
    safe = torch.where(positive, t, torch.ones_like(t))
    return torch.where(positive, safe**q, torch.zeros_like(t))


def power_of_sq(sq: torch.Tensor, p: float) -> torch.Tensor:
    """sq^(p/2): the p-th power of a distance from its square."""
    return power(sq, 0.5 * p)


def pair_cost(x: torch.Tensor, y: torch.Tensor, rows, cols, p: float) -> torch.Tensor:
    """c_k = ‖x[rows_k] − y[cols_k]‖^p for index pairs; differentiable in x and y."""
    diff = x[rows] - y[cols]
    return power_of_sq((diff * diff).sum(-1), p)


def cost_matrix(x: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
    """C[..., i, j] = ‖x_i − y_j‖^p for (..., n, d) and (..., m, d) tensors."""
    sq = (
        (x * x).sum(-1)[..., :, None]
        + (y * y).sum(-1)[..., None, :]
        - 2.0 * (x @ y.transpose(-1, -2))
    ).clamp_min(0.0)
    return power_of_sq(sq, p)
