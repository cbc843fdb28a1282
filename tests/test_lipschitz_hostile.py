"""lipschitz_bounds on hostile critics and inputs: clear errors, never NaN, never lower > upper."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch

from otdiv import lipschitz_bounds


def _mlp(seed: int, widths=(2, 16, 16, 1), dtype=torch.float32):
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).to(dtype)


def test_a_callable_without_gradients_is_a_value_error():
    x = torch.randn(20, 2)
    detached = lambda z: torch.tensor(np.tanh(z.detach().numpy()).sum(1))  # noqa: E731
    with pytest.raises(ValueError, match=r"does not require grad.*lipschitz_empirical"):
        lipschitz_bounds(detached, x)


@pytest.mark.parametrize("where", ["weight", "bias"])
def test_non_finite_parameters_are_refused(where):
    net = _mlp(0)
    with torch.no_grad():
        getattr(net[2], where).view(-1)[0] = math.nan
    with pytest.raises(ValueError, match=rf"NaN or inf in its parameter '2\.{where}'"):
        lipschitz_bounds(net, torch.randn(10, 2))


def test_mixed_precision_is_computed_in_the_wider_dtype():
    net = _mlp(1)
    x = torch.randn(40, 2, dtype=torch.float64)
    b = lipschitz_bounds(net, x, seed=0)
    # the same critic in float64 is the reference: upper is certified for the float32
    # weights read exactly, and the lower bound is a gradient norm of that function
    ref = lipschitz_bounds(copy.deepcopy(net).double(), x, seed=0)
    assert b.upper == pytest.approx(ref.upper, rel=1e-12)
    assert 0 < b.lower <= b.upper * (1 + 1e-12)
    assert b.witness.dtype == torch.float64
    assert next(net.parameters()).dtype == torch.float32  # the caller's critic is untouched
    b32 = lipschitz_bounds(net.double().float(), x.float(), seed=0)
    assert b32.upper == pytest.approx(ref.upper, rel=1e-6)


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_weights_at_the_ends_of_float32_never_give_lower_above_upper(scale):
    net = _mlp(2, widths=(2, 16, 16, 16, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    x = torch.randn(30, 2)
    b = lipschitz_bounds(net, x, seed=0)
    assert math.isfinite(b.lower) and math.isfinite(b.upper)
    # a 4-layer ReLU net scaled by s per layer has Lipschitz constant s^4 times the original
    ref = lipschitz_bounds(_mlp(2, widths=(2, 16, 16, 16, 1)).double(), x.double(), seed=0)
    assert b.upper == pytest.approx(ref.upper * scale**4, rel=1e-5)
    assert 0 <= b.lower <= b.upper


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e300])
def test_inputs_at_the_ends_of_the_range(scale):
    net = _mlp(3)
    x = torch.randn(30, 2, dtype=torch.float64) * scale
    b = lipschitz_bounds(net, x, seed=0)
    assert math.isfinite(b.lower) and 0 <= b.lower <= b.upper * (1 + 1e-6)


@pytest.mark.parametrize(("seed", "exc"), [("a", TypeError), (1.5, TypeError), (-1, ValueError),
                                           (2**70, ValueError)])
def test_seed_rule(seed, exc):
    with pytest.raises(exc, match="seed"):
        lipschitz_bounds(_mlp(0), torch.randn(4, 2), seed=seed)
