"""cse: common subexpression elimination by structural node keys."""

from __future__ import annotations

from collections import Counter
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


@graph_pass("share")
def share(graph: Graph) -> Graph:
    """n-ary sums and products reuse a smaller one whose operands they contain.

    ``s = a + b`` and ``t = a + b + c`` become ``s`` and ``t = s + c`` (the
    largest such ``s`` defined before ``t``; also for ``mul``). This is CSE for
    associative ops, which ``flatten`` hides: a model sums peaks ``p1 + p2``
    for a Shirley background and again for its total, and each Jacobian
    column repeats that. It reassociates, so it belongs to O2.
    """
    known: dict[tuple[str, Value], list[tuple[Counter, Value]]] = {}
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        have = Counter(node.inputs)
        if node.op in ("add", "mul") and len(node.inputs) > 2:
            best: tuple[Counter, Value] | None = None
            for v in have:
                for ops, out in known.get((node.op, v), ()):
                    if sum(ops.values()) < len(node.inputs) and not ops - have:
                        if best is None or sum(ops.values()) > sum(best[0].values()):
                            best = (ops, out)
            if best is not None:
                rest = best[0].copy()
                inputs = [best[1]]
                for v in node.inputs:
                    if rest[v]:
                        rest[v] -= 1
                    else:
                        inputs.append(v)
                node = Node(node.op, tuple(inputs), node.outputs, node.attrs)
                changed = True
        if node.op in ("add", "mul"):
            for v in have:
                known.setdefault((node.op, v), []).append((have, node.output))
        nodes.append(node)
    if not changed:
        return graph
    return Graph(graph.inputs, nodes, graph.outputs, name=graph.name, axes=graph.axes)
