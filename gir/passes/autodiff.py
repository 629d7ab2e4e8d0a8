"""Automatic differentiation on the IR: forward mode (JVP) and reverse mode (VJP).

Both build ordinary graphs from the derivative rules in the op definitions
(the ``partials``, ``linear`` and ``transpose`` fields of
:class:`gir.ir.ops.OpDef`), so every target compiles them, and the
optimizer's CSE shares work between a value and its derivatives (the
``exp`` of a peak is computed once for the value and every column of the
Jacobian).

Forward mode carries one tangent per parameter, sparsely: a value that does not
depend on a parameter has no tangent for it, and a tangent only has the axes
it varies along. Parameters that reach every output through one value of lower
rank (the position of a peak that moves in time: its offset and the amplitude,
frequency and phase of its oscillation all act through one value on the time
axis) share a tangent beyond that value: the derivative with respect to the
value is carried once over the full grid, and each parameter's column is that
times the parameter's own tangent of the value (chain rule), which only varies
along the value's axes. Reverse mode keeps every cotangent on exactly the axes of its
value (summing where a value was broadcast, broadcasting where it was reduced).

Where a function is not differentiable the rules return the derivative of the
branch taken: 0 for steps, comparisons, ``floor`` and ``sign`` (so the
position of a step, and the width of a box kernel inside its window, get a
zero derivative), the first argument's derivative at ties of ``minimum`` and
``maximum``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx

from gir.errors import GirError
from gir.ir.builder import Builder
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import get_op
from gir.ir.types import FLOATS, Type
from gir.passes.base import graph_pass
from gir.passes.inline import inline


def _params(graph: Graph, wrt: Iterable[str] | None) -> list[Value]:
    params = list(graph.params)
    if wrt is None:
        return [p for p in params if p.type.dtype in FLOATS]
    names = {p.name: p for p in params}
    wrt = list(wrt)
    for name in wrt:
        if name not in names:
            raise GirError(
                f"cannot differentiate with respect to {name!r}: not a parameter of @{graph.name} "
                f"(parameters: {list(names)})"
            )
    return [names[n] for n in wrt]


def _copy(graph: Graph) -> tuple[Builder, dict[Value, Value]]:
    b = Builder(graph.axes)
    return b, {v: b.input(v.name, v.type) for v in graph.inputs}


def _primal(b: Builder, node: Node, env: dict[Value, Value]) -> list[Value]:
    outs = b.op_multi(node.op, *(env[v] for v in node.inputs), hint=node.outputs[0].name, **node.attributes)
    env.update(zip(node.outputs, outs, strict=True))
    return list(outs)


def _rule(node: Node):
    d = get_op(node.op)
    if not d.differentiable:
        raise GirError(f"op {node.op!r} has no derivative rule")
    return d


def _linear_inputs(node: Node) -> Sequence[int]:
    lin = get_op(node.op).linear
    return range(len(node.inputs)) if lin == "all" else lin


def shared_values(graph: Graph, params: Sequence[Value]) -> dict[Value, list[int]]:
    """Values through which two or more of ``params`` (by index) reach every output.

    For each parameter the furthest such value along its chain of post-dominators
    (every path from the parameter to an output passes through them) that has
    fewer axes than the largest output and that nothing downstream sums, scans
    or flips along one of its own axes: then each element of an output depends
    on the value at one position only, and a uniform tangent of the value gives
    the pointwise partial derivative.
    """
    top = max((len(v.type.axes) for v in graph.outputs), default=0)
    sink = object()
    reverse = nx.DiGraph()
    reverse.add_edges_from((sink, v) for v in graph.outputs)
    reverse.add_edges_from((o, i) for n in graph.nodes for o in n.outputs for i in n.inputs)
    mixed: dict[Value, set[str]] = defaultdict(set)  # axes something downstream mixes along
    for node in reversed(graph.nodes):
        here = set().union(*(mixed[o] for o in node.outputs))
        if not node.opdef.elementwise:
            axis = node.attributes.get("axis")
            here |= set(graph.axes) if axis is None else {axis}
        for v in node.inputs:
            mixed[v] |= here
    idom = nx.immediate_dominators(reverse, sink) if top else {}
    groups: dict[Value, list[int]] = defaultdict(list)
    for k, p in enumerate(params):
        best, u = None, idom.get(p, sink)
        while u is not sink:
            if u.type.dtype in FLOATS and len(u.type.axes) < top and not mixed[u] & set(u.type.axes):
                best = u
            u = idom[u]
        if best is not None:
            groups[best].append(k)
    return {v: ks for v, ks in groups.items() if len(ks) > 1}


def jvp(graph: Graph, wrt: Iterable[str] | None = None) -> Graph:
    """``graph`` with, after its outputs, d output_j / d param_k for every output j and parameter k.

    Outputs are ordered ``[y_0, ..., y_n, dy_0/dp_0, dy_0/dp_1, ..., dy_1/dp_0, ...]``;
    a derivative that is identically zero is the constant 0.
    """
    graph = inline(graph)
    params = _params(graph, wrt)
    b, env = _copy(graph)
    tangents: list[dict[Value, Value]] = [{p: b.const(1.0)} for p in params]
    shared = shared_values(graph, params)
    via: dict[int, tuple[dict[Value, Value], Value | None]] = {}  # param -> (shared tangent, its factor)
    for node in graph.nodes:
        ins = [env[v] for v in node.inputs]
        (out,) = _primal(b, node, env) if len(node.outputs) == 1 else (None,)
        active = [t for t in tangents if any(v in t for v in node.inputs)]
        if not active:
            continue
        if out is None:
            raise GirError(f"cannot differentiate the multi-result op {node.op!r}")
        d = _rule(node)
        key = node.output
        if d.partials is not None:
            partials = d.partials(b, out, *ins)
            for t in active:
                terms = [b.op("mul", p, t[v]) for v, p in zip(node.inputs, partials, strict=True)
                         if p is not None and v in t]  # fmt: skip
                if terms:
                    t[key] = terms[0] if len(terms) == 1 else b.op("add", *terms)
            continue
        lin = _linear_inputs(node)
        for t in active:
            if not any(node.inputs[i] in t for i in lin):
                continue
            if node.op == "add":
                terms = [t[v] for v in node.inputs if v in t]
                t[key] = terms[0] if len(terms) == 1 else b.op("add", *terms)
                continue
            args = [t.get(v) or b.const(0.0) if i in lin else ins[i] for i, v in enumerate(node.inputs)]
            axis = node.attr("axis")
            if axis is not None and axis not in args[0].type.axes:  # a tangent constant along the axis
                args[0] = b.op("bcast", args[0], ins[0])
            t[key] = b.op(node.op, *args, **node.attributes)
        if node.outputs[0] in shared:  # from here on, one tangent for the parameters of the group
            common = {node.outputs[0]: b.const(1.0)}
            for k in shared[node.outputs[0]]:
                via[k] = (common, tangents[k].get(node.outputs[0]))
                tangents[k] = {}
            tangents.append(common)

    def column(v: Value, k: int) -> Value:
        if k not in via:
            return tangents[k].get(v) or b.const(0.0)
        common, factor = via[k]
        return b.op("mul", common[v], factor) if v in common and factor is not None else b.const(0.0)

    outputs = [env[v] for v in graph.outputs]
    for v in graph.outputs:
        outputs += [column(v, k) for k in range(len(params))]
    return b.build(outputs, name=f"{graph.name}_jvp")


def vjp(graph: Graph, wrt: Iterable[str] | None = None) -> Graph:
    """``graph`` with one cotangent input per output (``seed0``, ``seed1``, ... on the output's
    axes) and, after its outputs, the gradient of sum_j seed_j * output_j for each parameter."""
    graph = inline(graph)
    params = _params(graph, wrt)
    b, env = _copy(graph)
    taken = {v.name for v in graph.inputs}
    seeds = []
    for j, v in enumerate(graph.outputs):
        name, k = f"seed{j}", 0
        while name in taken:
            k += 1
            name = f"seed{j}_{k}"
        seeds.append(b.input(name, Type("f64", v.type.axes)))
    active = set(params)  # values that depend on a parameter: the only ones needing cotangents
    for node in graph.nodes:
        _primal(b, node, env)
        if any(v in active for v in node.inputs):
            active.update(node.outputs)
    cot: dict[Value, Value] = {}

    def accumulate(v: Value, ct: Value) -> None:
        if v not in active or v.type.dtype not in FLOATS:
            return
        for axis in [a for a in ct.type.axes if a not in v.type.axes]:
            ct = b.op("sum", ct, axis=axis)
        if set(v.type.axes) - set(ct.type.axes):
            ct = b.op("bcast", ct, env[v])
        cot[v] = b.op("add", cot[v], ct) if v in cot else ct

    for v, seed in zip(graph.outputs, seeds, strict=True):
        accumulate(v, seed)
    for node in reversed(graph.nodes):
        if len(node.outputs) != 1 or node.output not in cot:
            continue
        g, out, ins = cot[node.output], env[node.output], [env[v] for v in node.inputs]
        d = _rule(node)
        if d.partials is not None:
            for v, p in zip(node.inputs, d.partials(b, out, *ins), strict=True):
                if p is not None:
                    accumulate(v, b.op("mul", p, g))
        else:
            for v, ct in zip(node.inputs, d.transpose(b, g, out, *ins, **node.attributes), strict=True):
                if ct is not None:
                    accumulate(v, ct)
    outputs = [env[v] for v in graph.outputs] + [cot.get(p) or b.const(0.0) for p in params]
    return b.build(outputs, name=f"{graph.name}_vjp")


def _wrt_option(name: str, wrt: Any) -> list[str] | None:
    """The ``wrt`` option of a pipeline step: ``None`` (every float parameter) or names joined by ``+``."""
    if wrt is None:
        return None
    if not isinstance(wrt, str) or not all(wrt.split("+")):
        raise GirError(
            f"option wrt of pass {name!r} takes parameter names joined by '+' (wrt=A+x0), not {wrt!r}"
        )
    return wrt.split("+")


@graph_pass("jvp")
def jvp_pass(graph: Graph, wrt: str | None = None) -> Graph:
    """Forward-mode derivatives of every output with respect to every float parameter, or those of
    ``wrt`` (``jvp{wrt=A+x0}``; see :func:`jvp`)."""
    return jvp(graph, _wrt_option("jvp", wrt))


@graph_pass("vjp")
def vjp_pass(graph: Graph, wrt: str | None = None) -> Graph:
    """Reverse-mode gradients with one seed input per output, with respect to every float parameter
    or those of ``wrt`` (``vjp{wrt=A+x0}``; see :func:`vjp`)."""
    return vjp(graph, _wrt_option("vjp", wrt))
