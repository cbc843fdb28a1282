"""A JSON file of benchmark rows that several runs share and a run resumes from.

Each row is a dict; a row of this run carries ``settings`` (what decides its numbers).
:func:`read_rows` reads the file (a one-line error naming the option if it holds no rows);
:func:`write_rows` merges this run's rows into it after every row: under a lock on the
folder it reads the file again, drops the rows whose ``settings`` one of this run's rows
has (this run's own earlier writes, or the rows it read back) and writes the rest, then
this run's, to a temporary file that replaces the old one. So two runs that write the same
file keep each other's rows, and a crash mid-write leaves the previous file whole.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from otdiv._files import FileError, replaced


def read_rows(path: str, name: str = "--json") -> list[dict]:
    """The rows in ``path`` ([] when it does not exist); FileError naming ``name`` when it
    cannot be read or is not a JSON list of objects."""
    if not os.path.exists(path):
        return []
    try:
        with open(path) as fh:
            rows = json.load(fh)
    except (OSError, ValueError) as exc:
        raise FileError(f"{name}: cannot read the rows already in {path}: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise FileError(f"{name}: {path} is not a JSON list of rows")
    return rows


@contextmanager
def _folder_lock(folder: str):
    """An exclusive lock on ``folder`` (flock on its descriptor, POSIX; none elsewhere):
    no lock file is left beside the rows."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_rows(path: str, mine: list[dict], name: str = "--json") -> None:
    """Merge this run's rows ``mine`` into ``path`` (module docstring): the file's rows
    whose ``settings`` none of ``mine`` has, in their order, then ``mine``."""
    folder = os.path.dirname(os.path.realpath(path))  # where replaced() writes
    with _folder_lock(folder):
        taken = [r["settings"] for r in mine]
        others = [r for r in read_rows(path, name)
                  if r.get("settings") is None or r["settings"] not in taken]
        with replaced(path) as fh:
            json.dump(others + mine, fh, indent=1)
