r"""Reading a torch critic as a chain of linear maps and activations.

nn.Sequential nests; each leaf module is looked up in a table keyed by its type (Linear,
convolutions, reshapes, BatchNorm in eval mode, activations); any other module is read from
its torch.fx graph (:mod:`otdiv.metrics.lipschitz.graph`). What is not understood raises
``_Unbounded`` with the culprit's name, so the bound is inf, never a number that might be wrong.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from otdiv._array import to_numpy64
from otdiv.metrics.lipschitz.chain import _SLOPES, _Act, _act_from_slopes, _bound_chain, _Lin
from otdiv.metrics.lipschitz.graph import _traced
from otdiv.metrics.lipschitz.norms import _conv_norm, _effective_weight, _Unbounded

# ---- activation modules -------------------------------------------------------------------


def _leaky(module) -> _Act:
    a = float(module.negative_slope)
    return _act_from_slopes("LeakyReLU", min(a, 1.0), max(a, 1.0))


def _elu(module) -> _Act | None:
    # ELU: slope α e^x on x < 0, so slopes in [0, max(1, α)]; CELU: e^{x/α}, in [0, 1]
    a = float(module.alpha)
    if a < 0:
        return None
    return _act_from_slopes(type(module).__name__, 0.0, max(1.0, a))


def _celu(module) -> _Act | None:
    a = float(module.alpha)
    if a < 0:
        return None
    return _act_from_slopes(type(module).__name__, 0.0, 1.0)


@functools.cache
def _activation_rules() -> dict[type, Callable]:
    """torch.nn activation type -> its slope interval as an ``_Act``."""
    import torch.nn as nn

    rules: dict[type, Callable] = {nn.LeakyReLU: _leaky, nn.ELU: _elu, nn.CELU: _celu}
    for cls_name, (lo, hi) in _SLOPES.items():
        rules[getattr(nn, cls_name)] = functools.partial(
            lambda _m, n, lo, hi: _act_from_slopes(n, lo, hi), n=cls_name, lo=lo, hi=hi)
    return rules


def _lookup(table: dict[type, Callable], module) -> Callable | None:
    """The rule of the nearest class of ``module`` in ``table``.

    A subclass inherits the rule only while it keeps that class's ``forward`` (a
    parametrised Linear does; a subclass computing something else is not that layer).
    """
    for cls in type(module).__mro__:
        if cls in table:
            return table[cls] if type(module).forward is cls.forward else None
    return None


def _activation(module) -> _Act | None:
    """The slope interval of an activation module, None when it is not one otdiv knows."""
    rule = _lookup(_activation_rules(), module)
    if rule is not None:
        return rule(module)
    name = type(module).__name__
    if name in ("GroupSort", "MaxMin"):
        # 1-Lipschitz (it permutes coordinates); no elementwise structure to exploit
        return _Act(name, 0.0, 1.0)
    return None


# ---- leaf modules -------------------------------------------------------------------------


def _linear_leaf(module, z, out, name: str) -> list:
    return [_Lin(name, dense=_effective_weight(module))]


def _conv_leaf(module, z, out, name: str) -> list:
    return [_Lin(name, norm=_conv_norm(module, tuple(z.shape[2:])))]


def _reshape_leaf(module, z, out, name: str) -> list:
    # reshapes are isometries; dropout is the identity in eval mode
    return [] if out.shape == z.shape else [_Lin(name, norm=1.0, reported=False)]


def _batchnorm_leaf(module, z, out, name: str) -> list:
    import torch

    if module.running_var is None:
        raise _Unbounded(f"{name}: BatchNorm without running statistics uses batch "
                         "statistics even in eval mode, which couples the samples")
    with torch.no_grad():
        scale = 1.0 / torch.sqrt(module.running_var.double() + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.double()
    scale = scale.cpu().numpy()
    if z.ndim == 2:
        return [_Lin(name, dense=np.diag(scale))]
    return [_Lin(name, norm=float(np.max(np.abs(scale))))]


@functools.cache
def _leaf_rules() -> dict[type, Callable]:
    """torch.nn leaf type -> rule(module, input, output, name) giving its chain items."""
    import torch.nn as nn

    rules: dict[type, Callable] = {nn.Linear: _linear_leaf}
    rules.update(dict.fromkeys((nn.Conv1d, nn.Conv2d), _conv_leaf))
    rules.update(dict.fromkeys((nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout),
                               _reshape_leaf))
    rules.update(dict.fromkeys((nn.BatchNorm1d, nn.BatchNorm2d), _batchnorm_leaf))
    return rules


def _leaf(module, z, out, name: str) -> list:
    """The chain items of one module that is not a Sequential, given its input and output."""
    rule = _lookup(_leaf_rules(), module)
    if rule is not None:
        return rule(module, z, out, name)
    act = _activation(module)
    if act is None:
        return _traced(module, z, name, _chain)
    if act.alpha == 0.0 and act.name in ("GroupSort", "MaxMin"):
        a = np.sort(to_numpy64(z).reshape(z.shape[0], -1), axis=1)
        b = np.sort(to_numpy64(out).reshape(out.shape[0], -1), axis=1)
        if a.shape != b.shape or np.max(np.abs(a - b), initial=0.0) > 0:
            raise _Unbounded(f"{name} is named {act.name} but does not permute its "
                             "input's entries")
    act.name = name
    return [act]


def _chain(module, z, name: str):
    """(items, output) of a module applied to the sample batch z."""
    import torch.nn as nn

    if isinstance(module, nn.Sequential):
        items = []
        for child_name, child in module.named_children():
            sub, z = _chain(child, z, f"{name}.{child_name}" if name else child_name)
            items += sub
        return items, z
    out = module(z)
    return _leaf(module, z, out, name or type(module).__name__), out


def _upper_bound(critic, sample) -> tuple[float, float, str, str | None, tuple]:
    """(upper, product_upper, method, reason, layers) of a torch critic."""
    import torch

    try:
        with torch.no_grad():
            items, _ = _chain(critic, sample, "")
        upper, plain = _bound_chain(items)
    except _Unbounded as exc:
        return math.inf, math.inf, "none", str(exc), ()
    layers = tuple((lin.name, lin.certified_norm())
                   for lin in items if isinstance(lin, _Lin) and lin.reported)
    method = "combettes-pesquet" if any(isinstance(i, _Act) for i in items) else "operator-norm"
    return upper, plain, method, None, layers
