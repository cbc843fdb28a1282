"""Exact OT, transport and sliced W at the ends of the float range and on hostile inputs.

Truths: homogeneity (W_p(c x, c y) = c W_p(x, y), OT(s a, s b, c C) = s c OT(a, b, C)),
scipy's HiGHS linear program on small problems, closed forms, finite differences.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.spatial.distance import cdist

from otdiv import sliced_wasserstein, transport, wasserstein


def clouds(seed, n=9, m=11, d=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((m, d)) + 0.7


def lp_optimum(a, b, C):
    """min <P, C> over couplings, by HiGHS (an independent solver)."""
    n, m = C.shape
    A = np.vstack([np.kron(np.eye(n), np.ones(m)), np.kron(np.ones(n), np.eye(m))])
    res = linprog(C.ravel(), A_eq=A, b_eq=np.r_[a, b], method="highs")
    assert res.status == 0
    return res.fun


def test_tiny_masses_do_not_crash_the_solver():
    code = ("import numpy as np, otdiv; r = otdiv.transport(np.array([1e-200, 1e-200]), "
            "np.array([2e-200, 0.]), np.array([[1., 2.], [3., 1.]])); print(r.value)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # all mass to column 0: cost 1e-200 * 1 + 1e-200 * 3
    assert float(proc.stdout.strip()) == pytest.approx(4e-200, rel=1e-12)


@settings(max_examples=25)
@given(k=st.integers(-300, 300), p=st.sampled_from([1.0, 2.0, 3.0]),
       method=st.sampled_from(["network_simplex", "sparse_simplex", "network_simplex_lazy"]),
       seed=st.integers(0, 2**16))
def test_wasserstein_is_homogeneous_over_the_float_range(k, p, method, seed):
    if method == "network_simplex_lazy" and p == 3.0:
        p = 2.0
    x, y = clouds(seed)
    c = 10.0**k
    ref = wasserstein(x, y, p=p, method="network_simplex")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = wasserstein(c * x, c * y, p=p, method=method)
    assert np.isfinite(got) and got == pytest.approx(c * ref, rel=1e-9)


@settings(max_examples=25)
@given(k=st.integers(-300, 300), j=st.integers(-300, 300), seed=st.integers(0, 2**16))
def test_transport_is_homogeneous_in_masses_and_costs(k, j, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random(5) + 0.1, rng.random(6) + 0.1
    b *= a.sum() / b.sum()
    C = rng.random((5, 6))
    ref = lp_optimum(a, b, C)
    s, c = 10.0**k, 10.0**j
    res = transport(s * a, s * b, c * C)
    expected = s * c * ref
    if not 1e-300 < expected < 1e300:  # the value itself leaves the float range
        return
    assert res.value == pytest.approx(expected, rel=1e-9)
    assert res.plan.sum() == pytest.approx(s * a.sum(), rel=1e-9)


@settings(max_examples=20)
@given(k=st.integers(-300, 300), seed=st.integers(0, 2**16))
def test_sliced_is_homogeneous(k, seed):
    x, y = clouds(seed)
    c = 10.0**k
    ref = sliced_wasserstein(x, y, seed=1, n_projections=20)
    assert sliced_wasserstein(c * x, c * y, seed=1, n_projections=20) == pytest.approx(
        c * ref, rel=1e-9)


@example(z=np.array([[0.0, 0.0], [6.3689094452420934e-09, 0.0], [0.0, 0.0], [0.0, 0.0]]))
@given(z=st.lists(st.tuples(st.sampled_from([0.0, 1e-9, 6.4e-9, 1.0]),
                            st.sampled_from([0.0, 1e-12, 1.0])), min_size=1, max_size=5)
       .map(np.array))
def test_a_cloud_is_at_distance_zero_from_itself(z):
    for p in (1.0, 2.0, 3.0, 1000.0):
        assert wasserstein(z, z.copy(), p=p) == 0.0


@pytest.mark.parametrize("p", [5.0, 10.0, 20.0])
def test_moderately_large_p_against_highs(p):
    x, y = clouds(0)
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    w = wasserstein(x, y, p=p)
    D = cdist(x, y)
    ref = lp_optimum(a, b, (D / w) ** p) ** (1 / p) * w  # the LP at the scale of W_p
    assert w == pytest.approx(ref, rel=1e-9)


def test_huge_p_is_refused_not_zero():
    x, y = clouds(0)
    with pytest.raises(ValueError, match="p=1000 is too large"):
        wasserstein(x, y, p=1000)


def test_large_coordinates_do_not_overflow():
    assert wasserstein(np.array([0.0, 1e200]), np.array([1.0, 2.0]), p=2) == pytest.approx(
        np.sqrt(0.5) * 1e200, rel=1e-12)


def test_weights_whose_sum_overflows():
    x, y = clouds(1)
    big = np.full(len(x), 1e308)
    assert wasserstein(x, y, a=big) == pytest.approx(wasserstein(x, y), rel=1e-12)
    assert sliced_wasserstein(x, y, a=big, seed=0) == pytest.approx(
        sliced_wasserstein(x, y, seed=0), rel=1e-12)
    C = cdist(x, x)
    res = transport(np.full(len(x), 1e308), np.full(len(x), 1e308), C)
    assert res.value == 0.0  # the identity coupling; the masses' sum is past the range


def test_torch_transport_returns_tensors_with_gradients():
    rng = np.random.default_rng(2)
    C = torch.tensor(rng.random((4, 5)), requires_grad=True)
    a, b = torch.full((4,), 0.25, dtype=torch.float64), torch.full((5,), 0.2,
                                                                    dtype=torch.float64)
    res = transport(a, b, C)
    assert isinstance(res.plan, torch.Tensor) and res.plan.dtype == C.dtype
    res.value.backward()
    assert torch.allclose(C.grad, res.plan)  # envelope theorem: d OT / d C = P


def test_sliced_is_differentiable_in_the_weights():
    x, y = (torch.tensor(v) for v in clouds(3, n=6, m=7, d=2))
    a = torch.tensor(np.random.default_rng(4).random(6) + 0.5, requires_grad=True)

    def sw(w):
        return sliced_wasserstein(x, y, a=w, p=2, seed=5, n_projections=8) ** 2

    sw(a).backward()
    h = 1e-6
    for i in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[i] = h
        fd = (sw(a.detach() + e) - sw(a.detach() - e)) / (2 * h)
        assert float(a.grad[i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)


def test_sliced_limits_and_kinds():
    x, y = clouds(0)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(x, y, n_projections=10**12)
    for bad in ("a", 1.5):
        with pytest.raises(TypeError, match="seed"):
            sliced_wasserstein(x, y, seed=bad)
    for bad in (-1, 2**70):
        with pytest.raises(ValueError, match="seed"):
            sliced_wasserstein(x, y, seed=bad)
    mixed = sliced_wasserstein(torch.tensor(x), torch.tensor(y).float(), seed=0)
    assert mixed.dtype == torch.float64
    big = sliced_wasserstein(torch.tensor(x * 1e30).float(), torch.tensor(y * 1e30).float(),
                             seed=0)
    assert float(big) == pytest.approx(1e30 * sliced_wasserstein(x, y, seed=0), rel=1e-5)


def test_refusals_name_the_argument():
    x, y = clouds(0)
    with pytest.raises(TypeError, match="masked array"):
        wasserstein(np.ma.masked_array(x, mask=np.zeros_like(x)), y)
    with pytest.raises(ValueError, match="max_iter"):
        wasserstein(x, y, max_iter=10**20)
    with pytest.raises(ValueError, match=r"otdiv\.transport\(a, b, cost\)"):
        wasserstein(np.full(3, 1 / 3), np.full(3, 1 / 3), np.eye(3))
    with pytest.raises(ValueError, match="no unbalanced solver") as err:
        transport(np.array([1.0, 1.0]), np.array([1.0, 3.0]), np.eye(2))
    assert "use an unbalanced solver" not in str(err.value)
