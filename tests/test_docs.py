"""Every ```python block of README.md and docs/*.md runs as written.

Each file's blocks run in order in one fresh interpreter (one namespace), with a temporary
working directory, so a block can rely on the blocks above it in the same file and on
nothing else. A block preceded by ``<!-- test: slow -->`` runs only in the slow test
(with ``OTDIV_SLOW_DOCS=1``); ``<!-- test: skip REASON -->`` skips it. The blocks check their own
numbers (an ``assert`` against an independent truth), so running them is the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\S*)")  # an info string may follow: ```{image} path
_MARKER = re.compile(r"^<!--\s*test:\s*(slow|skip)\b\s*(.*?)\s*-->\s*$")


def python_blocks(path: Path) -> list[tuple[int, str, str]]:
    """The ```python blocks of ``path``: (first line number, marker, source)."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i, marker = 0, ""
    while i < len(lines):
        line = lines[i]
        m = _MARKER.match(line.strip())
        if m:
            marker = m.group(1)
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if fence.group(1) == "python":
                blocks.append((i + 1, marker, "\n".join(lines[i + 1:j]) + "\n"))
            i, marker = j + 1, ""
            continue
        if line.strip():
            marker = ""
        i += 1
    return blocks


def _run(path: Path, blocks, tmp_path: Path, timeout: float) -> None:
    rel = path.relative_to(ROOT)
    parts = []
    for line, _, source in blocks:
        parts.append(f"print('--- {rel}:{line}', flush=True)\n"
                     f"exec(compile({source!r}, '{rel}:{line}', 'exec'))\n")
    script = tmp_path / "blocks.py"
    script.write_text("".join(parts), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]), MPLBACKEND="Agg",
        OMP_NUM_THREADS="1")  # the suite runs one process per core: torch's threads would fight
    env.pop("CI", None)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{rel} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}",
                    pytrace=False)


FAST = [p for p in DOC_FILES if any(m == "" for _, m, _ in python_blocks(p))]
SLOW = [p for p in DOC_FILES if any(m == "slow" for _, m, _ in python_blocks(p))]


@pytest.mark.parametrize("path", FAST, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_blocks_run(path, tmp_path):
    blocks = [b for b in python_blocks(path) if b[1] == ""]
    _run(path, blocks, tmp_path, timeout=300)  # a stated time plus a loaded machine's slack


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OTDIV_SLOW_DOCS"),
                    reason="slow doc blocks run with OTDIV_SLOW_DOCS=1")
@pytest.mark.parametrize("path", SLOW, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_blocks_run_slow(path, tmp_path):
    blocks = [b for b in python_blocks(path) if b[1] in ("", "slow")]
    _run(path, blocks, tmp_path, timeout=900)


def test_extractor_finds_markers(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("<!-- test: slow -->\n```python\na = 1\n```\n\ntext\n```python\nb = 2\n"
                   "```\n```bash\nc\n```\n<!-- test: skip no GPU -->\n\n```python\nd\n```\n"
                   "```{image} figures/x.png\n```\n```python\ne = 3\n```\n")
    assert python_blocks(doc) == [(2, "slow", "a = 1\n"), (7, "", "b = 2\n"),
                                  (15, "skip", "d\n"), (20, "", "e = 3\n")]


@pytest.mark.slow
def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                           str(ROOT / "docs"), str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_the_audit_modules_import_only_those_above_them_in_architecture_md():
    """docs/architecture.md lists otdiv/audit's modules so that each imports only those above
    it: every module of the package is listed, and no import (at the top or inside a
    function) reaches down the list."""
    import ast

    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text[text.index("otdiv/audit/ "):text.index("otdiv/testing/ ")]
    order = []
    for line in block.splitlines()[1:]:
        entry = re.match(r"  (\S.*?)(?:\s{2,}|$)", line)  # the name column of an entry
        if entry and not line.startswith("   "):
            order += re.findall(r"(\w+)\.py", entry.group(1))
    package = ROOT / "src" / "otdiv" / "audit"
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    assert set(order) == modules, (set(order) ^ modules)
    rank = {m: i for i, m in enumerate(order)}
    for name in order:
        tree = ast.parse((package / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "otdiv.audit":
                targets = [f"otdiv.audit.{a.name}" for a in node.names if a.name in modules]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            else:
                targets = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for target in (t.split(".")[2] for t in targets if t.startswith("otdiv.audit.")):
                assert rank[target] < rank[name], f"{name}.py imports {target}.py, listed below it"
