"""The 1-Lipschitz envelope min_j (v_j + ||z - p_j||) in units of a power of two: its pieces.

:mod:`otdiv.audit.envelope` (the bound between two samples), :mod:`otdiv.audit.population`
(the bound on the population W1) and :mod:`otdiv.audit.anchors` (the population envelope's
anchor points) share them:

* the points p_j and z and the values v_j as float64 numpy (:func:`points64`,
  :func:`values64`), checked by the library's rules (``otdiv._array``);
* the unit: points are divided by 2^e, e = ``otdiv._scaling.pow2_exponent`` of their
  coordinates (exact), so that every coordinate lies in (-1, 1), no distance overflows or
  underflows, and two points are at most :func:`unit_diameter` apart;
* steep values: values s v_j beyond ``STEEP`` times that diameter would swamp the distances
  in rounding (or overflow), so they are taken relative to their least and capped at the
  diameter (:func:`relative_values`) -- the same envelope up to a constant at every point
  within the cap;
* the results, brought back to the data's units by 2^e, must be finite
  (:func:`check_finite_results`).
"""

from __future__ import annotations

import math

import numpy as np

from otdiv._array import as_numpy64, as_points, check_scores
from otdiv._scaling import pow2_exponent

__all__ = ["CHUNK_BYTES", "STEEP", "check_finite_results", "points64", "relative_values",
           "unit_diameter", "values64"]

STEEP = 2.0 ** 10  # values s v beyond STEEP x the largest distance go relative (below)
CHUNK_BYTES = 64 * 2**20  # the envelopes take their distances one block of this size at a time


def points64(z: object, name: str, dim: int | None = None, minimum: int = 1) -> np.ndarray:
    """A finite, non-empty point cloud as float64 numpy, shape (n, d) ((n,) is (n, 1));
    arrays or tensors (detached, of any real dtype): ``as_points`` of
    ``otdiv._array.as_numpy64``, of dimension ``dim``
    (when given) and with at least ``minimum`` points (2 where a standard error is taken);
    the ValueErrors name ``name``."""
    arr = as_points(as_numpy64(z, name), name)
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} must have dimension {dim}, got {arr.shape[1]}")
    if len(arr) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} points (a standard error needs "
                         f"two), got {len(arr)}")
    return arr


def values64(v: object, n: int, name: str, *, what: str = "value",
             per: str = "point") -> np.ndarray:
    """n finite values (one ``what`` per ``per``) as float64 numpy, shape (n,) from (n,) or
    (n, 1); arrays or tensors (detached, of any real dtype). Complex values are a TypeError,
    NaN or inf and any other shape (such as (1, n)) a ValueError, each naming ``name``
    (``otdiv._array.as_numpy64`` and ``check_scores``, the one score rule)."""
    return check_scores(as_numpy64(v, name), n, name, what=what, per=per)


def unit_diameter(dim: int) -> float:
    """An upper bound on the distance between two points of coordinates in (-1, 1), in
    dimension ``dim`` (2 sqrt(dim), doubled as a margin)."""
    return 4.0 * math.sqrt(dim)


def relative_values(f: np.ndarray, s: float, e: int, cap: float) -> np.ndarray:
    """min(s (f - min f) / 2^e, cap), computed without overflow (f finite, any magnitude;
    s > 0 finite). As values of min_j (v_j + ||z - p_j||) they give min_j (s f_j / 2^e +
    ||z - p_j||) less its constant s min f / 2^e at every z within ``cap`` of the p_j of
    least f: a term capped is at least that p_j's."""
    ef = pow2_exponent(f)
    r = np.ldexp(f, -ef)  # |r| < 1, exact
    with np.errstate(over="ignore"):
        return np.minimum(np.ldexp(s * (r - r.min()), ef - e), cap)


def check_finite_results(values: dict[str, float | None], what: str) -> None:
    """ValueError naming ``what`` (the arguments) and the results that overflowed the float
    range when one of ``values`` (results by name; None skipped) is not finite."""
    bad = [k for k, v in values.items() if v is not None and not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what}: {', '.join(bad)} lies beyond the float64 range (the "
                         "points reach its limit); rescale the data")
