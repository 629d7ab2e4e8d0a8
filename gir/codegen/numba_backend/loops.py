"""Scheduling for the Numba target: which values live in arrays, and which loop nest computes what.

The graph (calls inlined) is cut into *stages*, run in order:

- :class:`Scalars`: straight-line scalar code. Scalars that depend only on
  parameters and constants form the prologue, before every loop; scalars
  computed from a reduction follow that reduction.
- :class:`Nest`: a fused loop nest over the axes of its *roots* (the values
  it stores to arrays), in graph axis order, outermost first. Every other
  value in the nest is a scalar local computed at the loop level where it
  varies: a value over the first l axes of the nest at depth l (so a [T]
  value in a [T,E] nest is computed once per t, in the outer loop).
- :class:`Special`: a non-elementwise node (sum, mean, flip, and cumsum
  along an axis that is not the innermost) run as its own loop over arrays.

A cumulative sum along the innermost axis of its operand is a *scan*: it
fuses into a nest over exactly its axes as a running accumulator, and the
nest's inner loop then runs in the scan's direction (all scans of a nest run
the same way; the loop is never the parallel one). So a Shirley background
``S + p * cumsum(S)`` is one pass over the grid. Scans of one direction share
a nest; an elementwise root joins it only when it computes nothing but
additions and multiplications (heavier work stays in nests LLVM vectorizes).

A value is *materialized* (given an array) when it is a graph output, an
operand or result of a special node, a value used in a nest where its axes
are not a leading part of the nest's axes (an [E] value in a [T,E] nest is
computed once per energy in an [E] nest of its own, never per (t, E) point),
a scan that would not be innermost, or a value that two different nests
need. Everything else stays a scalar inside the one nest that uses it: no
temporaries.
"""

from __future__ import annotations

import attrs

from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import get_op
from gir.passes.dce import dce


@attrs.define
class Scalars:
    nodes: list[Node] = attrs.field(factory=list)


@attrs.define
class Nest:
    axes: tuple[str, ...]
    roots: list[Value] = attrs.field(factory=list)
    nodes: list[Node] = attrs.field(factory=list)  # in graph order
    reverse: bool | None = None  # the direction of the scans in the nest (None: no scans)

    def level(self, v: Value) -> int:
        """The loop depth at which ``v`` is computed (its axes lead the nest's)."""
        return len(v.type.axes)


@attrs.define
class Special:
    node: Node


Stage = Scalars | Nest | Special


@attrs.define
class Schedule:
    graph: Graph
    stages: list[Stage]
    arrays: set[Value]  # materialized values with axes (graph inputs included)


#: Ops an elementwise root may bring into a nest with a running sum (serial, never vectorized):
#: a few of them per point cost less than another pass over the arrays they read.
_LIGHT = frozenset({"add", "sub", "mul", "neg"})


def is_scan(node: Node) -> bool:
    """A cumsum along the innermost axis of its operand: it fuses into a nest."""
    return node.op == "cumsum" and node.attr("axis") == node.inputs[0].type.axes[-1]


def _fusible(node: Node) -> bool:
    return get_op(node.op).elementwise or is_scan(node)


def _is_prefix(axes: tuple[str, ...], of: tuple[str, ...]) -> bool:
    return of[: len(axes)] == axes


def schedule(graph: Graph) -> Schedule:
    """Stages and materialized values for a call-free ``graph`` (see the module docstring)."""
    graph = dce(graph)
    producer = graph.producers()
    order = {node: i for i, node in enumerate(graph.nodes)}
    arrays: set[Value] = {v for v in graph.inputs if v.type.axes}
    arrays |= {v for v in graph.outputs if v.type.axes and v in producer}
    for node in graph.nodes:
        if not _fusible(node):
            arrays |= {v for v in (*node.inputs, *node.outputs) if v.type.axes}
        elif is_scan(node):  # a running sum is serial: its operand gets a nest LLVM can vectorize
            arrays.add(node.inputs[0])
    while True:
        cones, misplaced = _cones(graph, arrays, producer, order)
        if misplaced:
            arrays |= misplaced
            continue
        stages, nest_of = _place(graph, arrays, cones, order)
        shared = _shared(cones, nest_of)
        if not shared:
            return Schedule(graph, stages, arrays)
        arrays |= shared


