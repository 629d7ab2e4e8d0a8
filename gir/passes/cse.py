"""cse: common subexpression elimination by structural node keys."""

from __future__ import annotations

from typing import Any

from gir.ir.graph import Graph, Node, Value, node_key
from gir.passes.base import graph_pass


@graph_pass("cse")
def cse(graph: Graph) -> Graph:
    """Keep the first of every set of equal nodes (same op, attributes, operands; calls of equal callees).

    Run ``canonicalize`` first so that ``a + b`` and ``b + a`` meet.
    """
    index: dict[Value, Any] = {v: ("in", i) for i, v in enumerate(graph.inputs)}
    seen: dict[tuple, Node] = {}
    env: dict[Value, Value] = {}
    kept: list[Node] = []
    for node in graph.nodes:
        ins = tuple(env.get(v, v) for v in node.inputs)
        if ins != node.inputs:
            node = Node(node.op, ins, node.outputs, node.attrs)  # same results: equal operands, equal types
        key = node_key(node, index)
        first = seen.get(key)
        if first is not None:
            env.update(zip(node.outputs, first.outputs))
            continue
        seen[key] = node
        index.update((o, (len(kept), j)) for j, o in enumerate(node.outputs))
        kept.append(node)
    if not env:
        return graph
    outs = [env.get(v, v) for v in graph.outputs]
    return Graph(graph.inputs, kept, outs, name=graph.name, axes=graph.axes)
