"""Sliced Wasserstein distance: W_p averaged over random one-dimensional projections."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np

from otdiv._array import (
    array_kind,
    as_points,
    as_weights,
    check_int,
    check_p,
    check_same_dim,
    check_seed,
    common_dtype,
    to_numpy64,
)

CHUNK_ENTRIES = 1 << 24  # projected coordinates held at once: (n + m) · chunk, 128 MiB float64
MAX_WORK = 1 << 40  # (n + m) · n_projections above this would take hours: refused


def _directions(rng: np.random.Generator, d: int, count: int) -> np.ndarray:
    """(d, count) unit vectors, uniform on the sphere, from numpy's generator (same on any
    device). Drawn one direction after another, so that drawing in chunks of c1, c2, ...
    gives the same directions as one draw of c1 + c2 + ...: the value for a seed does not
    depend on how the projections are chunked."""
    theta = rng.standard_normal((count, d)).T
    return theta / np.linalg.norm(theta, axis=0, keepdims=True)


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - lo) for lo in range(0, total, size)]


def _unit_scale(x, y) -> float:
    """A power of two s with every |coordinate| / s <= 1 (1 for all-zero data): projections
    and their p-th powers then neither overflow nor underflow needlessly."""
    reach = max(float(abs(v).max()) for v in (x, y))
    return float(2.0 ** np.ceil(np.log2(reach))) if reach > 0 else 1.0


def _by_row_blocks(op, *pairs) -> None:
    """op(src[lo:hi], dst[lo:hi]) over blocks of rows of each (src, dst) pair, one thread per
    core: numpy's sort is single-threaded but releases the GIL."""
    workers = os.cpu_count() or 1
    tasks = []
    for src, dst in pairs:
        edges = np.linspace(0, src.shape[0], workers + 1).astype(int)
        tasks += [(src[lo:hi], dst[lo:hi]) for lo, hi in pairwise(edges) if hi > lo]
    if workers == 1 or sum(src.size for src, _ in pairs) < 400_000:
        for t in tasks:
            op(*t)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda t: op(*t), tasks))


def _sliced_torch(x, y, a, b, theta, p, uniform):
    import torch

    from otdiv.kernels.cost_torch import power

    th = torch.as_tensor(theta, dtype=x.dtype, device=x.device)
    xp, yp = x @ th, y @ th  # (n, L), (m, L)
    if uniform and x.shape[0] == y.shape[0]:
        diff = torch.sort(xp, dim=0).values - torch.sort(yp, dim=0).values
        return power(diff.abs(), p).mean(0)
    # weighted or unequal sizes: couple quantiles on the merged grid of cumulative weights
    ix, iy = torch.argsort(xp, dim=0), torch.argsort(yp, dim=0)
    ca = torch.cumsum(a[ix], dim=0)
    cb = torch.cumsum(b[iy], dim=0)
    # the merged cumulative weights stay in the graph: W_p^p = Σ_k (l_k − l_{k−1}) |x_q − y_q|^p
    # with the quantile indices q fixed near a, b, so ∂/∂a, ∂/∂b flow through the levels l
    levels = torch.sort(torch.cat([ca, cb], dim=0), dim=0).values
    levels = levels.clamp(max=1.0)
    widths = torch.diff(levels, dim=0, prepend=torch.zeros_like(levels[:1]))
    # the quantile index of each level's left endpoint on each side
    mid = (levels - 0.5 * widths).detach().T.contiguous()
    qi = torch.searchsorted(ca.detach().T.contiguous(), mid).T.clamp(max=x.shape[0] - 1)
    qj = torch.searchsorted(cb.detach().T.contiguous(), mid).T.clamp(max=y.shape[0] - 1)
    xs = torch.gather(torch.gather(xp, 0, ix), 0, qi)
    ys = torch.gather(torch.gather(yp, 0, iy), 0, qj)
    diff = xs - ys
    return (widths * power(diff.abs(), p)).sum(0)


