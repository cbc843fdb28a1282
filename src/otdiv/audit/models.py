"""The critic network: the MLP f(x) = W_L σ(... σ(W_1 x + b_1) ...) + b_L, its device and size.

:func:`mlp_critic` builds it, :func:`scores` reads one score per sample from any critic,
:func:`resolve_device` picks where it runs and :func:`training_bytes` says how much memory
training it takes (checked against :func:`memory_budget` by :func:`check_training_size`).
Shared by training (:mod:`otdiv.audit.train`, :mod:`otdiv.audit.loop`), the audit
(:mod:`otdiv.audit.critic`) and the checkpoint format (:mod:`otdiv.audit.checkpoint`).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from otdiv._array import check_int, check_positive, check_scores, is_tensor

if TYPE_CHECKING:
    import torch

DEFAULT_HIDDEN = (256, 256, 256)  # gan_toy.py uses 3 x 512; 256 is 3-4x faster on a CPU


def recommended_hidden(dim: int) -> tuple[int, int, int]:
    """The recommended critic's three widths for dimension d: (w, w, w) with w = 96 for
    d < 8 and w = max(256, 2 d) (at most 1024) from d = 8 on, and from d = 16 on a first
    layer of 1024: (1024, w, w) (docs/critic_benchmark.md, "The recommended critic by
    dimension"; not measured beyond d = 256).

    Measured on the LP Softplus(30) critic, 12,000 steps (flow-corrected error against the
    known W1): on MinFunnel pairs with many cells the width is the lever, 256 against 96 at
    d = 8 (K = 64: -4.6 -> -1.9 %, K = 256: -8.6 -> -4.6 %) and the 1024-wide first layer
    from d = 16 (d = 32, K = 64: -7.1 -> -4.9 %; d = 128, K = 64: -29.8 -> -24.9 %), while
    the 2-D rows do not move with width (within 0.7 %); each step up costs 2-4 times the
    time, within 10 minutes a pair on one CPU core up to d = 32.
    """
    dim = check_int(dim, "dim")
    width = 96 if dim < 8 else min(max(256, 2 * dim), 1024)
    return (1024 if dim >= 16 else width, width, width)


def resolve_device(device: object) -> torch.device:
    """"auto" -> CUDA when available, else CPU; otherwise torch.device(device), checked."""
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
            ) from None
    else:
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA but no CUDA device is available; "
                         "use device='auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {device!r}")
    return dev


def check_softplus_beta(value: object, name: str = "softplus_beta") -> float | None:
    """None, or β as a float that float32 (the critic's dtype) can carry: finite, > 0,
    large enough that the offset log(2)/β of Softplus(β) is a float32 number, and at most
    the largest float32, 3.4e38 (torch converts β to the dtype of the samples, so a larger
    β cannot score them; up to it β·z may overflow to ±inf, which Softplus takes as its
    linear part or 0, the ReLU β tends to)."""
    if value is None:
        return None
    beta = check_positive(value, name)
    if beta < np.log(2.0) / np.finfo(np.float32).max:
        raise ValueError(f"{name}={beta:g} is too small: the offset log(2)/β of Softplus(β) "
                         "overflows float32")
    largest = float(np.finfo(np.float32).max)
    if beta > largest:
        raise ValueError(f"{name}={beta:g} is too large: the critic computes in float32, "
                         f"whose largest number is {largest:.4g}")
    return beta


def mlp_critic(dim: int, hidden: Sequence[int] = DEFAULT_HIDDEN, *,
               softplus_beta: float | None = None) -> torch.nn.Sequential:
    """x -> W_L σ(... σ(W_1 x + b_1) ...) + b_L, an MLP with one output per sample.

    σ = relu by default: the architecture of the WGAN-GP toy critic (three hidden ReLU
    layers; no batch norm, which would couple the samples of a batch and spoil the
    gradient penalty). With ``softplus_beta=β``, σ(z) = log(1 + e^{βz}) / β, a ReLU
    rounded over −1/β ≲ z ≲ 1/β (slopes in (0, 1), so Lipschitz bounds are those of ReLU).
    A piecewise-linear critic can build the cone ‖x − c‖ of an optimal potential at a
    point mass c only from flat faces, whose gradient misses the radial transport ray;
    with 1/β about the width of the clusters the critic can curve with the rays
    (docs/audit.md, "The 25 Gaussians").
    """
    import torch

    dim = check_int(dim, "dim")
    hidden = tuple(check_int(h, "hidden") for h in hidden)
    softplus_beta = check_softplus_beta(softplus_beta)
    layers: list[torch.nn.Module] = []
    prev = dim
    for width in hidden:
        act = torch.nn.ReLU() if softplus_beta is None else torch.nn.Softplus(softplus_beta)
        layers += [torch.nn.Linear(prev, width), act]
        prev = width
    layers.append(torch.nn.Linear(prev, 1))
    return torch.nn.Sequential(*layers)


def scores(critic: Callable, x: torch.Tensor) -> torch.Tensor:
    """critic(x) as a 1-D tensor of n scores (accepts (n,) or (n, 1) outputs)."""
    out = critic(x)
    if not is_tensor(out):
        import torch

        out = torch.as_tensor(np.asarray(out, dtype=np.float64), device=x.device)
    return check_scores(out, x.shape[0], "critic", verb="return",
                        detail=f" for an input of shape {tuple(x.shape)}")



def check_applies(critic: torch.nn.Module, dim: int, dtype, device) -> None:
    """ValueError naming ``critic`` when the module cannot score a batch of d-dimensional
    samples (a first layer of another width, say), instead of torch's shape error deep in
    a loop. Probed on two zero points in eval mode (no spectral-norm power iteration) with
    subnormal floats flushed as in every pass of training and audit; the module's modes are
    restored."""
    import torch

    from otdiv.audit.subnormals import flushed_denormals

    modes = {m: m.training for m in critic.modules()}
    try:
        critic.eval()
        with torch.no_grad(), flushed_denormals(device):
            scores(critic, torch.zeros((2, dim), dtype=dtype, device=device))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"critic cannot score samples of dimension {dim} (a batch of shape "
                         f"(2, {dim})): {first}") from None
    finally:
        for module, training in modes.items():
            module.train(training)


MEMORY_BUDGET = 4 * 2**30  # bytes train_critic and audit_critic may plan to use (default)
BUDGET_VARIABLE = "OTDIV_MEMORY_BUDGET_GIB"  # the environment's override, in GiB


def memory_budget() -> float:
    """The bytes train_critic, audit_critic, the population bound and the benchmark may plan
    to use: ``MEMORY_BUDGET`` (4 GiB, a guard against a mistyped size), or the environment
    variable ``OTDIV_MEMORY_BUDGET_GIB`` (a number of GiB > 0) on a machine or GPU with more
    memory. Read at each call."""
    text = os.environ.get(BUDGET_VARIABLE)
    if text is None or not text.strip():
        return float(MEMORY_BUDGET)
    try:
        gib = float(text)
    except ValueError:
        gib = math.nan
    if not (math.isfinite(gib) and 0 < gib <= 2**40):
        raise ValueError(f"{BUDGET_VARIABLE} must be a number of GiB in (0, 2**40], got "
                         f"{text!r}")
    return gib * 2**30


def check_budget(need: float, name: str, value: object, what: str,
                 budget: float | None = None) -> None:
    """The one memory-budget error: ValueError "``name``=``value`` needs about X GiB ``what``,
    over the memory budget of Y GiB; lower ``name`` (or raise the budget:
    OTDIV_MEMORY_BUDGET_GIB)" when ``need`` bytes exceed ``budget``
    (default: :func:`memory_budget`, read at the call; ``name``: the argument, or
    command-line option, whose reduction is the remedy)."""
    budget = memory_budget() if budget is None else budget
    if need > budget:
        raise ValueError(f"{name}={value} needs about {need / 2**30:.3g} GiB {what}, over the "
                         f"memory budget of {budget / 2**30:.3g} GiB; lower {name} (or raise "
                         f"the budget: {BUDGET_VARIABLE})")


def training_bytes(dim: int, hidden: Sequence[int], batch_size: int,
                   eval_size: int) -> tuple[int, int]:
    """(parameter bytes, per-step bytes) of training an MLP d → hidden → 1.

    Parameters: 16 bytes each (float32 weight, gradient and Adam's two moments).
    A step: 96 bytes per sample and unit, units = d + Σ hidden + 1 (float32 activations of
    the real, fake and interpolated batches and the graph kept for the penalty's double
    backward, about 8 copies), plus the two evaluation sets (float32, 4 bytes per unit).
    """
    widths = [dim, *hidden, 1]
    params = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    units = sum(widths)
    return 16 * params, 96 * batch_size * units + 8 * eval_size * units


def check_training_size(dim: int, hidden: Sequence[int], batch_size: int, eval_size: int,
                        *, budget: float | None = None,
                        names: dict[str, str] | None = None) -> None:
    """ValueError, naming the argument that drives it, when the estimate of
    :func:`training_bytes` exceeds ``budget`` bytes (``names`` renames the arguments,
    e.g. for command-line options)."""
    names = {"dim": "d", "hidden": "hidden", "batch_size": "batch_size",
             "eval_size": "eval_size", **(names or {})}
    param_bytes, step_bytes = training_bytes(dim, hidden, batch_size, eval_size)
    budget = memory_budget() if budget is None else budget
    if param_bytes + step_bytes <= budget:
        return
    # name the argument whose reduction to 1 saves the most
    reduced = {"dim": (1, hidden, batch_size, eval_size),
               "hidden": (dim, tuple(1 for _ in hidden), batch_size, eval_size),
               "batch_size": (dim, hidden, 1, eval_size),
               "eval_size": (dim, hidden, batch_size, 1)}
    name = min(reduced, key=lambda k: sum(training_bytes(*reduced[k])))
    value = {"dim": dim, "hidden": ",".join(map(str, hidden)), "batch_size": batch_size,
             "eval_size": eval_size}[name]
    check_budget(param_bytes + step_bytes, names[name], value,
                 f"to train (d={dim}, hidden {tuple(hidden)}, batch {batch_size})", budget)



def check_sample_size(n: object, d: int, name: str = "n") -> int:
    """n, a count of samples of dimension d whose float64 draw (and the one copy a sampler
    makes, 16 n d bytes) fits the memory budget; a ValueError naming ``name`` otherwise."""
    n = check_int(n, name)
    check_budget(16 * n * d, name, n, f"for samples of dimension {d}")
    return n


def seeded_module(build: Callable[[], torch.nn.Module], seed: int | None,
                  device: torch.device | None = None):
    """Build a module with a seeded initialisation, leaving torch's global RNG untouched
    (the CPU's, and every CUDA device's when ``device`` is a CUDA device: the build may draw
    on it, as spectral normalisation draws its power iteration's start vectors)."""
    import torch

    if seed is None:
        return build()
    cuda = device is not None and torch.device(device).type == "cuda"
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        torch.manual_seed(seed)
        return build()

