"""Estimates of W1 from a critic that need no exact optimal transport.

A critic f trained with a gradient penalty of weight λ (WGAN-GP, two-sided, or WGAN-LP,
one-sided) maximises

    E_P f − E_Q f − λ E_μ (‖∇f(x̂)‖ − 1)²,     x̂ = t x + (1 − t) y, x ~ P, y ~ Q, t ~ U[0, 1]

(μ the law of the random interpolates; LP keeps only the part above 1). Within the
critics s·u, u an optimal 1-Lipschitz potential with ‖∇u‖ = 1 μ-almost everywhere, the
objective is s W1 − λ (s − 1)², largest at s = 1 + W1 / (2λ): the raw estimate
E_P f − E_Q f = s W1 overshoots W1 by the slope s (Milne & Nachman 2022: the penalised
problem is a congested transport problem; the slope is where the transport is dense).
Four ways to divide it out without the transport plan:

* :func:`penalty_corrected` — the slope predicted from λ alone: solving
  raw = W1 (1 + W1 / (2λ)) for W1 gives W1 = λ (√(1 + 2 raw / λ) − 1). Needs λ; assumes
  the uniform slope of the model above.
* :func:`slope_corrected` — the slope measured where the penalty samples it: raw divided
  by the mean ‖∇f‖ at fresh random interpolates (:func:`interpolates`). Needs the
  critic's gradient; assumes the slope along the transport equals its mean over μ (true
  for s·u; wrong where the critic is flatter off the transport, e.g. a clipped critic).

* :func:`ctransform_pairs` — the slope measured along the critic's *own* transport: each
  x_i paired with the minimiser of min_j f(y_j)/G + ‖x_i − y_j‖ (the c-transform of f/G)
  and each y_j with the maximiser of max_i f(x_i)/G − ‖x_i − y_j‖; raw divided by the
  length-weighted mean ‖∇f‖ along those segments (:func:`segment_points`). For an optimal
  potential those pairs lie on transport rays, so this is the gradient-normalised estimate
  of :mod:`otdiv.audit.critic` with the exact OT plan replaced by the critic's, in
  O(n m d) time. Assumes the critic's shape is right up to its slope.

* :func:`flow_corrected` — the slope weighted by the congested flow. At the optimum of the
  penalised problem (over all functions), V = 2λ μ (‖∇f‖ − 1)_+ ∇f/‖∇f‖ (LP; (‖∇f‖ − 1)
  for GP) is a transport flow, div V = Q − P (the Euler–Lagrange equation), so
  E_P f − E_Q f = ∫ ∇f · V = 2λ E_μ[‖∇f‖ w], w = (‖∇f‖ − 1)_+ (GP: ‖∇f‖ − 1), and the
  flow carries mass along ∫ ‖V‖ = 2λ E_μ[abs(w)] — the congested-transport picture of
  Milne & Nachman 2022. The flux-weighted slope G_V = E_μ[‖∇f‖ w] / E_μ[abs(w)] is the slope
  where the mass moves, and raw / G_V = ∫ ‖V‖ (λ cancels). For the uniform slope s of the
  model above, G_V = s. Needs the gradient at the interpolates and the penalty's kind;
  undefined (None) when no interpolate has ‖∇f‖ > 1 (a clipped or spectral critic).

None of them is a bound. The certified lower bound on W1 between samples is the envelope of
:mod:`otdiv.audit.envelope`.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv._array import check_int, check_nonnegative


def penalty_corrected(raw: float, lambda_gp: float) -> float:
    """W1 ≈ λ (√(1 + 2 raw / λ) − 1): the raw estimate of a GP/LP critic, slope removed.

    The inverse of raw = W1 (1 + W1 / (2λ)), the raw estimate of the best critic s·u of a
    gradient penalty of weight λ when the optimal potential u has unit slope on the
    penalty's interpolates (module docstring). A raw estimate ≤ 0 is returned unchanged
    (the model has no slope to remove), as is any raw estimate when λ = 0 (no penalty).
    Always between raw / (1 + raw / (2λ)) and raw, for raw ≥ 0.
    """
    raw = float(raw)
    if not math.isfinite(raw):
        raise ValueError(f"raw must be a finite number, got {raw!r}")
    lam = check_nonnegative(lambda_gp, "lambda_gp")
    if raw <= 0 or lam == 0 or not math.isfinite(lam):
        return raw
    # λ(√(1 + 2r/λ) − 1) = 2r / (√(1 + 2r/λ) + 1), without the cancellation for large λ
    return 2.0 * raw / (math.sqrt(1.0 + 2.0 * raw / lam) + 1.0)


def interpolates(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                 k: int = 1) -> np.ndarray:
    """k n points t x_i + (1 − t) y_σ(i): σ a random pairing, t ~ U[0, 1] — the points
    where the gradient penalty samples ‖∇f‖ (one fresh pairing and t per copy)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    k = check_int(k, "k")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) == 0 or len(y) == 0:
        raise ValueError(f"x and y must be non-empty (n, d) arrays of the same d, got shapes "
                         f"{x.shape} and {y.shape}")
    out = []
    for _ in range(k):
        j = rng.integers(0, len(y), size=len(x))
        t = rng.random((len(x), 1))
        out.append(t * x + (1.0 - t) * y[j])
    return np.concatenate(out)


