"""numpy/torch dispatch and input validation: every public function checks its inputs here.

Rules (see docs/conventions.md):

* numpy in -> float64 computation -> Python float out;
* torch in -> float32/float64 kept (other dtypes become torch's default float) -> tensor out,
  on the input's device, differentiable where the mathematics is;
* all array arguments of one call are of one kind (numpy or torch) and on one device;
* every error is a ``ValueError`` (wrong value) or ``TypeError`` (wrong kind of object) whose
  message names the argument, what it got, and what it needs.

torch is never imported here: a tensor is recognised through ``sys.modules``, so numpy users
never pay for it.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor; kept loose so that torch need not be imported


def is_tensor(x: object) -> bool:
    """True when ``x`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def array_kind(named: dict[str, object]) -> str:
    """Return ``"torch"`` or ``"numpy"`` for a call's array arguments (None entries skipped).

    Raises TypeError when numpy and torch are mixed, ValueError when tensors are on
    different devices.
    """
    tensors = {k: v for k, v in named.items() if v is not None and is_tensor(v)}
    others = [k for k, v in named.items() if v is not None and not is_tensor(v)]
    if not tensors:
        return "numpy"
    if others:
        raise TypeError(
            f"mixed array kinds: {', '.join(tensors)} are torch tensors but "
            f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} not; pass all "
            "arrays as torch tensors or all as numpy arrays"
        )
    devices = {k: v.device for k, v in tensors.items()}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{k} on {d}" for k, d in devices.items())
        raise ValueError(f"tensors are on different devices ({where}); move them to one device")
    return "torch"


def _torch_float(x, name: str):
    import torch

    if x.is_complex():
        raise TypeError(f"{name} must be real, got a complex tensor of dtype {x.dtype}")
    if x.dtype in (torch.float32, torch.float64):
        return x
    return x.to(torch.get_default_dtype())


def as_float_array(x: object, name: str, *, finite: bool = True) -> Array:
    """numpy: a float64 ndarray; torch: a float32/float64 tensor. Checks kind and finiteness.

    ``finite=False`` skips the NaN/inf scan of numpy inputs, for a caller whose own single pass
    over the data detects them (``check_histograms`` does, from the sums).
    """
    if is_tensor(x):
        t = _torch_float(x, name)
        import torch

        if t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf; all entries must be finite")
        return t
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    if isinstance(x, np.ma.MaskedArray):  # np.asarray would silently use the masked values
        raise TypeError(f"{name} is a masked array; otdiv does not read masks: pass the kept "
                        f"entries ({name}[~{name}.mask] for points, or {name}.compressed()) or "
                        f"{name}.filled(value)")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if finite and arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; all entries must be finite")
    return arr


def as_points(x: object, name: str) -> Array:
    """A point cloud as an (n, d) array: (n,) becomes (n, 1). n >= 1, entries finite."""
    arr = as_float_array(x, name)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n,) or (n, d), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; it needs at least one point")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(arr.shape)}; points need dimension d >= 1")
    return arr


def common_dtype(x: Array, y: Array) -> tuple[Array, Array]:
    """Torch clouds of float32 and float64 both in float64 (differentiably), as torch's type
    promotion would give; numpy arrays (always float64) pass through."""
    if is_tensor(x) and x.dtype != y.dtype:
        import torch

        dtype = torch.promote_types(x.dtype, y.dtype)
        return x.to(dtype), y.to(dtype)
    return x, y


def check_same_dim(x: Array, y: Array, names: Sequence[str] = ("x", "y")) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension d, got "
            f"{names[0]}.shape={tuple(x.shape)} and {names[1]}.shape={tuple(y.shape)}"
        )


def as_weights(
    a: object, n: int, name: str, *, like: Array, normalize: bool = True
) -> Array:
    """Nonnegative weights of length n, normalized to sum 1 (uniform when ``a`` is None).

    On the torch path the weights take ``like``'s dtype and device and keep their graph.
    """
    if a is None:
        if is_tensor(like):
            import torch

            return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)
        return np.full(n, 1.0 / n)
    w = as_float_array(a, name)
    if w.ndim != 1:
        hint = ("; for a cost matrix (POT's emd2(a, b, M)) use otdiv.transport(a, b, cost)"
                if w.ndim == 2 else "")
        raise ValueError(f"{name} must be a 1-D array of weights, got shape "
                         f"{tuple(w.shape)}{hint}")
    if w.shape[0] != n:
        raise ValueError(f"{name} has {w.shape[0]} weights but there are {n} points")
    if is_tensor(w):
        w = w.to(dtype=like.dtype, device=like.device)
        if bool((w < 0).any()):
            raise ValueError(f"{name} has negative weights (min {float(w.min()):.3g}); "
                             "weights must be >= 0")
        total = float(w.detach().sum())
    else:
        if (w < 0).any():
            raise ValueError(
                f"{name} has negative weights (min {w.min():.3g}); weights must be >= 0"
            )
        with np.errstate(over="ignore"):  # an overflowing sum is handled below
            total = float(w.sum())
    if not total > 0:
        raise ValueError(f"{name} has zero total mass; at least one weight must be > 0")
    if not normalize:
        return w
    if total == float("inf"):  # finite weights whose sum overflows: divide by the largest first
        w = w / w.max()
        total = float(w.detach().sum()) if is_tensor(w) else float(w.sum())
    # on the torch path divide by the tensor sum, so gradients see the normalization
    return w / (w.sum() if is_tensor(w) else total)


def check_p(p: object, name: str = "p") -> float:
    """The exponent of the ground cost: a finite real p >= 1."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 1, got {type(p).__name__}")
    p = float(p)
    if not np.isfinite(p) or p < 1:
        raise ValueError(f"{name} must be a finite number >= 1, got {p}")
    return p


def _as_float(value: numbers.Real, name: str, what: str) -> float:
    """float(value), or a ValueError naming ``name`` when it lies beyond the float range."""
    try:
        return float(value)
    except OverflowError:  # an int or Fraction such as 10**400
        raise ValueError(f"{name} must be {what} within the float range (|{name}| < "
                         f"{np.finfo(np.float64).max:.4g}), got a number with "
                         f"{len(str(abs(int(value))))} digits") from None


def check_positive(value: object, name: str) -> float:
    """A finite real number > 0 (eps, tol, ...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {type(value).__name__}")
    value = _as_float(value, name, "a finite number > 0")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_nonnegative(value: object, name: str) -> float:
    """A finite real number >= 0 (penalty weights and the like, where 0 switches a term off)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {type(value).__name__}")
    value = _as_float(value, name, "a finite number >= 0")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_flag(value: object, name: str) -> bool:
    """True or False (a Python or numpy bool), else a TypeError naming ``name``: 1, "yes" and
    None are not flags."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


MAX_COUNT = 2**62  # counts (iterations, sizes) live in int64 inside numba, torch and POT


def check_int(value: object, name: str, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """An integer in [minimum, maximum] (counts such as n_projections, k, max_iter)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value}")
    return value


SEED_LIMIT = 2**63 - 2**20  # seeds are below: headroom for derived seeds such as seed + 10_000
SEED_RANGE = f"[0, 2**63 - 2**20) (at most {SEED_LIMIT - 1})"


def check_seed(seed: object, name: str = "seed") -> int | None:
    """The one seed rule: None (fresh entropy) or an integer in [0, 2**63 - 2**20).

    numpy accepts wider seeds, but torch's manual_seed and the seeds otdiv derives from a
    seed (``seed + 1``, ``seed + 10_000``, ``[seed, 1]``) must stay within int64, so the
    top 2**20 of int64 are left as headroom (``SEED_LIMIT``); a str, float or bool is a
    TypeError and a negative or too large integer a ValueError, both naming ``name`` and
    the range.
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be None or an integer in {SEED_RANGE}, "
                        f"got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} must be None or an integer in {SEED_RANGE}, got {seed}")
    return seed


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def to_numpy64(x: Array) -> np.ndarray:
    """A detached float64 numpy copy (CPU) of an array of either kind."""
    if is_tensor(x):
        return x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


def output(value: Array, kind: str):
    """The one way out: a Python float for a 0-d numpy result, a numpy array for a batched
    one; tensors are returned as they are."""
    if kind == "numpy":
        return float(value) if np.ndim(value) == 0 else np.asarray(value)
    return value


def namespace(kind: str):
    """The module of an array kind, for a formula written once for both: ``numpy``, or
    ``torch`` (imported only for torch input). The two spell alike what otdiv's formulas use:
    where, exp, log, logaddexp, clip, amax(x, axis), moveaxis."""
    if kind == "torch":
        import torch

        return torch
    return np


def detached(x: Array) -> Array:
    """x without its autograd graph (a tensor's ``detach()``; numpy arrays as they are)."""
    return x.detach() if is_tensor(x) else x


def broadcast_pair(x: Array, y: Array, names: Sequence[str] = ("x", "y")) -> tuple[Array, Array]:
    """x and y broadcast to one shape (torch: in their promoted dtype, differentiably); a
    ValueError naming both shapes when they do not broadcast."""
    x, y = common_dtype(x, y)
    try:
        if is_tensor(x):
            import torch

            return tuple(torch.broadcast_tensors(x, y))
        return tuple(np.broadcast_arrays(x, y))
    except (RuntimeError, ValueError):
        raise ValueError(
            f"{names[0]} and {names[1]} must have broadcastable shapes, got "
            f"{names[0]}.shape={tuple(x.shape)} and {names[1]}.shape={tuple(y.shape)}"
        ) from None


def as_numpy64(x: object, name: str, *, finite: bool = True) -> np.ndarray:
    """A float64 numpy array of its own shape from an array, a list or a tensor of any real
    dtype (detached and converted to float64 directly: an integer tensor above 2^24 is not
    rounded through torch's float32). Complex values and anything but numbers are a
    TypeError, NaN or inf a ValueError (``finite=False``: kept, for a caller that counts
    them), each naming ``name``."""
    if is_tensor(x) and not x.is_complex():
        x = to_numpy64(x)
    return as_float_array(x, name, finite=finite)


def check_axis(axis: object, ndim: int, name: str = "axis") -> int:
    """An axis of an array with ``ndim`` dimensions, returned nonnegative."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(axis).__name__}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} is out of range for arrays with {ndim} dimension(s); "
            f"it needs {-ndim} <= {name} < {ndim}"
        )
    return axis % ndim


def check_histograms(
    h: Array, name: str, *, mins: Array | None = None, sums: Array | None = None
) -> Array:
    """Check histograms stored along the last axis of ``h``; return their sums (``h.sum(-1)``).

    Entries must be >= 0 and each histogram needs a positive total mass. A batched ``h`` has
    one histogram per index of its leading axes; the message names the first bad one.
    ``mins`` and ``sums`` (per histogram) may be given when a caller has them already.
    """
    if h.shape[-1] == 0:
        raise ValueError(f"{name} has no bins along the histogram axis; it needs at least one")
    if sums is None:
        sums = h.sum(-1)
    if mins is None:
        mins = h.amin(-1) if is_tensor(h) else h.min(-1)
    mins_np = to_numpy64(mins).reshape(h.shape[:-1])
    sums_np = to_numpy64(sums).reshape(h.shape[:-1])

    def where(bad: np.ndarray) -> str:
        if bad.ndim == 0:
            return ""
        return f" at batch index {tuple(int(i) for i in np.argwhere(bad)[0])}"

    bad = ~np.isfinite(sums_np)  # NaN or inf entries make the sum NaN or inf
    if bad.any():
        h_np = to_numpy64(h)
        if not np.isfinite(h_np).all():
            bad = ~np.isfinite(h_np).all(-1)
            raise ValueError(f"{name} contains NaN or inf{where(bad)}; all entries must be finite")
        raise ValueError(f"{name} has a total mass that overflows float64{where(bad)}")

    bad = mins_np < 0
    if bad.any():
        raise ValueError(
            f"{name} has negative entries{where(bad)} (min {mins_np.min():.3g}); "
            "histograms must be >= 0"
        )
    bad = ~(sums_np > 0)
    if bad.any():
        raise ValueError(
            f"{name} is an all-zero histogram{where(bad)}; each histogram needs a positive "
            "total mass"
        )
    return sums


def check_scores(s: Array, n: int, name: str, *, what: str = "score", per: str = "sample",
                 verb: str = "hold", tensor: bool = False, detail: str = "") -> Array:
    """One score per sample: ``s`` holds n entries along its first axis — shape (n,) or
    (n, 1) — and comes back as shape (n,), of its own kind (a tensor keeps its graph).

    The one rule for a critic's output and for given scores or values (gan, lipschitz,
    testing, audit). ``tensor=True``: anything but a torch tensor is a TypeError. The
    ValueError reads "``name`` must ``verb`` one ``what`` per ``per``, shape (n,) or (n, 1);
    got shape ...``detail``".
    """
    if tensor and not is_tensor(s):
        raise TypeError(f"{name} must {verb} a torch tensor, got {type(s).__name__}")
    if (s.is_complex() if is_tensor(s) else np.iscomplexobj(s)):
        raise TypeError(f"{name} must {verb} real {what}s, got complex ones{detail}")
    shape = tuple(np.shape(s)) if not is_tensor(s) else tuple(s.shape)
    if len(shape) == 0 or shape[0] != n or math.prod(shape) != n:
        raise ValueError(f"{name} must {verb} one {what} per {per}, shape ({n},) or ({n}, 1); "
                         f"got shape {shape}{detail}")
    return s.reshape(n) if is_tensor(s) else np.reshape(s, n)


def check_callable(value: object, name: str, hint: str = "") -> None:
    """A TypeError naming ``name`` unless ``value`` is callable (``hint``: what it may be,
    e.g. " (an nn.Module or a function)")."""
    if not callable(value):
        raise TypeError(f"{name} must be callable{hint}, got {type(value).__name__}")


def require_tensor(x: object, name: str, why: str) -> None:
    """A TypeError naming ``name`` unless ``x`` is a torch tensor, for torch-only functions
    (``why``: e.g. "otdiv's GAN losses are torch only")."""
    if not is_tensor(x):
        raise TypeError(f"{name} must be a torch tensor ({why}), got {type(x).__name__}")


def check_batch(x: object, name: str, why: str) -> Array:
    """A batch of samples fed to a network: a finite floating-point tensor of shape (n, ...),
    n >= 1, kept in its dtype (a half-precision network needs half inputs)."""
    require_tensor(x, name, why)
    import torch

    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert it "
            f"(e.g. {name}.float()) before feeding the critic"
        )
    if x.ndim == 0 or x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(
            f"{name} must have shape (n, ...) with n >= 1 samples, got shape {tuple(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf; all entries must be finite")
    return x


def check_rng(rng: object, name: str = "rng") -> np.random.Generator:
    """A ``numpy.random.Generator`` (what samplers draw from), else a TypeError naming
    ``name``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return rng
