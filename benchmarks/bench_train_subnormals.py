"""Critic training with subnormal floats flushed to zero or not: the Softplus(30) critic of
the MinFunnel benchmark, one thread, blocks of steps alternating the two modes on the same
critic, so both see the same weights and the same load; then the audit's gradient pass
(‖∇f‖ at held-out interpolates) on the trained critic, alternating the two modes; then
training on one thread (flushed) against THREADS threads (where the loop does not flush).
A part whose PAIRS size is 0 is skipped."""

from __future__ import annotations

import contextlib
import statistics

import numpy as np
import torch
from _harness import LoadLog, machine, options, table, timed

import otdiv.audit.slopes as slopes_module
import otdiv.audit.train as train_module
from otdiv.audit import make_toy, train_critic
from otdiv.audit.estimators import interpolates

SIZES = {"DIM": (64, 4), "FUNNELS": (256, 4), "BATCH": (1024, 64), "BLOCK": (100, 5),
         "PAIRS": (8, 2), "WARM": (600, 10), "AUDIT": (20000, 500), "AUDIT_PAIRS": (8, 2),
         "THREADS": (2, 2), "THREAD_PAIRS": (4, 1)}
S = options(__doc__, SIZES)


@contextlib.contextmanager
def _left_alone(device):  # train_critic's loop without its flush: the CPU's mode as found
    yield


def _subnormal_share(critic: torch.nn.Module, x: torch.Tensor) -> float:
    """The share of the critic's Softplus derivatives σ(β z) on ``x`` that are subnormal
    (0 < σ < float32's smallest normal), with the flush off."""
    share, count = 0.0, 0
    tiny = torch.finfo(torch.float32).tiny
    h = x
    with torch.no_grad():
        for layer in critic:
            if isinstance(layer, torch.nn.Softplus):
                d = torch.sigmoid(layer.beta * h)
                share += float(((d > 0) & (d < tiny)).sum())
                count += d.numel()
            h = layer(h)
    return share / max(count, 1)


def main() -> None:
    torch.set_flush_denormal(False)
    toy = make_toy("funnels", d=S.DIM, funnels=S.FUNNELS)
    common = dict(constraint="lp", batch_size=S.BATCH, lr=4e-3,
                  optimizer="muon", schedule="constant", device="cpu", seed=0,
                  progress=False, threads=1)
    hidden = (1024, 256, 256) if S.DIM >= 16 else (96, 96, 96)
    warm = train_critic(toy.sample_real, toy.sample_fake, steps=S.WARM, hidden=hidden,
                        softplus_beta=30.0, **common)  # the critic after its first steps
    critic = warm.critic
    print("## Critic training: subnormal floats\n")
    print(f"`benchmarks/bench_train_subnormals.py` on {machine()}; torch {torch.__version__}, "
          f"one thread unless said.\n")
    if S.PAIRS:
        _training_blocks(toy, critic, common, hidden)
    if S.AUDIT_PAIRS:
        _audit_pass(toy, critic)
    if S.THREAD_PAIRS:
        _thread_blocks(toy, critic, common)


def _report(times: dict[str, list[float]], unit: str, ratio: str) -> None:
    """The table of two alternated modes (median, min, max) and the median of the per-pair
    ratios first / second."""
    ratios = [a / b for a, b in zip(*times.values(), strict=True)]
    rows = [[name, statistics.median(t), min(t), max(t)] for name, t in times.items()]
    print(table(["mode", f"median (s a {unit})", "min", "max"], rows))
    print(f"\n{ratio}, median of the per-pair ratios: **{statistics.median(ratios):.3f}** "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}).\n")


