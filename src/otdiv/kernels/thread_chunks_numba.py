"""The potentials of the basis tree while pivoting: per node a base, per chunk of the thread
an offset.

A pivot shifts the potentials of one side of the cut tree by a constant — the moved subtree
S by ±r or the rest by ∓r, whichever is smaller — and both sides are runs of the thread
(``spanning_tree_numba``). On the exact solver's W1 problems both sides are often large: at
n = m = 10^5 (d = 2) about 3 % of the pivots cut the tree into two sides of ≥ 8192 nodes,
and walking the smaller one node by node was about half of the pivots' time. So

    π_w = base_w + offset[chunk_w],

with chunks = runs of at most ``width`` consecutive nodes of the thread. A run of at least
``large`` nodes is shifted chunk by chunk (O(|run| / width)) where its chunks are *clean*,
i.e. still exactly a run of the thread from their first to their last node. Pivots keep that
cheap to know: every node whose successor in the thread a pivot changes is *touched*
(:func:`touch`), which marks its chunk dirty unless it was the chunk's last node — O(1), no
walk. When a large run meets the nodes of a dirty chunk, or of a clean chunk of fewer than
width / 2 nodes (which would otherwise splinter), it shifts them one by one and gathers them
into new clean chunks of up to ``width`` nodes (their old chunk's offset folded into their
base): the regions that large runs cross stay in few, clean chunks. Shorter runs shift their
bases node by node. The node array holds (base, chunk id) side by side: reading a potential
costs one cache line and an entry of the small offset array.

``table`` is an int64 array (5, nodes + 1) — first node, last node, node count and
cleanness of each chunk id, and a stack of free ids — and ``off`` (nodes + 1,) the offsets;
``state[0]`` is the stack's height.
"""

from __future__ import annotations

import numpy as np

from otdiv.kernels._numba import nb

FIRST, LAST, SIZE, CLEAN, FREE = 0, 1, 2, 3, 4


@nb.njit(cache=True, inline="always")
def potential(w, node, off):
    """π_w = base_w + offset of w's chunk (``node[w]`` = (base_w, chunk of w))."""
    return node[w, 0] + off[np.int64(node[w, 1])]


@nb.njit(cache=True)
def init_chunks(root, thread, pi, node, off, table, state, width):
    """Clean chunks of ``width`` consecutive nodes along the thread from the root, with zero
    offsets and the potentials ``pi`` as bases."""
    nodes = thread.shape[0]
    w, count, c = root, 0, -1
    while count < nodes:
        if count % width == 0:
            c += 1
            table[FIRST, c] = w
            table[SIZE, c] = 0
            table[CLEAN, c] = 1
            off[c] = 0.0
        node[w, 0] = pi[w]
        node[w, 1] = c
        table[SIZE, c] += 1
        table[LAST, c] = w
        count += 1
        w = thread[w]
    height = 0  # ids up to ``nodes``: a chunk is taken before the last node of another leaves
    for d in range(table.shape[1] - 1, c, -1):
        table[FREE, height] = d
        height += 1
    state[0] = height


@nb.njit(cache=True)
def materialize(pi, node, off):
    """The potentials π_w = base_w + offset of w's chunk, written into ``pi``."""
    for w in range(pi.shape[0]):
        pi[w] = potential(w, node, off)


@nb.njit(cache=True)
def reanchor(offset, node, off):
    """Subtract ``offset`` from every potential, folding the offsets into the bases (so
    that no base or offset drifts far from the potential it makes up: their rounding stays
    at the potentials' scale)."""
    for w in range(node.shape[0]):
        node[w, 0] += off[np.int64(node[w, 1])] - offset
    off[:] = 0.0


@nb.njit(cache=True, inline="always")
def touch(x, node, table):
    """x's successor in the thread is about to change: its chunk stays a run of the thread
    only if x is its last node."""
    c = np.int64(node[x, 1])
    if table[LAST, c] != x:
        table[CLEAN, c] = 0


@nb.njit(cache=True)
def shift_run(start, tail, count, delta, thread, rev, node, off, table, state, width, large):
    """Add delta to the potentials of the ``count`` nodes of the thread from ``start`` to
    ``tail``: node by node (walked from both ends) below ``large`` nodes, else clean chunks
    whole and the nodes of dirty chunks re-chunked on the way."""
    if count < large:
        a, b = start, tail
        for _ in range(count // 2):
            node[a, 0] += delta
            node[b, 0] += delta
            a = thread[a]
            b = rev[b]
        if count % 2 == 1:
            node[a, 0] += delta
        return
    w, rem, d = start, count, -1  # d: the clean chunk being gathered, if any
    while rem > 0:
        c = np.int64(node[w, 1])
        if table[CLEAN, c] == 1 and table[FIRST, c] == w and rem >= table[SIZE, c] >= \
                width // 2:
            d = -1
            off[c] += delta
            rem -= table[SIZE, c]
            w = thread[table[LAST, c]]
            continue
        # w joins the chunk being gathered: its chunk is dirty, or too small to skip whole
        table[CLEAN, c] = 0
        if d < 0 or table[SIZE, d] == width:
            state[0] -= 1
            d = table[FREE, state[0]]
            off[d] = 0.0
            table[FIRST, d] = w
            table[SIZE, d] = 0
            table[CLEAN, d] = 1
        node[w, 0] += off[c] + delta
        node[w, 1] = d
        table[SIZE, d] += 1
        table[LAST, d] = w
        table[SIZE, c] -= 1
        if table[SIZE, c] == 0:
            table[FREE, state[0]] = c
            state[0] += 1
        w = thread[w]
        rem -= 1
