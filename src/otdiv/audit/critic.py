"""Audit a critic: how close is E_P f − E_Q f to the true W1(P, Q), and can it be trusted?

Kantorovich–Rubinstein: W1(P, Q) = sup_{Lip(f) <= 1} E_P f − E_Q f. So for any critic f,

    E_P f − E_Q f <= Lip(f) · W1(P, Q),

and with an upper bound U >= Lip(f), (E_P f − E_Q f) / U is a *certified* lower bound on W1
(between the very samples it is computed on). :func:`audit_critic` reports the critic's
estimate beside the exact W1 between the same held-out samples, the closed form where known,
the Lipschitz bounds of :func:`otdiv.lipschitz_bounds`, that certified bound, and the spread
of everything over repeated draws.

It also reports the *gradient-normalised* estimate (E_P f − E_Q f) / G. G is the critic's
mean gradient norm along the segments of the exact optimal coupling π of the same samples,
weighted by the transported length: G = Σ π_ij ‖x_i − y_j‖ ∫₀¹ ‖∇f(y_j + t(x_i − y_j))‖ dt
/ Σ π_ij ‖x_i − y_j‖. Since f(x_i) − f(y_j) = ∫₀¹ ∇f · (x_i − y_j) dt along each segment,

    E_P f − E_Q f = Σ π_ij (f(x_i) − f(y_j)) <= G · W1(P_n, Q_n),

so estimate / G is at most exact W1 between the audited samples, whatever the critic (up to
the Monte Carlo error of the t-integral, 4 stratified points per segment). It reads a
penalised critic at its own slope: for f = s⟨u, x⟩ (‖u‖ = 1) the WGAN-GP objective
s W1 − λ (s − 1)² peaks at s = 1 + W1 / (2λ), so the raw estimate overshoots W1 by that
factor, G = s, and estimate / G removes it. It errs low when ∇f is not aligned with the
transport, and — in high dimension, where W1 between samples is far above the population
W1 — its bound says nothing about the population value (docs/audit.md).

Beside it, estimates that need no exact OT (:mod:`otdiv.audit.estimators`; measured in
docs/critic_benchmark.md): ``flow_corrected`` = estimate / G_V, the slope weighted by the
congested flow of the penalised problem at the penalty's interpolates (the one to quote
for an LP critic in a few dimensions), ``penalty_corrected`` (λ only),
``slope_corrected`` and ``ctransform_corrected``.

The slopes G, G_c and the interpolates' ‖∇f‖ are measured in :mod:`otdiv.audit.slopes`;
the parallel-lines sweep (:func:`lines_sweep`) lives in :mod:`otdiv.audit.lines` and
:func:`check_pair` in :mod:`otdiv.audit.data`, both importable from here as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from otdiv._array import check_flag, check_int, check_nonnegative, check_positive, check_seed
from otdiv._scaling import mean_std
from otdiv.audit.data import Data, check_pair, check_range, sources
from otdiv.audit.envelope import envelope_bound
from otdiv.audit.estimators import (
    PENALTY_KINDS,
    flow_corrected,
    interpolates,
    penalty_corrected,
    slope_corrected,
)
from otdiv.audit.lines import LinesSweep, lines_sweep
from otdiv.audit.models import check_applies, check_budget, resolve_device
from otdiv.audit.slopes import ctransform_slope, grad_norms, score_fn, segment_grad_norm

# LinesSweep, lines_sweep (now otdiv.audit.lines) and check_pair (now otdiv.audit.data) are
# imported from here too, as they were before the split
__all__ = ["CriticAudit", "LinesSweep", "audit_critic", "check_audit_size", "check_pair",
           "lines_sweep"]


@dataclass(frozen=True)
class CriticAudit:
    """What a critic's estimate E_P f − E_Q f is worth against W1(P, Q).

    A value that does not exist for this critic or these samples is None, never nan: the
    relative errors when the truth is 0, the slopes and the estimates divided by them when
    torch cannot differentiate the critic (or the slope is 0), the flow correction of a
    critic that is nowhere steeper than 1, the Lipschitz bounds with ``lipschitz=False``.
    ``to_dict()`` writes them as JSON null (inf, the Lipschitz upper bound of a critic that
    cannot be bounded, as the string "inf").

    Attributes:
        estimate: mean over ``repeats`` held-out draws of mean f(real) − mean f(fake), on
            ``n_estimate`` points per side (the OT-free columns' sample, below).
        estimate_std: its standard deviation over the draws (sampling spread).
        exact_w1: mean over the same draws of exact W1 between the same samples
            (:func:`otdiv.wasserstein`, p = 1); ``exact_w1_std`` its spread.
        closed_form_w1: the population W1(P, Q) given as ``w1`` (a closed form, or a
            large-sample reference), else None.
        truth: ``closed_form_w1`` when known, else ``exact_w1``.
        rel_error: estimate / truth − 1 (None when the truth is 0).
        rel_error_exact: the raw estimate on the n points of exact W1 over exact_w1, − 1
            (the same samples, no sampling bias; None when exact_w1 is 0).
        lipschitz_lower, lipschitz_upper: bounds on Lip(f) (upper is inf when it cannot be
            bounded, with ``lipschitz_reason``; both None with ``lipschitz=False``, and
            when torch cannot differentiate the critic, with ``lipschitz_reason``).
        certified_lower: the best lower bound on ``exact_w1`` that holds whatever the
            critic: the larger of ``envelope_lower`` and estimate / lipschitz_upper (None
            when neither was computed).
        envelope_lower: mean over draws of the envelope bound of
            :func:`otdiv.audit.envelope.envelope_bound` (the critic's scores extended to a
            1-Lipschitz function, scale searched; no Lipschitz bound of the network needed),
            each at most that draw's exact W1; None when ``envelope=False``.
        grad_norm: G, the mean over draws of the length-weighted mean ‖∇f‖ along the
            segments of the exact optimal coupling (module docstring); None when torch
            cannot differentiate the critic or G is 0. ``grad_norm_std``: the weighted
            standard deviation of ‖∇f‖ at those points (0 for a uniform slope).
        normalized_estimate: mean over draws of estimate / G, the raw estimate with the
            critic's slope divided out; at most ``exact_w1`` (module docstring).
            ``rel_error_normalized`` = it / truth − 1.
        n, m: held-out real and fake samples per draw; repeats: number of draws.
        n_estimate: points per side and draw of the estimates that need no exact OT
            (``estimate``, ``slope_corrected``, ``penalty_corrected``, ``flow_corrected``):
            the draw's n points of exact W1 and the envelope are among them. Those
            estimates cost O(n_estimate) where exact W1 costs far more, so a larger
            ``n_estimate`` shrinks their sampling error at little cost.
        seconds: wall time of the audit; ``w1_seconds`` the part spent in exact W1.
        interp_grad_norm: G_μ, the mean over draws of the mean ‖∇f‖ at 2 n_estimate random
            interpolates t x_i + (1 − t) y_σ(i) of the draw — where the gradient penalty
            samples the slope (:mod:`otdiv.audit.estimators`); None when torch cannot
            differentiate the critic or G_μ is 0.
        slope_corrected: mean over draws of estimate / G_μ — the **slope-corrected
            estimate**, which needs no exact OT: E_P u − E_Q u exactly for f = s·u with
            ‖∇u‖ = 1 on the interpolates; not a bound. ``rel_error_slope_corrected`` =
            it / truth − 1.
        lambda_gp: the penalty weight λ the critic was trained with, when given.
        penalty_corrected: λ (√(1 + 2 estimate / λ) − 1), the raw estimate with the slope
            1 + W1 / (2λ) of a uniformly penalised critic removed (no OT, no gradient; not
            a bound); None without ``lambda_gp``. ``rel_error_penalty_corrected`` its
            error against the truth.
        ctransform_grad_norm: G_c, the mean over draws of the length-weighted mean ‖∇f‖
            along the critic's own transport segments (each point paired with the
            minimiser of the c-transform of f / G, :func:`~otdiv.audit.estimators.
            ctransform_pairs`; G from the interpolates, refined twice) — G of the
            gradient-normalised estimate with the exact OT plan replaced by the critic's
            (None as ``interp_grad_norm``).
        ctransform_corrected: mean over draws of estimate / G_c — the
            **c-transform-corrected estimate**: no exact OT, O(n² d); not a bound.
            ``rel_error_ctransform_corrected`` its error against the truth.
        flow_grad_norm: G_V, the mean over draws of the flux-weighted slope
            E_μ[‖∇f‖ w] / E_μ[abs(w)] at the interpolates, w = (‖∇f‖ − 1)_+ (one-sided
            penalty) or ‖∇f‖ − 1 (two-sided): the slope where the congested flow of the
            penalised problem carries the mass (:func:`~otdiv.audit.estimators.
            flow_corrected`); None when no interpolate is steeper than 1 (a clipped or
            spectral critic) or torch cannot differentiate the critic.
        flow_corrected: mean over draws of estimate / G_V — the **flow-corrected
            estimate**: no exact OT, no λ; exact for a uniform slope; not a bound.
            ``rel_error_flow_corrected`` its error against the truth.
    """

    estimate: float
    estimate_std: float
    exact_w1: float
    exact_w1_std: float
    closed_form_w1: float | None
    truth: float
    rel_error: float | None
    rel_error_exact: float | None
    lipschitz_lower: float | None
    lipschitz_upper: float | None
    lipschitz_reason: str | None
    certified_lower: float | None
    envelope_lower: float | None
    grad_norm: float | None
    grad_norm_std: float | None
    normalized_estimate: float | None
    rel_error_normalized: float | None
    n: int
    m: int
    repeats: int
    seconds: float
    w1_seconds: float
    estimates: tuple[float, ...] = field(repr=False)
    exact_values: tuple[float, ...] = field(repr=False)
    interp_grad_norm: float | None = None
    slope_corrected: float | None = None
    rel_error_slope_corrected: float | None = None
    lambda_gp: float | None = None
    penalty_corrected: float | None = None
    rel_error_penalty_corrected: float | None = None
    ctransform_grad_norm: float | None = None
    ctransform_corrected: float | None = None
    rel_error_ctransform_corrected: float | None = None
    flow_grad_norm: float | None = None
    flow_corrected: float | None = None
    rel_error_flow_corrected: float | None = None
    n_estimate: int = 0

    @property
    def gap(self) -> float | None:
        """exact_w1 − certified_lower: how much the certified bound leaves unexplained."""
        return None if self.certified_lower is None else self.exact_w1 - self.certified_lower

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats, None for missing values, inf written as the string "inf"."""
        out = asdict(self)
        out["estimates"] = list(self.estimates)
        out["exact_values"] = list(self.exact_values)
        out["gap"] = self.gap
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = str(value)
        return out


