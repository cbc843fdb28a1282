"""Exact and sliced Wasserstein distances: otdiv vs POT and scipy on the targets of issue 2.

Every case runs otdiv and its peer on the same data in this one process. The machine is
shared, so the two are timed in alternating pairs (otdiv then peer, then peer then otdiv)
and the ratio is the median of the per-pair ratios: load from other processes hits both
alike. Numba compilation (or loading its cache) happens in an untimed warm-up call.
Threads: otdiv uses every core (numba ``prange`` kernels; numpy sorts on one thread per
core); POT's network simplex, its 1-D solver and scipy are single-threaded, and their
numpy sorts are too, so their default is their best setting; BLAS (used by both for the
sliced projections) uses every core.

otdiv's exact solver for n = m beyond 1000 with uniform weights is its own sparse network
simplex (`method="sparse_simplex"`, docs/architecture.md), chosen by `method="auto"`.
Peak memory of the n = 10,000 exact case is measured in fresh processes
(``_harness.run_isolated``), one per solver, so neither sees the other's pages.
"""

from __future__ import annotations

import statistics
import warnings

import numpy as np
from _harness import machine, options, paired, run_isolated, table

SIZES = {"N_EXACT": (4000, 300), "N_LAZY": (10_000, 400), "N_1D": (10**6, 10**4),
         "N_SLICED": (10**5, 10**3), "D_SLICED": (10, 10), "L_SLICED": (100, 100)}
S = options(__doc__, SIZES)
EXACT_ITER = 10**12  # a pivot cap POT never reaches: its answer is then the optimum


def otdiv_directions(seed: int, d: int, count: int) -> np.ndarray:
    """The (d, count) unit directions ``sliced_wasserstein(..., n_projections=count,
    seed=seed)`` draws (its docstring: the normalised rows of
    ``default_rng(seed).standard_normal((count, d))``), so that POT projects on the same ones."""
    theta = np.random.default_rng(seed).standard_normal((count, d))
    return (theta / np.linalg.norm(theta, axis=1, keepdims=True)).T


def rel(u: float, v: float) -> float:
    return abs(u - v) / abs(v)


def clouds(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, d)) * 1.5 + 0.5


ROWS: list[list[object]] = []
NOTES: list[str] = []
WARM: list[list[object]] = []


def row(case, peer, t_ours, t_peer, ratio, target, agree):
    met = "yes" if ratio <= target else "no"
    ROWS.append([case, peer, t_ours, t_peer, ratio, f"<= {target}", met, agree])


def bench_import() -> None:
    code = ("import sys, time; t = time.perf_counter(); import otdiv; "
            "print(time.perf_counter() - t, 'torch' in sys.modules, 'numba' in sys.modules)")
    runs = []
    for _ in range(5):
        out = run_isolated(code)[1][0].split()
        runs.append((float(out[0]), out[1] == "True", out[2] == "True"))
    t = statistics.median(r[0] for r in runs)
    torch_loaded = any(r[1] for r in runs)
    numba_loaded = any(r[2] for r in runs)
    met = "yes" if t < 0.5 and not torch_loaded else "no"
    ROWS.append(["`import otdiv` (fresh process, median of 5)", "—", t, "—", "—", "< 0.5 s",
                 met, f"torch imported: {torch_loaded}; numba imported: {numba_loaded}"])


