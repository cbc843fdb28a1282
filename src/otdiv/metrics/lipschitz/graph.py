r"""Modules with a custom forward, read from their torch.fx graph.

The graph is interpreted on the sample batch: every node that depends on the input carries
the chain of linear maps and activations that produced it. Submodules stay opaque nodes
(analysed recursively by the caller's ``chain``); a function or method node is looked up
in a table keyed by the function object (or the method's name), whose rule returns the
node's chain. The operations with a known constant are activations, reshapes, basic
indexing, F.linear with a constant weight, sum/mean over non-batch dimensions, negation,
scaling by a constant, and sums (Lip(a + b) ≤ Lip(a) + Lip(b)) and concatenations
(Lip([a, b]) ≤ (Lip(a)² + Lip(b)²)^{1/2}) of input-dependent branches. Anything else raises
``_Unbounded`` naming the operation.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otdiv._array import is_tensor
from otdiv.metrics.lipschitz.chain import _SLOPES, _Act, _act_from_slopes, _bound_chain, _Lin
from otdiv.metrics.lipschitz.norms import _Unbounded


def _fx_name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _basic_index(idx) -> bool:
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


@dataclass
class _Call:
    """One function or method node of the graph, evaluated on the sample batch."""

    label: str  # name of the node in the critic, for reasons and layer names
    fname: str  # the function's or method's name
    node: Any  # the torch.fx node
    args: tuple  # its arguments, evaluated
    kwargs: dict
    chains: list  # the chain of each input-dependent argument
    first_is_x: bool  # the first argument is the (only) input-dependent one
    unknown: Callable  # unknown(what) raises _Unbounded naming the module

    @property
    def single(self) -> bool:
        return len(self.chains) == 1

    def unary(self) -> list:
        """The chain of the one input-dependent argument, which must come first."""
        if not (self.single and self.first_is_x):
            self.unknown(f"{self.fname} with {len(self.chains)} input-dependent arguments")
        return self.chains[0]


# ---- rules: _Call -> chain of the node's value ---------------------------------------------


def _activation_rule(c: _Call, lo: float, hi: float) -> list:
    return [*c.unary(), _act_from_slopes(c.label, lo, hi)]


def _leaky_rule(c: _Call) -> list:
    a = float(c.args[1] if len(c.args) > 1 else c.kwargs.get("negative_slope", 0.01))
    return [*c.unary(), _act_from_slopes(c.label, min(a, 1), max(a, 1))]


def _isometry_rule(c: _Call) -> list:
    # reshapes are isometries
    return [*c.unary(), _Lin(c.label, norm=1.0, reported=False)]


def _getitem_rule(c: _Call) -> list:
    # basic indexing keeps a subset of entries (norm ≤ 1); advanced indexing may repeat them
    if not _basic_index(c.args[1]):
        c.unknown("advanced indexing")
    return _isometry_rule(c)


def _linear_rule(c: _Call) -> list:
    chain = c.unary()  # the input is the only input-dependent argument: the weight is not
    weight = c.args[1] if len(c.args) > 1 else c.kwargs.get("weight")
    if not is_tensor(weight):
        c.unknown("F.linear without a weight tensor")
    return [*chain, _Lin(c.label, dense=weight.detach().double().cpu().numpy())]


def _reduce_rule(c: _Call) -> list:
    # summing k entries is a linear map of norm √k (a mean: 1/√k), per sample
    chain = c.unary()
    dim = c.args[1] if len(c.args) > 1 else c.kwargs.get("dim")
    nd = c.args[0].ndim
    dims = (dim,) if isinstance(dim, int) else tuple(dim or ())
    if not dims or any(d % nd == 0 for d in dims):
        c.unknown(f"{c.fname} over the batch dimension")
    k = math.prod(c.args[0].shape[d] for d in dims)
    scale = math.sqrt(k) if c.fname == "sum" else 1.0 / math.sqrt(k)
    return [*chain, _Lin(c.label, norm=scale, reported=False)]


def _neg_rule(c: _Call) -> list:
    if not c.single:
        c.unknown(f"{c.fname} of several input-dependent tensors")
    return c.chains[0] + [_Lin(c.label, norm=1.0, reported=False)]


def _add_rule(c: _Call) -> list:
    if "alpha" in c.kwargs or len(c.args) > 2:
        c.unknown(f"{c.fname} with a scaling factor")
    if c.single:  # adding a constant shifts f
        return c.chains[0]
    total = sum(_bound_chain(ch)[0] for ch in c.chains)
    return [_Act(c.label, 0.0, total)]


def _scale_rule(c: _Call, divide: bool) -> list:
    if not c.single or c.kwargs:
        c.unknown(f"{c.fname} of two input-dependent tensors")
    other = c.args[1] if c.first_is_x else c.args[0]
    if divide and not c.first_is_x:
        c.unknown("division by an input-dependent tensor")
    if isinstance(other, numbers.Real):
        factor = abs(float(other))
    elif is_tensor(other):
        factor = float(other.detach().abs().max()) if other.numel() else 0.0
    else:
        c.unknown(f"{c.fname} by a {type(other).__name__}")
    if divide:
        small = float(other.detach().abs().min()) if is_tensor(other) else factor
        factor = math.inf if small == 0 else 1.0 / small
    return c.chains[0] + [_Lin(c.label, norm=factor, reported=False)]


def _cat_rule(c: _Call) -> list:
    total = math.sqrt(sum(_bound_chain(ch)[0] ** 2 for ch in c.chains))
    return [_Act(c.label, 0.0, total)]


_ACTIVATION_NAMES = {"relu": (0.0, 1.0), "tanh": (0.0, 1.0), "sigmoid": (0.0, 0.25)}
_RESHAPES = ("view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "permute",
             "transpose", "t", "clone")


@functools.cache
def _method_rules() -> dict[str, Callable]:
    """Tensor method name -> rule."""
    rules: dict[str, Callable] = {
        name: functools.partial(_activation_rule, lo=lo, hi=hi)
        for name, (lo, hi) in _ACTIVATION_NAMES.items()
    }
    rules.update(dict.fromkeys(_RESHAPES, _isometry_rule))
    rules.update({"sum": _reduce_rule, "mean": _reduce_rule, "neg": _neg_rule,
                  "add": _add_rule, "sub": _add_rule,
                  "mul": functools.partial(_scale_rule, divide=False),
                  "div": functools.partial(_scale_rule, divide=True)})
    return rules


@functools.cache
def _function_rules() -> dict[Any, Callable]:
    """Function object (torch, torch.nn.functional, operator) -> rule."""
    import torch
    import torch.nn.functional as F

    slopes = {torch.relu: (0.0, 1.0), F.relu: (0.0, 1.0), torch.tanh: (0.0, 1.0),
              F.tanh: (0.0, 1.0), torch.sigmoid: (0.0, 0.25), F.sigmoid: (0.0, 0.25),
              F.softplus: (0.0, 1.0), F.relu6: (0.0, 1.0), F.hardtanh: (0.0, 1.0),
              F.gelu: _SLOPES["GELU"], F.silu: _SLOPES["SiLU"]}
    rules: dict[Any, Callable] = {
        fn: functools.partial(_activation_rule, lo=lo, hi=hi) for fn, (lo, hi) in slopes.items()
    }
    rules[F.leaky_relu] = _leaky_rule
    for name in _RESHAPES:
        if callable(getattr(torch, name, None)):
            rules[getattr(torch, name)] = _isometry_rule
    rules[operator.getitem] = _getitem_rule
    rules[F.linear] = _linear_rule
    rules.update(dict.fromkeys((torch.sum, torch.mean), _reduce_rule))
    rules.update(dict.fromkeys((operator.neg, torch.neg), _neg_rule))
    rules.update(dict.fromkeys((operator.add, torch.add, operator.sub, torch.sub), _add_rule))
    rules.update(dict.fromkeys((operator.mul, torch.mul),
                               functools.partial(_scale_rule, divide=False)))
    rules.update(dict.fromkeys((operator.truediv, torch.div),
                               functools.partial(_scale_rule, divide=True)))
    rules[torch.cat] = _cat_rule
    return rules


# ---- the interpreter ----------------------------------------------------------------------


def _traced(module, z, name: str, chain: Callable) -> list:
    """Chain items of a module with a custom forward, from its torch.fx graph.

    ``chain(submodule, input, name)`` returns (items, output) of a submodule.
    """
    import torch
    import torch.fx as fx

    class _Opaque(fx.Tracer):
        def is_leaf_module(self, m, qualname):  # every submodule is analysed on its own
            return True

    kind = type(module).__name__
    if not list(module.children()) and type(module).forward is torch.nn.Module.forward:
        raise _Unbounded(f"{name} ({kind}) has no forward")
    try:
        graph = _Opaque().trace(module)
    except Exception as exc:
        raise _Unbounded(
            f"{name} ({kind}) is not a module otdiv knows and torch.fx cannot trace its "
            f"forward ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None

    env: dict = {}  # node -> (value, chain or None when the node does not depend on x)
    placeholders = 0

    def val(a):
        return fx.node.map_arg(a, lambda n: env[n][0])

    def deps(args):
        found = []
        fx.node.map_arg(args, lambda n: found.append(n) if env[n][1] is not None else None)
        return found

    def unknown(what):
        raise _Unbounded(f"{name} ({kind}) applies {what}, whose Lipschitz constant otdiv "
                         "does not know")

    for node in graph.nodes:
        if node.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                if node.args:  # an argument with a default value
                    env[node] = (node.args[0], None)
                    continue
                raise _Unbounded(f"{name} ({kind}) takes more than one input")
            env[node] = (z, [])
            continue
        if node.op == "get_attr":
            obj = module
            for part in node.target.split("."):
                obj = getattr(obj, part)
            env[node] = (obj, None)
            continue
        if node.op == "output":
            out_deps = deps(node.args[0])
            if len(out_deps) != 1 or node.args[0] is not out_deps[0]:
                raise _Unbounded(f"{name} ({kind}) must return one tensor")
            return env[out_deps[0]][1]
        args, kwargs = val(node.args), val(node.kwargs)
        dep = deps((node.args, node.kwargs))
        if node.op == "call_module":
            sub = module.get_submodule(node.target)
            if not dep:
                env[node] = (sub(*args, **kwargs), None)
                continue
            if len(dep) != 1 or node.args[0] is not dep[0] or len(node.args) + len(kwargs) > 1:
                raise _Unbounded(f"{name}.{node.name}: submodule {node.target} gets more "
                                 "than one input")
            items, out = chain(sub, args[0], f"{name}.{node.target}")
            env[node] = (out, env[dep[0]][1] + items)
            continue
        fn = node.target
        is_method = node.op == "call_method"
        value = getattr(args[0], fn)(*args[1:], **kwargs) if is_method else fn(*args, **kwargs)
        if not dep:
            env[node] = (value, None)
            continue
        rule = _method_rules().get(fn) if is_method else _function_rules().get(fn)
        if rule is None:
            unknown(f"{_fx_name(fn)} ({node.op})")
        call = _Call(label=f"{name}.{node.name}", fname=_fx_name(fn), node=node, args=args,
                     kwargs=kwargs, chains=[env[d][1] for d in dep],
                     first_is_x=bool(node.args) and node.args[0] is dep[0], unknown=unknown)
        env[node] = (value, rule(call))
    raise _Unbounded(f"{name} ({kind}): its graph has no output")
