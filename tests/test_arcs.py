"""The exact solver's arc set: additions keep the arcs sorted and the tree's arc indices
pointing at the same arcs (checked against a set of pairs and a sort)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from otdiv.ot.arcs import ArcSet


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.booleans(), st.integers(0, 2**32 - 1),
       st.lists(st.integers(0, 40), max_size=5))
def test_additions_keep_order_content_and_tree_indices(n, m, keep_sorted, seed, batches):
    rng = np.random.default_rng(seed)
    pairs = rng.permutation(n * m)
    first = pairs[:rng.integers(1, n * m + 1)]
    src, dst = first // m, first % m + n
    flow, cost = rng.random(first.shape[0]), rng.random(first.shape[0])
    pred = np.where(rng.random(n + m) < 0.7, rng.integers(0, first.shape[0], n + m), -1)
    held = {(int(s), int(d)): (f, c) for s, d, f, c in zip(src, dst, flow, cost, strict=True)}
    tree = {v: (int(src[k]), int(dst[k])) for v, k in enumerate(pred) if k >= 0}
    arcs = ArcSet(src, dst, flow, cost, pred, n, m, keep_sorted)
    rest = pairs[first.shape[0]:]
    for size in batches:
        new, rest = rest[:size], rest[size:]
        r, c = new // m, new % m
        new_cost = rng.random(new.shape[0])
        arcs.add(r, c, new_cost, pred)
        held.update({(int(i), int(j) + n): (0.0, w) for i, j, w in zip(r, c, new_cost,
                                                                       strict=True)})
        s, d, f, w = arcs.used()
        assert {(int(a), int(b)): (u, v) for a, b, u, v in zip(s, d, f, w, strict=True)} == held
        assert arcs.max_cost == max(v for _, v in held.values())
        if keep_sorted:
            key = s * (n + m) + d
            assert (np.diff(key) > 0).all()
        for v, arc in tree.items():  # every tree arc index still names its arc
            assert (int(s[pred[v]]), int(d[pred[v]])) == arc
        assert (pred[[v for v in range(n + m) if v not in tree]] == -1).all()
