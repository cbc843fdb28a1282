"""train_critic from Python: torch threads inside the training loop (threads=1, torch's
default, "auto"), 400 steps of the default critic, median of 3 interleaved runs."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, table

from otdiv.audit import make_toy, train_critic

STEPS, REPEATS = 400, 3


def main() -> None:
    default = torch.get_num_threads()
    toy = make_toy("8gaussians")
    settings = [("1", 1), (f"None (torch's default, {default})", None), ('"auto"', "auto")]
    train_critic(toy.sample_real, toy.sample_fake, steps=20, device="cpu", seed=0,
                 progress=False)  # warm-up: imports, first allocations
    times: dict[str, list[float]] = {name: [] for name, _ in settings}
    loads = []
    for _ in range(REPEATS):
        for name, threads in settings:
            loads.append(os.getloadavg()[0])
            t0 = time.perf_counter()
            train_critic(toy.sample_real, toy.sample_fake, steps=STEPS, device="cpu", seed=0,
                         progress=False, threads=threads)
            times[name].append(time.perf_counter() - t0)
            assert torch.get_num_threads() == default  # restored after every run
    rows = [[name, statistics.median(t), min(t), max(t)] for name, t in times.items()]
    print("## Critic training threads\n")
    print(f"`benchmarks/bench_train_threads.py` on {machine()}; torch {torch.__version__}, "
          f"torch's default {default} threads; load average {min(loads):.1f}–"
          f"{max(loads):.1f} during the runs (other jobs on the machine).\n")
    print(f"`otdiv.train_critic(toy.sample_real, toy.sample_fake, steps={STEPS}, "
          "device='cpu', seed=0, threads=T)` on the 8 Gaussians: the default critic (ReLU "
          "MLP 2 → 3 × 256 → 1, WGAN-GP, batch 256); wall seconds, median (min, max) of "
          f"{REPEATS} runs, the settings interleaved. `threads=\"auto\"` (the default) "
          "takes one thread for this critic.\n")
    print(table(["threads", "median (s)", "min (s)", "max (s)"], rows))
    print()


if __name__ == "__main__":
    main()
