"""specialize: fixed parameters become constants and leave the graph's inputs."""

from __future__ import annotations

import numbers
from typing import Any

from gir.errors import GirError
from gir.ir.builder import Builder
from gir.ir.graph import Graph, Value
from gir.passes.base import graph_pass
from gir.passes.rebuild import rebuild


def _constant(v: Value, value: Any) -> bool | int | float:
    dtype = v.type.dtype
    if dtype == "bool" and isinstance(value, bool | numbers.Integral) and value in (0, 1):
        return bool(value)
    if dtype == "i64" and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if dtype == "f64" and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise GirError(f"cannot fix parameter {v.name!r} of type {v.type} to {value!r}")


@graph_pass("specialize")
def specialize(graph: Graph, **fixed: Any) -> Graph:
    """Replace the scalar inputs named in ``fixed`` by constants (``specialize{m=0.0}``)."""
    if not fixed:
        return graph
    names = {v.name: v for v in graph.inputs}
    for name in fixed:
        if name not in names:
            params = ", ".join(v.name for v in graph.params) or "none"
            raise GirError(
                f"cannot fix {name!r}: graph @{graph.name} has no parameter {name!r} (parameters: {params})"
            )
        if not names[name].type.is_scalar:
            raise GirError(f"cannot fix {name!r}: it is an array input ({names[name].type}), not a parameter")
    b = Builder(graph.axes)
    b.inputs = [v for v in graph.inputs if v.name not in fixed]
    env = {names[k]: b.const(_constant(names[k], value), hint=k) for k, value in fixed.items()}
    return rebuild(graph, b=b, env=env)
