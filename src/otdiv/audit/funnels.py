"""Pairs (P, Q) in any dimension whose W1 is known by construction: MinFunnel potentials.

The construction (after Korotin et al. 2022, "Kantorovich strikes back!"; written from the
mathematics below). Take K funnels (cones) u_k(z) = ||z - c_k|| + b_k and their minimum

    u(z) = min_k u_k(z),

which is 1-Lipschitz as a minimum of 1-Lipschitz functions. Draw x ~ P = N(0, I_d), let k
be the funnel attaining the minimum at x, and move x a distance s towards that funnel's
apex c_k:

    y = x + s (c_k - x) / ||c_k - x||,     Q = law of y.

Along that segment u_k falls at rate 1 and every other u_j at rate at most 1, so k still
attains the minimum at y and u(y) = u(x) - s = u(x) - ||x - y||. Hence the coupling
(x, y) costs E||x - y|| = E_P u - E_Q u, which is at most W1(P, Q) by Kantorovich–
Rubinstein duality and at least W1(P, Q) because it is a coupling: W1(P, Q) = E s, and u
is an optimal critic. With s drawn uniformly in [delta/2, 3 delta/2] independently of x,
**W1(P, Q) = delta**.

One condition: the step must not pass the apex (s <= ||x - c_k||). The apexes sit at
distance R = 8 + 1.5 delta from the origin, so that fails only when <x, c_k>/R > 8, which
has probability Phi(-8) < 7e-16 per funnel (any d). The stated W1 is exact to a relative
K * 7e-16 (``w1_error``): points within reach of their apex stop at it.

Paired samples (x_i, y_i = T(x_i)) are a check in themselves: their coupling is optimal
between the two empirical measures, so exact OT between them returns mean_i s_i.
"""

from __future__ import annotations

import math

import numpy as np

from otdiv._array import as_numpy64, as_points, check_int, check_positive, check_rng, check_seed
from otdiv._scaling import pow2_exponent
from otdiv.audit.models import check_sample_size

# the 28 (dimension, funnels) settings of the benchmark of Korotin et al. 2022
FUNNEL_DIMS = (2, 4, 8, 16, 32, 64, 128)
FUNNEL_COUNTS = (4, 16, 64, 256)
FUNNEL_SETTINGS = tuple((d, k) for d in FUNNEL_DIMS for k in FUNNEL_COUNTS)

_BLOCK = 2**21  # entries of the n × K distance block (16 MiB)
MAX_APEX_ENTRIES = 2**26  # d × K coordinates of the stored apexes (512 MiB in float64)
_TAIL = 7e-16  # Phi(-8), the chance that a point is within reach of one apex
DELTA_RANGE = (1e-6, 1e6)  # W1 = delta: steps resolved to ~1e-9, distances far from overflow
_HUGE = 1e150  # beyond this magnitude the distances are computed scaled (squares overflow)


def check_apexes(d: int, n_funnels: int, name: str = "n_funnels") -> None:
    """d · K at most ``MAX_APEX_ENTRIES`` (the apexes are stored); the ValueError names the
    caller's ``name`` for K."""
    if d * n_funnels > MAX_APEX_ENTRIES:
        raise ValueError(f"d * {name} must be at most 2**26 (the apexes are stored), got "
                         f"{d} * {n_funnels}; lower {name}")


