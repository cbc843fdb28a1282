"""GAN losses on critic scores and discriminator logits (torch only).

Every loss is a quantity to *minimise*, averaged over all entries of its inputs, and works on
raw scores / logits (never on probabilities), so the sigmoid is folded into a softplus:
-log σ(t) = softplus(-t) and -log(1 - σ(t)) = softplus(t), computed as
softplus(t) = log(e^0 + e^t) by ``torch.logaddexp`` = max(t, 0) + log1p(e^{−|t|}): accurate to
the last bits for every t and finite for logits of ±1e4. (``torch.nn.functional.softplus``
returns t itself above t = 20, dropping log1p(e^{−t}) ≤ 2e-9: a relative error of 1e-10,
below float32's resolution but not float64's.)

Scores in float16 or bfloat16 (as a critic under autocast produces them) are promoted to
float32 before the loss, exactly as ``torch.autocast`` does for its own loss functions: a
squared logit of 1e4 overflows float16. float32 and float64 inputs keep their dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otdiv._array import array_kind, as_float_array, check_choice, require_tensor

if TYPE_CHECKING:
    import torch

DISCRIMINATOR_KINDS = ("minimax", "non-saturating", "hinge", "least-squares")
GENERATOR_KINDS = DISCRIMINATOR_KINDS


def as_scores(x: object, name: str) -> torch.Tensor:
    """A non-empty, finite, real tensor of scores; float16/bfloat16 promoted to float32."""
    require_tensor(x, name, "otdiv's GAN losses are torch only")
    t = as_float_array(x, name)
    if t.numel() == 0:
        raise ValueError(f"{name} is empty; it needs at least one score")
    return t


def _pair(real: object, fake: object, names: tuple[str, str]):
    r, f = as_scores(real, names[0]), as_scores(fake, names[1])
    array_kind({names[0]: r, names[1]: f})  # same device
    if r.dtype != f.dtype:
        # mixed float32/float64 would silently promote; the caller should choose
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dtype, got {r.dtype} and {f.dtype}"
        )
    return r, f


def _down_scale(*ts: torch.Tensor) -> torch.Tensor:
    """2^-k with k >= 0 the smallest power of two putting every |entry| of ts below 2.

    A mean of finite scores can overflow in its sum (n scores of 1e308), and a difference of
    two overflowed means is inf − inf = NaN; the same means taken on the scores times 2^-k
    and multiplied back are exact (scaling by a power of two rounds nothing), so the loss is
    the correctly rounded value whenever it is representable. Scores are never scaled *up*.
    """
    import torch

    m = torch.stack([t.detach().abs().max() for t in ts]).max()
    _, e = torch.frexp(m)  # m = mantissa · 2^e, mantissa in [0.5, 1)
    return torch.exp2(-(e - 1).clamp(min=0).to(ts[0].dtype))


def _softplus(t: torch.Tensor) -> torch.Tensor:
    """log(1 + e^t) = logaddexp(t, 0), accurate for every t (module docstring)."""
    import torch

    return torch.logaddexp(t, torch.zeros((), dtype=t.dtype, device=t.device))


def _mean(t: torch.Tensor) -> torch.Tensor:
    """mean(t) without a spurious overflow of the intermediate sum."""
    s = _down_scale(t)
    return (t * s).mean() / s


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """L_critic = mean(fake_scores) − mean(real_scores), to be minimised by the critic.

    Its negative, mean(real) − mean(fake), is the critic's estimate of W1(real, fake) (exact
    at the optimum over 1-Lipschitz critics, by Kantorovich–Rubinstein duality). The two
    inputs may hold different numbers of scores; each is averaged over all its entries.

    Args:
        real_scores: critic outputs on real samples, any shape, e.g. (n,) or (n, 1).
        fake_scores: critic outputs on generated samples, any shape.

    Returns:
        A 0-d tensor of the inputs' dtype and device (float32 for half-precision scores).
    """
    r, f = _pair(real_scores, fake_scores, ("real_scores", "fake_scores"))
    s = _down_scale(r, f)  # one scale for both: the difference itself is taken scaled
    return ((f * s).mean() - (r * s).mean()) / s


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """L_gen = −mean(fake_scores), to be minimised by the generator.

    Args:
        fake_scores: critic outputs on generated samples, any shape.

    Returns:
        A 0-d tensor of the input's dtype and device (float32 for half-precision scores).
    """
    return -_mean(as_scores(fake_scores, "fake_scores"))


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, kind: str = "non-saturating"
) -> torch.Tensor:
    """L_D = E[softplus(−r)] + E[softplus(f)] = −E log σ(r) − E log(1 − σ(f)) (BCE, default).

    ``r`` are the logits on real samples, ``f`` on generated ones. Kinds:

    * ``"minimax"`` and ``"non-saturating"``: the binary cross-entropy above, the *same*
      loss for both (Goodfellow et al. 2014); the two kinds differ only in the generator.
    * ``"hinge"``: E[relu(1 − r)] + E[relu(1 + f)] (Lim & Ye 2017; Miyato et al. 2018).
    * ``"least-squares"``: ½ E[(r − 1)²] + ½ E[f²] — LSGAN with the 0-1 coding
      (a = 0, b = 1) and the ½ of Mao et al. 2017, on the raw outputs (no sigmoid).

    Args:
        real_logits: discriminator outputs (logits) on real samples, any shape.
        fake_logits: discriminator outputs on generated samples, any shape.
        kind: one of "minimax", "non-saturating", "hinge", "least-squares".

    Returns:
        A 0-d tensor of the inputs' dtype and device (float32 for half-precision logits).
    """
    import torch.nn.functional as F

    kind = check_choice(kind, "kind", DISCRIMINATOR_KINDS)
    r, f = _pair(real_logits, fake_logits, ("real_logits", "fake_logits"))
    if kind in ("minimax", "non-saturating"):
        return _mean(_softplus(-r)) + _mean(_softplus(f))
    if kind == "hinge":
        return _mean(F.relu(1.0 - r)) + _mean(F.relu(1.0 + f))
    return 0.5 * _mean((r - 1.0).square()) + 0.5 * _mean(f.square())


def generator_loss(fake_logits: torch.Tensor, *, kind: str = "non-saturating") -> torch.Tensor:
    """L_G = E[softplus(−f)] = −E log σ(f) (non-saturating, default), f = logits on fakes.

    Kinds:

    * ``"minimax"`` (saturating): E log(1 − σ(f)) = −E[softplus(f)], the generator's side
      of the original two-player game; its gradient vanishes when the discriminator
      confidently rejects the fakes (f ≪ 0), hence "saturating".
    * ``"non-saturating"``: −E log σ(f) = E[softplus(−f)] (Goodfellow et al. 2014).
    * ``"hinge"``: −E[f] (as in SN-GAN / SAGAN).
    * ``"least-squares"``: ½ E[(f − 1)²] (LSGAN, c = 1, Mao et al. 2017).

    Args:
        fake_logits: discriminator outputs (logits) on generated samples, any shape.
        kind: one of "minimax", "non-saturating", "hinge", "least-squares".

    Returns:
        A 0-d tensor of the input's dtype and device (float32 for half-precision logits).
    """

    kind = check_choice(kind, "kind", GENERATOR_KINDS)
    f = as_scores(fake_logits, "fake_logits")
    if kind == "minimax":
        return -_mean(_softplus(f))
    if kind == "non-saturating":
        return _mean(_softplus(-f))
    if kind == "hinge":
        return -_mean(f)
    return 0.5 * _mean((f - 1.0).square())
