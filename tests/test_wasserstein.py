"""Exact W_p, transport and sliced W against POT, scipy, brute force and finite differences."""

import itertools
import warnings

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance

from otdiv import ConvergenceWarning, sliced_wasserstein, transport, wasserstein
from otdiv.metrics.sliced import _directions


def pot_wp(x, y, a=None, b=None, p=1.0):
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    a = np.full(len(x), 1 / len(x)) if a is None else np.asarray(a) / np.sum(a)
    b = np.full(len(y), 1 / len(y)) if b is None else np.asarray(b) / np.sum(b)
    M = ot.dist(x, y, metric="euclidean") ** p
    return ot.emd2(a, b, M, numItermax=10**8) ** (1 / p)


# ----------------------------------------------------------------------- references


@pytest.mark.parametrize("p", [1, 1.5, 2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_pot_in_2d(rng, p, weighted):
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(45, 2)) + 0.5
    a, b = (rng.random(60), rng.random(45)) if weighted else (None, None)
    np.testing.assert_allclose(wasserstein(x, y, a, b, p=p), pot_wp(x, y, a, b, p), rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sizes", [(200, 200), (150, 97), (1, 5)])
def test_1d_matches_scipy_w1(rng, weighted, sizes):
    n, m = sizes
    x, y = rng.normal(size=n), rng.exponential(size=m)
    a, b = (rng.random(n), rng.random(m)) if weighted else (None, None)
    np.testing.assert_allclose(
        wasserstein(x, y, a, b), wasserstein_distance(x, y, a, b), rtol=1e-11
    )


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5])
def test_1d_matches_pot_wasserstein_1d(rng, p):
    x, y = rng.normal(size=300), rng.normal(size=200) * 2
    a, b = rng.random(300), rng.random(200)
    ref = ot.wasserstein_1d(x, y, a / a.sum(), b / b.sum(), p=p) ** (1 / p)
    np.testing.assert_allclose(wasserstein(x, y, a, b, p=p), ref, rtol=1e-10)
    # the closed form and the network simplex agree on the line
    np.testing.assert_allclose(
        wasserstein(x, y, a, b, p=p, method="network_simplex"), ref, rtol=1e-10
    )


def test_brute_force_over_permutations(rng):
    # uniform weights, n = m: an optimal plan is a permutation (Birkhoff–von Neumann)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    for p in (1.0, 2.0):
        C = np.linalg.norm(x[:, None] - y[None], axis=-1) ** p
        best = min(C[range(6), perm].mean() for perm in itertools.permutations(range(6)))
        np.testing.assert_allclose(wasserstein(x, y, p=p), best ** (1 / p), rtol=1e-12)


def test_lazy_path_equals_dense(rng):
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(250, 2)) + 1
    a, b = rng.random(300), rng.random(250)
    for p in (1, 2):
        dense = wasserstein(x, y, a, b, p=p, method="network_simplex")
        lazy = wasserstein(x, y, a, b, p=p, method="network_simplex_lazy")
        auto_small_budget = wasserstein(x, y, a, b, p=p, memory_budget=1e3)
        np.testing.assert_allclose(lazy, dense, rtol=1e-10)
        np.testing.assert_allclose(auto_small_budget, dense, rtol=1e-10)
    with pytest.raises(ValueError, match="supports p = 1 or 2"):
        wasserstein(x, y, p=3, method="network_simplex_lazy")


# ---------------------------------------------------------------- otdiv's sparse simplex


def direct_cost(x, y, p):
    # ot.dist's expansion ||x||^2 + ||y||^2 - 2 x.y loses ~1e-8 at coincident points
    return cdist(x, y) ** p


