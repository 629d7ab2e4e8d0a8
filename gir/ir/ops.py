"""The op registry: one definition per op.

An :class:`OpDef` holds everything the core knows about an op: its arity, the
attributes it takes, its type rule and its NumPy reference semantics, written
as a source template over ``np`` (NumPy) and ``sp`` (scipy.special). The NumPy
backend emits the template as is, constant folding and the tests evaluate it,
and array backends whose API mirrors NumPy's (JAX) reuse it with their own
``np``/``sp``; a backend overrides only the ops it must.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import scipy.special

from gir.errors import GirError
from gir.ir.types import BOOL, Type, as_float, promote, union_axes

#: A type rule: (input types, attributes, graph axis order) -> output types.
TypeRule = Callable[[Sequence[Type], Mapping[str, Any], tuple[str, ...]], list[Type]]
#: A NumPy template: a format string over {0}, {1}, ... and {attr}, or a function
#: (argument sources, attributes) -> source.
Template = str | Callable[[Sequence[str], Mapping[str, Any]], str]

REQUIRED = object()


@attrs.frozen(eq=False)
class OpDef:
    """The single definition of an op.

    ``arity`` is the number of inputs, or ``None`` for a variable number of
    at least ``min_arity`` (``add`` and ``mul`` are n-ary). ``attrs`` maps
    attribute names to ``(python type, default)``;
    the default ``REQUIRED`` makes the attribute mandatory. Attributes named
    ``axis`` hold axis names in the IR; backends see them as positions.
    """

    name: str
    arity: int | None
    infer: TypeRule
    numpy: Template | None
    attrs: Mapping[str, tuple[type | tuple[type, ...], Any]] = attrs.field(factory=dict)
    elementwise: bool = True
    commutative: bool = False
    min_arity: int = 0
    doc: str = ""
    #: Derivative rule of a nonlinear op: (builder, output, *inputs) -> the partial
    #: derivative of the output with respect to each input (None: zero or none).
    partials: Callable[..., list[Any]] | None = None
    #: Inputs the op is linear in (or "all"): its derivative applies the op to their
    #: tangents; other inputs pass through unchanged, like the condition of ``where``.
    linear: tuple[int, ...] | str | None = None
    #: The transpose of a linear op, for reverse mode: (builder, cotangent, output,
    #: *inputs, **attrs) -> the cotangent of each input (None where it has none).
    transpose: Callable[..., list[Any]] | None = None

    @property
    def differentiable(self) -> bool:
        return self.partials is not None or self.linear is not None

    def check_attrs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes completed with defaults; a GirError names any that are wrong."""
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise GirError(f"op {self.name!r} has no attribute {sorted(unknown)[0]!r}")
        out = {}
        for key, (kind, default) in self.attrs.items():
            if key in given:
                value = given[key]
                if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    raise GirError(f"attribute {key!r} of op {self.name!r} has the wrong kind: {value!r}")
                out[key] = value
            elif default is REQUIRED:
                raise GirError(f"op {self.name!r} needs the attribute {key!r}")
            else:
                out[key] = default
        return out

    def source(self, args: Sequence[str], attrs: Mapping[str, Any]) -> str:
        """The NumPy source of this op applied to argument sources ``args``."""
        if self.numpy is None:
            raise GirError(f"op {self.name!r} has no NumPy template")
        if callable(self.numpy):
            return self.numpy(args, attrs)
        return self.numpy.format(*args, **attrs)

    def reference(self, **attrs: Any) -> Callable[..., Any]:
        """The NumPy reference implementation for the given (axis-resolved) attributes."""
        return _reference(self, tuple(sorted(attrs.items())))


