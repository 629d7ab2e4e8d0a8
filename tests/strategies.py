"""Hypothesis strategies for random gir graphs, shared by the IR, pass and backend tests.

``random_graphs()`` draws well-typed graphs, built node by node with
:class:`gir.Builder`, over a small fixed interface (by default)::

    params  a, b, c : f64                       the parameter vector theta
    arrays  x : f64[E],  t : f64[T],  z : f64[T,E]

A graph declares a random non-empty subset of these inputs in a random order.
When it has both axes the axis order is drawn too (``z`` then is ``f64[E,T]``
and the text shows ``axes [E,T]`` if that differs from the input order).
Graphs may return the same value twice, return an input, and contain dead
nodes and duplicate constants: all material for passes.

**Numerical safety contract.** Evaluate a drawn graph with finite inputs of
magnitude at most :data:`INPUT_BOUND` (see :func:`random_inputs`) on axes of
at most :data:`MAX_AXIS_LEN` points, and every value it computes is finite with
magnitude at most :data:`VALUE_BOUND`: no overflow, no division by zero, no
square root of a negative. Every op used is smooth except ``abs``,
``minimum``, ``maximum`` and ``where``. So every evaluator (the NumPy
reference, Numba, JAX, before or after any pass) must agree to rounding.

Each node's magnitude bound is tracked while drawing and an op is used only
where its result stays within the bounds. Ops drawn:

* ``add`` (2 or 3 operands), ``sub``, ``mul``, ``minimum``, ``maximum``
* ``neg``, ``abs``, ``sin``, ``cos``, ``tanh``, ``arctan``, ``exp`` (of values
  at most 5 in magnitude)
* ``sqrt(1 + u*u)`` and ``u / (1 + w*w)`` (with a fresh ``const 1.0`` each)
* ``where(cmp(p, q), r, s)`` with ``cmp`` one of ``lt le gt ge``
* ``sum``, ``mean``, ``cumsum`` (either direction), ``flip`` over an axis
* ``const``: floats in ``[-2, 2]`` and small ``i64`` integers
* ``call`` of a random callee graph (only with ``calls > 0``; callees may
  call callees of their own down to that depth)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from gir.ir.builder import Builder
from gir.ir.graph import Graph, Value
from gir.ir.types import Type

INPUT_BOUND = 2.0
MAX_AXIS_LEN = 16
VALUE_BOUND = 1e6
PARAMS = ("a", "b", "c")
ARRAYS: Mapping[str, tuple[str, ...]] = {"x": ("E",), "t": ("T",), "z": ("T", "E")}

_UNARY = {"neg": None, "abs": None, "sin": 1.0, "cos": 1.0, "tanh": 1.0, "arctan": math.pi / 2, "exp": None}
_BINARY = ("add", "sub", "mul", "minimum", "maximum")
_REDUCE = ("sum", "mean", "cumsum", "flip")


class _Pool:
    """The values drawn so far, each with a bound on its magnitude."""

    def __init__(self, draw: Any, b: Builder):
        self.draw, self.b = draw, b
        self.values: list[tuple[Value, float]] = []

    def add(self, v: Value, bound: float) -> Value:
        self.values.append((v, bound))
        return v

    def pick(self, max_bound: float = VALUE_BOUND, axes: Sequence[str] = (), f64: bool = False) -> tuple:
        """A value within ``max_bound`` that has ``axes`` (and dtype f64) with its bound.

        Recent values are drawn first, so graphs grow deep; ``(None, 0.0)`` if none fits.
        """
        fits = [
            (v, bd)
            for v, bd in self.values
            if bd <= max_bound and set(axes) <= set(v.type.axes) and (v.type.dtype == "f64" or not f64)
        ]
        if not fits:
            return None, 0.0
        return fits[-1 - self.draw(st.integers(0, len(fits) - 1))]

    def one(self) -> Value:
        return self.b.const(1.0)


def _step(pool: _Pool, budget: int, callees: list[tuple[Graph, dict[Value, float]]]) -> None:
    """Append one random op (or a small safe composite of at most ``budget`` nodes)."""
    draw, b = pool.draw, pool.b
    kinds = ["binary", "unary", "const", "reduce"] + ["where"] * (budget >= 2)
    kinds += ["sqrt", "div"] * (budget >= 4) + ["call"] * bool(callees)
    kind = draw(st.sampled_from(kinds))
    u, bu = pool.pick()
    if kind == "binary":
        op = draw(st.sampled_from(_BINARY))
        operands = [(u, bu)] + [pool.pick() for _ in range(draw(st.integers(1, 2)) if op == "add" else 1)]
        bounds = [bd for _, bd in operands]
        bound = {"add": sum(bounds), "sub": sum(bounds), "mul": math.prod(bounds)}.get(op, max(bounds))
        if bound <= VALUE_BOUND:
            pool.add(b.op(op, *(v for v, _ in operands)), bound)
            return
        kind = "unary"  # too large: fall back to a bounded op
    if kind == "reduce" and u.type.axes:
        op = draw(st.sampled_from(_REDUCE))
        bound = bu * MAX_AXIS_LEN if op in ("sum", "cumsum") else bu
        if bound <= VALUE_BOUND:
            extra = {"reverse": draw(st.booleans())} if op == "cumsum" else {}
            pool.add(b.op(op, u, axis=draw(st.sampled_from(u.type.axes)), **extra), bound)
            return
    if kind == "const":
        value = draw(st.floats(-INPUT_BOUND, INPUT_BOUND) | st.integers(-3, 3))
        pool.add(b.const(value), abs(value))
    elif kind == "where":
        cmp = b.op(draw(st.sampled_from(("lt", "le", "gt", "ge"))), u, pool.pick()[0])
        (r, br), (s, bs) = pool.pick(), pool.pick()
        pool.add(b.op("where", cmp, r, s), max(br, bs))
    elif kind == "sqrt":
        u, bu = pool.pick(math.sqrt(VALUE_BOUND - 1))
        pool.add(b.op("sqrt", b.op("add", pool.one(), b.op("mul", u, u))), math.sqrt(1 + bu * bu))
    elif kind == "div":
        w, _ = pool.pick(math.sqrt(VALUE_BOUND - 1))
        pool.add(b.op("div", u, b.op("add", pool.one(), b.op("mul", w, w))), bu)
    elif kind == "call":
        callee, bounds = draw(st.sampled_from(callees))
        args = [pool.pick(INPUT_BOUND, v.type.axes, f64=True)[0] for v in callee.inputs]
        for out, v in zip(b.call(callee, *args), callee.outputs):
            pool.add(out, bounds[v])
    else:  # unary, and the fallback of the kinds above
        op = draw(st.sampled_from(sorted(_UNARY)))
        if op == "exp" and bu > 5:
            op = "tanh"
        bound = math.exp(bu) if op == "exp" else _UNARY[op] or bu
        pool.add(b.op(op, u), bound)


def random_graphs(
    max_nodes: int = 12,
    *,
    min_nodes: int = 1,
    max_outputs: int = 2,
    calls: int = 0,
    params: Sequence[str] = PARAMS,
    arrays: Mapping[str, tuple[str, ...]] = ARRAYS,
    name: str = "main",
) -> st.SearchStrategy[Graph]:
    """Random well-typed, numerically safe graphs (see the module docstring).

    A graph has ``min_nodes`` to ``max_nodes`` nodes (a callee's body does not
    count) and 1 to ``max_outputs`` results; ``calls`` is the depth of nested
    callee graphs (0: no calls). ``params`` (scalar input names) and
    ``arrays`` (array input name -> axes) set the inputs to choose from.
    """
    return graphs_with_bounds(
        max_nodes,
        min_nodes=min_nodes,
        max_outputs=max_outputs,
        calls=calls,
        params=params,
        arrays=arrays,
        name=name,
    ).map(lambda gb: gb[0])


@st.composite
def graphs_with_bounds(
    draw: Any,
    max_nodes: int = 12,
    *,
    min_nodes: int = 1,
    max_outputs: int = 2,
    calls: int = 0,
    params: Sequence[str] = PARAMS,
    arrays: Mapping[str, tuple[str, ...]] = ARRAYS,
    name: str = "main",
) -> tuple[Graph, dict[Value, float]]:
    """Like :func:`random_graphs`, with the magnitude bounds the drawing tracked.

    The dict bounds every input, output and node result except the helper
    values inside the composite steps (``1 + w*w``, the comparisons).
    """
    if not params and not arrays:
        raise ValueError("a random graph needs at least one possible input")
    arr = draw(st.lists(st.sampled_from(sorted(arrays)), unique=True, min_size=not params)) if arrays else []
    par = draw(st.lists(st.sampled_from(params), unique=True, min_size=not arr)) if params else []
    names = draw(st.permutations(arr + par))
    used = sorted({a for n in arr for a in arrays[n]})
    order = tuple(draw(st.permutations(used)))
    b = Builder(order)
    pool = _Pool(draw, b)
    for n in names:
        axes = tuple(a for a in order if a in arrays[n]) if n in arrays else ()
        pool.add(b.input(n, Type("f64", axes)), INPUT_BOUND)
    callees = []
    for k in range(draw(st.integers(0, 2)) if calls > 0 else 0):
        one_axis = {n: ax for n, ax in arrays.items() if set(ax) <= set(used) and len(ax) == 1}
        callee = graphs_with_bounds(
            max(2, max_nodes // 2), calls=calls - 1, params=("p", "q"), arrays=one_axis, name=f"{name}_f{k}"
        )
        callees.append(draw(callee))
    target = draw(st.integers(min_nodes, max(min_nodes, max_nodes)))
    while len(b.nodes) < target:
        _step(pool, target - len(b.nodes), callees)
    outs = [pool.values[-1], *draw(st.lists(st.sampled_from(pool.values), max_size=max_outputs - 1))]
    return b.build([v for v, _ in outs], name=name), dict(pool.values)


def random_inputs(graph: Graph, max_len: int = 6) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs for ``graph`` that meet the safety contract: name -> float or array.

    Each axis gets one length in ``1..max_len`` (at most MAX_AXIS_LEN); an
    array has one dimension per axis of its type, in the type's order.
    """

    @st.composite
    def inputs(draw: Any) -> dict[str, Any]:
        n = min(max_len, MAX_AXIS_LEN)
        sizes = {a: draw(st.integers(1, n)) for a in graph.axes}
        element = st.floats(-INPUT_BOUND, INPUT_BOUND, allow_subnormal=False)
        out: dict[str, Any] = {}
        for v in graph.inputs:
            shape = tuple(sizes[a] for a in v.type.axes)
            values = draw(st.lists(element, min_size=math.prod(shape), max_size=math.prod(shape)))
            out[v.name] = np.array(values).reshape(shape) if shape else values[0]
        return out

    return inputs()
