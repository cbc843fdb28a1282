"""Toy pairs (P, Q) whose W1(P, Q) is known, for auditing critics.

W1(P, Q) = min over couplings E||X - Y||_2 = sup over 1-Lipschitz f of E_P f - E_Q f.

* ``"8gaussians"``, ``"25gaussians"``, ``"swissroll"`` — the toy sets of the WGAN-GP paper
  (Gulrajani et al. 2017, ``gan_toy.py``), with the same scales and noise; Q is P convolved
  with N(0, sigma^2 I), sigma = 1, as that code's fixed-generator mode (real data plus unit
  Gaussian noise). W1 has no closed form: its truth is exact W1 between large held-out
  samples (:func:`reference_w1`).
* ``"translate"`` — P = N(0, I_d), Q = P + t: W1 = ||t|| (any P; a translation moves all mass
  by t, and f(x) = <x, t>/||t|| attains it).
* ``"scale"`` — P = N(0, I_d), Q = N(0, s^2 I_d): W1 = |s - 1| E||Z||, Z ~ N(0, I_d) (the map
  x -> s x is the gradient of a convex function, hence optimal, and f(x) = ||x|| attains it).
* ``"funnels"`` — a MinFunnel pair (:mod:`otdiv.audit.funnels`): P = N(0, I_d), Q moved
  along the rays of u = min_k ||x - c_k|| + b_k, K = ``funnels`` cones: W1 = 1 by
  construction, in any dimension.
* ``"lines"`` — the parallel lines of the WGAN paper (Arjovsky et al. 2017, example 1):
  P = (0, U), Q = (theta, U), U ~ Uniform[0, 1]: W1 = |theta| while JSD = log 2 for theta != 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from otdiv._array import check_choice, check_int, check_positive, check_rng, check_seed
from otdiv.audit.models import check_sample_size

Sampler = Callable[[int, np.random.Generator], np.ndarray]

TOYS = ("8gaussians", "25gaussians", "swissroll", "translate", "scale", "lines", "funnels")
PAPER_TOYS = ("8gaussians", "25gaussians", "swissroll")
REFERENCE_SEED = 20261205  # the reference draws of the paper toys (``otdiv benchmark-critics``)


@dataclass(frozen=True)
class ToyProblem:
    """A pair of distributions P ("real") and Q ("fake") with what is known of W1(P, Q).

    ``w1`` is the closed-form W1(P, Q) when there is one, else None (then use
    :func:`reference_w1`). Samplers take ``(n, rng)`` and return float64 arrays of shape (n, d).
    """

    name: str
    dim: int
    sample_real: Sampler = field(repr=False)
    sample_fake: Sampler = field(repr=False)
    w1: float | None
    params: dict = field(default_factory=dict)
    plot_range: float = 3.0  # half-width of the square used to draw level sets

    def sample(self, n: int, seed: int | np.random.Generator | None = None):
        """Independent samples (real, fake), each of shape (n, d)."""
        n = check_int(n, "n")
        check_sample_size(n, self.dim)
        if not isinstance(seed, np.random.Generator):
            seed = check_seed(seed)
        rng = np.random.default_rng(seed)
        return self.sample_real(n, rng), self.sample_fake(n, rng)


class checked:  # a function to its callers; a class so that it pickles
    """``sampler`` with its arguments checked: n a count within the memory budget
    (:func:`~otdiv.audit.models.check_sample_size`), rng a ``numpy.random.Generator``."""

    def __init__(self, sampler: Sampler, d: int) -> None:
        self.sampler, self.d = sampler, d
        self.__doc__ = sampler.__doc__

    def __call__(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.sampler(check_sample_size(n, self.d), check_rng(rng))


# ------------------------------------------------------------------ the WGAN-GP toy sets


_RING = 2.0 * np.stack([np.cos(np.arange(8) * (np.pi / 4)), np.sin(np.arange(8) * (np.pi / 4))],
                       axis=1)  # gan_toy.py: 2 * (unit circle, every 45 degrees)
_GRID = 2.0 * (np.arange(5) - 2.0)  # gan_toy.py: each coordinate of the 25 centres, 2 * {-2..2}
# name: (noise std, divisor) of gan_toy.py, before the division
_MIXTURE_NOISE = {"8gaussians": (0.02, 1.414), "25gaussians": (0.05, 2.828)}


def paper_mixture(name: str) -> tuple[np.ndarray, float]:
    """(centres, s) of a Gaussian-mixture toy: P = uniform over the centres + N(0, s^2 I)."""
    check_choice(name, "name", tuple(_MIXTURE_NOISE))
    std, divisor = _MIXTURE_NOISE[name]
    raw = _RING if name == "8gaussians" else \
        np.stack(np.meshgrid(_GRID, _GRID), axis=-1).reshape(-1, 2)
    return raw / divisor, std / divisor


def _eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    std, divisor = _MIXTURE_NOISE["8gaussians"]
    centres = _RING[rng.integers(0, 8, size=n)]
    return (centres + std * rng.standard_normal((n, 2))) / divisor


def _twenty_five_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    std, divisor = _MIXTURE_NOISE["25gaussians"]
    centres = _GRID[rng.integers(0, 5, size=(n, 2))]
    return (centres + std * rng.standard_normal((n, 2))) / divisor


def _swiss_roll(n: int, rng: np.random.Generator) -> np.ndarray:
    # sklearn.datasets.make_swiss_roll(noise=0.25), columns (x, z), then / 7.5 as gan_toy.py
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    return (pts + 0.25 * rng.standard_normal((n, 2))) / 7.5


_PAPER_SAMPLERS: dict[str, Sampler] = {
    "8gaussians": _eight_gaussians,
    "25gaussians": _twenty_five_gaussians,
    "swissroll": _swiss_roll,
}


def _convolved(base: Sampler, sigma: float) -> Sampler:
    def sample(n: int, rng: np.random.Generator) -> np.ndarray:
        x = base(n, rng)
        return x + sigma * rng.standard_normal(x.shape)

    return sample


def mean_gaussian_norm(d: int) -> float:
    """E||Z||_2 for Z ~ N(0, I_d) = sqrt(2) Gamma((d + 1)/2) / Gamma(d/2)."""
    d = check_int(d, "d")
    return math.sqrt(2.0) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


# ------------------------------------------------------------------------ constructor


TOY_PARAM_MAX = 1e6  # shift, scale, sigma and |theta|: samples stay far inside float32


def _at_most_max(value: float, name: str) -> float:
    if value > TOY_PARAM_MAX:
        raise ValueError(f"{name} must be at most {TOY_PARAM_MAX:g} (the critics train in "
                         f"float32), got {value:g}")
    return value


def make_toy(
    name: str,
    *,
    d: int = 2,
    shift: float = 1.0,
    scale: float = 1.5,
    theta: float = 0.5,
    sigma: float = 1.0,
    funnels: int = 16,
    seed: int | None = 0,
) -> ToyProblem:
    """A toy pair (P, Q) by name; ``W1(P, Q) = sup_{Lip(f) <= 1} E_P f - E_Q f``.

    name: one of ``TOYS``. ``d`` is the dimension of ``"translate"``, ``"scale"`` and
    ``"funnels"`` (the paper toys and ``"lines"`` are 2-D whatever ``d``, which is checked all
    the same, so that a grid may fix it across toys); ``shift`` = ||t|| for ``"translate"`` (t along
    (1, ..., 1)/sqrt(d)); ``scale`` = s for ``"scale"``; ``theta`` for ``"lines"``; ``sigma``
    the noise of Q for the paper toys; ``funnels`` the number of cones of ``"funnels"``
    and ``seed`` the draw of their apexes.
    """
    check_choice(name, "name", TOYS)
    d = check_int(d, "d")
    if name in PAPER_TOYS:
        sigma = _at_most_max(check_positive(sigma, "sigma"), "sigma")
        base = _PAPER_SAMPLERS[name]
        return ToyProblem(name, 2, checked(base, 2), checked(_convolved(base, sigma), 2), None,
                          {"sigma": sigma})
    if name == "lines":
        if isinstance(theta, bool) or not isinstance(theta, numbers.Real):
            raise TypeError(f"theta must be a real number, got {type(theta).__name__}")
        try:
            theta = float(theta)
        except OverflowError:  # an int beyond float's range
            theta = math.inf
        if not math.isfinite(theta) or abs(theta) > TOY_PARAM_MAX:
            raise ValueError(f"theta must be a real number in [-{TOY_PARAM_MAX:g}, "
                             f"{TOY_PARAM_MAX:g}], got {theta!r}")

        def real(n, rng):
            return np.stack([np.zeros(n), rng.random(n)], axis=1)

        def fake(n, rng):
            return np.stack([np.full(n, theta), rng.random(n)], axis=1)

        return ToyProblem("lines", 2, checked(real, 2), checked(fake, 2), abs(theta),
                          {"theta": theta}, plot_range=max(1.5, abs(theta) + 0.5))
    if name == "funnels":
        from otdiv.audit.funnels import MinFunnel, check_apexes

        funnels = check_int(funnels, "funnels")
        check_apexes(d, funnels, "funnels")
        mf = MinFunnel(d, funnels, seed=seed)
        return ToyProblem("funnels", d, checked(mf.sample_real, d), checked(mf.sample_fake, d),
                          mf.w1, {"d": d, "funnels": mf.n_funnels, "seed": seed,
                           "w1_error": mf.w1_error})
    if name == "translate":
        shift = _at_most_max(check_positive(shift, "shift"), "shift")
        t = np.full(d, shift / math.sqrt(d))

        def real(n, rng):
            return rng.standard_normal((n, d))

        def fake(n, rng):
            return rng.standard_normal((n, d)) + t

        return ToyProblem("translate", d, checked(real, d), checked(fake, d), shift,
                          {"d": d, "shift": shift})
    s = _at_most_max(check_positive(scale, "scale"), "scale")

    def real(n, rng):
        return rng.standard_normal((n, d))

    def fake(n, rng):
        return s * rng.standard_normal((n, d))

    return ToyProblem("scale", d, checked(real, d), checked(fake, d),
                      abs(s - 1.0) * mean_gaussian_norm(d),
                      {"d": d, "scale": s})


@dataclass(frozen=True)
class ReferenceW1:
    """Exact W1 between ``repeats`` pairs of independent held-out samples of size ``n``.

    ``value`` is their mean, ``std`` their standard deviation (the sampling spread). Between
    samples, W1 is biased upwards (the empirical measures are never closer than P and Q);
    the bias shrinks with n, roughly like n^(-1/2) in 2-D and n^(-1/d) in higher d.
    """

    value: float
    std: float
    n: int
    values: tuple[float, ...]

    @property
    def se(self) -> float:
        """The standard error of ``value``: std / √repeats."""
        return self.std / len(self.values) ** 0.5


def reference_w1(
    toy: ToyProblem, *, n: int = 3000, repeats: int = 3, seed: int | None = 0
) -> ReferenceW1:
    """Mean and spread of exact W1(P_n, Q_n) = min_P <P, ||x_i - y_j||> over fresh draws."""
    from otdiv.metrics.wasserstein import wasserstein

    n = check_int(n, "n", minimum=2)
    repeats = check_int(repeats, "repeats")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        x = toy.sample_real(n, rng)
        y = toy.sample_fake(n, rng)
        values.append(float(wasserstein(x, y, p=1)))
    std = float(np.std(values, ddof=1)) if repeats > 1 else 0.0
    return ReferenceW1(float(np.mean(values)), std, n, tuple(values))
