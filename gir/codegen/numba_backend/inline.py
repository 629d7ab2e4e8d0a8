"""Call inlining for code generation: a flat graph with every ``call`` expanded.

The Numba backend fuses loops across component boundaries, so it needs the
callee bodies in the caller. This is plain substitution: each callee node is
rebuilt on the caller's values, with its types inferred again in the
caller's axis order (a call argument may carry more axes than the callee
declared, e.g. a time-dependent amplitude).
"""

from __future__ import annotations

from gir.ir.builder import infer
from gir.ir.graph import Graph, Node, Value


def inline_calls(graph: Graph) -> Graph:
    """``graph`` with all calls (nested ones too) replaced by the callee bodies."""
    if not any(node.op == "call" for node in graph.nodes):
        return graph
    nodes: list[Node] = []
    subst: dict[Value, Value] = {v: v for v in graph.inputs}
    _expand(graph.nodes, subst, nodes, graph.axes, top=True)
    outputs = [subst[v] for v in graph.outputs]
    return Graph(graph.inputs, nodes, outputs, name=graph.name, axes=graph.axes)


def _expand(body, subst: dict[Value, Value], out: list[Node], axes: tuple[str, ...], top: bool = False):
    for node in body:
        inputs = [subst[v] for v in node.inputs]
        if node.op == "call":
            callee: Graph = node.attr("callee")
            inner: dict[Value, Value] = dict(zip(callee.inputs, inputs, strict=True))
            _expand(callee.nodes, inner, out, axes)
            for result, value in zip(node.outputs, callee.outputs, strict=True):
                subst[result] = inner[value]
            continue
        attrs, types = infer(node.op, inputs, node.attributes, axes)
        unchanged = all(a is b for a, b in zip(inputs, node.inputs))
        if top and unchanged and [v.type for v in node.outputs] == types:
            new = node
        else:
            outs = [Value(t, v.name) for t, v in zip(types, node.outputs, strict=True)]
            new = Node(node.op, inputs, outs, attrs)
        out.append(new)
        subst.update(zip(node.outputs, new.outputs, strict=True))
