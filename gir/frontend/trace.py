"""``gir.trace``: a NumPy-style Python function to a typed graph; ``@gir.component``.

::

    def glp(x, A, x0, F, m):
        u2 = ((x - x0) / F) ** 2
        return A * np.exp(-4 * np.log(2) * (1 - m) * u2) / (1 + 4 * m * u2)

    g = gir.trace(glp, x="E")      # x is an array on axis E; A, x0, F, m are f64 parameters

The function runs once, on tracers (see :mod:`gir.frontend.tracer`). Names
of the function's local variables become the names of the values they hold.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from types import CodeType
from typing import Any

import numpy as np

from gir.errors import GirError
from gir.frontend.tracer import ComplexTracer, Context, Tracer, _Traced, active_context
from gir.ir.builder import IDENT, Builder
from gir.ir.graph import Graph, Node, Value
from gir.ir.types import Type
from gir.ir.verify import verify

AXIS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def axis_order(
    arrays: Mapping[str, Any], axes: Iterable[str] | None
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Checked array declarations (name -> axes) and the graph's axis order."""
    declared: dict[str, tuple[str, ...]] = {}
    for name, spec in arrays.items():
        spec = (spec,) if isinstance(spec, str) else spec
        if not isinstance(spec, tuple | list) or not spec or not all(isinstance(a, str) for a in spec):
            raise GirError(f"array {name!r}: give its axis name or a tuple of axis names, e.g. {name}='E'")
        for a in spec:
            if not AXIS_NAME.match(a):
                raise GirError(f"array {name!r}: {a!r} is not a valid axis name")
        if len(set(spec)) != len(spec):
            raise GirError(f"array {name!r} repeats an axis: {tuple(spec)}")
        declared[name] = tuple(spec)
    used = list(dict.fromkeys(a for spec in declared.values() for a in spec))
    if axes is None:
        return declared, tuple(used)
    order = (axes,) if isinstance(axes, str) else tuple(axes)
    missing = [a for a in used if a not in order]
    if (
        missing
        or len(set(order)) != len(order)
        or not all(isinstance(a, str) and AXIS_NAME.match(a) for a in order)
    ):
        raise GirError(f"axes={order!r} must name each axis once, including {missing or used}")
    return declared, order


def new_trace(
    inputs: list[tuple[str, tuple[str, ...]]], order: tuple[str, ...]
) -> tuple[Context, dict[str, Tracer]]:
    """A context with graph inputs ``(name, axes)`` declared in order; their tracers by name."""
    b = Builder(order)
    ctx = Context(b)
    tracers = {}
    for name, axes in inputs:
        if not IDENT.match(name):
            raise GirError(f"input name {name!r} is not an identifier")
        axes = tuple(a for a in order if a in axes)
        tracers[name] = Tracer(ctx, b.input(name, Type("f64", axes)))
    return ctx, tracers


def finish(ctx: Context, result: Any, name: str, hints: Mapping[str, Any] | None = None) -> Graph:
    """The graph returning ``result`` (a tracer, number, or tuple of them), dead nodes dropped."""
    items = result if isinstance(result, tuple | list) else (result,)
    if not items:
        raise GirError(f"{name} returns an empty {type(result).__name__}; return at least one value")
    outputs = []
    for item in items:
        if isinstance(item, ComplexTracer):
            raise GirError(
                f"{name} returns a complex value; gir graphs return real values (take .real or .imag)"
            )
        if not isinstance(item, Tracer) and not _is_number(item):
            raise GirError(f"{name} returns {type(item).__name__!s}, not a traced value or a number")
        outputs.append(ctx.lift(item))
    b = ctx.builder
    live = set(outputs)
    kept: list[Node] = []
    for node in reversed(b.nodes):
        if live.intersection(node.outputs):
            kept.append(node)
            live.update(node.inputs)
    names = _value_names(hints or {}, set(b.inputs))
    renamed: dict[Value, Value] = {v: v for v in b.inputs}
    nodes = []
    for node in reversed(kept):
        outs = [Value(v.type, names.get(v, v.name)) for v in node.outputs]
        renamed.update(zip(node.outputs, outs))
        nodes.append(Node(node.op, [renamed[v] for v in node.inputs], outs, node.attrs))
    graph = Graph(b.inputs, nodes, [renamed[v] for v in outputs], name=name, axes=b.axes)
    return verify(graph)