def audit_critic(
    critic: Callable,
    real: Data,
    fake: Data,
    *,
    n: int = 2000,
    n_estimate: int | None = None,
    repeats: int = 3,
    w1: float | None = None,
    lipschitz: bool = True,
    lipschitz_points: int = 1000,
    envelope: bool = True,
    lambda_gp: float | None = None,
    penalty: str = "one-sided",
    device: object = "auto",
    seed: int | None = 0,
) -> CriticAudit:
    """Compare est = mean f(x_i) − mean f(y_j) with W1(P_n, Q_n) = min_P <P, ||x_i − y_j||>.

    Both are computed on the same held-out samples x ~ P, y ~ Q (n of each), ``repeats``
    times; exact W1 is :func:`otdiv.wasserstein` with p = 1, so n of a few thousand keeps
    each draw to seconds. Lipschitz bounds come from :func:`otdiv.lipschitz_bounds` on
    ``lipschitz_points`` points of the first draw (half real, half fake).

    Args:
        critic: an ``nn.Module`` or a callable mapping a torch tensor (n, d) to n scores.
        real, fake: samplers ``f(n, rng) -> (n, d) array`` (fresh draws each repeat, e.g. a
            toy's ``sample_real``) or arrays of held-out points (numpy or torch; each repeat
            takes n points of each without replacement; all of them when fewer than n,
            and then one repeat).
        n: samples per side and draw (>= 2) of exact W1, the envelope and the slopes along
            couplings. repeats: draws (>= 1).
        n_estimate: samples per side and draw of the OT-free estimates (raw, slope-,
            penalty- and flow-corrected), n of them shared with exact W1; None or less
            than n: n. Their cost is linear (one forward and one backward pass), so
            10^4–10^5 is cheap and shrinks their sampling error by √(n_estimate / n).
        w1: the population W1(P, Q) when known: a closed form, or a reference from exact
            OT between large samples (``otdiv benchmark-critics`` on the paper toys);
            reported as ``closed_form_w1``.
        lipschitz: compute Lipschitz bounds (False: lower = upper = None, no certificate).
        lipschitz_points: points given to :func:`otdiv.lipschitz_bounds`.
        envelope: compute the envelope certificate on each draw (O(n^2 d), about 1 s for
            n = 2000 on one core).
        lambda_gp: the gradient-penalty weight λ the critic was trained with (GP or LP):
            adds the ``penalty_corrected`` estimate. None (default): not computed.
        penalty: "one-sided" (LP, default) or "two-sided" (GP): the weights of the
            ``flow_corrected`` estimate.
        device: where the critic runs: "auto", "cpu", "cuda" or a torch.device. A module
            already on a device is moved there.
        seed: seeds the draws (None: random; else an integer in [0, 2**63 - 2**20)),
            checked first.

    The module's train/eval modes are restored on return (the audit runs in eval mode), and
    ``n`` is refused with a ValueError beyond the memory budget of :func:`check_audit_size`.

    Returns:
        A :class:`CriticAudit`.
    """
    import torch

    seed = check_seed(seed)
    if not callable(critic):
        raise TypeError(f"critic must be an nn.Module or a callable, got {type(critic).__name__}")
    n = check_int(n, "n", minimum=2)
    n_estimate = n if n_estimate is None else max(n, check_int(n_estimate, "n_estimate"))
    repeats = check_int(repeats, "repeats")
    lipschitz_points = check_int(lipschitz_points, "lipschitz_points", minimum=2)
    lipschitz, envelope = check_flag(lipschitz, "lipschitz"), check_flag(envelope, "envelope")
    if isinstance(w1, bool):
        raise TypeError("w1 must be a number >= 0 or None, got a bool")
    if w1 is not None:
        w1 = float(w1) if w1 == 0 else check_positive(w1, "w1")
    if lambda_gp is not None:
        lambda_gp = check_nonnegative(lambda_gp, "lambda_gp")
    if penalty not in PENALTY_KINDS:
        raise ValueError(f"penalty must be one of {PENALTY_KINDS}, got {penalty!r}")
    dev = resolve_device(device)
    src_real, src_fake = sources(real, fake)
    # the Lipschitz bounds take at most the first draw's 2 n points
    used = min(lipschitz_points, 2 * n) if lipschitz else 0
    check_audit_size(n, src_real.dim, used)
    if n_estimate > n:
        check_audit_size(n, src_real.dim, used, n_estimate=n_estimate, name="n_estimate")
    if not isinstance(critic, torch.nn.Module):
        return _audit(critic, src_real, src_fake, n, repeats, w1, lipschitz, lipschitz_points,
                      envelope, dev, seed, torch.float32, lambda_gp, penalty, n_estimate)
    modes = {m: m.training for m in critic.modules()}
    try:
        critic = critic.to(dev).eval()
        params = list(critic.parameters())
        dtype = params[0].dtype if params and params[0].is_floating_point() else \
            torch.float32
        check_applies(critic, src_real.dim, dtype, dev)
        return _audit(critic, src_real, src_fake, n, repeats, w1, lipschitz,
                      lipschitz_points, envelope, dev, seed, dtype, lambda_gp, penalty,
                      n_estimate)
    finally:
        for module, training in modes.items():  # the caller's train/eval modes, restored
            module.train(training)


