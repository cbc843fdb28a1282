"""Gradients of optimal values by the envelope theorem, for the torch path of every solver.

An OT value V(a, b, C) = max over dual potentials of ⟨a, f⟩ + ⟨b, g⟩ (constrained by C), so at
the optimum ∂V/∂a = f, ∂V/∂b = g and ∂V/∂C = P*. Solvers run without autograd and attach
these gradients afterwards: backward memory does not depend on the solver's iterations.
"""

from __future__ import annotations


def add_weight_gradients(value, a, f, b, g):
    """value + ⟨a − sg(a), f⟩ + ⟨b − sg(b), g⟩ (sg = stop-gradient): same value, ∂/∂a = f, ∂/∂b = g.

    a, b: tensors (possibly requiring grad); f, g: numpy or tensor potentials.
    """
    import torch

    for w, pot in ((a, f), (b, g)):
        if w.requires_grad:
            pot = torch.as_tensor(pot, dtype=w.dtype, device=w.device)
            value = value + ((w - w.detach()) * pot).sum()
    return value


def root(value_p, p: float):
    """value_p^(1/p) with a zero gradient where value_p = 0 (W_p is not differentiable there)."""
    import torch

    if p == 1.0:
        return value_p
    positive = value_p > 0
    safe = torch.where(positive, value_p, torch.ones_like(value_p))
    return torch.where(positive, safe ** (1.0 / p), torch.zeros_like(value_p))
