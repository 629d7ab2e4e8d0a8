"""``gir.compile``: optimize a graph, generate code for a target, wrap it in an Executable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gir.errors import GirError
from gir.ir.graph import Graph
from gir.ir.verify import verify
from gir.passes import optimize
from gir.runtime.cache import GRAPHS
from gir.runtime.executable import Executable, compile_graph


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
        return optimize(graph, passes, fixed=fixed)

    if isinstance(passes, str) or all(isinstance(p, str) for p in passes):
        return GRAPHS.get(key, run)
    return run()  # pipelines holding user objects are not cached


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
    TargetError saying what to install, never a silent fallback. An object with
    ``to_graph()`` compiles its graph; one that also has ``__gir_binding__()`` (a
    :class:`gir.models.Model`) gives the executable its binding (start values,
    bounds, derived inputs, components: :mod:`gir.runtime.binding`), and
    ``sizes`` may then name its axes as the model does.
    """
    bind = getattr(model, "__gir_binding__", None)
    binding = bind(passes=passes, fixed=fixed) if bind is not None else None
    if binding is not None and sizes:
        sizes = binding.ir_sizes(sizes)
    graph = optimized(as_graph(model), passes, fixed)
    return compile_graph(graph, target, options, sizes, binding=binding, fixed=fixed)
