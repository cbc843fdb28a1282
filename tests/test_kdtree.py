"""The k-d tree order shared by the exact and entropic solvers, against a recursive
reference written from its definition."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from otdiv.ot.kdtree import kd_permutation
from otdiv.ot.network_simplex import kd_order


def _reference(pts, part, leaf):
    """The definition, one part at a time: halve at the median of the widest coordinate
    (the ⌊s/2⌋ smallest first), until a part holds at most ``leaf`` points."""
    if part.shape[0] <= leaf:
        return [set(part.tolist())]
    sub = pts[part]
    dim = int(np.argmax(sub.max(0) - sub.min(0)))
    order = part[np.argsort(sub[:, dim])]
    half = part.shape[0] // 2
    return _reference(pts, order[:half], leaf) + _reference(pts, order[half:], leaf)


@given(st.integers(0, 300), st.integers(1, 4), st.integers(1, 20), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_leaves_are_the_recursive_halvings(n, d, leaf, subset, seed):
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d)  # distinct a.s.: no ties
    idx = np.flatnonzero(rng.random(n) < 0.6) if subset else None
    perm, bounds = kd_permutation(pts, leaf, idx)
    want = _reference(pts, np.arange(n) if idx is None else idx, leaf)
    got = [set(perm[lo:hi].tolist()) for lo, hi in pairwise(bounds)]
    assert got == want  # the same leaves, in the same order
    if idx is None:
        assert sorted(kd_order(pts)) == list(range(n))


def test_whole_parts_keep_their_order_and_ties_split_by_count():
    pts = np.zeros((7, 2))  # every coordinate tied: halves by count, order kept
    perm, bounds = kd_permutation(pts, 2)
    assert sorted(perm) == list(range(7)) and (np.diff(bounds) <= 2).all()
    assert np.diff(bounds).sum() == 7
