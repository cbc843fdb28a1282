"""The critic's optimisers: Adam, RMSProp, and Muon for the hidden weight matrices.

Adam and RMSProp move every weight by about ``lr`` a step. Muon (Jordan et al. 2024,
:class:`torch.optim.Muon`) moves a weight matrix W (m × n) along the orthogonal factor of
its Nesterov momentum M:

    W ← W − lr · 0.2 √max(m, n) · U Vᵀ,    M = U Σ Vᵀ (by Newton–Schulz iterations),

the scale 0.2 √max(m, n) giving the update the RMS of Adam's at the same ``lr``
(``adjust_lr_fn="match_rms_adamw"``), so one learning rate serves both. Every singular
direction of M moves at the same rate: the rare directions of the minibatch gradients are
not drowned by the frequent ones, which is what aligns a WGAN critic with a transport of
many directions in fewer samples (docs/critic_benchmark_history.md, "An optimiser that needs fewer
samples"). Vectors (biases) and the last layer (1 × n) have no such structure and stay
on Adam.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otdiv._array import check_choice, check_positive

if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adam", "rmsprop", "muon")
MAX_LR = 1.0  # Adam, RMSProp and Muon (matched to Adam's RMS) move a weight by about lr a step


def check_lr(lr: object, name: str = "lr") -> float:
    """A finite learning rate in (0, MAX_LR]."""
    lr = check_positive(lr, name)
    if lr > MAX_LR:
        raise ValueError(f"{name} must be in (0, {MAX_LR:g}]: the optimisers move every "
                         f"weight by about lr a step; got {lr:g}")
    return lr


def check_optimizer(optimizer: object, name: str = "optimizer") -> str:
    """One of ``OPTIMIZERS``, available in this torch ("muon" needs torch >= 2.9)."""
    optimizer = check_choice(optimizer, name, OPTIMIZERS)
    if optimizer == "muon":
        import torch

        if not hasattr(torch.optim, "Muon"):
            raise ValueError(f"{name}='muon' needs torch.optim.Muon (torch >= 2.9); this "
                             f"is torch {torch.__version__}")
    return optimizer


def recipe_optimizer(constraint: str) -> str:
    """The recipe's optimiser for ``constraint`` (``otdiv audit`` and ``otdiv
    benchmark-critics`` by default): "muon" for "lp", the recommended critic, where this
    torch has it (>= 2.9; "adam" before), the published one otherwise (RMSProp for "clip",
    Adam for "gp" and "spectral", where Muon is not measured).

    On the 28 MinFunnel pairs Muon's flow-corrected estimate is as close as Adam's or closer
    on every pair measured, by up to 26 points (docs/critic_benchmark.md, "Muon, the recipe").
    """
    if constraint == "clip":
        return "rmsprop"
    if constraint == "lp":
        import torch

        return "muon" if hasattr(torch.optim, "Muon") else "adam"
    return "adam"


def build_optimizers(params: list[torch.nn.Parameter], optimizer: str, lr: float,
                     betas: tuple[float, float] = (0.5, 0.9)) -> list:
    """The torch optimisers of ``optimizer`` over ``params``: one over all of them, or for
    "muon" Muon over the hidden weight matrices (2-D, both sides > 1; no weight decay) and
    Adam over the rest. ``betas`` are Adam's (default WGAN-GP's (0.5, 0.9); RMSProp has
    none). Step each of them after every backward pass."""
    import torch

    optimizer = check_optimizer(optimizer)
    if optimizer == "rmsprop":
        return [torch.optim.RMSprop(params, lr=lr)]
    matrices = ([p for p in params if p.ndim == 2 and min(p.shape) > 1]
                if optimizer == "muon" else [])
    rest = [p for p in params if not any(p is m for m in matrices)]
    opts = [torch.optim.Adam(rest, lr=lr, betas=betas)] if rest else []
    if matrices:
        opts.append(torch.optim.Muon(matrices, lr=lr, weight_decay=0.0,
                                     adjust_lr_fn="match_rms_adamw"))
    return opts
