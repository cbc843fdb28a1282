"""Anchors for the population envelope: paths down (or up) a critic's gradient.

The envelope h_s(z) = min_a (s f(a) + ||z - a||) of :mod:`otdiv.audit.population` is close to
s f(z) at a held-out point z only when some anchor a lies downstream of z along the
transport, s f(z) - s f(a) = ||z - a||. :func:`descent_anchors` walks each sample down the
critic's gradient at unit speed, a_(t+1) = a_t - h_t grad f(a_t) / ||grad f(a_t)||, with
fixed or adaptive steps h_t, so that the paths run along the transport rays (and meet where
they converge: the apexes of a MinFunnel pair).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from otdiv._array import (
    as_numpy64,
    check_callable,
    check_flag,
    check_int,
    check_positive,
    check_scores,
)
from otdiv.audit.envelope_units import points64
from otdiv.audit.models import check_budget

__all__ = ["descent_anchors"]


def descent_anchors(grad: Callable[[np.ndarray], np.ndarray], start: object, *,
                    step: float, n_steps: int, ascent: bool = False,
                    score: Callable[[np.ndarray], np.ndarray] | None = None,
                    grow: float = 1.0) -> np.ndarray:
    """The start points and ``n_steps`` unit-speed steps down a critic's gradient from each:
    a_(t+1) = a_t - h_t grad(a_t) / ||grad(a_t)|| (up it with ``ascent``; a point where
    the gradient vanishes stays). ``grad(z)`` returns the gradients, of the points'
    shape (n, d) ((n,) when d = 1).

    Fixed steps (``score`` None): h_t = ``step``; returns ((n_steps + 1) n, d) points.
    Adaptive steps (``score(z)``, the critic's values, given): h_0 = ``step``, and a step
    is taken only if the critic falls by at least half its slope along it,
    f(a_t) - f(a_(t+1)) >= h_t ||grad(a_t)|| / 2 (rises, with ``ascent``); then
    h_(t+1) = ``grow`` h_t, else the path stays and h_(t+1) = h_t / ``grow``. Along a
    straight transport ray the steps lengthen geometrically (a translation's parallel
    rays: ``step`` (grow^n - 1) / (grow - 1) in n steps); at the point where the rays meet
    (an apex, where f stops falling) they shrink onto it. A step whose end is beyond the
    float range is not taken. Returns the start points and the steps taken, at most
    (n_steps + 1) n points.

    ``grad`` and ``score`` may return arrays or tensors (of any real dtype). ``grad`` must
    return finite gradients of shape (n, d), ``score`` one finite value per point, shape
    (n,) or (n, 1): another shape, NaN or inf are a ValueError and complex values a
    TypeError, naming them (a transposed (d, n) gradient is never reshaped). Paths of more
    than ``models.MEMORY_BUDGET`` bytes (16 (n_steps + 1) n (d + 1)) are a ValueError
    naming n_steps."""
    check_callable(grad, "grad", " (z -> gradients)")
    if score is not None:
        check_callable(score, "score", " or None (z -> values)")
    a = points64(start, "start")
    step = check_positive(step, "step")
    n_steps = check_int(n_steps, "n_steps", minimum=0)
    grow = check_positive(grow, "grow")
    ascent = check_flag(ascent, "ascent")
    check_budget(16 * (n_steps + 1) * len(a) * (a.shape[1] + 1), "n_steps", n_steps,
                 f"for the paths of {len(a)} points in d={a.shape[1]}")
    sign = 1.0 if ascent else -1.0
    out = [a]
    h = np.full((len(a), 1), step)
    fa = None if score is None else _scored(score, a)
    for _ in range(n_steps):
        g = _gradient(grad, a)
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        unit = np.divide(g, norm, out=np.zeros_like(g), where=norm > 0)
        if fa is None:
            with np.errstate(over="ignore"):
                a = a + sign * step * unit
            if not np.isfinite(a).all():
                raise ValueError(f"step={step:g}: {n_steps} steps of it leave the float64 "
                                 "range; lower step or n_steps")
            out.append(a)
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            trial = a + sign * h * unit
        inside = np.isfinite(trial).all(axis=1)
        ft = _scored(score, trial if inside.all() else np.where(inside[:, None], trial, a))
        with np.errstate(over="ignore", invalid="ignore"):
            ok = sign * (ft - fa) >= 0.5 * h[:, 0] * norm[:, 0]
        ok &= norm[:, 0] > 0
        ok &= inside
        a = np.where(ok[:, None], trial, a)
        fa = np.where(ok, ft, fa)
        with np.errstate(over="ignore"):
            h = np.where(ok[:, None], h * grow, h / grow)
        out.append(trial[ok])
    return np.concatenate(out)


def _gradient(grad: Callable, a: np.ndarray) -> np.ndarray:
    """grad(a): the points' shape (n, d) — or (n,) when d = 1, (d,) for one point, where a
    flat return is unambiguous — finite. A (d, n) or other flat return is a ValueError
    naming both shapes (never reshaped: that would pair gradients with the wrong points),
    NaN or inf one saying at how many points, complex a TypeError."""
    g = as_numpy64(grad(a), "grad", finite=False)
    if g.ndim == 1 and g.size == a.size and 1 in a.shape:  # (n,) for d = 1, (d,) for one point
        g = g.reshape(a.shape)
    if g.shape != a.shape:
        raise ValueError(f"grad must return one gradient per point, the points' shape "
                         f"{a.shape}; got shape {g.shape}")
    bad = ~np.isfinite(g).all(axis=1)
    if bad.any():
        raise ValueError(f"grad returned NaN or inf at {int(bad.sum())} of {len(a)} points")
    return g


def _scored(score: Callable, z: np.ndarray) -> np.ndarray:
    """score(z): one finite value per point, shape (n,) or (n, 1) (``check_scores``, the one
    score rule: another shape is a ValueError, complex values a TypeError, both naming
    ``score``; NaN or inf a ValueError saying at how many points)."""
    f = check_scores(as_numpy64(score(z), "score", finite=False), len(z), "score", per="point",
                     verb="return")
    bad = ~np.isfinite(f)
    if bad.any():
        raise ValueError(f"score returned NaN or inf at {int(bad.sum())} of {len(z)} points")
    return f