def sliced_wasserstein(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 1,
    n_projections: int = 100,
    seed: int | None = None,
):
    r"""Sliced Wasserstein distance over L random unit directions θ_l (default p = 1).

    .. math::
        SW_p(a, b) = \Big(\frac{1}{L}\sum_{l=1}^{L}
                     W_p^p\big((\theta_l^\top)_\# a,\ (\theta_l^\top)_\# b\big)\Big)^{1/p}

    Each projected problem is solved exactly on the line (sort and couple quantiles).

    Args:
        x, y: (n,)/(n, d) and (m,)/(m, d) points, numpy or torch.
        a, b: nonnegative weights, uniform when None, normalized to sum 1.
        p: exponent, p >= 1.
        n_projections: L, the number of random directions (memory stays below
            ``CHUNK_ENTRIES`` projected coordinates, 128 MiB, whatever L; (n + m) · L above
            2**40 is refused).
        seed: seed of numpy's generator for the directions (identical on CPU and GPU);
            None or an integer in [0, 2**63 - 2**20). The directions are the rows of
            ``np.random.default_rng(seed).standard_normal((n_projections, d))``, each
            normalised, whatever the chunking.

    Returns:
        SW_p as a float (numpy) or a 0-d tensor (torch), differentiable in x, y, a and b.
    """
    kind = array_kind({"x": x, "y": y, "a": a, "b": b})
    x = as_points(x, "x")
    y = as_points(y, "y")
    check_same_dim(x, y)
    x, y = common_dtype(x, y)
    uniform = a is None and b is None
    a = as_weights(a, x.shape[0], "a", like=x)
    b = as_weights(b, y.shape[0], "b", like=y)
    p = check_p(p)
    n_projections = check_int(n_projections, "n_projections")
    seed = check_seed(seed)
    rows = x.shape[0] + y.shape[0]
    if rows * n_projections > MAX_WORK:
        raise ValueError(
            f"n_projections={n_projections} is too many for {rows} points: (n + m) · "
            f"n_projections must stay below 2**40 (hours of sorting); a few hundred "
            "directions give SW_p to about 1/sqrt(n_projections)")
    rng = np.random.default_rng(seed)
    # memory stays bounded: the directions are drawn and projected CHUNK_ENTRIES / (n + m)
    # at a time (one draw of all of them when they fit, so the seed gives the same directions)
    sizes = _chunks(n_projections, max(1, CHUNK_ENTRIES // rows))
    s = _unit_scale(to_numpy64(x) if kind == "numpy" else x.detach(),
                    to_numpy64(y) if kind == "numpy" else y.detach())
    if kind == "torch":
        from otdiv.ot.envelope import root

        xs, ys = x / s, y / s
        total = sum(_sliced_torch(xs, ys, a, b, _directions(rng, x.shape[1], c), p,
                                  uniform).sum() for c in sizes)
        return root(total / n_projections, p) * s

    from otdiv.kernels import transport1d_numba as k1

    xn, yn = to_numpy64(x) / s, to_numpy64(y) / s
    total = 0.0
    for count in sizes:
        theta = _directions(rng, x.shape[1], count)
        # one contiguous row per projection, so numpy sorts rows in place
        xp = np.ascontiguousarray((xn @ theta).T)
        yp = np.ascontiguousarray((yn @ theta).T)
        if uniform and x.shape[0] == y.shape[0]:
            _by_row_blocks(lambda src, _: src.sort(axis=1), (xp, xp), (yp, yp))
            per = k1.rows_equal_uniform(xp, yp, p)
        else:
            ix, iy = np.empty(xp.shape, np.int64), np.empty(yp.shape, np.int64)
            _by_row_blocks(lambda src, dst: np.copyto(dst, np.argsort(src, axis=1)),
                           (xp, ix), (yp, iy))
            per = k1.rows_weighted(xp, ix, to_numpy64(a), yp, iy, to_numpy64(b), p)
        total += float(per.sum())
    return float((total / n_projections) ** (1.0 / p) * s)
