"""The result of every OT solver: one contract, one status vocabulary, costly fields lazy."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from otdiv._array import is_tensor

# ---------------------------------------------------------------------------- status words

OPTIMAL = "optimal"  # the solver's optimality test holds (see TransportResult.status)
MAX_ITER = "max_iter_reached"  # stopped by max_iter before the test held
NOT_FINITE = "not_finite"  # the iterates left the float range (an iterative solver)
INFEASIBLE = "infeasible"  # reported by POT's simplex (validated input never is)
UNBOUNDED = "unbounded"  # likewise
STATUSES = (OPTIMAL, MAX_ITER, NOT_FINITE, INFEASIBLE, UNBOUNDED)


class ConvergenceWarning(UserWarning):
    """A solver stopped before it reached its tolerance (or optimality)."""


def warn_not_converged(what: str, detail: str) -> None:
    warnings.warn(f"{what} did not converge: {detail}", ConvergenceWarning, stacklevel=3)


def support_marginal_error(rows, cols, mass, a, b) -> float:
    """‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ of the plan given by its support (rows, cols, masses)."""
    row = np.bincount(rows, weights=mass, minlength=a.shape[0])
    col = np.bincount(cols, weights=mass, minlength=b.shape[0])
    return float(np.abs(row - a).sum() + np.abs(col - b).sum())


@dataclass(frozen=True)
class TransportResult:
    r"""The solution of one (exact or entropic) optimal-transport problem, or of a batch.

    One contract for every solver (``wasserstein``, ``transport``, ``sinkhorn``):

    .. math:: \text{cost} = \min_{P \in \Pi(a, b)} \langle P, C\rangle
              \;\big(+\ \varepsilon\,\mathrm{KL}(P \,\|\, a \otimes b)\big),
              \qquad \text{transport\_cost} = \langle P, C\rangle

    Attributes:
        value: what the function returns: W_p = cost^{1/p} for :func:`otdiv.wasserstein`,
            the optimum ``cost`` itself for :func:`otdiv.transport` and
            :func:`otdiv.sinkhorn` (float for numpy input, a tensor for torch input,
            differentiable).
        cost: the optimum of the problem solved, before any p-th root: min ⟨P, C⟩ (exact;
            W_p^p for point clouds) or OT_eps = ⟨P, C⟩ + eps·KL(P ‖ a⊗b) (entropic).
        transport_cost: ⟨P, C⟩ of the returned plan, for every solver (equal to ``cost``
            for the exact solvers).
        f, g: dual potentials (numpy arrays, float64): ⟨a, f⟩ + ⟨b, g⟩ = cost for the exact
            solvers and, at convergence, for the entropic ones (whose ``cost`` is the dual
            objective ⟨a, f⟩ + ⟨b, g⟩ − eps·(ΣP − 1) at the returned potentials).
        converged: True exactly when ``status == "optimal"``.
        status: one word of :data:`STATUSES` for every solver: ``"optimal"`` — the solver's
            optimality test holds (exact: no pair has a negative reduced cost, a dense
            certificate; entropic: the returned plan's marginal error is <= tol);
            ``"max_iter_reached"``; ``"not_finite"`` (the iterates left the float range);
            ``"infeasible"`` / ``"unbounded"`` (codes of POT's simplex, never seen on
            validated input).
        method: the algorithm that produced the result.
        n_iter: iterations used (network-simplex pivots, Sinkhorn sweeps with annealing
            included; None when the solver does not count them).
        marginal_error: ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ measured on the returned plan (None when
            the plan was not formed: the 1-D and lazy solvers without ``return_result``).
        plan: the coupling P, dense (n, m), numpy or a tensor like ``value``, built on
            first access.
        plan_support: (rows, cols, masses) of the nonzero entries, when the solver is sparse.

    Batched Sinkhorn (x of shape (B, n, d)): ``value`` is a (B,) tensor; ``cost``,
    ``transport_cost``, ``converged``, ``n_iter`` and ``marginal_error`` are (B,) numpy
    arrays, ``f``, ``g`` are (B, n) and (B, m), ``plan`` is (B, n, m), and ``status`` is
    ``"optimal"`` when every problem converged, else ``"max_iter_reached"``.
    """

    value: Any
    cost: float | np.ndarray
    f: Any
    g: Any
    converged: bool | np.ndarray
    status: str
    method: str
    n_iter: int | np.ndarray | None = None
    marginal_error: float | np.ndarray | None = None
    transport_cost: float | np.ndarray | None = None
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