def check_audit_size(n: int, dim: int, lipschitz_points: int = 1000, *, n_estimate: int = 0,
                     budget: float | None = None, name: str = "n") -> None:
    """ValueError when an audit of n points per side in dimension d would plan more than
    ``budget`` bytes: 256 · (n + lipschitz_points) · (d + 1) bytes (the float64 draws, the 4
    gradient probes of each of the ≤ 2n coupling segments with their gradients, the scores)
    plus 64 · n_estimate · (d + 1) (the OT-free estimates' draws and their 2 n_estimate
    interpolates; the critic sees them in blocks) — exact W1 and the envelope work within
    their own budgets. ``lipschitz_points`` is the number the Lipschitz bounds take (at most
    2 n: audit_critic's charge), so lowering n is the remedy the error names (``name``: n, or
    n_estimate when it is given)."""
    need = 256 * (n + lipschitz_points) * (dim + 1) + 64 * n_estimate * (dim + 1)
    check_budget(need, name, n_estimate if n_estimate else n, f"to audit in d={dim}", budget)


def _audit(critic, src_real, src_fake, n, repeats, w1, lipschitz, lipschitz_points, envelope,
           dev, seed, dtype, lambda_gp, penalty, n_estimate) -> CriticAudit:
    import torch

    from otdiv.metrics.wasserstein import wasserstein

    fn = score_fn(critic, dev, dtype)

    rng = np.random.default_rng(seed)
    # a stream of its own, so that the held-out draws do not depend on the gradient probe
    t_rng = np.random.default_rng(None if seed is None else [seed, 1])
    if src_real.sampler is None and src_fake.sampler is None and \
            min(len(src_real.points), len(src_fake.points)) <= n:
        repeats = 1  # every draw would be the same set of points

    start = time.perf_counter()
    w1_time = 0.0
    # and one for the interpolates of the slope-corrected estimate
    i_rng = np.random.default_rng(None if seed is None else [seed, 2])
    estimates, on_ot, exact, norms, envelopes, interp, rays = [], [], [], [], [], [], []
    first = None
    n_big = None
    for _ in range(repeats):
        x_big = check_range(src_real.fixed(n_estimate, rng), "real", dtype)
        y_big = check_range(src_fake.fixed(n_estimate, rng), "fake", dtype)
        # the n points of exact W1: a random subset of the draw (all of it when n_estimate = n)
        keep_x, keep_y = (slice(None) if len(v) <= n else
                          rng.choice(len(v), size=n, replace=False) for v in (x_big, y_big))
        x, y = x_big[keep_x], y_big[keep_y]
        if first is None:
            first = (x, y)
            n_big = len(x_big)
        fx_big, fy_big = fn(x_big), fn(y_big)
        if not (np.isfinite(fx_big).all() and np.isfinite(fy_big).all()):
            raise ValueError("critic returned NaN or inf scores on the held-out samples")
        fx, fy = fx_big[keep_x], fy_big[keep_y]
        estimates.append(float(fx_big.mean() - fy_big.mean()))
        on_ot.append(float(fx.mean() - fy.mean()))
        if envelope:
            envelopes.append(envelope_bound(x, y, fx, fy).value)
        t0 = time.perf_counter()
        res = wasserstein(x, y, p=1, return_result=True)
        w1_time += time.perf_counter() - t0
        exact.append(float(res.value))
        norms.append(segment_grad_norm(critic, x, y, res.plan_support, dev, dtype, t_rng))
        interp.append(grad_norms(critic, interpolates(x_big, y_big, i_rng, 2), dev, dtype))
        rays.append(ctransform_slope(critic, x, y, fx, fy, interp[-1], dev, dtype, i_rng))

    lower = upper = None
    reason = None
    certified = None
    est = float(np.mean(estimates))
    if lipschitz and any(v is None for v in interp):
        # as the gradient norms: None where torch cannot differentiate the critic
        reason = ("torch cannot differentiate the critic (numpy or no_grad inside it?): no "
                  "Lipschitz bounds; lipschitz_empirical(f, x) estimates one from secants")
    elif lipschitz:
        from otdiv.metrics.lipschitz import lipschitz_bounds

        x, y = first
        half = lipschitz_points // 2
        pts = np.concatenate([x[:half], y[: lipschitz_points - half]])
        bounds = lipschitz_bounds(critic, torch.as_tensor(pts, dtype=dtype).to(dev),
                                  seed=seed)
        lower, upper = float(bounds.lower), float(bounds.upper)
        reason = getattr(bounds, "reason", None)
        if math.isfinite(upper) and upper > 0:  # a bound on W1 between the n points
            certified = float(np.mean(on_ot)) / upper
    envelope_lower = float(np.mean(envelopes)) if envelopes else None
    if envelope_lower is not None:
        certified = envelope_lower if certified is None else max(certified, envelope_lower)

    ex = float(np.mean(exact))
    truth = w1 if w1 is not None else ex
    # a value that does not exist (no gradient, no slope, W1 = 0) is None, never nan: the
    # mean over the draws exists when every draw's does
    grad_norm = grad_std = normalized = None
    if all(v is not None and v[0] > 0 for v in norms):
        g = np.array([v[0] for v in norms])
        grad_norm = float(g.mean())
        grad_std = float(np.mean([v[1] for v in norms]))
        normalized = float(np.mean(np.asarray(on_ot) / g))

    def rel(a: float | None, b: float) -> float | None:
        return None if a is None or not b > 0 else a / b - 1.0

    def mean_of(values: Sequence[float | None]) -> float | None:
        return None if any(v is None for v in values) else float(np.mean(values))

    corrected = [None if g is None else slope_corrected(e, g)
                 for e, g in zip(estimates, interp, strict=True)]
    interp_g = mean_of([None if c is None else c[1] for c in corrected])
    slope_est = mean_of([None if c is None else c[0] for c in corrected])
    pen = None if lambda_gp is None else penalty_corrected(est, lambda_gp)
    flows = [None if g is None else flow_corrected(e, g, penalty)
             for e, g in zip(estimates, interp, strict=True)]
    flow_g = mean_of([None if v is None else v[1] for v in flows])
    flow_est = mean_of([None if v is None else v[0] for v in flows])
    ray_g = mean_of(rays)
    ray_est = None if ray_g is None else mean_of([e / r for e, r in
                                                   zip(on_ot, rays, strict=True)])

    def spread(v: Sequence[float]) -> float:  # no overflow of the squares (points near 1e160)
        return mean_std(v)[1]

    return CriticAudit(
        estimate=est, estimate_std=spread(estimates), exact_w1=ex, exact_w1_std=spread(exact),
        closed_form_w1=w1, truth=truth, rel_error=rel(est, truth),
        rel_error_exact=rel(float(np.mean(on_ot)), ex),
        lipschitz_lower=lower, lipschitz_upper=upper, lipschitz_reason=reason,
        certified_lower=certified, envelope_lower=envelope_lower, grad_norm=grad_norm,
        grad_norm_std=grad_std,
        normalized_estimate=normalized, rel_error_normalized=rel(normalized, truth),
        n=len(first[0]), m=len(first[1]), repeats=repeats,
        seconds=time.perf_counter() - start, w1_seconds=w1_time,
        estimates=tuple(estimates), exact_values=tuple(exact),
        interp_grad_norm=interp_g, slope_corrected=slope_est,
        rel_error_slope_corrected=rel(slope_est, truth), lambda_gp=lambda_gp,
        penalty_corrected=pen, rel_error_penalty_corrected=None if pen is None else
        rel(pen, truth), ctransform_grad_norm=ray_g, ctransform_corrected=ray_est,
        rel_error_ctransform_corrected=rel(ray_est, truth), flow_grad_norm=flow_g,
        flow_corrected=flow_est, rel_error_flow_corrected=rel(flow_est, truth),
        n_estimate=n_big,
    )