def slope_corrected(raw: float, grad_norms: np.ndarray
                    ) -> tuple[float, float, float] | None:
    """(raw / G, G, standard error of G): G = mean ‖∇f(x̂)‖ over the penalty's interpolates.

    ``grad_norms`` are ‖∇f‖ at points of :func:`interpolates`. For f = s·u with ‖∇u‖ = 1
    there, G = s and raw / G = E_P u − E_Q u exactly. None when G is not a positive finite
    number (a critic torch cannot differentiate, or a constant one): there is no slope to
    divide by.
    """
    g = np.asarray(grad_norms, dtype=np.float64).reshape(-1)
    if len(g) == 0 or not np.isfinite(g).all():
        return None
    mean = float(g.mean())
    if mean <= 0:
        return None
    se = float(g.std(ddof=1) / math.sqrt(len(g))) if len(g) > 1 else float("inf")
    return float(raw) / mean, mean, se


def ctransform_pairs(x: np.ndarray, y: np.ndarray, fx: np.ndarray, fy: np.ndarray,
                     slope: float) -> tuple[np.ndarray, np.ndarray]:
    """The critic's own transport: each x_i paired with argmin_j f(y_j)/G + ‖x_i − y_j‖ and
    each y_j with argmax_i f(x_i)/G − ‖x_i − y_j‖ (the minimisers of the c-transforms of
    f/G). Returns (rows, cols), 2 n pairs (x_rows[k], y_cols[k]); O(n m d), no OT.

    For an optimal potential u (G = 1) these are pairs with u(x_i) − u(y_j) ≈ ‖x_i − y_j‖:
    points on one transport ray, as far as the samples allow.
    """
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    gx = np.asarray(fx, dtype=np.float64) / slope
    gy = np.asarray(fy, dtype=np.float64) / slope
    rows_x = max(1, (64 * 2**20) // (8 * len(y)))
    partner_of_x = np.empty(len(x), dtype=np.int64)
    partner_of_y_val = np.full(len(y), -np.inf)
    partner_of_y = np.zeros(len(y), dtype=np.int64)
    for start in range(0, len(x), rows_x):
        dist = cdist(x[start:start + rows_x], y)  # (b, m)
        partner_of_x[start:start + rows_x] = np.argmin(gy[None, :] + dist, axis=1)
        val = gx[start:start + rows_x, None] - dist
        best = np.argmax(val, axis=0)
        better = val[best, np.arange(len(y))] > partner_of_y_val
        partner_of_y_val[better] = val[best, np.arange(len(y))][better]
        partner_of_y[better] = start + best[better]
    rows = np.concatenate([np.arange(len(x)), partner_of_y])
    cols = np.concatenate([partner_of_x, np.arange(len(y))])
    return rows, cols


def segment_points(x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   rng: np.random.Generator, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(points, weights): k stratified points y_c + t (x_r − y_c) on each segment, each
    weighted by its segment's length / k (so a weighted mean is a mean over arc length)."""
    seg = x[rows] - y[cols]
    length = np.linalg.norm(seg, axis=1)
    t = (np.arange(k)[None, :] + rng.random((len(rows), k))) / k
    pts = (y[cols][:, None, :] + t[..., None] * seg[:, None, :]).reshape(-1, x.shape[1])
    return pts, np.repeat(length / k, k)


PENALTY_KINDS = ("one-sided", "two-sided")


def flow_corrected(raw: float, grad_norms: np.ndarray,
                   kind: str = "one-sided") -> tuple[float, float] | None:
    """(raw / G_V, G_V), G_V = E_μ[‖∇f‖ w] / E_μ[abs(w)], w = (‖∇f‖ − 1)_+ ("one-sided", LP)
    or ‖∇f‖ − 1 ("two-sided", GP): the slope weighted by the congested flow (module
    docstring). ``grad_norms``: ‖∇f‖ at points of :func:`interpolates`. None when
    E_μ[abs(w)] = 0 (no interpolate carries the flow) or G_V is not positive and finite."""
    if kind not in PENALTY_KINDS:
        raise ValueError(f"kind must be one of {PENALTY_KINDS}, got {kind!r}")
    g = np.asarray(grad_norms, dtype=np.float64).reshape(-1)
    if len(g) == 0 or not np.isfinite(g).all():
        return None
    w = np.maximum(g - 1.0, 0.0) if kind == "one-sided" else g - 1.0
    mass = float(np.mean(np.abs(w)))
    if mass <= 0:
        return None
    slope = float(np.mean(g * w)) / mass
    if not (math.isfinite(slope) and slope > 0):
        return None
    return float(raw) / slope, slope
