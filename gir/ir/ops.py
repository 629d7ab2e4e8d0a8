"""The op registry: one definition per op.

An :class:`OpDef` holds everything true of an op: its arity, the attributes it
takes, its type rule, its NumPy reference semantics (a source template over
``np`` = NumPy and ``sp`` = scipy.special), the NumPy/SciPy callables
:func:`gir.trace` records it from, its derivative rules (partials, linearity,
transpose) and the facts passes ask about (does it keep values finite, does
it act along an axis, its polynomial degree). Everything else is derived from
the registry when it is used: the NumPy backend emits the template as is,
constant folding and the tests evaluate it, JAX evaluates it with its own
``np``/``sp``, Numba evaluates it on scalars where it can, tracing looks
callables up in ``traced_from``, autodiff reads the rules. A backend keeps a
table only for the code it emits differently. Adding an elementwise op is one
``register(OpDef(...))`` call; :func:`unregister` removes it again.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from typing import Any, TypeVar

import attrs
import numpy as np
import scipy.special
from attrs import field

from gir.errors import GirError
from gir.ir.types import BOOL, Type, as_float, promote, union_axes

#: A type rule: (input types, attributes, graph axis order) -> output types.
TypeRule = Callable[[Sequence[Type], Mapping[str, Any], tuple[str, ...]], list[Type]]
#: A NumPy template: a format string over {0}, {1}, ... and {attr}, or a function
#: (argument sources, attributes) -> source.
Template = str | Callable[[Sequence[str], Mapping[str, Any]], str]
#: A polynomial degree rule: (degrees of the inputs, constant) -> degree of the result, where
#: ``constant(i)`` is the value of input i if a constant produces it, else None.
DegreeRule = Callable[[Sequence[float], Callable[[int], Any]], float]

REQUIRED = object()
#: How an op acts along the axis named by its ``axis`` attribute: ``reduce`` removes the
#: axis (sum, mean), ``scan`` keeps it with a running result (cumsum), ``reorder`` permutes
#: the elements along it (flip).
ALONG = ("reduce", "scan", "reorder")


def _indices(value: Any) -> tuple[int, ...] | str | None:
    return value if value is None or isinstance(value, str) else tuple(value)


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
    #: The NumPy/SciPy callables (ufuncs or functions) gir.trace records as this op: a ufunc
    #: or an elementwise function applies the op to its operands; for an op ``along`` an axis,
    #: the function's ``axis=`` argument names the axes it applies along.
    traced_from: tuple[Any, ...] = field(default=(), converter=tuple)
    #: Derivative rule of a nonlinear op: (builder, output, *inputs) -> the partial
    #: derivative of the output with respect to each input (None: zero or none).
    partials: Callable[..., list[Any]] | None = None
    #: Inputs the op is linear in (or "all"): its derivative applies the op to their
    #: tangents; other inputs pass through unchanged, like the condition of ``where``.
    linear: tuple[int, ...] | str | None = field(default=None, converter=_indices)
    #: The transpose of a linear op, for reverse mode: (builder, cotangent, output,
    #: *inputs, **attrs) -> the cotangent of each input (None where it has none).
    transpose: Callable[..., list[Any]] | None = None
    #: Inputs that give only their axes, not their values (the second operand of ``bcast``).
    shape_only: tuple[int, ...] = field(default=(), converter=tuple)
    #: The polynomial degree of the result in the inputs' degrees, for ops that are not
    #: linear (mul, div, pow); None derives it from ``linear`` (see :meth:`degree_of`).
    degree: DegreeRule | None = None
    #: The result is finite wherever the operands are (no overflow, no pole): sin, tanh,
    #: abs, minimum, where, ... but not add (overflow) or exp.
    keeps_finite: bool = False
    #: How the op acts along its ``axis`` attribute (one of :data:`ALONG`), or None.
    along: str | None = None
    #: Along an axis the operand is constant on, the op returns the operand (mean, flip; not
    #: sum or cumsum, which depend on the axis length).
    keeps_constant: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.name.isidentifier():
            raise GirError(f"an op name must be an identifier, got {self.name!r}")
        if self.along is not None:
            if self.along not in ALONG:
                raise GirError(f"op {self.name!r}: along must be one of {ALONG}, got {self.along!r}")
            if "axis" not in self.attrs or self.elementwise:
                raise GirError(f"op {self.name!r} acts along an axis: it needs an axis attribute "
                               "and elementwise=False")  # fmt: skip
        n = self.arity if self.arity is not None else math.inf
        given = [*self.shape_only, *(self.linear if isinstance(self.linear, tuple) else ())]
        if any(not 0 <= i < n for i in given):
            raise GirError(f"op {self.name!r} names an input it does not have in linear or shape_only")
        if isinstance(self.linear, str) and self.linear != "all":
            raise GirError(f"op {self.name!r}: linear must be input positions or 'all', got {self.linear!r}")

    @property
    def differentiable(self) -> bool:
        return self.partials is not None or self.linear is not None

    def linear_inputs(self, n: int) -> tuple[int, ...]:
        """The positions of the inputs (of ``n``) the op is linear in."""
        if self.linear is None:
            return ()
        return tuple(range(n)) if self.linear == "all" else self.linear

    def degree_of(self, degrees: Sequence[float], constant: Callable[[int], Any]) -> float:
        """The polynomial degree of the result given the inputs' degrees (``math.inf``: not a polynomial).

        A linear op keeps the largest degree of the inputs it is linear in, provided the
        others (but shape-only inputs) are of degree 0; an op with a ``degree`` rule applies
        it; any other op of a non-constant input is not a polynomial.
        """
        if max(degrees, default=0) == 0:
            return 0
        if self.degree is not None:
            return self.degree(degrees, constant)
        lin = self.linear_inputs(len(degrees))
        if not lin:
            return math.inf
        if any(d > 0 for i, d in enumerate(degrees) if i not in lin and i not in self.shape_only):
            return math.inf
        return max(degrees[i] for i in lin)

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

    def template_names(self) -> frozenset[str] | None:
        """The global names the NumPy template refers to (``np``, ``sp``), or None when it
        cannot be read without attributes (no template, a required attribute, a bad template)."""
        return _template_names(self)

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


@functools.cache
def _template_names(op: OpDef) -> frozenset[str] | None:
    if op.numpy is None or any(default is REQUIRED for _, default in op.attrs.values()):
        return None
    args = [f"_arg{i}" for i in range(op.arity if op.arity is not None else 2)]
    try:
        tree = ast.parse(op.source(args, op.check_attrs({})), mode="eval")
    except (SyntaxError, GirError, KeyError, IndexError):
        return None
    return frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in args)


# -- the registry ------------------------------------------------------------------------


OPS: dict[str, OpDef] = {}
_generation = 0


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry (one name, one definition); returns it.

    Everything derived from the registry (tracing tables, pass and backend
    queries) sees the op from then on. A GirError names a clash: a name already
    defined, or a callable another op is already traced from.
    """
    global _generation
    if op.name in OPS:
        raise GirError(f"op {op.name!r} is already defined")
    for fn in op.traced_from:
        other = next((d.name for d in OPS.values() if any(fn is g for g in d.traced_from)), None)
        if other is not None:
            raise GirError(
                f"op {op.name!r}: {getattr(fn, '__name__', fn)!r} is already traced as op {other!r}"
            )
    OPS[op.name] = op
    _generation += 1
    return op


