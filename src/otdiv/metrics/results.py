"""Result objects shared by the solvers: one frozen family, costly fields computed lazily."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from otdiv._array import is_tensor


class ConvergenceWarning(UserWarning):
    """A solver stopped before it reached its tolerance (or optimality)."""


def warn_not_converged(what: str, detail: str) -> None:
    warnings.warn(f"{what} did not converge: {detail}", ConvergenceWarning, stacklevel=3)


@dataclass(frozen=True)
class TransportResult:
    """The solution of one (exact or entropic) optimal-transport problem.

    value = ⟨P, C⟩ (exact) or ⟨P, C⟩ + eps·KL(P ‖ a⊗b) (entropic); for point clouds with
    exponent p, ``value`` of :func:`otdiv.wasserstein` is W_p = (min ⟨P, C⟩)^{1/p} and
    ``cost`` holds the unrooted optimum.

    Attributes:
        value: the returned quantity (float for numpy input, 0-d tensor for torch).
        cost: the optimal objective ⟨P, C⟩ (before any p-th root).
        f, g: dual potentials with ⟨a, f⟩ + ⟨b, g⟩ = cost (numpy arrays, float64).
        converged: True when the solver reached optimality / tolerance.
        status: a short word from the solver ("optimal", "max_iter_reached", ...).
        n_iter: iterations used (None when the solver does not count them).
        method: the algorithm that produced the result.
        plan: the optimal coupling, dense (n, m), numpy or a tensor like ``value``, built on
            first access.
        plan_support: (rows, cols, masses) of the nonzero entries, when the solver is sparse.
    """

    value: Any
    cost: float
    f: Any
    g: Any
    converged: bool
    status: str
    method: str
    n_iter: int | None = None
    marginal_error: float | None = None
    transport_cost: Any = None
    plan_support: tuple | None = None
    _plan_fn: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def plan(self):
        """The optimal coupling P, dense, of the input's kind: a numpy array, or a tensor on
        the input's device and dtype for torch input (computed on first access)."""
        if self._plan_fn is None:
            raise AttributeError("this result carries no plan")
        plan = self._plan_fn()
        if is_tensor(self.value) and not is_tensor(plan):
            import torch

            plan = torch.as_tensor(plan, dtype=self.value.dtype, device=self.value.device)
        return plan
