"""How the invariant checks fail: one AssertionError naming the axiom, the inputs and the
values, and the tolerance rule atol + rtol · scale they share."""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import numpy as np

from otdiv._array import is_tensor

_MAX_SHOWN = 2000  # characters of one input's repr in a failure message


def _show(obj: Any) -> str:
    """A readable, copy-pasteable description of one input (arrays at full precision)."""
    if is_tensor(obj):
        arr = obj.detach().cpu().numpy()
        text = f"torch.tensor({_show(arr)}, dtype={obj.dtype})"
    elif isinstance(obj, np.ndarray):
        text = np.array2string(
            obj, separator=", ", precision=17, floatmode="maxprec", threshold=200,
            max_line_width=sys.maxsize,
        )
        text = " ".join(line.strip() for line in text.splitlines())  # one line per input
        text = f"np.array({text}, dtype=np.{obj.dtype})"
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        parts = (f"{f.name}={_show(getattr(obj, f.name))}" for f in dataclasses.fields(obj))
        text = f"{type(obj).__name__}({', '.join(parts)})"
    elif isinstance(obj, (tuple, list)):
        inner = ", ".join(_show(o) for o in obj)
        text = f"({inner})" if isinstance(obj, tuple) else f"[{inner}]"
    else:
        text = repr(obj)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + f"... ({len(text) - _MAX_SHOWN} more characters)"
    return text


def _fail(check: str, axiom: str, detail: str, inputs: dict[str, Any]) -> None:
    lines = [f"{check}: {axiom} violated", f"  {detail}", "  counterexample:"]
    lines += [f"    {name} = {_show(value)}" for name, value in inputs.items()]
    raise AssertionError("\n".join(lines))


def _labels(count: int) -> list[str]:
    return list("xyz")[:count] if count <= 3 else [f"s{i}" for i in range(count)]


def _scalar(value: Any, what: str, check: str, inputs: dict[str, Any]) -> float:
    """A function's value as a Python float; NaN or a complex number is a failure."""
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    if np.iscomplexobj(value):
        _fail(check, "a real value", f"{what} = {value!r}", inputs)
    try:
        number = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise TypeError(
            f"{check}: {what} must return a real number, got {type(value).__name__}"
        ) from None
    if math.isnan(number):
        _fail(check, "a defined value (not NaN)", f"{what} = nan", inputs)
    return number


def _tolerance(scale: float, atol: float, rtol: float) -> float:
    return atol + rtol * abs(scale)


def _real(value: Any, name: str) -> float:
    """A real number argument (Python or numpy scalar, not bool) as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _nonnegative(value: Any, name: str) -> float:
    number = _real(value, name)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _check_tolerances(atol: float, rtol: float) -> tuple[float, float]:
    return _nonnegative(atol, "atol"), _nonnegative(rtol, "rtol")