def assert_optimal(res, x, y, a, b, p):
    """The returned plan is feasible, the potentials are dual feasible and tight on it, and
    the duality gap is closed — an optimality certificate independent of any solver."""
    C = direct_cost(x, y, p)
    rows, cols, mass = res.plan_support
    assert (mass > 0).all()
    np.testing.assert_allclose(np.bincount(rows, mass, len(x)), a, atol=1e-14)
    np.testing.assert_allclose(np.bincount(cols, mass, len(y)), b, atol=1e-14)
    scale = C.max()
    assert (res.f[:, None] + res.g[None, :] - C).max() <= 1e-10 * scale
    np.testing.assert_allclose(res.f[rows] + res.g[cols], C[rows, cols], atol=1e-10 * scale)
    np.testing.assert_allclose(a @ res.f + b @ res.g, res.cost, rtol=1e-10, atol=1e-12 * scale)
    np.testing.assert_allclose(mass @ C[rows, cols], res.cost, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("case", ["uniform", "weighted", "n != m", "zero weights", "ties",
                                  "identical"])
def test_sparse_simplex_is_optimal_and_matches_pot(rng, p, case):
    n, m, d = 80, (57 if case in ("n != m", "weighted") else 80), 3
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) * 1.5 + 0.3
    if case == "ties":
        x, y = np.round(x), np.round(y)  # many equal costs and repeated points
    if case == "identical":
        y = x.copy()
    a = b = None
    if case in ("weighted", "zero weights", "n != m"):
        a, b = rng.random(n), rng.random(m)
        if case == "zero weights":
            a[:5], b[-3:] = 0.0, 0.0
        a, b = a / a.sum(), b / b.sum()
    A = np.full(n, 1 / n) if a is None else a
    B = np.full(m, 1 / m) if b is None else b
    ref = ot.emd2(A, B, direct_cost(x, y, p), numItermax=10**8)
    res = wasserstein(x, y, a, b, p=p, method="sparse_simplex", return_result=True)
    np.testing.assert_allclose(res.cost, ref, rtol=1e-11, atol=1e-14)
    assert res.converged and res.status == "optimal" and res.method == "sparse_simplex"
    assert_optimal(res, x, y, A, B, p)


@pytest.mark.parametrize("layout", ["far clusters", "far outlier"])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_sparse_simplex_is_exact_across_scales(layout, p):
    # costs of 1e-2 that decide the matching next to costs of L^p: a tolerance tied to the
    # diameter, or a tree arc re-entering on rounding noise, broke these (review of issue 2)
    from scipy.optimize import linear_sum_assignment

    for seed in range(3):
        r = np.random.default_rng(seed)
        x, y = r.random((60, 2)), r.random((60, 2))
        if layout == "far clusters":
            x[30:, 0] += 1e4 if p < 3 else 1e3
            y[30:, 0] += 1e4 if p < 3 else 1e3
        else:
            x[0] = y[0] = [1e5 if p < 3 else 1e3, 0.0]
        C = direct_cost(x, y, p)
        i, j = linear_sum_assignment(C)
        res = wasserstein(x, y, p=p, method="sparse_simplex", return_result=True)
        np.testing.assert_allclose(res.cost, C[i, j].mean(), rtol=1e-12)
        assert res.converged


def test_sparse_simplex_huge_coordinates():
    # squared distances of 1e310 overflow; the neighbour search and the start must not care
    x = np.array([[0.0, 0.0], [1e155, 0.0]])
    y = np.array([[0.0, 1.0], [1e155, 1.0]])
    assert wasserstein(x, y, method="sparse_simplex") == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("n", [1000, 1002])
def test_sparse_simplex_coarse_to_fine_levels(rng, n):
    # assignment problems above the coarse-to-fine base size (500 points): 1000 -> 500, and
    # 1002 -> 501, an odd size where the recursion stops
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) * 1.5 + 0.5
    res = wasserstein(x, y, method="sparse_simplex", return_result=True)
    u = np.full(n, 1 / n)
    np.testing.assert_allclose(res.cost, ot.emd2(u, u, direct_cost(x, y, 1.0)), rtol=1e-12)
    assert_optimal(res, x, y, u, u, 1.0)
    # an optimal vertex of the assignment polytope is a permutation (Birkhoff)
    rows, cols, mass = res.plan_support
    assert sorted(rows) == list(range(n)) and sorted(cols) == list(range(n))
    np.testing.assert_allclose(mass, 1 / n, rtol=1e-12)