@functools.cache
def _reference(op: OpDef, attrs: tuple) -> Callable[..., Any]:
    n = op.arity if op.arity is not None else 2
    args = [f"a{i}" for i in range(n)]
    params = ", ".join(args) if op.arity is not None else "*a"
    if op.arity is None:
        src = f"lambda *a: functools.reduce(lambda x, y: {op.source(['x', 'y'], dict(attrs))}, a)"
    else:
        src = f"lambda {params}: {op.source(args, dict(attrs))}"
    return eval(src, {"np": np, "sp": scipy.special, "functools": functools})


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry (one name, one definition)."""
    if op.name in OPS:
        raise GirError(f"op {op.name!r} is already defined")
    OPS[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise GirError(f"unknown op {name!r}") from None


# -- type rules ---------------------------------------------------------------


def _broadcast(ins: Sequence[Type], order: tuple[str, ...]) -> tuple[str, ...]:
    return union_axes(order, (t.axes for t in ins))


def _numeric(ins: Sequence[Type], what: str) -> None:
    for t in ins:
        if t.dtype == "bool":
            raise GirError(f"{what} needs numeric operands, got {t}")


def arith(ins, attrs, order):
    _numeric(ins, "arithmetic")
    return [Type(promote(*(t.dtype for t in ins)), _broadcast(ins, order))]


def floating(ins, attrs, order):
    _numeric(ins, "this function")
    return [Type(as_float(promote(*(t.dtype for t in ins))), _broadcast(ins, order))]


def compare(ins, attrs, order):
    _numeric(ins, "a comparison")
    return [Type("bool", _broadcast(ins, order))]


def select(ins, attrs, order):
    cond, a, b = ins
    if cond.dtype != "bool":
        raise GirError(f"the condition of where must be bool, got {cond}")
    return [Type(promote(a.dtype, b.dtype), _broadcast(ins, order))]


def _axis_of(t: Type, attrs) -> str:
    axis = attrs["axis"]
    if axis not in t.axes:
        raise GirError(f"axis {axis} is not an axis of the operand {t}")
    return axis


def reduce_sum(ins, attrs, order):
    (t,) = ins
    axis = _axis_of(t, attrs)
    dtype = "i64" if t.dtype == "bool" else t.dtype
    return [Type(dtype, tuple(a for a in t.axes if a != axis))]


def reduce_mean(ins, attrs, order):
    (t,) = ins
    axis = _axis_of(t, attrs)
    return [Type(as_float(t.dtype), tuple(a for a in t.axes if a != axis))]


def along_axis(ins, attrs, order):
    (t,) = ins
    _axis_of(t, attrs)
    return [t]


def running_sum(ins, attrs, order):
    (t,) = ins
    _axis_of(t, attrs)
    return [t.with_dtype("i64") if t.dtype == "bool" else t]


def constant(ins, attrs, order):
    value = attrs["value"]
    if isinstance(value, bool):
        return [BOOL]
    return [Type("i64" if isinstance(value, int) else "f64")]


def call(ins, attrs, order):
    return attrs["callee"].infer_call(ins, order)


# -- the ops ------------------------------------------------------------------


def _join(sep: str) -> Template:
    return lambda args, attrs: "(" + sep.join(args) + ")"


def _cumsum(args, attrs):
    x, axis = args[0], attrs["axis"]
    if attrs["reverse"]:
        return f"np.flip(np.cumsum(np.flip({x}, {axis}), {axis}), {axis})"
    return f"np.cumsum({x}, {axis})"


_AXIS = {"axis": (str, REQUIRED)}


# -- derivative rules ---------------------------------------------------------
# Written with the builder, so derivatives are graphs every target compiles.


def _c(b, value: float):
    return b.const(value)


def _op(b, name: str, *args, **attrs):
    return b.op(name, *args, **attrs)


def _product_of_others(b, z, *xs):
    return [
        xs[1 - i] if len(xs) == 2 else _op(b, "mul", *(x for j, x in enumerate(xs) if j != i))
        for i in range(len(xs))
    ]


def _wofz_derivative(b, x, y):
    """w'(z) = -2 z w(z) + 2i/sqrt(pi) = a + ib; by Cauchy-Riemann du/dx = dv/dy = a, dv/dx = -du/dy = b."""
    u, v = _op(b, "wofz_re", x, y), _op(b, "wofz_im", x, y)
    a = _op(b, "mul", _c(b, -2.0), _op(b, "sub", _op(b, "mul", x, u), _op(b, "mul", y, v)))
    bb = _op(
        b,
        "sub",
        _c(b, 2.0 / np.sqrt(np.pi)),
        _op(b, "mul", _c(b, 2.0), _op(b, "add", _op(b, "mul", x, v), _op(b, "mul", y, u))),
    )
    return a, bb


def _sinc_partial(b, z, x):
    zero = _op(b, "eq", x, _c(b, 0.0))
    safe = _op(b, "where", zero, _c(b, 1.0), x)
    slope = _op(b, "div", _op(b, "sub", _op(b, "cos", _op(b, "mul", _c(b, np.pi), safe)), z), safe)
    return [_op(b, "where", zero, _c(b, 0.0), slope)]


def _pick(b, first_wins):
    one, zero = _c(b, 1.0), _c(b, 0.0)
    return [_op(b, "where", first_wins, one, zero), _op(b, "where", first_wins, zero, one)]


