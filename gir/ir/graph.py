"""The graph IR: values, nodes and graphs (a flat SSA graph in topological order)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from gir.errors import GirError
from gir.ir.ops import OpDef, get_op
from gir.ir.types import Type


@attrs.define(eq=False, frozen=True)
class Value:
    """An SSA value: the result of one node, or a graph input. Compared by identity."""

    type: Type
    name: str | None = None

    def __repr__(self) -> str:
        return f"Value({self.name or '?'}: {self.type})"


def _freeze(attributes: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in items))


@attrs.frozen(eq=False)
class Node:
    """One operation: ``outputs = op(*inputs) {attrs}``. Attributes are frozen, sorted by name."""

    op: str
    inputs: tuple[Value, ...] = attrs.field(converter=tuple)
    outputs: tuple[Value, ...] = attrs.field(converter=tuple)
    attrs: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_freeze)

    @property
    def opdef(self) -> OpDef:
        return get_op(self.op)

    @property
    def attributes(self) -> dict[str, Any]:
        return dict(self.attrs)

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    @property
    def output(self) -> Value:
        """The single output of a one-result node."""
        (out,) = self.outputs
        return out

    def __repr__(self) -> str:
        return f"Node({self.op}, {list(self.inputs)} -> {list(self.outputs)})"


def attr_key(value: Any) -> Any:
    """A hashable, process-independent key for an attribute value (nan equals nan)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, float):
        return ("f", repr(float(value)))  # np.float64(x) equals float(x)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, tuple):
        return ("t", tuple(attr_key(v) for v in value))
    if isinstance(value, Graph):
        return ("g", value.key)
    raise GirError(f"unsupported attribute value {value!r}")


def node_key(node: Node, index: Mapping[Value, Any]) -> tuple:
    """What makes two nodes the same computation: op, attributes and operands."""
    return (
        node.op,
        tuple((k, attr_key(v)) for k, v in node.attrs),
        tuple(index[v] for v in node.inputs),
    )


@attrs.frozen(eq=False, slots=False)
class Graph:
    """``outputs = graph(*inputs)``: nodes in topological order over named axes.

    Scalar inputs are the parameters, inputs with axes are the arrays. ``axes``
    is the order broadcasting aligns by (first appearance in the inputs unless
    given). Equality and :attr:`structural_hash` ignore object identities and
    the name hints of intermediate values; input names are part of a graph's
    interface and count.
    """

    inputs: tuple[Value, ...] = attrs.field(converter=tuple)
    nodes: tuple[Node, ...] = attrs.field(converter=tuple)
    outputs: tuple[Value, ...] = attrs.field(converter=tuple)
    name: str = "main"
    axes: tuple[str, ...] = attrs.field(default=None, converter=attrs.converters.optional(tuple))

    def __attrs_post_init__(self) -> None:
        if self.axes is None:
            order: list[str] = []
            for v in self.inputs:
                order += [a for a in v.type.axes if a not in order]
            object.__setattr__(self, "axes", tuple(order))

    # -- identity -------------------------------------------------------------

    @functools.cached_property
    def key(self) -> tuple:
        index: dict[Value, Any] = {v: ("in", i) for i, v in enumerate(self.inputs)}
        body = []
        for n, node in enumerate(self.nodes):
            body.append((node_key(node, index), tuple(str(o.type) for o in node.outputs)))
            index.update({o: (n, j) for j, o in enumerate(node.outputs)})
        try:
            outs = tuple(index[v] for v in self.outputs)
        except KeyError:
            raise GirError(f"graph @{self.name} returns a value no node defines") from None
        ins = tuple((v.name, str(v.type)) for v in self.inputs)
        return (self.name, self.axes, ins, tuple(body), outs)

    @functools.cached_property
    def structural_hash(self) -> str:
        """A hex digest of the structure, the same in every process."""
        return hashlib.sha256(repr(self.key).encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Graph) and (self is other or self.key == other.key)

    def __hash__(self) -> int:
        return hash(self.key)

    # -- views ----------------------------------------------------------------

    @property
    def params(self) -> tuple[Value, ...]:
        """Scalar inputs, in order: the parameter vector theta."""
        return tuple(v for v in self.inputs if v.type.is_scalar)

    @property
    def arrays(self) -> tuple[Value, ...]:
        """Inputs with axes."""
        return tuple(v for v in self.inputs if not v.type.is_scalar)

    def input(self, name: str) -> Value:
        for v in self.inputs:
            if v.name == name:
                return v
        raise GirError(f"graph @{self.name} has no input {name!r}")

    def users(self) -> dict[Value, list[Node]]:
        """For every value, the nodes that read it."""
        out: dict[Value, list[Node]] = {}
        for node in self.nodes:
            for v in node.inputs:
                out.setdefault(v, []).append(node)
        return out

    def producers(self) -> dict[Value, Node]:
        return {o: node for node in self.nodes for o in node.outputs}

    def callees(self) -> Iterator[Graph]:
        """Graphs used as attributes (call targets), innermost first, each once."""
        seen: set[int] = set()

        def walk(g: Graph) -> Iterator[Graph]:
            for node in g.nodes:
                for _, v in node.attrs:
                    if isinstance(v, Graph) and id(v) not in seen:
                        seen.add(id(v))
                        yield from walk(v)
                        yield v

        return walk(self)

    def infer_call(self, in_types: Sequence[Type], order: tuple[str, ...]) -> list[Type]:
        """Output types of a call of this graph: arguments may carry extra axes."""
        key = (tuple(in_types), order)
        cache = self.__dict__.setdefault("_call_types", {})
        if key not in cache:
            cache[key] = self._infer_call(in_types, order)
        return cache[key]

    def _infer_call(self, in_types: Sequence[Type], order: tuple[str, ...]) -> list[Type]:
        if len(in_types) != len(self.inputs):
            raise GirError(f"@{self.name} takes {len(self.inputs)} inputs, got {len(in_types)}")
        types: dict[Value, Type] = {}
        for v, t in zip(self.inputs, in_types, strict=True):
            if t.dtype != v.type.dtype or not set(v.type.axes) <= set(t.axes):
                raise GirError(f"@{self.name}: input %{v.name} is {v.type}, got {t}")
            types[v] = t
        for node in self.nodes:
            outs = node.opdef.infer([types[v] for v in node.inputs], node.attributes, order)
            types.update(zip(node.outputs, outs, strict=True))
        return [types[v] for v in self.outputs]

    def to_networkx(self):
        """The dataflow graph as a ``networkx.MultiDiGraph``.

        Graph nodes are ``("input", name)``, ``("node", i)`` (with ``op`` and
        ``attrs``) and ``("output", j)``; each edge carries the ``value`` it
        moves and its ``type``.
        """
        import networkx as nx

        g = nx.MultiDiGraph(name=self.name, axes=self.axes)
        source: dict[Value, Any] = {}
        for v in self.inputs:
            source[v] = ("input", v.name)
            g.add_node(source[v], kind="input", type=str(v.type))
        for i, node in enumerate(self.nodes):
            g.add_node(("node", i), kind="node", op=node.op, attrs=node.attributes)
            for v in node.inputs:
                g.add_edge(source[v], ("node", i), value=v.name, type=str(v.type))
            source.update({o: ("node", i) for o in node.outputs})
        for j, v in enumerate(self.outputs):
            g.add_node(("output", j), kind="output", type=str(v.type))
            g.add_edge(source[v], ("output", j), value=v.name, type=str(v.type))
        return g

    def __str__(self) -> str:
        from gir.ir.printer import dump  # the printer imports this module

        return dump(self)

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes>"
