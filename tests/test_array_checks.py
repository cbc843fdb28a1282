"""The shared checks and kind helpers of otdiv._array added for divergences, gan and testing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otdiv._array import broadcast_pair, check_scores, namespace, output
from otdiv._scaling import times_pow2


@pytest.mark.parametrize("shape", [(5,), (5, 1)])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_check_scores_accepts_one_score_per_sample(shape, kind):
    s = np.arange(5.0).reshape(shape)
    if kind == "torch":
        s = torch.tensor(s, requires_grad=True)
    out = check_scores(s, 5, "scores")
    assert tuple(out.shape) == (5,)
    if kind == "torch":
        out.sum().backward()  # the graph is kept
        assert torch.equal(s.grad, torch.ones(shape, dtype=torch.float64))
    np.testing.assert_array_equal(np.asarray(out.detach() if kind == "torch" else out),
                                  np.arange(5.0))


@pytest.mark.parametrize("shape", [(), (5, 2), (1, 5), (4,), (5, 0)])
def test_check_scores_refuses_other_shapes_naming_the_argument(shape):
    with pytest.raises(ValueError, match=r"fx must hold one value per point, shape \(5,\)"):
        check_scores(np.zeros(shape), 5, "fx", what="value", per="point")


def test_check_scores_tensor_only():
    with pytest.raises(TypeError, match="critic must return a torch tensor, got ndarray"):
        check_scores(np.zeros(3), 3, "critic", verb="return", tensor=True)


@pytest.mark.parametrize("e", [-1074, -149, -3, 0, 5, 149, 1023])
def test_times_pow2_is_exact_for_both_kinds(e):
    x = np.array([1.5, -0.75, 3.0])
    want = np.ldexp(x, e)  # exact: a power of two only changes the exponent
    got = times_pow2(torch.tensor(x), e).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(times_pow2(x, e), want)


def test_times_pow2_float32_beyond_its_own_powers():
    # 2^149 is no float32, but a float32 subnormal times it is an ordinary number
    x = torch.tensor([2.0**-149, 3 * 2.0**-149], dtype=torch.float32)
    assert times_pow2(x, 149).tolist() == [1.0, 3.0]


def test_broadcast_pair_promotes_and_names_both_shapes():
    a, b = broadcast_pair(torch.ones(3, dtype=torch.float32), torch.ones(2, 1, dtype=torch.float64))
    assert a.shape == b.shape == (2, 3) and a.dtype == b.dtype == torch.float64
    with pytest.raises(ValueError, match=r"p and q must have broadcastable shapes, got "
                                         r"p.shape=\(3,\) and q.shape=\(2,\)"):
        broadcast_pair(np.ones(3), np.ones(2), ("p", "q"))


def test_output_float_for_0d_numpy_arrays_for_batches_tensors_as_they_are():
    assert type(output(np.float64(2.0), "numpy")) is float
    assert isinstance(output(np.ones(3), "numpy"), np.ndarray)
    t = torch.ones(())
    assert output(t, "torch") is t
    assert namespace("torch") is torch and namespace("numpy") is np


def test_check_seed_states_the_range_it_keeps():
    from otdiv._array import SEED_LIMIT, check_seed

    assert SEED_LIMIT == 2**63 - 2**20
    assert check_seed(SEED_LIMIT - 1) == SEED_LIMIT - 1
    for bad in (SEED_LIMIT, 2**63 - 1, -1):
        with pytest.raises(ValueError, match=r"seed must be None or an integer in "
                                             r"\[0, 2\*\*63 - 2\*\*20\) \(at most "
                                             rf"{SEED_LIMIT - 1}\), got {bad}"):
            check_seed(bad)
    with pytest.raises(TypeError, match=r"\[0, 2\*\*63 - 2\*\*20\)"):
        check_seed(1.0, "seed")
