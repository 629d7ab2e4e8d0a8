"""Targets: which backends exist, whether they work here, and how ``auto`` picks."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

import attrs

from gir.codegen import backend
from gir.errors import TargetError


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

    def load(self) -> backend.Backend:
        """The backend module (it must provide :class:`gir.codegen.backend.Backend`'s functions)."""
        module = importlib.import_module(self.backend)
        if not isinstance(module, backend.Backend):
            raise TargetError(
                f"{self.backend} is not a gir backend: it needs unsupported(graph) and build(...)"
            )
        return module


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


register_target(Target("numpy", "gir.codegen.numpy_backend", description="vectorized NumPy, the reference"))
register_target(
    Target(
        "numba",
        "gir.codegen.numba_backend",
        {"parallel": False},
        "numba",
        description="fused Numba loops, one core",
    )
)
register_target(
    Target(
        "numba-parallel",
        "gir.codegen.numba_backend",
        {"parallel": True},
        "numba",
        description="fused Numba loops, prange over the outer axis",
    )
)
register_target(
    Target(
        "jax", "gir.codegen.jax_backend", {"device": None}, "jax", description="jitted JAX, default device"
    )
)
register_target(
    Target(
        "jax-cpu", "gir.codegen.jax_backend", {"device": "cpu"}, "jax", description="jitted JAX on the CPU"
    )
)
register_target(
    Target(
        "jax-gpu",
        "gir.codegen.jax_backend",
        {"device": "gpu"},
        "jax",
        _gpu_reason,
        description="jitted JAX on a GPU",
    )
)


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
        return "numba-parallel" if large and backend.usable_cpus() >= PARALLEL_MIN_CPUS else "numba"
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