def _training_blocks(toy, critic: torch.nn.Module, common: dict, hidden) -> None:
    """train_critic's loop, flushed and with the CPU's mode left as found, alternating."""
    probe = torch.as_tensor(toy.sample_real(4096, np.random.default_rng(1)), dtype=torch.float32)
    shares = [_subnormal_share(critic, probe)]
    times: dict[str, list[float]] = {"flushed (train_critic)": [], "not flushed": []}
    load = LoadLog()
    real = train_module.flushed_denormals
    try:
        for _ in range(S.PAIRS):
            for name in times:
                train_module.flushed_denormals = real if name.startswith("flushed") \
                    else _left_alone
                t, _ = timed(lambda: train_critic(toy.sample_real, toy.sample_fake,
                                                  steps=S.BLOCK, critic=critic, **common))
                times[name].append(t / S.BLOCK)
            shares.append(_subnormal_share(critic, probe))
            load.sample()
    finally:
        train_module.flushed_denormals = real
    print(f"The MinFunnel benchmark's critic (funnels d = {S.DIM}, K = {S.FUNNELS}; LP, "
          f"λ = 10, Softplus(30) MLP {S.DIM} → {' → '.join(map(str, hidden))} → 1, Muon lr "
          f"4e-3, batch {S.BATCH}) after {S.WARM} steps, then {S.PAIRS} pairs of "
          f"{S.BLOCK}-step blocks on the same critic, alternating `train_critic`'s loop "
          "(subnormal floats flushed to zero) and the same loop with the CPU's mode left "
          "as found (not flushed). Seconds a step, median (min, max) over the blocks; the "
          "ratio is the median of the per-pair ratios. A Softplus(β) derivative σ(β z) "
          "is subnormal in float32 for β z below about −87 (−103 and it is 0); the share "
          "of such derivatives on 4096 points of P, before the blocks and after the last: "
          f"{shares[0]:.2%} → {shares[-1]:.2%}. Load average (1 min) {load}.\n")
    _report(times, "step", "flushed / not flushed")


def _thread_blocks(toy, critic: torch.nn.Module, common: dict) -> None:
    """Blocks of train_critic on one thread (flushed) and on S.THREADS threads (unflushed:
    the loop flushes on one thread only), alternating on the same critic."""
    times: dict[str, list[float]] = {"1 thread (flushed)": [],
                                     f"{S.THREADS} threads (not flushed)": []}
    load = LoadLog()
    for _ in range(S.THREAD_PAIRS):
        for name, n in zip(times, (1, S.THREADS), strict=True):
            t, trained = timed(lambda n=n: train_critic(
                toy.sample_real, toy.sample_fake, steps=S.BLOCK, critic=critic,
                **{**common, "threads": n}))
            assert trained.settings["subnormals_flushed"] is (n == 1)
            times[name].append(t / S.BLOCK)
        load.sample()
    print(f"The same critic's loop on one thread against {S.THREADS} (`threads=`; with several "
          f"threads the loop runs unflushed), {S.THREAD_PAIRS} pairs of {S.BLOCK}-step "
          f"blocks alternating; seconds a step; load average (1 min) {load}.\n")
    _report(times, "step", f"one thread / {S.THREADS} threads")


def _audit_pass(toy, critic: torch.nn.Module) -> None:
    """The audit's gradient pass (otdiv.audit.slopes.grad_norms, as audit_critic calls it)
    on the trained critic, flushed (the module's path) and not, alternating."""
    rng = np.random.default_rng(2)
    x, y = toy.sample_real(S.AUDIT, rng), toy.sample_fake(S.AUDIT, rng)
    pts = interpolates(x, y, rng, 1)
    times: dict[str, list[float]] = {"flushed (audit_critic)": [], "not flushed": []}
    load = LoadLog()
    real = slopes_module.flushed_denormals
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the flush applies on one intra-op thread
    try:
        for _ in range(S.AUDIT_PAIRS):
            for name in times:
                slopes_module.flushed_denormals = real if name.startswith("flushed") \
                    else _left_alone
                t, _ = timed(lambda: slopes_module.grad_norms(critic, pts, cpu,
                                                                  torch.float32))
                times[name].append(t)
            load.sample()
    finally:
        slopes_module.flushed_denormals = real
        torch.set_num_threads(threads)
    print(f"The audit's gradient pass on the trained critic: ‖∇f‖ at {len(pts)} interpolates "
          "of held-out samples (`otdiv.audit.slopes.grad_norms`, blocks of "
          f"{slopes_module.ROWS} points, one thread), {S.AUDIT_PAIRS} pairs alternating the "
          f"two modes; seconds a pass, median (min, max); load average (1 min) {load}.\n")
    _report(times, "pass", "flushed / not flushed")


if __name__ == "__main__":
    main()
