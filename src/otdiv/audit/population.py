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

**Range.** As in :mod:`otdiv.audit.envelope`, points are taken in units of 2^e, the power of
two above their largest coordinate (exact), so no distance overflows or underflows; scaled
values s v beyond 2^10 times the largest distance are taken relative to their least and
capped at it (the same envelope up to a constant, which the bound does not see), so that
neither overflow nor rounding of huge values reaches the bound. Every field of a result is
finite, or the call is a ValueError.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from otdiv._array import (
    check_callable,
    check_flag,
    check_int,
    check_positive,
    check_seed,
    to_numpy64,
)
from otdiv._scaling import pow2_exponent
from otdiv.audit.anchors import descent_anchors
from otdiv.audit.envelope_units import (
    CHUNK_BYTES,
    STEEP,
    check_finite_results,
    points64,
    relative_values,
    unit_diameter,
    values64,
)
from otdiv.audit.models import check_budget, memory_budget
from otdiv.audit.slopes import gradients, score_fn

DEFAULT_SCALES = tuple(2.0 ** k for k in range(-2, 4))  # x (1 / the critic's slope)
_RANGE = 2.0 ** 1000  # |s v| (in units of the points) up to which envelope_values keeps v


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


def _values(values: object, n: int, name: str) -> np.ndarray:
    """n finite values, one per anchor, shape (n,) or (n, 1) (``envelope_units.values64``:
    another shape such as (1, n), NaN or inf are a ValueError, complex values a TypeError)."""
    return values64(values, n, name, per="anchor")


def _scales(scales: object) -> list[float]:
    """A non-empty sequence of finite numbers > 0."""
    if isinstance(scales, (str, bytes)):
        raise TypeError(f"scales must be a sequence of positive numbers, got {scales!r}")
    try:
        items = list(scales)
    except TypeError:
        raise TypeError("scales must be a sequence of positive numbers, got "
                        f"{type(scales).__name__}") from None
    items = [check_positive(s, "scales") for s in items]
    if not items:
        raise ValueError("scales must hold at least one positive number")
    return items


def _confidence(confidence: object) -> float:
    confidence = check_positive(confidence, "confidence")
    if not confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return confidence


