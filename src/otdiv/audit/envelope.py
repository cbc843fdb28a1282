"""Certified lower bounds on W1 from any critic, by 1-Lipschitz envelopes (c-transforms).

For scores f_i = f(x_i), g_j = f(y_j) of *any* critic f (Lipschitz or not), the
McShane–Whitney envelopes

    h(z) = min_j ( f(y_j) + ||z - y_j|| )        (the smallest 1-Lipschitz extension
                                                  below f from the fake points)
    k(z) = max_i ( f(x_i) - ||z - x_i|| )        (the largest one above f from the real
                                                  points)

are 1-Lipschitz on the whole space, so by Kantorovich–Rubinstein duality

    mean_i h(x_i) - mean_j h(y_j)  <=  W1(P_n, Q_m)

with P_n, Q_m the empirical measures of the x_i and y_j: a **certified** lower bound on the
exact W1 between the samples that needs neither exact OT nor a Lipschitz bound of the
network, in O(n m d) time and O(chunk m) memory. Each envelope is then improved by
alternating the two c-transforms (for c(x, y) = ||x - y||): re-extending h from its values
on the x_i lowers it on the y_j and leaves it unchanged on the x_i, and the other way
round, so the bound never decreases. It stops when a round no longer gains.

The bound holds for s * f whatever s > 0, so the scale of the critic (a GP critic's slope
above 1, a clipped critic's far below) can be searched over: the largest bound found is
still certified. With ``scale="search"`` a golden-section search over log s does that, in
a window of a factor 64 either side of 1 / L_S, where

    L_S = max_{i,j} |f(x_i) - f(y_j)| / ||x_i - y_j||

is the critic's largest slope between the two samples (s = 1/L_S makes s * f 1-Lipschitz
on the pairs (x_i, y_j)). A window fixed around s = 1 misses a weight-clipped critic,
whose slope is 0.002-0.006 (docs/critic_benchmark.md: 0.33 x exact W1 on funnels d = 2
with the fixed window [1/64, 64], 0.99 x with this one).

Rounding and range: points and scores are taken in units of 2^e, the power of
two just above the largest coordinate (exact, so the bound is that of the data as given:
the envelope is positively homogeneous in (z, f)), so that no distance overflows or
underflows whatever the data's magnitude. Distances are computed per pair in float64 (no
``|x|^2 + |y|^2 - 2<x, y>`` expansion), so the envelopes are 1-Lipschitz up to a relative
1e-15 of the largest operand (a distance or a scaled, centred score s * f); the bound holds
to that precision. Scaled scores beyond 2^10 times the largest distance (a critic far
steeper than 1 kept at s = 1, or a huge ``scale``), where that rounding would swamp the
distances (a critic of scores 1e18 at s = 1 certified 2048 where W1 was 0.7), are first
taken relative to their least (largest) value and capped at the largest distance: the
envelope is the same up to a constant, and the operands stay of the size of the distances.
A bound that still exceeds the float range (points near 1e308) is a ValueError, never inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from otdiv._array import check_int, check_positive
from otdiv._scaling import pow2_exponent
from otdiv.audit.envelope_units import (
    CHUNK_BYTES,
    STEEP,
    check_finite_results,
    points64,
    relative_values,
    unit_diameter,
    values64,
)


@dataclass(frozen=True)
class EnvelopeBound:
    """A certified lower bound on W1(P_n, Q_m) from a critic's scores.

    value: max(from_fake, from_real), the bound to quote (for the critic s * f, s = scale).
    from_fake: the bound of the envelope started from the fake scores (h above); from_real:
    started from the real scores (k above). raw: mean f(x_i) - mean f(y_j), the critic's
    own estimate (not a bound unless Lip(f) <= 1). rounds: c-transform rounds taken.
    held_out: mean h(x'_i) - mean h(y'_j) on independent samples x' ~ P, y' ~ Q, where h is
    the envelope (fixed by x, y): an unbiased estimate of E_P h - E_Q h <= W1(P, Q), the
    population W1, with standard error held_out_se. None without held-out samples.
    """

    value: float
    from_fake: float
    from_real: float
    raw: float
    rounds: int
    scale: float = 1.0
    held_out: float | None = None
    held_out_se: float | None = None


def _transform(values: np.ndarray, source: np.ndarray, target: np.ndarray,
               sign: float) -> np.ndarray:
    """min_j (values_j + ||t - s_j||) (sign=+1) or max_j (values_j - ||t - s_j||) (sign=-1)."""
    from scipy.spatial.distance import cdist

    rows = max(1, CHUNK_BYTES // (8 * max(1, len(source))))
    out = np.empty(len(target))
    for start in range(0, len(target), rows):
        dist = cdist(target[start:start + rows], source)
        if sign > 0:
            out[start:start + rows] = np.min(values[None, :] + dist, axis=1)
        else:
            out[start:start + rows] = np.max(values[None, :] - dist, axis=1)
    return out


def _start_values(f: np.ndarray, raw: np.ndarray, s: float, e: int, cap: float,
                  lower: bool) -> np.ndarray:
    """The values s f / 2^e an envelope starts from (``f`` the centred scores / 2^e, which may
    hold inf when the centring overflowed; ``raw`` the scores as given), finite and at most
    STEEP x ``cap`` in size: as they are when they are that small, else relative to their
    least (``lower``: the min-envelope h) or largest value and capped
    (``envelope_units.relative_values``), which leaves the envelope unchanged up to a
    constant on points within ``cap``."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = s * f
        small = bool(np.isfinite(v).all()) and float(np.max(np.abs(v))) <= STEEP * cap
    if small:
        return v
    return (relative_values(raw, s, e, cap) if lower
            else -relative_values(-raw, s, e, cap))


