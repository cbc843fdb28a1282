"""Processes and threads after a Numba kernel has run: fork, spawn, threads, DataLoader.

Each scenario runs in a fresh interpreter with a timeout, so a deadlock or an abort in a
child fails the test instead of hanging or killing the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# the parent runs parallel kernels (KL over many rows, W1 over 1-D slices, a Sinkhorn
# solve) and remembers their values; every scenario recomputes them elsewhere
_SETUP = textwrap.dedent("""
    import sys
    import numpy as np
    import otdiv

    rng = np.random.default_rng(0)
    P, Q = rng.random((4000, 64)), rng.random((4000, 64))
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(200, 2)) + 1.0

    def work(i):
        return (float(otdiv.kl(P[i::7], Q[i::7]).sum()), otdiv.wasserstein(x, y, p=1),
                otdiv.sinkhorn(x, y, eps=0.5))

    expected = [work(i) for i in range(4)]  # launches numba's thread pool in the parent
""")

_SCENARIOS = {
    "fork_pool": """
        import multiprocessing as mp
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map(work, range(4))
    """,
    "spawn_pool": """
        import multiprocessing as mp
        if __name__ == "__main__":
            with mp.get_context("spawn").Pool(2) as pool:
                got = pool.map(_child.work, range(4))
    """,
    "threads": """
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(4) as ex:
            got = list(ex.map(work, [0, 1, 2, 3] * 3))[:4]
    """,
    "dataloader_fork": """
        import torch
        from torch.utils.data import DataLoader, Dataset

        class D(Dataset):
            def __len__(self):
                return 4
            def __getitem__(self, i):
                return torch.tensor(work(i), dtype=torch.float64)

        loader = DataLoader(D(), batch_size=None, num_workers=2,
                            multiprocessing_context="fork")
        got = [tuple(t.tolist()) for t in loader]
    """,
}


@pytest.mark.parametrize("scenario", sorted(_SCENARIOS))
def test_children_and_threads_after_a_kernel(scenario, tmp_path):
    body = textwrap.dedent(_SCENARIOS[scenario])
    if scenario == "spawn_pool":
        # spawned children import the work function from a module, not from __main__
        (tmp_path / "_child.py").write_text(_SETUP)
        script = f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport _child\n"
        script += "expected = _child.expected\n" + body
        script += "\nif __name__ == '__main__':\n    assert got == expected, (got, expected)\n"
    else:
        script = _SETUP + body + "\nassert got == expected, (got, expected)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unsafe" not in proc.stderr and "Terminating" not in proc.stderr, proc.stderr


def test_threading_layer_is_fork_and_thread_safe():
    """Where the tbb wheel is installed, otdiv selects it; elsewhere the fork-safe fallback."""
    code = textwrap.dedent("""
        import numpy as np, numba, otdiv
        otdiv.kl(np.ones((3000, 80)), np.ones((3000, 80)))
        print(numba.threading_layer())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    try:
        import importlib.metadata as md

        md.version("tbb")
        expected = {"tbb"}
    except md.PackageNotFoundError:
        expected = {"workqueue"}
    assert proc.stdout.strip() in expected
