"""Critic training in float32 and in bfloat16 (``train_critic(precision=...)``): the
Softplus(30) critic of the MinFunnel benchmark, one thread, subnormal floats flushed (as
the loop runs), blocks of steps alternating the two precisions on the same critic so that
both see the same weights and the same load, at the recipe's batch and at larger ones.
The accuracy of the critics trained either way is in docs/critic_benchmark.md ("Half the
time a sample: bfloat16"); this script times the steps."""

from __future__ import annotations

import statistics

import torch
from _harness import LoadLog, machine, options, table, timed

from otdiv.audit import make_toy, train_critic

SIZES = {"DIM": (64, 4), "FUNNELS": (256, 4), "WARM": (300, 5), "BLOCK": (40, 3),
         "PAIRS": (6, 2), "BATCH_1": (256, 16), "BATCH_2": (1024, 32), "BATCH_3": (4096, 64)}
S = options(__doc__, SIZES)


def _hardware() -> str:
    """What torch says of this CPU's bfloat16 support (private probes, guarded)."""
    cpu = getattr(torch, "cpu", None)
    amx = getattr(cpu, "_is_amx_tile_supported", lambda: None)()
    avx = getattr(cpu, "_is_avx512_bf16_supported", lambda: None)()
    return (f"torch's CPU capability {torch.backends.cpu.get_cpu_capability()}, AMX tiles "
            f"{'yes' if amx else 'no' if amx is not None else 'unknown'}, AVX512-BF16 "
            f"{'yes' if avx else 'no' if avx is not None else 'unknown'}")


def main() -> None:
    toy = make_toy("funnels", d=S.DIM, funnels=S.FUNNELS)
    hidden = (1024, 256, 256) if S.DIM >= 16 else (96, 96, 96)
    common = dict(constraint="lp", lr=2e-3, optimizer="muon", schedule="constant",
                  device="cpu", seed=0, progress=False, threads=1)
    critic = train_critic(toy.sample_real, toy.sample_fake, steps=S.WARM, hidden=hidden,
                          softplus_beta=30.0, batch_size=S.BATCH_1, **common).critic
    print("## Critic training: bfloat16\n")
    print(f"`benchmarks/bench_train_precision.py` on {machine()}; torch {torch.__version__}, "
          f"one thread; {_hardware()}.\n")
    print(f"The MinFunnel benchmark's critic (funnels d = {S.DIM}, K = {S.FUNNELS}; LP, "
          f"λ = 10, Softplus(30) MLP {S.DIM} → {' → '.join(map(str, hidden))} → 1, Muon lr "
          f"2e-3) after {S.WARM} steps at batch {S.BATCH_1}, then, at each batch, "
          f"{S.PAIRS} pairs of {S.BLOCK}-step blocks of `train_critic` on the same critic, "
          "alternating `precision=\"float32\"` and `precision=\"bfloat16\"` (the step's "
          "forward and backward passes under `torch.autocast`; the weights, the optimiser "
          "and the recorded estimates float32; the estimate recorded at a block's ends only, on "
          "256 points a side). Seconds a step, median over the blocks; "
          "the ratio is the median of the per-pair ratios bfloat16 / float32.\n")
    rows, load = [], LoadLog()
    for batch in (S.BATCH_1, S.BATCH_2, S.BATCH_3):
        if not batch:
            continue
        times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
        for _ in range(S.PAIRS):
            for precision in times:
                t, _ = timed(lambda p=precision, b=batch: train_critic(
                    toy.sample_real, toy.sample_fake, steps=S.BLOCK, critic=critic,
                    batch_size=b, precision=p, eval_every=S.BLOCK, eval_size=256, **common))
                times[precision].append(t / S.BLOCK)
            load.sample()
        ratios = [b / a for a, b in zip(times["float32"], times["bfloat16"], strict=True)]
        rows.append([batch, statistics.median(times["float32"]),
                     statistics.median(times["bfloat16"]), statistics.median(ratios),
                     min(ratios), max(ratios)])
    print(table(["batch", "float32 (s a step)", "bfloat16 (s a step)",
                 "bfloat16 / float32", "min", "max"], rows))
    print(f"\nLoad average (1 min) {load}.\n")


if __name__ == "__main__":
    main()
