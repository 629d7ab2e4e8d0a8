"""Targets: which backends exist, whether they work here, and how ``auto`` picks."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable

import attrs

from gir.errors import TargetError

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


@attrs.frozen
class Target:
    """A code generation target: a backend module plus the options it runs with."""

    name: str
    backend: str
    options: dict = attrs.field(factory=dict)
    requires: str | None = None  # the extra to install
    check: Callable[[], str | None] | None = None  # returns why it is unavailable, or None
    description: str = ""

    def unavailable_reason(self) -> str | None:
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"{self.requires} is not installed (pip install 'gir[{self.requires}]')"
        return self.check() if self.check else None

    def load(self):
        return importlib.import_module(self.backend)


@attrs.frozen
class TargetInfo:
    name: str
    available: bool
    reason: str
    description: str


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    TARGETS[target.name] = target
    return target


def _gpu_reason() -> str | None:
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        return "no GPU visible to JAX (install a CUDA build: pip install 'jax[cuda12]')"
    return None


register_target(Target("numpy", "gir.codegen.numpy", description="vectorized NumPy, the reference"))
register_target(
    Target(
        "numba", "gir.codegen.numba", {"parallel": False}, "numba", description="fused Numba loops, one core"
    )
)
register_target(
    Target(
        "numba-parallel",
        "gir.codegen.numba",
        {"parallel": True},
        "numba",
        description="fused Numba loops, prange over the outer axis",
    )
)
register_target(
    Target("jax", "gir.codegen.jax", {"device": None}, "jax", description="jitted JAX, default device")
)
register_target(
    Target("jax-cpu", "gir.codegen.jax", {"device": "cpu"}, "jax", description="jitted JAX on the CPU")
)
register_target(
    Target(
        "jax-gpu", "gir.codegen.jax", {"device": "gpu"}, "jax", _gpu_reason, description="jitted JAX on a GPU"
    )
)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one, else the CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def targets() -> list[TargetInfo]:
    """Every target with whether it is available here, and why not."""
    out = []
    for t in TARGETS.values():
        reason = t.unavailable_reason()
        out.append(TargetInfo(t.name, reason is None, reason or "", t.description))
    return out


#: Grids with at least this many points go to a GPU when one is visible (smaller
#: ones lose more to launch and transfer overhead than they gain).
GPU_MIN_POINTS = 1 << 18

#: ``auto`` takes numba-parallel only for grids of at least this many points (a call of some
#: 20 ms on one core), where a thread that waits for a busy core costs a small part of the call.
PARALLEL_MIN_POINTS = 1 << 22

#: ... and only when the process may use more CPUs than this.
PARALLEL_MIN_CPUS = 3


def choose_auto(graph, sizes: dict[str, int] | None = None) -> str:
    """The rule behind ``target="auto"`` (docs/targets.md), from what is installed and here.

    1. a GPU visible to JAX, and a grid of at least GPU_MIN_POINTS points (or
       no ``sizes`` given): ``jax-gpu``;
    2. else Numba installed: ``numba-parallel`` for a grid of at least
       PARALLEL_MIN_POINTS points in a process that may use at least
       PARALLEL_MIN_CPUS CPUs, else ``numba`` (one thread: on a busy machine
       a parallel call waits for its slowest thread; measured in
       benchmarks/bench_contention.py);
    3. else JAX installed: ``jax-cpu``;
    4. else ``numpy``.
    """
    points = None
    if sizes:
        points = 1
        for axis in graph.axes:
            points *= sizes.get(axis, 1)
    if TARGETS["jax-gpu"].unavailable_reason() is None and (points is None or points >= GPU_MIN_POINTS):
        return "jax-gpu"
    if TARGETS["numba"].unavailable_reason() is None:
        large = points is not None and points >= PARALLEL_MIN_POINTS
        return "numba-parallel" if large and usable_cpus() >= PARALLEL_MIN_CPUS else "numba"
    if TARGETS["jax-cpu"].unavailable_reason() is None:
        return "jax-cpu"
    return "numpy"


def resolve(name: str, graph, sizes: dict[str, int] | None = None) -> Target:
    """The target called ``name`` (``auto`` resolved), or a TargetError saying what to do."""
    if name == "auto":
        name = choose_auto(graph, sizes)
    if name not in TARGETS:
        known = ", ".join(["auto", *TARGETS])
        raise TargetError(f"unknown target {name!r}; known targets: {known}")
    target = TARGETS[name]
    reason = target.unavailable_reason()
    if reason:
        raise TargetError(f"target {name!r} is not available: {reason}")
    return target