def test_sparse_simplex_prices_on_the_fly_outside_the_budget(rng):
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 1
    a = rng.random(300)
    for weights in ((None, None), (a, None)):
        stored = wasserstein(x, y, *weights, method="sparse_simplex")
        online = wasserstein(x, y, *weights, method="sparse_simplex", memory_budget=1e3)
        np.testing.assert_allclose(online, stored, rtol=1e-13)
        np.testing.assert_allclose(online, pot_wp(x, y, *weights), rtol=1e-10)


def test_sparse_simplex_pivot_cap_warns_and_flags(rng):
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 2
    with pytest.warns(ConvergenceWarning, match="not the optimum"):
        res = wasserstein(x, y, method="sparse_simplex", max_iter=5, return_result=True)
    assert not res.converged and res.status == "max_iter_reached"
    assert res.cost > pot_wp(x, y) * (1 + 1e-6)  # a feasible plan, not the optimum


@pytest.mark.parametrize("n, d, p, weighted, budget, expected", [
    (10, 1, 1.0, False, None, "1d"),
    (1000, 2, 1.0, False, None, "sparse_simplex"),  # n·m >= 10^6
    (1000, 2, 2.0, True, None, "sparse_simplex"),  # n·m >= 10^6, weighted too
    (300, 2, 1.0, True, None, "network_simplex"),  # small: POT's dense simplex
    (200, 2, 1.0, False, None, "network_simplex"),  # small
    (60, 2, 1.0, False, 1e3, "sparse_simplex"),  # beyond the memory budget
    (60, 2, 2.0, True, 1e3, "sparse_simplex"),  # beyond it, weighted, p = 2
    (60, 2, 3.0, True, 1e3, "sparse_simplex"),  # beyond it, weighted, p = 3
])
def test_auto_picks_its_documented_method_and_the_optimum(rng, n, d, p, weighted, budget,
                                                          expected):
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5
    a = rng.random(n) + 0.1 if weighted else None
    opts = {} if budget is None else {"memory_budget": budget}
    res = wasserstein(x, y, a, p=p, return_result=True, **opts)
    assert res.method == expected and res.status == "optimal"
    np.testing.assert_allclose(res.value, pot_wp(x, y, a, None, p), rtol=1e-10)


# ----------------------------------------------------------------------- closed forms


def test_two_diracs_and_translation(rng):
    assert wasserstein(np.array([[1.0, 2.0]]), np.array([[4.0, 6.0]]), p=3) == pytest.approx(5.0)
    x = rng.normal(size=(40, 3))
    t = np.array([0.3, -1.2, 2.0])
    for p in (1, 2):
        np.testing.assert_allclose(wasserstein(x, x + t, p=p), np.linalg.norm(t), rtol=1e-12)


@given(
    st.lists(st.floats(-100, 100), min_size=1, max_size=12),
    st.lists(st.floats(-100, 100), min_size=1, max_size=12),
)
def test_1d_w1_le_w2_and_symmetry(xs, ys):
    x, y = np.array(xs), np.array(ys)
    w1, w2 = wasserstein(x, y, p=1), wasserstein(x, y, p=2)
    assert w1 <= w2 + 1e-9 * (1 + w2)
    assert w1 == pytest.approx(wasserstein(y, x, p=1), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(w1, wasserstein_distance(x, y), rtol=1e-9, atol=1e-12)


@given(st.integers(1, 5), st.floats(0.01, 100))
def test_weight_scaling_is_invisible(k, scale):
    rng = np.random.default_rng(k)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2))
    a, b = rng.random(7) + 0.1, rng.random(5) + 0.1
    np.testing.assert_allclose(
        wasserstein(x, y, a * scale, b), wasserstein(x, y, a, b / scale), rtol=1e-10
    )


