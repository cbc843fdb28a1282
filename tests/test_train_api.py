"""train_critic from Python: threads chosen inside the loop, progress, and sizes refused
early. Tiny critics and few steps: each case runs well under a second."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
import torch

import otdiv.audit.train as train_module
from otdiv.audit.train import AUTO_ONE_THREAD_WORK, resolve_threads, train_critic


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class _Spy(torch.nn.Module):
    """A linear critic that records torch's thread count at every training forward pass."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.seen: set[int] = set()

    def forward(self, x):
        if self.training:
            self.seen.add(torch.get_num_threads())
        return self.lin(x)


@pytest.mark.parametrize(("threads", "inside"), [("auto", 1), (None, 3), (2, 2)])
def test_threads_are_set_inside_the_loop_and_restored(threads, inside):
    x = np.random.default_rng(0).normal(size=(50, 2))
    torch.set_num_threads(3)
    spy = _Spy()
    train_critic(x, x + 1, critic=spy, steps=5, batch_size=8, device="cpu", seed=0,
                 progress=False, threads=threads)
    assert spy.seen == {inside}
    assert torch.get_num_threads() == 3


def test_auto_threads_rule():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_threads("auto", cpu, 256, 3 * 512 * 512) == 1  # 3 x 512 at batch 256
    assert resolve_threads("auto", cpu, 256, AUTO_ONE_THREAD_WORK // 256 + 1) is None
    assert resolve_threads("auto", cuda, 256, 10) is None
    for bad in ("many", 0, -1, 1.5):
        with pytest.raises((TypeError, ValueError), match="threads"):
            resolve_threads(bad, cpu, 256, 10)


def test_threads_restored_when_training_fails():
    torch.set_num_threads(3)

    class Boom(torch.nn.Linear):
        def forward(self, x):
            if self.training:
                raise RuntimeError("boom")
            return super().forward(x)

    x = np.zeros((10, 2))
    with pytest.raises(RuntimeError, match="boom"):
        train_critic(x, x + 1, critic=Boom(2, 1), steps=3, batch_size=4, device="cpu",
                     progress=False)
    assert torch.get_num_threads() == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_heartbeat_off_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(train_module, "HEARTBEAT_SECONDS", 0.0)  # a line per step
    x = np.random.default_rng(0).normal(size=(50, 2))
    train_critic(x, x + 1, steps=6, hidden=(4,), batch_size=8, eval_every=2, device="cpu",
                 seed=0)  # progress=None: stderr is captured, not a terminal
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5  # steps 1..5; the last step prints nothing
    pattern = (r"critic \(gp\): step (\d)/6 \(\d+ %\)(, estimate -?\d\.\d{4})?, \d+ s "
               r"elapsed, ~\d+ s left")
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert [int(re.match(pattern, line).group(1)) for line in lines] == [1, 2, 3, 4, 5]
    assert "estimate" in lines[-1]
    train_critic(x, x + 1, steps=6, hidden=(4,), device="cpu", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    x = np.random.default_rng(0).normal(size=(50, 2))
    train_critic(x, x + 1, steps=6, hidden=(4,), batch_size=8, device="cpu", seed=0)
    text = term.getvalue()
    assert re.search(r"critic \(gp\): +\d+%\|", text)  # tqdm's bar, not a heartbeat
    assert "elapsed" not in text
