"""The intra-op thread count of a training loop on a CPU (``threads="auto"``), and a block
that runs with it and restores torch's setting; for :func:`otdiv.audit.train_critic` and the
GAN discriminator's loop (docs/benchmarks.md, "Critic training threads")."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from otdiv._array import check_int
from otdiv.audit.subnormals import AUTO_FLUSH_THREADS, flush_supported

if TYPE_CHECKING:
    import torch

# "auto" threads: one intra-op thread while batch_size × parameters is at most this many
# multiply-adds per layer pass (3 × 512 hidden at batch 256 is 1.4e8); torch's own setting
# above it. Small MLPs gain nothing from a second thread, and on a busy CPU the threads
# wait on each other (docs/benchmarks.md, "Critic training threads").
AUTO_ONE_THREAD_WORK = 2**28


MAX_THREADS = 4096  # torch's intra-op pool; beyond it set_num_threads overflows or stalls


def resolve_threads(threads: object, device: torch.device, batch_size: int,
                    n_params: int, subnormals: bool = False) -> int | None:
    """The intra-op thread count for a training loop; None leaves torch's setting alone.

    ``threads``: "auto" -> 1 on a CPU when batch_size · n_params <= ``AUTO_ONE_THREAD_WORK``,
    or when the critic makes subnormal floats (``subnormals``: a float32 Softplus(β >= 10),
    :func:`~otdiv.audit.subnormals.subnormal_prone`), the CPU can flush them and torch runs
    at most ``AUTO_FLUSH_THREADS`` threads (the loop flushes on one thread only, and a
    flushed thread outruns that many unflushed ones); else None.
    None -> None; an int >= 1 -> itself.
    """
    if threads is None:
        return None
    if isinstance(threads, str):
        if threads != "auto":
            raise ValueError(f"threads must be 'auto', None or an integer >= 1, got {threads!r}")
        if device.type != "cpu":
            return None
        if batch_size * n_params <= AUTO_ONE_THREAD_WORK:
            return 1
        import torch

        if subnormals and torch.get_num_threads() <= AUTO_FLUSH_THREADS and flush_supported():
            return 1
        return None
    return check_int(threads, "threads", maximum=MAX_THREADS)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` and restore the count afterwards
    (nothing changes when n is None)."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
