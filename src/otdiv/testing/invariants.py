"""Invariant checks for users' test suites: metric and divergence axioms (Lipschitz bounds:
``otdiv.testing.lipschitz``, re-exported here).

Each check evaluates a user's function on the samples it is given and raises an
``AssertionError`` naming the axiom, the inputs and the values when the axiom fails. None of
them needs hypothesis: pass explicit samples, or draw them with :mod:`otdiv.testing.strategies`.

Numbers are compared with a tolerance ``atol + rtol * scale`` because a correct implementation
in floating point breaks an exact axiom by rounding; a real bug breaks it by far more.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from otdiv._array import check_callable, check_flag
from otdiv.testing._report import (
    _check_tolerances,
    _fail,
    _labels,
    _real,
    _scalar,
    _tolerance,
)
from otdiv.testing.lipschitz import assert_kantorovich_bound, assert_lipschitz

__all__ = [
    "assert_divergence",
    "assert_kantorovich_bound",
    "assert_lipschitz",
    "assert_metric",
]

# ---------------------------------------------------------------------------- metric


def assert_metric(
    dist: Callable[[Any, Any], Any],
    *samples: Any,
    atol: float = 1e-9,
    rtol: float = 1e-7,
) -> None:
    """Check d(x, y) >= 0, d(x, x) = 0, d(x, y) = d(y, x), d(x, z) <= d(x, y) + d(y, z).

    .. math:: d(x, y) \\ge 0,\\quad d(x, x) = 0,\\quad d(x, y) = d(y, x),\\quad
              d(x, z) \\le d(x, y) + d(y, z)

    Every sample is checked for identity, every pair for nonnegativity and symmetry, every
    ordered triple for the triangle inequality. Values may be floats or 0-d tensors; ``+inf``
    is allowed (a distance between measures of different mass, say) but NaN is a failure.
    ``d(x, y) = 0`` for ``x != y`` is *not* a failure: equal measures have many
    representations (duplicate points, permuted or split weights).

    Args:
        dist: ``dist(u, v)`` for two samples.
        samples: two or more points of the space (anything ``dist`` accepts).
        atol, rtol: slack ``atol + rtol * scale``, where scale is the largest value compared.

    Raises:
        AssertionError: naming the axiom, the samples and the values.

    Example:
        >>> import numpy as np
        >>> from otdiv import wasserstein
        >>> from otdiv.testing import assert_metric
        >>> x, y, z = np.array([0.0, 1.0]), np.array([3.0]), np.array([-1.0, 5.0])
        >>> assert_metric(wasserstein, x, y, z)
    """
    check = "assert_metric"
    if len(samples) < 2:
        raise ValueError(f"{check} needs at least two samples, got {len(samples)}")
    check_callable(dist, "dist")
    atol, rtol = _check_tolerances(atol, rtol)
    names = _labels(len(samples))
    values: dict[tuple[int, int], float] = {}

    def d(i: int, j: int) -> float:
        if (i, j) not in values:
            inputs = {names[i]: samples[i]} if i == j else {names[i]: samples[i],
                                                             names[j]: samples[j]}
            values[i, j] = _scalar(dist(samples[i], samples[j]),
                                   f"d({names[i]}, {names[j]})", check, inputs)
        return values[i, j]

    for i, name in enumerate(names):
        v = d(i, i)
        if abs(v) > atol:
            _fail(check, "identity d(x, x) = 0",
                  f"d({name}, {name}) = {v!r}, expected 0 (atol={atol:g})",
                  {name: samples[i]})
    for i, j in itertools.combinations(range(len(samples)), 2):
        ni, nj = names[i], names[j]
        vij, vji = d(i, j), d(j, i)
        pair = {ni: samples[i], nj: samples[j]}
        for (u, w), v in (((ni, nj), vij), ((nj, ni), vji)):
            if v < -atol:
                _fail(check, "nonnegativity d(x, y) >= 0", f"d({u}, {w}) = {v!r} < 0", pair)
        if vij != vji and not abs(vij - vji) <= _tolerance(max(abs(vij), abs(vji)), atol, rtol):
            _fail(check, "symmetry d(x, y) = d(y, x)",
                  f"d({ni}, {nj}) = {vij!r} but d({nj}, {ni}) = {vji!r} "
                  f"(difference {abs(vij - vji):.3g})", pair)
    for i, j, k in itertools.permutations(range(len(samples)), 3):
        direct, via = d(i, k), d(i, j) + d(j, k)
        if direct > via + _tolerance(via, atol, rtol):
            ni, nj, nk = names[i], names[j], names[k]
            _fail(check, "triangle inequality d(x, z) <= d(x, y) + d(y, z)",
                  f"d({ni}, {nk}) = {direct!r} > d({ni}, {nj}) + d({nj}, {nk}) = "
                  f"{d(i, j)!r} + {d(j, k)!r} = {via!r} (excess {direct - via:.3g})",
                  {ni: samples[i], nj: samples[j], nk: samples[k]})


# ---------------------------------------------------------------------------- divergence


def assert_divergence(
    div: Callable[[Any, Any], Any],
    *samples: Any,
    symmetric: bool = False,
    upper: float | None = None,
    atol: float = 1e-9,
    rtol: float = 1e-7,
) -> None:
    """Check D(p || q) >= 0 and D(p || p) = 0 on the given samples (histograms, say).

    .. math:: D(p \\,\\|\\, q) \\ge 0,\\qquad D(p \\,\\|\\, p) = 0

    and optionally ``D(p || q) = D(q || p)`` (``symmetric=True``, e.g. JSD) and
    ``D(p || q) <= upper`` (e.g. ``upper=log(2)`` for JSD in nats). ``+inf`` is allowed (KL
    where q = 0 < p) unless ``upper`` forbids it; NaN is always a failure.

    Args:
        div: ``div(p, q)``.
        samples: one or more samples; every ordered pair is checked.
        symmetric: also check symmetry.
        upper: also check this upper bound.
        atol, rtol: slack ``atol + rtol * scale``.

    Raises:
        AssertionError: naming the axiom, the samples and the values.

    Example:
        >>> import numpy as np
        >>> from scipy.stats import entropy
        >>> from otdiv.testing import assert_divergence
        >>> assert_divergence(entropy, np.array([0.5, 0.5]), np.array([0.9, 0.1]))
    """
    check = "assert_divergence"
    if not samples:
        raise ValueError(f"{check} needs at least one sample")
    check_callable(div, "div")
    symmetric = check_flag(symmetric, "symmetric")
    if upper is not None:
        upper = _real(upper, "upper")
        if math.isnan(upper):
            raise ValueError("upper must be a number or +inf, not nan")
    atol, rtol = _check_tolerances(atol, rtol)
    names = ["p", "q"] if len(samples) == 2 else _labels(len(samples))

    def D(i: int, j: int) -> float:
        inputs = {names[i]: samples[i]} if i == j else {names[i]: samples[i],
                                                         names[j]: samples[j]}
        return _scalar(div(samples[i], samples[j]), f"D({names[i]} || {names[j]})",
                       check, inputs)

    for i, name in enumerate(names):
        v = D(i, i)
        if not abs(v) <= atol:
            _fail(check, "identity D(p || p) = 0",
                  f"D({name} || {name}) = {v!r}, expected 0 (atol={atol:g})",
                  {name: samples[i]})
    for i, j in itertools.permutations(range(len(samples)), 2):
        ni, nj = names[i], names[j]
        pair = {ni: samples[i], nj: samples[j]}
        v = D(i, j)
        if v < -atol:
            _fail(check, "nonnegativity D(p || q) >= 0", f"D({ni} || {nj}) = {v!r} < 0", pair)
        if upper is not None and v > upper + _tolerance(upper, atol, rtol):
            _fail(check, f"upper bound D(p || q) <= {upper!r}",
                  f"D({ni} || {nj}) = {v!r} > {upper!r}", pair)
        if symmetric and i < j:
            w = D(j, i)
            if v != w and not abs(v - w) <= _tolerance(max(abs(v), abs(w)), atol, rtol):
                _fail(check, "symmetry D(p || q) = D(q || p)",
                      f"D({ni} || {nj}) = {v!r} but D({nj} || {ni}) = {w!r} "
                      f"(difference {abs(v - w):.3g})", pair)
