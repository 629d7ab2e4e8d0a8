"""The axis order of a graph: which axis is the inner loop of the generated code and the contiguous
dimension of its arrays.

A graph's ``axes`` order is its layout: every backend lays arrays out with one
dimension per axis in that order (the last one contiguous) and loops over
them in that order (the last one innermost). Values, inputs and outputs keep
their types' axes in the graph's order, so the order is part of the calling
convention of arrays with several axes; :func:`gir.Executable` results are
mapped back to the model's declared grid either way.

Axis lengths are known only when the model is called, so the order is chosen
from lengths given to the pass: :func:`choose_order` puts the longest axis
last (innermost) and keeps the declared order of the others, and
:func:`permute_axes` rewrites the graph (and the graphs it calls) to an order.
The ``layout`` pass does both from its ``inner`` option, the axis to run
innermost; without it the graph is returned unchanged. It is not part of the
presets: they run before any length is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gir.errors import GirError
from gir.ir.graph import Graph, Node, Value
from gir.ir.types import Type
from gir.passes.base import graph_pass


def choose_order(axes: Sequence[str], sizes: Mapping[str, int]) -> tuple[str, ...]:
    """``axes`` with the longest (by ``sizes``) last; the declared order otherwise (ties keep it).

    Axes missing from ``sizes`` count as length 1.
    """
    axes = tuple(axes)
    if not axes:
        return axes
    longest = max(axes, key=lambda a: sizes.get(a, 1))
    if sizes.get(axes[-1], 1) >= sizes.get(longest, 1):
        return axes
    return (*(a for a in axes if a != longest), longest)


def permute_axes(graph: Graph, order: Sequence[str]) -> Graph:
    """``graph`` with its axes in ``order`` (a permutation of ``graph.axes``): every value's type
    and every graph it calls follow. The same graph when the order does not change."""
    order = tuple(order)
    if sorted(order) != sorted(graph.axes):
        raise GirError(
            f"layout: {list(order)} is not an order of the axes {list(graph.axes)} of @{graph.name}"
        )
    return _permute(graph, order, {})


def _permute(graph: Graph, order: tuple[str, ...], done: dict[int, Graph]) -> Graph:
    """``graph`` in ``order`` restricted to its axes (axes of its own that ``order`` lacks go last)."""
    mine = tuple(a for a in order if a in graph.axes) + tuple(a for a in graph.axes if a not in order)
    if id(graph) in done:
        return done[id(graph)]
    values: dict[Value, Value] = {}

    def value(v: Value) -> Value:
        if v not in values:
            axes = tuple(a for a in mine if a in v.type.axes)
            values[v] = v if axes == v.type.axes else Value(Type(v.type.dtype, axes), v.name)
        return values[v]

    nodes = [
        Node(
            node.op,
            [value(v) for v in node.inputs],
            [value(v) for v in node.outputs],
            [(k, _permute(a, order, done) if isinstance(a, Graph) else a) for k, a in node.attrs],
        )
        for node in graph.nodes
    ]
    same = mine == graph.axes and all(values.get(v, v) is v for v in values) and not _calls(graph, done)
    out = graph if same else Graph(
        [value(v) for v in graph.inputs], nodes, [value(v) for v in graph.outputs], name=graph.name, axes=mine
    )  # fmt: skip
    done[id(graph)] = out
    return out


def _calls(graph: Graph, done: dict[int, Graph]) -> bool:
    """Whether a graph ``graph`` calls was rewritten."""
    return any(
        isinstance(a, Graph) and done.get(id(a), a) is not a for node in graph.nodes for _, a in node.attrs
    )


@graph_pass("layout")
def layout(graph: Graph, inner: str = "") -> Graph:
    """Run axis ``inner`` innermost (the contiguous dimension); the others keep their order.

    ``layout{inner=E}``. Without ``inner`` (or when it is innermost already) nothing changes.
    Inputs with several axes keep theirs in order (callers pass them so): an ``inner`` that
    would reorder one raises a GirError. Outputs with several axes follow the new order.
    """
    if not inner:
        return graph
    if inner not in graph.axes:
        raise GirError(f"layout: @{graph.name} has no axis {inner!r} (axes: {list(graph.axes)})")
    order = (*(a for a in graph.axes if a != inner), inner)
    v = reordered_input(graph, order)
    if v is not None:
        raise GirError(
            f"layout: running {inner!r} innermost would reorder the axes {list(v.type.axes)} of input "
            f"{v.name!r}, which callers pass in that order"
        )
    return permute_axes(graph, order)


def reordered_input(graph: Graph, order: Sequence[str]) -> Value | None:
    """The first input with several axes whose axes ``order`` puts in another order (None: none)."""
    for v in graph.arrays:
        if len(v.type.axes) > 1 and tuple(a for a in order if a in v.type.axes) != v.type.axes:
            return v
    return None


def for_sizes(graph: Graph, sizes: Mapping[str, int]) -> Graph:
    """``graph`` with its longest axis (by ``sizes``) innermost, where no input's axes change order;
    else ``graph`` itself. For a caller that knows the lengths before compiling."""
    order = choose_order(graph.axes, sizes)
    if order == graph.axes or reordered_input(graph, order) is not None:
        return graph
    return permute_axes(graph, order)
