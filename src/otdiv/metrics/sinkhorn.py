"""Entropic optimal transport (Sinkhorn) and the debiased Sinkhorn divergence: the public
entry points (validate → solve in the OT core → result).

OT_eps = min_{P ∈ Π(a, b)} ⟨P, C⟩ + eps·KL(P ‖ a⊗b) is solved by log-domain Sinkhorn over a
soft-min (entropic c-transform) T_b(g)_i = −eps log Σ_j b_j exp((g_j − C_ij) / eps), with one
implementation of the soft-min per kind of cost and backend (:mod:`otdiv.ot.geometry`: numba
clouds, a stored Gibbs kernel, a cost matrix, torch; a centred form for eps far above the
largest cost), the loops and their strategies in :mod:`otdiv.ot.sinkhorn`, and the problems
(clouds at unit scale, batches, a cost matrix) in :mod:`otdiv.ot.entropic`.

Value and gradients: at convergence OT_eps = ⟨a, f⟩ + ⟨b, g⟩ (the dual), and by the envelope
theorem ∂OT_eps/∂a = f, ∂OT_eps/∂b = g, ∂OT_eps/∂C = P. The torch path runs the solver without
autograd and attaches exactly these gradients, so backward memory does not depend on the
number of iterations.
"""

from __future__ import annotations

import warnings

import numpy as np

from otdiv._array import (
    array_kind,
    as_float_array,
    as_points,
    as_weights,
    check_choice,
    check_p,
    check_positive,
    check_same_dim,
    common_dtype,
    is_tensor,
)
from otdiv.ot import entropic
from otdiv.ot.geometry import DENSE_BUDGET
from otdiv.ot.sinkhorn import DEFAULT_EPS_SCALING, DEFAULT_MAX_ITER, check_options

BACKENDS = ("auto", "numba", "torch")
DEFAULT_MEMORY_BUDGET = 8 * DENSE_BUDGET  # bytes: 2^25 stored entries, 256 MiB


