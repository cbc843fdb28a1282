"""Gradients of optimal values by the envelope theorem, for the torch path of every solver.

An OT value V(a, b, C) = max over dual potentials of ⟨a, f⟩ + ⟨b, g⟩ (constrained by C), so at
the optimum ∂V/∂a = f, ∂V/∂b = g and ∂V/∂C = P*. Solvers run without autograd and attach
these gradients afterwards: backward memory does not depend on the solver's iterations.
Every function here is batched-aware: sums run over the last axis only, so a batch of B
problems gives B values, each depending on its own inputs.
"""

from __future__ import annotations


def add_weight_gradients(value, a, f, b, g):
    """value + ⟨a − sg(a), f⟩ + ⟨b − sg(b), g⟩ (sg = stop-gradient): same value, ∂/∂a = f, ∂/∂b = g.

    a, b: tensors (possibly requiring grad), (n,) and (m,) or batched (B, n) and (B, m);
    f, g: numpy or tensor potentials of the same shapes.
    """
    import torch

    for w, pot in ((a, f), (b, g)):
        if w.requires_grad:
            pot = torch.as_tensor(pot, dtype=w.dtype, device=w.device)
            value = value + ((w - w.detach()) * pot).sum(-1)
    return value


def support_value(x, y, a, b, rows, cols, mass, f, g, p: float):
    """⟨P*, C(x, y)⟩ + ⟨a − sg(a), f⟩ + ⟨b − sg(b), g⟩ for a plan given by its support (rows,
    cols, masses) and the cost |x_i − y_j|^p: the optimum in value, with the envelope-theorem
    gradients in x, y, a and b; memory O(support)."""
    import torch

    from otdiv.kernels.cost_torch import pair_cost

    dev = x.device
    rows = torch.as_tensor(rows, device=dev)
    cols = torch.as_tensor(cols, device=dev)
    mass = torch.as_tensor(mass, dtype=x.dtype, device=dev)
    value = (mass * pair_cost(x, y, rows, cols, p)).sum()
    return add_weight_gradients(value, a, f, b, g)


def matrix_value(C, a, b, plan, f, g, value=None):
    """``value`` + ⟨P, C⟩ − sg(⟨P, C⟩) + weight terms for a given cost matrix C (tensor):
    the value (⟨P, C⟩ itself when ``value`` is None: the exact optimum) with the gradients
    ∂/∂C = P, ∂/∂a = f, ∂/∂b = g; plan is numpy or a tensor."""
    import torch

    P = torch.as_tensor(plan, dtype=C.dtype, device=C.device)
    pc = (P * C).sum()
    value = pc if value is None else value + (pc - pc.detach())
    return add_weight_gradients(value, a, f, b, g)


def plan_cost_value(x, y, a, b, f, g, value, eps, p, budget):
    """``value`` + ⟨P, C(x, y)⟩ − sg(⟨P, C⟩) + weight terms for the entropic plan
    P = a⊗b ∘ exp((f ⊕ g − C)/eps), C_ij = |x_i − y_j|^p: the value (OT_eps) with the
    gradients ∂/∂x_i = Σ_j P_ij ∇_x c(x_i, y_j), ∂/∂a = f, ∂/∂b = g, formed in row chunks
    within ``budget`` entries (batched (B, n, d) too).

    Returns (value tensor, ⟨P, C⟩ detached: a float, or a numpy array for a batch).
    """
    import torch

    from otdiv._array import to_numpy64
    from otdiv.kernels.softmin_torch import PlanCost, rows_per_chunk

    with torch.no_grad():
        u = torch.log(a.detach()) + f / eps
        v = torch.log(b.detach()) + g / eps
    batch = x.shape[0] if x.dim() == 3 else 1
    chunk = rows_per_chunk(y.shape[-2] * batch, budget)
    pc = PlanCost.apply(x, y, u, v, eps, p, chunk)
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device) + (pc - pc.detach())
    tcost = float(pc.detach()) if x.dim() == 2 else to_numpy64(pc.detach())
    return add_weight_gradients(value, a, f, b, g), tcost


def root(value_p, p: float):
    """value_p^(1/p) with a zero gradient where value_p = 0 (W_p is not differentiable there)."""
    import torch

    if p == 1.0:
        return value_p
    positive = value_p > 0
    safe = torch.where(positive, value_p, torch.ones_like(value_p))
    return torch.where(positive, safe ** (1.0 / p), torch.zeros_like(value_p))
