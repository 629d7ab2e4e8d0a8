"""simplify: algebraic identities as a group of small rewrites, with constant folding.

Exact rules always apply. Some identities hold only for finite values: with
``finite_math`` (like a C compiler's ``-ffinite-math-only``: the program
promises no value is ever inf or nan) they apply everywhere; without it
``x*0 -> 0``, ``x-x -> 0`` and ``x**0.5 -> sqrt x`` apply only where the
operands are provably finite, and ``exp(log x) -> x``, ``log(exp x) -> x``,
``x**-0.5 -> 1/sqrt x`` and ``x/y -> x*(1/y)`` (where ``y`` varies over fewer
axes than the result, or ``1/y`` is computed anyway; like ``-freciprocal-math``:
``1/y`` overflows for a subnormal ``y`` where ``x/y`` may not) not at all.
Combining constants, ``x/c -> x*(1/c)`` (for a finite, normal ``1/c``) and
the reciprocal rule may change the last bits of a result, as any
reassociation does.

The rewrites run together as the group ``simplify`` (with ``fold``), declared in
:mod:`gir.passes.builtin`; each also runs alone by its name.
"""

from __future__ import annotations

import math

import numpy as np

from gir.ir.graph import Node, Value
from gir.ir.ops import KEEPS_FINITE, get_op
from gir.passes.base import rewrite
from gir.passes.driver import RewriteBuilder
from gir.passes.fold import PYTHON_TYPE

#: Ops whose result is finite when their operands are (``keeps_finite`` in their definitions).
BOUNDED = KEEPS_FINITE


def is_finite(v: Value, b: RewriteBuilder, depth: int = 8) -> bool:
    """Whether ``v`` is provably finite: integers, booleans, finite constants, and bounded
    ops (sin, tanh, where, min, ...) of finite values. ``sin(inf)`` is nan, so
    a bounded op is finite only if its operands are."""
    if v.type.dtype in ("bool", "i64"):
        return True
    p = b.producer(v)
    if p is None or depth == 0:
        return False
    if p.op == "const":
        return math.isfinite(p.attr("value"))
    return p.op in BOUNDED and all(is_finite(x, b, depth - 1) for x in p.inputs)


def _same(node: Node, v: Value | None) -> Value | None:
    """``v`` if it has the dtype of ``node``'s result (a replacement must), else None."""
    return v if v is not None and v.type.dtype == node.output.type.dtype else None


def _const(node: Node, b: RewriteBuilder, value: float) -> Value | None:
    """A constant ``value`` of ``node``'s result dtype (None for f32, which constants cannot hold)."""
    kind = PYTHON_TYPE.get(node.output.type.dtype)
    return b.const(kind(value)) if kind in (int, float) else None


def _rebuild(node: Node, b: RewriteBuilder, inputs: list[Value]) -> Value | None:
    """``node``'s op over ``inputs`` (the single input itself if only one is left)."""
    if len(inputs) == 1:
        return _same(node, inputs[0])
    return _same(node, b.op(node.op, *inputs, **node.attributes))


# -- add and mul ----------------------------------------------------------------


@rewrite("add", "mul")
def combine_constants(node: Node, b: RewriteBuilder) -> Value | None:
    """``x + 1 + y + 2 -> x + y + 3``: all constant operands of an n-ary add/mul become one, last."""
    consts = [v for v in node.inputs if b.constant(v) is not None]
    if len(consts) < 2 or len(consts) == len(node.inputs):
        return None
    arrays = [np.asarray(b.constant(v), PYTHON_TYPE[v.type.dtype]) for v in consts]
    with np.errstate(all="ignore"):
        value = get_op(node.op).reference()(*arrays)
    kind = float if any(v.type.dtype == "f64" for v in consts) else int
    others = [v for v in node.inputs if b.constant(v) is None]
    return _rebuild(node, b, [*others, b.const(kind(value))])


@rewrite("add", "mul")
def drop_units(node: Node, b: RewriteBuilder) -> Value | None:
    """``x + 0 -> x``, ``x * 1 -> x`` (when the dtype stays)."""
    unit = 0 if node.op == "add" else 1
    kept = [v for v in node.inputs if b.constant(v) != unit]
    if len(kept) == len(node.inputs):
        return None
    return _rebuild(node, b, kept or [node.inputs[0]])


