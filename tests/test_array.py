"""Dispatch and validation rules of otdiv._array, through the public functions that use them."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import otdiv
from otdiv import sliced_wasserstein, transport, wasserstein


def test_import_is_light():
    code = "import otdiv, sys; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_public_names_resolve():
    for name in ("wasserstein", "transport", "sliced_wasserstein", "TransportResult",
                 "ConvergenceWarning"):
        assert getattr(otdiv, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        otdiv.nope  # noqa: B018


X = np.array([[0.0, 0.0], [1.0, 0.0]])
Y = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(x=np.zeros((0, 2)), y=Y), ValueError, "x is empty"),
        (dict(x=X, y=np.zeros((3, 0))), ValueError, r"y has shape \(3, 0\)"),
        (dict(x=np.zeros((2, 2, 2)), y=Y), ValueError, r"x must have shape \(n,\) or \(n, d\)"),
        (dict(x=X, y=np.zeros((3, 3))), ValueError, "same dimension d"),
        (dict(x=np.array([[np.nan, 0.0], [1.0, 0.0]]), y=Y), ValueError, "x contains NaN or inf"),
        (dict(x=X, y=np.array([[np.inf, 0.0]])), ValueError, "y contains NaN or inf"),
        (dict(x=X, y=Y, a=[1.0, -1.0]), ValueError, "a has negative weights"),
        (dict(x=X, y=Y, b=[0.0, 0.0, 0.0]), ValueError, "b has zero total mass"),
        (dict(x=X, y=Y, a=[1.0, 1.0, 1.0]), ValueError, "a has 3 weights but there are 2 points"),
        (dict(x=X, y=Y, a=[[1.0, 1.0]]), ValueError, "a must be a 1-D array"),
        (dict(x=X, y=Y, b=[1.0, np.nan, 1.0]), ValueError, "b contains NaN"),
        (dict(x=X, y=Y, p=0.5), ValueError, "p must be a finite number >= 1, got 0.5"),
        (dict(x=X, y=Y, p=np.inf), ValueError, "p must be a finite number >= 1"),
        (dict(x=X, y=Y, p="2"), TypeError, "p must be a real number"),
        (dict(x=X, y=Y, method="simplex"), ValueError, "method must be one of"),
        (dict(x=X, y=Y, max_iter=0), ValueError, "max_iter must be an integer >= 1"),
        (dict(x="abc", y=Y), TypeError, "x must be an array of numbers"),
        (dict(x=np.array([1 + 1j, 2]), y=Y[:, :1]), TypeError, "x must be real"),
        (dict(x=[[0.0], [1.0, 2.0]], y=Y), TypeError, "x must be an array of numbers"),
        (dict(x=X, y=Y, method="1d"), ValueError, "method='1d' needs one-dimensional points"),
    ],
)
def test_wasserstein_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        wasserstein(**kwargs)


def test_mixed_kinds_and_devices():
    with pytest.raises(TypeError, match="mixed array kinds: x are torch tensors but y is not"):
        wasserstein(torch.tensor(X), Y)
    with pytest.raises(TypeError, match="a is not"):
        wasserstein(torch.tensor(X), torch.tensor(Y), a=np.ones(2))
    meta = torch.zeros((3, 2), device="meta")
    with pytest.raises(ValueError, match="different devices"):
        wasserstein(torch.tensor(X), meta)


def test_sliced_rejects_bad_input():
    with pytest.raises(ValueError, match="n_projections must be an integer >= 1"):
        sliced_wasserstein(X, Y, n_projections=0)
    with pytest.raises(TypeError, match="n_projections must be an integer"):
        sliced_wasserstein(X, Y, n_projections=2.5)
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein(X, Y[:, :1])


def test_transport_rejects_bad_input():
    C = np.ones((2, 3))
    with pytest.raises(ValueError, match="same total mass"):
        transport([0.5, 0.5], [0.5, 0.5, 0.5], C)
    with pytest.raises(ValueError, match="cost must be a 2-D"):
        transport([0.5, 0.5], [1.0], np.ones(2))
    with pytest.raises(ValueError, match="cost contains NaN"):
        transport([0.5, 0.5], [0.5, 0.5], np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="a has 3 weights but there are 2 points"):
        transport([0.3, 0.3, 0.4], [0.5, 0.5, 0.0], C)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        transport([0.5, 0.5], [0.5, 0.25, 0.25], C, eps=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_keeps_dtype_and_device(dtype):
    x = torch.tensor(X, dtype=dtype)
    y = torch.tensor(Y, dtype=dtype)
    for value in (wasserstein(x, y), wasserstein(x, y, p=2), sliced_wasserstein(x, y, seed=0)):
        assert isinstance(value, torch.Tensor)
        assert value.dtype == dtype and value.device == x.device and value.ndim == 0


def test_numpy_returns_python_float_and_integers_are_accepted():
    value = wasserstein(np.array([0, 1]), np.array([2, 3]))
    assert type(value) is float
    assert value == 2.0
    ti = wasserstein(torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert ti.dtype == torch.get_default_dtype()


@pytest.mark.parametrize("kind", ["numpy", "torch", "float"])
@pytest.mark.parametrize("top", [0.0, 5e-324, 2.0**-1022, 0.5, 1.0, 3.0, 1e160, 2.0**1023,
                                 1.7976931348623157e308])
def test_pow2_exponent_is_the_least_e_with_every_entry_below_2_to_the_e(kind, top):
    """Checked against the definition with exact integer arithmetic: |entry| < 2^e, and
    (for a nonzero entry) 2^(e-1) <= max |entry|; 0 for all zeros."""
    from fractions import Fraction

    from otdiv._scaling import pow2_exponent

    values = [-top, top / 3, 0.0]
    arg = {"numpy": lambda: np.array(values),
           "torch": lambda: torch.tensor(values, dtype=torch.float64, requires_grad=True),
           "float": lambda: top}[kind]()
    e = pow2_exponent(arg, np.zeros(0))
    if top == 0:
        assert e == 0
        return
    assert Fraction(top) < Fraction(2) ** e
    assert Fraction(2) ** (e - 1) <= Fraction(top)


def test_check_flag_takes_bools_only():
    from otdiv._array import check_flag

    assert check_flag(True, "x") is True and check_flag(np.bool_(False), "x") is False
    for bad in (1, 0, "yes", None, 1.0):
        with pytest.raises(TypeError, match=r"^x must be True or False"):
            check_flag(bad, "x")


def test_pow2_exponent_reads_integers_and_bools_as_float64():
    """abs(-2**63) overflows int64 and bool tensors have no abs: both are read as float64."""
    from otdiv._scaling import pow2_exponent

    assert pow2_exponent(np.array([-2**63])) == 64 == pow2_exponent(torch.tensor([-2**63]))
    assert pow2_exponent(torch.tensor([True, False])) == 1 == pow2_exponent(np.array([True]))
