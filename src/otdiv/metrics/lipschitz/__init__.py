r"""Lipschitz constants of critics: exact slopes on a sample, attained lower bounds, certified
upper bounds.

For f: R^d → R with the Euclidean norm, Lip(f) = sup_{x≠y} |f(x) − f(y)| / ‖x − y‖.

* :func:`lipschitz_empirical` — the exact maximum of the slope over the pairs of a sample
  (a lower bound on Lip(f)); ``empirical.py``.
* :func:`lipschitz_bounds` — for a torch critic, ``lower ≤ Lip(f) ≤ upper``: ``lower`` is a
  gradient norm ‖∇f(w)‖ attained at a returned point w (``ascent.py``); ``upper`` is a
  guaranteed bound (``bounds.py``) from certified operator norms of the layers
  (``norms.py``), combined along the critic's chain of layers (``chain.py``), which is read
  from its modules (``structure.py``) and torch.fx graphs (``graph.py``).

numpy users never import torch: the torch parts load inside the functions that need them.
"""

from otdiv.metrics.lipschitz.bounds import LipschitzBounds, lipschitz_bounds
from otdiv.metrics.lipschitz.empirical import EmpiricalLipschitz, lipschitz_empirical
from otdiv.metrics.lipschitz.norms import spectral_upper

__all__ = [
    "EmpiricalLipschitz",
    "LipschitzBounds",
    "lipschitz_bounds",
    "lipschitz_empirical",
    "spectral_upper",
]
