"""Subnormal floats flushed to zero around a CPU block of a critic's passes.

A Softplus(β) critic makes subnormal numbers (|x| < 1.2e-38 in float32): its activation
log(1 + e^{β z})/β and derivative σ(β z) fall below float32's normal range where β z < −87,
and on x86 every product with such an operand takes a slow path. The critic's training loop
(:mod:`otdiv.audit.train`, the discriminator's) and the audit's passes over held-out points
(:mod:`otdiv.audit.slopes`) run inside :func:`flushed_denormals`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


# "auto" threads for a Softplus critic on a CPU that flushes: one flushed thread while torch
# would run at most this many. A flushed step of the d = 64 benchmark critic took 0.15 s
# against 0.85 s unflushed on one thread (5.7 ×), and 0.13 s against 0.43 s on two unflushed
# threads (docs/benchmarks.md, "Critic training: subnormal floats"): at perfect scaling up
# to about 6 unflushed threads lose to one flushed thread.
AUTO_FLUSH_THREADS = 6
# ... for a float32 critic with a Softplus of at least this β: σ(β z) is subnormal for
# β z < −87, i.e. z < −8.7 at β = 10 (the recipe's β = 30: z < −2.9); at β = 1 it takes
# z < −87, which a trained critic does not reach, and flushing would save nothing
SUBNORMAL_BETA = 10.0


def subnormal_prone(critic) -> bool:
    """Whether a critic's training makes subnormal float32 numbers: float32 parameters and
    a Softplus layer of β >= ``SUBNORMAL_BETA`` (subclasses and nested modules count)."""
    import torch

    params = list(critic.parameters())
    return (bool(params) and params[0].dtype == torch.float32
            and any(isinstance(m, torch.nn.Softplus) and m.beta >= SUBNORMAL_BETA
                    for m in critic.modules()))


@functools.cache
def flush_supported() -> bool:
    """Whether this CPU can flush subnormal floats (torch.set_flush_denormal's answer; the
    calling thread's mode is restored at once)."""
    import torch

    before = _flushing_denormals()
    ok = bool(torch.set_flush_denormal(True))
    torch.set_flush_denormal(before)
    return ok


def _flushing_denormals() -> bool:
    """Whether this thread's CPU flushes subnormal floats to zero (torch has no getter: a
    subnormal float32 times 0.5 is 0 exactly when it does)."""
    import torch

    return bool((torch.tensor([1e-39], dtype=torch.float32) * 0.5).item() == 0.0)


@contextlib.contextmanager
def flushed_denormals(device: torch.device | str) -> Iterator[bool]:
    """Run the block with subnormal floats (|x| < 1.2e-38 in float32) flushed to zero on a
    CPU device running one intra-op thread, and restore the previous mode afterwards.
    Yields whether it flushes.

    A Softplus(β) critic makes them: its activation log(1 + e^{β z})/β and derivative
    σ(β z) fall below float32's normal range for β z < −87, and every product with such a
    number takes a slow path on x86 CPUs. On the MinFunnel benchmark's critic (d = 64,
    K = 256, batch 1024, one thread) 0.23 % of the derivatives were subnormal and a step
    took 0.85 s, against 0.15 s flushed (docs/benchmarks.md, "Critic training: subnormal
    floats"). Each operation changes by less than 1.2e-38; a training run as a whole moves
    within its own rounding noise.

    Only on one thread: torch sets the mode (the CPU's FTZ and DAZ bits, both together) for
    the calling thread, and pool threads started inside the block would inherit it and keep
    it after the block — the caller's mode would not be restored. With several threads the
    block runs as it is, unflushed. A CUDA device is left alone.
    """
    import torch

    if torch.device(device).type != "cpu" or torch.get_num_threads() != 1:
        yield False
        return
    before = _flushing_denormals()
    flushing = torch.set_flush_denormal(True)
    try:
        yield flushing
    finally:
        torch.set_flush_denormal(before)
