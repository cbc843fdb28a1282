"""Why Wasserstein GANs exist: JSD saturates at log 2 where W1 keeps measuring the distance.

Left: the parallel lines P_0 = (0, Z), P_θ = (θ, Z), Z ~ U[0, 1] (Arjovsky et al. 2017,
example 1). Right: two Gaussians N(0, 1) and N(μ, 1) moving apart. Writes
docs/figures/parallel_lines.png (run by docs/make_figures.py, i.e. `make docs`).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import otdiv

OUT = Path(__file__).resolve().parent / "parallel_lines.png"
LOG2 = np.log(2.0)


def parallel_lines(thetas, n=400, bins=20, seed=0):
    """JSD on histograms, k-NN JSD on samples, and exact W1 on samples, for each θ."""
    rng = np.random.default_rng(seed)
    z = rng.random(n)
    jsd_hist, jsd_samples, w1 = [], [], []
    # histograms over (x-column, z-bin): columns are the distinct x values {0, θ}
    counts = np.histogram(z, bins=bins, range=(0, 1))[0].astype(float)
    for theta in thetas:
        if theta == 0:
            p = q = counts
        else:
            p = np.concatenate([counts, np.zeros(bins)])
            q = np.concatenate([np.zeros(bins), counts])
        jsd_hist.append(otdiv.jsd(p, q))
        x = np.c_[np.zeros(n), z]
        # the same z on both lines: the empirical measures are exact translates, so the
        # exact W1 between them is the true W1(P_0, P_θ) = |θ|
        w1.append(otdiv.wasserstein(x, np.c_[np.full(n, theta), z]))
        y = np.c_[np.full(n, theta), rng.random(n)]  # independent draws for the estimator
        jsd_samples.append(otdiv.jsd_knn(x, y))
    return np.array(jsd_hist), np.array(jsd_samples), np.array(w1)


def gaussians(mus):
    """JSD and KL of N(0,1), N(μ,1) on a fine grid; W1 from otdiv on the same grid."""
    grid = np.linspace(-12, 20, 4001)
    p = np.exp(-0.5 * grid**2)
    jsd, kl, w1 = [], [], []
    for mu in mus:
        q = np.exp(-0.5 * (grid - mu) ** 2)
        jsd.append(otdiv.jsd(p, q))
        kl.append(otdiv.kl(p, q))
        w1.append(otdiv.wasserstein(grid, grid, p, q))  # exact 1-D W1 of the two histograms
    return np.array(jsd), np.array(kl), np.array(w1)


def main() -> None:
    thetas = np.linspace(-1, 1, 41)
    jsd_hist, jsd_samples, w1 = parallel_lines(thetas)
    mus = np.linspace(0, 8, 81)
    g_jsd, g_kl, g_w1 = gaussians(mus)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(thetas, w1, "C0-", label="W1 (exact, otdiv.wasserstein)")
    ax1.plot(thetas, jsd_hist, "C3o", ms=3, label="JSD (otdiv.jsd on histograms)")
    ax1.plot(thetas, jsd_samples, "C1x", ms=4, label="JSD estimate (otdiv.jsd_knn)")
    ax1.axhline(LOG2, color="0.6", lw=0.8, ls="--")
    ax1.text(-1, LOG2 + 0.02, "log 2", color="0.4", fontsize=8)
    ax1.set(xlabel="θ", ylabel="distance / divergence (nats)",
            title="Parallel lines P_0 = (0, Z), P_θ = (θ, Z)")
    ax1.legend(fontsize=7, loc="lower left")

    ax2.plot(mus, g_w1, "C0-", label="W1 = |μ|")
    ax2.plot(mus, g_jsd, "C3-", label="JSD (saturates at log 2)")
    ax2.plot(mus, g_kl, "C2:", label="KL = μ²/2")
    ax2.axhline(LOG2, color="0.6", lw=0.8, ls="--")
    ax2.set(xlabel="μ", ylim=(0, 8.5), title="N(0, 1) vs N(μ, 1)")
    ax2.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(OUT, dpi=120)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
