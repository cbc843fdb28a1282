"""A lower bound on the *population* W1 from a critic, by an envelope on held-out samples.

For any values v_a at anchor points a (any points, any values), the envelope

    h_s(z) = min_a ( s v_a + ||z - a|| )

is 1-Lipschitz on the whole space, so by Kantorovich–Rubinstein duality

    E_P h_s - E_Q h_s  <=  W1(P, Q)

for the distributions themselves. When h_s is fixed before the test samples x'_i ~ P,
y'_j ~ Q are drawn, mean_i h_s(x'_i) - mean_j h_s(y'_j) is an unbiased estimate of the left
side, with standard error se = sqrt(var h_s(x') / n' + var h_s(y') / m'); so

    value - z_(1-alpha) se      (z_0.95 = 1.645)

is a lower confidence bound on W1(P, Q) at level 1 - alpha (normal approximation of the
two test means, which are bounded-variance averages: h_s is 1-Lipschitz, so var h_s(x')
<= E||x' - E x'||^2). Unlike the envelope of :mod:`otdiv.audit.envelope`, which bounds W1
between two samples (in d = 64 with 2000 points about 8.5 times the population value), this
one bounds the population value.

**Anchors.** With anchors at the samples only, a held-out point in high dimension is far
(about sqrt(2 d)) from every anchor, and h_s is far above the critic there: at d = 64 the
bound is about 0.37 x W1 (docs/critic_benchmark.md). The anchors that matter for a point z
lie downstream of it along the transport (h_s(z) = s f(z) exactly when some anchor a has
s f(z) - s f(a) = ||z - a||). :func:`descent_anchors` puts them there: from each sample,
``n_steps`` steps down the critic's gradient,
a_(t+1) = a_t - h_t * grad f(a_t) / ||grad f(a_t)||, of fixed length h_t = step or
adaptive (doubling while f falls at half its slope or more, halving when it does not).
Where the descent paths converge (MinFunnel pairs: on the apexes) every held-out point
finds anchors on its own ray. Where they run parallel (a translation) an anchor t
downstream of a point r across leaves a gap sqrt(t^2 + r^2) - t ~ r^2 / 2t, with
r ~ sqrt(2 d): only long paths close it, which the doubling steps reach in few anchors. Where
they diverge (the scale pair x -> 1.5 x: outwards along separate rays) the ascent paths
converge instead, and the upper envelope k_s(z) = max_a (s v_a - ||z - a||) on them is the
tight one (also 1-Lipschitz: the same bound holds for it).

**The choice.** s (among ``scales``) and h_s or k_s are picked on a separate validation
pair (x_v, y_v) (the largest validation value wins), so that the test samples stay
independent of the function they evaluate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from otdiv._array import check_int, check_positive, to_numpy64
from otdiv.audit.envelope import _as_points
from otdiv.audit.slopes import gradients, score_fn

_CHUNK_BYTES = 64 * 2**20  # one block of distances at a time
DEFAULT_SCALES = tuple(2.0 ** k for k in range(-2, 4))  # x (1 / the critic's slope)


@dataclass(frozen=True)
class PopulationBound:
    """A lower bound on W1(P, Q) from an envelope evaluated on held-out samples.

    value: mean h_s(x'_i) - mean h_s(y'_j) on the test samples, an unbiased estimate of
    E_P h_s - E_Q h_s <= W1(P, Q); se: its standard error; lower: value - z se, a lower
    confidence bound at level ``confidence``; scale: the s picked on the validation pair;
    validation: the validation value at that s; n_anchors: the anchors of h_s; envelope:
    "min" (h_s) or "max" (k_s, the upper envelope of ``upper``); choice: the candidate
    envelope picked (0: ``anchors``, 1: ``upper``, then ``candidates`` in order); grow: the
    path growth factor of the picked anchors (:func:`critic_population_bound`).
    """

    value: float
    se: float
    lower: float
    confidence: float
    scale: float
    validation: float
    n_anchors: int
    envelope: str = "min"
    choice: int = 0
    grow: float | None = None


def _points(z: object, name: str, dim: int | None = None) -> np.ndarray:
    """``envelope._as_points`` (a finite, non-empty (n, d) array), of dimension ``dim``."""
    arr = _as_points(z, name)
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} must have dimension {dim}, got {arr.shape[1]}")
    return arr


def _values(values: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be {n} finite numbers, one per anchor, got shape "
                         f"{np.shape(values)}")
    return arr


def envelope_values(values: np.ndarray, anchors: np.ndarray, z: np.ndarray,
                    scales: Sequence[float], upper: bool = False) -> np.ndarray:
    """(len(scales), len(z)) array: h_s(z_k) = min_a (s values_a + ||z_k - a||) per scale s
    (``upper``: k_s(z_k) = max_a (s values_a - ||z_k - a||), also 1-Lipschitz).

    Per block of z, squared distances from one matrix product about the anchors' mean,
    |z|^2 + |a|^2 - 2 <z, a>, whose rounding error is at most (2 d + 8) eps (|z|^2 +
    max |a|^2); the anchors within twice that (in distance) of each minimum are then
    re-evaluated with per-pair distances (``kernels.envelope_numba``), so the values are
    those of per-pair float64 distances: 1-Lipschitz up to one distance's rounding."""
    from otdiv.kernels.envelope_numba import envelope_min_block

    scales = np.asarray(scales, dtype=np.float64)
    sign = -1.0 if upper else 1.0
    vals = np.ascontiguousarray(sign * np.asarray(values, dtype=np.float64))
    anchors = np.ascontiguousarray(anchors, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    center = anchors.mean(axis=0)
    a = anchors - center
    na = np.einsum("ij,ij->i", a, a)
    na_max = float(na.max())
    top = float(np.abs(scales).max() * np.abs(vals).max())
    out = np.empty((len(scales), len(z)))
    rows = max(1, _CHUNK_BYTES // (8 * len(anchors)))
    for start in range(0, len(z), rows):
        zb = z[start:start + rows]
        c = zb - center
        nz = np.einsum("ij,ij->i", c, c)
        ip = c @ a.T
        reach = np.sqrt(nz) + math.sqrt(na_max)
        margin = (2.0 * np.sqrt((2 * z.shape[1] + 8) * eps * (nz + na_max))
                  + 16.0 * eps * (top + 2.0 * reach))
        envelope_min_block(ip, nz, na, margin, zb, anchors, vals, scales,
                           out[:, start:start + rows])
    return sign * out


def descent_anchors(grad: Callable[[np.ndarray], np.ndarray], start: object, *,
                    step: float, n_steps: int, ascent: bool = False,
                    score: Callable[[np.ndarray], np.ndarray] | None = None,
                    grow: float = 1.0) -> np.ndarray:
    """The start points and ``n_steps`` unit-speed steps down a critic's gradient from each:
    a_(t+1) = a_t - h_t grad(a_t) / ||grad(a_t)|| (up it with ``ascent``; a point where
    the gradient vanishes stays). ``grad(z)`` returns the gradients, (n, d).

    Fixed steps (``score`` None): h_t = ``step``; returns ((n_steps + 1) n, d) points.
    Adaptive steps (``score(z)``, the critic's values, given): h_0 = ``step``, and a step
    is taken only if the critic falls by at least half its slope along it,
    f(a_t) - f(a_(t+1)) >= h_t ||grad(a_t)|| / 2 (rises, with ``ascent``); then
    h_(t+1) = ``grow`` h_t, else the path stays and h_(t+1) = h_t / ``grow``. Along a
    straight transport ray the steps lengthen geometrically (a translation's parallel
    rays: ``step`` (grow^n - 1) / (grow - 1) in n steps); at the point where the rays meet
    (an apex, where f stops falling) they shrink onto it. Returns the start points and the
    steps taken, at most (n_steps + 1) n points."""
    a = _points(start, "start")
    step = check_positive(step, "step")
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    grow = check_positive(grow, "grow")
    sign = 1.0 if ascent else -1.0
    out = [a]
    h = np.full((len(a), 1), step)
    fa = None if score is None else np.asarray(score(a), dtype=np.float64).reshape(-1)
    for _ in range(n_steps):
        g = np.asarray(grad(a), dtype=np.float64).reshape(a.shape)
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        unit = np.divide(g, norm, out=np.zeros_like(g), where=norm > 0)
        if fa is None:
            a = a + sign * step * unit
            out.append(a)
            continue
        trial = a + sign * h * unit
        ft = np.asarray(score(trial), dtype=np.float64).reshape(-1)
        ok = sign * (ft - fa) >= 0.5 * h[:, 0] * norm[:, 0]
        ok &= norm[:, 0] > 0
        a = np.where(ok[:, None], trial, a)
        fa = np.where(ok, ft, fa)
        h = np.where(ok[:, None], h * grow, h / grow)
        out.append(trial[ok])
    return np.concatenate(out)


def population_bound(anchors: object, values: object, validation: tuple[object, object],
                     test: tuple[object, object], *, scales: Sequence[float] | None = None,
                     upper: tuple[object, object] | None = None,
                     candidates: Sequence[tuple[object, object, bool]] = (),
                     confidence: float = 0.95) -> PopulationBound:
    """Lower bound on W1(P, Q): the envelope h_s(z) = min_a (s v_a + ||z - a||) on test samples.

    Args:
        anchors: (N, d) points; values: N numbers v_a (a critic's scores at the anchors).
        upper: optionally (anchors', values') of a second candidate, the upper envelope
            k_s(z) = max_a (s v'_a - ||z - a||); the validation pair picks h or k too.
        candidates: further envelopes (anchors'', values'', is_upper) to pick from
            (e.g. anchors on other paths); each is 1-Lipschitz, so the pick is free.
        validation: (x_v, y_v), samples of P and Q that pick s (largest mean h_s(x_v) -
            mean h_s(y_v)); they must be independent of the test pair.
        test: (x', y'), samples of P and Q independent of the anchors, values and
            validation pair: ``value`` = mean h_s(x') - mean h_s(y').
        scales: candidate s (default ``DEFAULT_SCALES``, 2^-2 .. 2^3, for values of slope
            about 1; divide them by the critic's slope otherwise, as
            :func:`critic_population_bound` does).
        confidence: level of ``lower`` = value - z se (normal approximation).

    E_P h_s - E_Q h_s <= W1(P, Q) whatever the anchors and values (h_s is 1-Lipschitz), so
    ``value`` estimates a lower bound without bias and ``lower`` is a lower confidence
    bound. For discrete P and Q, passing their whole supports (uniform weights) as the test
    pair makes ``value`` <= W1(P, Q) exactly.
    """
    from scipy.stats import norm

    anchors = _points(anchors, "anchors")
    dim = anchors.shape[1]
    values = _values(values, len(anchors), "values")
    sides = [(0, False, anchors, values)]
    if upper is not None:
        if not isinstance(upper, tuple) or len(upper) != 2:
            raise TypeError("upper must be a pair (anchors, values)")
        up = _points(upper[0], "upper[0]", dim)
        sides.append((1, True, up, _values(upper[1], len(up), "upper[1]")))
    for k, cand in enumerate(candidates):
        if not isinstance(cand, tuple) or len(cand) != 3:
            raise TypeError("candidates must hold triples (anchors, values, is_upper)")
        pts = _points(cand[0], f"candidates[{k}][0]", dim)
        sides.append((2 + k, bool(cand[2]), pts,
                      _values(cand[1], len(pts), f"candidates[{k}][1]")))
    for name, pair in (("validation", validation), ("test", test)):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"{name} must be a pair (x, y) of point arrays")
    xv, yv = (_points(p, f"validation[{k}]", dim) for k, p in enumerate(validation))
    xt, yt = (_points(p, f"test[{k}]", dim) for k, p in enumerate(test))
    confidence = float(confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if scales is None:
        scales = DEFAULT_SCALES
    scales = [check_positive(s, "scales") for s in scales]
    if not scales:
        raise ValueError("scales must hold at least one positive number")
    best = None
    for choice, side, pts, vals in sides:
        vals = vals - np.median(vals)  # the bound is invariant to a constant
        hv = envelope_values(vals, pts, np.concatenate([xv, yv]), scales, side)
        val = hv[:, :len(xv)].mean(axis=1) - hv[:, len(xv):].mean(axis=1)
        k = int(np.argmax(val))
        if best is None or val[k] > best[0]:
            best = (float(val[k]), scales[k], side, pts, vals, choice)
    validation_value, s, side, pts, vals, choice = best
    ht = envelope_values(vals, pts, np.concatenate([xt, yt]), [s], side)[0]
    hx, hy = ht[:len(xt)], ht[len(xt):]
    value = float(hx.mean() - hy.mean())
    var = (hx.var(ddof=1) / len(hx) if len(hx) > 1 else math.inf) + \
        (hy.var(ddof=1) / len(hy) if len(hy) > 1 else math.inf)
    se = float(math.sqrt(var))
    lower = value - float(norm.ppf(confidence)) * se
    return PopulationBound(value=value, se=se, lower=lower, confidence=confidence, scale=s,
                           validation=validation_value, n_anchors=len(pts),
                           envelope="max" if side else "min", choice=choice)


def critic_population_bound(critic: Callable, real: Callable, fake: Callable, *,
                            n: int = 2000, n_test: int = 4000, step: float = 1.0,
                            n_steps: int = 8, grow: float | Sequence[float] = (1.0, 2.0),
                            confidence: float = 0.95, seed: int | None = 0) -> PopulationBound:
    """:func:`population_bound` for a torch critic and two samplers ``real(n, rng)``,
    ``fake(n, rng)`` (e.g. a toy's ``sample_real``, ``sample_fake``).

    Draws n anchor points of each side, a validation pair and a test pair of n_test each
    (all independent). G = mean ||grad f|| at the anchors' starts and W = |mean f(x) - mean
    f(y)| / G (a slope-corrected estimate) set the units: the anchors are
    :func:`descent_anchors` with first step ``step`` x W and ``n_steps`` steps, down the
    gradient for h_s and up it for the upper envelope k_s (``upper``), one pair of path
    sets per factor in ``grow`` (1: fixed steps; > 1: adaptive steps growing by that
    factor while the critic falls, shrinking when it does not), and the candidate scales
    are ``DEFAULT_SCALES`` / G; the validation pair picks among all of them. The default,
    fixed and doubling paths, keeps what fixed steps gave where the transport rays meet
    near the samples and reaches 255 W down parallel rays (docs/critic_benchmark.md:
    translate d = 64, 0.73 -> 1.00 x W1). The critic is called on float32 tensors
    (its parameters' dtype) on its parameters' device; the envelope is float64 numpy.
    """
    import torch

    n = check_int(n, "n", minimum=1)
    n_test = check_int(n_test, "n_test", minimum=2)
    step = check_positive(step, "step")
    grows = [grow] if np.ndim(grow) == 0 else list(grow)
    if not grows:
        raise ValueError("grow must hold at least one factor")
    grows = [check_positive(g, "grow") for g in grows]
    rng = np.random.default_rng(seed)
    params = list(critic.parameters()) if isinstance(critic, torch.nn.Module) else []
    dtype = params[0].dtype if params else torch.float32
    device = params[0].device if params else torch.device("cpu")

    scores = score_fn(critic, device, dtype)  # both in blocks of slopes.ROWS points

    def grad(z: np.ndarray) -> np.ndarray:
        return to_numpy64(gradients(critic, z, device, dtype))

    x = _points(real(n, rng), "real(n, rng)")
    y = _points(fake(n, rng), "fake(n, rng)", x.shape[1])
    validation = (real(n_test, rng), fake(n_test, rng))
    test = (real(n_test, rng), fake(n_test, rng))
    start = np.concatenate([x, y])
    slope = float(np.mean(np.linalg.norm(grad(start), axis=1)))
    if not (math.isfinite(slope) and slope > 0):
        raise ValueError("the critic's gradient vanishes (or is not finite) at the samples")
    fs = scores(start)
    w = abs(float(fs[:n].mean() - fs[n:].mean())) / slope
    length = step * w if w > 0 else step
    envelopes = []
    for g in grows:
        adaptive = {} if g == 1.0 else {"score": scores, "grow": g}
        for ascent in (False, True):
            pts = descent_anchors(grad, start, step=length, n_steps=n_steps, ascent=ascent,
                                  **adaptive)
            envelopes.append((pts, scores(pts), ascent))
    (down, v_down, _), (up, v_up, _) = envelopes[:2]
    b = population_bound(down, v_down, validation, test, upper=(up, v_up),
                         candidates=envelopes[2:],
                         scales=[s / slope for s in DEFAULT_SCALES], confidence=confidence)
    return dataclasses.replace(b, grow=grows[b.choice // 2])
