"""Linear-parameter analysis: the parameters a graph's outputs are jointly affine in.

Variable projection (``gir.fit.least_squares(..., varpro=True)``) solves the
parameters a model is *jointly* linear in (amplitudes, offsets) by linear
least squares inside each step of the nonlinear optimizer. This module finds
them from the IR alone.

The analysis propagates the polynomial degree of every value in a candidate
set of parameters through the graph (calls are inlined first):

- inputs: 1 for a candidate, 0 for anything else; constants and any op of
  degree-0 values: 0;
- an op with a ``linear`` rule in the registry (``add``, ``sub``, ``neg``,
  ``sum``, ``mean``, ``cumsum``, ``flip``, ``bcast`` in its first operand,
  ``where`` in its branches): the largest degree of the operands it is linear
  in, if its other operands (but shape-only ones) have degree 0;
- an op with a ``degree`` rule: that rule (``mul``: the sum of the degrees;
  ``pow`` with a constant non-negative integer exponent k: k times the degree
  of the base; ``div``: the degree of the numerator when the denominator has
  degree 0);
- anything else (``exp``, ``sqrt``, comparisons, the condition of ``where``,
  a denominator of degree > 0, ...) of a value of degree > 0: nonlinear
  (``inf``).

Both rules are fields of the op's definition (:meth:`gir.ir.ops.OpDef.degree_of`),
so a new op gets the right answer from its ``linear`` rule alone.

The outputs are jointly affine in the set when their degree is at most 1. The
degree is an upper bound (no cancellation is assumed), so the answer is safe:
a set reported linear is linear. Shirley's ``pShirley * cumsum(peaks)``
multiplies pShirley with every peak amplitude, so pShirley is linear on its
own and so is each amplitude, but not together; :func:`linear_parameters`
finds that and picks a maximal jointly linear set.

Since every formal monomial of the expanded expression has degree at most 1
in a set exactly when it has at most 1 in each single parameter and each pair
of the set, joint linearity is a pairwise property: the greedy choice works on
the graph of pairwise conflicts.

This is an analysis, not a transformation: graph passes return graphs, so it
is a set of functions over a graph (``linear_parameters(graph)``), not a
named pass in a pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from gir.ir.graph import Graph, Value
from gir.ir.ops import get_op
from gir.ir.types import FLOATS
from gir.passes.inline import inline

#: The degree of a value that is not a polynomial in the candidates.
NONLINEAR = math.inf


def _constant(graph_producers: dict[Value, object], v: Value) -> float | None:
    node = graph_producers.get(v)
    if node is not None and node.op == "const":
        return node.attr("value")
    return None


def polynomial_degrees(graph: Graph, params: Iterable[str]) -> dict[Value, float]:
    """The polynomial degree in ``params`` of every value of ``inline(graph)``.

    Returns a map from the values of the inlined graph (its inputs, node
    results and outputs) to 0, 1, 2, ... or :data:`NONLINEAR`.
    """
    g = inline(graph)
    return _degrees(g, set(params))


def _degrees(g: Graph, params: set[str]) -> dict[Value, float]:
    deg: dict[Value, float] = {v: (1 if v.name in params and not v.type.axes else 0) for v in g.inputs}
    producers = g.producers()
    for node in g.nodes:
        ins = [deg.get(v, 0) for v in node.inputs]
        d = get_op(node.op).degree_of(ins, lambda i, node=node: _constant(producers, node.inputs[i]))
        for o in node.outputs:
            deg[o] = d
    return deg


def output_degree(graph: Graph, params: Iterable[str]) -> float:
    """The largest degree in ``params`` of the graph's outputs (0, 1, 2, ... or inf)."""
    g = inline(graph)
    return _output_degree(g, set(params))


def _output_degree(g: Graph, params: set[str]) -> float:
    deg = _degrees(g, params)
    return max((deg.get(v, 0) for v in g.outputs), default=0)


def is_jointly_linear(graph: Graph, params: Iterable[str]) -> bool:
    """Whether every output of ``graph`` is affine in ``params`` jointly."""
    return output_degree(graph, params) <= 1


def _candidates(g: Graph, candidates: Iterable[str] | None) -> list[str]:
    names = [p.name for p in g.params if p.type.dtype in FLOATS]
    if candidates is None:
        return names
    wanted = list(dict.fromkeys(candidates))
    return [n for n in wanted if n in names]


def linear_parameters(graph: Graph, candidates: Sequence[str] | None = None) -> tuple[str, ...]:
    """A maximal set of parameters the graph's outputs are jointly affine in.

    ``candidates`` limits (and orders) the parameters considered (default:
    every float parameter, in graph order); names that are not parameters of
    the graph are ignored. The choice is greedy on the pairwise conflicts:
    the parameter with the fewest conflicts first, ties in candidate order
    (so amplitudes, declared first, win over a Shirley factor). The result
    keeps candidate order.
    """
    g = inline(graph)
    names = _candidates(g, candidates)
    singles = [p for p in names if _output_degree(g, {p}) <= 1]
    conflicts: dict[str, set[str]] = {p: set() for p in singles}
    for i, p in enumerate(singles):
        for q in singles[i + 1 :]:
            if _output_degree(g, {p, q}) > 1:
                conflicts[p].add(q)
                conflicts[q].add(p)
    chosen: list[str] = []
    left = list(singles)
    while left:
        best = min(left, key=lambda p: (len(conflicts[p] & set(left)), singles.index(p)))
        chosen.append(best)
        left = [p for p in left if p != best and p not in conflicts[best]]
    if _output_degree(g, set(chosen)) > 1:  # cannot happen for polynomial degrees; stay safe
        safe: list[str] = []
        for p in sorted(chosen, key=singles.index):
            if _output_degree(g, {*safe, p}) <= 1:
                safe.append(p)
        chosen = safe
    order = {p: i for i, p in enumerate(names)}
    return tuple(sorted(chosen, key=order.__getitem__))