class MinFunnel:
    """The potential u(z) = min_k ||z - c_k|| + b_k and the pair (P, Q) it transports.

    P = N(0, I_d); Q = the law of x moved s ~ U[delta/2, 3 delta/2] towards the apex of
    its funnel; W1(P, Q) = delta (``w1``), to within ``w1_error``. ``delta`` is in
    ``DELTA_RANGE`` = [1e-6, 1e6]: a smaller step would be lost in the rounding of the points
    of P it moves, a larger one put the apexes where Q is no longer P's neighbour.
    """

    def __init__(self, d: int, n_funnels: int, *, delta: float = 1.0, seed: int | None = 0):
        self.d = check_int(d, "d")
        self.n_funnels = check_int(n_funnels, "n_funnels")
        check_apexes(self.d, self.n_funnels)
        self.delta = check_positive(delta, "delta")
        if not DELTA_RANGE[0] <= self.delta <= DELTA_RANGE[1]:
            raise ValueError(f"delta must be in [{DELTA_RANGE[0]:g}, {DELTA_RANGE[1]:g}] (W1 = "
                             f"delta; steps resolved against points of size ~1), got "
                             f"{self.delta:g}")
        check_seed(seed, "seed")
        rng = np.random.default_rng(seed)
        directions = rng.standard_normal((self.n_funnels, self.d))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        radius = 8.0 + 1.5 * self.delta
        self.apexes = radius * directions
        # offsets of the order of the spread of ||x - c_k|| over P, so that the cells differ
        self.offsets = rng.uniform(0.0, 2.0, size=self.n_funnels)
        self.w1 = self.delta
        self.w1_error = self.n_funnels * _TAIL * 1.5 * self.delta

    def _cells(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(k, r, u): the funnel attaining the minimum at each z_i, the distance to its apex
        and u(z_i). The n × K distances are computed in blocks of at most
        max(``_BLOCK``, K) entries (one row at least), so that memory does not grow with n."""
        from scipy.spatial.distance import cdist

        n = len(z)
        k, r, u = np.empty(n, dtype=np.intp), np.empty(n), np.empty(n)
        rows = max(1, _BLOCK // self.n_funnels)
        big = float(np.abs(z).max(initial=0.0))
        # a power of two, so that the scaled distances round as the unscaled ones would
        scale = 2.0 ** min(pow2_exponent(big), 1023) if big > _HUGE else 1.0
        for start in range(0, n, rows):
            # ||z - c_k|| per pair, without the |z|^2 + |c|^2 - 2<z, c> cancellation
            dist = cdist(z[start:start + rows] / scale, self.apexes / scale) * scale
            shifted = dist + self.offsets
            kb = np.argmin(shifted, axis=1)
            at = np.arange(len(kb))
            k[start:start + rows], r[start:start + rows] = kb, dist[at, kb]
            u[start:start + rows] = shifted[at, kb]
        return k, r, u

    def _points(self, z: object, name: str) -> np.ndarray:
        """z as a finite float64 array of shape (n, d) (one point may be given as (d,))."""
        arr = as_numpy64(z, name)
        if arr.ndim == 1 and arr.shape[0] == self.d:
            arr = arr.reshape(1, self.d)
        arr = as_points(arr, name)
        if arr.shape[1] != self.d:
            raise ValueError(f"{name} must have shape (n, {self.d}) (d = {self.d}), got shape "
                             f"{tuple(arr.shape)}")
        return arr

    def potential(self, z: object) -> np.ndarray:
        """u(z) = min_k ||z - c_k|| + b_k for z of shape (n, d): an optimal critic."""
        return self._cells(self._points(z, "z"))[2]

    def gradient(self, z: object) -> np.ndarray:
        """∇u(z) = (z − c_k) / ||z − c_k||, k the funnel attaining the minimum at z: the unit
        direction away from that apex (the transport runs against it; 0 at an apex).
        Shape (n, d)."""
        z = self._points(z, "z")
        k, r, _ = self._cells(z)
        return (z - self.apexes[k]) / np.where(r > 0, r, 1.0)[:, None]

    def transport(self, x: object, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(y, s): each x_i moved s_i towards the apex of its funnel, and the steps s_i."""
        x = self._points(x, "x")
        check_rng(rng)
        k, r, _ = self._cells(x)
        s = np.minimum(self.delta * rng.uniform(0.5, 1.5, size=len(x)), r)
        y = x + (s / np.where(r > 0, r, 1.0))[:, None] * (self.apexes[k] - x)
        return y, s

    def sample_real(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points of P = N(0, I_d)."""
        check_sample_size(n, self.d)
        return check_rng(rng).standard_normal((n, self.d))

    def sample_fake(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points of Q (moved from fresh points of P)."""
        return self.transport(self.sample_real(n, rng), rng)[0]

    def __repr__(self) -> str:
        return f"MinFunnel(d={self.d}, n_funnels={self.n_funnels}, delta={self.delta})"


def mean_step_error(n: int, delta: float = 1.0) -> float:
    """Standard deviation of the mean of n steps s ~ U[delta/2, 3 delta/2]: delta/sqrt(12 n)."""
    return delta / math.sqrt(12.0 * n)
