"""Pricing all n·m pairs against the exact solver's potentials: brute force vs the k-d tree.

The sparse simplex's optimality certificate prices every pair (i, j) against the potentials
(f, g) each round. ``otdiv.kernels.simplex_numba.most_negative`` costs all n·m pairs;
``otdiv.kernels.pricing_numba.most_negative`` (the solver's pricer when the cost matrix is not
stored) returns the same answer from the pairs a k-d tree over y cannot rule out. Both are
timed here on the same potentials, in the same process (the brute force once: it is the
slow one; the pruned pricer three times, median), and their answers compared (violated count and the
pairs chosen). Potentials:

* ``solve``: the solver's own, on x ~ N(0, I), y ~ 1.5 N(0, I) + 0.5 (the exact benchmark's
  data) at unit scale, every level of the coarse-to-fine solve pricing on the fly (no stored
  cost matrix): the potentials of its last pricing round but one (near-optimal, a
  few violated pairs) and of its last (the certificate, none). The solve's time, its pricing
  rounds and the pruned pricing's share of it are reported too.
* ``map``: where a solve would take too long, an instance whose optimal potentials are
  known: y_i = T(x_i) with x ~ N(0, I). For W2, T(x) = 1.5 x + b is the gradient of the
  convex φ(x) = 0.75|x|² + b·x, so f = |x|² − 2φ(x), g = |y|² − 2φ*(y) are optimal (Brenier);
  for W1, T(x) = x + s, f = −ŝ·x, g = ŝ·y. These are smooth, so the tree prunes more than on
  a solver's potentials (compare the two at n = 10^4); f is raised by 10^-6·|N(0, 1)|
  (relative to the largest cost) so that some pairs are violated.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from _harness import LoadLog, machine, options, table

SIZES = {"N_SOLVE": (10_000, 600), "N_SOLVE_HIGH": (20_000, 600), "N1": (10_000, 600),
         "N2": (50_000, 1000), "N3": (100_000, 1500)}
S = options(__doc__, SIZES)
PER_ROW = 16
TOL = 1e-14


def unit(x, y):
    s = 2.0 ** np.ceil(np.log2(np.abs(np.concatenate([x, y])).max() * 2 * np.sqrt(x.shape[1])))
    return x / s, y / s, s


def solve_potentials(n: int, d: int, p: float):
    """x, y in the solver's order, the potentials of each on-the-fly pricing round, the
    solve's time and the pruned pricing's time in it."""
    from otdiv.kernels import pricing_numba
    from otdiv.ot import network_simplex as ns
    from otdiv.ot.multiscale import multiscale_transport

    rng = np.random.default_rng(0)
    x, y, _ = unit(rng.standard_normal((n, d)), 1.5 * rng.standard_normal((n, d)) + 0.5)
    x, y = x[ns.kd_order(x)], y[ns.kd_order(y)]  # the order the coarse-to-fine start needs
    rounds, pricing = [], []
    inner = pricing_numba.most_negative

    def spy(xs, ys, p_, f, g, tol, per_row):
        t0 = time.perf_counter()
        out = inner(xs, ys, p_, f, g, tol, per_row)
        pricing.append(time.perf_counter() - t0)
        rounds.append((xs, ys, f.copy(), g.copy()))
        return out

    pricing_numba.most_negative = spy
    try:
        mass = np.full(n, 1.0 / n)
        t0 = time.perf_counter()
        sol = multiscale_transport(x, y, mass, mass, p, max_pivots=2**62,
                                   memory_budget=0)  # every level prices on the fly
        t_solve = time.perf_counter() - t0
    finally:
        pricing_numba.most_negative = inner
    assert sol.converged
    return rounds, t_solve, pricing


def map_potentials(n: int, d: int, p: float):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, d))
    shift = np.full(d, 0.5)
    y = 1.5 * x + shift if p == 2 else x + shift
    x, y, s = unit(x, y)
    b = shift / s
    if p == 2:  # f = |x|² − 2φ(x), g = |y|² − 2φ*(y), φ*(y) = |y − b|² / 3
        f = -0.5 * np.einsum("ij,ij->i", x, x) - 2 * x @ b
        g = np.einsum("ij,ij->i", y, y) - (2 / 3) * np.einsum("ij,ij->i", y - b, y - b)
    else:
        u = b / np.linalg.norm(b)
        f, g = -x @ u, y @ u
    # costs are at most 1 at unit scale
    f = f + 1e-6 * np.abs(np.random.default_rng(2).standard_normal(n))
    return x, y, f, g


def compare(x, y, p, f, g) -> list[object]:
    """[brute (s), tree (s), speed-up, pairs costed by the tree, violated, answers equal]."""
    from otdiv.kernels import pricing_numba as pn
    from otdiv.kernels import simplex_numba as sx

    n, m = x.shape[0], y.shape[0]
    t0 = time.perf_counter()
    rb, cb, vb = sx.most_negative(x, y, p, f, g, TOL, PER_ROW)
    t_brute = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        rp, cp, vp = pn.most_negative(x, y, p, f, g, TOL, PER_ROW)
        times.append(time.perf_counter() - t0)
    t_tree = statistics.median(times)
    perm, start, end, lo, hi, first = pn.build_tree(y, pn._LEAF)
    gs = g[perm]
    bounds = pn.node_bounds(y[perm], gs, start, end, lo, hi, first)
    _, costed = pn._price.parallel(x, y[perm], perm, start, end, lo, hi, *bounds, first,
                                   float(p), f, gs, TOL, np.empty((n, 1), np.int64))
    same = vb == vp and set(zip(rb.tolist(), cb.tolist(), strict=True)) == set(
        zip(rp.tolist(), cp.tolist(), strict=True))
    return [t_brute, t_tree, t_brute / t_tree, f"{costed / (n * m):.2%}", vb,
            "yes" if same else "NO"]


def main() -> None:
    load = LoadLog()
    rows, solves = [], []
    for n, d, p in ((S.N_SOLVE, 2, 1.0), (S.N_SOLVE, 2, 2.0), (S.N_SOLVE_HIGH, 16, 2.0)):
        rounds, t_solve, pricing = solve_potentials(n, d, p)
        solves.append([f"{n:,}", d, f"W{p:.0f}", t_solve, len(pricing), sum(pricing),
                       f"{sum(pricing) / t_solve:.1%}"])
        for label, k in (("near-optimal (last round but one)", -2), ("optimal (last round)", -1)):
            if len(rounds) >= -k:
                xs, ys, f, g = rounds[k]
                rows.append([f"{n:,}", d, f"W{p:.0f}", f"solve: {label}",
                             *compare(xs, ys, p, f, g)])
        load.sample()
    for p in (2.0, 1.0):
        for n in (S.N1, S.N2, S.N3):
            x, y, f, g = map_potentials(n, 2, p)
            rows.append([f"{n:,}", 2, f"W{p:.0f}", "map: optimal, f raised by 1e-6",
                         *compare(x, y, p, f, g)])
            load.sample()
    print("## Pricing\n")
    print(f"Machine: {machine()}.\n")
    print("`benchmarks/bench_pricing.py`. " + __doc__.split("\n\n", 1)[1].strip())
    print(f"\nLoad average during the run: {load}.\n")
    print(table(["n = m", "d", "cost", "potentials", "brute force (s)",
                 "pricing_numba (s)", "speed-up", "pairs the tree costs", "violated pairs",
                 "same answer"], rows))
    print("\nWhere the tree would cost over 30 % of the pairs (its sampled rows tell), "
          "`pricing_numba.most_negative` hands the round to the brute force.")
    print()
    print("The solves behind the `solve` rows (the pruned pricer in the solver):\n")
    print(table(["n = m", "d", "cost", "solve (s)", "on-the-fly pricing rounds",
                 "pricing (s)", "pricing share"], solves))
    print()


if __name__ == "__main__":
    main()
