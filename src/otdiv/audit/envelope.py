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

Rounding: distances are computed per pair in float64 (no ``|x|^2 + |y|^2 - 2<x, y>``
expansion), so the envelopes are 1-Lipschitz up to a relative 1e-15 of the largest operand
(a distance or a scaled, centred score s * f); the bound holds to that precision (for a
critic of scores near 1e6 kept at s = 1, about 1e-10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from otdiv._array import check_int, check_positive

_CHUNK_BYTES = 64 * 2**20  # one block of distances at a time


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

    rows = max(1, _CHUNK_BYTES // (8 * max(1, len(source))))
    out = np.empty(len(target))
    for start in range(0, len(target), rows):
        dist = cdist(target[start:start + rows], source)
        if sign > 0:
            out[start:start + rows] = np.min(values[None, :] + dist, axis=1)
        else:
            out[start:start + rows] = np.max(values[None, :] - dist, axis=1)
    return out


def _as_points(z: object, name: str) -> np.ndarray:
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or len(arr) == 0:
        raise ValueError(f"{name} must be a non-empty array of shape (n, d), got shape "
                         f"{np.shape(z)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _as_scores(s: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(s, dtype=np.float64).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} must hold one score per point ({n}), got shape "
                         f"{np.shape(s)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


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
        held_out: (x', y'), independent samples of P and Q on which the envelope (the
            McShane extension min_l v_l + ||z - p_l|| of its values v on the x_i and y_j,
            1-Lipschitz whatever v) is evaluated: a lower bound on the population W1(P, Q)
            up to sampling error, which ``held_out_se`` states. Between samples W1 is biased
            upwards (strongly in high dimension); this estimate is not.

    Returns:
        An :class:`EnvelopeBound`; ``value`` is the bound (W1 with p = 1, Euclidean ground
        distance, uniform weights).
    """
    x = _as_points(x, "x")
    y = _as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    fx = _as_scores(fx, len(x), "fx")
    fy = _as_scores(fy, len(y), "fy")
    max_rounds = check_int(max_rounds, "max_rounds", minimum=1)
    raw = float(fx.mean() - fy.mean())
    # centre the scores: the bound is invariant to a constant, the rounding is not
    shift = 0.5 * (np.median(fx) + np.median(fy))
    fx, fy = fx - shift, fy - shift
    if isinstance(scale, str):
        if scale != "search":
            raise ValueError(f"scale must be a positive number or 'search', got {scale!r}")
        scale = _search_scale(x, y, fx, fy)
    else:
        scale = check_positive(scale, "scale")
    from_fake, r1, vx1, vy1 = _envelopes(x, y, scale * fx, scale * fy, True, max_rounds)
    from_real, r2, vx2, vy2 = _envelopes(x, y, scale * fx, scale * fy, False, max_rounds)
    held = held_se = None
    if held_out is not None:
        if not isinstance(held_out, tuple) or len(held_out) != 2:
            raise TypeError("held_out must be a pair (x', y') of point arrays")
        xh, yh = _as_points(held_out[0], "held_out[0]"), _as_points(held_out[1], "held_out[1]")
        if xh.shape[1] != x.shape[1] or yh.shape[1] != x.shape[1]:
            raise ValueError(f"held_out points must have dimension {x.shape[1]}")
        vx, vy = (vx1, vy1) if from_fake >= from_real else (vx2, vy2)
        values, points = np.concatenate([vx, vy]), np.concatenate([x, y])
        hx, hy = _transform(values, points, xh, +1.0), _transform(values, points, yh, +1.0)
        held = float(hx.mean() - hy.mean())
        held_se = float(np.sqrt(hx.var(ddof=1) / len(hx) + hy.var(ddof=1) / len(hy))) \
            if min(len(hx), len(hy)) > 1 else float("inf")
    return EnvelopeBound(value=max(from_fake, from_real), from_fake=from_fake,
                         from_real=from_real, raw=raw, rounds=max(r1, r2), scale=scale,
                         held_out=held, held_out_se=held_se)


def _sample_slope(x, y, fx, fy) -> float:
    """L_S = max_{i,j} |f_i - g_j| / ||x_i - y_j|| over pairs at positive distance (0 when
    there are none or the scores are constant)."""
    from scipy.spatial.distance import cdist

    rows = max(1, _CHUNK_BYTES // (8 * len(y)))
    best = 0.0
    for start in range(0, len(x), rows):
        dist = cdist(x[start:start + rows], y)
        diff = np.abs(fx[start:start + rows, None] - fy[None, :])
        pos = dist > 0
        if pos.any():
            best = max(best, float(np.max(diff[pos] / dist[pos])))
    return best


def _search_scale(x, y, fx, fy) -> float:
    """Golden-section search of log s in [log(1/(64 L_S)), log(64/L_S)] for the best
    one-round bound (L_S from :func:`_sample_slope`; the window is centred on s = 1 when
    L_S is 0 or not finite)."""

    def bound(log_s: float) -> float:
        s = float(np.exp(log_s))
        return max(_envelopes(x, y, s * fx, s * fy, True, 1)[0],
                   _envelopes(x, y, s * fx, s * fy, False, 1)[0])

    slope = _sample_slope(x, y, fx, fy)
    centre = -np.log(slope) if 0 < slope < np.inf else 0.0
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


def _envelopes(x, y, fx, fy, start_fake: bool, max_rounds: int):
    """(bound, rounds, values on x, values on y) of the envelope started from fy (or fx)."""
    # (hx, hy): one 1-Lipschitz function's values on the x_i and on the y_j. Where the
    # values are re-used rather than recomputed, rounding can only lower the bound.
    if start_fake:
        hx, hy = _transform(fy, y, x, +1.0), _transform(fy, y, y, +1.0)
    else:
        hx, hy = _transform(fx, x, x, -1.0), _transform(fx, x, y, -1.0)
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
