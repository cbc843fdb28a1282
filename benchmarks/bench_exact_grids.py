"""Histograms on grids, DOTmark-style: exact W2 and W1 between images, otdiv vs POT.

DOTmark (Schrieber, Schuhmacher, Gottschlich 2017) compares exact OT solvers on pairs of
N × N images seen as histograms on the grid {0..N−1}²; its files are not reachable here, so
the images are generated, seeded, in three of its classes: white noise (uniform values),
a log-Gaussian random field (smooth: Gaussian spectrum of width N/8) and shapes (three
disks of mass, zero elsewhere: most bins weigh 0). otdiv runs through the public API,
``otdiv.wasserstein(grid, grid, a=img1, b=img2, p=p, method="sparse_simplex")`` (zero
weights allowed: those bins leave the simplex); POT runs ``ot.dist`` + ``ot.emd2`` on the
dense cost, single-threaded (its simplex has no threads; its best setting is its default).
At 64 × 64 the two are timed in alternating pairs; at 128 × 128 (16,384 bins a side: the
cost matrix alone is 2 GiB) otdiv runs in a fresh process, so that its peak memory is its
own, and POT once, on white noise, when ``--pot-128`` is given (it needs the 2 GiB cost and
a 2 GiB dense plan).
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from _harness import LoadLog, drop_notices, machine, options, run_isolated, table, timed

SIZES = {"N_SMALL": (64, 16), "N_LARGE": (128, 24), "PAIRS": (1, 1)}


def _extra(parser):
    parser.add_argument("--pot-128", action="store_true",
                        help="also run POT once at the large size (minutes, 4+ GiB)")
    parser.add_argument("--pot-deadline", type=float, default=3600.0,
                        help="seconds after which POT's large run is stopped (a lower bound)")
    parser.add_argument("--part", choices=("all", "small", "large"), default="all",
                        help="run one of the two tables only")


S = options(__doc__, SIZES, _extra)
HERE = os.path.dirname(os.path.abspath(__file__))
ARGV = [a for a in sys.argv[1:] if a in ("--quick", "--size") or "=" in a]  # children's sizes
KINDS = ("white noise", "log-GRF", "shapes")


def grid(n: int) -> np.ndarray:
    """The (n², 2) coordinates of the n × n grid, row-major like ``img.ravel()``."""
    i, j = np.mgrid[0:n, 0:n]
    return np.column_stack([i.ravel(), j.ravel()]).astype(float)


def image(kind: str, n: int, seed: int) -> np.ndarray:
    """One n × n image of the class ``kind``, normalized to sum 1, raveled."""
    rng = np.random.default_rng(seed)
    if kind == "white noise":
        img = rng.uniform(size=(n, n))
    elif kind == "log-GRF":
        k2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2
        field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n)))
                                     * np.exp(-k2 * 32.0)))  # spectrum of width 1/8
        img = np.exp(field / field.std())
    elif kind == "shapes":
        i, j = np.mgrid[0:n, 0:n]
        img = np.zeros((n, n))
        for _ in range(3):
            ci, cj = rng.uniform(0.2, 0.8, 2) * n
            r = rng.uniform(0.08, 0.2) * n
            img[(i - ci) ** 2 + (j - cj) ** 2 <= r * r] += 1.0
    else:
        raise ValueError(kind)
    img = img.ravel()
    return img / img.sum()


def ours(n: int, kind: str, p: float):
    import otdiv

    z, a, b = grid(n), image(kind, n, 1), image(kind, n, 2)
    return lambda: otdiv.wasserstein(z, z, a=a, b=b, p=p, method="sparse_simplex")


def pot(n: int, kind: str, p: float):
    import ot

    z, a, b = grid(n), image(kind, n, 1), image(kind, n, 2)
    metric = "sqeuclidean" if p == 2 else "euclidean"
    return lambda: float(ot.emd2(a, b, ot.dist(z, z, metric=metric), numItermax=10**12)) ** (1 / p)


def small() -> list[list[object]]:
    rows = []
    for p in (2.0, 1.0):  # numba's cache loaded, POT imported, outside the timing
        ours(8, "white noise", p)()
        pot(8, "white noise", p)()
    for p in (2.0, 1.0):
        for kind in KINDS:
            run_ours, run_pot = ours(S.N_SMALL, kind, p), pot(S.N_SMALL, kind, p)
            t_ours, t_pot, ratios = [], [], []
            for k in range(S.PAIRS):  # alternating pairs, as _harness.paired
                order = (run_ours, run_pot) if k % 2 == 0 else (run_pot, run_ours)
                got = {fn: timed(fn) for fn in order}
                t_ours.append(got[run_ours][0])
                t_pot.append(got[run_pot][0])
                ratios.append(t_ours[-1] / t_pot[-1])
            w_ours, w_pot = got[run_ours][1], got[run_pot][1]
            ratio = statistics.median(ratios)
            rows.append([f"{S.N_SMALL} × {S.N_SMALL}", kind, f"W{p:.0f}",
                         statistics.median(t_ours), statistics.median(t_pot), ratio,
                         "yes" if ratio <= 0.5 else "no", f"{abs(w_ours - w_pot) / w_pot:.1e}"])
    return rows


ISOLATED = """
import sys, time
sys.path.insert(0, {here!r})
sys.argv = [sys.argv[0]] + {argv!r}
import bench_exact_grids as B
run = B.ours({n}, {kind!r}, {p})
B.ours(8, {kind!r}, {p})()  # numba's cache loaded outside the timing
t = time.perf_counter()
w = run()
print(time.perf_counter() - t, w)
"""


POT_LARGE = """
import sys, time
sys.path.insert(0, {here!r})
sys.argv = [sys.argv[0]] + {argv!r}
import bench_exact_grids as B
run = B.pot({n}, "white noise", 2.0)
t = time.perf_counter()
w = run()
print(time.perf_counter() - t, w)
"""


class _Started(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        self.t0 = time.perf_counter()
        super().__init__(*args, **kwargs)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def start_pot_large() -> _Started | None:
    """POT at the large size on white noise, W2, in its own process (it takes the longest:
    it runs while otdiv's large cases do)."""
    if not S.pot_128 or S.part == "small":
        return None
    code = POT_LARGE.format(here=HERE, argv=ARGV, n=S.N_LARGE)
    return _Started([sys.executable, "-c", code], stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True)


def large(pot_run: subprocess.Popen | None) -> None:
    """Prints the large table row by row (a run cut short keeps its rows)."""
    print(table(["grid", "images", "distance", "otdiv (s)", "otdiv peak (MiB)"], []),
          flush=True)
    first = None
    for p in (2.0, 1.0):
        for kind in KINDS if p == 2.0 else KINDS[:1]:
            peak, out = run_isolated(ISOLATED.format(here=HERE, argv=ARGV, n=S.N_LARGE,
                                                     kind=kind, p=p))
            t_ours, w_ours = (float(v) for v in out[-1].split())
            first = (t_ours, w_ours) if first is None else first
            print(table([], [[f"{S.N_LARGE} × {S.N_LARGE}", kind, f"W{p:.0f}", t_ours, peak]])
                  .split("\n", 2)[-1], flush=True)
    if pot_run is None:
        return
    try:
        last = drop_notices(
            pot_run.communicate(timeout=max(1.0, S.pot_deadline - pot_run.elapsed()))[0])
        t_pot, w_pot = (float(v) for v in last.strip().splitlines()[-1].split())
        print(f"\nPOT (`ot.dist` + `ot.emd2`) on the white-noise pair, W2: {t_pot:.4g} s "
              f"(otdiv / POT = {first[0] / t_pot:.3g}; relative difference of W "
              f"{abs(first[1] - w_pot) / w_pot:.1e}).")
    except subprocess.TimeoutExpired:
        pot_run.kill()
        print(f"\nPOT (`ot.dist` + `ot.emd2`) on the white-noise pair, W2: not finished after "
              f"{S.pot_deadline:.0f} s (stopped; otdiv / POT < {first[0] / S.pot_deadline:.3g}).")


def main() -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # pykeops, when installed, prints on import
        import ot  # noqa: F401
    load = LoadLog()
    pot_run = start_pot_large()
    print("## Histograms on grids (DOTmark-style)\n")
    print(f"Machine: {machine()}.\n")
    print("`benchmarks/bench_exact_grids.py`: exact W2 and W1 between N × N images as "
          "histograms on the grid {0..N−1}² (white noise, a log-Gaussian random field, three "
          "disks with zero mass elsewhere; generated, seeded), otdiv's sparse simplex through "
          "`otdiv.wasserstein(grid, grid, a=img1, b=img2, p=p, method=\"sparse_simplex\")` "
          "against POT's `ot.dist` + `ot.emd2` (single-threaded, its default and best "
          "setting), in alternating pairs. The large grid runs otdiv in a fresh process per "
          "case (its own peak memory; above the memory budget the cost is priced on the fly, "
          "never stored) and POT once, in its own process, while otdiv's large cases run.\n",
          flush=True)
    if S.part != "large":
        print(table(["grid", "images", "distance", "otdiv (s)", "POT dist + emd2 (s)",
                     "ratio (median of pairs)", "<= 0.5", "rel. diff. of W"], small()),
              flush=True)
        print()
    if S.part != "small":
        load.sample()
        large(pot_run)
    load.sample()
    print(f"\nLoad average during the run: {load}.\n")


if __name__ == "__main__":
    main()
