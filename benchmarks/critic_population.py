"""The held-out envelope bound on the population W1, on saved critics of pairs with known W1.

For each critic saved by ``python -m otdiv.cli.benchmark_critics --save-critics DIR``
(file names ``funnels_dD_KK_lp_sS.pt``, ``translate_dD_...``, ``scale_dD_...``), print
one markdown row: the bound of :func:`otdiv.audit.population.critic_population_bound`
(n = 2000 anchors per side with 8 steps down and up the critic's gradient, of fixed
length W and doubling from W while the critic falls at half its slope or more, halving
when it does not, the validation pair picking; 4000 validation and 4000 test points per
side), its standard error, the 95 % lower confidence bound, the ratio to the population
W1, the envelope, scale and path growth the validation pair picked, and, for comparison,
the same with fixed steps only (``grow=1``, the first version), with no paths
(``n_steps=0``: anchors at the samples only, which is what ``envelope_bound(...,
held_out=...)`` does) and the sample envelope certificate over the population W1 (it
bounds the samples' W1, not the population's); CPU seconds of the default and of the
fixed-step bound.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/critic_population.py DIR/*.pt
"""

from __future__ import annotations

import os
import re
import sys
import time

import numpy as np
import torch

from otdiv.audit import make_toy
from otdiv.audit.checkpoint import load_critic
from otdiv.audit.envelope import envelope_bound
from otdiv.audit.population import critic_population_bound


def toy_of(name: str):
    m = re.match(r"funnels_d(\d+)_K(\d+)_|(translate|scale)_d(\d+)_", name)
    if m is None:
        return None
    if m.group(1):
        return make_toy("funnels", d=int(m.group(1)), funnels=int(m.group(2)), seed=0)
    return make_toy(m.group(3), d=int(m.group(4)))


def main(paths: list[str]) -> None:
    torch.set_num_threads(1)
    print("| critic | population W1 | bound ± se | 95 % lower | bound / W1 | envelope, s, grow "
          "| fixed steps / W1 | no paths / W1 | sample envelope / W1 | CPU s | CPU s, fixed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        name = os.path.basename(path)[:-3]
        toy = toy_of(name)
        if toy is None:
            continue
        critic = load_critic(path)
        t = time.process_time()
        b = critic_population_bound(critic, toy.sample_real, toy.sample_fake, seed=11)
        sec = time.process_time() - t
        t = time.process_time()
        fixed = critic_population_bound(critic, toy.sample_real, toy.sample_fake, seed=11,
                                        grow=1.0)
        sec_fixed = time.process_time() - t
        flat = critic_population_bound(critic, toy.sample_real, toy.sample_fake, seed=11,
                                       n_steps=0)
        rng = np.random.default_rng(11)
        x, y = toy.sample_real(2000, rng), toy.sample_fake(2000, rng)
        with torch.no_grad():
            fx = critic(torch.tensor(x, dtype=torch.float32)).reshape(-1).double().numpy()
            fy = critic(torch.tensor(y, dtype=torch.float32)).reshape(-1).double().numpy()
        sample = envelope_bound(x, y, fx, fy).value
        w1 = toy.w1
        print(f"| {name} | {w1:.4f} | {b.value:.4f} ± {b.se:.4f} | {b.lower:.4f} "
              f"| {b.value / w1:.3f} | {b.envelope}, {b.scale:.3g}, {b.grow:g} "
              f"| {fixed.value / w1:.3f} "
              f"| {flat.value / w1:.3f} | {sample / w1:.2f} | {sec:.0f} | {sec_fixed:.0f} |",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