def _cones(graph: Graph, arrays: set[Value], producer, order) -> tuple[dict[Value, list[Node]], set[Value]]:
    """For each root (a materialized value a fusible node makes) the nodes its nest computes.

    Also returns the values a cone reaches that cannot be computed inside the
    root's nest: axes that do not lead the root's, scans that would not be
    innermost or would run against the direction of another scan.
    """
    cones: dict[Value, list[Node]] = {}
    misplaced: set[Value] = set()
    for node in graph.nodes:
        if not _fusible(node):
            continue
        for root in node.outputs:
            if root not in arrays:
                continue
            seen: set[Node] = set()
            stack = [node]
            while stack:
                n = stack.pop()
                if n in seen:
                    continue
                seen.add(n)
                for v in n.inputs:
                    p = producer.get(v)
                    if p is None or not v.type.axes or v in arrays or not _fusible(p):
                        continue
                    inner = v.type.axes == root.type.axes
                    if _is_prefix(v.type.axes, root.type.axes) and (inner or not is_scan(p)):
                        stack.append(p)
                    else:
                        misplaced.add(v)
            cone = sorted(seen, key=order.__getitem__)
            scans = [n for n in cone if is_scan(n)]
            if scans:  # one direction per nest: the scan nearest the root wins
                direction = scans[-1].attr("reverse")
                misplaced |= {n.output for n in scans if n.attr("reverse") != direction}
            cones[root] = cone
    return cones, misplaced


def _direction(cone: list[Node]) -> bool | None:
    for n in cone:
        if is_scan(n):
            return n.attr("reverse")
    return None


def _place(graph: Graph, arrays: set[Value], cones, order) -> tuple[list[Stage], dict[Value, int]]:
    """Put scalar nodes, roots and special nodes into stages, in graph order."""
    prologue = Scalars()
    stages: list[Stage] = [prologue]
    where: dict[Value, int] = {v: -1 for v in graph.inputs}  # stage index that makes a value
    nest_of: dict[Value, int] = {}

    def deps(nodes: list[Node], inside: set[Value]) -> int:
        """The latest stage among the values ``nodes`` read from outside ``inside``."""
        last = -1
        for n in nodes:
            for v in n.inputs:
                if v not in inside:
                    last = max(last, where[v])
        return last

    for node in graph.nodes:
        if not _fusible(node):
            stages.append(Special(node))
            for v in node.outputs:
                where[v] = len(stages) - 1
            continue
        if not node.outputs[0].type.axes:  # a scalar node
            last = deps([node], set())
            if last <= 0:
                prologue.nodes.append(node)
            elif not isinstance(stages[-1], Scalars):
                stages.append(Scalars())
            if last > 0:
                stages[-1].nodes.append(node)
            for v in node.outputs:
                where[v] = 0 if last <= 0 else len(stages) - 1
            continue
        for root in node.outputs:
            if root not in arrays:
                continue
            cone = cones[root]
            inside = {v for n in cone for v in n.outputs}
            last = deps(cone, inside)
            direction = _direction(cone)
            light = direction is None and all(n.op in _LIGHT for n in cone)
            target = None
            for i in range(len(stages) - 1, max(last, 0) - 1, -1):
                st = stages[i]
                if isinstance(st, Nest) and st.axes == root.type.axes:
                    if st.reverse == direction or (light and st.reverse is not None):
                        target = i
                        break
            if target is None:
                stages.append(Nest(root.type.axes))
                target = len(stages) - 1
            nest = stages[target]
            if direction is not None:
                nest.reverse = direction
            nest.roots.append(root)
            have = set(nest.nodes)
            nest.nodes.extend(n for n in cone if n not in have)
            nest.nodes.sort(key=order.__getitem__)
            for n in cone:
                for v in n.outputs:
                    where.setdefault(v, target)
            where[root] = target
            nest_of[root] = target
    return stages, nest_of


def _shared(cones: dict[Value, list[Node]], nest_of: dict[Value, int]) -> set[Value]:
    """Inline values that two different nests would compute: they get arrays.

    Only the frontier is returned (shared values read by some unshared node):
    materializing those usually takes their ancestors out of the other cones.
    """
    homes: dict[Value, set[int]] = {}
    readers: dict[Value, set[Value]] = {}
    for root, nodes in cones.items():
        for node in nodes:
            for v in node.outputs:
                if v is not root:
                    homes.setdefault(v, set()).add(nest_of[root])
            for v in node.inputs:
                readers.setdefault(v, set()).add(node.output)
    shared = {v for v, h in homes.items() if len(h) > 1}
    return {v for v in shared if any(r not in shared for r in readers.get(v, ()))}
