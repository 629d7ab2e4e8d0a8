"""The in-memory compile caches (optimized graphs, compiled artifacts, derivative executables)
and the location of the disk cache.

Each in-memory cache keeps its most recently used entries: at most
``GIR_CACHE_SIZE`` of them (default :data:`DEFAULT_SIZE`), read from the
environment whenever an entry is added, so a long-running process that
compiles many distinct graphs holds a bounded number of them.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import attrs

from gir.codegen.backend import disk_cache_dir
from gir.errors import GirError

#: Entries each in-memory cache keeps when ``GIR_CACHE_SIZE`` is not set.
DEFAULT_SIZE = 256


def cache_size() -> int:
    """The most entries each in-memory cache keeps: ``GIR_CACHE_SIZE``, default :data:`DEFAULT_SIZE`."""
    text = os.environ.get("GIR_CACHE_SIZE", "").strip()
    if not text:
        return DEFAULT_SIZE
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size < 0:
        raise GirError(f"GIR_CACHE_SIZE must be a whole number of entries (0 or more), got {text!r}")
    return size


@attrs.define
class Cache:
    """A least-recently-used mapping with hit and miss counts, of at most :func:`cache_size` entries."""

    name: str
    entries: OrderedDict = attrs.field(factory=OrderedDict)
    hits: int = 0
    misses: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The entry for ``key``, made by ``make()`` on a miss (outside the lock: it may compile)."""
        with self._lock:
            if key in self.entries:
                self.hits += 1
                self.entries.move_to_end(key)
                return self.entries[key]
            self.misses += 1
        value = make()
        limit = cache_size()
        with self._lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > limit:
                self.entries.popitem(last=False)
        return value

    def info(self) -> dict[str, int]:
        return {"size": len(self.entries), "hits": self.hits, "misses": self.misses}

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
            self.hits = self.misses = 0


#: Optimized graphs by (structural hash of the input graph, pipeline, fixed parameters).
GRAPHS = Cache("graphs")
#: Compiled artifacts by (structural hash of the optimized graph, target, options).
ARTIFACTS = Cache("artifacts")
#: Forward- and reverse-mode executables by (structural hash of the graph, target, options, mode).
DERIVATIVES = Cache("derivatives")
_CACHES = (GRAPHS, ARTIFACTS, DERIVATIVES)


def cache_info() -> dict[str, dict[str, int]]:
    """Sizes, hits and misses of each in-memory compile cache."""
    return {c.name: c.info() for c in _CACHES}


def clear_cache(disk: bool = False) -> None:
    """Empty the in-memory caches; with ``disk``, also delete the kernels kept on disk
    (new processes then compile them again)."""
    for c in _CACHES:
        c.clear()
    if disk:
        for folder in (disk_cache_dir(), disk_cache_dir(fallback=True)):
            shutil.rmtree(folder, ignore_errors=True)
