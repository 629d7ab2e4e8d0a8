"""The two compile caches: optimized graphs, and compiled artifacts."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import attrs


@attrs.define
class Cache:
    """A dictionary with hit and miss counts."""

    name: str
    entries: dict = attrs.field(factory=dict)
    hits: int = 0
    misses: int = 0

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self.entries:
            self.hits += 1
            return self.entries[key]
        self.misses += 1
        value = self.entries[key] = make()
        return value

    def info(self) -> dict[str, int]:
        return {"size": len(self.entries), "hits": self.hits, "misses": self.misses}

    def clear(self) -> None:
        self.entries.clear()
        self.hits = self.misses = 0


#: Optimized graphs by (structural hash of the input graph, pipeline, fixed parameters).
GRAPHS = Cache("graphs")
#: Compiled artifacts by (structural hash of the optimized graph, target, options).
ARTIFACTS = Cache("artifacts")


def cache_info() -> dict[str, dict[str, int]]:
    """Sizes and hit counts of both levels of the compile cache."""
    return {c.name: c.info() for c in (GRAPHS, ARTIFACTS)}


def disk_cache_dir(fallback: bool = False) -> Path:
    """Where generated kernel modules (and Numba's machine code for them) are kept between processes:
    ``$GIR_CACHE_DIR/numba``, by default ``~/.cache/gir/numba``; with ``fallback``, the folder in
    the temporary directory used when that one cannot be written."""
    if fallback:
        return Path(tempfile.gettempdir()) / f"gir-numba-{os.getuid()}"
    root = os.environ.get("GIR_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "gir"
    return base / "numba"


def clear_cache(disk: bool = False) -> None:
    """Empty both in-memory levels; with ``disk``, also delete the kernels kept on disk
    (new processes then compile them again)."""
    for c in (GRAPHS, ARTIFACTS):
        c.clear()
    if disk:
        for folder in (disk_cache_dir(), disk_cache_dir(fallback=True)):
            shutil.rmtree(folder, ignore_errors=True)