def _kernel(vals: np.ndarray, anchors: np.ndarray, z: np.ndarray,
            scales: np.ndarray) -> np.ndarray:
    """min_a (s vals_a + ||z_k - a||), (len(scales), len(z)), finite inputs of moderate size
    (:func:`envelope_values`)."""
    from otdiv.kernels.envelope_numba import envelope_min_block

    vals = np.ascontiguousarray(vals, dtype=np.float64)
    anchors = np.ascontiguousarray(anchors, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    scales = np.ascontiguousarray(scales, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    center = anchors.mean(axis=0)
    a = anchors - center
    na = np.einsum("ij,ij->i", a, a)
    na_max = float(na.max())
    top = float(np.abs(scales).max() * np.abs(vals).max())
    out = np.empty((len(scales), len(z)))
    rows = max(1, CHUNK_BYTES // (8 * len(anchors)))
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
    return out


def _min_envelope(w: np.ndarray, anchors: np.ndarray, z: np.ndarray, scales: Sequence[float],
                  e: int, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """(out, offsets): min_a (s w_a + ||z_k - a||) = offsets[i] + 2^e out[i, k] for
    s = scales[i], with ``anchors`` and ``z`` given in units of 2^e (coordinates in (-1, 1))
    and ``w`` as it is. A scale with s |w| / 2^e <= ``limit`` x the largest distance takes
    w / 2^e (offset 0); a larger one takes w relative to its least value, capped at the
    largest distance (``envelope_units.relative_values``; offset s min w, which may
    overflow)."""
    cap = unit_diameter(anchors.shape[1])
    scales = np.asarray(scales, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        wn = np.ldexp(w, -e)
        small = scales * float(np.max(np.abs(wn))) <= limit * cap
    out = np.empty((len(scales), len(z)))
    offsets = np.zeros(len(scales))
    if small.any():
        out[small] = _kernel(wn, anchors, z, scales[small])
    for k in np.flatnonzero(~small):
        out[k] = _kernel(relative_values(w, scales[k], e, cap), anchors, z, np.ones(1))[0]
        with np.errstate(over="ignore"):
            offsets[k] = scales[k] * w.min()
    return out, offsets


def envelope_values(values: np.ndarray, anchors: np.ndarray, z: np.ndarray,
                    scales: Sequence[float], upper: bool = False) -> np.ndarray:
    """(len(scales), len(z)) array: h_s(z_k) = min_a (s values_a + ||z_k - a||) per scale s
    (``upper``: k_s(z_k) = max_a (s values_a - ||z_k - a||), also 1-Lipschitz).

    ``anchors`` (N, d) and ``z`` (k, d) are finite point arrays of one dimension ((n,) for
    d = 1), ``values`` N finite real numbers, shape (N,) or (N, 1) (a (1, N) row is a
    ValueError), ``scales`` finite numbers > 0, at least one.

    Per block of z, squared distances from one matrix product about the anchors' mean,
    |z|^2 + |a|^2 - 2 <z, a>, whose rounding error is at most (2 d + 8) eps (|z|^2 +
    max |a|^2); the anchors within twice that (in distance) of each minimum are then
    re-evaluated with per-pair distances (``kernels.envelope_numba``), so the values are
    those of per-pair float64 distances: 1-Lipschitz up to one distance's rounding. Points
    are taken in units of the power of two above their largest coordinate (exact), so no
    distance overflows; values h_s beyond the float range are a ValueError."""
    anchors = points64(anchors, "anchors")
    values = _values(values, len(anchors), "values")
    z = points64(z, "z", anchors.shape[1])
    scales = _scales(scales)
    upper = check_flag(upper, "upper")
    sign = -1.0 if upper else 1.0
    e = pow2_exponent(anchors, z)
    out, offsets = _min_envelope(sign * values, np.ldexp(anchors, -e), np.ldexp(z, -e),
                                 scales, e, _RANGE)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ldexp(out, e)
        steep = offsets != 0
        out[steep] += offsets[steep, None]
    if not np.isfinite(out).all():
        raise ValueError("values: the envelope values s * values +- distances lie beyond "
                         "the float64 range; rescale the values or the points")
    return sign * out


def population_bound(anchors: object, values: object, validation: tuple[object, object],
                     test: tuple[object, object], *, scales: Sequence[float] | None = None,
                     upper: tuple[object, object] | None = None,
                     candidates: Sequence[tuple[object, object, bool]] = (),
                     confidence: float = 0.95) -> PopulationBound:
    """Lower bound on W1(P, Q): the envelope h_s(z) = min_a (s v_a + ||z - a||) on test samples.

    Args:
        anchors: (N, d) points; values: N finite real numbers v_a (a critic's scores at
            the anchors), shape (N,) or (N, 1); arrays or tensors.
        upper: optionally (anchors', values') of a second candidate, the upper envelope
            k_s(z) = max_a (s v'_a - ||z - a||); the validation pair picks h or k too.
        candidates: further envelopes (anchors'', values'', is_upper) to pick from
            (e.g. anchors on other paths; is_upper True or False); each is 1-Lipschitz, so
            the pick is free.
        validation: (x_v, y_v), samples of P and Q that pick s (largest mean h_s(x_v) -
            mean h_s(y_v)); they must be independent of the test pair.
        test: (x', y'), samples of P and Q independent of the anchors, values and
            validation pair, at least 2 points each (the standard error needs two):
            ``value`` = mean h_s(x') - mean h_s(y').
        scales: candidate s (default ``DEFAULT_SCALES``, 2^-2 .. 2^3, for values of slope
            about 1; divide them by the critic's slope otherwise, as
            :func:`critic_population_bound` does).
        confidence: level of ``lower`` = value - z se (normal approximation), in (0, 1).

    E_P h_s - E_Q h_s <= W1(P, Q) whatever the anchors and values (h_s is 1-Lipschitz), so
    ``value`` estimates a lower bound without bias and ``lower`` is a lower confidence
    bound. For discrete P and Q, passing their whole supports (uniform weights) as the test
    pair makes ``value`` <= W1(P, Q) exactly (a one-point support, a Dirac, given twice: its
    standard error is then 0, where one point has none). Every field is finite: points
    whose bound lies beyond the float range (coordinates near 1e308) are a ValueError.
    """
    from scipy.stats import norm

    anchors = points64(anchors, "anchors")
    dim = anchors.shape[1]
    values = _values(values, len(anchors), "values")
    sides = [(0, False, anchors, values)]
    if upper is not None:
        if not isinstance(upper, tuple) or len(upper) != 2:
            raise TypeError("upper must be a pair (anchors, values)")
        up = points64(upper[0], "upper[0]", dim)
        sides.append((1, True, up, _values(upper[1], len(up), "upper[1]")))
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Iterable):
        raise TypeError("candidates must be a sequence of triples (anchors, values, is_upper), "
                        f"got {type(candidates).__name__}")
    for k, cand in enumerate(candidates):
        if not isinstance(cand, tuple) or len(cand) != 3:
            raise TypeError("candidates must hold triples (anchors, values, is_upper)")
        pts = points64(cand[0], f"candidates[{k}][0]", dim)
        sides.append((2 + k, check_flag(cand[2], f"candidates[{k}][2] (is_upper)"), pts,
                      _values(cand[1], len(pts), f"candidates[{k}][1]")))
    for name, pair in (("validation", validation), ("test", test)):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"{name} must be a pair (x, y) of point arrays")
    xv, yv = (points64(p, f"validation[{k}]", dim) for k, p in enumerate(validation))
    xt, yt = (points64(p, f"test[{k}]", dim, minimum=2) for k, p in enumerate(test))
    confidence = _confidence(confidence)
    scales = list(DEFAULT_SCALES) if scales is None else _scales(scales)
    # every point in units of 2^e (exact): no distance overflows or underflows
    e = pow2_exponent(xv, yv, xt, yt, *(pts for _, _, pts, _ in sides))
    zv = np.ldexp(np.concatenate([xv, yv]), -e)
    best = None
    for choice, side, pts, vals in sides:
        with np.errstate(over="ignore", invalid="ignore"):
            centred = vals - np.median(vals)  # the bound is invariant to a constant
        if not np.isfinite(centred).all():
            centred = vals
        sign = -1.0 if side else 1.0
        # (the offsets of huge values are constants per scale: the differences drop them)
        hv = sign * _min_envelope(sign * centred, np.ldexp(pts, -e), zv, scales, e, STEEP)[0]
        val = hv[:, :len(xv)].mean(axis=1) - hv[:, len(xv):].mean(axis=1)
        k = int(np.argmax(val))
        if best is None or val[k] > best[0]:
            best = (float(val[k]), scales[k], side, pts, centred, choice)
    validation_value, s, side, pts, vals, choice = best
    sign = -1.0 if side else 1.0
    ht = sign * _min_envelope(sign * vals, np.ldexp(pts, -e),
                              np.ldexp(np.concatenate([xt, yt]), -e), [s], e, STEEP)[0][0]
    hx, hy = ht[:len(xt)], ht[len(xt):]
    with np.errstate(over="ignore"):
        value = float(np.ldexp(hx.mean() - hy.mean(), e))
        se = float(np.ldexp(math.sqrt(hx.var(ddof=1) / len(hx) + hy.var(ddof=1) / len(hy)),
                            e))
        lower = value - float(norm.ppf(confidence)) * se
        validation_value = float(np.ldexp(validation_value, e))
    check_finite_results({"value": value, "se": se, "lower": lower,
                          "validation": validation_value}, "anchors, validation and test")
    return PopulationBound(value=value, se=se, lower=lower, confidence=confidence, scale=s,
                           validation=validation_value, n_anchors=len(pts),
                           envelope="max" if side else "min", choice=choice)


def population_bytes(n: int, n_test: int, n_steps: int, n_grow: int, dim: int) -> int:
    """Bytes :func:`critic_population_bound` plans to hold: 8 (d + 1) a point (float64
    coordinates and a score) for the 2 n (n_steps + 1) points of each of its 2 n_grow path
    sets, three times (built step by step, joined, centred in the envelope), 8 n for the
    samples, their gradients and scores, 8 n_test for the validation and test pairs and
    their joined copies, and two blocks of distances of the envelope (64 MiB each)."""
    paths = 2 * n_grow * 2 * n * (n_steps + 1)
    return 8 * (dim + 1) * (3 * paths + 8 * n + 8 * n_test) + 2 * CHUNK_BYTES


def check_population_size(n: int, n_test: int, n_steps: int, n_grow: int, dim: int, *,
                          budget: float | None = None) -> None:
    """ValueError naming the argument that drives it (n, n_test, n_steps or grow: the one
    whose reduction saves the most) when :func:`population_bytes` exceeds ``budget`` bytes
    (the idiom of :func:`otdiv.audit.models.check_training_size`; the message is
    :func:`otdiv.audit.models.check_budget`'s)."""
    need = population_bytes(n, n_test, n_steps, n_grow, dim)
    budget = memory_budget() if budget is None else budget
    if need <= budget:
        return
    reduced = {"n": (1, n_test, n_steps, n_grow), "n_test": (n, 2, n_steps, n_grow),
               "n_steps": (n, n_test, 0, n_grow), "grow": (n, n_test, n_steps, 1)}
    name = min(reduced, key=lambda k: population_bytes(*reduced[k], dim))
    value = {"n": n, "n_test": n_test, "n_steps": n_steps,
             "grow": f"{n_grow} factors"}[name]
    check_budget(need, name, value, f"for the population bound in d={dim} (n={n}, "
                 f"n_test={n_test}, n_steps={n_steps})", budget)


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

    The arguments are checked before any work, as :func:`~otdiv.audit.audit_critic` checks
    its own: ``seed`` (None or an integer in [0, 2**63 - 2**20)), the critic (a callable; a module
    must score d-dimensional samples, ``models.check_applies``), the samplers (every draw of
    shape (n, d) and finite, ``data.Source``; within the critic's float range), and the
    sizes against the memory budget (:func:`check_population_size`). A critic that torch
    cannot differentiate, or whose scores or gradients are NaN or inf, is a ValueError
    naming it.
    """
    import torch

    from otdiv.audit.data import check_range, sources
    from otdiv.audit.models import check_applies

    seed = check_seed(seed)
    check_callable(critic, "critic", " (an nn.Module or a function)")
    for name, sampler in (("real", real), ("fake", fake)):
        check_callable(sampler, name, f" (a sampler {name}(n, rng) -> (n, d) array)")
    n = check_int(n, "n", minimum=1)
    n_test = check_int(n_test, "n_test", minimum=2)
    step = check_positive(step, "step")
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    grows = [grow] if np.ndim(grow) == 0 else list(grow)
    if not grows:
        raise ValueError("grow must hold at least one factor")
    grows = [check_positive(g, "grow") for g in grows]
    confidence = _confidence(confidence)
    src_real, src_fake = sources(real, fake)  # each sampler probed once, on its own rng
    check_population_size(n, n_test, n_steps, len(grows), src_real.dim)
    rng = np.random.default_rng(seed)
    params = list(critic.parameters()) if isinstance(critic, torch.nn.Module) else []
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    device = params[0].device if params else torch.device("cpu")
    if isinstance(critic, torch.nn.Module):
        check_applies(critic, src_real.dim, dtype, device)

    score_block = score_fn(critic, device, dtype)  # both in blocks of slopes.ROWS points

    def scores(z: np.ndarray) -> np.ndarray:
        f = score_block(z)
        if not np.isfinite(f).all():
            raise ValueError(f"critic returned NaN or inf scores at "
                             f"{int((~np.isfinite(f)).sum())} of {len(z)} points")
        return f

    def grad(z: np.ndarray) -> np.ndarray:
        try:
            g = to_numpy64(gradients(critic, z, device, dtype))
        except RuntimeError as exc:
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                raise
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError("critic cannot be differentiated by torch, and the population "
                             f"bound follows its gradient: {first}") from None
        if not np.isfinite(g).all():
            raise ValueError(f"critic has NaN or inf gradients at "
                             f"{int((~np.isfinite(g)).any(1).sum())} of {len(z)} points")
        return g

    def draw(src, k: int) -> np.ndarray:
        return check_range(src.draw(k, rng), src.name, dtype)

    x, y = draw(src_real, n), draw(src_fake, n)
    validation = (draw(src_real, n_test), draw(src_fake, n_test))
    test = (draw(src_real, n_test), draw(src_fake, n_test))
    start = np.concatenate([x, y])
    slope = float(np.mean(np.linalg.norm(grad(start), axis=1)))
    if not (math.isfinite(slope) and slope > 0):
        raise ValueError("the critic's gradient vanishes (or is not finite) at the samples")
    fs = scores(start)
    with np.errstate(over="ignore", invalid="ignore"):
        w = abs(float(fs[:n].mean() - fs[n:].mean())) / slope
        length = step * w if w > 0 else step
    if not math.isfinite(length):
        raise ValueError("critic: the unit of its descent paths, step x |mean f(x) - mean "
                         "f(y)| / mean ||grad f||, lies beyond the float64 range")
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
