"""dce: drop the nodes no output needs."""

from __future__ import annotations

from gir.ir.graph import Graph
from gir.passes.base import graph_pass


@graph_pass("dce")
def dce(graph: Graph) -> Graph:
    """Keep only the nodes that the outputs depend on (every op is free of side effects)."""
    need = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in need for o in node.outputs):
            kept.append(node)
            need.update(node.inputs)
    if len(kept) == len(graph.nodes):
        return graph
    return Graph(graph.inputs, kept[::-1], graph.outputs, name=graph.name, axes=graph.axes)
