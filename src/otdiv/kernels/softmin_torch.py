"""Soft-min (entropic c-transform) kernels in torch, CPU or GPU: dense when the cost fits,
chunked over rows beyond, batched over a leading dimension.

    lse[..., i] = log Σ_j exp(h[..., j] − C[..., i, j] / eps)

The Sinkhorn potential is f = −eps · lse. Gradients are never taken through these kernels
(the solver runs under ``torch.no_grad``); :class:`PlanCost` attaches the envelope-theorem
gradient ∂⟨P, C⟩/∂x = Σ_j P_ij ∇_x c(x_i, y_j) afterwards, chunk by chunk.
"""

from __future__ import annotations

import torch

from otdiv.kernels.cost_torch import cost_matrix


def rows_per_chunk(m: int, budget: int) -> int:
    """How many rows of an (·, m) block fit in ``budget`` elements."""
    return max(1, budget // max(m, 1))


def softmin_dense(cost: torch.Tensor, h: torch.Tensor, eps) -> torch.Tensor:
    """lse over the last axis for a stored cost (..., n, m); eps a float or a (..., 1) tensor."""
    return torch.logsumexp(h.unsqueeze(-2) - cost / _col(eps), dim=-1)


def softmin_points(x, y, h, eps, p: float, chunk: int) -> torch.Tensor:
    """lse for C = ‖x_i − y_j‖^p computed ``chunk`` rows at a time (memory O(chunk · m))."""
    n = x.shape[-2]
    if chunk >= n:
        return softmin_dense(cost_matrix(x, y, p), h, eps)
    return torch.cat(
        [softmin_dense(cost_matrix(x[..., s:s + chunk, :], y, p), h, eps)
         for s in range(0, n, chunk)],
        dim=-1,
    )


def _col(eps):
    return eps.unsqueeze(-1) if isinstance(eps, torch.Tensor) else eps


def plan_block(cost, u, v, eps):
    """P = exp(u_i + v_j − C_ij / eps) for a block of rows (u: log a + f/eps, v likewise)."""
    return torch.exp(u.unsqueeze(-1) + v.unsqueeze(-2) - cost / _col(eps))


class PlanCost(torch.autograd.Function):
    """⟨P, C(x, y)⟩ for a fixed plan P = exp(u ⊕ v − C/eps), differentiable in x and y with P
    held constant (envelope theorem), computed ``chunk`` rows at a time in both passes."""

    @staticmethod
    def forward(ctx, x, y, u, v, eps, p, chunk):
        ctx.save_for_backward(x, y, u, v)
        ctx.eps, ctx.p, ctx.chunk = eps, p, chunk
        total = x.new_zeros(x.shape[:-2])
        for s in range(0, x.shape[-2], chunk):
            c = cost_matrix(x[..., s:s + chunk, :], y, p)
            total = total + (plan_block(c, u[..., s:s + chunk], v, eps) * c).sum((-1, -2))
        return total

    @staticmethod
    def backward(ctx, grad_out):
        x, y, u, v = ctx.saved_tensors
        eps, p, chunk = ctx.eps, ctx.p, ctx.chunk
        gx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        gy = torch.zeros_like(y) if ctx.needs_input_grad[1] else None
        g = grad_out.unsqueeze(-1).unsqueeze(-1) if grad_out.dim() else grad_out
        with torch.enable_grad():
            yl = y.detach().requires_grad_(gy is not None)
            for s in range(0, x.shape[-2], chunk):
                xl = x[..., s:s + chunk, :].detach().requires_grad_(gx is not None)
                c = cost_matrix(xl, yl, p)
                with torch.no_grad():
                    weight = plan_block(c, u[..., s:s + chunk], v, eps) * g
                wanted = [t for t in (xl, yl) if t.requires_grad]
                grads = torch.autograd.grad((weight * c).sum(), wanted)
                if gx is not None:
                    gx[..., s:s + chunk, :] = grads[0]
                if gy is not None:
                    gy += grads[-1]
        return gx, gy, None, None, None, None, None
