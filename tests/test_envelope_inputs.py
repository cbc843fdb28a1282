"""The envelope bounds' inputs by the library's rules: the values given to population_bound
and envelope_values, and what descent_anchors' callables return (scores, gradients), are
real (complex: TypeError), of the one allowed shape (else ValueError naming the argument,
never reshaped) and finite; arrays and tensors alike."""

import re

import numpy as np
import pytest
import torch

from otdiv.audit.population import (
    check_population_size,
    descent_anchors,
    envelope_values,
    population_bound,
)

X = np.array([[0.0, 0.0], [1.0, 0.5], [-0.5, 2.0]])  # n = 3 points in d = 2 (n != d)


def _grad(z):
    return np.cos(z) + 0.1 * z


def _score(z):
    return np.sin(z).sum(1) + 0.05 * (z * z).sum(1)


def test_a_complex_score_or_gradient_is_a_type_error():
    # both were cast to real with a ComplexWarning
    with pytest.raises(TypeError, match=r"^score must be real"):
        descent_anchors(_grad, X, step=0.5, n_steps=2, grow=2.0,
                        score=lambda z: _score(z).astype(complex))
    with pytest.raises(TypeError, match=r"^score must be real"):
        descent_anchors(_grad, X, step=0.5, n_steps=2, grow=2.0,
                        score=lambda z: torch.tensor(_score(z), dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"^grad must be real"):
        descent_anchors(lambda z: _grad(z) + 0j, X, step=0.5, n_steps=2)
    with pytest.raises(TypeError, match=r"^grad must be real"):
        descent_anchors(lambda z: torch.tensor(_grad(z) + 1j), X, step=0.5, n_steps=2,
                        score=_score, grow=2.0)


@pytest.mark.parametrize("shape", [lambda n, d: (d, n), lambda n, d: (n * d,),
                                   lambda n, d: (n, d, 1), lambda n, d: (1, n, d)])
def test_a_gradient_of_another_shape_than_the_points_is_an_error(shape):
    # a (d, n) return was reshaped to (n, d): gradients paired with the wrong points
    want = shape(*X.shape)
    with pytest.raises(ValueError, match=r"^grad must return one gradient per point, the "
                                         rf"points' shape \(3, 2\); got shape "
                                         f"{re.escape(str(want))}$"):
        descent_anchors(lambda z: _grad(z).T.reshape(want), X, step=0.5, n_steps=2)


def test_a_score_of_another_shape_is_an_error():
    with pytest.raises(ValueError, match=r"^score must return one score per point, shape "
                                         r"\(3,\) or \(3, 1\); got shape \(1, 3\)"):
        descent_anchors(_grad, X, step=0.5, n_steps=2, grow=2.0,
                        score=lambda z: _score(z)[None, :])


def test_nan_returns_are_counted():
    def grad(z):
        g = torch.tensor(_grad(z))
        g[1, 0] = float("nan")
        return g

    with pytest.raises(ValueError, match=r"^grad returned NaN or inf at 1 of 3 points"):
        descent_anchors(grad, X, step=0.5, n_steps=2)
    with pytest.raises(ValueError, match=r"^score returned NaN or inf at 3 of 3 points"):
        descent_anchors(_grad, X, step=0.5, n_steps=2, grow=2.0,
                        score=lambda z: torch.full((len(z), 1), float("inf")))


@pytest.mark.parametrize("ascent", [False, True])
def test_tensor_returns_give_the_numpy_paths(ascent):
    # a tensor that requires grad was a RuntimeError (numpy() on it)
    def grad(z):
        return torch.tensor(_grad(z), requires_grad=True) * 1.0

    def score(z):
        return torch.tensor(_score(z), dtype=torch.float64, requires_grad=True)[:, None] * 1.0

    want = descent_anchors(_grad, X, step=0.5, n_steps=4, ascent=ascent, score=_score,
                           grow=2.0)
    got = descent_anchors(grad, torch.tensor(X), step=0.5, n_steps=4, ascent=ascent,
                          score=score, grow=2.0)
    assert got.dtype == np.float64 and np.array_equal(got, want)
    fixed = descent_anchors(lambda z: torch.tensor(_grad(z), dtype=torch.float32), X,
                            step=0.5, n_steps=3, ascent=ascent)
    assert np.array_equal(fixed, descent_anchors(
        lambda z: _grad(z).astype(np.float32), X, step=0.5, n_steps=3, ascent=ascent))


def test_values_of_another_shape_or_complex_are_errors():
    rng = np.random.default_rng(0)
    a, z, v = rng.standard_normal((4, 2)), rng.standard_normal((5, 2)), rng.standard_normal(4)
    pair = (z, z + 1.0)
    # a (1, N) row was flattened and accepted
    with pytest.raises(ValueError, match=r"^values must hold one value per anchor, shape "
                                         r"\(4,\) or \(4, 1\); got shape \(1, 4\)"):
        envelope_values(v[None, :], a, z, [1.0])
    with pytest.raises(ValueError, match=r"^values must hold one value per anchor"):
        population_bound(a, v[None, :], pair, pair)
    with pytest.raises(ValueError, match=r"^upper\[1\] must hold one value per anchor"):
        population_bound(a, v, pair, pair, upper=(a, v[None, :]))
    with pytest.raises(ValueError, match=r"^candidates\[0\]\[1\] must hold one value"):
        population_bound(a, v, pair, pair, candidates=[(a, v[None, :], True)])
    # complex values were cast to real with a ComplexWarning
    with pytest.raises(TypeError, match=r"^values must be real"):
        envelope_values(v + 1j, a, z, [1.0])
    with pytest.raises(TypeError, match=r"^values must be real"):
        population_bound(a, torch.tensor(v + 0j), pair, pair)
    with pytest.raises(ValueError, match=r"^values contains NaN or inf"):
        population_bound(a, np.where(v > 0, np.nan, v), pair, pair)
    # (N, 1) and tensors (even ones that require grad) are the values themselves
    want = population_bound(a, v, pair, pair)
    assert population_bound(a, v[:, None], pair, pair) == want
    assert population_bound(a, torch.tensor(v, requires_grad=True), pair, pair) == want
    assert np.array_equal(envelope_values(torch.tensor(v)[:, None], a, z, [0.5, 2.0]),
                          envelope_values(v, a, z, [0.5, 2.0]))


def test_the_population_size_error_states_the_budget_given():
    with pytest.raises(ValueError, match=r"^n=1000 needs about 0\.141 GiB for the population "
                                         r"bound in d=8 \(n=1000, n_test=1000, n_steps=8\), "
                                         r"over the memory budget of 0\.000931 GiB; lower n "
                                         r"\(or raise the budget: OTDIV_MEMORY_BUDGET_GIB\)$"):
        check_population_size(1000, 1000, 8, 2, 8, budget=1e6)
    with pytest.raises(ValueError, match=r"^n_steps=1000000000000 needs about .* GiB for the "
                                         r"paths of 3 points in d=2, over the memory budget "
                                         r"of 4 GiB; lower n_steps \(or raise the budget: "
                                         r"OTDIV_MEMORY_BUDGET_GIB\)$"):
        descent_anchors(_grad, X, step=1.0, n_steps=10**12)


def test_a_flat_gradient_is_taken_where_it_is_unambiguous():
    """(n,) gradients for points of dimension 1 and (d,) for a single point pair with the
    points one way only: taken, as start and the scores take (n,) (review)."""
    line = np.array([0.0, 1.0, 2.5])
    flat = descent_anchors(lambda z: np.cos(z[:, 0]), line, step=0.1, n_steps=1)
    col = descent_anchors(lambda z: np.cos(z), line[:, None], step=0.1, n_steps=1)
    np.testing.assert_array_equal(flat, col)
    one = np.array([[0.5, -1.0]])
    np.testing.assert_array_equal(
        descent_anchors(lambda z: 2 * z[0], one, step=0.1, n_steps=2),
        descent_anchors(lambda z: 2 * z, one, step=0.1, n_steps=2))


def test_an_integer_tensor_is_read_in_float64():
    """Integer tensors go to float64 directly: through torch's float32 16777217 was rounded
    (review)."""
    from otdiv.audit.funnels import MinFunnel

    pair = MinFunnel(3, 4)
    big = [[16777217, 0, 0]]
    assert pair.potential(torch.tensor(big)) == pair.potential(np.array(big, dtype=float))


def test_the_memory_budget_is_raised_by_the_environment(monkeypatch):
    """OTDIV_MEMORY_BUDGET_GIB raises (or lowers) the 4 GiB guard for a bigger machine; a
    value that is no positive number of GiB is a ValueError naming the variable."""
    from otdiv.audit.models import check_training_size, memory_budget

    big = (128, (4096, 256, 256), 16384, 2000)  # about 7 GiB: the d = 128 row of a GPU
    with pytest.raises(ValueError, match=r"^batch_size=16384 needs about 7\.03 GiB .* "
                                         r"lower batch_size \(or raise the budget"):
        check_training_size(*big)
    monkeypatch.setenv("OTDIV_MEMORY_BUDGET_GIB", "16")
    assert memory_budget() == 16 * 2**30
    check_training_size(*big)
    monkeypatch.setenv("OTDIV_MEMORY_BUDGET_GIB", "0.5")
    with pytest.raises(ValueError, match=r"^n=100000000 needs .* budget of 0\.5 GiB"):
        check_population_size(10**8, 2, 0, 1, 2)
    for bad in ("-1", "lots", "nan", "inf", "0"):
        monkeypatch.setenv("OTDIV_MEMORY_BUDGET_GIB", bad)
        with pytest.raises(ValueError, match=r"^OTDIV_MEMORY_BUDGET_GIB must be a number"):
            memory_budget()