def test_result_object(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    a, b = rng.random(30), rng.random(20)
    a, b = a / a.sum(), b / b.sum()
    for d_x, d_y in ((x, y), (x[:, 0], y[:, 0])):
        r = wasserstein(d_x, d_y, a, b, p=2, return_result=True)
        assert r.converged and r.status == "optimal"
        np.testing.assert_allclose(r.value, r.cost**0.5, rtol=1e-12)
        np.testing.assert_allclose(r.plan.sum(1), a, atol=1e-12)
        np.testing.assert_allclose(r.plan.sum(0), b, atol=1e-12)
        # strong duality and dual feasibility of the potentials
        np.testing.assert_allclose(a @ r.f + b @ r.g, r.cost, rtol=1e-9)
        C = np.linalg.norm(d_x.reshape(30, -1)[:, None] - d_y.reshape(20, -1)[None], axis=-1) ** 2
        assert (r.f[:, None] + r.g[None] <= C + 1e-9).all()
        np.testing.assert_allclose((r.plan * C).sum(), r.cost, rtol=1e-12)


def test_capped_simplex_warns_and_flags(rng):
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        r = wasserstein(x, y, max_iter=2, return_result=True)
    assert not r.converged and r.status == "max_iter_reached"


# ----------------------------------------------------------------------- transport


def test_transport_exact_matches_pot(rng):
    a, b = rng.random(8) * 3, rng.random(6)
    b *= a.sum() / b.sum()
    C = rng.random((8, 6))
    r = transport(a, b, C)
    ref = ot.emd2(a, b, C)
    np.testing.assert_allclose(r.value, ref, rtol=1e-12)
    np.testing.assert_allclose(r.plan.sum(1), a, atol=1e-12)
    np.testing.assert_allclose(a @ r.f + b @ r.g, r.value, rtol=1e-10)


def test_transport_torch_gradient_is_plan(rng):
    a = torch.tensor(rng.random(5), requires_grad=True)
    b_np = rng.random(4)
    b = torch.tensor(b_np * float(a.detach().sum()) / b_np.sum())
    C = torch.tensor(rng.random((5, 4)), requires_grad=True)
    r = transport(a, b, C)
    r.value.backward()
    np.testing.assert_allclose(C.grad.numpy(), r.plan, atol=1e-12)
    np.testing.assert_allclose(r.value.item(), ot.emd2(a.detach().numpy(), b.numpy(),
                                                      C.detach().numpy()), rtol=1e-12)


# ----------------------------------------------------------------------- gradients


def finite_difference(fn, t, h=1e-6):
    g = np.zeros(t.shape)
    flat = t.detach().clone()
    for idx in np.ndindex(*t.shape):
        up, dn = flat.clone(), flat.clone()
        up[idx] += h
        dn[idx] -= h
        g[idx] = (float(fn(up)) - float(fn(dn))) / (2 * h)
    return g


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize(("d", "method"), [(1, "auto"), (2, "auto"), (2, "sparse_simplex")])
def test_gradients_match_finite_differences(p, d, method):
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.normal(size=(6, d)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(5, d)) + 0.7, requires_grad=True)
    a = torch.tensor(rng.random(6) + 0.5, requires_grad=True)
    b = torch.tensor(rng.random(5) + 0.5, requires_grad=True)
    value = wasserstein(x, y, a, b, p=p, method=method)
    value.backward()
    np.testing.assert_allclose(value.item(), pot_wp(x.detach().numpy(), y.detach().numpy(),
                                                    a.detach().numpy(), b.detach().numpy(), p),
                               rtol=1e-10)
    for t, fn in (
        (x, lambda v: wasserstein(v, y.detach(), a.detach(), b.detach(), p=p, method=method)),
        (y, lambda v: wasserstein(x.detach(), v, a.detach(), b.detach(), p=p, method=method)),
        (a, lambda v: wasserstein(x.detach(), y.detach(), v, b.detach(), p=p, method=method)),
        (b, lambda v: wasserstein(x.detach(), y.detach(), a.detach(), v, p=p, method=method)),
    ):
        np.testing.assert_allclose(t.grad.numpy(), finite_difference(fn, t), atol=1e-5)


