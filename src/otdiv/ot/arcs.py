r"""The exact solver's arc set: a few arcs per point, grown by pricing between simplex runs.

The network simplex (``otdiv.ot.network_simplex``) pivots on arcs (i, n + j) of the
transportation graph — sources 0..n−1, sinks n..n+m−1 — held as four parallel arrays
(source, sink, flow, cost) with spare capacity; the simplex kernels read the first
``count``. Where both clouds are in k-d order (the multiscale start) the arcs are kept
sorted by (source, sink): the block search then reads the potentials nearly in order, and
the order matters — new arcs left in an unsorted tail instead cost 8.6 % more pivots and
28 % more time on a 5·10^4-point W1. Most of the ~180 pricing rounds at the finest level of
a 10^5-point W1 add 1 to 100 arcs to millions, so an addition is merged in place, from the
back, into capacity grown geometrically (``simplex_numba.merge_arcs``): one pass over the
arcs after the first insertion and no new arrays, where ``np.insert`` of the four arrays
allocated and copied them all (3.9 s of that solve).
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels.simplex_numba import merge_arcs

_SPARE = 1.5  # capacity after a growth, relative to the arcs held


class ArcSet:
    """Arcs (src, dst = n + j, flow, cost) of the simplex, the first ``count`` in use, in
    (src, dst) order when ``keep_sorted``; ``max_cost`` bounds their costs."""

    def __init__(self, src, dst, flow, cost, pred, n: int, m: int, keep_sorted: bool):
        self.nodes, self.n, self.keep_sorted = n + m, n, keep_sorted
        self.count = src.shape[0]
        self.max_cost = float(cost.max()) if cost.size else 0.0
        if keep_sorted:  # the tree's arcs renumbered to follow them
            order = np.argsort(src * self.nodes + dst, kind="stable")
            where = np.empty_like(order)
            where[order] = np.arange(order.shape[0])
            tree = pred >= 0
            pred[tree] = where[pred[tree]]
            src, dst, flow, cost = src[order], dst[order], flow[order], cost[order]
        self.src, self.dst, self.flow, self.cost = src, dst, flow, cost

    def add(self, r: np.ndarray, c: np.ndarray, cost: np.ndarray, pred: np.ndarray) -> None:
        """Arcs (r, n + c) at zero flow with costs ``cost`` (pairs not yet in the set);
        ``pred`` (indices of the tree arcs, −1 at the root) is renumbered in place when arcs
        move."""
        if r.shape[0] == 0:
            return
        self.max_cost = max(self.max_cost, float(cost.max()))
        need = self.count + r.shape[0]
        if need > self.src.shape[0]:
            self._grow(int(_SPARE * need) + 1024)
        d = c + self.n
        if not self.keep_sorted:
            at = slice(self.count, need)
            self.src[at], self.dst[at], self.flow[at], self.cost[at] = r, d, 0.0, cost
        else:
            order = np.argsort(r * self.nodes + d, kind="stable")
            at = np.empty(r.shape[0], np.int64)
            merge_arcs(self.src, self.dst, self.flow, self.cost, self.count, r[order],
                       d[order], cost[order], self.nodes, at)
            tree = pred >= 0
            pred[tree] += np.searchsorted(at, pred[tree], side="right")
        self.count = need

    def _grow(self, capacity: int) -> None:
        def grown(a):
            out = np.empty(capacity, a.dtype)
            out[:self.count] = a[:self.count]
            return out

        self.src, self.dst, self.flow, self.cost = map(grown, (self.src, self.dst, self.flow,
                                                               self.cost))

    def used(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(src, dst, flow, cost) of the arcs in use (views)."""
        k = self.count
        return self.src[:k], self.dst[:k], self.flow[:k], self.cost[:k]