@rewrite("mul")
def mul_zero(node: Node, b: RewriteBuilder, finite_math: bool = False) -> Value | None:
    """``x * 0 -> 0`` for finite ``x`` (``inf * 0`` is nan)."""
    if not any(b.constant(v) == 0 for v in node.inputs):
        return None
    if not (finite_math or all(is_finite(v, b) for v in node.inputs)):
        return None
    return _const(node, b, 0)


# -- sub, neg, div --------------------------------------------------------------


@rewrite("sub")
def sub_self(node: Node, b: RewriteBuilder, finite_math: bool = False) -> Value | None:
    """``x - x -> 0`` for finite ``x`` (``inf - inf`` is nan)."""
    x, y = node.inputs
    if x is not y or not (finite_math or is_finite(x, b)):
        return None
    return _const(node, b, 0)


@rewrite("sub")
def sub_constant(node: Node, b: RewriteBuilder) -> Value | None:
    """``x - 0 -> x``, ``0 - x -> -x``, ``x - c -> x + (-c)`` (exact; lets constants combine)."""
    x, y = node.inputs
    cx, cy = b.constant(x), b.constant(y)
    if cy is not None and cx is None:
        if cy == 0:
            return _same(node, x)
        return _same(node, b.op("add", x, b.const(-cy)))
    if cx == 0 and cy is None:
        return _same(node, b.op("neg", y))
    return None


@rewrite("neg")
def neg_neg(node: Node, b: RewriteBuilder) -> Value | None:
    """``-(-x) -> x``."""
    p = b.producer(node.inputs[0])
    return p.inputs[0] if p is not None and p.op == "neg" else None


@rewrite("div")
def div_constant(node: Node, b: RewriteBuilder) -> Value | None:
    """``x / c -> x * (1/c)`` for a constant ``c`` whose reciprocal is finite and nonzero."""
    x, c = node.inputs
    value = b.constant(c)
    if value is None or value == 0 or b.constant(x) is not None:
        return None
    inv = 1.0 / value
    if not math.isfinite(inv) or inv == 0:
        return None
    return _same(node, b.op("mul", x, b.const(inv)))


@rewrite("div")
def div_reciprocal(node: Node, b: RewriteBuilder, finite_math: bool = False) -> Value | None:
    """``x / y -> x * (1/y)`` where that saves divisions: ``y`` varies over fewer axes than the
    result (``(E - x0) / F``: one division, then a multiplication per point), or ``1/y`` is
    computed anyway (a quotient rule next to its value). With ``finite_math`` only."""
    x, y = node.inputs
    if not finite_math or node.output.type.dtype != "f64" or y.type.dtype != "f64" or b.constant(x) == 1.0:
        return None
    if b.constant(y) is not None:
        return None
    fewer_axes = len(y.type.axes) < len(node.output.type.axes)
    if fewer_axes or any(
        u.op == "div" and u.inputs[1] is y and b.constant(u.inputs[0]) == 1.0 for u in b.users(y)
    ):  # cse merges the new reciprocal with the existing one
        return _same(node, b.op("mul", x, b.op("div", b.const(1.0), y)))
    return None


# -- powers, exp and log ----------------------------------------------------------


@rewrite("pow")
def pow_constant(node: Node, b: RewriteBuilder, finite_math: bool = False) -> Value | None:
    """``x**n`` for integer ``|n| <= 4`` into products (negative: ``1/...``); ``x**0.5 -> sqrt x``,
    ``x**-0.5 -> 1/sqrt x`` (these for finite ``x``: ``(-inf)**0.5`` is inf, ``sqrt(-inf)`` nan)."""
    x, e = node.inputs
    n = b.constant(e)
    if n is None or isinstance(n, bool) or not math.isfinite(n):
        return None
    if n == 0:
        return _const(node, b, 1)  # nan**0 is 1 too
    if x.type.dtype != node.output.type.dtype:
        return None
    if n in (0.5, -0.5):
        if not (finite_math or (n == 0.5 and is_finite(x, b))):
            return None  # 1/sqrt(-0.0) is -inf where (-0.0)**-0.5 is inf
        root = b.op("sqrt", x)
        return root if n > 0 else b.op("div", b.const(1.0), root)
    if n != int(n) or abs(n) > 4:
        return None
    k = abs(int(n))
    prod = x if k == 1 else b.op("mul", *[x] * k)
    return prod if n > 0 else b.op("div", b.const(1.0), prod)


@rewrite("exp")
def exp_log(node: Node, b: RewriteBuilder, finite_math: bool = False) -> Value | None:
    """``exp(log x) -> x`` (only with finite_math: for ``x < 0`` the left side is nan)."""
    p = b.producer(node.inputs[0])
    return _same(node, p.inputs[0]) if finite_math and p is not None and p.op == "log" else None


