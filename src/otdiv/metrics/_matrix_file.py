"""The checkpoint file of :func:`otdiv.pairwise`: the entries of a matrix solved so far.

An .npz of three arrays: ``values`` (the matrix as far as it is solved, mirrored like the
returned matrix; 0 elsewhere), ``solved`` (a boolean mask of those entries) and ``key``,
the SHA-256 of what decides the matrix — the metric, its options bound to its signature
with the defaults filled in (numbers as Python ints and floats, so ``eps=np.float64(0.5)``,
``eps=0.5`` and an omitted default all match), whether it is square, and every cloud's
shape and float64 bytes — so that a file is never resumed into another matrix. Written
whole or not at all (:func:`otdiv._files.replaced`).
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
import os
import time
import warnings
from collections.abc import Callable

import numpy as np

from otdiv._files import FileError, replaced, writable_file

NAME = "checkpoint"
SECONDS = 30.0  # the solved entries are written at least this often


def _plain(name: str, value: object) -> object:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{NAME}: the option {name}={value!r} is not a number or a string, so "
                    "the file cannot record it; give a number")


def key_of(metric: str, fn: Callable, options: dict, square: bool,
           clouds: list[np.ndarray]) -> str:
    """SHA-256 of the metric, its options (bound to ``fn``'s signature, defaults filled
    in, plain numbers), the square flag and the clouds (shape and float64 bytes, in
    order)."""
    bound = inspect.signature(fn).bind(None, None, **options)
    bound.apply_defaults()
    named = sorted((k, _plain(k, v)) for k, v in list(bound.arguments.items())[2:]
                   if k not in ("a", "b", "return_result"))
    h = hashlib.sha256(repr((metric, named, square, len(clouds))).encode())
    for cloud in clouds:
        h.update(repr(cloud.shape).encode())
        h.update(np.ascontiguousarray(cloud, dtype=np.float64).tobytes())
    return h.hexdigest()


class Checkpoint:
    """The file at ``path`` for the matrix ``key``; ``mirror``: a square symmetric matrix,
    whose entries below the diagonal are copies of those above."""

    def __init__(self, path: str | os.PathLike, key: str, mirror: bool):
        self.path, self.key, self.mirror = path, key, mirror
        self.existed = os.path.isfile(path)
        self.saved = time.monotonic()

    def read(self, values: np.ndarray, solved: np.ndarray) -> None:
        """Fill ``values`` and ``solved`` from the file when it exists and holds this matrix;
        check that the place can be written. A FileError (ValueError) naming
        ``checkpoint`` otherwise."""
        if self.existed:
            try:
                with np.load(self.path, allow_pickle=False) as f:
                    stored = {name: f[name] for name in ("key", "values", "solved")}
            except Exception as exc:  # not an npz, a missing array, a truncated file ...
                raise FileError(f"{NAME}: cannot read {os.fspath(self.path)} as a pairwise "
                                f"checkpoint: {exc}") from None
            if str(stored["key"]) != self.key or stored["values"].shape != values.shape \
                    or stored["solved"].shape != solved.shape:
                raise FileError(f"{NAME}: {os.fspath(self.path)} holds another matrix (other "
                                "clouds, metric or options); delete it or name another file")
            solved[...] = stored["solved"].astype(bool)
            values[solved] = stored["values"][solved]
        writable_file(self.path, NAME)

    def write(self, values: np.ndarray, solved: np.ndarray, *, final: bool = False) -> None:
        """Write the file every ``SECONDS`` (and always with ``final``), unless nothing is
        solved and there was no file (a call refused by its metric leaves none to block
        the corrected call). A write that fails (a full disk) warns and the solving goes
        on: the matrix is still returned, and the error of a failing call still raised."""
        if not final and time.monotonic() - self.saved < SECONDS:
            return
        if not (self.existed or solved.any()):
            return
        values, solved = values.copy(), solved.copy()
        if self.mirror:
            lower = np.tril_indices(len(values), -1)
            values[lower], solved[lower] = values.T[lower], solved.T[lower]
        try:
            with replaced(self.path, "wb") as fh:
                np.savez(fh, key=np.array(self.key), values=values, solved=solved)
        except OSError as exc:  # a full disk: warn, keep solving, try again later
            warnings.warn(f"{NAME}: could not write {os.fspath(self.path)}: {exc}",
                          RuntimeWarning, stacklevel=3)
            self.saved = time.monotonic()
            return
        self.existed, self.saved = True, time.monotonic()
