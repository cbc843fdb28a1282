"""The progress of a training loop on stderr: a tqdm bar on a terminal, else one heartbeat
line every ``HEARTBEAT_SECONDS`` (logs, pipes, CI), for :func:`otdiv.audit.train_critic` and
the GAN discriminator's loop."""

from __future__ import annotations

import sys
import time

import numpy as np

HEARTBEAT_SECONDS = 10.0  # between two heartbeat lines when stderr is not a terminal


class _Heartbeat:
    """A one-line progress report on stderr every ``HEARTBEAT_SECONDS`` (logs, pipes, CI):
    ``desc: step k/N (p %), estimate e, t s elapsed, ~r s left``; ``initial`` steps were
    done before (a resumed run): the rate counts this run's steps only."""

    def __init__(self, total: int, desc: str, initial: int = 0):
        self.total, self.desc, self.n, self.initial = total, desc, initial, initial
        self.postfix: dict[str, str] = {}
        self.start = self.last = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = {k: str(v) for k, v in values.items()}

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last < HEARTBEAT_SECONDS or not self.initial < self.n < self.total:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed * (self.total - self.n) / (self.n - self.initial)
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: step {self.n}/{self.total} ({100 * self.n / self.total:.0f} %)"
              f"{extra}, {elapsed:.0f} s elapsed, ~{left:.0f} s left", file=sys.stderr,
              flush=True)


def progress_reporter(total: int, progress: bool | None, desc: str, initial: int = 0):
    """None: a tqdm bar on stderr when it is a terminal, else a heartbeat line every
    ``HEARTBEAT_SECONDS``; True: always a tqdm bar; False: nothing. ``initial``: steps done
    before (a resumed run)."""
    from tqdm.auto import tqdm

    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be None, True or False, got {progress!r}")
    progress = None if progress is None else bool(progress)
    if progress is None and not sys.stderr.isatty():
        return _Heartbeat(total, desc, initial)
    return tqdm(total=total, initial=initial, desc=desc, disable=progress is False, leave=False,
                dynamic_ncols=True, file=sys.stderr)
