r"""lipschitz_bounds: lower ≤ Lip(f) ≤ upper for a torch critic.

``lower`` is an attained gradient norm (:mod:`otdiv.metrics.lipschitz.ascent`); ``upper`` is
certified from the critic's structure (:mod:`otdiv.metrics.lipschitz.structure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from otdiv._array import as_float_array, check_int, check_seed, is_tensor, to_numpy64
from otdiv.metrics.lipschitz.ascent import _lower_bound, _widened
from otdiv.metrics.lipschitz.structure import _upper_bound


@dataclass(frozen=True)
class LipschitzBounds:
    """lower ≤ Lip(f) = sup_{x≠y} ``|f(x) − f(y)|`` / ‖x − y‖₂ ≤ upper, for one critic.

    Attributes:
        lower: ‖∇f(witness)‖₂, an attained gradient norm (so a true lower bound).
        upper: a guaranteed upper bound (inf when the critic's structure is not understood).
        witness: the input point where ``lower`` is attained (shape ``x.shape[1:]``, same
            kind, dtype and device as ``x``).
        upper_method: how ``upper`` was obtained ("combettes-pesquet", "operator-norm" or
            "none").
        reason: why ``upper`` is inf, None when it is finite.
        lower_method: "gradient" (verified against a secant of f at the witness) or
            "secant" when no gradient could be verified (see :func:`lipschitz_bounds`).
        product_upper: the plain product of certified layer norms and activation slopes,
            the textbook bound that ``upper`` improves on (inf when unknown).
        layers: (name, certified operator norm) of each linear layer, in forward order.
    """

    lower: float
    upper: float
    witness: Any
    upper_method: str
    reason: str | None = None
    lower_method: str = "gradient"
    product_upper: float = math.inf
    layers: tuple[tuple[str, float], ...] = field(default=())

    @property
    def ratio(self) -> float:
        """upper / lower: 1 means the constant is known exactly."""
        return self.upper / self.lower if self.lower > 0 else math.inf


# the random interpolates are held at once: their points may take at most this many bytes
INTERPOLATE_BYTES = 2**30
# each ascent step costs 64 gradient evaluations; beyond this a call would not return
MAX_ASCENT_STEPS = 100_000


def _check_sizes(n_interpolates: int, ascent_steps: int, x) -> None:
    if ascent_steps > MAX_ASCENT_STEPS:
        raise ValueError(f"ascent_steps must be <= {MAX_ASCENT_STEPS} (each step evaluates 64 "
                         f"gradients; 50 is the default), got {ascent_steps}")
    per_point = math.prod(x.shape[1:]) * x.element_size()
    if n_interpolates * per_point > INTERPOLATE_BYTES:
        raise ValueError(
            f"n_interpolates={n_interpolates} would hold {n_interpolates * per_point / 2**30:.3g}"
            f" GiB of points of shape {tuple(x.shape[1:])}; at most "
            f"{INTERPOLATE_BYTES // per_point} fit in the {INTERPOLATE_BYTES / 2**30:g} GiB budget")


def lipschitz_bounds(
    critic,
    x,
    *,
    n_interpolates: int = 256,
    ascent_steps: int = 50,
    seed: int | None = None,
) -> LipschitzBounds:
    r"""Bracket the Lipschitz constant of a critic: lower ≤ Lip(f) ≤ upper.

    .. math::
        \lVert\nabla f(w)\rVert_2 = \text{lower} \le
        \sup_{x\ne y}\frac{|f(x)-f(y)|}{\lVert x-y\rVert_2} \le \text{upper}

    **lower** is attained: it is the gradient norm at the returned ``witness`` — the best
    of the gradient norms at the rows of x, at ``n_interpolates`` random points on segments
    between rows, and after ``ascent_steps`` of an adaptive ascent on ‖∇f‖ from the 32 best
    (steps along ∇‖∇f‖², which vanishes for ReLU critics, and random steps; a point moves
    only when its gradient norm grows). The winner is checked against a central secant of f
    (in float64 on a copy of a module, whose float64 gradient norm is then ``lower``) so
    that an autograd artefact at a kink cannot inflate it (``lower_method`` says "secant" in
    the rare case where the best verified value is a secant slope).

    **upper** is guaranteed for the function computed in exact arithmetic:

    * each linear layer's operator norm is certified by the Gram iteration with a rigorous
      a-posteriori rounding term (:func:`spectral_upper`) — not by plain power iteration,
      which approaches ‖W‖₂ from *below*; consecutive linear layers are multiplied out;
      Conv1d/Conv2d use the norm of the convolution on the actual input size (bounded by the
      circulant embedding, all DFT frequencies), not that of the reshaped kernel;
      spectral-normalised layers are read through their effective ``weight``;
    * activations with slopes in [α − β, α + β] (ReLU, LeakyReLU, Tanh, Sigmoid, ELU,
      Softplus, GELU, SiLU, ...) and GroupSort/MaxMin (1-Lipschitz) are combined with the
      averaged-operator bound of Combettes & Pesquet (see ``_bound_chain``), never larger
      than the product of layer norms (``product_upper``);
    * nn.Sequential nests; other modules are read from their torch.fx graph, where sums of
      branches (residual blocks, Lip ≤ sum), concatenations, reshapes, basic indexing and
      constant scalings are understood.

    Anything else (LayerNorm, attention, data-dependent control flow, a plain callable)
    gives ``upper = inf`` and ``reason`` names it: never a finite number that might be wrong.

    The critic is run in eval mode (BatchNorm uses its running statistics, dropout is off,
    spectral-norm power iterations are frozen) and its modes are restored afterwards; its
    parameters and their ``.grad`` are not touched.

    Args:
        critic: a torch.nn.Module (or any callable: then ``upper`` is inf) mapping a batch
            (n, ...) to n scores, shape (n,) or (n, 1).
        x: inputs, shape (n, ...), a torch tensor (numpy is converted to the critic's dtype).
        n_interpolates: random points on segments between rows of x where gradients are
            also evaluated (0 switches them off); their points may take at most 1 GiB.
        ascent_steps: steps of the ascent on ‖∇f‖ (0 switches it off), at most 100,000.
        seed: seed of the random interpolates and ascent steps.

    Returns:
        :class:`LipschitzBounds`.
    """
    import torch

    if not callable(critic):
        raise TypeError(
            f"critic must be a torch.nn.Module or a callable, got {type(critic).__name__}"
        )
    n_interpolates = check_int(n_interpolates, "n_interpolates", minimum=0)
    ascent_steps = check_int(ascent_steps, "ascent_steps", minimum=0)
    seed = check_seed(seed)
    named = (list(critic.named_parameters()) if isinstance(critic, torch.nn.Module) else [])
    for pname, param in named:
        if param.is_floating_point() and not bool(torch.isfinite(param).all()):
            raise ValueError(f"critic has NaN or inf in its parameter {pname!r}: no bound on "
                             "its Lipschitz constant means anything")
    params = [param for _, param in named if param.is_floating_point()]
    numpy_in = not is_tensor(x)
    xt = as_float_array(x, "x")
    x_dtype = xt.dtype
    if numpy_in:
        like = params[0] if params else torch.empty(0)
        xt = torch.as_tensor(xt, dtype=like.dtype, device=like.device)
    elif params and params[0].dtype != xt.dtype:
        # mixed precision: compute in the wider dtype (a float64 copy of a float32 critic, or
        # the inputs promoted), never in the narrower one
        if torch.finfo(xt.dtype).bits > torch.finfo(params[0].dtype).bits:
            critic = _widened(critic, xt.dtype)
            params = [p for p in critic.parameters() if p.is_floating_point()]
        else:
            xt = xt.to(params[0].dtype)
    if xt.ndim == 0 or xt.shape[0] == 0:
        raise ValueError(f"x must have shape (n, ...) with n >= 1, got shape {tuple(xt.shape)}")
    if xt.ndim == 1:
        xt = xt.reshape(-1, 1)
    _check_sizes(n_interpolates, ascent_steps, xt)
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)

    modes = ({m: m.training for m in critic.modules()}
             if isinstance(critic, torch.nn.Module) else {})
    try:
        if modes:
            critic.eval()
        lower, witness, lower_method = _lower_bound(
            critic, xt.detach(), n_interpolates, ascent_steps, gen
        )
        if not math.isfinite(lower) and xt.dtype != torch.float64 and modes:
            # float32 gradients overflowed (weights or inputs near the top of the range):
            # the same critic in float64 has them
            gen.manual_seed(0 if seed is None else seed)
            lower, witness, lower_method = _lower_bound(
                _widened(critic, torch.float64), xt.detach().double(), n_interpolates,
                ascent_steps, gen)
        if not math.isfinite(lower):
            raise ValueError(
                "the critic's gradients are not finite at x: they overflow (its weights or "
                f"inputs are too large for {xt.dtype}; rescale x or the critic), or f has an "
                "infinite slope there")
        if modes:
            upper, plain, method, reason, layers = _upper_bound(critic, xt[:1].detach())
        else:
            upper, plain, method, layers = math.inf, math.inf, "none", ()
            reason = (f"critic is a plain callable ({type(critic).__name__}), not a "
                      "torch.nn.Module: its structure is unknown, so no upper bound is certified")
    finally:
        for m, mode in modes.items():
            m.training = mode
    if upper < lower <= upper * (1 + 1e-5):
        # a float32 gradient can overshoot a tight bound by a few ulps (a larger excess would
        # be a bug, and is left visible)
        lower = upper
    if numpy_in:
        witness = to_numpy64(witness)
    else:
        witness = witness.to(x_dtype)
    return LipschitzBounds(
        lower=float(lower),
        upper=float(upper),
        witness=witness,
        upper_method=method,
        reason=reason,
        lower_method=lower_method,
        product_upper=float(plain),
        layers=layers,
    )


__all__ = ["LipschitzBounds", "lipschitz_bounds"]
