"""Torch critics whose Lipschitz constant is known exactly (linear maps, GroupSort networks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from otdiv.testing._strategy import _strategy, _value


@dataclass(frozen=True, eq=False)
class KnownCritic:
    """A torch critic R^d -> R with Lipschitz constant exactly ``L`` (Euclidean norms).

    ``module`` maps an (n, d) tensor of ``dtype`` to (n, 1) scores; ``direction`` is a unit
    vector u along which ``f(x + s u) - f(x) = L s`` for every x (``kind == "linear"``; None
    for ``"groupsort"``).
    """

    module: Any
    L: float
    d: int
    kind: str
    direction: np.ndarray | None


_GROUPSORT_CLASS = None


def _groupsort_critic_class():
    """A GroupSort network (built on first use so that importing this module needs no torch).

    Layers x -> W_k x + c_k (W_k orthogonal) -> sort each consecutive pair of coordinates,
    then a final row w with ||w|| = L. Almost everywhere the Jacobian is w^T Π_k (P_k W_k)
    with permutations P_k, whose norm is exactly ||w|| = L, so the constant is L.
    """
    global _GROUPSORT_CLASS
    if _GROUPSORT_CLASS is None:
        import torch

        class GroupSortCritic(torch.nn.Module):
            def __init__(self, hidden: list, head: torch.nn.Linear):
                super().__init__()
                self.hidden = torch.nn.ModuleList(hidden)
                self.head = head

            @staticmethod
            def group_sort(h):
                k = 2 * (h.shape[-1] // 2)
                pairs = h[..., :k].reshape(*h.shape[:-1], k // 2, 2)
                pairs = torch.sort(pairs, dim=-1).values.reshape(*h.shape[:-1], k)
                return torch.cat([pairs, h[..., k:]], dim=-1)

            def forward(self, x):
                for layer in self.hidden:
                    x = self.group_sort(layer(x))
                return self.head(x)

        _GROUPSORT_CLASS = GroupSortCritic
    return _GROUPSORT_CLASS


@_strategy
def lipschitz_critics(
    draw,
    d: int | st.SearchStrategy[int] | None = None,
    *,
    L: float | st.SearchStrategy[float] | None = None,
    kinds: tuple[str, ...] = ("linear", "groupsort"),
    max_d: int = 3,
    max_depth: int = 2,
    dtype=None,
) -> KnownCritic:
    """Torch critics with a known Lipschitz constant L.

    * ``"linear"`` — ``torch.nn.Linear(d, 1)`` whose weight row has norm L (its spectral norm);
    * ``"groupsort"`` — 1..max_depth orthogonal d x d layers with GroupSort (pairwise sort)
      activations and a final row of norm L: a network whose constant is exactly L.

    Args:
        d: input dimension (int or strategy); None: 1..max_d.
        L: the constant (float or strategy); None: drawn in [0.1, 10].
        dtype: ``torch.float32``/``"float32"``, ``torch.float64``/``"float64"``, None: either.
    """
    import torch

    unknown = set(kinds) - {"linear", "groupsort"}
    if unknown or not kinds:
        raise ValueError(f"kinds must be a nonempty subset of ('linear', 'groupsort'), "
                         f"got {kinds!r}")
    d = _value(draw, d, "d") if d is not None else draw(st.integers(1, max_d))
    L = float(_value(draw, L)) if L is not None else draw(st.floats(0.1, 10.0))
    if dtype is None:
        dtype = draw(st.sampled_from(["float64", "float32"]))
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    which = draw(st.sampled_from(kinds))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))

    def unit_row():
        w = torch.randn(1, d, generator=gen, dtype=torch.float64)
        return w / torch.linalg.vector_norm(w)

    head = torch.nn.Linear(d, 1, dtype=tdtype)
    w = unit_row()
    with torch.no_grad():
        head.weight.copy_(L * w)
        head.bias.copy_(torch.randn(1, generator=gen, dtype=torch.float64))
    if which == "linear":
        module = head
        direction = w[0].numpy()
    else:
        hidden = []
        for _ in range(draw(st.integers(1, max_depth))):
            q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
            layer = torch.nn.Linear(d, d, dtype=tdtype)
            with torch.no_grad():
                layer.weight.copy_(q * torch.sign(torch.diagonal(r)))  # Haar-distributed
                layer.bias.copy_(torch.randn(d, generator=gen, dtype=torch.float64))
            hidden.append(layer)
        module = _groupsort_critic_class()(hidden, head)
        direction = None  # no single direction is tight everywhere
    module.requires_grad_(False)
    return KnownCritic(module, L, d, which, direction)
