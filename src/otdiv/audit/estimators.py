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
import numbers

import numpy as np

from otdiv._array import (
    _as_float,
    as_float_array,
    as_numpy64,
    as_points,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_rng,
    check_same_dim,
    check_scores,
    is_tensor,
    to_numpy64,
)
from otdiv._scaling import mean_std, pow2_exponent
from otdiv.audit.models import check_budget


def _check_real(value: object, name: str) -> float:
    """A finite real number of either sign (a raw estimate E_P f − E_Q f), as a float: a
    Python or numpy number, a 0-d numpy array or a one-element tensor; a bool, str or
    complex is a TypeError, NaN, ±inf or an integer beyond the float range a ValueError."""
    if (is_tensor(value) and value.numel() == 1) or \
            (isinstance(value, np.ndarray) and value.ndim == 0):
        value = value.item()  # a bool or complex stays one, and is refused below
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number, got {type(value).__name__}")
    number = _as_float(value, name, "a finite number")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number!r}")
    return number


def _grad_norms(grad_norms: object) -> np.ndarray:
    """Gradient norms as a flat float64 numpy array (a tensor of any float dtype, with or
    without a graph, is detached and copied); NaN and inf are kept (the callers return None
    for them), an empty, complex, non-numeric or negative input is an error."""
    name = "grad_norms"
    g = np.reshape(as_numpy64(grad_norms, name, finite=False), -1)
    if len(g) == 0:
        raise ValueError(f"{name} is empty; it needs at least one gradient norm")
    if (g < 0).any():
        raise ValueError(f"{name} has negative entries (min {g.min():.3g}); norms are >= 0")
    return g


def _check_index(index: object, n: int, name: str, of: str) -> np.ndarray:
    """A 1-D array of integer indices into the n points of ``of``, as int64."""
    if is_tensor(index):
        index = index.detach().to("cpu").numpy()
    try:
        arr = np.asarray(index)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of integer indices: {exc}") from None
    if arr.size == 0 and arr.dtype.kind in "iuf":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integer indices into {of}, got dtype "
                        f"{arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of indices, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name} holds indices from {arr.min()} to {arr.max()}; indices into "
                         f"{of} must lie in 0 .. {n - 1}")
    return arr.astype(np.int64, copy=False)


def _check_size(k: int, count: int, dim: int) -> None:
    """ValueError naming k when k · count points in d dimensions, about 16 k count (d + 1)
    bytes at the peak (the points, a copy, the draws), exceed the memory budget."""
    check_budget(16 * k * count * (dim + 1), "k", k, f"for the k x {count} points in d={dim}")


