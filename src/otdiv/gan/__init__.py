"""Layer 2 (torch only): GAN losses and critic constraints.

``import otdiv.gan`` imports torch lazily: the names below load their module on first use.
"""

from __future__ import annotations

from otdiv import _PUBLIC
from otdiv._lazy import lazy_names

# the layer-2 entries of the flat public API, so the two lists cannot drift apart
_NAMES = {name: module for name, module in _PUBLIC.items() if module.startswith("otdiv.gan.")}

__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("otdiv.gan", _NAMES, globals())
