"""What every otdiv strategy shares: ``_strategy`` (an ``st.composite`` whose arguments are
checked when the strategy is built), size and flag checks, dtype and array kind."""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

# The first otdiv call in a process loads compiled kernels, slower than hypothesis's default
# 200 ms deadline: ``settings.load_profile("otdiv")`` (or ``@settings(deadline=None)``).
settings.register_profile("otdiv", deadline=None)

_SIZES = {"n": 1, "d": 1, "count": 1, "max_size": 1, "max_n": 1, "max_d": 1, "max_depth": 1}
_FLAGS = {"zeros", "tiny", "absolutely_continuous", "zero_weights", "tiny_weights",
          "duplicates", "weighted", "flat"}


def _size(value: Any, name: str) -> int:
    """A size argument: an int >= its minimum (checked when given and when drawn)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < _SIZES[name]:
        raise ValueError(f"{name} must be >= {_SIZES[name]}, got {value}")
    return int(value)


def _check_arguments(args: dict[str, Any]) -> None:
    """Check a strategy's arguments when it is built, not when hypothesis first draws."""
    for name, value in args.items():
        if isinstance(value, st.SearchStrategy):
            continue  # drawn values are checked when drawn
        if name in _SIZES and value is not None:
            _size(value, name)
        elif name in _FLAGS and value is not None and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        elif name == "bound":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                 np.floating)):
                raise TypeError(f"bound must be a real number, got {type(value).__name__}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"bound must be a finite number > 0, got {value!r}")
        elif name == "p" and not (isinstance(value, (int, float, np.integer, np.floating))
                                  and not isinstance(value, bool) and value >= 1
                                  and math.isfinite(value)):
            raise ValueError(f"p must be a finite number >= 1, got {value!r}")
        elif name == "L" and value is not None and not (
                isinstance(value, (int, float, np.integer, np.floating))
                and not isinstance(value, bool) and 0 < value < math.inf):
            raise ValueError(f"L must be a finite number > 0, got {value!r}")
        elif name == "kind":
            _check_kind(value)
        elif name == "kinds":
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                raise TypeError(f"kinds must be a tuple of names, got {value!r}")
            if not tuple(value):
                raise ValueError("kinds must be a nonempty tuple of names, got ()")


def _strategy(fn):
    """``st.composite`` whose arguments are checked when the strategy is built."""
    composite = st.composite(fn)
    sig = inspect.signature(fn)
    sig = sig.replace(parameters=list(sig.parameters.values())[1:])

    @functools.wraps(fn)
    def build(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        values = dict(bound.arguments)
        values.update(values.pop("kwargs", {}))
        _check_arguments(values)
        return composite(*args, **kwargs)

    build.__signature__ = sig
    return build


def _value(draw, v, name: str | None = None):
    v = draw(v) if isinstance(v, st.SearchStrategy) else v
    return _size(v, name) if name in _SIZES else v


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _to_kind(arr, kind: str):
    if arr is None or kind == "numpy":
        return arr
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr))


def _check_kind(kind: str) -> None:
    if kind not in ("numpy", "torch"):
        raise ValueError(f"kind must be 'numpy' or 'torch', got {kind!r}")
