"""The kernels' shared pieces: the one power t^q and the serial/parallel twins on both sides
of the work threshold, against scipy and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, 4.0])
@pytest.mark.parametrize("n", [7, 600])  # 600·600·2 steps: above PARALLEL_MIN_WORK
def test_cost_matrix_and_pair_cost_match_scipy_on_both_twins(rng, p, n):
    from otdiv.kernels._numba import PARALLEL_MIN_WORK
    from otdiv.kernels.cost_numba import cost_matrix, pair_cost

    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    assert (n * n * 2 >= PARALLEL_MIN_WORK) == (n == 600)
    ref = cdist(x, y) ** p
    # |x − y|^p from a squared norm: a few ulps of the square root and the power
    np.testing.assert_allclose(cost_matrix(x, y, p), ref, rtol=8 * p * np.finfo(float).eps)
    rows = np.repeat(np.arange(n), n)
    cols = np.tile(np.arange(n), n)
    np.testing.assert_array_equal(pair_cost(x, y, rows, cols, p), cost_matrix(x, y, p).ravel())


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5])
def test_one_dimensional_costs_use_the_absolute_difference(rng, p):
    from otdiv.kernels.transport1d_numba import sorted_equal_uniform

    xs, ys = np.sort(rng.normal(size=50)), np.sort(rng.normal(size=50))
    got = sorted_equal_uniform(xs, ys, p)
    np.testing.assert_allclose(got, np.mean(np.abs(xs - ys) ** p), rtol=1e-13)
    # no square is formed: differences of 1e-200 keep their p-th power (a square underflows)
    tiny = sorted_equal_uniform(np.array([0.0]), np.array([1e-200]), 1.0)
    assert tiny == 1e-200


def test_torch_power_has_zero_gradient_at_zero():
    torch = pytest.importorskip("torch")
    from otdiv.kernels.cost_torch import power

    t = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    out = power(t, 0.5)
    out.sum().backward()
    assert out.tolist() == [0.0, 2.0]
    assert t.grad.tolist() == [0.0, 0.25]  # d sqrt(t)/dt = 1/(2 sqrt t); 0 instead of NaN at 0
