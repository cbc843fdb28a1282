"""Lipschitz estimates: exact pairwise slope (n = 20,000, d = 2) and certified bounds of a
3 x 512 ReLU MLP, against the plain numpy / torch ways of computing them.

Run alone: ``python benchmarks/bench_lipschitz.py`` (prints one markdown section).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn
from _harness import LoadLog, machine, median_time, options, pin_threads, table

from otdiv import lipschitz_bounds, lipschitz_empirical

SIZES = {"N_EMP": (20_000, 500), "WIDTH": (512, 32), "DEPTH": (3, 3), "N_INPUTS": (512, 32)}
S = options(__doc__, SIZES)
D_EMP = 2  # the test function below reads two coordinates


def numpy_slope(x: np.ndarray, f: np.ndarray, block: int = 1000) -> float:
    """The peer: vectorised numpy over blocks of rows (all n² pairs, O(block·n) memory)."""
    best = 0.0
    for s in range(0, len(x), block):
        d = np.sqrt(((x[s:s + block, None, :] - x[None, :, :]) ** 2).sum(-1))
        df = np.abs(f[s:s + block, None] - f[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(d > 0, df / d, 0.0)
        best = max(best, float(r.max()))
    return best


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    layers, prev = [], 2
    for _ in range(S.DEPTH):
        layers += [nn.Linear(prev, S.WIDTH), nn.ReLU()]
        prev = S.WIDTH
    return nn.Sequential(*layers, nn.Linear(prev, 1))


def torch_product(net: nn.Module) -> float:
    """The peer: product of layer norms from torch's SVD (an estimate, not certified)."""
    return math.prod(float(torch.linalg.matrix_norm(m.weight.detach().double(), 2))
                     for m in net if isinstance(m, nn.Linear))


def main() -> None:
    pin_threads(2)
    load = LoadLog()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(S.N_EMP, D_EMP))
    f = np.sin(2 * x[:, 0]) * np.cos(x[:, 1])
    lipschitz_empirical(x[:100], f[:100])  # numba compilation (cached after the first run)
    t_emp = median_time(lambda: lipschitz_empirical(x, f), repeat=3)
    t_np = median_time(lambda: numpy_slope(x, f), repeat=1, warmup=0)
    v_emp, v_np = lipschitz_empirical(x, f), numpy_slope(x, f)
    # the two sum and divide in different orders: equal up to a few units in the last place
    same = math.isclose(v_emp, v_np, rel_tol=4 * np.finfo(float).eps)

    net = mlp(0)
    xt = torch.randn(S.N_INPUTS, 2, generator=torch.Generator().manual_seed(1))
    upper_only = {"n_interpolates": 0, "ascent_steps": 0, "seed": 0}
    t_up = median_time(lambda: lipschitz_bounds(net, xt[:1], **upper_only), repeat=3)
    c0 = time.process_time()
    lipschitz_bounds(net, xt[:1], **upper_only)
    cpu_up = time.process_time() - c0  # CPU seconds of all threads: robust to a busy machine
    t_peer = median_time(lambda: torch_product(net), repeat=3)
    t_full = median_time(lambda: lipschitz_bounds(net, xt, seed=0), repeat=3)
    b = lipschitz_bounds(net, xt, seed=0)
    at_sample = lipschitz_bounds(net, xt, n_interpolates=0, ascent_steps=0, seed=0).lower
    load.sample()

    print("## Lipschitz estimates\n")
    print(f"`benchmarks/bench_lipschitz.py` on {machine()}.\n")
    print(f"Exact maximum pairwise slope, n = {S.N_EMP:,}, d = {D_EMP} "
          f"({S.N_EMP * (S.N_EMP - 1) // 2:,} pairs); peer: numpy over blocks of 1,000 rows; "
          "'same value': equal to 4 units in the last place.\n")
    print(table(
        ["n", "otdiv (s)", "numpy (s)", "ratio", "same value", "target < 3 s"],
        [[S.N_EMP, t_emp, t_np, t_emp / t_np, same,
          "met" if t_emp < 3 else "NOT met"]],
    ))
    print(f"\nBounds of a {S.DEPTH} x {S.WIDTH} ReLU MLP on 2-D inputs (PyTorch's default "
          f"initialisation, seed 0), {S.N_INPUTS} standard-normal inputs. 'upper only' times "
          "`lipschitz_bounds(net, x[:1], n_interpolates=0, ascent_steps=0)`; the peer is the "
          "product of `torch.linalg.matrix_norm(W, 2)` (SVD, not certified, no activation "
          "structure).\n")
    print(table(
        ["quantity", "value", "time (s)"],
        [
            ["otdiv upper (certified, Combettes-Pesquet)", b.upper, t_up],
            ["otdiv product of certified layer norms", b.product_upper, "-"],
            ["torch SVD product of layer norms (peer)", torch_product(net), t_peer],
            [f"max gradient norm on the {S.N_INPUTS} inputs", at_sample, "-"],
            ["otdiv lower (inputs + interpolates + ascent)", b.lower, t_full],
            ["upper / lower", b.ratio, "-"],
            ["peer product / lower", torch_product(net) / b.lower, "-"],
        ],
    ))
    print(f"\nTarget upper bound < 1 s: {'met' if t_up < 1 else 'NOT met'} "
          f"({t_up:.3g} s wall, {cpu_up:.3g} CPU-seconds over both threads; otdiv/peer "
          f"time ratio {t_up / t_peer:.3g}). Load average (1 min) at the start and at the "
          f"end of the run: {load} (the machine is shared; wall times stretch with the "
          "load).")


if __name__ == "__main__":
    main()
