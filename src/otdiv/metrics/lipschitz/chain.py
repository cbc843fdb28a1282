r"""A critic as a chain S_m σ_m ⋯ σ_1 S_0 of linear maps and activations, and its certified
Lipschitz bound.

Each activation is σ = α Id + β N with N nonexpansive (slopes in [α − β, α + β]); the bound
is the averaged-operator bound of Combettes & Pesquet (2020), which multiplies out products
of consecutive linear maps and is never larger than the product of layer norms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from otdiv.metrics.lipschitz.norms import _U, _fro, _gamma, spectral_upper


@dataclass
class _Lin:
    """A linear map (biases do not matter for Lipschitz constants).

    dense: float64 matrix acting on the last dimension (composable with its neighbours);
    None when the map is known only through ``norm`` (convolutions, reshapes, scalings).
    """

    name: str
    dense: np.ndarray | None = None
    norm: float | None = None
    reported: bool = True  # listed in LipschitzBounds.layers

    def certified_norm(self) -> float:
        if self.norm is None:
            self.norm = float(spectral_upper(self.dense)[0])
        return self.norm


@dataclass
class _Act:
    """x ↦ α x + β N(x) with N nonexpansive: an activation with slopes in [α − β, α + β],
    or (α = 0) any map known only to be β-Lipschitz."""

    name: str
    alpha: float
    beta: float


# elementwise activations: the interval [lo, hi] that contains every slope (outward rounded)
_SLOPES = {
    "ReLU": (0.0, 1.0),
    "ReLU6": (0.0, 1.0),
    "Hardtanh": (0.0, 1.0),
    "Tanh": (0.0, 1.0),
    "Sigmoid": (0.0, 0.25),
    "Softplus": (0.0, 1.0),
    "Softsign": (0.0, 1.0),
    "Hardsigmoid": (0.0, 1.0 / 6.0),
    "GELU": (-0.1290, 1.1290),  # Φ(x) + xφ(x): extremes ∓0.128904 + {0, 1} at x = ∓√2
    "SiLU": (-0.0999, 1.0999),  # σ(x)(1 + x(1 − σ(x))): extremes ∓0.09984 at x ≈ ∓2.3994
}


def _act_from_slopes(name: str, lo: float, hi: float) -> _Act:
    return _Act(name, 0.5 * (lo + hi), 0.5 * (hi - lo))



def _segments(items: list) -> tuple[list[list[_Lin]], list[_Act]]:
    segs: list[list[_Lin]] = [[]]
    acts: list[_Act] = []
    for it in items:
        if isinstance(it, _Act):
            acts.append(it)
            segs.append([])
        else:
            segs[-1].append(it)
    return segs, acts


def _product_norm(lins: list[_Lin], cache: dict, key: tuple) -> float:
    """Certified ‖L_k ⋯ L_1‖: consecutive dense maps are multiplied out (their product is
    often much smaller than the product of norms) and the rest multiply norms. The rounding
    of M' = fl(W M) is added back: ‖fl(W M) − W M‖₂ ≤ γ_n ‖|W|‖_F ‖|M|‖_F."""
    if key in cache:
        return cache[key]
    runs: list[list[_Lin]] = []
    for lin in lins:
        if (lin.dense is not None and runs and runs[-1][-1].dense is not None
                and runs[-1][-1].dense.shape[0] == lin.dense.shape[1]):
            runs[-1].append(lin)
        else:
            runs.append([lin])
    total = 1.0
    for run in runs:
        if len(run) == 1:
            total *= run[0].certified_norm()
            continue
        prod, err = run[0].dense, 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for lin in run[1:]:
                w = lin.dense
                err = (float(_fro(w)) * err
                       + _gamma(w.shape[1]) * float(_fro(np.abs(w)) * _fro(np.abs(prod))))
                err *= 1 + 4 * _U
                prod = w @ prod
            multiplied = float(spectral_upper(prod)[0]) + err if np.isfinite(prod).all() else (
                math.inf)
        # a product beyond the float range falls back to ‖W_k‖ ⋯ ‖W_1‖ (inf, never NaN)
        separate = math.prod(lin.certified_norm() for lin in run)
        total *= multiplied if math.isfinite(multiplied) else separate
    cache[key] = total
    return total


def _bound_chain(items: list) -> tuple[float, float]:
    r"""(averaged-activation bound, plain product bound) for a chain S_m σ_m ⋯ σ_1 S_0.

    Each activation is σ_k = α_k Id + β_k N_k with N_k nonexpansive (slopes in
    [α − β, α + β]). Expanding every σ_k gives f as a sum over the sets C of activations
    that take their N part; the term of C is a composition of products of consecutive
    linear maps with nonexpansive maps in between, so (Combettes & Pesquet, 2020)

        Lip(f) ≤ Σ_C Π_{k∈C} β_k Π_{k∉C} |α_k| Π_{blocks B of C} ‖Π_{j∈B} S_j‖.

    The sum is evaluated by dynamic programming over the position of the last cut; it is
    never larger than the product Π ‖S_j‖ Π (|α_k| + β_k), which is returned too.
    """
    segs, acts = _segments(items)
    m = len(acts)
    flat: list[_Lin] = []
    offsets = []
    for s in segs:
        offsets.append(len(flat))
        flat += s
    offsets.append(len(flat))
    cache: dict = {}

    def block(i: int, j: int) -> float:
        """|α| of the activations inside segments i..j times the norm of their product."""
        weight = math.prod(abs(acts[k - 1].alpha) for k in range(i + 1, j + 1))
        if weight == 0:
            return 0.0
        key = (offsets[i], offsets[j + 1])
        return weight * _product_norm(flat[key[0]:key[1]], cache, key)

    total = [0.0] * (m + 1)
    for j in range(m + 1):
        acc = block(0, j)
        for i in range(1, j + 1):
            if acts[i - 1].beta > 0 and total[i - 1] > 0:
                acc += total[i - 1] * acts[i - 1].beta * block(i, j)
        total[j] = acc
    plain = math.prod(lin.certified_norm() for lin in flat)
    plain *= math.prod(abs(a.alpha) + a.beta for a in acts)
    return total[m], plain