PARTIALS: dict[str, Callable[..., list[Any]]] = {
    "mul": _product_of_others,
    "div": lambda b, z, x, y: [_op(b, "div", _c(b, 1.0), y), _op(b, "neg", _op(b, "div", z, y))],
    "pow": lambda b, z, x, y: [
        _op(b, "mul", y, _op(b, "pow", x, _op(b, "sub", y, _c(b, 1.0)))),
        _op(b, "mul", z, _op(b, "log", x)),
    ],
    "mod": lambda b, z, x, y: [_c(b, 1.0), _op(b, "neg", _op(b, "floor", _op(b, "div", x, y)))],
    "minimum": lambda b, z, x, y: _pick(b, _op(b, "le", x, y)),
    "maximum": lambda b, z, x, y: _pick(b, _op(b, "ge", x, y)),
    "abs": lambda b, z, x: [_op(b, "sign", x)],
    "sign": lambda b, z, x: [None],
    "floor": lambda b, z, x: [None],
    "exp": lambda b, z, x: [z],
    "log": lambda b, z, x: [_op(b, "div", _c(b, 1.0), x)],
    "log1p": lambda b, z, x: [_op(b, "div", _c(b, 1.0), _op(b, "add", _c(b, 1.0), x))],
    "expm1": lambda b, z, x: [_op(b, "add", z, _c(b, 1.0))],
    "sqrt": lambda b, z, x: [_op(b, "div", _c(b, 0.5), z)],
    "sin": lambda b, z, x: [_op(b, "cos", x)],
    "cos": lambda b, z, x: [_op(b, "neg", _op(b, "sin", x))],
    "tan": lambda b, z, x: [_op(b, "add", _c(b, 1.0), _op(b, "mul", z, z))],
    "arctan": lambda b, z, x: [_op(b, "div", _c(b, 1.0), _op(b, "add", _c(b, 1.0), _op(b, "mul", x, x)))],
    "arctan2": lambda b, z, y, x: [
        _op(b, "div", x, _op(b, "add", _op(b, "mul", x, x), _op(b, "mul", y, y))),
        _op(b, "neg", _op(b, "div", y, _op(b, "add", _op(b, "mul", x, x), _op(b, "mul", y, y)))),
    ],
    "tanh": lambda b, z, x: [_op(b, "sub", _c(b, 1.0), _op(b, "mul", z, z))],
    "erf": lambda b, z, x: [
        _op(b, "mul", _c(b, 2 / np.sqrt(np.pi)), _op(b, "exp", _op(b, "neg", _op(b, "mul", x, x))))
    ],
    "erfc": lambda b, z, x: [
        _op(b, "mul", _c(b, -2 / np.sqrt(np.pi)), _op(b, "exp", _op(b, "neg", _op(b, "mul", x, x))))
    ],
    "sinc": _sinc_partial,
    "wofz_re": lambda b, z, x, y: (lambda a, c: [a, _op(b, "neg", c)])(*_wofz_derivative(b, x, y)),
    "wofz_im": lambda b, z, x, y: list(_wofz_derivative(b, x, y))[::-1],
    **{cmp: (lambda b, z, x, y: [None, None]) for cmp in ("lt", "le", "gt", "ge", "eq", "ne")},
}

LINEAR: dict[str, tuple[int, ...] | str] = {
    "add": "all", "sub": (0, 1), "neg": (0,), "where": (1, 2), "sum": (0,), "mean": (0,),
    "cumsum": (0,), "flip": (0,), "bcast": (0,),
}  # fmt: skip


def _count(b, x, axis):
    return _op(b, "sum", _op(b, "bcast", _c(b, 1.0), x), axis=axis)


TRANSPOSE: dict[str, Callable[..., list[Any]]] = {
    "add": lambda b, g, z, *xs, **a: [g] * len(xs),
    "sub": lambda b, g, z, x, y, **a: [g, _op(b, "neg", g)],
    "neg": lambda b, g, z, x, **a: [_op(b, "neg", g)],
    "where": lambda b, g, z, c, x, y, **a: [
        None, _op(b, "where", c, g, _c(b, 0.0)), _op(b, "where", c, _c(b, 0.0), g)],
    "sum": lambda b, g, z, x, axis: [_op(b, "bcast", g, x)],
    "mean": lambda b, g, z, x, axis: [_op(b, "div", _op(b, "bcast", g, x), _count(b, x, axis))],
    "cumsum": lambda b, g, z, x, axis, reverse: [_op(b, "cumsum", g, axis=axis, reverse=not reverse)],
    "flip": lambda b, g, z, x, axis: [_op(b, "flip", g, axis=axis)],
    "bcast": lambda b, g, z, x, like: [g, None],
}  # fmt: skip

