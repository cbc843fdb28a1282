"""One LP (or GP) critic with an activation ``otdiv audit`` does not offer, on one toy.

``otdiv audit`` (and so ``otdiv.audit.sweep`` and benchmarks/audit_sweep.py) trains ReLU
and Softplus(β) MLPs (``otdiv.audit.mlp_critic``); this script builds the others and trains
them with ``otdiv.train_critic`` (cosine schedule, training seed 0 unless --seed), then
audits them with ``otdiv.audit_critic`` (4000 held-out points per side, 3 draws, audit
seed 1). The critic is initialised as ``train_critic`` initialises its own:

* ``maxmin``: Linear(d, h1) MaxMin Linear(h1, h2) MaxMin ... Linear(hL, 1), MaxMin being
  GroupSort with group size 2 (Anil et al. 2019): the h pre-activations are split into two
  halves a, b and mapped to (max(a, b), min(a, b)), so the width and the parameter count
  stay those of the ReLU critic. MaxMin is gradient-norm preserving (its Jacobian is a
  permutation), and otdiv.lipschitz_bounds reads it as 1-Lipschitz (by its class name);
* ``leaky``: the same with LeakyReLU(--leaky-slope, default 0.2);
* ``elu``, ``gelu``, ``tanh``: smooth activations (ELU, GELU, Tanh). A piecewise-linear
  critic can only approximate the cone ||x - c|| - phi of each cluster's optimal potential
  by a pyramid of flat faces, whose gradient misses the radial transport ray by up to
  pi / k for k faces; a smooth critic can curve with the rays.

Prints one JSON line: the settings, the wall and CPU seconds, the raw and
gradient-normalised relative errors and the slope G. Run one per core, on one thread:

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/audit_activations.py \
        --act maxmin --hidden 96,96,96 --steps 12000 >> benchmarks/results/audit_sweep.jsonl

docs/audit.md ("The 25 Gaussians") quotes the lines in benchmarks/results/audit_sweep.jsonl
(those with "act" other than relu and softplus came from this script, under its former
name audit_sweep.py).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import otdiv
from otdiv.audit import make_toy

ACTS = ("maxmin", "leaky", "elu", "gelu", "tanh")  # relu, softplus: audit_sweep.py


MAXMIN_IMPLS = ("relu", "minmax")


class MaxMin(torch.nn.Module):
    """(a, b) -> (max(a, b), min(a, b)) on the two halves of the last dimension (even width).

    ``impl="minmax"`` computes torch.maximum / torch.minimum; ``impl="relu"`` the same
    function as (b + relu(a − b), a − relu(a − b)) (equal up to float rounding, ~1e-6),
    which is about twice as fast on a CPU under the gradient penalty's double backward
    (torch.maximum/minimum's second-order graph is slow). The class name is what
    otdiv.lipschitz_bounds recognises as 1-Lipschitz, so keep it.
    """

    def __init__(self, impl: str = "relu"):
        super().__init__()
        if impl not in MAXMIN_IMPLS:
            raise ValueError(f"impl must be one of {MAXMIN_IMPLS}, got {impl!r}")
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=-1)
        if self.impl == "minmax":
            return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=-1)
        r = torch.relu(a - b)
        return torch.cat([b + r, a - r], dim=-1)


def build_critic(dim: int, hidden: tuple[int, ...], act: str, leaky_slope: float = 0.2,
                 seed: int | None = 0, maxmin_impl: str = "relu") -> torch.nn.Sequential:
    """The critic, initialised under torch.manual_seed(seed) as train_critic does its own."""
    if act == "maxmin" and any(h % 2 for h in hidden):
        raise ValueError(f"maxmin needs even widths, got {hidden}")

    def make_act() -> torch.nn.Module:
        if act == "leaky":
            return torch.nn.LeakyReLU(leaky_slope)
        smooth = {"elu": torch.nn.ELU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh}
        if act in smooth:
            return smooth[act]()
        return MaxMin(maxmin_impl)

    def build() -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        prev = dim
        for width in hidden:
            layers += [torch.nn.Linear(prev, width), make_act()]
            prev = width
        layers.append(torch.nn.Linear(prev, 1))
        return torch.nn.Sequential(*layers)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", default="25gaussians")
    parser.add_argument("--constraint", default="lp", choices=("gp", "lp"))
    parser.add_argument("--act", default="maxmin", choices=ACTS)
    parser.add_argument("--leaky-slope", type=float, default=0.2)
    parser.add_argument("--maxmin-impl", default="relu", choices=MAXMIN_IMPLS,
                        help="how MaxMin is computed (same function; 'relu' is faster)")
    parser.add_argument("--hidden", default="128,128,128")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lambda-gp", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    toy = make_toy(args.toy)
    critic = build_critic(toy.dim, hidden, args.act, args.leaky_slope, args.seed,
                          args.maxmin_impl)
    n_params = sum(p.numel() for p in critic.parameters())
    t0, c0 = time.perf_counter(), time.process_time()
    trained = otdiv.train_critic(toy.sample_real, toy.sample_fake, constraint=args.constraint,
                                 steps=args.steps, critic=critic, lr=args.lr,
                                 schedule="cosine", batch_size=args.batch_size,
                                 lambda_gp=args.lambda_gp, seed=args.seed, progress=False)
    t_train = time.perf_counter() - t0
    audit = otdiv.audit_critic(trained.critic, toy.sample_real, toy.sample_fake, n=4000,
                               repeats=3, w1=toy.w1, seed=1)
    print(json.dumps({
        "toy": args.toy, "constraint": args.constraint, "act": args.act,
        "leaky_slope": args.leaky_slope if args.act == "leaky" else None,
        "maxmin_impl": args.maxmin_impl if args.act == "maxmin" else None,
        "hidden": hidden, "params": n_params, "steps": args.steps,
        "lr": args.lr, "batch_size": args.batch_size, "lambda_gp": args.lambda_gp,
        "seed": args.seed,
        "train_s": round(t_train, 1), "ms_per_step": round(1000 * t_train / args.steps, 2),
        "total_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(time.process_time() - c0, 1), "estimate": audit.estimate,
        "exact_w1": audit.exact_w1, "rel_error": audit.rel_error, "slope_G": audit.grad_norm,
        "slope_G_std": audit.grad_norm_std,
        "rel_error_normalized": audit.rel_error_normalized,
        "lipschitz_lower": audit.lipschitz_lower,
        "lipschitz_upper": audit.lipschitz_upper if audit.lipschitz_upper != float("inf")
        else "inf",
    }))


if __name__ == "__main__":
    main()
