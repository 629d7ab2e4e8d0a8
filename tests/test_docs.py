"""Every ```python block of README.md and docs/*.md runs as written.

A block tagged ```python is self-contained: it runs in a fresh namespace. A block tagged
```python continued runs in the namespace the previous python block of the same page left.
Anything not meant to run (signatures, shell commands, output, IR text) carries another tag
(```text, ```bash, ```pycon). Blocks run with matplotlib on the Agg backend, in a temporary
directory; a block skips when an optional package it imports or a target it names is missing.
A block with an ``if __name__ == "__main__":`` guard (dask with worker processes) or one that
registers a pass or a component (names taken once per process) runs, with the blocks it
continues, as a script in a subprocess.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

import gir

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(.*)$")
RUNNABLE = ("python", "python continued")

#: optional packages: a block that imports one skips without it (as does one naming an unavailable target)
EXTRAS = {"numba", "jax", "lmfit", "emcee", "dask", "distributed", "xarray", "numpyro", "corner"}
TARGET = re.compile(r"""target\s*=\s*["']([\w-]+)["']""")
DECORATOR = re.compile(r"^\s*@", re.M)
IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.M)


@dataclass(frozen=True)
class Block:
    page: Path
    index: int  # 1-based among the page's python blocks
    line: int  # 1-based line of the first source line in the page
    source: str
    continued: bool

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.index}"


def fences(page: Path) -> list[tuple[str, int, str]]:
    """Every fenced block of ``page``: (info string, first source line, source)."""
    out, info, start, body = [], None, 0, []
    for number, text in enumerate(page.read_text().splitlines(), 1):
        match = FENCE.match(text)
        if info is None and match:
            info, start, body = match.group(1).strip(), number + 1, []
        elif info is not None and text.strip() == "```":
            out.append((info, start, "\n".join(body) + "\n"))
            info = None
        elif info is not None:
            body.append(text)
    assert info is None, f"{page.name}: a code fence opened on line {start - 1} is never closed"
    return out


def blocks(page: Path) -> list[Block]:
    found = [(i, s, src) for i, s, src in fences(page) if i in RUNNABLE]
    return [Block(page, k, s, src, i == "python continued") for k, (i, s, src) in enumerate(found, 1)]


ALL = [b for page in PAGES for b in blocks(page)]


def chain(block: Block) -> list[Block]:
    """``block`` and the blocks it continues, first to last."""
    page = blocks(block.page)
    out = [block]
    while out[0].continued:
        out.insert(0, page[out[0].index - 2])
    return out


def skip_unless_available(source: str) -> None:
    for module in IMPORT.findall(source):
        if module in EXTRAS:
            pytest.importorskip(module)
    targets = {t.name: t for t in gir.targets()}
    for name in TARGET.findall(source):
        if name in targets and not targets[name].available:
            pytest.skip(f"target {name} unavailable: {targets[name].reason}")
    if 'method="emcee"' in source:
        pytest.importorskip("emcee")
    if ".plot(" in source or "matplotlib" in source:
        pytest.importorskip("matplotlib")


def code(block: Block) -> CodeType:
    """The block compiled with its page's line numbers, so tracebacks point into the page."""
    tree = ast.parse(block.source, str(block.page))
    ast.increment_lineno(tree, block.line - 1)
    return compile(tree, str(block.page), "exec").replace(co_firstlineno=block.line)


NAMESPACES: dict[str, dict[str, Any]] = {}


def run_in_process(block: Block) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if block.continued:
        previous = chain(block)[-2]
        if previous.id not in NAMESPACES:
            run_in_process(previous)
        namespace = NAMESPACES[previous.id]
    else:
        namespace = {"__name__": "gir_docs"}
    try:
        exec(code(block), namespace)
    finally:
        if plt is not None:
            plt.close("all")
    NAMESPACES[block.id] = namespace


def needs_a_process(source: str) -> bool:
    """Whether the code has a ``__main__`` guard or registers a pass or component (a process-wide name)."""
    return 'if __name__ == "__main__":' in source or DECORATOR.search(source) is not None


def run_as_script(block: Block, directory: Path) -> None:
    script = directory / f"{block.page.stem}_{block.index}.py"
    script.write_text("".join(b.source for b in chain(block)))
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(script)], cwd=directory, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{block.id} failed:\n{out.stdout}\n{out.stderr}"


def _param(block: Block) -> Any:
    """A block as a test parameter; one that starts a dask cluster belongs to the full (slow) suite."""
    slow = "LocalCluster" in block.source
    return pytest.param(block, id=block.id, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("block", [_param(b) for b in ALL])
def test_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = "".join(b.source for b in chain(block))
    skip_unless_available(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if needs_a_process(source):
        run_as_script(block, tmp_path)
    else:
        run_in_process(block)


def test_pages_have_python_blocks():
    assert {b.page.name for b in ALL} >= {"README.md", "models.md", "fitting.md", "passes.md", "targets.md"}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_fences_use_the_convention(page: Path) -> None:
    """Python code is tagged ``python`` or ``python continued``, and a continuation has a block before it."""
    first = True
    for info, line, _ in fences(page):
        if info.split()[:1] in (["python"], ["py"], ["python3"]):
            assert info in RUNNABLE, f"{page.name}:{line - 1}: unknown tag ```{info}; use one of {RUNNABLE}"
            assert not (first and info == "python continued"), (
                f"{page.name}:{line - 1}: the first python block of a page has nothing to continue"
            )
            first = False


def test_fence_parser_reads_tags_and_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n```python\na = 1\n```\n```text\nx\n```\n```python continued\nb = a\n```\n")
    found = blocks(page)
    assert [(b.index, b.line, b.source, b.continued) for b in found] == [
        (1, 3, "a = 1\n", False),
        (2, 9, "b = a\n", True),
    ]
    assert [b.index for b in chain(found[1])] == [1, 2]
    run_in_process(found[1])
    assert NAMESPACES[found[1].id]["b"] == 1
