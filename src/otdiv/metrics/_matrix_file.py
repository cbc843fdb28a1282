"""The checkpoint file of :func:`otdiv.pairwise`: the entries of a matrix solved so far.

An .npz of three arrays: ``values`` (the matrix, 0 where not solved), ``solved`` (a boolean
mask of the entries solved) and ``key``, the SHA-256 of what decides the matrix — the
metric, its options, whether it is square, and every cloud's shape and float64 bytes — so
that a file is never resumed into another matrix. Written whole or not at all (a temporary
file in the same folder replaces it).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from otdiv._files import FileError, replaced, writable_file

NAME = "checkpoint"


def key_of(metric: str, options: dict, square: bool, clouds: list[np.ndarray]) -> str:
    """SHA-256 of the metric, its options (their repr, sorted by name), the square flag and
    the clouds (shape and bytes of each float64 array, in order)."""
    h = hashlib.sha256(repr((metric, sorted(options.items()), square, len(clouds))).encode())
    for cloud in clouds:
        h.update(repr(cloud.shape).encode())
        h.update(np.ascontiguousarray(cloud, dtype=np.float64).tobytes())
    return h.hexdigest()


def read_solved(path: str | os.PathLike, key: str, values: np.ndarray,
                solved: np.ndarray) -> None:
    """Fill ``values`` and ``solved`` from the file at ``path`` when it exists and holds
    this matrix (``key``); check that the place can be written. A FileError (ValueError)
    naming ``checkpoint`` otherwise."""
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as f:
                stored = {name: f[name] for name in ("key", "values", "solved")}
        except Exception as exc:  # not an npz, a missing array, a truncated file ...
            raise FileError(f"{NAME}: cannot read {os.fspath(path)} as a pairwise "
                            f"checkpoint: {exc}") from None
        if str(stored["key"]) != key or stored["values"].shape != values.shape or \
                stored["solved"].shape != solved.shape:
            raise FileError(f"{NAME}: {os.fspath(path)} holds another matrix (other clouds, "
                            "metric or options); delete it or name another file")
        solved[...] = stored["solved"].astype(bool)
        values[solved] = stored["values"][solved]
    writable_file(path, NAME)


def write_solved(path: str | os.PathLike, key: str, values: np.ndarray,
                 solved: np.ndarray) -> None:
    """Write the file (module docstring), whole or not at all (:func:`otdiv._files.replaced`)."""
    with replaced(path, "wb") as fh:
        np.savez(fh, key=np.array(key), values=values, solved=solved)
