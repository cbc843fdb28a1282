"""The critic checkpoint: an MLP's effective weights, read back with ``weights_only=True``.

The format is a dict ``{"format": "otdiv-mlp-critic", "weights": [W_1, ..., W_L],
"biases": [b_1, ..., b_L], "softplus_beta": β or None}`` of tensors and numbers only, so
loading it runs no pickled code; :func:`save_critic` writes it, :func:`load_critic` reads
it (or a plain ``nn.Sequential`` state dict of Linear layers and ReLUs).
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

from otdiv._array import is_tensor
from otdiv._files import replaced
from otdiv.audit.models import check_softplus_beta

if TYPE_CHECKING:
    import torch


def _mlp_layers(critic: torch.nn.Module) -> tuple[list[torch.nn.Linear], float | None]:
    """The Linear layers of an MLP Linear, σ, Linear, ..., σ, Linear (nested nn.Sequential
    allowed; Identity and Dropout, which are identities in eval mode, skipped) and its σ:
    None for ReLU, β for Softplus(β). ValueError for any other structure, so that what
    ``save_critic`` writes is the function the critic computes."""
    import torch

    def flat(m: torch.nn.Module):
        if isinstance(m, torch.nn.Sequential):
            for child in m:
                yield from flat(child)
        elif not isinstance(m, (torch.nn.Identity, torch.nn.modules.dropout._DropoutNd)):
            yield m

    layers = list(flat(critic))
    linears, acts = layers[0::2], layers[1::2]
    shape_ok = len(layers) % 2 == 1 and all(isinstance(m, torch.nn.Linear) for m in linears)
    if shape_ok and all(type(m) is torch.nn.ReLU for m in acts):
        return linears, None
    if shape_ok and acts and all(type(m) is torch.nn.Softplus and m.threshold == 20.0
                                 for m in acts) and len({float(m.beta) for m in acts}) == 1:
        return linears, float(acts[0].beta)
    seen = ", ".join(type(m).__name__ + (f"(beta={m.beta:g}, threshold={m.threshold:g})"
                                         if isinstance(m, torch.nn.Softplus) else "")
                     for m in layers)
    raise ValueError("save_critic handles MLPs Linear, σ, Linear, ..., σ, Linear (in "
                     "nn.Sequential) with σ all ReLU or all one Softplus(β) of the default "
                     f"threshold 20; this critic is {seen or 'empty'}")


def save_critic(critic: torch.nn.Module, path: str) -> None:
    """Save an MLP critic's effective weights so that ``load_critic`` (weights_only) reads it.

    The critic must be Linear, σ, Linear, ..., σ, Linear in (nested) ``nn.Sequential``
    with σ all ReLU or all one Softplus(β), as :func:`mlp_critic` builds; anything else is
    refused with a ValueError rather than saved as another function. Spectral
    normalisation is baked in: the saved weight is W / sigma(W) as used in eval mode.
    """
    import torch

    linears, beta = _mlp_layers(critic)
    with torch.no_grad():
        payload = {
            "format": "otdiv-mlp-critic",
            "weights": [m.weight.detach().cpu().clone() for m in linears],
            "biases": [None if m.bias is None else m.bias.detach().cpu().clone()
                       for m in linears],
            "softplus_beta": beta,
        }
    if isinstance(path, (str, os.PathLike)):
        with replaced(path, "wb") as fh:  # whole or the previous one, never half a critic
            torch.save(payload, fh)
    else:  # a buffer
        torch.save(payload, path)


def critic_from_state(state: object, name: str = "critic") -> torch.nn.Sequential:
    """An MLP from ``save_critic``'s payload or a ReLU MLP from an ``nn.Sequential`` state dict.

    The state dict must hold Linear layers only (keys ``"<i>.weight"``, ``"<i>.bias"``),
    separated by ReLUs, the last with one output. A ``save_critic`` payload also says
    whether the activation is ReLU or Softplus(β) (``"softplus_beta"``).
    """
    import torch

    beta = None
    if isinstance(state, dict) and state.get("format") == "otdiv-mlp-critic":
        weights, biases = state.get("weights"), state.get("biases")
        beta = check_softplus_beta(state.get("softplus_beta"), f"{name}: softplus_beta")
    elif isinstance(state, dict) and state and all(isinstance(k, str) for k in state):
        keys = sorted({k.rsplit(".", 1)[0] for k in state},
                      key=lambda s: int(s) if s.isdigit() else -1)
        if not all(k.isdigit() for k in keys) or any(f"{k}.weight" not in state for k in keys):
            raise ValueError(f"{name}: expected an nn.Sequential state dict of Linear layers "
                             "(keys '0.weight', '0.bias', '2.weight', ...) or a file written "
                             "by otdiv.audit.save_critic")
        weights = [state[f"{k}.weight"] for k in keys]
        biases = [state.get(f"{k}.bias") for k in keys]
    else:
        raise ValueError(f"{name}: not a critic checkpoint (got {type(state).__name__}); "
                         "save one with otdiv.audit.save_critic")
    if not isinstance(weights, (list, tuple)) or not weights or \
            not all(is_tensor(w) and w.ndim == 2 and w.is_floating_point() for w in weights):
        raise ValueError(f"{name}: the checkpoint's weights must be a list of 2-D float "
                         "tensors")
    if not isinstance(biases, (list, tuple)) or len(biases) != len(weights):
        got = type(biases).__name__ if not isinstance(biases, (list, tuple)) else \
            f"{len(biases)} entries"
        raise ValueError(f"{name}: the checkpoint's biases must be a list of one entry per "
                         f"layer ({len(weights)}), a tensor or None; got {got}")
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if b is None:
            continue
        if not is_tensor(b) or not b.is_floating_point():
            raise ValueError(f"{name}: the bias of layer {i} must be a float tensor or None, "
                             f"got {type(b).__name__}")
        if b.numel() != w.shape[0] or b.ndim > 2 or (b.ndim == 2 and 1 not in b.shape):
            raise ValueError(f"{name}: the bias of layer {i} has shape {tuple(b.shape)}, "
                             f"expected ({w.shape[0]},) for a weight of shape "
                             f"{tuple(w.shape)}")
    for prev, nxt in itertools.pairwise(weights):
        if nxt.shape[1] != prev.shape[0]:
            raise ValueError(f"{name}: layer shapes do not chain ({tuple(prev.shape)} then "
                             f"{tuple(nxt.shape)})")
    if weights[-1].shape[0] != 1:
        raise ValueError(f"{name}: the last layer must have one output, got "
                         f"{weights[-1].shape[0]}")
    layers: list[torch.nn.Module] = []
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            lin.weight.copy_(w)
            if b is not None:
                lin.bias.copy_(b.reshape(-1))
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU() if beta is None else torch.nn.Softplus(beta))
    return torch.nn.Sequential(*layers).eval()


def load_critic(path: str) -> torch.nn.Sequential:
    """Load a critic checkpoint with ``torch.load(weights_only=True)`` (no pickled code)."""
    import os
    import warnings

    import torch

    if os.path.isdir(path):
        raise ValueError(f"critic: {path} is a directory, not a checkpoint file")
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol: the error says
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"critic: no such file: {path}") from None
    except Exception as exc:
        raise ValueError(f"critic: cannot load {path} as a weights-only checkpoint: "
                         f"{_load_error(exc)}") from None
    return critic_from_state(state, f"critic {path}")


def _load_error(exc: BaseException) -> str:
    """What torch.load(weights_only=True) found wrong, in one line, without its advice to
    load with weights_only=False (which runs the file's pickled code) or to allowlist the
    file's classes: a checkpoint of this module holds tensors and numbers only."""
    text = str(exc).strip()
    if "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" \
            in text else ""
        detail = " ".join(detail.split("Check the documentation")[0].split())
        detail = detail.split(" Please use ")[0].rstrip(".")  # the allowlisting advice
        return ("it holds pickled objects other than tensors and numbers"
                + (f" ({detail})" if detail else "") + ", or is no checkpoint")
    if isinstance(exc, EOFError):
        return "the file is empty or truncated"
    return text.splitlines()[0] if text else type(exc).__name__
