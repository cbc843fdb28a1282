"""The leaves of a k-d tree: the one spatial partition the exact and entropic solvers share.

A set of points is halved at the median of its widest coordinate, recursively, until each
part holds at most ``leaf`` points. Read in order, the leaves put near points next to each
other: the exact solver's multiscale start merges consecutive points
(``otdiv.ot.multiscale``), Sinkhorn's coarse level takes each leaf's centroid
(``otdiv.ot.sinkhorn_multiscale``), and kernel truncation bounds each leaf by its box
(``otdiv.ot.truncation``).
"""

from __future__ import annotations

import numpy as np


def kd_leaves(pts: np.ndarray, leaf: int, idx: np.ndarray | None = None) -> list[np.ndarray]:
    """The leaves (arrays of indices into ``pts``, lower half first) of the k-d tree over the
    points ``pts[idx]`` (all points when ``idx`` is None), each of at most ``leaf`` points."""
    leaves: list[np.ndarray] = []
    stack = [np.arange(pts.shape[0]) if idx is None else idx]
    while stack:
        part = stack.pop()
        if part.shape[0] <= leaf:
            leaves.append(part)
            continue
        sub = pts[part]
        dim = int(np.argmax(sub.max(0) - sub.min(0)))
        half = part.shape[0] // 2
        split = np.argpartition(sub[:, dim], half)
        stack += [part[split[half:]], part[split[:half]]]
    return leaves