def _mean_difference(fx: np.ndarray, fy: np.ndarray) -> float:
    """mean fx - mean fy, without overflow of the sums (ValueError naming fx and fy when the
    difference itself is beyond the float range)."""
    with np.errstate(over="ignore", invalid="ignore"):
        raw = float(fx.mean() - fy.mean())
    if not math.isfinite(raw):
        ef = pow2_exponent(fx, fy)
        with np.errstate(over="ignore"):
            raw = float(np.ldexp(np.ldexp(fx, -ef).mean() - np.ldexp(fy, -ef).mean(), ef))
    if not math.isfinite(raw):
        raise ValueError("fx and fy: mean fx - mean fy lies beyond the float64 range; "
                         "rescale the scores")
    return raw


def _check_held_out(held_out: object, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(held_out, tuple) or len(held_out) != 2:
        raise TypeError("held_out must be a pair (x', y') of point arrays")
    return tuple(points64(z, f"held_out[{k}]", dim, minimum=2) for k, z in enumerate(held_out))


def envelope_bound(
    x: object, y: object, fx: object, fy: object, *, scale: float | str = "search",
    max_rounds: int = 4, held_out: tuple[object, object] | None = None,
) -> EnvelopeBound:
    """Certified bound mean h(x_i) - mean h(y_j) <= W1(P_n, Q_m), h = min_j f(y_j) + ||. - y_j||.

    Args:
        x: real points, (n, d) (or (n,) for d = 1). y: fake points, (m, d).
        fx: the critic's scores f(x_i), n of them. fy: its scores f(y_j), m of them.
        scale: s > 0, the bound is computed for s * f; "search" (default) searches s in
            [1/(64 L_S), 64/L_S], L_S the largest slope max |f(x_i) - f(y_j)| / ||x_i - y_j||
            (about 16 bounds of one round each, then the best with all rounds; s = 1 and
            s = 1/L_S are always candidates).
        max_rounds: c-transform rounds per envelope (>= 1); each costs O(n m d).
        held_out: (x', y'), independent samples of P and Q, at least 2 points each, on which
            the envelope (the McShane extension min_l v_l + ||z - p_l|| of its values v on
            the x_i and y_j, 1-Lipschitz whatever v) is evaluated: a lower bound on the
            population W1(P, Q) up to sampling error, which ``held_out_se`` states. Between
            samples W1 is biased upwards (strongly in high dimension); this estimate is not.

    Returns:
        An :class:`EnvelopeBound`; ``value`` is the bound (W1 with p = 1, Euclidean ground
        distance, uniform weights). Every field is finite: data whose bound lies beyond the
        float range (coordinates near 1e308) or scores whose mean difference does are a
        ValueError.
    """
    x = points64(x, "x")
    y = points64(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    fx = values64(fx, len(x), "fx", what="score")
    fy = values64(fy, len(y), "fy", what="score")
    max_rounds = check_int(max_rounds, "max_rounds", minimum=1)
    if isinstance(scale, str):
        if scale != "search":
            raise ValueError(f"scale must be a positive number or 'search', got {scale!r}")
    else:
        scale = check_positive(scale, "scale")
    if held_out is not None:
        xh, yh = _check_held_out(held_out, x.shape[1])
    raw = _mean_difference(fx, fy)
    # in units of 2^e, the power of two above the largest coordinate: exact, and no distance
    # overflows or underflows; the scores go with the points (the bound is homogeneous)
    e = pow2_exponent(x, y)
    xs, ys = np.ldexp(x, -e), np.ldexp(y, -e)
    cap = unit_diameter(x.shape[1])
    # centre the scores: the bound is invariant to a constant, the rounding is not
    with np.errstate(over="ignore", invalid="ignore"):
        shift = 0.5 * (np.median(fx) + np.median(fy))
        cx, cy = np.ldexp(fx - shift, -e), np.ldexp(fy - shift, -e)
    scores = (cx, cy, fx, fy, e, cap)
    if isinstance(scale, str):
        scale = _search_scale(xs, ys, scores)
    from_fake, r1, vx1, vy1 = _envelopes(xs, ys, scores, scale, True, max_rounds)
    from_real, r2, vx2, vy2 = _envelopes(xs, ys, scores, scale, False, max_rounds)
    held = held_se = None
    if held_out is not None:
        # the envelope's values, in the units of all points (held-out ones included)
        eh = max(e, pow2_exponent(xh, yh))
        vx, vy = (vx1, vy1) if from_fake >= from_real else (vx2, vy2)
        values = np.ldexp(np.concatenate([vx, vy]), e - eh)
        points = np.ldexp(np.concatenate([x, y]), -eh)
        hx = _transform(values, points, np.ldexp(xh, -eh), +1.0)
        hy = _transform(values, points, np.ldexp(yh, -eh), +1.0)
        with np.errstate(over="ignore"):
            held = float(np.ldexp(hx.mean() - hy.mean(), eh))
            held_se = float(np.ldexp(np.sqrt(hx.var(ddof=1) / len(hx)
                                              + hy.var(ddof=1) / len(hy)), eh))
    with np.errstate(over="ignore"):
        from_fake, from_real = float(np.ldexp(from_fake, e)), float(np.ldexp(from_real, e))
    check_finite_results({"the bound": from_fake, "the bound from the real scores": from_real,
                          "held_out": held, "held_out_se": held_se}, "x and y")
    return EnvelopeBound(value=max(from_fake, from_real), from_fake=from_fake,
                         from_real=from_real, raw=raw, rounds=max(r1, r2), scale=scale,
                         held_out=held, held_out_se=held_se)


def _sample_slope(x, y, fx, fy) -> float:
    """L_S = max_{i,j} |f_i - g_j| / ||x_i - y_j|| over pairs at positive distance (0 when
    there are none or the scores are constant)."""
    from scipy.spatial.distance import cdist

    rows = max(1, CHUNK_BYTES // (8 * len(y)))
    best = 0.0
    for start in range(0, len(x), rows):
        dist = cdist(x[start:start + rows], y)
        diff = np.abs(fx[start:start + rows, None] - fy[None, :])
        pos = dist > 0
        if pos.any():
            best = max(best, float(np.max(diff[pos] / dist[pos])))
    return best


def _log_slope(x, y, scores) -> float | None:
    """log L_S of the scores as given (:func:`_sample_slope`; the points in units of 2^e and
    the scores with them), without overflow; None when L_S is 0 or beyond the float range."""
    cx, cy, fx, fy, e, _ = scores
    with np.errstate(over="ignore", invalid="ignore"):
        slope = _sample_slope(x, y, cx, cy)
    if 0 < slope < np.inf:
        return float(np.log(slope))
    if np.isfinite(cx).all() and np.isfinite(cy).all():
        return None  # 0, or a ratio beyond the float range
    ef = pow2_exponent(fx, fy)  # the centred scores overflowed: the scores / 2^ef, then 2^(ef - e)
    with np.errstate(over="ignore"):
        slope = _sample_slope(x, y, np.ldexp(fx, -ef), np.ldexp(fy, -ef))
    return float(np.log(slope) + (ef - e) * np.log(2.0)) if 0 < slope < np.inf else None


_LOG_RANGE = 700.0  # |log s| of the scales searched: exp stays a normal float


def _search_scale(x, y, scores) -> float:
    """Golden-section search of log s in [log(1/(64 L_S)), log(64/L_S)] for the best
    one-round bound (L_S from :func:`_sample_slope`; the window is centred on s = 1 when
    L_S is 0 or not finite, and kept within |log s| <= 700)."""

    def bound(log_s: float) -> float:
        s = float(np.exp(log_s))
        return max(_envelopes(x, y, scores, s, True, 1)[0],
                   _envelopes(x, y, scores, s, False, 1)[0])

    log_slope = _log_slope(x, y, scores)
    centre = -log_slope if log_slope is not None else 0.0
    centre = min(max(centre, -_LOG_RANGE + np.log(64.0)), _LOG_RANGE - np.log(64.0))
    lo, hi = centre - np.log(64.0), centre + np.log(64.0)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = bound(a), bound(b)
    for _ in range(10):
        if fa >= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = bound(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = bound(b)
    best = a if fa >= fb else b
    # s = 1 (the critic as trained) and s = 1/L_S (1-Lipschitz on the pairs: for s * u, u
    # an optimal potential, the kink of the bound the search can only approach) are
    # always candidates; ties go to the earlier
    candidates = [(bound(0.0), 0.0), (bound(centre), centre), (max(fa, fb), best)]
    top = max(value for value, _ in candidates)
    return float(np.exp(next(log_s for value, log_s in candidates if value == top)))


def _envelopes(x, y, scores, s: float, start_fake: bool, max_rounds: int):
    """(bound, rounds, values on x, values on y) of the envelope of s * f started from fy
    (or fx), in units of 2^e (``scores`` as :func:`envelope_bound` prepares them)."""
    cx, cy, fx, fy, e, cap = scores
    # (hx, hy): one 1-Lipschitz function's values on the x_i and on the y_j. Where the
    # values are re-used rather than recomputed, rounding can only lower the bound.
    if start_fake:
        vy = _start_values(cy, fy, s, e, cap, lower=True)
        hx, hy = _transform(vy, y, x, +1.0), _transform(vy, y, y, +1.0)
    else:
        vx = _start_values(cx, fx, s, e, cap, lower=False)
        hx, hy = _transform(vx, x, x, -1.0), _transform(vx, x, y, -1.0)
    best = float(hx.mean() - hy.mean())
    best_values = hx, hy
    rounds = 1
    for _ in range(max_rounds - 1):
        # the other extension of the same function: it keeps the values where it is
        # extended from and moves the others the right way (y_j down, x_i up)
        if start_fake:
            hy = _transform(hx, x, y, -1.0)
            hx = _transform(hy, y, x, +1.0)
        else:
            hx = _transform(hy, y, x, +1.0)
            hy = _transform(hx, x, y, -1.0)
        value = float(hx.mean() - hy.mean())
        rounds += 1
        gained = value > best + 1e-12 * abs(best)
        if value > best:
            best, best_values = value, (hx, hy)
        if not gained:
            break
    return best, rounds, best_values[0], best_values[1]
