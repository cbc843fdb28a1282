"""The pruned all-pairs pricers against the brute-force one: the same violated pairs, the same
count, the same most negative reduced costs per row, for potentials from a real solve, their
c-transforms (reduced costs exactly 0 on whole rows' minima) and perturbations of both. Two
pricers answer for the brute force: the k-d tree (``pricing_numba``) and the matrix-product
filter (``pricing_gemm``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from otdiv.kernels import pricing_gemm as pg
from otdiv.kernels import pricing_numba as pn
from otdiv.kernels import simplex_numba as sx
from otdiv.kernels.cost_numba import cost_matrix
from otdiv.ot import network_simplex as ns

TOL = 1e-14  # the solver's tolerance


def pairs(rows, cols):
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


PRICERS = pytest.mark.parametrize("pricer", [pn.most_negative, pg.most_negative],
                                  ids=["tree", "gemm"])


def same_answer(x, y, p, f, g, tol=TOL, per_row=4, pricer=pn.most_negative):
    """The two pricers agree: every violated pair and the count (per_row = m), and per row
    the chosen reduced costs (ties between equal costs may pick different columns)."""
    m = y.shape[0]
    rb, cb, tb = sx.most_negative(x, y, p, f, g, tol, m)
    rp, cp, tp = pricer(x, y, p, f, g, tol, m)
    assert tp == tb
    assert pairs(rp, cp) == pairs(rb, cb)
    assert rb.shape[0] == min(tb, rb.shape[0])  # per_row = m keeps every violated pair
    rb, cb, _ = sx.most_negative(x, y, p, f, g, tol, per_row)
    rp, cp, _ = pricer(x, y, p, f, g, tol, per_row)
    c = cost_matrix(x, y, p)
    if np.isfinite(c).all():  # the brute force against the stored matrix's rule
        r = c - f[:, None] - g[None, :]
        scale = np.maximum(c, np.maximum(np.abs(f)[:, None], np.abs(g)[None, :]))
        assert tb == int(np.sum(r < -tol * scale))
    red_b = c[rb, cb] - f[rb] - g[cb]
    red_p = c[rp, cp] - f[rp] - g[cp]
    assert np.array_equal(rb, rp)  # both list rows in order, per_row slots each
    for i in np.unique(rb):
        assert np.array_equal(np.sort(red_b[rb == i]), np.sort(red_p[rp == i]))
    return tb


def clouds(rng, n, m, d, duplicates=False):
    x = rng.standard_normal((n, d))
    y = 1.5 * rng.standard_normal((m, d)) + 0.5
    if duplicates:  # repeated points on both sides, and points shared by x and y
        x[n // 2:] = x[: n - n // 2]
        y[: m // 3] = x[: m // 3]
    scale = 2.0 ** np.ceil(np.log2(np.abs(np.concatenate([x, y])).max() * 2 * np.sqrt(d)))
    return x / scale, y / scale  # the solver's unit scale


def solved_potentials(x, y, p):
    n, m = x.shape[0], y.shape[0]
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    sol = ns.solve(x, y, a, b, p, max_pivots=10**9, memory_budget=1 << 30)
    assert sol.converged
    return sol.f, sol.g


@PRICERS
@pytest.mark.parametrize("d", [1, 2, 5, 16])
@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_same_violations_as_brute_force(d, p, pricer):
    rng = np.random.default_rng(1000 * d + int(10 * p))
    for seed in range(3):
        x, y = clouds(rng, 60 + 40 * seed, 90 - 20 * seed, d, duplicates=seed == 1)
        f, g = solved_potentials(x, y, p)
        assert same_answer(x, y, p, f, g, pricer=pricer) == 0  # the solver's certificate
        c = cost_matrix(x, y, p)
        f_ct = (c - g).min(1)  # c-transform: r = 0 exactly at every row's minima
        same_answer(x, y, p, f_ct, g, pricer=pricer)
        scale = np.abs(c).max()
        for noise in (1e-15, 1e-13, 1e-6, 1e-2):  # around the tolerance, and far from it
            df = noise * scale * rng.standard_normal(f.shape[0])
            dg = noise * scale * rng.standard_normal(g.shape[0])
            same_answer(x, y, p, f + df, g + dg, pricer=pricer)
            # violations at r of order noise
            same_answer(x, y, p, f_ct + np.abs(df), g, pricer=pricer)
        # many violations
        same_answer(x, y, p, f + 0.3 * scale, g - 0.1 * scale, pricer=pricer)
        same_answer(x, y, p, f, g, tol=0.0, pricer=pricer)


@PRICERS
@pytest.mark.threads(numba=1)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), m=st.integers(1, 70),
       d=st.sampled_from([1, 2, 3, 16]), p=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
       shift=st.floats(-1e3, 1e3), offset=st.sampled_from([0.0, 1.0, 1e8]),
       grid=st.booleans())
def test_same_violations_hypothesis(seed, n, m, d, p, shift, offset, grid, pricer):
    """Arbitrary potentials (a constant moved between f and g, large offsets), points on an
    integer grid (ties and duplicates) or not, boxes of one point."""
    rng = np.random.default_rng(seed)
    if grid:
        x = rng.integers(0, 4, (n, d)).astype(float)
        y = rng.integers(0, 4, (m, d)).astype(float)
    else:
        x, y = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    c = cost_matrix(x, y, p)
    g = rng.standard_normal(m) * rng.choice([0.0, 0.01, 1.0]) + offset
    f = (c - g).min(1) + rng.choice([0.0, 1e-14, 1e-3]) * rng.standard_normal(n)
    same_answer(x, y, p, f + shift, g - shift, pricer=pricer)


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5])
@pytest.mark.parametrize("far", [0.0, 1e6])
def test_matrix_product_filter_in_blocks_and_far_from_the_origin(monkeypatch, p, far):
    # several row blocks; clouds far from the origin (the centring's rounding) or not; the
    # c-transform puts r = 0 exactly on every row's minimum, the pairs the filter must cost
    monkeypatch.setattr(pg, "_BLOCK_ENTRIES", 5000)
    rng = np.random.default_rng(int(p * 10) + int(far > 0))
    x, y = clouds(rng, 300, 200, 24)
    x, y = x + far, y + far
    c = cost_matrix(x, y, p)
    for g in (0.01 * rng.standard_normal(200), np.zeros(200)):
        f = (c - g).min(1)
        same_answer(x, y, p, f, g, tol=0.0, pricer=pg.most_negative)
        for size in (1e-12, 1e-14):  # violations down to a few ulps (tol = 0 counts them)
            same_answer(x, y, p, f + size * np.abs(c).max() * rng.random(300), g, tol=0.0,
                        pricer=pg.most_negative)


def test_parallel_twin_and_one_column():
    rng = np.random.default_rng(7)
    x, y = clouds(rng, 3000, 600, 5)
    c = cost_matrix(x, y, 2.0)
    g = 0.1 * rng.standard_normal(600)
    f = (c - g).min(1) + 1e-4 * rng.standard_normal(3000)
    assert same_answer(x, y, 2.0, f, g) > 0  # 3000·20·5·levels steps: the parallel twin
    same_answer(x, y[:1], 2.0, f, g[:1])  # one column
    same_answer(x[:1], y, 2.0, f[:1], g)  # one row
    same_answer(x, np.repeat(y[:1], 50, axis=0), 1.0, f, np.zeros(50))  # one point, many times


def test_prunes_near_optimal_potentials():
    """The point of the tree: at optimal potentials most pairs are never costed."""
    rng = np.random.default_rng(3)
    x, y = clouds(rng, 1500, 1500, 2)
    f, g = solved_potentials(x, y, 2.0)
    perm, start, end, lo, hi, first_leaf = pn.build_tree(y, 16)
    gs, ys = g[perm], y[perm]
    bounds = pn.node_bounds(ys, gs, start, end, lo, hi, first_leaf)
    out = np.empty((1500, 4), np.int64)
    violated, costed = pn._price.serial(x, ys, perm, start, end, lo, hi, *bounds, first_leaf,
                                        2.0, f, gs, TOL, out)
    assert violated == 0
    assert costed < 0.2 * 1500 * 1500


def test_tree_pays_in_the_plane_not_in_d16():
    """In d = 16 the boxes rule out almost nothing: the sampled rows say so (and the brute
    force answers); in the plane they rule out most pairs."""
    rng = np.random.default_rng(11)
    for d, pays in ((16, False), (2, True)):
        x, y = clouds(rng, 1200, 300, d)
        f, g = solved_potentials(x, y, 2.0)
        assert same_answer(x, y, 2.0, f, g) == 0
        same_answer(x, y, 2.0, f + 1e-3 * rng.standard_normal(1200), g)
        perm, start, end, lo, hi, first_leaf = pn.build_tree(y, 16)
        gs = g[perm]
        tree = (y[perm], perm, start, end, lo, hi,
                *pn.node_bounds(y[perm], gs, start, end, lo, hi, first_leaf), first_leaf, 2.0)
        assert pn.tree_pays(x, tree, f, gs, TOL, 1) == pays


def test_tree_holds_every_point_once_in_its_box():
    rng = np.random.default_rng(5)
    y = np.round(rng.standard_normal((1000, 3)), 1)  # many ties along each coordinate
    perm, start, end, lo, hi, first_leaf = pn.build_tree(y, 16)
    assert np.array_equal(np.sort(perm), np.arange(1000))
    for k in range(start.shape[0]):
        pts = y[perm[start[k]:end[k]]]
        assert np.all(pts >= lo[k]) and np.all(pts <= hi[k])
        if k >= first_leaf:
            assert end[k] - start[k] <= 16
        else:  # children split the node at the median of the split coordinate
            assert (start[2 * k + 1], end[2 * k + 2]) == (start[k], end[k])
            assert end[2 * k + 1] == start[2 * k + 2]
            left, right = 2 * k + 1, 2 * k + 2
            assert np.any(hi[left] <= lo[right])


@PRICERS
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("scale", [1e-156, 1e-300, 1e150, 1e300])
def test_extreme_magnitudes_and_one_ulp_violations(p, scale, pricer):
    # subnormal squares (rounding is absolute there) and coordinates near the float range
    # (the product's centre and norms overflow): potentials one ulp above each row's
    # c-transform violate exactly the row minima, which tol = 0 must count
    rng = np.random.default_rng(int(np.log10(scale)) + 400 + 7 * int(p))
    for d in (1, 3, 16):
        x, y = rng.random((30, d)) * scale, rng.random((20, d)) * scale
        if scale > 1e200:
            x[0] = -x[0]  # a box as wide as the range: x − y overflows for some pairs
        with np.errstate(over="ignore", invalid="ignore"):
            c = cost_matrix(x, y, p)
        if not np.isfinite(c).all():
            c = np.where(np.isfinite(c), c, np.inf)
        g = np.zeros(20)
        f = np.nextafter(np.min(c, axis=1), np.inf)
        f[~np.isfinite(f)] = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            same_answer(x, y, p, f, g, tol=0.0, pricer=pricer)


@PRICERS
@pytest.mark.parametrize("case", ["subnormal", "near_max", "wide_box"])
def test_found_by_review(case, pricer):
    # inputs where a bound once ruled out a violated pair: squares in the subnormal range
    # (relative rounding bounds fail), coordinates whose mid-point overflows, a box so wide
    # that the norms overflow while a close pair's cost is finite
    if case == "subnormal":
        x, y = np.array([[2.616121342493164e-156]]), np.array([[2.9849114341412333e-156],
                                                               [8.142257405942803e-156]])
        p = 1.0
    elif case == "near_max":
        x, y, p = np.array([[1.0e308], [1.0e308 + 2.0**972]]), np.array([[1.0e308]]), 1.0
    else:
        x, y, p = np.array([[0.0], [1e160]]), np.array([[0.0]]), 2.0
    x, y = np.repeat(x, 13, axis=1), np.repeat(y, 13, axis=1)  # d >= pricing_gemm.MIN_DIM
    with np.errstate(over="ignore"):
        c = cost_matrix(x, y, p)
    g = np.zeros(y.shape[0])
    f = np.where(np.isfinite(c.min(1)), np.nextafter(c.min(1), np.inf), 0.0)
    f[1:] = np.minimum(f[1:], 0.0)  # the far point of "wide_box" violates nothing
    assert same_answer(x, y, p, f, g, tol=0.0, pricer=pricer) >= 1


@PRICERS
def test_empty_sides(pricer):
    for n, m in ((0, 4), (4, 0), (0, 0)):
        rows, cols, count = pricer(np.zeros((n, 2)), np.zeros((m, 2)), 1.0, np.zeros(n),
                                   np.zeros(m), TOL, 3)
        assert rows.shape == cols.shape == (0,) and count == 0


def test_neighbourhood_pricing_matches_a_loop_across_tasks():
    from otdiv.kernels import lift_numba as lift

    rng = np.random.default_rng(3)
    n, m = 40, 30
    x, y = rng.standard_normal((n, 2)), rng.standard_normal((m, 2))
    near_x, near_y = rng.integers(0, n, (n, 3)), rng.integers(0, m, (m, 5))
    c = cost_matrix(x, y, 1.0)
    g = rng.standard_normal(m)
    f = (c - g).min(1) + 0.3 * rng.random(n)  # some pairs violated
    src, dst = rng.integers(0, n, 50), rng.integers(0, m, 50) + n
    want = []
    for i, j in zip(src, dst - n, strict=True):
        cand = [(i, jj) for jj in near_y[j]] + [(ii, j) for ii in near_x[i]]
        want += [(a, b) for a, b in cand
                 if c[a, b] - f[a] - g[b] < -TOL * max(c[a, b], abs(f[a]), abs(g[b]))]
    for per_task in (1, 7, 64):  # compaction over many tasks, and one task
        rows, cols = np.empty(50 * 8, np.int64), np.empty(50 * 8, np.int64)
        k = lift.local_violations(x, y, 1.0, f, g, TOL, src, dst, n, near_x, near_y, rows,
                                  cols, per_task)
        assert list(zip(rows[:k].tolist(), cols[:k].tolist(), strict=True)) == want
        assert k > 0
