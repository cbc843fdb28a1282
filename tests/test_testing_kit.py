"""otdiv.testing: the strategies generate what they promise (checked against independent
references), each invariant check passes on correct functions and catches a planted bug."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import find, given
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.spatial.distance import cdist, jensenshannon
from scipy.special import rel_entr
from scipy.stats import entropy

from otdiv import wasserstein
from otdiv.testing import (
    assert_divergence,
    assert_kantorovich_bound,
    assert_lipschitz,
    assert_metric,
)
from otdiv.testing import strategies as ots

pytestmark = pytest.mark.threads(numba=1)  # thousands of calls on a few points


# ---------------------------------------------------------------------------- references


def lp_wasserstein(x, y, a, b, p):
    """W_p by scipy's LP solver on the full coupling polytope (independent of otdiv and POT)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n, m = len(x), len(y)
    a = np.full(n, 1 / n) if a is None else np.asarray(a, np.float64) / np.sum(a)
    b = np.full(m, 1 / m) if b is None else np.asarray(b, np.float64) / np.sum(b)
    cost = cdist(x, y) ** p
    rows = np.kron(np.eye(n), np.ones(m))
    cols = np.kron(np.ones(n), np.eye(m))
    res = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]),
                  bounds=(0, None), method="highs")
    assert res.status == 0
    return max(res.fun, 0.0) ** (1 / p)


def w(u, v, p=1):
    return wasserstein(u.x, v.x, u.a, v.a, p=p)


def one_sided_chamfer(u, v):
    """Planted bug: mean distance from each point of u to its nearest point of v (asymmetric)."""
    return float(np.mean(cdist(u.points(), v.points()).min(axis=1)))


def kl_skipping_zeros(p, q):
    """Planted bug: KL that 'avoids inf' by dropping the bins where q = 0 — it can go negative."""
    keep = q > 0
    return float(np.sum(rel_entr(p[keep], q[keep])))


