"""inline: expand ``call`` nodes into the callee's nodes (nested calls too)."""

from __future__ import annotations

from collections.abc import Sequence

from gir.ir.builder import Builder
from gir.ir.graph import Graph, Node, Value
from gir.passes.base import graph_pass
from gir.passes.rebuild import rebuild


def expand(callee: Graph, args: Sequence[Value], b: Builder, hints: Sequence[str | None] = ()) -> list[Value]:
    """Append ``callee``'s nodes applied to ``args`` to ``b``; types re-infer in ``b``'s axes.

    The values the callee returns take the ``hints`` (the call's result names).
    """
    env = dict(zip(callee.inputs, args, strict=True))
    names = {v: h for v, h in zip(callee.outputs, hints) if h}
    for node in callee.nodes:
        ins = [env[v] for v in node.inputs]
        hints = [names.get(o, o.name) for o in node.outputs]
        if node.op == "call":
            outs = expand(node.attr("callee"), ins, b, hints)
        else:
            outs = b.op_multi(node.op, *ins, hint=hints[0], **node.attributes)
        env.update(zip(node.outputs, outs))
    return [env[v] for v in callee.outputs]


def _visit(node: Node, ins: tuple[Value, ...], b: Builder) -> list[Value] | None:
    if node.op != "call":
        return None
    return expand(node.attr("callee"), ins, b, [o.name for o in node.outputs])


@graph_pass("inline")
def inline(graph: Graph) -> Graph:
    """Replace every ``call @f(...)`` by the body of ``f``."""
    if not any(node.op == "call" for node in graph.nodes):
        return graph
    return rebuild(graph, _visit)
