"""Shared helpers of the benchmark scripts: sizes and flags, timing, memory, threads, tables.

Each bench script is runnable alone (``python benchmarks/bench_x.py``) and prints one
markdown section; ``benchmarks/run.py`` runs them all and writes docs/benchmarks.md. Every
script declares its sizes once, as ``{name: (full, quick)}``, and reads them through
:func:`options`, which gives every script the same flags: ``--quick`` (tiny sizes: a smoke
test of the script, not a measurement) and ``--size NAME=VALUE`` (one size by hand).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

QUICK_BANNER = ("**`--quick` smoke run: tiny sizes, not a measurement; never paste this "
                "into docs/benchmarks.md.**\n")

# every thread pool a process can start (numba, OpenMP: torch and BLAS, MKL, OpenBLAS)
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "OPENBLAS_NUM_THREADS")
ONE_THREAD_ENV = dict.fromkeys(THREAD_VARS, "1")


def options(doc: str, sizes: Mapping[str, tuple[int, int]],
            extra: Callable[[argparse.ArgumentParser], None] | None = None
            ) -> argparse.Namespace:
    """Parse the script's command line; each size becomes an attribute of the result.

    ``sizes`` maps a name to (full, quick): ``--quick`` takes the quick ones, ``--size
    NAME=VALUE`` (repeatable) sets one by hand. ``extra`` may add the script's own flags.
    With ``--quick`` a banner is printed first, so the output cannot pass for a measurement.
    """
    listed = ", ".join(f"{k}={full} (quick {quick})" for k, (full, quick) in sizes.items())
    parser = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: a smoke test of the script, not a measurement")
    parser.add_argument("--size", action="append", default=[], metavar="NAME=VALUE",
                        help=f"set one size ({listed or 'none'})")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    for name, (full, quick) in sizes.items():
        setattr(args, name, quick if args.quick else full)
    for item in args.size:
        name, _, value = item.partition("=")
        if name not in sizes or not value.isdigit():
            parser.error(f"--size {item}: expected NAME=N (an integer >= 0), NAME one of "
                         f"{', '.join(sizes) or '(none)'}")
        setattr(args, name, int(value))
    # once, from the script's own process (spawned workers re-run the module's top level)
    if args.quick and multiprocessing.current_process().name == "MainProcess":
        print(QUICK_BANNER, flush=True)
    return args


def pin_threads(n: int) -> None:
    """Every thread pool of this process at ``n`` threads (peers and otdiv alike).

    The environment variables act on pools not started yet (call this before numpy is
    imported to pin BLAS); torch and numba, when already imported, are set directly.
    """
    os.environ.update(dict.fromkeys(THREAD_VARS, str(n)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numba" in sys.modules:
        sys.modules["numba"].set_num_threads(n)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds of one call of fn, its result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def paired(ours: Callable[[], object], peer: Callable[[], object], pairs: int, *,
           warmup: int = 0) -> tuple[float, float, float]:
    """Median time of ours, of peer, and the median of the per-pair ratios ours / peer.

    The two are timed in alternating pairs (ours then peer, then peer then ours, ...), so
    that load from other processes on a shared machine hits both alike; `warmup` untimed
    calls of each come first.
    """
    for _ in range(warmup):
        ours()
        peer()
    t_ours, t_peer = [], []
    for k in range(pairs):
        if k % 2 == 0:
            t_ours.append(timed(ours)[0])
            t_peer.append(timed(peer)[0])
        else:
            t_peer.append(timed(peer)[0])
            t_ours.append(timed(ours)[0])
    ratios = [a / b for a, b in zip(t_ours, t_peer, strict=True)]
    return statistics.median(t_ours), statistics.median(t_peer), statistics.median(ratios)


# libraries' notices on stdout, not results: pykeops (imported by POT and GeomLoss when
# installed) prints "[KeOps] Warning : CUDA libraries not found ..." on import
NOTICE_PREFIXES = ("[KeOps]",)


def drop_notices(text: str) -> str:
    """``text`` without the lines that start with a library notice (NOTICE_PREFIXES): what a
    child process printed, before it is parsed or written to benchmarks/results/."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.lstrip().startswith(NOTICE_PREFIXES))


def run_isolated(code: str) -> tuple[float, list[str]]:
    """Run `code` in a fresh Python process: (its peak memory in MiB, the lines it printed,
    library notices dropped).

    The peak is VmHWM, the high-water mark of the child's own address space: getrusage's
    ru_maxrss would also count the parent's resident memory, which the child inherits at
    fork, before its exec.
    """
    code += ("\nwith open('/proc/self/status') as fh:\n"
             "    print(next(int(s.split()[1]) for s in fh if s.startswith('VmHWM')) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"isolated run failed:\n{out.stderr[-3000:]}")
    printed = drop_notices(out.stdout).strip().splitlines()
    return float(printed[-1]), printed[:-1]


class LoadLog:
    """The 1-minute load average sampled at moments of a run (the machine may be shared)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.sample()

    def sample(self) -> float:
        self.samples.append(os.getloadavg()[0])
        return self.samples[-1]

    def __str__(self) -> str:
        s = self.samples
        shown = (", ".join(f"{v:.2f}" for v in s) if len(s) <= 4
                 else f"{min(s):.2f}–{max(s):.2f} over {len(s)} samples")
        return f"{shown} on {os.cpu_count()} cores"


def machine() -> str:
    """Cores, CPU model, GPU, Python and kernel of this machine, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:
        gpu = "no GPU"
    return (f"{os.cpu_count()} cores ({cpu}), {gpu}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table; floats are printed with 4 significant digits."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
