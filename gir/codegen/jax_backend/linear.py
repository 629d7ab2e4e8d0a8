"""A linear map with a given transpose, as a JAX primitive that jits, vmaps and transposes.

``apply(pair, residuals, linear)`` evaluates ``pair.forward(residuals, linear)``,
a function linear in ``linear`` (lists of arrays in, a list out). Reverse mode
transposes it to ``pair.transpose(residuals, cotangents)`` instead of
differentiating the forward code, so a custom JVP rule built on it gives JAX's
forward mode one computation (a forward-mode derivative graph) and its reverse
mode another (a reverse-mode graph). ``jax.custom_derivatives.linear_call``
does the same but has no batching rule; this primitive batches by mapping both
functions (every linear argument batched, so the transpose maps one to one).

The map is linear in ``linear`` only: differentiating it with respect to the
residuals (second derivatives) raises a :class:`gir.GirError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from gir.errors import GirError

Arrays = list[Any]


@dataclass(frozen=True, eq=False)
class LinearPair:
    """A linear map ``forward(residuals, linear) -> outputs`` and its transpose
    ``transpose(residuals, cotangents) -> linear cotangents`` (hashed by identity)."""

    forward: Callable[[Arrays, Arrays], Arrays]
    transpose: Callable[[Arrays, Arrays], Arrays]

    def swapped(self) -> LinearPair:
        return LinearPair(self.transpose, self.forward)

    @cached_property
    def compiled(self) -> Callable[[Arrays, Arrays], Arrays]:
        """``forward`` jitted, for evaluation outside a trace (eager mode)."""
        return jax.jit(self.forward)


linear_p = Primitive("gir_linear")
linear_p.multiple_results = True


def apply(pair: LinearPair, residuals: Sequence[Any], linear: Sequence[Any]) -> Arrays:
    """``pair.forward(residuals, linear)``, transposed by ``pair.transpose`` in reverse mode."""
    return linear_p.bind(*residuals, *linear, pair=pair, num_res=len(residuals))


def _body(*args: Any, pair: LinearPair, num_res: int) -> Arrays:
    return list(pair.forward(list(args[:num_res]), list(args[num_res:])))


def _impl(*args: Any, pair: LinearPair, num_res: int) -> Arrays:
    return list(pair.compiled(list(args[:num_res]), list(args[num_res:])))


def _abstract(*avals: Any, pair: LinearPair, num_res: int) -> list[Any]:
    shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals]
    out = jax.eval_shape(lambda *a: _body(*a, pair=pair, num_res=num_res), *shapes)
    return [jax.core.ShapedArray(o.shape, o.dtype) for o in out]


def _transpose(cts: Sequence[Any], *args: Any, pair: LinearPair, num_res: int) -> list[Any]:
    residuals = args[:num_res]
    cts = [jnp.zeros(ct.aval.shape, ct.aval.dtype) if type(ct) is ad.Zero else ct for ct in cts]
    return [None] * num_res + apply(pair.swapped(), residuals, cts)


def _batch(args: Sequence[Any], dims: Sequence[Any], pair: LinearPair, num_res: int):
    size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
    mapped = [d is not None for d in dims]
    moved = [jnp.moveaxis(a, d, 0) if m else a for a, d, m in zip(args, dims, mapped, strict=True)]
    residuals, linear = moved[:num_res], moved[num_res:]
    res_axes = [0 if m else None for m in mapped[:num_res]]
    linear = [a if m else jnp.broadcast_to(a, (size, *a.shape)) for a, m in zip(linear, mapped[num_res:])]
    batched = LinearPair(
        jax.vmap(pair.forward, in_axes=(res_axes, 0)), jax.vmap(pair.transpose, in_axes=(res_axes, 0))
    )
    out = apply(batched, residuals, linear)
    return out, [0] * len(out)


def _jvp(primals: Sequence[Any], tangents: Sequence[Any], pair: LinearPair, num_res: int):
    if any(type(t) is not ad.Zero for t in tangents[:num_res]):
        raise GirError(
            "second derivatives of a gir executable are not available in JAX: its derivatives are "
            "gir's own first-order derivative graphs"
        )
    residuals = primals[:num_res]
    linear = [jnp.zeros(t.aval.shape, t.aval.dtype) if type(t) is ad.Zero else t for t in tangents[num_res:]]
    return apply(pair, residuals, primals[num_res:]), apply(pair, residuals, linear)


linear_p.def_impl(_impl)
linear_p.def_abstract_eval(_abstract)
mlir.register_lowering(linear_p, mlir.lower_fun(_body, multiple_results=True))
ad.primitive_transposes[linear_p] = _transpose
ad.primitive_jvps[linear_p] = _jvp
batching.primitive_batchers[linear_p] = _batch
