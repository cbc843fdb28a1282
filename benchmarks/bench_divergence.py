"""KL and JSD on batches of histograms against scipy; the k-NN KL estimator at n = 10^5.

Targets (issue 3): JSD on 10,000 histograms x 1,000 bins <= 0.1 x scipy
``jensenshannon(p, q, axis=1)**2``; KL <= 0.1 x scipy ``entropy(p, q, axis=1)``;
``kl_knn`` at n = m = 10^5, d = 2 under 5 s.
"""

from __future__ import annotations

import numpy as np
from _harness import machine, median_time, options, table

SIZES = {"ROWS": (10_000, 100), "BINS": (1_000, 50), "N_KNN": (100_000, 1000)}
S = options(__doc__, SIZES)


def main() -> None:
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy

    import otdiv

    rows, bins = S.ROWS, S.BINS
    rng = np.random.default_rng(0)
    p, q = rng.random((rows, bins)), rng.random((rows, bins))
    otdiv.kl(p[:2], q[:2]), otdiv.jsd(p[:2], q[:2])  # numba compile / cache load

    lines = ["## KL and Jensen–Shannon divergences", "",
             f"`benchmarks/bench_divergence.py` on {machine()}.", "",
             f"Histograms: {rows:,} pairs x {bins:,} bins (uniform random, float64), "
             "divergence along axis 1; median of 7 runs.", ""]
    result = []
    for name, mine, peer, peer_name in [
        ("KL", lambda: otdiv.kl(p, q, axis=1), lambda: entropy(p, q, axis=1),
         "scipy.stats.entropy(p, q, axis=1)"),
        ("JSD", lambda: otdiv.jsd(p, q, axis=1), lambda: jensenshannon(p, q, axis=1) ** 2,
         "scipy jensenshannon(p, q, axis=1)**2"),
    ]:
        np.testing.assert_allclose(mine(), peer(), rtol=1e-9)  # same numbers, then time
        t_mine = median_time(mine, repeat=7)
        t_peer = median_time(peer, repeat=7)
        ratio = t_mine / t_peer
        result.append([name, peer_name, t_mine * 1e3, t_peer * 1e3, ratio,
                       "met" if ratio <= 0.1 else "NOT met"])
    lines.append(table(["", "peer", "otdiv (ms)", "peer (ms)", "ratio", "target <= 0.1"],
                       result))

    n = S.N_KNN
    x, y = rng.standard_normal((n, 2)), rng.standard_normal((n, 2)) + np.array([1.0, 0.0])
    t_knn = median_time(lambda: otdiv.kl_knn(x, y), repeat=3)
    t_jsd = median_time(lambda: otdiv.jsd_knn(x, y), repeat=3)
    lines += ["", f"Samples: n = m = {n:,} in d = 2, N(0, I) vs N((1, 0), I) (true KL 0.5); "
              "median of 3 runs.", "",
              table(["estimator", "value", "time (s)", "target"],
                    [["kl_knn (k=1)", otdiv.kl_knn(x, y), t_knn,
                      "< 5 s: " + ("met" if t_knn < 5 else "NOT met")],
                     ["jsd_knn (k=5)", otdiv.jsd_knn(x, y), t_jsd, "-"]])]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
