"""An executable of a JAX target as a pure JAX function: jit, vmap, grad, jacfwd and jacrev.

:func:`traceable` builds ``f(theta, arrays) -> outputs`` over a graph's inputs
(``theta`` the parameter vector, ``arrays`` the array inputs by name, each with
one dimension per axis of its type; outputs likewise on their own axes). The
primal is the artifact's traced function. Its derivatives are gir's own
derivative graphs, compiled for the same target: a ``jax.custom_jvp`` rule
whose tangent is a :mod:`linear map <gir.codegen.jax_backend.linear>` that
forward mode evaluates with the forward-mode graph (every column of the
Jacobian, contracted with the tangent) and reverse mode transposes into the
reverse-mode graph (one sweep per cotangent). Derivatives are taken with
respect to ``theta`` only: a tangent on an array input raises a
:class:`gir.GirError`, as do second derivatives.

The function computes in the precision JAX traces in: float64 needs
``jax_enable_x64`` (globally, or the scoped ``jax.enable_x64(True)`` around
the program).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from gir.codegen.jax_backend.linear import LinearPair, apply
from gir.errors import InputError
from gir.ir.graph import Graph

Arrays = Mapping[str, Any]


def to_layout(value: Any, axes: tuple[str, ...], graph: Graph) -> Any:
    """A value over its own ``axes`` in ``graph``'s full-rank layout (size 1 along the other axes)."""
    if not axes:
        return value
    order = [a for a in graph.axes if a in axes]
    value = jnp.transpose(value, [axes.index(a) for a in order]) if list(axes) != order else value
    sizes = dict(zip(order, value.shape, strict=True))
    return jnp.reshape(value, tuple(sizes.get(a, 1) for a in graph.axes))


def from_layout(value: Any, axes: tuple[str, ...], graph: Graph, sizes: Mapping[str, int]) -> Any:
    """A result in ``graph``'s full-rank layout as an array over its own ``axes`` (0-d for a scalar)."""
    order = [a for a in graph.axes if a in axes]
    layout = tuple(sizes[a] if a in axes else 1 for a in graph.axes)
    value = jnp.reshape(jnp.broadcast_to(value, layout), tuple(sizes[a] for a in order))
    return jnp.transpose(value, [order.index(a) for a in axes]) if list(axes) != order else value


def spread(value: Any, axes: tuple[str, ...], to: tuple[str, ...], sizes: Mapping[str, int]) -> Any:
    """A value over ``axes`` (a subset of ``to``) broadcast over ``to``."""
    order = [a for a in to if a in axes]
    value = jnp.transpose(value, [axes.index(a) for a in order]) if list(axes) != order else value
    value = jnp.reshape(value, tuple(sizes[a] if a in axes else 1 for a in to))
    return jnp.broadcast_to(value, tuple(sizes[a] for a in to))


def axis_sizes(graph: Graph, arrays: Arrays) -> dict[str, int]:
    """Axis lengths of the array inputs (their shapes are static under tracing too)."""
    sizes: dict[str, int] = {}
    for v in graph.arrays:
        sizes.update(zip(v.type.axes, jnp.shape(arrays[v.name]), strict=True))
    return sizes


def evaluate(graph: Graph, function: Callable, named: Arrays, sizes: Mapping[str, int]) -> list[Any]:
    """``function`` (a graph's traced function) at the inputs ``named``, outputs on their own axes."""
    args = [to_layout(named[v.name], v.type.axes, graph) for v in graph.inputs]
    outs = function(*args)
    return [from_layout(o, v.type.axes, graph, sizes) for o, v in zip(outs, graph.outputs, strict=True)]


class Derivatives:
    """The forward- and reverse-mode graphs of one graph, with their traced functions."""

    def __init__(self, graph: Graph, forward: tuple[Graph, Callable], reverse: tuple[Graph, Callable]):
        self.graph = graph
        self.params = tuple(v.name for v in graph.params)
        self.arrays = tuple(v.name for v in graph.arrays)
        self.forward, self.reverse = forward, reverse

    def named(self, theta: Any, arrays: Arrays) -> dict[str, Any]:
        """The graph's inputs by name: the parameters from ``theta`` and the arrays."""
        return {**{name: theta[i] for i, name in enumerate(self.params)}, **arrays}

    def residuals(self, theta: Any, arrays: Arrays) -> list[Any]:
        return [theta, *(arrays[name] for name in self.arrays)]

    def unpack(self, residuals: list[Any]) -> tuple[Any, dict[str, Any]]:
        return residuals[0], dict(zip(self.arrays, residuals[1:], strict=True))

    def tangents(self, residuals: list[Any], linear: list[Any]) -> list[Any]:
        """d outputs for the parameter tangent ``linear[0]``: the Jacobian's columns contracted."""
        (theta, arrays), (t,) = self.unpack(residuals), linear
        graph, fn = self.forward
        sizes = axis_sizes(self.graph, arrays)
        outs = evaluate(graph, fn, self.named(theta, arrays), sizes)
        n, p = len(self.graph.outputs), len(self.params)
        result = []
        for j, v in enumerate(self.graph.outputs):
            if not p:
                result.append(jnp.zeros_like(outs[j]))
                continue
            columns = [
                spread(outs[i], graph.outputs[i].type.axes, v.type.axes, sizes)
                for i in range(n + j * p, n + (j + 1) * p)
            ]
            result.append(jnp.stack(columns, axis=-1) @ t)  # under vmap (jacfwd): one matrix product
        return result

    def cotangents(self, residuals: list[Any], cts: list[Any]) -> list[Any]:
        """The gradient of sum_j ct_j * output_j with respect to theta (one reverse sweep)."""
        theta, arrays = self.unpack(residuals)
        graph, fn = self.reverse
        seeds = [v.name for v in graph.inputs[len(self.graph.inputs) :]]
        named = {**self.named(theta, arrays), **dict(zip(seeds, cts, strict=True))}
        outs = evaluate(graph, fn, named, axis_sizes(self.graph, arrays))
        grads = outs[len(self.graph.outputs) :]
        return [jnp.stack(grads).astype(theta.dtype) if grads else jnp.zeros_like(theta)]


def traceable(graph: Graph, primal: Callable, derivatives: Derivatives) -> Callable[[Any, Arrays], list[Any]]:
    """``f(theta, arrays) -> [outputs on their own axes]``, differentiable in ``theta`` by gir's graphs."""
    pair = LinearPair(derivatives.tangents, derivatives.cotangents)

    @jax.custom_jvp
    def f(theta: Any, arrays: dict[str, Any]) -> list[Any]:
        return evaluate(graph, primal, derivatives.named(theta, arrays), axis_sizes(graph, arrays))

    def f_jvp(primals: tuple, tangents: tuple) -> tuple:
        (theta, arrays), (t_theta, t_arrays) = primals, tangents
        moving = sorted(k for k, t in t_arrays.items() if not isinstance(t, SymbolicZero))
        if moving:
            raise InputError(
                f"derivatives with respect to the array input {moving[0]!r} are not available: "
                "a gir executable is differentiated with respect to theta; pass arrays as constants"
            )
        if isinstance(t_theta, SymbolicZero):
            t_theta = jnp.zeros(t_theta.shape, t_theta.dtype)
        return f(theta, arrays), apply(pair, derivatives.residuals(theta, arrays), [t_theta])

    f.defjvp(f_jvp, symbolic_zeros=True)
    return jax.jit(f)
