"""Shared timing and reporting helpers for the benchmark scripts (bench_*.py).

Each bench script is runnable alone (``python benchmarks/bench_x.py``) and prints one
markdown section; ``benchmarks/run.py`` runs them all and writes docs/benchmarks.md.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated_peak_mib(code: str) -> float:
    """Peak memory (MiB) of running `code` in a fresh Python process (for memory targets).

    Reads VmHWM, the peak of the process's own address space: ru_maxrss would also count
    the parent's resident memory, which the child inherits at fork, before its exec.
    """
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code + "\nwith open('/proc/self/status') as fh:\n"
         "    print(next(int(s.split()[1]) for s in fh if s.startswith('VmHWM')) / 1024)"],
        capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def machine() -> str:
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