def _entries(memory_budget, dense_budget) -> int:
    """The budget in stored entries (8 bytes each), from memory_budget in bytes or the
    deprecated dense_budget in entries."""
    if dense_budget is not None:
        warnings.warn("dense_budget (entries) is deprecated; pass memory_budget in bytes "
                      "(8 per entry, the unit of wasserstein's budget)", DeprecationWarning,
                      stacklevel=3)
        return int(check_positive(dense_budget, "dense_budget"))
    return max(1, int(check_positive(memory_budget, "memory_budget") // 8))


def _pick_backend(backend: str, kind: str) -> str:
    if backend == "auto":
        return "torch" if kind == "torch" else "numba"
    if backend == "torch" and kind == "numpy":
        raise ValueError("backend='torch' needs torch tensors; numpy inputs use 'numba' or 'auto'")
    return backend


def _validate_batched(x, y, a, b, kind, backend):
    """Batched clouds x (B, n, d), y (B, m, d) and weights (B, n), (B, m): torch tensors only."""
    if kind != "torch":
        raise ValueError(
            "batched (B, n, d) inputs need torch tensors (backend 'torch'); for numpy arrays "
            "call sinkhorn once per problem"
        )
    if backend == "numba":
        raise ValueError("batched (B, n, d) inputs need backend='torch' or 'auto', not 'numba'")
    import torch

    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    for t, name in ((x, "x"), (y, "y")):
        if t.dim() != 3 or 0 in t.shape:
            raise ValueError(f"batched {name} must have shape (B, n, d) with B, n, d >= 1, "
                             f"got shape {tuple(t.shape)}")
    if y.shape[0] != x.shape[0] or y.shape[2] != x.shape[2]:
        raise ValueError(f"batched x and y must agree in B and d, got x.shape={tuple(x.shape)} "
                         f"and y.shape={tuple(y.shape)}")
    y = y.to(dtype=x.dtype)
    out = []
    for w, pts, name in ((a, x, "a"), (b, y, "b")):
        n_batch, n = pts.shape[:2]
        if w is None:
            out.append(torch.full((n_batch, n), 1.0 / n, dtype=x.dtype, device=x.device))
            continue
        if not is_tensor(w) or w.dim() != 2 or w.shape[0] != n_batch:
            raise ValueError(f"batched {name} must be a ({n_batch}, {n}) tensor of weights, "
                             f"got {tuple(getattr(w, 'shape', ()))}")
        # row by row through the shared validation (nonnegative, positive mass, normalized)
        out.append(torch.stack([as_weights(w[k], n, f"{name}[{k}]", like=pts)
                                for k in range(n_batch)]))
    return x, y, out[0], out[1]


def _ndim(x) -> int:
    if is_tensor(x):
        return x.dim()
    try:
        return np.ndim(x)
    except Exception:  # ragged input: let the ordinary validation name the problem
        return -1


def _validate(x, y, a, b, eps, p, tol, max_iter, eps_scaling, backend):
    kind = array_kind({"x": x, "y": y, "a": a, "b": b})
    x = as_points(x, "x")
    y = as_points(y, "y")
    check_same_dim(x, y)
    x, y = common_dtype(x, y)
    a = as_weights(a, x.shape[0], "a", like=x)
    b = as_weights(b, y.shape[0], "b", like=y)
    eps = check_positive(eps, "eps")
    p = check_p(p)
    check_options(tol, max_iter, eps_scaling)
    check_choice(backend, "backend", BACKENDS)
    return kind, x, y, a, b, eps, p, _pick_backend(backend, kind)


def sinkhorn(
    x,
    y,
    a=None,
    b=None,
    *,
    eps: float,
    p: float = 2,
    tol: float = 1e-6,
    max_iter: int = DEFAULT_MAX_ITER,
    eps_scaling: float | None = DEFAULT_EPS_SCALING,
    return_result: bool = False,
    backend: str = "auto",
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    dense_budget: int | None = None,
):
    r"""OT_eps = min_{P ∈ Π(a, b)} ⟨P, C⟩ + eps·KL(P ‖ a⊗b), C_ij = ‖x_i − y_j‖^p (default p = 2).

    .. math:: \mathrm{OT}_\varepsilon(a, b) = \min_{P \in \Pi(a, b)} \sum_{ij} P_{ij}
              \|x_i - y_j\|_2^p + \varepsilon\,\mathrm{KL}(P \,\|\, a \otimes b),\quad
              \mathrm{KL}(P \,\|\, q) = \sum_{ij} P_{ij} \log (P_{ij} / q_{ij})

    eps is absolute, in the units of the cost ‖x − y‖^p (GeomLoss's ``blur`` is eps^{1/p} and
    its p = 2 cost is ‖x − y‖²/2: see docs/sinkhorn.md). Solved by log-domain Sinkhorn with
    eps-scaling; never under- or overflows, whatever eps.

    Args:
        x: (n,) or (n, d) points (numpy array or torch tensor). y: (m,) or (m, d), same kind.
            Batched (torch only): x (B, n, d) and y (B, m, d) are B independent problems
            (numpy 3-D arrays raise ValueError; loop over them instead).
        a, b: nonnegative weights (n,) and (m,) — (B, n) and (B, m) when batched, each row
            normalized on its own; uniform when None; normalized to sum 1.
        eps: entropic regularisation > 0, in units of the cost.
        p: exponent of the ground cost, p >= 1.
        tol: stop when the L1 error of the returned plan's marginals is <= tol.
        max_iter: cap on Sinkhorn sweeps (annealing sweeps included); reaching it warns with
            :class:`ConvergenceWarning` and sets ``converged=False``.
        eps_scaling: annealing factor s in (0, 1): one sweep at each eps_k = Cmax·s^k before
            iterating at eps (Cmax bounds the cost). None: start at eps.
        return_result: return a :class:`TransportResult` (``value``, ``transport_cost`` =
            ⟨P, C⟩, potentials ``f``, ``g``, ``n_iter``, ``marginal_error``, ``converged``,
            and a lazily built ``plan``) instead of the value alone.
        backend: ``"auto"`` (numpy → ``"numba"``, torch → ``"torch"``), ``"numba"`` (CPU;
            torch inputs are solved on the CPU and keep their gradients) or ``"torch"``
            (CPU/GPU, log-domain, cost stored when it fits ``memory_budget``).
        memory_budget: bytes that stored n x m arrays may take (for the whole batch when
            batched), counted at 8 bytes an entry (the unit of ``wasserstein``'s budget).
            ``"numba"`` stores the stabilised Gibbs kernel when 8·n·m <= memory_budget
            (float32 when tol >= 1e-7, else float64) and runs scaling-domain sweeps, two
            matrix–vector products each; above it, the online log-domain kernel (memory
            O(n + m)). ``"torch"`` stores the cost when it fits, else works in row chunks.
        dense_budget: deprecated — the same budget in entries (memory_budget / 8); warns
            with DeprecationWarning and takes precedence when given.

    Returns:
        OT_eps: a Python float for numpy input; for torch input a 0-d tensor on the input's
        device and dtype, differentiable in x, y, a and b (gradients from the potentials by
        the envelope theorem: ∂/∂a = f, ∂/∂b = g, ∂/∂x_i = Σ_j P_ij ∇_x c(x_i, y_j)).
        Batched: a (B,) tensor; problem k depends on x[k], y[k], a[k], b[k] only. Each problem
        is swept until its own marginal error is <= tol and then left alone (plain Sinkhorn,
        without the adaptive over-relaxation of the unbatched loop); the result's ``f``,
        ``g`` (B, n) and (B, m), ``cost``, ``transport_cost``, ``n_iter``,
        ``marginal_error`` and ``converged`` are per-problem numpy arrays, ``plan`` is
        (B, n, m), and one warning names the problems that reached max_iter.

    Example:
        >>> import numpy as np
        >>> from otdiv import sinkhorn
        >>> round(sinkhorn(np.array([0.0]), np.array([2.0]), eps=0.1), 6)
        4.0
    """
    if _ndim(x) == 3 or _ndim(y) == 3:
        kind = array_kind({"x": x, "y": y, "a": a, "b": b})
        check_choice(backend, "backend", BACKENDS)
        x, y, a, b = _validate_batched(x, y, a, b, kind, backend)
        eps, p = check_positive(eps, "eps"), check_p(p)
        check_options(tol, max_iter, eps_scaling)
        budget = _entries(memory_budget, dense_budget)
        res = entropic.batched(x, y, a, b, eps=eps, p=p, tol=tol, max_iter=max_iter,
                               eps_scaling=eps_scaling, budget=budget)
        return res if return_result else res.value
    kind, x, y, a, b, eps, p, backend = _validate(x, y, a, b, eps, p, tol, max_iter,
                                                  eps_scaling, backend)
    res = entropic.clouds(x, y, a, b, kind, eps=eps, p=p, tol=tol, max_iter=max_iter,
                          eps_scaling=eps_scaling, backend=backend,
                          budget=_entries(memory_budget, dense_budget), what="sinkhorn")
    return res if return_result else res.value


def sinkhorn_divergence(
    x,
    y,
    a=None,
    b=None,
    *,
    eps: float,
    p: float = 2,
    tol: float = 1e-6,
    max_iter: int = DEFAULT_MAX_ITER,
    eps_scaling: float | None = DEFAULT_EPS_SCALING,
    backend: str = "auto",
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    dense_budget: int | None = None,
):
    r"""S_eps = OT_eps(a, b) − ½ OT_eps(a, a) − ½ OT_eps(b, b) >= 0, cost ‖x − y‖^p (default p = 2).

    The debiased Sinkhorn divergence, zero exactly when the measures are equal.

    .. math:: S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
              - \tfrac12 \mathrm{OT}_\varepsilon(a, a) - \tfrac12 \mathrm{OT}_\varepsilon(b, b)

    with OT_eps as in :func:`sinkhorn` (cost ‖x − y‖^p, eps absolute in units of the cost).
    It interpolates between W_p^p (eps → 0) and an MMD (eps → ∞).

    Args:
        x, y, a, b, eps, p, tol, max_iter, eps_scaling, backend, memory_budget: as in
            :func:`sinkhorn`; each of the three problems is solved to ``tol``.

    Returns:
        S_eps, clipped at 0 against rounding: a Python float for numpy input; for torch
        input a 0-d tensor differentiable in x, y, a and b.
    """
    kind, x, y, a, b, eps, p, backend = _validate(x, y, a, b, eps, p, tol, max_iter,
                                                  eps_scaling, backend)
    opts = dict(eps=eps, p=p, tol=tol, max_iter=max_iter, eps_scaling=eps_scaling,
                backend=backend, budget=_entries(memory_budget, dense_budget))
    xy = entropic.clouds(x, y, a, b, kind, what="sinkhorn_divergence (x, y)", **opts).value
    xx = entropic.clouds(x, x, a, a, kind, what="sinkhorn_divergence (x, x)", symmetric=True,
                         **opts).value
    yy = entropic.clouds(y, y, b, b, kind, what="sinkhorn_divergence (y, y)", symmetric=True,
                         **opts).value
    value = xy - 0.5 * (xx + yy)
    # one rule for both kinds: S_eps >= 0, so a negative value is rounding (of the three
    # solves to tol) and is clipped; the torch clip keeps the gradient where S_eps > 0
    if kind == "numpy":
        return max(float(value), 0.0)
    return value.clamp(min=0.0)


__all__ = ["sinkhorn", "sinkhorn_divergence"]
