"""The verifier: every invariant a well-formed graph keeps."""

from __future__ import annotations

from gir.errors import GirError, VerifyError
from gir.ir.builder import infer
from gir.ir.graph import Graph, Node
from gir.ir.printer import IDENT, format_node, value_names


def _fail(graph: Graph, node: Node | None, message: str) -> None:
    where = f"in graph @{graph.name}"
    if node is not None:
        names = value_names(graph)
        line = format_node(node, lambda v: names.get(v, "<undefined>"))
        raise VerifyError(f"{where}: {message}\n  {line}\n  {'^' * len(line)}")
    raise VerifyError(f"{where}: {message}")


def verify(graph: Graph, _seen: set[int] | None = None) -> Graph:
    """Check ``graph`` (and its callees); return it unchanged or raise :class:`VerifyError`.

    Checks: unique, well-named inputs; known ops with the right arity and
    attributes; every operand defined before use; no value defined twice;
    result types equal to the op's type rule; outputs defined; axes known.
    """
    seen = set() if _seen is None else _seen
    if id(graph) in seen:
        return graph
    seen.add(id(graph))
    if not IDENT.match(graph.name or ""):
        _fail(graph, None, f"invalid graph name {graph.name!r}")
    defined = set()
    for v in graph.inputs:
        if not v.name or not IDENT.match(v.name):
            _fail(graph, None, f"input name {v.name!r} is not an identifier")
        if v in defined or any(w.name == v.name for w in defined):
            _fail(graph, None, f"input %{v.name} is declared twice")
        if tuple(a for a in graph.axes if a in v.type.axes) != v.type.axes:
            _fail(graph, None, f"input %{v.name}: {v.type} does not follow the axis order {list(graph.axes)}")
        defined.add(v)
    for node in graph.nodes:
        for v in node.inputs:
            if v not in defined:
                _fail(graph, node, "operand is not defined before this node (dangling value or wrong order)")
        for v in node.outputs:
            if v in defined:
                _fail(graph, node, "result is defined twice")
        try:
            attrs, types = infer(node.op, node.inputs, node.attributes, graph.axes)
        except GirError as e:
            _fail(graph, node, str(e))
        if attrs != node.attributes:
            _fail(graph, node, f"attributes differ from their checked form {attrs}")
        if [v.type for v in node.outputs] != types:
            want = ", ".join(map(str, types))
            _fail(graph, node, f"result types do not match the type rule of {node.op!r} (expected {want})")
        for _, value in node.attrs:
            if isinstance(value, Graph):
                verify(value, seen)
        defined.update(node.outputs)
    for v in graph.outputs:
        if v not in defined:
            _fail(graph, None, f"returned value {v!r} is not defined")
    return graph
