"""train_critic from Python: torch threads inside the training loop (threads=1, torch's
default, "auto"), 400 steps of the default critic, median of 3 interleaved runs."""

from __future__ import annotations

import statistics

import torch
from _harness import LoadLog, machine, options, table, timed

from otdiv.audit import make_toy, train_critic

SIZES = {"STEPS": (400, 10), "REPEATS": (3, 1)}
S = options(__doc__, SIZES)


def main() -> None:
    default = torch.get_num_threads()
    toy = make_toy("8gaussians")
    settings = [("1", 1), (f"None (torch's default, {default})", None), ('"auto"', "auto")]
    train_critic(toy.sample_real, toy.sample_fake, steps=20, device="cpu", seed=0,
                 progress=False)  # warm-up: imports, first allocations
    times: dict[str, list[float]] = {name: [] for name, _ in settings}
    load = LoadLog()
    for _ in range(S.REPEATS):
        for name, threads in settings:
            t, _ = timed(lambda threads=threads: train_critic(
                toy.sample_real, toy.sample_fake, steps=S.STEPS, device="cpu", seed=0,
                progress=False, threads=threads))
            times[name].append(t)
            load.sample()
            assert torch.get_num_threads() == default  # restored after every run
    rows = [[name, statistics.median(t), min(t), max(t)] for name, t in times.items()]
    print("## Critic training threads\n")
    print(f"`benchmarks/bench_train_threads.py` on {machine()}; torch {torch.__version__}, "
          f"torch's default {default} threads; load average (1 min) {load} before and "
          "after the runs (other jobs on the machine).\n")
    print(f"`otdiv.train_critic(toy.sample_real, toy.sample_fake, steps={S.STEPS}, "
          "device='cpu', seed=0, threads=T)` on the 8 Gaussians: the default critic (ReLU "
          "MLP 2 → 3 × 256 → 1, WGAN-GP, batch 256); wall seconds, median (min, max) of "
          f"{S.REPEATS} runs, the settings interleaved. `threads=\"auto\"` (the default) "
          "takes one thread for this critic.\n")
    print(table(["threads", "median (s)", "min (s)", "max (s)"], rows))
    print()


if __name__ == "__main__":
    main()
