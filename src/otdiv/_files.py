"""Files: reading what a user hands otdiv on disk (sample files, .npy and .csv; output
places, checked before any work) and writing results whole or not at all (:func:`replaced`).

Shared by the command line (``otdiv distance``, ``otdiv audit``) and
:func:`otdiv.audit.run.run_audit`; every failure is a FileError (a ValueError) of one line naming
the argument. Imports nothing heavy until a file is read.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def one_line(text: object) -> str:
    """``text`` with its whitespace (newlines included) collapsed, for a one-line message."""
    return " ".join(str(text).split())


class FileError(ValueError):
    """A file that cannot be used as given, in one line naming the argument."""


def load_array(path: str, name: str):
    """Load .npy (never pickles) or .csv into a numpy array; every failure is a
    :class:`FileError` (a ValueError).

    A directory, an empty file, a file numpy warns about and one too large for memory are
    refused with a message that names ``name``; numpy's warnings never reach the terminal.
    """
    import numpy as np

    p = Path(path)
    if p.is_dir():
        raise FileError(f"{name}: {path} is a directory, not a .npy or .csv file")
    if not p.is_file():
        raise FileError(f"{name}: no such file: {path}")
    if p.suffix not in (".npy", ".csv"):
        raise FileError(f"{name}: unsupported file type {p.suffix!r}; use .npy or .csv")
    try:
        if p.stat().st_size == 0:
            raise FileError(f"{name}: {path} is empty")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if p.suffix == ".npy":
                arr = np.load(p, allow_pickle=False)
            else:
                arr = np.loadtxt(p, delimiter=",", ndmin=2)
        if arr.size == 0 and p.suffix == ".csv":  # loadtxt warns "input contained no data"
            raise FileError(f"{name}: {path} holds no numbers")
        if caught:
            raise FileError(f"{name}: cannot read {path}: {one_line(caught[0].message)}")
        if p.suffix == ".csv" and arr.shape[1] == 1:
            arr = arr[:, 0]
    except FileError:
        raise
    except MemoryError:
        raise FileError(f"{name}: {path} does not fit in memory") from None
    except Exception as exc:
        raise FileError(f"{name}: cannot read {path}: {one_line(exc)}") from None
    return arr


def out_dir(path: str | Path, name: str = "out") -> Path:
    """The directory ``path``, created with its parents; ValueError naming ``name`` when it
    is a file or cannot be created."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise FileError(f"{name}: {path} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileError(f"{name}: cannot create {path}: {exc.strerror}") from None
    return out


def writable_file(path: str | Path, name: str) -> Path:
    """``path`` as a file this process can write, checked before any work is done: a
    directory, a missing parent folder or a place without write permission — for the file
    and for the temporary file beside it that :func:`replaced` writes first — is a
    ValueError naming ``name``. Nothing is left behind."""
    p = Path(path)
    if p.is_dir():
        raise FileError(f"{name}: {path} is a directory; give a file name")
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
        if not existed:
            p.unlink()
        probe = _temporary(os.path.realpath(p))
        with open(probe, "xb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise FileError(f"{name}: cannot write {path}: {exc.strerror or exc}") from None
    return p


def _temporary(path: str) -> str:
    """A file name beside ``path`` that no other process or call uses."""
    return f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


@contextmanager
def replaced(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """A new file beside ``path``, open for writing (``mode`` "w" or "wb"), that replaces
    ``path`` when the block ends without an error (flushed to disk, then ``os.replace``: the
    file is whole or the previous one); on an error or an interrupt it is removed and
    ``path`` left as it was. A symbolic link is followed (its target is replaced), an
    existing file keeps its permissions, and a new one gets those of any file this process
    creates (its umask). A directory at ``path`` is a FileError (a ValueError)."""
    path = os.path.realpath(path)  # absolute too: a chdir in the block changes nothing
    if os.path.isdir(path):
        raise FileError(f"{path} is a directory; give a file name")
    tmp = _temporary(path)
    try:
        with open(tmp, mode.replace("w", "x")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        _replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# On Windows a file another process holds open (an editor, a virus scanner, a reader of
# the report) cannot be replaced for a moment; POSIX replaces it regardless, so there a
# PermissionError is a real one and is raised at once.
_RETRY_REPLACE = os.name == "nt"
_REPLACE_WAITS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # seconds, about 2 in all


def _replace(tmp: str, path: str) -> None:
    """``os.replace(tmp, path)``, tried again for about 2 s where the platform refuses to
    replace a file that is open (Windows)."""
    import time

    for wait in _REPLACE_WAITS if _RETRY_REPLACE else ():
        try:
            os.replace(tmp, path)
            return
        except PermissionError:
            time.sleep(wait)
    os.replace(tmp, path)
