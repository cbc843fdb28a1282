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


def _grad_norm64(net, w):
    """‖∇f(w)‖ in float64 on a copy of the critic: the independent truth for ``lower``."""
    p = w.detach().double().reshape(1, -1).requires_grad_(True)
    (g,) = torch.autograd.grad(copy.deepcopy(net).double()(p).sum(), p)
    return float(g.norm())


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_float32_inputs_at_the_ends_of_float32(scale):
    net = _mlp(3)
    x = torch.randn(30, 2) * scale  # float32, with a float32 critic: nothing is widened
    b = lipschitz_bounds(net, x, seed=0)
    assert b.lower_method == "gradient" and b.witness.dtype == torch.float32
    assert b.lower == pytest.approx(_grad_norm64(net, b.witness), rel=1e-9)
    assert 0 < b.lower <= b.upper


def test_float64_weights_whose_product_leaves_the_float_range():
    # 4 layers of weights x1e100: Lip(f) ~ 1e400 has no float64 value. Never lower > upper,
    # never lower = inf or 0: a clear error. At x1e77 (Lip ~ 1e308) both bounds exist.
    for s, ok in [(1e100, False), (1e77, True)]:
        net = _mlp(2, widths=(2, 16, 16, 16, 1), dtype=torch.float64)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(s)
        x = torch.randn(30, 2, dtype=torch.float64)
        if not ok:
            with pytest.raises(ValueError, match="gradients are not finite at x"):
                lipschitz_bounds(net, x, seed=0)
            continue
        b = lipschitz_bounds(net, x, seed=0)
        ref = lipschitz_bounds(_mlp(2, widths=(2, 16, 16, 16, 1), dtype=torch.float64), x,
                               seed=0)
        # a product of layers that overflows falls back to the product of their norms: the
        # bound may loosen towards product_upper, never drop below the exact scaling
        assert b.product_upper == pytest.approx(ref.product_upper * s**4, rel=1e-9)
        assert ref.upper * s**4 * (1 - 1e-9) <= b.upper <= b.product_upper
        assert 0 < b.lower <= b.upper < math.inf


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_interpolates": 10**12}, "n_interpolates=1000000000000 would hold"),
    ({"ascent_steps": 10**9}, "ascent_steps must be <= 100000"),
])
def test_sizes_beyond_any_budget_are_refused_up_front(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lipschitz_bounds(_mlp(0), torch.randn(4, 2), **kwargs)


class _Doubled(torch.nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


class _SteepTanh(torch.nn.Tanh):
    def forward(self, x):
        return torch.tanh(5 * x)


@pytest.mark.parametrize("layer", [lambda: _Doubled(3, 1), lambda: torch.nn.Sequential(
    torch.nn.Linear(3, 3), _SteepTanh(), torch.nn.Linear(3, 1))])
def test_a_subclass_that_changes_forward_is_not_read_as_its_parent(layer):
    # torch.fx reads the subclass's own forward (2·W x, tanh(5x)): its bound covers the
    # larger constant, where the parent's rule would certify a number below the true one
    torch.manual_seed(4)
    net = layer().double()
    x = torch.randn(50, 3, dtype=torch.float64) * 0.05  # near 0, where tanh(5x) is steepest
    b = lipschitz_bounds(net, x, seed=0)
    assert b.lower <= b.upper < math.inf


def test_subclass_without_a_new_forward_keeps_its_rule():
    # parametrised (spectral-norm) Linear layers are subclasses created by torch
    net = torch.nn.Sequential(torch.nn.utils.parametrizations.spectral_norm(
        torch.nn.Linear(4, 3)), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()
    b = lipschitz_bounds(net, torch.randn(20, 4, dtype=torch.float64), seed=0)
    assert b.upper_method == "combettes-pesquet" and len(b.layers) == 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_a_critic_that_scores_in_another_dtype_gets_a_lower_bound(dtype):
    """‖x‖ computed in another precision than its float32 input: Lipschitz constant 1, its
    gradient norm 1 wherever x ≠ 0, so the verified lower bound is 1 up to the rounding of
    the coarser dtype (it raised "the critic computes in another dtype" before)."""
    from otdiv.audit import audit_critic, make_toy

    def critic(x):
        return x.to(dtype).norm(dim=1)

    eps = max(torch.finfo(dtype).eps, torch.finfo(torch.float32).eps)  # the coarser
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)) + 3.0
    lower = lipschitz_bounds(critic, x).lower
    assert 1 - 8 * eps <= lower <= 1 + 8 * eps
    toy = make_toy("translate", d=2)
    audit = audit_critic(critic, toy.sample_real, toy.sample_fake, n=40, device="cpu",
                         seed=0)
    assert 1 - 8 * eps <= audit.lipschitz_lower <= 1 + 8 * eps
    assert audit.certified_lower <= audit.exact_w1 + 1e-9


def test_a_coarse_critic_s_rounding_does_not_pass_a_kink_gradient():
    """relu(z) − z − relu(−z) ≡ 0 has autograd derivative −1 at 0; in bfloat16 with an
    offset of 10, the rounding allowance of the secant check would have passed it: the
    lower bound of a constant function must be 0 (review of the coarser-precision check)."""
    def critic(x):
        z = x[:, 0]
        return (torch.relu(z) - z - torch.relu(-z)).to(torch.bfloat16) + 10

    x = torch.zeros(8, 2)
    assert lipschitz_bounds(critic, x).lower == 0.0


@pytest.mark.parametrize(("dtype", "offset"), [(torch.float32, 1e5), (torch.float32, 1e7),
                                               (torch.float16, 1e3), (torch.bfloat16, 1e5)])
def test_a_kink_gradient_hidden_in_the_rounding_of_large_scores_is_refused(offset, dtype):
    """relu(z) − z − relu(−z) + offset is constant: its Lipschitz lower bound is 0. Scored in
    float32 near 1e5 (or coarser), the change the secant check judges is below the scores'
    rounding and its allowance passed autograd's derivative −1 at 0 as a verified slope; the
    gradient must now agree with its neighbours' (0 on both sides)."""
    def critic(x):
        z = x[:, 0]
        return (torch.relu(z) - z - torch.relu(-z)).to(dtype) + offset

    x = torch.zeros(8, 2)
    assert lipschitz_bounds(critic, x).lower == 0.0


def test_a_smooth_critic_with_large_scores_keeps_its_gradient():
    """The neighbours' test passes a smooth critic whose secants the rounding hides:
    sin(z) + 1e5 in float32 at z = 0.3 has the lower bound |cos 0.3| (its gradient)."""
    def critic(x):
        return torch.sin(x[:, 0]) + 1e5

    x = torch.full((8, 1), 0.3)
    b = lipschitz_bounds(critic, x, n_interpolates=0, ascent_steps=0, seed=0)
    assert b.lower_method == "gradient"
    assert b.lower == pytest.approx(math.cos(0.3), rel=1e-6)


def test_a_relu_network_with_large_scores_keeps_a_verified_slope():
    """A deep ReLU network has kinks within the check's step of every candidate; scored in
    float32 near 1e6, the rounding hides the change over that step, the neighbours'
    gradients differ and the step-h secant net of the rounding is 0. The longer secants see
    past the rounding: a positive slope of f, at most the network's certified upper bound
    (review: 0 before the longer steps)."""
    torch.manual_seed(0)
    layers = [torch.nn.Linear(2, 512), torch.nn.ReLU()]
    for _ in range(5):
        layers += [torch.nn.Linear(512, 512), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(512, 1))
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight *= 3.0
                m.bias *= 3.0
    torch.manual_seed(7)
    x = torch.randn(512, 2)
    with torch.no_grad():
        offset = 1e5 * float(net(x).abs().mean() + net(x).std())
    plain = lipschitz_bounds(lambda z: net(z).squeeze(-1), x, seed=0)  # 15.4, by its gradient
    b = lipschitz_bounds(lambda z: net(z).squeeze(-1) + offset, x, seed=0)
    assert b.lower_method == "secant"
    assert 0.1 * plain.lower < b.lower <= lipschitz_bounds(net, x[:2], seed=0).upper


def test_the_longer_secants_end_where_the_step_underflows():
    """Points near 1e-320: the check's step h underflows to 0, the candidate is blind (its
    change 0 against the rounding of f = 1) and the longer secants 4^k h stayed 0 — a loop
    that never ended (reread of this session's change). A constant has lower bound 0."""
    x = torch.tensor([[1e-320], [2e-320], [1e-320], [3e-320]], dtype=torch.float64)
    b = lipschitz_bounds(lambda z: z[:, 0] * 0 + 1.0, x, n_interpolates=0, ascent_steps=0,
                         seed=0)
    assert b.lower == 0.0