def unregister(name: str) -> OpDef:
    """Remove the op ``name`` added by :func:`register` (built-in ops stay); returns its definition.

    Graphs that use it can no longer be verified or compiled; compiled
    executables keep working. Clear the compile caches (:func:`gir.clear_cache`)
    before defining another op of the same name.
    """
    global _generation
    if name in _BUILTIN:
        raise GirError(f"op {name!r} is built in and cannot be removed")
    op = get_op(name)
    del OPS[name]
    _generation += 1
    _reference.cache_clear()
    _template_names.cache_clear()
    return op


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise GirError(f"unknown op {name!r}") from None


def generation() -> int:
    """A number that changes whenever an op is registered or removed (a key for derived tables)."""
    return _generation


T = TypeVar("T")


def derived(make: Callable[[], T]) -> Callable[[], T]:
    """``make()``, computed from the registry once per :func:`generation` (a table derived from OPS)."""
    memo: list[Any] = [None, None]

    @functools.wraps(make)
    def get() -> T:
        if memo[0] != _generation:
            memo[1], memo[0] = make(), _generation
        return memo[1]

    return get


class OpSet(Set):
    """The names of the registered ops for which ``predicate(op)`` holds, read at use time."""

    def __init__(self, predicate: Callable[[OpDef], bool], doc: str = ""):
        self._predicate = predicate
        self.__doc__ = doc or self.__doc__

    def __contains__(self, name: object) -> bool:
        op = OPS.get(name) if isinstance(name, str) else None
        return op is not None and bool(self._predicate(op))

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, op in list(OPS.items()) if self._predicate(op)])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"OpSet({sorted(self)})"


