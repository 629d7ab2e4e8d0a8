"""The source emitter every backend shares: one line of Python a node, the IR as comment."""

from __future__ import annotations

import builtins
import contextlib
import keyword
import linecache
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import get_op
from gir.ir.printer import format_node, value_names

_NOT_IDENT = re.compile(r"\W")
_RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {"np", "sp", "jnp", "math", "numba", "prange"}


class Emitter:
    """Accumulates Python source with unique identifiers for IR values.

    ``globals`` holds the objects the source refers to by name (constants,
    helper functions, nested graphs); :meth:`compile` executes the source as a
    module whose text tracebacks can show.
    """

    def __init__(self, namespace: dict[str, Any] | None = None):
        self.lines: list[str] = []
        self.globals: dict[str, Any] = dict(namespace or {})
        self._used: set[str] = set(self.globals) | _RESERVED
        self._depth = 0

    def fresh(self, hint: str | None, default: str = "v") -> str:
        """A new identifier close to ``hint``."""
        base = _NOT_IDENT.sub("_", hint or default)
        if base[0].isdigit():
            base = f"{default}{base}"
        name, k = base, 0
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def line(self, text: str = "", comment: str | None = None) -> None:
        indent = "    " * self._depth
        self.lines.append(f"{indent}{text}  # {comment}" if comment else f"{indent}{text}")

    @contextlib.contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    @property
    def source(self) -> str:
        return "\n".join(self.lines) + "\n"

    def compile(self, filename: str) -> dict[str, Any]:
        """Execute the source; return its namespace. The text is registered with linecache."""
        source = self.source
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = dict(self.globals)
        exec(compile(source, filename, "exec"), namespace)
        return namespace


def resolved_attrs(node: Node, axes: Sequence[str]) -> dict[str, Any]:
    """Node attributes as backends see them: axis names become negative positions.

    Arrays use a full-rank layout (one dimension per graph axis, size 1 where
    a value does not vary), so an axis has the same position in every array,
    counted from the end so that leading batch dimensions broadcast freely.
    """
    out = node.attributes
    if "axis" in out:
        out["axis"] = list(axes).index(out["axis"]) - len(axes)
    return out


OpEmitter = Callable[[Sequence[str], dict[str, Any]], str]


def emit_function(
    em: Emitter,
    graph: Graph,
    axes: Sequence[str],
    overrides: dict[str, OpEmitter],
    name: str | None = None,
    callees: dict[int, str] | None = None,
    release: bool = False,
) -> str:
    """Emit ``graph`` as a straight-line array function; return its name.

    Each op's source comes from ``overrides`` (the backend's own emitters) or
    else from the op definition's NumPy template. Constants are module-level
    names, evaluated once; call targets become functions of their own. The
    function always returns a tuple. With ``release``, arrays are deleted after
    their last use, so that memory is reused while the function runs.
    """
    callees = {} if callees is None else callees
    ir_names = value_names(graph)
    local: dict[Value, str] = {}
    body: list[tuple[str, str]] = []
    fname = name or em.fresh(f"g_{graph.name}")
    for v in graph.inputs:
        local[v] = em.fresh(v.name)
    last_use = {v: i for i, node in enumerate(graph.nodes) for v in node.inputs}
    keep = set(graph.inputs) | set(graph.outputs)
    for i, node in enumerate(graph.nodes):
        comment = format_node(node, ir_names)
        if node.op == "const":  # module level, evaluated once
            local[node.output] = em.fresh(ir_names[node.output], "k")
            emit = overrides.get("const") or get_op("const").source
            em.line(f"{local[node.output]} = {emit((), node.attributes)}", comment)
            continue
        inputs = node.inputs
        if node.opdef.arity is None and node.opdef.commutative:  # add, mul: broadcast last,
            # operands with fewer axes combine first
            inputs = sorted(inputs, key=lambda v: len(v.type.axes))
        args = [local[v] for v in inputs]
        if node.op == "call":
            callee = node.attr("callee")
            if id(callee) not in callees:
                callees[id(callee)] = emit_function(em, callee, axes, overrides, callees=callees)
            expr = f"{callees[id(callee)]}({', '.join(args)})"
        else:
            attrs = resolved_attrs(node, axes)
            emit = overrides.get(node.op)
            expr = emit(args, attrs) if emit else get_op(node.op).source(args, attrs)
        outs = [em.fresh(ir_names[v]) for v in node.outputs]
        local.update(zip(node.outputs, outs, strict=True))
        target = ", ".join(outs) + ("," if node.op == "call" and len(outs) == 1 else "")
        body.append((f"{target} = {expr}", comment))
        dead = [
            local[v] for v in dict.fromkeys(node.inputs) if last_use[v] == i and v not in keep and v.type.axes
        ]
        if release and dead:
            body.append((f"del {', '.join(dead)}", None))
    params = ", ".join(local[v] for v in graph.inputs)
    with em.block(f"def {fname}({params}):"):
        em.line(f'"""IR graph @{graph.name}."""')
        for text, comment in body:
            em.line(text, comment)
        em.line(
            "return " + ", ".join(local[v] for v in graph.outputs) + ("," if len(graph.outputs) == 1 else "")
        )
    em.line()
    return fname