@rewrite("log")
def log_exp(node: Node, b: RewriteBuilder, finite_math: bool = False) -> Value | None:
    """``log(exp x) -> x`` (only with finite_math: ``exp`` overflows to inf for ``x > 709``)."""
    p = b.producer(node.inputs[0])
    return _same(node, p.inputs[0]) if finite_math and p is not None and p.op == "exp" else None


# -- axes and selection -------------------------------------------------------------


@rewrite("flip")
def flip_flip(node: Node, b: RewriteBuilder) -> Value | None:
    """``flip(flip x) -> x`` and ``flip(cumsum(flip x)) -> cumsum(x, reverse)`` along one axis."""
    axis = node.attr("axis")
    p = b.producer(node.inputs[0])
    if p is None or p.attr("axis") != axis:
        return None
    if p.op == "flip":
        return p.inputs[0]
    inner = b.producer(p.inputs[0]) if p.op == "cumsum" else None
    if inner is not None and inner.op == "flip" and inner.attr("axis") == axis:
        return b.op("cumsum", inner.inputs[0], axis=axis, reverse=not p.attr("reverse"))
    return None


@rewrite("where")
def where_known(node: Node, b: RewriteBuilder) -> Value | None:
    """``where(true, a, b) -> a``, ``where(false, a, b) -> b``, ``where(c, a, a) -> a``."""
    cond, x, y = node.inputs
    c = b.constant(cond)
    if x is y:
        return x
    return None if c is None else _same(node, x if c else y)


# -- reductions along an axis: move out what does not vary along it --------------


def _split(v: Value, axis: str, b: RewriteBuilder) -> tuple[list[Value], list[Value], Value | None]:
    """``v == prod(num) / prod(den) * inner`` with num and den constant along ``axis``.

    Looks through products and through numerators of quotients; ``inner``
    is None when nothing varying along ``axis`` is left.
    """
    if axis not in v.type.axes:
        return [v], [], None
    p = b.producer(v)
    if p is not None and p.op == "mul":
        num, den, inner = [], [], []
        for x in p.inputs:
            n, d, i = _split(x, axis, b)
            num += n
            den += d
            inner += [i] if i is not None else []
        if not num and not den:
            return [], [], v
        return num, den, inner[0] if len(inner) == 1 else b.op("mul", *inner)
    if p is not None and p.op == "div":
        n, d, i = _split(p.inputs[0], axis, b)
        if axis not in p.inputs[1].type.axes:
            return n, [*d, p.inputs[1]], i
        if not n and not d:
            return [], [], v
        return n, d, b.op("div", i if i is not None else b.const(1.0), p.inputs[1])
    return [], [], v


@rewrite("cumsum", "sum", "mean")
def reduce_varying_part(node: Node, b: RewriteBuilder) -> Value | None:
    """``cumsum(a[T] * g[T,E] / d[T], E) -> a * cumsum(g, E) / d`` (and for sum and mean): factors
    constant along the axis leave the reduction, so it runs on fewer axes (exact up to rounding; a
    mean over depth of an amplitude profile times a peak averages only the profile)."""
    if node.output.type.dtype not in ("f32", "f64"):
        return None
    axis = node.attr("axis")
    num, den, inner = _split(node.inputs[0], axis, b)
    num, den = ([v for v in vs if b.constant(v) != 1] for vs in (num, den))
    if inner is None or not (num or den):
        return None
    out = b.op(node.op, inner, **node.attributes)
    if num:
        out = b.op("mul", *num, out)
    if den:
        out = b.op("div", out, den[0] if len(den) == 1 else b.op("mul", *den))
    return _same(node, out)


@rewrite("cumsum", "sum", "mean")
def distribute_reduction(node: Node, b: RewriteBuilder) -> Value | None:
    """``cumsum(a*g + c*h) -> cumsum(a*g) + cumsum(c*h)`` when every term has a factor constant
    along the axis, so that each reduction then runs on fewer axes."""
    axis = node.attr("axis")
    p = b.producer(node.inputs[0])
    if p is None or p.op != "add" or node.output.type.dtype not in ("f32", "f64"):
        return None
    for term in p.inputs:
        num, den, inner = _split(term, axis, b) if axis in term.type.axes else ([], [], None)
        if inner is None or not (num or den) or len(inner.type.axes) >= len(term.type.axes):
            return None
    return _same(node, b.op("add", *(b.op(node.op, t, **node.attributes) for t in p.inputs)))
