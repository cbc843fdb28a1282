"""The power t^q of a nonnegative t, written once for every numba kernel.

Costs are powers of distances: ‖x − y‖^p = (‖x − y‖²)^(p/2) from a squared norm, |u|^p
from a difference on the line. ``power(t, q)`` is both, with exact branches for the
common exponents (q = 1: t itself; q = 1/2: a correctly rounded square root; q = 2: one
product) and libm's ``pow`` otherwise. Callers keep t near 1 (the metrics rescale points by
a power of two first), which is what keeps t^q from overflowing or underflowing.

numba drops a caller's fastmath flags inside an inlined callee compiled without them (the
soft-min sweep ran about 2x slower, 54 vs 103 ms), so the same function is compiled twice:
``power`` for exact kernels and ``power_fast`` for fastmath ones. torch's counterpart, with a
zero gradient at t = 0, is ``otdiv.kernels.cost_torch.power``.
"""

from __future__ import annotations

import math

from otdiv.kernels._numba import nb


def _power(t, q):
    if q == 1.0:
        return t
    if q == 0.5:
        return math.sqrt(t)
    if q == 2.0:
        return t * t
    return t**q


power = nb.njit(inline="always")(_power)
power_fast = nb.njit(inline="always", fastmath=True)(_power)
