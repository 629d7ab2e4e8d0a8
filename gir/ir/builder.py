"""Building graphs node by node, with types inferred from the op registry."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from gir.errors import GirError
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import get_op
from gir.ir.types import Type

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")


def check_arity(op: str, n: int) -> None:
    d = get_op(op)
    if d.arity is not None and n != d.arity:
        raise GirError(f"op {op!r} takes {d.arity} inputs, got {n}")
    if d.arity is None and n < d.min_arity:
        raise GirError(f"op {op!r} takes at least {d.min_arity} inputs, got {n}")


def infer(
    op: str, inputs: Sequence[Value], attributes: dict[str, Any], axes: tuple[str, ...]
) -> tuple[dict[str, Any], list[Type]]:
    """Check ``op`` on ``inputs``; return its completed attributes and output types."""
    d = get_op(op)
    check_arity(op, len(inputs))
    attrs = d.check_attrs(attributes)
    return attrs, d.infer([v.type for v in inputs], attrs, axes)


class Builder:
    """Appends typed nodes; ``build`` returns the :class:`Graph`.

    Frontends, passes and the parser all create nodes through a builder, so
    every node is checked against its op definition when it is made.
    """

    def __init__(self, axes: Iterable[str] = ()):
        self.axes: tuple[str, ...] = tuple(axes)
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []

    def input(self, name: str, type: Type | str = "f64") -> Value:
        """Declare an input; ``type`` may be a :class:`Type` or a dtype name."""
        t = type if isinstance(type, Type) else Type(type)
        if not IDENT.match(name):
            raise GirError(f"input name {name!r} is not an identifier")
        if any(v.name == name for v in self.inputs):
            raise GirError(f"duplicate input name {name!r}")
        self.axes += tuple(a for a in t.axes if a not in self.axes)
        if tuple(a for a in self.axes if a in t.axes) != t.axes:
            raise GirError(
                f"input {name!r}: axes {list(t.axes)} are not in the graph's axis order {list(self.axes)}"
            )
        v = Value(t, name)
        self.inputs.append(v)
        return v

    def op(self, op: str, *inputs: Value, hint: str | None = None, **attributes: Any) -> Value:
        """Append a one-result node and return its value."""
        out = self.op_multi(op, *inputs, hint=hint, **attributes)
        if len(out) != 1:
            raise GirError(f"op {op!r} has {len(out)} results; use op_multi")
        return out[0]

    def op_multi(
        self, op: str, *inputs: Value, hint: str | None = None, **attributes: Any
    ) -> tuple[Value, ...]:
        """Append a node and return all of its result values."""
        attrs, types = infer(op, inputs, attributes, self.axes)
        outs = tuple(Value(t, hint) for t in types)
        self.nodes.append(Node(op, inputs, outs, attrs))
        return outs

    def const(self, value: bool | int | float, hint: str | None = None) -> Value:
        if not isinstance(value, bool | int):
            value = float(value)
        return self.op("const", value=value, hint=hint)

    def call(self, callee: Graph, *inputs: Value, hint: str | None = None) -> tuple[Value, ...]:
        return self.op_multi("call", *inputs, callee=callee, hint=hint)

    def build(self, outputs: Sequence[Value] | Value, name: str = "main") -> Graph:
        outs = (outputs,) if isinstance(outputs, Value) else tuple(outputs)
        return Graph(self.inputs, self.nodes, outs, name=name, axes=self.axes)
