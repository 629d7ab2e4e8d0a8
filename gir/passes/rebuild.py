"""Copying a graph node by node: the loop most whole-graph passes share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gir.ir.builder import Builder, infer
from gir.ir.graph import Graph, Node, Value

#: ``visit(node, inputs, b)``: the node's (remapped) inputs; return replacement values,
#: or None to copy the node.
Visit = Callable[[Node, tuple[Value, ...], Builder], Sequence[Value] | None]


def copy_node(node: Node, inputs: tuple[Value, ...], b: Builder) -> tuple[Value, ...]:
    """Append ``node`` with new ``inputs`` to ``b``; its result values stay if their types do."""
    if inputs == node.inputs:
        b.nodes.append(node)
        return node.outputs
    _, types = infer(node.op, inputs, node.attributes, b.axes)
    if types == [o.type for o in node.outputs]:
        b.nodes.append(Node(node.op, inputs, node.outputs, node.attrs))
        return node.outputs
    return b.op_multi(node.op, *inputs, hint=node.outputs[0].name, **node.attributes)


def rebuild(
    graph: Graph,
    visit: Visit | None = None,
    *,
    b: Builder | None = None,
    env: dict[Value, Value] | None = None,
) -> Graph:
    """A new graph with each node visited in order; unchanged nodes are reused as they are.

    ``b`` is a builder to continue (its inputs become the graph's; default:
    the graph's inputs); ``env`` maps old values to new ones up front (say,
    dropped inputs to constants made in ``b``).
    """
    if b is None:
        b = Builder(graph.axes)
        b.inputs = list(graph.inputs)
    env = {} if env is None else env
    for node in graph.nodes:
        ins = tuple(env.get(v, v) for v in node.inputs)
        outs = visit(node, ins, b) if visit is not None else None
        if outs is None:
            outs = copy_node(node, ins, b)
        env.update((o, n) for o, n in zip(node.outputs, outs) if o is not n)
    return b.build([env.get(v, v) for v in graph.outputs], name=graph.name)
