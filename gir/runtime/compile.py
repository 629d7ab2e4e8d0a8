"""``gir.compile``: optimize a graph, generate code for a target, wrap it in an Executable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gir.errors import GirError, TargetError
from gir.ir.graph import Graph
from gir.ir.verify import verify
from gir.runtime.cache import ARTIFACTS, GRAPHS
from gir.runtime.executable import Executable
from gir.runtime.memory import keep_freed_memory
from gir.runtime.target import resolve


def as_graph(model: Any) -> Graph:
    """The graph of anything gir compiles: a Graph, or an object with ``to_graph()``."""
    if isinstance(model, Graph):
        return model
    to_graph = getattr(model, "to_graph", None)
    if callable(to_graph):
        return to_graph()
    raise GirError(
        f"cannot compile {type(model).__name__}: pass a gir.Graph "
        "(gir.trace(fn, x='E'), gir.expr(...), gir.parse(text)) or a model with to_graph()"
    )


def optimized(graph: Graph, passes: Any, fixed: Mapping[str, float] | None) -> Graph:
    """The graph after the pass pipeline, cached by structure, pipeline and fixed values."""
    fixed = dict(fixed or {})
    if passes is None or passes == "O0":
        if fixed:
            raise GirError("fixed parameters need a pass pipeline (passes='O0' runs none)")
        return verify(graph)
    key = (graph.structural_hash, repr(passes), tuple(sorted(fixed.items())))

    def run() -> Graph:
        from gir.passes import optimize

        return optimize(graph, passes, fixed=fixed)

    if isinstance(passes, str) or all(isinstance(p, str) for p in passes):
        return GRAPHS.get(key, run)
    return run()  # pipelines holding user objects are not cached


def compile_graph(
    graph: Graph,
    target: str,
    options: Mapping[str, Any] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> Executable:
    """Compile an already optimized ``graph`` for ``target`` (cached by structure)."""
    keep_freed_memory()
    t = resolve(target, graph, dict(sizes or {}))
    backend = t.load()
    missing = backend.unsupported(graph)
    if missing:
        raise TargetError(f"target {t.name!r} cannot compile the ops {missing}")
    opts = {**t.options, **(options or {})}
    key = (graph.structural_hash, t.name, tuple(sorted(opts.items())))
    filename = f"<gir @{graph.name} {t.name} {graph.structural_hash[:12]}>"
    artifact = ARTIFACTS.get(key, lambda: backend.build(graph, filename, **opts))
    return Executable(graph, t.name, artifact, options)


def compile(
    model: Any,
    target: str = "auto",
    *,
    passes: Any = "O2",
    fixed: Mapping[str, float] | None = None,
    sizes: Mapping[str, int] | None = None,
    **options: Any,
) -> Executable:
    """Compile ``model`` for ``target`` after the pass pipeline ``passes``.

    ``fixed`` maps parameter names to values that become constants (the
    executable no longer takes them). ``target`` is one of :func:`gir.targets`
    or ``"auto"`` (see :func:`gir.runtime.target.choose_auto`; ``sizes``, axis
    name -> length, tells it the grid); an unavailable target raises a
    TargetError saying what to install, never a silent fallback. Objects with a ``__gir_compile__``
    method (such as :class:`gir.models.Model`) compile themselves.
    """
    hook = getattr(model, "__gir_compile__", None)
    if hook is not None:
        return hook(target, passes=passes, fixed=fixed, sizes=sizes, **options)
    graph = optimized(as_graph(model), passes, fixed)
    return compile_graph(graph, target, options, sizes)