def _is_number(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 0 and x.dtype.kind in "biuf"
    return isinstance(x, bool | int | float | np.bool_ | np.integer | np.floating)


def _value_names(hints: Mapping[str, Any], inputs: set[Value]) -> dict[Value, str]:
    names: dict[Value, str] = {}
    for var, obj in hints.items():
        parts = [(var, obj)]
        if isinstance(obj, ComplexTracer):
            parts = [(f"{var}_re", obj.re), (f"{var}_im", obj.im)]
        for name, part in parts:
            if isinstance(part, Tracer) and part.value not in inputs and IDENT.match(name):
                names.setdefault(part.value, name)
    return names


def graph_name(fn: Callable) -> str:
    name = getattr(fn, "__name__", "")
    return name if IDENT.match(name) and "." not in name else "main"


# -- calling the function ------------------------------------------------------------------------

_watched: list[tuple[CodeType, dict[str, Any]]] = []


def _profile(frame, event, arg) -> None:
    if event == "return":
        for code, store in _watched:
            if frame.f_code is code and not store:
                store.update(frame.f_locals)


def call_watching_locals(fn: Callable, args: list, kwargs: dict) -> tuple[Any, dict[str, Any]]:
    """``fn(*args, **kwargs)`` and its local variables at return (when no other profiler runs)."""
    code = getattr(fn, "__code__", None)
    previous = sys.getprofile()
    if code is None or previous not in (None, _profile):
        return fn(*args, **kwargs), {}
    store: dict[str, Any] = {}
    _watched.append((code, store))
    sys.setprofile(_profile)
    try:
        return fn(*args, **kwargs), store
    finally:
        _watched.pop()
        sys.setprofile(previous)


def trace(fn: Callable, /, *, axes: Iterable[str] | None = None, **arrays: str | tuple[str, ...]) -> Graph:
    """Trace ``fn`` into a :class:`~gir.ir.graph.Graph` named after it.

    Keyword arguments declare which parameters are arrays and on which axes
    (``x="E"``, ``grid=("T", "E")``); every other parameter is an ``f64``
    parameter (its default, if any, is ignored). Graph inputs follow the
    signature's order. The axis order is the order axes first appear in the
    declarations, or ``axes=``. ``fn`` may return one value or a tuple.
    """
    if isinstance(fn, Component):
        arrays = arrays or dict(fn.arrays)
        axes = fn.axes if axes is None else axes
        fn = fn.fn
    name = graph_name(fn)
    try:
        if isinstance(fn, np.ufunc) or inspect.isbuiltin(fn):
            raise TypeError
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        raise GirError(f"gir.trace needs a Python function, got {fn!r}") from None
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise GirError(f"{name}: gir.trace needs named parameters, not *{p.name} / **{p.name}")
    known = [p.name for p in params]
    for key in arrays:
        if key not in known:
            raise GirError(f"{key}={arrays[key]!r} names no parameter of {name}{tuple(known)}")
    declared, order = axis_order(arrays, axes)
    ctx, tracers = new_trace([(p, declared.get(p, ())) for p in known], order)
    args = [tracers[p.name] for p in params if p.kind != p.KEYWORD_ONLY]
    kwargs = {p.name: tracers[p.name] for p in params if p.kind == p.KEYWORD_ONLY}
    with ctx:
        result, local_vars = call_watching_locals(fn, args, kwargs)
    return finish(ctx, result, name, local_vars)


# -- components ----------------------------------------------------------------------------------


class Component:
    """A function traced once into its own graph, and called as a ``call`` node from other traces."""

    def __init__(self, fn: Callable, arrays: Mapping[str, Any], axes: Iterable[str] | None = None):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.arrays = dict(arrays)
        self.axes = None if axes is None else tuple(axes)
        self.signature = inspect.signature(fn)
        self._graph: Graph | None = None

    @property
    def graph(self) -> Graph:
        """The component's own graph (traced on first use)."""
        if self._graph is None:
            self._graph = trace(self.fn, axes=self.axes, **self.arrays)
        return self._graph

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = graph_name(self.fn)
        traced = [x for x in (*args, *kwargs.values()) if isinstance(x, _Traced)]
        ctx = traced[0].ctx if traced else active_context()
        if ctx is None:
            raise GirError(
                f"component {name} is a graph, not a NumPy function: call it inside gir.trace, "
                f"or compile it with gir.compile({name}.graph)"
            )
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise GirError(f"component {name}: {e}") from None
        bound.apply_defaults()
        graph = self.graph
        outs = ctx.call(graph, [bound.arguments[v.name] for v in graph.inputs])
        return outs[0] if len(outs) == 1 else outs

    def __repr__(self) -> str:
        return f"<gir.component {graph_name(self.fn)} {self.arrays}>"


def component(fn: Callable | None = None, /, *, axes: Iterable[str] | None = None, **arrays: Any):
    """Decorator: ``@gir.component(x="E")`` makes a reusable graph; ``.graph`` is its IR.

    Called with traced values inside another trace, it records ``call @name(...)``
    instead of inlining its body (the ``inline`` pass expands it later).
    """
    if fn is not None:
        return Component(fn, arrays, axes)
    return lambda f: Component(f, arrays, axes)
