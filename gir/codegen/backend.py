"""The contract between the runtime and a code generator, and what every backend shares.

A backend is a module (``gir.codegen.numpy_backend``, ``numba_backend``,
``jax_backend``) with two functions, :class:`Backend`:

- ``unsupported(graph)``: the ops of a graph (and of the graphs it calls) it
  cannot compile, so that ``gir.compile`` fails early with that list;
- ``build(graph, filename, **options)``: an :class:`Artifact` for the graph.

An artifact takes the graph's inputs in graph order, each array in the
full-rank layout (one dimension per graph axis, size 1 where it does not vary),
and says what it can do: ``releases_gil`` (calls in threads overlap) and
``writes_into`` (``call_into`` writes outputs in place; otherwise the runtime
copies ``call``'s results). The runtime imports this module; nothing here
imports the runtime.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gir.ir.graph import Graph


@runtime_checkable
class Artifact(Protocol):
    """Compiled code for one graph."""

    source: str
    releases_gil: bool
    writes_into: bool

    def call(self, args: Sequence[Any]) -> tuple:
        """The outputs for the inputs ``args`` (graph order, full-rank layout)."""
        ...

    def call_into(self, args: Sequence[Any], outs: Sequence[np.ndarray]) -> None:
        """Write the outputs into ``outs`` (C-contiguous, one per output); only when ``writes_into``."""
        ...

    def batch(self, args: Sequence[Any]) -> tuple:
        """The outputs for B parameter vectors: scalar inputs are length-B vectors; each output gets a
        leading dimension B."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A code generator (a module with these two functions)."""

    def unsupported(self, graph: Graph) -> list[str]: ...

    def build(self, graph: Graph, filename: str, **options: Any) -> Artifact: ...


def unsupported_ops(graph: Graph, supported: Callable[[str], bool]) -> list[str]:
    """The ops of ``graph`` and of the graphs it calls for which ``supported(op)`` is false."""
    ops = {n.op for g in [*graph.callees(), graph] for n in g.nodes}
    return sorted(op for op in ops if op != "call" and not supported(op))


# -- what backends share with the runtime ------------------------------------------------

#: gir's logger. Compilations slower than COMPILE_LOG_SECONDS are reported at INFO level; nothing
#: shows unless the application configures logging (``logging.basicConfig(level=logging.INFO)``).
logger = logging.getLogger("gir")
logger.addHandler(logging.NullHandler())

#: A kernel (or derivative kernel) whose compilation takes at least this long is logged.
COMPILE_LOG_SECONDS = 1.0


def log_compile(graph_name: str, target: str, seconds: float, what: str) -> None:
    """Log (INFO, logger ``gir``) a compilation of @``graph_name`` that took at least COMPILE_LOG_SECONDS."""
    if seconds >= COMPILE_LOG_SECONDS:
        logger.info("compiling @%s for %s took %.1f s (%s)", graph_name, target, seconds, what)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one, else the CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


class CacheWarning(RuntimeWarning):
    """A disk cache entry could not be read: it was deleted and is compiled again."""


def cache_root() -> Path:
    """The folder kept between processes: ``$GIR_CACHE_DIR``, by default ``~/.cache/gir``."""
    root = os.environ.get("GIR_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "gir"


def disk_cache_dir(fallback: bool = False) -> Path:
    """Where generated kernel modules (and Numba's machine code for them) are kept between processes:
    ``cache_root() / "numba"``; with ``fallback``, the folder in the temporary directory used when that
    one cannot be written."""
    if fallback:
        return Path(tempfile.gettempdir()) / f"gir-numba-{os.getuid()}"
    return cache_root() / "numba"