class Doubled(torch.nn.Module):
    """Planted bug: a critic with constant 2L (output scaled by 2) claimed to have L."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return 2 * self.module(x)


def doubled(module):
    return Doubled(module)


def search(strategy, condition):
    """Whether hypothesis finds an example (raises if not); a bounded search, no shrinking."""
    return find(strategy, condition)


# ---------------------------------------------------------------------------- imports


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)


def test_import_otdiv_and_the_checks_import_neither_hypothesis_nor_torch():
    out = run_python(
        "import sys, otdiv, otdiv.testing\n"
        "from otdiv.testing import assert_metric, assert_lipschitz\n"
        "print(sorted(m for m in ('hypothesis', 'torch', 'numba') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_checks_work_without_hypothesis_and_strategies_say_what_to_install():
    out = run_python(
        "import sys\n"
        "sys.modules['hypothesis'] = None  # as if it were not installed\n"
        "import numpy as np\n"
        "from otdiv.testing import assert_metric\n"
        "assert_metric(lambda u, v: abs(u - v), 0.0, 1.0, 3.0)\n"
        "try:\n"
        "    from otdiv.testing import histograms\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert out.returncode == 0, out.stderr
    assert "pip install -e '.[testing]'" in out.stdout


def test_the_lazy_names_are_the_strategies_names():
    # otdiv.testing lists the strategies' names itself (to resolve them without importing
    # hypothesis): the two lists must not drift apart
    import otdiv.testing as kit

    assert set(kit._STRATEGIES) == set(ots.__all__)
    for name in kit._STRATEGIES:
        assert getattr(kit, name) is getattr(ots, name)


# ---------------------------------------------------------------------------- strategies


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(data=st.data())
def test_histograms_are_probability_vectors(dtype, data):
    h = data.draw(ots.histograms(dtype=dtype))
    assert h.dtype == dtype
    assert h.ndim == 1 and h.size >= 1
    assert (h >= 0).all() and (h > 0).any()
    np.testing.assert_allclose(h.sum(dtype=np.float64), 1.0, rtol=1e-6)


def test_histograms_contain_zeros_and_tiny_masses():
    assert search(ots.histograms(), lambda h: (h == 0).any() and (h > 0).sum() >= 2) is not None
    assert search(ots.histograms(), lambda h: ((h > 0) & (h < 1e-12)).any()) is not None


@given(ots.histogram_pairs(absolutely_continuous=True))
def test_absolutely_continuous_pairs_have_finite_kl(pq):
    p, q = pq
    assert p.shape == q.shape
    assert np.isfinite(entropy(p, q))


@given(ots.point_clouds(dtype="float32", kind="torch"))
def test_point_clouds_keep_dtype_and_kind(m):
    assert m.x.dtype == torch.float32 and m.x.shape[0] == m.n
    assert m.a is None or (m.a.dtype == torch.float32 and m.a.shape == (m.n,))
    np.testing.assert_allclose(m.weights().sum(), 1.0)


def test_point_clouds_contain_duplicates_zero_weights_flat_and_float32():
    def has_duplicate(m):
        pts = m.points()
        return len(np.unique(pts, axis=0)) < m.n

    assert search(ots.point_clouds(), has_duplicate) is not None
    assert search(ots.point_clouds(weighted=True), lambda m: (m.weights() == 0).any())
    assert search(ots.point_clouds(d=1), lambda m: m.x.ndim == 1) is not None
    assert search(ots.point_clouds(), lambda m: m.x.dtype == np.float32) is not None


@given(ots.measure_tuples(3))
def test_measure_tuples_share_dimension_and_dtype(ms):
    assert len({m.d for m in ms}) == 1
    assert len({m.x.dtype for m in ms}) == 1
    assert len({m.x.ndim for m in ms}) == 1


@given(ots.measure_pairs(p=st.sampled_from([1.0, 1.5, 2.0, 3.0]), max_n=5))
def test_known_pairs_match_a_linear_program(pair):
    reference = lp_wasserstein(pair.x, pair.y, pair.a, pair.b, pair.p)
    scale = max(np.abs(pair.x).max(), np.abs(pair.y).max(), 1.0)
    # the LP solver's own tolerance is about 1e-9 relative, on the cost W_p^p
    cost_slack = 1e-7 * (2 * scale) ** pair.p
    assert abs(reference**pair.p - pair.value**pair.p) <= cost_slack + pair.cost_tol


def test_every_kind_of_known_pair_is_generated():
    for kind in ots.PAIR_KINDS:
        assert search(ots.measure_pairs(), lambda pr, kind=kind: pr.kind == kind) is not None


def test_known_pair_check_rejects_a_wrong_value():
    pair = find(ots.measure_pairs(kinds=("diracs",)), lambda pr: pr.value > 1)
    pair.check(pair.value)
    with pytest.raises(AssertionError, match=r"known answer W_p.*diracs") as info:
        pair.check(pair.value * 1.01)
    assert "x = np.array(" in str(info.value)


@given(ots.lipschitz_critics(), st.integers(0, 2**31))
def test_critics_have_gradient_norm_L_almost_everywhere(critic, seed):
    # autograd is an independent truth: for these piecewise-linear nets the constant is the
    # largest gradient norm, and it is the same at every generic point
    dtype = critic.module.head.weight.dtype if critic.kind == "groupsort" else \
        critic.module.weight.dtype
    x = torch.randn(16, critic.d, dtype=dtype,
                    generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic.module(x).sum(), x)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(grad.norm(dim=1).double().numpy(), critic.L, rtol=rtol)


@given(ots.lipschitz_critics(kinds=("linear",), dtype="float64"),
       st.floats(-10, 10))
def test_linear_critics_are_tight_along_their_direction(critic, s):
    x = torch.zeros(1, critic.d, dtype=torch.float64)
    u = torch.as_tensor(critic.direction).reshape(1, -1)
    delta = critic.module(x + s * u) - critic.module(x)
    np.testing.assert_allclose(float(delta), critic.L * s, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------- assert_metric


# no zero or tiny weights: see CUMULATIVE_BUG in test_wasserstein_properties.py
@given(ots.measure_tuples(3, max_n=5, zero_weights=False, tiny_weights=False))
def test_assert_metric_passes_on_otdiv_wasserstein(ms):
    assert_metric(w, *ms)
    assert_metric(lambda u, v: w(u, v, p=2), *ms)


def test_assert_metric_catches_an_asymmetric_distance_found_by_hypothesis():
    @given(ots.measure_tuples(2))
    def suite(ms):
        assert_metric(one_sided_chamfer, *ms)

    with pytest.raises(AssertionError, match="symmetry d\\(x, y\\) = d\\(y, x\\) violated"):
        suite()


def test_assert_metric_counterexample_names_inputs_and_values():
    u = ots.Measure(np.array([[0.0], [4.0]]))
    v = ots.Measure(np.array([[0.0]]))
    with pytest.raises(AssertionError) as info:
        assert_metric(one_sided_chamfer, u, v)
    msg = str(info.value)
    assert "symmetry" in msg
    assert "d(x, y) = 2.0 but d(y, x) = 0.0" in msg
    assert "x = Measure(x=np.array([[0.], [4.]]" in msg.replace("\n", "").replace("  ", " ")


def test_assert_metric_catches_a_broken_triangle_found_by_hypothesis():
    # W_2^2 is symmetric and vanishes on the diagonal, but it is not a metric
    @given(ots.measure_tuples(3, d=1, weighted=False, max_n=3))
    def suite(ms):
        assert_metric(lambda u, v: w(u, v, p=2) ** 2, *ms)

    with pytest.raises(AssertionError, match="triangle inequality"):
        suite()


def test_assert_metric_catches_nonzero_self_distance_and_nan():
    with pytest.raises(AssertionError, match="identity d\\(x, x\\) = 0"):
        assert_metric(lambda u, v: abs(u - v) + 1.0, 0.0, 1.0)
    with pytest.raises(AssertionError, match="not NaN"):
        assert_metric(lambda u, v: math.nan if u != v else 0.0, 0.0, 1.0)
    with pytest.raises(AssertionError, match="nonnegativity"):
        assert_metric(lambda u, v: (u - v) ** 3, 0.0, 1.0)


def test_assert_metric_validates_its_arguments():
    with pytest.raises(ValueError, match="at least two samples"):
        assert_metric(abs, 1.0)
    with pytest.raises(ValueError, match="atol"):
        assert_metric(lambda u, v: abs(u - v), 0.0, 1.0, atol=-1.0)
    with pytest.raises(TypeError, match="must return a real number"):
        assert_metric(lambda u, v: "far", 0.0, 1.0)


# ---------------------------------------------------------------------------- assert_divergence


def kl_reference(p, q):
    return entropy(p, q)  # scipy's KL(p || q), natural log, 0 log 0 = 0, +inf where q = 0 < p


def jsd_reference(p, q):
    return jensenshannon(p, q) ** 2  # scipy returns the square root of the divergence


def have(name):
    import otdiv

    try:
        getattr(otdiv, name)
    except (AttributeError, ImportError):
        return False
    return True


KLS = [kl_reference] + ([__import__("otdiv").kl] if have("kl") else [])
JSDS = [jsd_reference] + ([__import__("otdiv").jsd] if have("jsd") else [])


@pytest.mark.parametrize("kl", KLS)
@given(pq=ots.histogram_pairs())
def test_assert_divergence_passes_on_kl(kl, pq):
    assert_divergence(kl, *pq)


@pytest.mark.parametrize("jsd", JSDS)
@given(pq=ots.histogram_pairs())
def test_assert_divergence_passes_on_jsd_with_symmetry_and_bound(jsd, pq):
    assert_divergence(jsd, *pq, symmetric=True, upper=math.log(2))


def test_assert_divergence_catches_a_kl_that_goes_negative_found_by_hypothesis():
    @given(ots.histogram_pairs())
    def suite(pq):
        assert_divergence(kl_skipping_zeros, *pq)

    with pytest.raises(AssertionError, match="nonnegativity D\\(p \\|\\| q\\) >= 0"):
        suite()


def test_assert_divergence_counterexample_and_other_axioms():
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    with pytest.raises(AssertionError) as info:
        assert_divergence(kl_skipping_zeros, p, q)
    msg = str(info.value)
    assert "D(p || q) = -0.3465" in msg and "p = np.array([0.5, 0.5]" in msg
    with pytest.raises(AssertionError, match="symmetry"):
        assert_divergence(kl_reference, np.array([0.9, 0.1]), np.array([0.5, 0.5]),
                          symmetric=True)
    with pytest.raises(AssertionError, match="upper bound"):
        assert_divergence(kl_reference, p, q, upper=math.log(2))
    with pytest.raises(AssertionError, match="identity"):
        assert_divergence(lambda p, q: entropy(p, q) + 1e-3, p)


# ---------------------------------------------------------------------------- assert_lipschitz


@given(ots.lipschitz_critics(), st.data())
def test_assert_lipschitz_passes_on_known_critics(critic, data):
    x = data.draw(ots.point_clouds(d=critic.d, flat=False, bound=10.0))
    if x.n >= 2:
        assert_lipschitz(critic.module, critic.L, x.x)
    y = data.draw(ots.point_clouds(n=x.n, d=critic.d, dtype=x.x.dtype, flat=False))
    assert_lipschitz(critic.module, critic.L, x.x, y.x)


def test_assert_lipschitz_catches_a_doubled_critic_found_by_hypothesis():
    @given(ots.lipschitz_critics(d=3, dtype="float64"), ots.point_clouds(n=4, d=3))
    def suite(critic, x):
        assert_lipschitz(doubled(critic.module), critic.L, x.x)

    with pytest.raises(AssertionError, match="Lipschitz bound"):
        suite()


def test_assert_lipschitz_counterexample_names_the_pair():
    f = torch.nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        f.weight.copy_(torch.tensor([[2.0, 0.0]]))
        f.bias.fill_(0.0)
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    with pytest.raises(AssertionError) as info:
        assert_lipschitz(f, 1.0, x)
    msg = str(info.value)
    assert "needs a constant >= 2.0" in msg
    assert "u (x[0]) = np.array([0., 0.]" in msg and "v (x[1]) = np.array([1., 0.]" in msg


def test_assert_lipschitz_validates_its_arguments():
    with pytest.raises(ValueError, match="L must be"):
        assert_lipschitz(np.sum, 0.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="y must have the shape of x"):
        assert_lipschitz(lambda x: x.sum(1), 1.0, np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="map 3 points"):
        assert_lipschitz(lambda x: x.sum(), 1.0, np.zeros((3, 2)))
    with pytest.raises(TypeError, match="mixed array kinds"):
        assert_lipschitz(lambda x: x.sum(1), 1.0, np.zeros((3, 2)), torch.zeros(3, 2))


# ---------------------------------------------------------------------------- Kantorovich


@given(ots.lipschitz_critics(), st.data())
def test_assert_kantorovich_bound_passes_on_known_critics(critic, data):
    x = data.draw(ots.point_clouds(d=critic.d, flat=False))
    y = data.draw(ots.point_clouds(d=critic.d, dtype=x.x.dtype, flat=False))
    assert_kantorovich_bound(critic.module, x.x, y.x, x.a, y.a, L=critic.L)


def test_assert_kantorovich_bound_catches_a_doubled_critic_found_by_hypothesis():
    @given(ots.lipschitz_critics(d=2, dtype="float64"), ots.measure_pairs(kinds=("diracs",), d=2))
    def suite(critic, pair):
        assert_kantorovich_bound(doubled(critic.module), pair.x, pair.y, L=critic.L)

    with pytest.raises(AssertionError, match="Kantorovich bound"):
        suite()


def test_assert_kantorovich_bound_counterexample_and_given_w1():
    critic = torch.nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        critic.weight.fill_(2.0)
        critic.bias.fill_(0.0)  # exact means, so the message is predictable
    x, y = np.array([[1.0], [3.0]]), np.array([[0.0]])
    with pytest.raises(AssertionError) as info:
        assert_kantorovich_bound(critic, x, y, L=1.0)  # W_1 = 2, gap = 4
    msg = str(info.value)
    assert "L * W_1 = 1.0 * 2.0 = 2.0" in msg and "need a constant >= 2.0" in msg
    assert_kantorovich_bound(critic, x, y, L=2.0)
    with pytest.raises(AssertionError, match="Kantorovich"):
        assert_kantorovich_bound(critic, x, y, L=2.0, w1=1.0)  # an underestimated W_1


def test_assert_kantorovich_bound_validates_its_arguments():
    with pytest.raises(ValueError, match="one score per point"):
        assert_kantorovich_bound(lambda x: x, np.zeros((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="a has negative weights"):
        assert_kantorovich_bound(lambda x: x[:, 0], np.zeros((2, 1)), np.ones((2, 1)),
                                 a=np.array([1.0, -1.0]))


# ---------------------------------------------------------------------------- arguments


def _points(n=4, d=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_tolerances_accept_numpy_floats():
    x, y, z = np.array([0.0, 1.0]), np.array([3.0]), np.array([-1.0, 5.0])
    assert_metric(wasserstein, x, y, z, atol=np.float64(1e-9), rtol=np.float32(1e-7))
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert_divergence(entropy, p, q, atol=np.float32(0.0), upper=np.float64(math.inf))
    assert_lipschitz(lambda u: u[:, 0], np.float64(1.0), _points(), atol=np.float64(1e-12))


@pytest.mark.parametrize("bad, exc", [(-1.0, ValueError), (math.nan, ValueError),
                                      (math.inf, ValueError), ("1e-9", TypeError),
                                      (True, TypeError)])
@pytest.mark.parametrize("name", ["atol", "rtol"])
def test_bad_tolerances_name_the_argument(name, bad, exc):
    x, y = np.array([0.0, 1.0]), np.array([3.0])
    with pytest.raises(exc, match=name):
        assert_metric(wasserstein, x, y, **{name: bad})
    with pytest.raises(exc, match=name):
        assert_divergence(entropy, np.array([0.5, 0.5]), **{name: bad})
    with pytest.raises(exc, match=name):
        assert_lipschitz(lambda u: u[:, 0], 1.0, _points(), **{name: bad})
    with pytest.raises(exc, match=name):
        assert_kantorovich_bound(lambda u: u[:, 0], _points(), _points(seed=1), **{name: bad})


@pytest.mark.parametrize("w1", [-1.0, math.nan, -math.inf])
def test_kantorovich_bound_rejects_a_bad_w1(w1):
    # a negative W_1 is not a distance: an argument error, not a failed bound
    with pytest.raises(ValueError, match="w1"):
        assert_kantorovich_bound(lambda u: u[:, 0], _points(), _points(seed=1), w1=w1)


def test_divergence_upper_nan_is_an_error():
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    with pytest.raises(ValueError, match="upper"):
        assert_divergence(entropy, p, q, upper=math.nan)
    with pytest.raises(TypeError, match="upper"):
        assert_divergence(entropy, p, q, upper="log 2")
    with pytest.raises(AssertionError, match="upper bound"):   # a real bound still binds
        assert_divergence(entropy, p, q, upper=0.1)


def test_checks_reject_what_is_not_callable():
    x, y = np.array([0.0, 1.0]), np.array([3.0])
    with pytest.raises(TypeError, match="dist"):
        assert_metric(1.0, x, y)
    with pytest.raises(TypeError, match="div"):
        assert_divergence(None, np.array([1.0]))
    with pytest.raises(TypeError, match="symmetric"):
        assert_divergence(entropy, np.array([1.0]), symmetric="yes")
    with pytest.raises(TypeError, match="f must be callable"):
        assert_lipschitz("f", 1.0, _points())
    with pytest.raises(TypeError, match="critic"):
        assert_kantorovich_bound(3, _points(), _points())


@pytest.mark.parametrize("build, name", [
    (lambda: ots.histograms(n=0), "n"),
    (lambda: ots.histograms(n=-2), "n"),
    (lambda: ots.histograms(max_size=0), "max_size"),
    (lambda: ots.histogram_pairs(n=0), "n"),
    (lambda: ots.point_clouds(n=0), "n"),
    (lambda: ots.point_clouds(d=0), "d"),
    (lambda: ots.point_clouds(max_n=0), "max_n"),
    (lambda: ots.point_clouds(bound=-1.0), "bound"),
    (lambda: ots.point_clouds(bound=math.inf), "bound"),
    (lambda: ots.point_clouds(kind="jax"), "kind"),
    (lambda: ots.measure_tuples(0), "count"),
    (lambda: ots.measure_tuples(2, max_n=0), "max_n"),
    (lambda: ots.measure_pairs(0.5), "p"),
    (lambda: ots.measure_pairs(math.nan), "p"),
    (lambda: ots.measure_pairs(kinds=()), "kinds"),
    (lambda: ots.lipschitz_critics(kinds=()), "kinds"),
    (lambda: ots.lipschitz_critics(L=0.0), "L"),
    (lambda: ots.lipschitz_critics(L=-1.0), "L"),
    (lambda: ots.lipschitz_critics(max_depth=0), "max_depth"),
])
def test_strategy_arguments_are_checked_when_built(build, name):
    # a ValueError naming the argument, raised by the call itself, before any draw
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        build()


@pytest.mark.parametrize("build, name", [
    (lambda: ots.histograms(n=2.0), "n"),
    (lambda: ots.histograms(n=True), "n"),
    (lambda: ots.point_clouds(zero_weights=1), "zero_weights"),
    (lambda: ots.point_clouds(bound="big"), "bound"),
])
def test_strategy_argument_types_are_checked(build, name):
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        build()


def test_drawn_sizes_are_checked_when_drawn():
    strategy = ots.histograms(n=st.just(0))      # a strategy: known only when drawn
    with pytest.raises(ValueError, match=r"\bn must be >= 1"):
        find(strategy, lambda _: True)


def test_known_pair_check_tol():
    pair = ots.KnownPair(np.zeros((1, 1)), np.ones((1, 1)), None, None, 1.0, 1.0, "diracs",
                         1e-12, 1e-12)
    pair.check(1.0)
    with pytest.raises(AssertionError):
        pair.check(1.001)
    pair.check(1.001, tol=np.float64(1e-2))     # the user's tolerance replaces tol
    with pytest.raises(ValueError, match="tol"):
        pair.check(1.0, tol=-1.0)


def test_warm_up_and_profile():
    # in a fresh interpreter: warm_up runs, and the strategies register the "otdiv" profile
    code = ("import otdiv.testing as t; t.warm_up(); from otdiv.testing import strategies\n"
            "from hypothesis import settings\n"
            "assert settings.get_profile('otdiv').deadline is None\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
