"""A tiny reference evaluator for tests: walk the nodes with each op's NumPy reference.

Arrays live in full-rank layout (one dimension per graph axis, size 1 where a
value does not vary); scalars too, as arrays of shape (1,)*ndim. ``call``
nodes are evaluated by recursion, as if inlined into the caller's axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gir.ir.graph import Graph, Value
from gir.ir.ops import get_op

NUMPY_DTYPE = {"bool": np.bool_, "i64": np.int64, "f32": np.float32, "f64": np.float64}


def full_rank(value: Any, v: Value, axes: tuple[str, ...]) -> np.ndarray:
    """``value`` (with one dimension per axis of ``v``'s type) in the layout of ``axes``."""
    arr = np.asarray(value, NUMPY_DTYPE[v.type.dtype])
    shape = [arr.shape[v.type.axes.index(a)] if a in v.type.axes else 1 for a in axes]
    return arr.reshape(shape)


def _run(graph: Graph, args: list[np.ndarray], axes: tuple[str, ...], env: dict[Value, np.ndarray]) -> list:
    env.update(zip(graph.inputs, args))
    for node in graph.nodes:
        ins = [env[v] for v in node.inputs]
        if node.op == "call":
            outs = _run(node.attr("callee"), ins, axes, env)
        else:
            attrs = {k: axes.index(v) if k == "axis" else v for k, v in node.attrs}
            with np.errstate(all="ignore"):
                outs = [get_op(node.op).reference(**attrs)(*ins)]
        for o, r in zip(node.outputs, outs):
            r = np.asarray(r, NUMPY_DTYPE[o.type.dtype])
            env[o] = r.reshape(r.shape + (1,) * (len(axes) - r.ndim)) if r.ndim < len(axes) else r
    return [env[v] for v in graph.outputs]


def evaluate(graph: Graph, inputs: Mapping[str, Any], *, values: bool = False) -> Any:
    """The outputs of ``graph`` (full-rank arrays) for ``inputs`` (name -> number or array).

    With ``values=True`` return the dict of every value computed, too.
    """
    env: dict[Value, np.ndarray] = {}
    args = [full_rank(inputs[v.name], v, graph.axes) for v in graph.inputs]
    outs = _run(graph, args, graph.axes, env)
    return (outs, env) if values else outs


def assert_same(a: list[np.ndarray], b: list[np.ndarray], rtol: float = 1e-12, atol: float = 1e-12) -> None:
    """Equal outputs up to rounding (nan equals nan), broadcast to a common shape."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = np.broadcast_arrays(x, y)
        np.testing.assert_allclose(x.astype(float), y.astype(float), rtol=rtol, atol=atol, equal_nan=True)