def bench_exact_dense() -> None:
    import ot

    import otdiv

    x, y = clouds(S.N_EXACT, 2)
    a = np.full(S.N_EXACT, 1.0 / S.N_EXACT)
    warm = min(S.N_EXACT, 1000)  # compiles (or loads) the sparse simplex's parallel kernels
    otdiv.wasserstein(x[:warm], y[:warm], method="sparse_simplex")

    def ours():
        return otdiv.wasserstein(x, y)

    def pot(num_iter, wa=a, wb=a):
        def run():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = ot.emd2(wa, wb, ot.dist(x, y, metric="euclidean"), numItermax=num_iter)
            return value, caught

        return run

    v_ours = ours()
    v_exact, _ = pot(EXACT_ITER)()
    v_default, caught = pot(100_000)()
    hit_cap = any("numItermax" in str(w.message) for w in caught)
    NOTES.append(
        f"Exact W1, n = m = {S.N_EXACT}: `wasserstein(x, y)` (method \"auto\") runs otdiv's "
        "`sparse_simplex`. POT's default `numItermax=100000` "
        f"{'stops before optimality (it warns)' if hit_cap else 'reaches the optimum'}: "
        f"its value is off by {rel(v_default, v_exact):.1e} relative; with "
        f"`numItermax={EXACT_ITER:.0e}` POT and otdiv agree to {rel(v_ours, v_exact):.1e}."
    )
    t_o, t_p, r = paired(ours, pot(EXACT_ITER), pairs=4)
    row(f"exact W1, n = m = {S.N_EXACT}, d = 2, incl. cost", "POT `dist` + `emd2`, exact "
        f"(numItermax={EXACT_ITER:.0e})", t_o, t_p, r, 0.8, f"{rel(v_ours, v_exact):.1e}")
    t_o, t_p, r = paired(ours, pot(100_000), pairs=4)
    row(f"exact W1, n = m = {S.N_EXACT}, d = 2, incl. cost",
        "POT `dist` + `emd2`, default numItermax (inexact)", t_o, t_p, r, 0.8,
        f"{rel(v_ours, v_default):.1e} (POT inexact)")

    # weighted: the sparse simplex with its multiscale start (what "auto" runs from 10^6 pairs)
    rng = np.random.default_rng(3)
    wa, wb = rng.random(S.N_EXACT), rng.random(S.N_EXACT)
    wa, wb = wa / wa.sum(), wb / wb.sum()

    def sparse_weighted():
        return otdiv.wasserstein(x, y, wa, wb, method="sparse_simplex")

    agree = rel(sparse_weighted(), pot(EXACT_ITER, wa, wb)()[0])
    t_o, t_p, r = paired(sparse_weighted, pot(EXACT_ITER, wa, wb), pairs=2)
    NOTES.append(
        f"Weighted exact W1, n = m = {S.N_EXACT} (random weights): `method=\"sparse_simplex\"` "
        f"takes {t_o:.2f} s against POT's {t_p:.2f} s (ratio {r:.2f}, values agree to "
        f"{agree:.1e}); `method=\"auto\"` runs it from 10^6 pairs, weighted or not (the "
        "multiscale start, docs/architecture.md)."
    )