def ops_where(predicate: Callable[[OpDef], bool], doc: str = "") -> OpSet:
    """A live set of the names of the ops ``predicate`` accepts (ops registered later included)."""
    return OpSet(predicate, doc)


#: Ops whose result is finite when their operands are (``keeps_finite``).
KEEPS_FINITE = ops_where(lambda op: op.keeps_finite)
#: Ops acting along an axis (sums, means, scans, flips): a value there depends on others along it.
ALONG_AXIS = ops_where(lambda op: op.along is not None)


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


# -- templates and rules ------------------------------------------------------------------


def _join(sep: str) -> Template:
    return lambda args, attrs: "(" + sep.join(args) + ")"


def _cumsum(args, attrs):
    x, axis = args[0], attrs["axis"]
    if attrs["reverse"]:
        return f"np.flip(np.cumsum(np.flip({x}, {axis}), {axis}), {axis})"
    return f"np.cumsum({x}, {axis})"


def literal(value: bool | int | float) -> str:
    """Python source for a constant, exact for every float (inf and nan included)."""
    if isinstance(value, bool | int):
        return repr(value)
    if np.isfinite(value):
        return f"np.float64({value!r})"
    return "np.float64(np.nan)" if np.isnan(value) else f"np.float64({'-' if value < 0 else ''}np.inf)"


_AXIS = {"axis": (str, REQUIRED)}

# Derivative rules are written with the builder, so derivatives are graphs every target compiles.


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


def _arctan2_partials(b, z, y, x):
    r2 = _op(b, "add", _op(b, "mul", x, x), _op(b, "mul", y, y))
    return [_op(b, "div", x, r2), _op(b, "neg", _op(b, "div", y, r2))]


def _erf_slope(b, x, scale: float):
    return _op(b, "mul", _c(b, scale), _op(b, "exp", _op(b, "neg", _op(b, "mul", x, x))))


def _count(b, x, axis):
    return _op(b, "sum", _op(b, "bcast", _c(b, 1.0), x), axis=axis)


def _no_partials(b, z, *xs):
    return [None] * len(xs)


def _pow_degree(degrees: Sequence[float], constant: Callable[[int], Any]) -> float:
    """A constant non-negative integer exponent k multiplies the degree of the base by k."""
    k = constant(1)
    if k is not None and float(k).is_integer() and k >= 0 and degrees[0] != math.inf:
        return degrees[0] * int(k)
    return math.inf


# -- the ops ------------------------------------------------------------------------------
# One register(OpDef(...)) per op, with everything true of it.

