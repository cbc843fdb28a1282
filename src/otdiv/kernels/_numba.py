"""numba, imported once with a threading layer that survives ``fork`` and concurrent threads.

numba's default layer on Linux wheels is GNU OpenMP, which aborts every forked child
("fork() called from a process already using GNU OpenMP") once a parallel kernel has run:
a ``multiprocessing.Pool`` or a torch ``DataLoader`` with workers then dies or hangs. Its
``workqueue`` layer is fork-safe but aborts when two Python threads launch kernels at once.
Only TBB is safe under both, so otdiv depends on the ``tbb`` wheel where one exists and
selects it here, before any parallel kernel launches; elsewhere it falls back to
``workqueue`` (fork-safe; do not call otdiv kernels from several threads at once there).
A layer the user chose (``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``) is
kept.

Every numba kernel module imports ``nb`` from here, so the choice precedes the first launch.
"""

from __future__ import annotations

import ctypes
import glob
import os
import site
import sys

import numba as nb

# numba refuses TBB older than 2021 update 6 (its TBB_INTERFACE_VERSION 12060)
_TBB_MIN_INTERFACE = 12060


def _load_tbb() -> bool:
    """Load libtbb globally (pip puts it in <prefix>/lib, outside the loader's search path,
    where numba's own ``CDLL("libtbb.so.12")`` probe would miss it); True when it is usable."""
    names = {"linux": "libtbb.so.12", "win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}
    name = names.get(sys.platform)
    if name is None:
        return False
    user_base = getattr(site, "USER_BASE", None) or ""
    dirs = [os.path.join(sys.prefix, "lib"), os.path.join(sys.prefix, "Library", "bin"),
            os.path.join(sys.base_prefix, "lib"), os.path.join(user_base, "lib")]
    candidates = [p for d in dirs for p in glob.glob(os.path.join(d, name))] + [name]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            version = lib.TBB_runtime_interface_version
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_int
        if version() < _TBB_MIN_INTERFACE:
            return False
        try:
            import numba.np.ufunc.tbbpool  # noqa: F401  (numba's TBB layer, built against it)
        except ImportError:
            return False
        return True
    return False


def _choose_threading_layer() -> str:
    if nb.config.THREADING_LAYER != "default":  # the user's choice, from the env or config
        return nb.config.THREADING_LAYER
    nb.config.THREADING_LAYER = "tbb" if _load_tbb() else "workqueue"
    return nb.config.THREADING_LAYER


THREADING_LAYER = _choose_threading_layer()