def test_gradient_finite_at_identical_inputs():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]], requires_grad=True)
    for p in (1, 2):
        value = wasserstein(x, x.detach().clone(), p=p)
        (gx,) = torch.autograd.grad(value, x)
        assert value.item() == 0.0
        assert torch.isfinite(gx).all()


def test_float32_path_agrees(rng):
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(40, 2))
    v32 = wasserstein(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    np.testing.assert_allclose(float(v32), wasserstein(x, y), rtol=1e-5)


# ----------------------------------------------------------------------- sliced


@pytest.mark.parametrize("p", [1.0, 2.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_sliced_matches_projected_scipy(rng, p, weighted):
    x, y = rng.normal(size=(80, 3)), rng.normal(size=(80 if not weighted else 55, 3)) + 0.3
    a, b = (rng.random(80), rng.random(55)) if weighted else (None, None)
    theta = _directions(np.random.default_rng(5), 3, 20)
    per = []
    for k in range(20):
        xp, yp = x @ theta[:, k], y @ theta[:, k]
        if p == 1.0:
            per.append(wasserstein_distance(xp, yp, a, b))
        else:
            aa = None if a is None else a / a.sum()
            bb = None if b is None else b / b.sum()
            per.append(ot.wasserstein_1d(xp, yp, aa, bb, p=p))
    ref = np.mean(per) ** (1 / p)
    value = sliced_wasserstein(x, y, a, b, p=p, n_projections=20, seed=5)
    np.testing.assert_allclose(value, ref, rtol=1e-10)
    tensor = sliced_wasserstein(
        torch.tensor(x), torch.tensor(y),
        None if a is None else torch.tensor(a), None if b is None else torch.tensor(b),
        p=p, n_projections=20, seed=5,
    )
    np.testing.assert_allclose(float(tensor), ref, rtol=1e-10)


def test_sliced_is_seeded_and_bounded_by_w(rng):
    x, y = rng.normal(size=(100, 4)), rng.normal(size=(100, 4)) + 0.5
    s1 = sliced_wasserstein(x, y, p=2, seed=3)
    assert s1 == sliced_wasserstein(x, y, p=2, seed=3)
    # projections are 1-Lipschitz, so each projected W_p <= W_p and so is their p-mean
    assert s1 <= wasserstein(x, y, p=2) + 1e-12


def test_sliced_gradient_matches_finite_differences(rng):
    x = torch.tensor(rng.normal(size=(7, 2)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(5, 2)))
    b = torch.tensor(rng.random(5) + 0.2)
    value = sliced_wasserstein(x, y, b=b, p=2, n_projections=8, seed=1)
    value.backward()
    fd = finite_difference(lambda v: sliced_wasserstein(v, y, b=b, p=2, n_projections=8,
                                                        seed=1), x)
    np.testing.assert_allclose(x.grad.numpy(), fd, atol=1e-5)


def test_no_warning_on_valid_input(rng):
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wasserstein(x, y)
        sliced_wasserstein(x, y, seed=0)


def test_sliced_directions_do_not_depend_on_the_chunking(monkeypatch):
    # the directions are drawn one after another (numpy's standard_normal((L, d)) rows,
    # normalised), so chunking the projections to bound memory never changes the value: the
    # benchmark once compared POT on one draw with otdiv on chunked draws (6 % apart)
    import otdiv.metrics.sliced as sliced_module

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 4)), rng.standard_normal((200, 4)) + 0.5
    theta = np.random.default_rng(7).standard_normal((50, 4))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    want = ot.sliced_wasserstein_distance(x, y, p=2, projections=theta.T)
    whole = sliced_wasserstein(x, y, p=2, n_projections=50, seed=7)
    monkeypatch.setattr(sliced_module, "CHUNK_ENTRIES", 500 * 7)  # chunks of 7 directions
    chunked = sliced_wasserstein(x, y, p=2, n_projections=50, seed=7)
    assert whole == pytest.approx(want, rel=1e-12) and chunked == pytest.approx(want, rel=1e-12)