register(OpDef(
    "add", None, arith, _join(" + "), commutative=True, min_arity=2, traced_from=(np.add,),
    linear="all", transpose=lambda b, g, z, *xs, **a: [g] * len(xs),
))  # fmt: skip
register(OpDef(
    "mul", None, arith, _join(" * "), commutative=True, min_arity=2, traced_from=(np.multiply,),
    partials=_product_of_others, degree=lambda ds, const: sum(ds),
))  # fmt: skip
register(OpDef(
    "sub", 2, arith, "({0} - {1})", traced_from=(np.subtract,),
    linear="all", transpose=lambda b, g, z, x, y, **a: [g, _op(b, "neg", g)],
))  # fmt: skip
register(OpDef(
    "div", 2, floating, "({0} / {1})", traced_from=(np.divide,),
    partials=lambda b, z, x, y: [_op(b, "div", _c(b, 1.0), y), _op(b, "neg", _op(b, "div", z, y))],
    degree=lambda ds, const: ds[0] if ds[1] == 0 else math.inf,
))  # fmt: skip
register(OpDef(
    "neg", 1, arith, "(-{0})", traced_from=(np.negative,), keeps_finite=True,
    linear="all", transpose=lambda b, g, z, x, **a: [_op(b, "neg", g)],
))  # fmt: skip
register(OpDef(
    "pow", 2, floating, "np.power({0}, {1})", traced_from=(np.power, np.float_power),
    partials=lambda b, z, x, y: [
        _op(b, "mul", y, _op(b, "pow", x, _op(b, "sub", y, _c(b, 1.0)))),
        _op(b, "mul", z, _op(b, "log", x)),
    ],
    degree=_pow_degree,
))  # fmt: skip
register(OpDef(
    "mod", 2, arith, "np.mod({0}, {1})", traced_from=(np.mod,),
    partials=lambda b, z, x, y: [_c(b, 1.0), _op(b, "neg", _op(b, "floor", _op(b, "div", x, y)))],
))  # fmt: skip
register(OpDef(
    "minimum", 2, arith, "np.minimum({0}, {1})", commutative=True, traced_from=(np.minimum,),
    keeps_finite=True, partials=lambda b, z, x, y: _pick(b, _op(b, "le", x, y)),
))  # fmt: skip
register(OpDef(
    "maximum", 2, arith, "np.maximum({0}, {1})", commutative=True, traced_from=(np.maximum,),
    keeps_finite=True, partials=lambda b, z, x, y: _pick(b, _op(b, "ge", x, y)),
))  # fmt: skip
register(OpDef(
    "abs", 1, arith, "np.abs({0})", traced_from=(np.absolute, np.fabs), keeps_finite=True,
    partials=lambda b, z, x: [_op(b, "sign", x)],
))  # fmt: skip
register(OpDef(
    "sign", 1, arith, "np.sign({0})", traced_from=(np.sign,), keeps_finite=True, partials=_no_partials,
))  # fmt: skip
register(OpDef(
    "floor", 1, floating, "np.floor({0})", traced_from=(np.floor,), keeps_finite=True, partials=_no_partials,
))  # fmt: skip
register(OpDef("exp", 1, floating, "np.exp({0})", traced_from=(np.exp,), partials=lambda b, z, x: [z]))
register(OpDef(
    "log", 1, floating, "np.log({0})", traced_from=(np.log,),
    partials=lambda b, z, x: [_op(b, "div", _c(b, 1.0), x)],
))  # fmt: skip
register(OpDef(
    "log1p", 1, floating, "np.log1p({0})", traced_from=(np.log1p,),
    partials=lambda b, z, x: [_op(b, "div", _c(b, 1.0), _op(b, "add", _c(b, 1.0), x))],
))  # fmt: skip
register(OpDef(
    "expm1", 1, floating, "np.expm1({0})", traced_from=(np.expm1,),
    partials=lambda b, z, x: [_op(b, "add", z, _c(b, 1.0))],
))  # fmt: skip
register(OpDef(
    "sqrt", 1, floating, "np.sqrt({0})", traced_from=(np.sqrt,),
    partials=lambda b, z, x: [_op(b, "div", _c(b, 0.5), z)],
))  # fmt: skip
register(OpDef(
    "sin", 1, floating, "np.sin({0})", traced_from=(np.sin,), keeps_finite=True,
    partials=lambda b, z, x: [_op(b, "cos", x)],
))  # fmt: skip
register(OpDef(
    "cos", 1, floating, "np.cos({0})", traced_from=(np.cos,), keeps_finite=True,
    partials=lambda b, z, x: [_op(b, "neg", _op(b, "sin", x))],
))  # fmt: skip
register(OpDef(
    "tan", 1, floating, "np.tan({0})", traced_from=(np.tan,),
    partials=lambda b, z, x: [_op(b, "add", _c(b, 1.0), _op(b, "mul", z, z))],
))  # fmt: skip
register(OpDef(
    "arctan", 1, floating, "np.arctan({0})", traced_from=(np.arctan,), keeps_finite=True,
    partials=lambda b, z, x: [_op(b, "div", _c(b, 1.0), _op(b, "add", _c(b, 1.0), _op(b, "mul", x, x)))],
))  # fmt: skip
register(OpDef(
    "arctan2", 2, floating, "np.arctan2({0}, {1})", traced_from=(np.arctan2,), partials=_arctan2_partials,
))  # fmt: skip
register(OpDef(
    "tanh", 1, floating, "np.tanh({0})", traced_from=(np.tanh,), keeps_finite=True,
    partials=lambda b, z, x: [_op(b, "sub", _c(b, 1.0), _op(b, "mul", z, z))],
))  # fmt: skip
register(OpDef(
    "erf", 1, floating, "sp.erf({0})", traced_from=(scipy.special.erf,), keeps_finite=True,
    partials=lambda b, z, x: [_erf_slope(b, x, 2 / np.sqrt(np.pi))],
))  # fmt: skip
register(OpDef(
    "erfc", 1, floating, "sp.erfc({0})", traced_from=(scipy.special.erfc,), keeps_finite=True,
    partials=lambda b, z, x: [_erf_slope(b, x, -2 / np.sqrt(np.pi))],
))  # fmt: skip
register(OpDef(
    "erfcx", 1, floating, "sp.erfcx({0})", traced_from=(scipy.special.erfcx,),
    partials=lambda b, z, x: [_op(b, "sub", _op(b, "mul", _c(b, 2.0), x, z), _c(b, 2 / np.sqrt(np.pi)))],
    doc="The scaled complementary error function exp(x^2) erfc(x): finite where erfc underflows.",
))  # fmt: skip
register(OpDef("sinc", 1, floating, "np.sinc({0})", traced_from=(np.sinc,), partials=_sinc_partial))
register(OpDef(
    "wofz_re", 2, floating, "sp.wofz({0} + 1j * {1}).real",
    partials=lambda b, z, x, y: (lambda a, c: [a, _op(b, "neg", c)])(*_wofz_derivative(b, x, y)),
    doc="The real part of the Faddeeva function w(x + iy) (scipy.special.wofz of a complex value).",
))  # fmt: skip
register(OpDef(
    "wofz_im", 2, floating, "sp.wofz({0} + 1j * {1}).imag",
    partials=lambda b, z, x, y: list(_wofz_derivative(b, x, y))[::-1],
    doc="The imaginary part of the Faddeeva function w(x + iy).",
))  # fmt: skip
register(OpDef("lt", 2, compare, "({0} < {1})", traced_from=(np.less,), partials=_no_partials))
register(OpDef("le", 2, compare, "({0} <= {1})", traced_from=(np.less_equal,), partials=_no_partials))
register(OpDef("gt", 2, compare, "({0} > {1})", traced_from=(np.greater,), partials=_no_partials))
register(OpDef("ge", 2, compare, "({0} >= {1})", traced_from=(np.greater_equal,), partials=_no_partials))
register(OpDef(
    "eq", 2, compare, "({0} == {1})", commutative=True, traced_from=(np.equal,), partials=_no_partials,
))  # fmt: skip
register(OpDef(
    "ne", 2, compare, "({0} != {1})", commutative=True, traced_from=(np.not_equal,), partials=_no_partials,
))  # fmt: skip
register(OpDef(
    "where", 3, select, "np.where({0}, {1}, {2})", traced_from=(np.where,), keeps_finite=True,
    linear=(1, 2),
    transpose=lambda b, g, z, c, x, y, **a: [
        None, _op(b, "where", c, g, _c(b, 0.0)), _op(b, "where", c, _c(b, 0.0), g)],
))  # fmt: skip
register(OpDef(
    "const", 0, constant, lambda args, attrs: literal(attrs["value"]),
    {"value": ((bool, int, float), REQUIRED)},
))  # fmt: skip
register(OpDef(
    "sum", 1, reduce_sum, "np.sum({0}, axis={axis}, keepdims=True)", _AXIS, elementwise=False,
    traced_from=(np.sum,), along="reduce",
    linear=(0,), transpose=lambda b, g, z, x, axis: [_op(b, "bcast", g, x)],
))  # fmt: skip
register(OpDef(
    "mean", 1, reduce_mean, "np.mean({0}, axis={axis}, keepdims=True)", _AXIS, elementwise=False,
    traced_from=(np.mean,), along="reduce", keeps_constant=True,
    linear=(0,),
    transpose=lambda b, g, z, x, axis: [_op(b, "div", _op(b, "bcast", g, x), _count(b, x, axis))],
))  # fmt: skip
register(OpDef(
    "cumsum", 1, running_sum, _cumsum, {**_AXIS, "reverse": (bool, False)}, elementwise=False,
    doc="Cumulative sum along an axis; reverse=true sums from the end.",
    traced_from=(np.cumsum,), along="scan",
    linear=(0,),
    transpose=lambda b, g, z, x, axis, reverse: [_op(b, "cumsum", g, axis=axis, reverse=not reverse)],
))  # fmt: skip
register(OpDef(
    "flip", 1, along_axis, "np.flip({0}, {axis})", _AXIS, elementwise=False,
    traced_from=(np.flip,), along="reorder", keeps_constant=True,
    linear=(0,), transpose=lambda b, g, z, x, axis: [_op(b, "flip", g, axis=axis)],
))  # fmt: skip
register(OpDef(
    "bcast", 2, lambda ins, attrs, order: [Type(ins[0].dtype, _broadcast(ins, order))],
    "np.broadcast_to({0}, np.broadcast_shapes(np.shape({0}), np.shape({1})))",
    doc="The first operand, broadcast to the axes of both (the second gives only its axes).",
    linear=(0,), shape_only=(1,), transpose=lambda b, g, z, x, like: [g, None],
))  # fmt: skip
register(OpDef(
    "call", None, call, None, {"callee": (object, REQUIRED)}, elementwise=False,
    doc="Apply the graph in attribute callee (a composite op) to the inputs.",
))  # fmt: skip

_BUILTIN = frozenset(OPS)
