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
The serial/parallel twins of small kernels (``twins``) live here too, with their one work
threshold.
"""

from __future__ import annotations

import ctypes
import glob
import os
import site
import sys
import types

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


# Waking numba's thread pool and waiting at the parallel region's barrier costs 0.1-10 ms
# (a scheduler slice on a loaded machine), which is more than a small loop: property-based
# suites call the kernels thousands of times on a few points. Work is counted in inner-loop
# steps (a pair times its coordinates, or a matrix entry); below this many steps the serial
# compilation of the same loop runs. Measured on 2 shared cores (load 3), best of 20: at
# 0.2-2 M steps the twins take the same time (cost matrix, soft-min, matvec), at 8 M the
# parallel one is 10 % faster; 2^19 keeps a few hundred points serial and problems of
# n = m = 1000 (the benchmarks' warm-up size) on the parallel twins.
PARALLEL_MIN_WORK = 1 << 19


class Twins:
    """One loop compiled twice, serially and with ``parallel=True``; calling it with the
    call's work (inner-loop steps) runs the serial twin below ``PARALLEL_MIN_WORK``.

    The loop is written once with ``nb.prange`` (a plain range in the serial twin), so both
    twins compute the same numbers. Both compile lazily, on their first call, and are cached
    on disk; the serial twin gets its own name because numba's cache is keyed by the
    function's qualified name.
    """

    def __init__(self, fn, **options):
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial")
        twin.__qualname__ = fn.__qualname__ + "_serial"
        self.serial = nb.njit(cache=True, **options)(twin)
        self.parallel = nb.njit(parallel=True, cache=True, **options)(fn)

    def __call__(self, work: int, *args):
        return (self.parallel if work >= PARALLEL_MIN_WORK else self.serial)(*args)


def twins(**options):
    """Decorator form of :class:`Twins`: ``@twins(fastmath=True)`` over a loop."""
    return lambda fn: Twins(fn, **options)
