"""canonicalize: a canonical operand order for commutative ops (fewer axes first, constants last)."""

from __future__ import annotations

import functools
import zlib
from typing import Any

from gir.ir.graph import Graph, Node, Value, attr_key
from gir.passes.base import graph_pass


@functools.lru_cache(maxsize=4096)
def _code(op: str, attrs: tuple[tuple[str, Any], ...]) -> int:
    """A process-independent number for an op and its attributes."""
    return zlib.crc32(repr((op, tuple((k, attr_key(v)) for k, v in attrs))).encode())


@graph_pass("canonicalize")
def canonicalize(graph: Graph) -> Graph:
    """Sort the operands of commutative ops by the number of axes they vary along, then
    inputs (in declared order) before computed values (by a hash of their
    structure) before constants.

    The hash of a value depends on its structure only, not on the operand order
    it was written with, and is the same in every process, so ``cse``
    afterwards merges ``a*b`` with ``b*a``. Fewer axes first makes an n-ary
    ``x*a*b`` (evaluated left to right) compute ``a*b`` once as a scalar before
    the one array product. Sorting keeps every type (broadcasting and
    promotion do not depend on operand order).
    """
    rank: dict[Value, tuple] = {v: (len(v.type.axes), 0, i) for i, v in enumerate(graph.inputs)}
    digest: dict[Value, int] = {v: zlib.crc32(v.name.encode()) for v in graph.inputs}
    nodes = []
    changed = False
    for node in graph.nodes:
        if node.opdef.commutative:
            ins = tuple(sorted(node.inputs, key=rank.__getitem__))
            if ins != node.inputs:
                node = Node(node.op, ins, node.outputs, node.attrs)
                changed = True
        nodes.append(node)
        # tuples of ints hash the same in every process (only str and bytes hashes are salted)
        d = hash((_code(node.op, node.attrs), *[digest[v] for v in node.inputs]))
        kind = 2 if node.op == "const" else 1
        for j, o in enumerate(node.outputs):
            digest[o] = d + j
            rank[o] = (len(o.type.axes), kind, digest[o])
    if not changed:
        return graph
    return Graph(graph.inputs, nodes, graph.outputs, name=graph.name, axes=graph.axes)
