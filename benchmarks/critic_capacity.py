"""Can the critic network represent the MinFunnel potential? Supervised fit of u and ∇u.

The WGAN critics of the MinFunnel pairs end misaligned with the transport at d >= 64 and
K = 64 funnels (cos = D_T / G_T well below 1, docs/critic_benchmark_history.md). This script
separates the two possible causes. It fits the same MLP (``mlp_critic``, Softplus(30),
Adam 2e-3 (0.5, 0.9), cosine schedule, batch 256 of each of P and Q, fresh every step)
to the *known* optimal potential by regression,

    loss = mean_z [(f(z) − mean f) − (u(z) − mean u)]² + mean_z ||∇f(z) − ∇u(z)||²,

and measures its alignment on the true transport segments x → T(x) as the alignment
script does (``benchmarks/results/critic_alignment.md``): G_T = mean ||∇f||, D_T = mean
<∇f, e> at one uniform point of each segment (e its unit direction), cos = D_T / G_T.
If the regression reaches cos ≈ 1 where WGAN training does not, the network can hold the
potential and the training signal (E_P f − E_Q f under the penalty) is what is slow; if the
regression stalls too, the network's capacity is the limit.

    OMP_NUM_THREADS=1 python benchmarks/critic_capacity.py --dim 64 --funnels 64 \
        --steps 3000 --hidden 256,256,256

``--fit wgan`` trains the same MLP the WGAN way instead, in a loop of its own with knobs
train_critic does not have: the penalty's power p, λ E_μ (‖∇f‖ − 1)_+^p (2: WGAN-LP; 1: the
exact-penalty hinge), and separate sample counts per step for the objective
(``--batch``) and for the penalty's interpolates (``--penalty-batch``, the first pairs of
the objective's samples). It prints the raw and flow-corrected errors (on 20,000 fresh
points per side) beside cos.

    OMP_NUM_THREADS=1 python benchmarks/critic_capacity.py --fit wgan --power 1 --lam 10
    OMP_NUM_THREADS=1 python benchmarks/critic_capacity.py --fit wgan --batch 1024 \
        --penalty-batch 256 --steps 6000

``--optimizer muon`` trains the hidden weight matrices with torch.optim.Muon (the update
is the momentum's orthogonal factor U Vᵀ, scaled to Adam's RMS at the same ``--lr``) and
the rest with Adam, as ``train_critic(optimizer="muon")`` does; ``--pairing ot`` puts the
penalty's interpolates on the pairs of the minibatch's exact OT plan instead of random
pairs.

    OMP_NUM_THREADS=1 python benchmarks/critic_capacity.py --fit wgan --optimizer muon
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from otdiv.audit.estimators import flow_corrected
from otdiv.audit.funnels import MinFunnel
from otdiv.audit.models import mlp_critic
from otdiv.audit.optimizers import build_optimizers
from otdiv.audit.subnormals import flushed_denormals


def alignment(critic: torch.nn.Module, pair: MinFunnel, n: int,
              rng: np.random.Generator) -> tuple[float, float]:
    """(G_T, D_T) of ``critic`` on n true segments x → T(x), one uniform point on each."""
    x = pair.sample_real(n, rng)
    tx = pair.transport(x, rng)[0]
    seg = x - tx
    unit = seg / np.linalg.norm(seg, axis=1, keepdims=True)
    z = torch.tensor(tx + rng.random((n, 1)) * seg, dtype=torch.float32, requires_grad=True)
    (g,) = torch.autograd.grad(critic(z).sum(), z)
    g = g.double().numpy()
    return float(np.linalg.norm(g, axis=1).mean()), float(np.sum(g * unit, axis=1).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--funnels", type=int, default=64)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--hidden", default="256,256,256")
    p.add_argument("--softplus-beta", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fit", choices=("regression", "wgan"), default="regression")
    p.add_argument("--power", type=float, default=2.0, help="wgan: the penalty's power p")
    p.add_argument("--lam", type=float, default=10.0, help="wgan: the penalty weight λ")
    p.add_argument("--batch", type=int, default=256, help="wgan: objective samples a side")
    p.add_argument("--penalty-batch", type=int, default=256,
                   help="wgan: penalty interpolates per step (at most --batch)")
    p.add_argument("--pairing", choices=("random", "ot"), default="random",
                   help="wgan: the penalty's interpolates between random pairs of the "
                   "objective's samples, or between the pairs of the minibatch's exact OT "
                   "plan (Euclidean cost; near transport segments)")
    p.add_argument("--optimizer", choices=("adam", "muon"), default="adam",
                   help="muon: torch.optim.Muon (orthogonalised momentum, lr matched to "
                   "AdamW's RMS) for the hidden weight matrices, Adam for the rest")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-after", type=int, default=0, metavar="B",
                   help="wgan: from step --switch-at x steps on, B samples a side for the "
                   "objective and the penalty (a batch schedule)")
    p.add_argument("--switch-at", type=float, default=0.5, metavar="FRACTION")
    p.add_argument("--first-layer", choices=("muon", "adam"), default="muon",
                   help="muon: which optimiser trains the first layer's weight matrix")
    p.add_argument("--momentum", type=float, default=0.95,
                   help="muon: the momentum of torch.optim.Muon (the recipe's 0.95)")
    p.add_argument("--svrg", type=int, default=0, metavar="EVERY",
                   help="wgan: variance-reduced objective gradient (SVRG): a snapshot of the "
                   "critic every EVERY steps, its gradient on --svrg-batch samples a side")
    p.add_argument("--svrg-batch", type=int, default=16384)
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="measure the exponential moving average of the parameters "
                   "(Polyak averaging, decay e.g. 0.999) instead of the last iterate")
    p.add_argument("--bf16", action="store_true",
                   help="the step's forward and backward passes under torch.autocast "
                   "(bfloat16 matrix products; the weights and the optimiser stay float32)")
    p.add_argument("--pretrain", type=int, default=0, metavar="STEPS",
                   help="first fit u by regression for STEPS steps (own Adam and schedule), "
                   "then --fit from there: does WGAN training keep a critic already aligned?")
    args = p.parse_args()
    for name in ("dim", "funnels", "steps", "batch", "penalty_batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.pretrain < 0 or args.svrg < 0:
        p.error("--pretrain and --svrg must be at least 0")
    if args.svrg_batch < 1:
        p.error("--svrg-batch must be at least 1")
    if not 0 <= args.momentum < 1:
        p.error(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.momentum != 0.95 and args.optimizer != "muon":
        p.error("--momentum applies to --optimizer muon")
    if not 0 <= args.ema < 1:
        p.error(f"--ema must be a decay in [0, 1), got {args.ema}")
    if args.svrg and args.fit != "wgan":
        p.error("--svrg applies to --fit wgan")
    if args.penalty_batch > args.batch:
        p.error(f"--penalty-batch ({args.penalty_batch}) takes the first pairs of the "
                f"objective's samples: at most --batch ({args.batch})")
    torch.set_num_threads(1)
    hidden = tuple(int(w) for w in args.hidden.split(","))
    pair = MinFunnel(args.dim, args.funnels, seed=0)  # the benchmark's pair (apex seed 0)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    critic = mlp_critic(args.dim, hidden, softplus_beta=args.softplus_beta)
    t0 = time.perf_counter()
    with flushed_denormals("cpu"):  # as train_critic's loop: subnormal floats cost 6 x
        run(critic, pair, rng, args, hidden, t0)


def run(critic, pair: MinFunnel, rng: np.random.Generator, args, hidden, t0: float) -> None:
    """The fit of ``args`` and its printed row."""
    label = knobs(args)  # before a batch schedule changes args.batch
    if args.pretrain:
        fit(critic, regression_step, args.pretrain, pair, rng, args)
        gt, dt = alignment(critic, pair, 4000, rng)
        print(f"after {args.pretrain} regression steps: G_T {gt:.3f}, D_T {dt:.3f}, "
              f"cos {dt / gt:.3f}" + (f", {wgan_errors(critic, pair, rng, args)}"
                                     if args.fit == "wgan" else ""))
    step = regression_step if args.fit == "regression" else \
        (svrg_step() if args.svrg else wgan_step)
    loss = fit(critic, step, args.steps, pair, rng, args, ema=args.ema)
    gt, dt = alignment(critic, pair, 4000, rng)
    extra = f"{loss.item():.3f}" if args.fit == "regression" else \
        wgan_errors(critic, pair, rng, args)
    last = "final loss" if args.fit == "regression" else "errors (raw, flow), objective"
    print(f"| pair | hidden | fit | steps | G_T | D_T | cos | {last} | s |\n"
          "|---|---|---|---|---|---|---|---|---|")
    print(f"| d={args.dim} K={args.funnels} | {hidden} | {args.fit} {label} | {args.steps} "
          f"| {gt:.3f} | {dt:.3f} | {dt / gt:.3f} | {extra} | {time.perf_counter() - t0:.0f} |")


def fit(critic, step, steps: int, pair: MinFunnel, rng: np.random.Generator, args,
        ema: float = 0.0):
    """``steps`` steps of Adam (0.5, 0.9) (or Muon, ``--optimizer``) at ``--lr`` with a
    cosine schedule on ``step``'s loss;
    with ``ema`` > 0 the critic ends as the moving average of its iterates."""
    params = list(critic.parameters())
    if args.optimizer == "muon" and args.first_layer == "adam":
        opts = build_optimizers(params[1:], args.optimizer, args.lr, (0.5, 0.9))
        opts[0].add_param_group({"params": [params[0]]})
    else:
        opts = build_optimizers(params, args.optimizer, args.lr, (0.5, 0.9))
    for o in opts:
        if isinstance(o, torch.optim.Muon):
            o.param_groups[0]["momentum"] = args.momentum
    decays = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=steps) for o in opts]
    average = torch.optim.swa_utils.AveragedModel(
        critic, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema)) if ema else None
    switch = int(args.switch_at * steps) if args.batch_after and step is not regression_step \
        else -1
    for i in range(steps):
        if i == switch:
            args.batch = args.penalty_batch = args.batch_after
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = step(critic, pair, rng, args)
        for o in opts:
            o.zero_grad()
        loss.backward()
        for o, decay in zip(opts, decays, strict=True):
            o.step()
            decay.step()
        if average is not None:
            average.update_parameters(critic)
    if average is not None:
        torch.nn.utils.vector_to_parameters(
            torch.nn.utils.parameters_to_vector(average.module.parameters()),
            critic.parameters())
    return loss


def knobs(args: argparse.Namespace) -> str:
    start = f"after {args.pretrain} regression steps " if args.pretrain else ""
    if args.fit == "regression":
        return start + (f"EMA {args.ema:g}" if args.ema else "")
    svrg = f" SVRG every {args.svrg} on {args.svrg_batch}" if args.svrg else ""
    svrg += f" EMA {args.ema:g}" if args.ema else ""
    svrg += " OT-paired interpolates" if args.pairing == "ot" else ""
    svrg += f" {args.optimizer} lr {args.lr:g}" if (args.optimizer, args.lr) != ("adam", 2e-3) \
        else ""
    svrg += f" momentum {args.momentum:g}" if args.momentum != 0.95 else ""
    svrg += " first layer Adam" if args.first_layer == "adam" else ""
    svrg += " bf16 autocast" if args.bf16 else ""
    batch = (f"{args.batch}" if not args.batch_after else
             f"{args.batch} -> {args.batch_after} from {args.switch_at:g} of the steps")
    return (f"{start}p={args.power:g} λ={args.lam:g} batch {batch} "
            f"penalty batch {args.penalty_batch}{svrg}")


def regression_step(critic, pair: MinFunnel, rng: np.random.Generator, args) -> torch.Tensor:
    """Squared error of f − mean f against u − mean u, plus ‖∇f − ∇u‖², on 256 + 256 points."""
    z = np.concatenate([pair.sample_real(256, rng), pair.sample_fake(256, rng)])
    u, du = pair.potential(z), pair.gradient(z)
    zt = torch.tensor(z, dtype=torch.float32, requires_grad=True)
    out = critic(zt).reshape(-1)
    (g,) = torch.autograd.grad(out.sum(), zt, create_graph=True)
    ut = torch.tensor(u, dtype=torch.float32)
    return ((out - out.mean()) - (ut - ut.mean())).pow(2).mean() \
        + (g - torch.tensor(du, dtype=torch.float32)).pow(2).sum(1).mean()


def draw(pair: MinFunnel, rng: np.random.Generator, n: int):
    """n fresh samples of P and of Q, as float32 tensors."""
    return (torch.tensor(pair.sample_real(n, rng), dtype=torch.float32),
            torch.tensor(pair.sample_fake(n, rng), dtype=torch.float32))


def wgan_step(critic, pair: MinFunnel, rng: np.random.Generator, args,
              xy=None) -> torch.Tensor:
    """mean f(y) − mean f(x) + λ mean (‖∇f(x̂)‖ − 1)_+^p at random interpolates x̂, on the
    minibatch ``xy`` (default: a fresh one)."""
    x, y = draw(pair, rng, args.batch) if xy is None else xy
    m = args.penalty_batch
    xp, yp = x[:m], y[:m]
    if args.pairing == "ot":
        _, match = linear_sum_assignment(torch.cdist(xp.double(), yp.double()).numpy())
        yp = yp[torch.as_tensor(match)]
    t = torch.rand(m, 1)
    z = (t * xp + (1 - t) * yp).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(z).sum(), z, create_graph=True)
    excess = torch.clamp(g.norm(dim=1) - 1, min=0)
    return critic(y).mean() - critic(x).mean() + args.lam * excess.pow(args.power).mean()


def svrg_step():
    """wgan_step with the objective's minibatch gradient g_B(θ) replaced by
    g_B(θ) − g_B(θ̃) + g_N(θ̃): θ̃ a snapshot taken every ``--svrg`` steps, g_N its gradient
    on ``--svrg-batch`` samples a side. The noise of E_P f − E_Q f on a minibatch is a
    small difference of two large sums; the snapshot's gradient on the same minibatch
    cancels most of it while θ stays near θ̃."""
    import copy

    state = {"count": 0}

    def objective(f, x, y):
        return f(y).mean() - f(x).mean()

    def step(critic, pair: MinFunnel, rng: np.random.Generator, args) -> torch.Tensor:
        if state["count"] % args.svrg == 0:
            snap = copy.deepcopy(critic)
            grads = [torch.zeros_like(q) for q in snap.parameters()]
            chunk = 4096
            for start in range(0, args.svrg_batch, chunk):
                n = min(chunk, args.svrg_batch - start)
                x, y = draw(pair, rng, n)
                part = torch.autograd.grad(objective(snap, x, y) * (n / args.svrg_batch),
                                           list(snap.parameters()))
                grads = [a + b for a, b in zip(grads, part, strict=True)]
            state["snap"], state["full"] = snap, grads
        state["count"] += 1
        x, y = draw(pair, rng, args.batch)
        loss = wgan_step(critic, pair, rng, args, (x, y))
        local = torch.autograd.grad(objective(state["snap"], x, y),
                                    list(state["snap"].parameters()))
        shift = sum((q * (full - g)).sum() for q, full, g in
                    zip(critic.parameters(), state["full"], local, strict=True))
        return loss + shift

    return step


def wgan_errors(critic, pair: MinFunnel, rng: np.random.Generator, args,
                n: int = 20_000) -> str:
    """Relative errors of the raw and flow-corrected estimates on n fresh points per side,
    and the penalised objective E_P f − E_Q f − λ E_μ (‖∇f‖ − 1)_+^p the training maximises
    (on the same points and n random interpolates): which of two critics training prefers."""
    x = torch.tensor(pair.sample_real(n, rng), dtype=torch.float32)
    y = torch.tensor(pair.sample_fake(n, rng), dtype=torch.float32)
    with torch.no_grad():
        raw = float(critic(x).mean() - critic(y).mean())
    t = torch.rand(n, 1)
    z = (t * x + (1 - t) * y).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(z).sum(), z)
    norms = g.norm(dim=1).double().numpy()
    flow = flow_corrected(raw, norms)  # None: no interpolate steeper than 1
    objective = raw - args.lam * float(np.mean(np.clip(norms - 1, 0, None) ** args.power))
    flow_text = "none" if flow is None else f"{flow[0] / pair.w1 - 1:+.1%}"
    return f"raw {raw / pair.w1 - 1:+.1%}, flow {flow_text}, objective {objective:.4f}"

if __name__ == "__main__":
    main()