for _name, _arity, _rule, _tpl, _comm in [
    ("add", None, arith, _join(" + "), True),
    ("mul", None, arith, _join(" * "), True),
    ("sub", 2, arith, "({0} - {1})", False),
    ("div", 2, floating, "({0} / {1})", False),
    ("neg", 1, arith, "(-{0})", False),
    ("pow", 2, floating, "np.power({0}, {1})", False),
    ("mod", 2, arith, "np.mod({0}, {1})", False),
    ("minimum", 2, arith, "np.minimum({0}, {1})", True),
    ("maximum", 2, arith, "np.maximum({0}, {1})", True),
    ("abs", 1, arith, "np.abs({0})", False),
    ("sign", 1, arith, "np.sign({0})", False),
    ("floor", 1, floating, "np.floor({0})", False),
    ("exp", 1, floating, "np.exp({0})", False),
    ("log", 1, floating, "np.log({0})", False),
    ("log1p", 1, floating, "np.log1p({0})", False),
    ("expm1", 1, floating, "np.expm1({0})", False),
    ("sqrt", 1, floating, "np.sqrt({0})", False),
    ("sin", 1, floating, "np.sin({0})", False),
    ("cos", 1, floating, "np.cos({0})", False),
    ("tan", 1, floating, "np.tan({0})", False),
    ("arctan", 1, floating, "np.arctan({0})", False),
    ("arctan2", 2, floating, "np.arctan2({0}, {1})", False),
    ("tanh", 1, floating, "np.tanh({0})", False),
    ("erf", 1, floating, "sp.erf({0})", False),
    ("erfc", 1, floating, "sp.erfc({0})", False),
    ("sinc", 1, floating, "np.sinc({0})", False),
    ("wofz_re", 2, floating, "sp.wofz({0} + 1j * {1}).real", False),
    ("wofz_im", 2, floating, "sp.wofz({0} + 1j * {1}).imag", False),
    ("lt", 2, compare, "({0} < {1})", False),
    ("le", 2, compare, "({0} <= {1})", False),
    ("gt", 2, compare, "({0} > {1})", False),
    ("ge", 2, compare, "({0} >= {1})", False),
    ("eq", 2, compare, "({0} == {1})", True),
    ("ne", 2, compare, "({0} != {1})", True),
    ("where", 3, select, "np.where({0}, {1}, {2})", False),
]:
    register(OpDef(_name, _arity, _rule, _tpl, commutative=_comm, min_arity=2 if _arity is None else 0))


def literal(value: bool | int | float) -> str:
    """Python source for a constant, exact for every float (inf and nan included)."""
    if isinstance(value, bool | int):
        return repr(value)
    if np.isfinite(value):
        return f"np.float64({value!r})"
    return "np.float64(np.nan)" if np.isnan(value) else f"np.float64({'-' if value < 0 else ''}np.inf)"


register(
    OpDef(
        "const",
        0,
        constant,
        lambda args, attrs: literal(attrs["value"]),
        {"value": ((bool, int, float), REQUIRED)},
    )
)
register(OpDef("sum", 1, reduce_sum, "np.sum({0}, axis={axis}, keepdims=True)", _AXIS, elementwise=False))
register(OpDef("mean", 1, reduce_mean, "np.mean({0}, axis={axis}, keepdims=True)", _AXIS, elementwise=False))
register(
    OpDef(
        "cumsum",
        1,
        running_sum,
        _cumsum,
        {**_AXIS, "reverse": (bool, False)},
        elementwise=False,
        doc="Cumulative sum along an axis; reverse=true sums from the end.",
    )
)
register(OpDef("flip", 1, along_axis, "np.flip({0}, {axis})", _AXIS, elementwise=False))
register(
    OpDef(
        "bcast",
        2,
        lambda ins, attrs, order: [Type(ins[0].dtype, _broadcast(ins, order))],
        "np.broadcast_to({0}, np.broadcast_shapes(np.shape({0}), np.shape({1})))",
        doc="The first operand, broadcast to the axes of both (the second gives only its axes).",
    )
)
register(
    OpDef(
        "call",
        None,
        call,
        None,
        {"callee": (object, REQUIRED)},
        elementwise=False,
        doc="Apply the graph in attribute callee (a composite op) to the inputs.",
    )
)

# Attach the derivative rules above to the definitions they belong to.
for _name, _op_def in OPS.items():
    OPS[_name] = attrs.evolve(
        _op_def, partials=PARTIALS.get(_name), linear=LINEAR.get(_name), transpose=TRANSPOSE.get(_name)
    )