def bench_warm_start() -> None:
    """Does warm-starting POT's network simplex from approximate dual potentials pay?"""
    import ot
    from scipy.spatial.distance import cdist

    x, y = clouds(S.N_EXACT, 2)
    a = np.full(S.N_EXACT, 1.0 / S.N_EXACT)
    cost = cdist(x, y)
    _, log = ot.emd(a, a, cost, numItermax=EXACT_ITER, log=True)
    exact = (log["u"], log["v"])

    def cold():
        return ot.emd2(a, a, cost, numItermax=EXACT_ITER)

    def coarse(k):
        def run():
            rng = np.random.default_rng(0)
            ix = rng.choice(S.N_EXACT, k, replace=False)
            iy = rng.choice(S.N_EXACT, k, replace=False)
            w = np.full(k, 1.0 / k)
            _, log_k = ot.emd(w, w, cost[np.ix_(ix, iy)], numItermax=EXACT_ITER, log=True)
            # extend to every point by c-transforms: dual feasible, tight on some arcs
            f = (cost[:, iy] - log_k["v"]).min(axis=1)
            g = (cost - f[:, None]).min(axis=0)
            return ot.emd2(a, a, cost, numItermax=EXACT_ITER, potentials_init=(f, g))

        return run

    def warm_exact():
        return ot.emd2(a, a, cost, numItermax=EXACT_ITER, potentials_init=exact)

    v_cold = cold()
    ks = (S.N_EXACT // 8, S.N_EXACT // 2)
    starts = [(f"from a {k}-point subsample's potentials, c-transformed", coarse(k)) for k in ks]
    starts.append(("from the optimal potentials (a bound, not available in practice)",
                   warm_exact))
    for label, fn in starts:
        agree = rel(fn(), v_cold)
        t_w, t_c, r = paired(fn, cold, pairs=2)
        WARM.append([label, t_w, t_c, r, f"{agree:.1e}"])


LAZY_SETUP = f"""
import numpy as np
rng = np.random.default_rng(0)
x, y = rng.standard_normal(({S.N_LAZY}, 2)), rng.standard_normal(({S.N_LAZY}, 2)) * 1.5 + 0.5
"""
LAZY_OURS = "import otdiv\nvalue = otdiv.wasserstein(x, y)\n"
LAZY_POT = ("import ot\na = np.full(len(x), 1.0 / len(x))\n"
            f"value = ot.emd2_lazy(x, y, a, a, metric='euclidean', numItermax={EXACT_ITER},\n"
            "                     return_matrix=False)\n")


def bench_exact_lazy() -> None:
    scope_o: dict = {}
    scope_p: dict = {}
    exec(LAZY_SETUP, scope_o)
    exec(LAZY_SETUP, scope_p)
    # warm-up: the sparse simplex's kernels, pricing on the fly as at full size
    exec("import otdiv\notdiv.wasserstein(x[:1000], y[:1000], memory_budget=1e6)", scope_o)
    t_o, t_p, r = paired(lambda: exec(LAZY_OURS, scope_o), lambda: exec(LAZY_POT, scope_p),
                         pairs=1)
    agree = rel(scope_o["value"], float(scope_p["value"]))
    mem_o, _ = run_isolated(LAZY_SETUP + LAZY_OURS)
    mem_p, _ = run_isolated(LAZY_SETUP + LAZY_POT)
    row(f"exact W1, n = m = {S.N_LAZY:,}, d = 2", "POT `emd2_lazy`", t_o, t_p, r, 0.5,
        f"{agree:.1e}")
    base, _ = run_isolated(LAZY_SETUP + "import ot")
    NOTES.append(f"A fresh process that only builds the data and imports POT peaks at {base:.0f} "
                 "MiB (POT imports torch when it is installed); the memory rows include it.")
    met = "yes" if mem_o < 1024 else "no"
    ROWS.append([f"peak memory (MiB), n = m = {S.N_LAZY:,}, fresh process", "POT `emd2_lazy`",
                 mem_o, mem_p, mem_o / mem_p, "otdiv < 1024 MiB", met, "—"])


def bench_1d() -> None:
    import ot
    from scipy.stats import wasserstein_distance

    import otdiv

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(S.N_1D), rng.standard_normal(S.N_1D) * 1.5 + 0.5
    a, b = rng.random(S.N_1D), rng.random(S.N_1D)
    an, bn = a / a.sum(), b / b.sum()
    for p in (1, 2):
        for weighted in (False, True):
            wa, wb = (a, b) if weighted else (None, None)
            pa, pb = (an, bn) if weighted else (None, None)
            otdiv.wasserstein(x[:50], y[:50], None if wa is None else wa[:50],
                              None if wb is None else wb[:50], p=p)

            def ours(wa=wa, wb=wb, p=p):
                return otdiv.wasserstein(x, y, wa, wb, p=p)

            def pot(pa=pa, pb=pb, p=p):
                return ot.wasserstein_1d(x, y, pa, pb, p=p)

            label = f"1-D W{p}, n = m = {S.N_1D:.0e}, {'weighted' if weighted else 'unweighted'}"
            v = ours()
            # POT's wasserstein_1d returns W_p^p
            agree = rel(v**p, float(pot()))
            t_o, t_p, r = paired(ours, pot, pairs=6)
            row(label, "POT `wasserstein_1d`", t_o, t_p, r, 0.4, f"{agree:.1e}")
            if p == 1:
                def sp(wa=wa, wb=wb):
                    return wasserstein_distance(x, y, wa, wb)

                agree = rel(v, sp())
                t_o, t_p, r = paired(ours, sp, pairs=6)
                row(label, "scipy `wasserstein_distance`", t_o, t_p, r, 0.4, f"{agree:.1e}")


def bench_sliced() -> None:
    import ot

    import otdiv

    x, y = clouds(S.N_SLICED, S.D_SLICED, seed=2)
    theta = otdiv_directions(0, S.D_SLICED, S.L_SLICED)  # the same for both
    otdiv.sliced_wasserstein(x[:50], y[:50], n_projections=4, seed=0)
    for p in (1, 2):
        def ours(p=p):
            return otdiv.sliced_wasserstein(x, y, p=p, n_projections=S.L_SLICED, seed=0)

        def pot(p=p):
            return ot.sliced_wasserstein_distance(x, y, p=p, projections=theta)

        agree = rel(ours(), float(pot()))
        t_o, t_p, r = paired(ours, pot, pairs=4)
        row(f"sliced W{p}, n = m = {S.N_SLICED:.0e}, d = {S.D_SLICED}, {S.L_SLICED} projections",
            "POT `sliced_wasserstein_distance`", t_o, t_p, r, 0.25, f"{agree:.1e}")


def main() -> None:
    bench_import()
    bench_exact_dense()
    bench_1d()
    bench_sliced()
    bench_warm_start()
    bench_exact_lazy()
    header = ["case", "peer", "otdiv (s)", "peer (s)", "ratio", "target", "met",
              "rel. difference of values"]
    print("## Exact and sliced Wasserstein\n")
    print(f"Script: `benchmarks/bench_wasserstein.py`, on {machine()}. "
          + __doc__.split("\n\n", 1)[1]
          .replace("\n", " ").strip() + "\n")
    print(table(header, ROWS))
    print(f"\nWarm start of POT's network simplex, W1, n = m = {S.N_EXACT}, d = 2, cost matrix "
          "given (the time includes computing the potentials):\n")
    print(table(["start", "time (s)", "cold start (s)", "ratio", "rel. difference of values"],
                WARM))
    print()
    for note in NOTES:
        print(f"- {note}")


if __name__ == "__main__":
    main()
