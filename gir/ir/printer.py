"""The text form of the IR: one node a line, a type on every result.

::

    graph @glp(%x: f64[E], %A: f64, %x0: f64, %F: f64, %m: f64) -> f64[E] {
      %d: f64[E] = sub %x, %x0
      ...
      return %y
    }

Call targets are printed first, as graphs of their own, and referred to as
``{callee=@GLP}``; the graph printed last is the one the text stands for. A
graph whose axis order is not the order of first appearance in its inputs
says so with ``axes [T,E]`` before the brace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from gir.errors import GirError
from gir.ir.builder import IDENT
from gir.ir.graph import Graph, Node, Value

KEYWORDS = {"true", "false", "inf", "nan", "graph", "return", "axes"}


def format_attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        return repr(float(value))  # a plain float: np.float64 would print as np.float64(...)
    if isinstance(value, str):
        return value if IDENT.match(value) and value not in KEYWORDS else json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, Graph):
        return f"@{value.name}"
    raise GirError(f"cannot print attribute value {value!r}")


def value_names(graph: Graph) -> dict[Value, str]:
    """Unique printed names: the hint where it is a valid, unused name, else a number."""
    names: dict[Value, str] = {}
    used: set[str] = set()
    suffix: dict[str, int] = {}  # per hint, the last suffix taken: the search goes on from there
    counter = 0
    for v in graph.inputs:
        names[v] = v.name
        used.add(v.name)
    for node in graph.nodes:
        for v in node.outputs:
            hint = v.name
            if hint and IDENT.match(hint):
                name, k = hint, suffix.get(hint, 0)
                while name in used:
                    k += 1
                    name = f"{hint}_{k}"
                suffix[hint] = k
            else:
                while str(counter) in used:
                    counter += 1
                name = str(counter)
            names[v] = name
            used.add(name)
    return names


def format_node(node: Node, name_of: Mapping[Value, str] | Callable[[Value], str]) -> str:
    """One node as a line of IR text (without indentation)."""
    get = name_of.__getitem__ if isinstance(name_of, Mapping) else name_of
    results = ", ".join(f"%{get(v)}: {v.type}" for v in node.outputs)
    line = f"{results} = {node.op}"
    if node.inputs:
        line += " " + ", ".join(f"%{get(v)}" for v in node.inputs)
    if node.attrs:
        line += " {" + ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs) + "}"
    return line


def _default_axes(graph: Graph) -> tuple[str, ...]:
    order: list[str] = []
    for v in graph.inputs:
        order += [a for a in v.type.axes if a not in order]
    return tuple(order)


def _dump_one(graph: Graph) -> str:
    names = value_names(graph)
    args = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    outs = [str(v.type) for v in graph.outputs]
    ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
    head = f"graph @{graph.name}({args}) -> {ret}"
    if graph.axes != _default_axes(graph):
        head += f" axes [{','.join(graph.axes)}]"
    lines = [head + " {"]
    lines += ["  " + format_node(node, names) for node in graph.nodes]
    lines.append("  return " + ", ".join(f"%{names[v]}" for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines)


def dump(graph: Graph) -> str:
    """The IR text of ``graph`` and of every graph it calls."""
    by_name: dict[str, Graph] = {}
    for g in [*graph.callees(), graph]:
        if g.name in by_name and by_name[g.name] != g:
            raise GirError(f"two different graphs are named @{g.name}; rename one")
        by_name[g.name] = g
    return "\n\n".join(_dump_one(g) for g in by_name.values()) + "\n"