def _pair(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """Two point clouds (n, d), (m, d) as float64 numpy arrays: non-empty, finite, one d."""
    x, y = as_points(x, "x"), as_points(y, "y")
    check_same_dim(x, y)
    return to_numpy64(x), to_numpy64(y)


def penalty_corrected(raw: float, lambda_gp: float) -> float:
    """W1 ≈ λ (√(1 + 2 raw / λ) − 1): the raw estimate of a GP/LP critic, slope removed.

    The inverse of raw = W1 (1 + W1 / (2λ)), the raw estimate of the best critic s·u of a
    gradient penalty of weight λ when the optimal potential u has unit slope on the
    penalty's interpolates (module docstring). Computed as 2 raw / (√(1 + 2 raw / λ) + 1),
    or, where 2 raw / λ overflows, as the equal 2 raw √λ / (√λ + √(λ + 2 raw)) arranged so
    that nothing overflows: no cancellation, and a finite answer to a few ulp for every
    finite raw > 0 and λ > 0 (1e300 with λ = 1e-10 gives √(2 raw λ) ≈ 1.4e145, not 0 or
    NaN). Always between raw / (1 + raw / (2λ)) and raw, for raw ≥ 0.

    A raw estimate ≤ 0 is returned unchanged: the model has no slope to remove (its W1 is
    ≥ 0), and for raw < −λ/2 the formula would take the square root of a negative number.
    So is any raw estimate when λ = 0 (no penalty). ``raw`` must be a finite real number
    (not a bool or str) and ``lambda_gp`` a finite number ≥ 0; else a TypeError or
    ValueError naming it.
    """
    raw = _check_real(raw, "raw")
    lam = check_nonnegative(lambda_gp, "lambda_gp")
    if raw <= 0 or lam == 0:
        return raw
    q = 2.0 * raw / lam  # inf when 2 raw or 2 raw / λ overflows
    if q < math.inf:  # λ(√(1 + q) − 1) = 2 raw / (√(1 + q) + 1): no cancellation for large λ
        return 2.0 * raw / (math.sqrt(1.0 + q) + 1.0)
    # else the equal a c² / (a + b), a = √λ, c = √(2 raw), b = √(λ + 2 raw) = hypot(a, c):
    # every factor finite, and min(a, c) · (max(a, c) / (a + b)) in the normal range, as
    # max(a, c) / (a + b) lies in [1/(1 + √2), 1]
    a = math.sqrt(lam)
    c = math.sqrt(2.0) * math.sqrt(raw)
    b = math.hypot(a, c)
    return min(c * (min(a, c) * (max(a, c) / (a + b))), raw)


def interpolates(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                 k: int = 1) -> np.ndarray:
    """k n points t x_i + (1 − t) y_σ(i): σ a random pairing, t ~ U[0, 1] — the points
    where the gradient penalty samples ‖∇f‖ (one fresh pairing and t per copy).

    ``x`` (n, d) and ``y`` (m, d): finite, non-empty, one d ((n,) is n points in 1-D; numpy
    arrays or tensors, the result is float64 numpy); ``rng`` a numpy Generator; ``k`` ≥ 1,
    with the k n points (about 16 k n (d + 1) bytes) within ``MEMORY_BUDGET``.
    """
    x, y = _pair(x, y)
    rng = check_rng(rng)
    k = check_int(k, "k")
    _check_size(k, len(x), x.shape[1])
    out = []
    for _ in range(k):
        j = rng.integers(0, len(y), size=len(x))
        t = rng.random((len(x), 1))
        out.append(t * x + (1.0 - t) * y[j])
    return np.concatenate(out)


def slope_corrected(raw: float, grad_norms: np.ndarray
                    ) -> tuple[float, float, float] | None:
    """(raw / G, G, standard error of G): G = mean ‖∇f(x̂)‖ over the penalty's interpolates.

    ``grad_norms`` are ‖∇f‖ ≥ 0 at points of :func:`interpolates` (any shape, numpy or a
    torch tensor of any float dtype, detached); the standard error is std / √N, inf for a
    single norm (no spread to estimate it from). For f = s·u with ‖∇u‖ = 1 there, G = s and
    raw / G = E_P u − E_Q u exactly. None when a norm is NaN or inf (a critic whose gradient
    torch cannot compute), when G = 0 (a constant critic: no slope to divide by) or when
    raw / G lies beyond the float range. The mean is taken without overflow (norms near
    1e308 give their mean, not inf). ``raw`` must be a finite real number; empty,
    negative or non-numeric ``grad_norms`` are a ValueError or TypeError.
    """
    raw = _check_real(raw, "raw")
    g = _grad_norms(grad_norms)
    if not np.isfinite(g).all():
        return None
    mean, std = mean_std(g, "grad_norms")
    if not mean > 0:
        return None
    estimate = raw / mean  # inf when it overflows
    if not math.isfinite(estimate):
        return None
    se = std / math.sqrt(len(g)) if len(g) > 1 else float("inf")
    return estimate, mean, se


def ctransform_pairs(x: np.ndarray, y: np.ndarray, fx: np.ndarray, fy: np.ndarray,
                     slope: float) -> tuple[np.ndarray, np.ndarray]:
    """The critic's own transport: each x_i paired with argmin_j f(y_j)/G + ‖x_i − y_j‖ and
    each y_j with argmax_i f(x_i)/G − ‖x_i − y_j‖ (the minimisers of the c-transforms of
    f/G). Returns (rows, cols), n + m pairs (x_rows[k], y_cols[k]); O(n m d), no OT.

    For an optimal potential u (G = 1) these are pairs with u(x_i) − u(y_j) ≈ ‖x_i − y_j‖:
    points on one transport ray, as far as the samples allow.

    ``x`` (n, d), ``y`` (m, d): finite, non-empty, one d; ``fx``, ``fy``: one finite critic
    value per point, shape (n,) or (n, 1) (numpy or tensors); ``slope`` = G a finite number
    > 0. Where f/G overflows (G < 1) the same pairs come from f + G ‖x − y‖, G times the
    objective. Points beyond 1e150 are taken in units of a power of two (the same pairs);
    a c-transform whose optimum still overflows float64 is a ValueError.
    """
    from scipy.spatial.distance import cdist

    x, y = _pair(x, y)
    fx, fy = (to_numpy64(check_scores(as_float_array(f, name), len(p), name,
                                      what="critic value", per=f"point of {of}"))
              for f, name, p, of in ((fx, "fx", x, "x"), (fy, "fy", y, "y")))
    slope = check_positive(slope, "slope")
    with np.errstate(over="ignore"):
        gx = fx / slope
        gy = fy / slope
    scale = None
    if not (np.isfinite(gx).all() and np.isfinite(gy).all()):
        # only for slope < 1: the argmins of slope (f / slope + ‖x − y‖) = f + slope ‖x − y‖
        gx, gy, scale = fx, fy, slope
    big = max(float(np.abs(x).max()), float(np.abs(y).max()))
    if big > 1e150:  # the distances' squares overflow: points and values in units of 2^e
        unit = 2.0 ** min(pow2_exponent(big), 1023)  # exact, and the same argmins
        xs, ys, gx, gy = x / unit, y / unit, gx / unit, gy / unit
    else:
        xs, ys = x, y
    rows_x = max(1, (64 * 2**20) // (8 * len(y)))
    partner_of_x = np.empty(len(x), dtype=np.int64)
    partner_of_y_val = np.full(len(y), -np.inf)
    partner_of_y = np.zeros(len(y), dtype=np.int64)
    for start in range(0, len(x), rows_x):
        # an entry that overflows to +inf (−inf below) exceeds (falls below) every finite one,
        # so argmin (argmax) is right unless its optimum overflowed too: checked below
        with np.errstate(over="ignore"):
            dist = cdist(xs[start:start + rows_x], ys)  # (b, m)
            if scale is not None:
                dist = dist * scale
            h = gy[None, :] + dist
            best_x = np.argmin(h, axis=1)
            if not np.isfinite(h[np.arange(len(h)), best_x]).all():
                raise ValueError(_overflow_message(x, y, fx, fy, slope))
            partner_of_x[start:start + rows_x] = best_x
            val = gx[start:start + rows_x, None] - dist
        best = np.argmax(val, axis=0)
        better = val[best, np.arange(len(y))] > partner_of_y_val
        partner_of_y_val[better] = val[best, np.arange(len(y))][better]
        partner_of_y[better] = start + best[better]
    if not np.isfinite(partner_of_y_val).all():
        raise ValueError(_overflow_message(x, y, fx, fy, slope))
    rows = np.concatenate([np.arange(len(x)), partner_of_y])
    cols = np.concatenate([partner_of_x, np.arange(len(y))])
    return rows, cols


def _overflow_message(x, y, fx, fy, slope) -> str:
    top = max(np.abs(x).max(), np.abs(y).max())
    f = max(np.abs(fx).max(), np.abs(fy).max())
    return (f"the c-transform of fx, fy / slope overflows float64 (points x, y up to {top:.3g} "
            f"in absolute value, scores fx, fy up to {f:.3g}, slope {slope:.3g}); rescale "
            "the points and the scores")


def segment_points(x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   rng: np.random.Generator, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(points, weights): k stratified points y_c + t (x_r − y_c) on each segment, each
    weighted by its segment's length / k (so a weighted mean is a mean over arc length).

    ``x`` (n, d), ``y`` (m, d): finite, non-empty, one d; ``rows``, ``cols``: 1-D integer
    indices into x and y of one length (may be empty); ``rng`` a numpy Generator; ``k`` ≥ 1,
    with the k · len(rows) points (about 16 k len(rows) (d + 1) bytes) within
    ``MEMORY_BUDGET``. A segment longer than float64 can hold (points ~1e308 apart) is a
    ValueError.
    """
    x, y = _pair(x, y)
    rows = _check_index(rows, len(x), "rows", "x")
    cols = _check_index(cols, len(y), "cols", "y")
    if len(rows) != len(cols):
        raise ValueError(f"rows and cols must have one length (one pair each), got "
                         f"{len(rows)} and {len(cols)}")
    rng = check_rng(rng)
    k = check_int(k, "k")
    _check_size(k, len(rows), x.shape[1])
    with np.errstate(over="ignore"):
        seg = x[rows] - y[cols]
        big = float(np.abs(seg).max(initial=0.0))
        # beyond 1e150 the squares overflow: the norm in units of a power of two (exact)
        unit = 2.0 ** min(pow2_exponent(big), 1023) if math.isfinite(big) and big > 1e150 else 1.0
        length = np.linalg.norm(seg / unit, axis=1) * unit
    if not np.isfinite(length).all():
        i = int(np.argmin(np.isfinite(length)))
        top = max(np.abs(x).max(), np.abs(y).max())
        raise ValueError(f"the length of the segment from y[{cols[i]}] to x[{rows[i]}] "
                         f"overflows float64 (points x, y up to {top:.3g} in absolute "
                         "value); rescale the points")
    t = (np.arange(k)[None, :] + rng.random((len(rows), k))) / k
    pts = (y[cols][:, None, :] + t[..., None] * seg[:, None, :]).reshape(-1, x.shape[1])
    return pts, np.repeat(length / k, k)


PENALTY_KINDS = ("one-sided", "two-sided")


def flow_corrected(raw: float, grad_norms: np.ndarray,
                   kind: str = "one-sided") -> tuple[float, float] | None:
    """(raw / G_V, G_V), G_V = E_μ[‖∇f‖ w] / E_μ[abs(w)], w = (‖∇f‖ − 1)_+ ("one-sided", LP)
    or ‖∇f‖ − 1 ("two-sided", GP): the slope weighted by the congested flow (module
    docstring). ``grad_norms``: ‖∇f‖ ≥ 0 at points of :func:`interpolates` (any shape, numpy
    or a torch tensor of any float dtype, detached). None when a norm is NaN or inf (a
    critic whose gradient torch cannot compute), when E_μ[abs(w)] = 0 (no interpolate
    carries the flow), when G_V is not positive and finite or when raw / G_V lies beyond
    the float range. The means are taken without overflow. ``raw`` must be a finite real
    number; empty, negative or non-numeric ``grad_norms`` are a ValueError or TypeError."""
    kind = check_choice(kind, "kind", PENALTY_KINDS)
    raw = _check_real(raw, "raw")
    g = _grad_norms(grad_norms)
    if not np.isfinite(g).all():
        return None
    w = np.maximum(g - 1.0, 0.0) if kind == "one-sided" else g - 1.0
    with np.errstate(over="ignore"):
        mass = float(np.mean(np.abs(w)))
        flux = float(np.mean(g * w))
    if math.isfinite(mass) and math.isfinite(flux):
        if mass <= 0:
            return None
        slope = flux / mass
    else:  # norms near the float range: G_V = 2^e E[g' w'] / E[abs(w')], g' = g / 2^e
        e = pow2_exponent(g)
        gs, ws = np.ldexp(g, -e), np.ldexp(w, -e)
        ratio = float(np.mean(gs * ws)) / float(np.mean(np.abs(ws)))  # |ratio| ≤ max g'
        slope = math.ldexp(min(ratio, float(gs.max())), e)
    if not (math.isfinite(slope) and slope > 0):
        return None
    estimate = raw / slope  # inf when it overflows
    if not math.isfinite(estimate):
        return None
    return estimate, slope
