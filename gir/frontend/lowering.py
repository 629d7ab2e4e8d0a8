"""How NumPy operations on tracers become IR ops.

Ufuncs (``np.exp``, the Python operators, ``scipy.special.erf``) arrive
through ``__array_ufunc__``, NumPy functions (``np.where``, ``np.sum``)
through ``__array_function__``. Most are one op: the op registry's
``traced_from`` names the callables each op is recorded from, and the rule
follows from the op (a ufunc or an elementwise function applies it to the
operands; a function along an axis applies it along each axis its ``axis=``
names). :data:`EXTRA_UFUNCS` and :data:`EXTRA_FUNCTIONS` hold the calls that
are not one op on operands (``np.square``, ``np.clip``, ``np.where``'s
condition, ...); they take precedence.

Axes are named in gir and broadcasting aligns by name, so a value carries
only the axes it depends on. An integer ``axis=`` counts the value's *own*
axes in the graph's axis order (``axis=-1`` of an ``f64[T,E]`` value is E);
an axis name (``axis="E"``) is always unambiguous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special as sp

from gir.errors import GirError
from gir.frontend.tracer import ComplexTracer, Context, Tracer, _Traced, active_context
from gir.ir.ops import OPS, OpDef, derived


def ufunc_name(uf: np.ufunc) -> str:
    name = uf.__name__
    if getattr(np, name, None) is uf:
        return f"np.{name}"
    if getattr(sp, name, None) is uf:
        return f"scipy.special.{name}"
    return name


def function_name(func: Any) -> str:
    module = getattr(func, "__module__", None) or ""
    if module == "numpy" or module.startswith("numpy."):
        module = "np" + module[5:]
    name = getattr(func, "__name__", repr(func))
    return f"{module}.{name}" if module else name


def _context(items) -> Context:
    for x in items:
        if isinstance(x, _Traced):
            return x.ctx
        if isinstance(x, tuple | list):
            for y in x:
                if isinstance(y, _Traced):
                    return y.ctx
    ctx = active_context()
    if ctx is None:  # pragma: no cover - NumPy only dispatches here when a tracer is involved
        raise GirError("no trace is running")
    return ctx


def _tracer(ctx: Context, x: Any) -> Tracer:
    return x if isinstance(x, Tracer) else Tracer(ctx, ctx.lift(x))


# -- ufuncs -------------------------------------------------------------------------------------


def _op(op: str) -> Callable[..., Tracer]:
    return lambda ctx, *xs: ctx.apply(op, *xs)


def _select(ctx: Context, cond: Any, a: Any, b: Any) -> Tracer:
    return Tracer(ctx, ctx.emit("where", ctx.to_bool(cond), ctx.lift(a), ctx.lift(b))[0])


def _heaviside(ctx: Context, x: Any, h0: Any) -> Tracer:
    # exactly NumPy's: 0 below zero, h0 at zero, 1 above, nan for nan
    at_zero = _select(ctx, ctx.apply("eq", x, 0.0), h0, x)
    return _select(ctx, ctx.apply("gt", x, 0.0), 1.0, _select(ctx, ctx.apply("lt", x, 0.0), 0.0, at_zero))


#: Ufuncs that are not a single op applied to their operands (the others: the ops' traced_from).
EXTRA_UFUNCS: dict[np.ufunc, Callable[..., Any]] = {
    np.square: lambda ctx, x: ctx.apply("mul", x, x),
    np.positive: _tracer,
    np.logical_and: lambda ctx, a, b: _select(ctx, a, ctx.to_bool(b), False),
    np.logical_or: lambda ctx, a, b: _select(ctx, a, True, ctx.to_bool(b)),
    np.logical_not: lambda ctx, a: _select(ctx, a, False, True),
    np.heaviside: _heaviside,
    sp.wofz: lambda ctx, x: _wofz(ctx, x, 0.0),
}


_KWARG_DEFAULTS = {"out": None, "where": True, "dtype": None, "casting": "same_kind", "order": "K"}


def call_ufunc(uf: np.ufunc, inputs: tuple, kwargs: dict) -> Any:
    """Apply ufunc ``uf`` to tracers and numbers."""
    for key, value in kwargs.items():
        if key == "out" and isinstance(value, tuple) and all(v is None for v in value):
            continue
        default = _KWARG_DEFAULTS.get(key, ...)
        if value is not default and not (isinstance(value, str) and value == default):
            raise GirError(f"{ufunc_name(uf)}(..., {key}=...) is not supported by gir.trace")
    ctx = _context(inputs)
    if any(isinstance(x, ComplexTracer | complex | np.complexfloating) for x in inputs):
        rule = COMPLEX.get(uf)
        if rule is None:
            raise GirError(f"{ufunc_name(uf)} of a complex value is not supported by gir.trace")
        return rule(ctx, *(_pair(ctx, x) for x in inputs))
    rule = _rules()[0].get(uf)
    if rule is None:
        raise GirError(f"{ufunc_name(uf)} is not supported by gir.trace")
    return rule(ctx, *inputs)


# -- complex values: pairs of real parts, where a part may be an exact Python float --------------

Part = Tracer | float


def _pair(ctx: Context, x: Any) -> tuple[Part, Part]:
    if isinstance(x, ComplexTracer):
        return x.re, x.im
    if isinstance(x, Tracer):
        return x, 0.0
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, complex | np.complexfloating):
        return float(x.real), float(x.imag)
    ctx.lift(x)  # rejects what is not a real number
    return float(x), 0.0


def _is(x: Part, c: float) -> bool:
    return isinstance(x, float) and x == c


def _num(*xs: Part) -> bool:
    return all(isinstance(x, float) for x in xs)


def _float(uf: np.ufunc, *xs: float) -> float:
    with np.errstate(all="ignore"):
        return float(uf(*xs))


def _add(a: Part, b: Part) -> Part:
    if _num(a, b):
        return _float(np.add, a, b)
    return b if _is(a, 0.0) else a if _is(b, 0.0) else a + b


def _neg(a: Part) -> Part:
    return _float(np.negative, a) if _num(a) else -a


def _sub(a: Part, b: Part) -> Part:
    if _num(a, b):
        return _float(np.subtract, a, b)
    return a if _is(b, 0.0) else _neg(b) if _is(a, 0.0) else a - b


def _mul(a: Part, b: Part) -> Part:
    if _num(a, b):
        return _float(np.multiply, a, b)
    if _is(a, 0.0) or _is(b, 0.0):
        return 0.0
    for x, y in ((a, b), (b, a)):
        if _is(x, 1.0):
            return y
        if _is(x, -1.0):
            return _neg(y)
    return a * b


def _div(a: Part, b: Part) -> Part:
    if _num(a, b):
        return _float(np.divide, a, b)
    if _is(a, 0.0):
        return 0.0
    return a if _is(b, 1.0) else _neg(a) if _is(b, -1.0) else a / b


def _cdiv(ctx, x, y):
    (a, b), (c, d) = x, y
    if _is(d, 0.0):
        return ComplexTracer(ctx, _div(a, c), _div(b, c))
    if _is(c, 0.0):
        return ComplexTracer(ctx, _div(b, d), _neg(_div(a, d)))
    den = _add(_mul(c, c), _mul(d, d))
    return ComplexTracer(
        ctx, _div(_add(_mul(a, c), _mul(b, d)), den), _div(_sub(_mul(b, c), _mul(a, d)), den)
    )


def _cabs(ctx, x):
    a, b = x
    if _is(b, 0.0) or _is(a, 0.0):
        return np.abs(_tracer(ctx, a if _is(b, 0.0) else b))
    return np.sqrt(_tracer(ctx, _add(_mul(a, a), _mul(b, b))))


def _wofz(ctx: Context, re: Part, im: Part) -> ComplexTracer:
    args = (ctx.lift(re), ctx.lift(im))
    return ComplexTracer(
        ctx, Tracer(ctx, ctx.emit("wofz_re", *args)[0]), Tracer(ctx, ctx.emit("wofz_im", *args)[0])
    )


COMPLEX: dict[np.ufunc, Callable[..., Any]] = {
    np.add: lambda ctx, x, y: ComplexTracer(ctx, _add(x[0], y[0]), _add(x[1], y[1])),
    np.subtract: lambda ctx, x, y: ComplexTracer(ctx, _sub(x[0], y[0]), _sub(x[1], y[1])),
    np.multiply: lambda ctx, x, y: ComplexTracer(
        ctx, _sub(_mul(x[0], y[0]), _mul(x[1], y[1])), _add(_mul(x[0], y[1]), _mul(x[1], y[0]))
    ),
    np.divide: _cdiv,
    np.negative: lambda ctx, x: ComplexTracer(ctx, _neg(x[0]), _neg(x[1])),
    np.positive: lambda ctx, x: ComplexTracer(ctx, *x),
    np.conjugate: lambda ctx, x: ComplexTracer(ctx, x[0], _neg(x[1])),
    np.absolute: _cabs,
    sp.wofz: lambda ctx, x: _wofz(ctx, *x),
}


# -- axes ---------------------------------------------------------------------------------------


def axis_names(ctx: Context, t: Tracer, axis: Any, what: str) -> list[str]:
    """Axis names for an ``axis=`` argument; ``None`` means all of the value's own axes."""
    own = t.axes
    if axis is None:
        return list(own)
    out = []
    for a in axis if isinstance(axis, tuple | list) else (axis,):
        if isinstance(a, str):
            if a not in ctx.builder.axes:
                raise GirError(f"{what}: {a!r} is not an axis of this trace (axes: {list(ctx.builder.axes)})")
            out.append(a)
        elif isinstance(a, int | np.integer) and not isinstance(a, bool):
            if not -len(own) <= a < len(own):
                raise GirError(
                    f"{what}: axis {a} is out of range for a value on axes {list(own)} (integer axes count "
                    "the value's own axes in graph order); name the axis instead, e.g. axis='E'"
                )
            out.append(own[a])
        else:
            raise GirError(f"{what}: axis must be an integer or an axis name, got {a!r}")
    return out


_FULL, _REVERSED = slice(None), slice(None, None, -1)


def index(t: Tracer, key: Any) -> Tracer:
    """``x[..., ::-1]`` flips; ``x[:, None]`` and ``x[None, :]`` change nothing (axes are named)."""
    entries = [k for k in (key if isinstance(key, tuple) else (key,)) if k is not None]
    for k in entries:
        if k is not Ellipsis and not (isinstance(k, slice) and k in (_FULL, _REVERSED)):
            raise GirError(
                f"indexing a traced value with {k!r} is not supported by gir.trace: only x[..., ::-1] "
                "(a flip) and None / ':' (no-ops: broadcasting is by axis name) are"
            )
    if entries.count(Ellipsis) > 1:
        raise GirError("an index can only have a single ellipsis ('...')")
    if Ellipsis in entries:
        cut = entries.index(Ellipsis)
        lead, tail = entries[:cut], entries[cut + 1 :]
    else:
        lead, tail = entries, []
    own = t.axes
    if _REVERSED not in lead + tail or not own:  # a value constant along every axis flips to itself
        return t
    if len(lead) + len(tail) > len(own):
        raise GirError(
            f"cannot tell which axis x[{', '.join(map(_show, entries))}] flips: the value varies along "
            f"{list(own)} only; write x[..., ::-1] or np.flip(x, axis='{own[-1]}')"
        )
    positions = [i for i, k in enumerate(lead) if k == _REVERSED]
    positions += [len(own) - len(tail) + i for i, k in enumerate(tail) if k == _REVERSED]
    for p in positions:
        t = t.ctx.apply("flip", t, axis=own[p])
    return t


def _show(k: Any) -> str:
    return "..." if k is Ellipsis else ":" if k == _FULL else "::-1"


# -- NumPy functions ----------------------------------------------------------------------------


def _refuse_options(what: str, **options: Any) -> None:
    for key, value in options.items():
        if value is not None:
            raise GirError(f"{what}(..., {key}=...) is not supported by gir.trace")


def _where(ctx, condition, x=None, y=None):
    if x is None or y is None:
        raise GirError(
            "np.where(cond) without branches is not supported by gir.trace; use np.where(cond, a, b)"
        )
    if isinstance(condition, bool | np.bool_):
        return _tracer(ctx, x if condition else y)
    return _select(ctx, condition, x, y)


def _each_axis(op: str, what: str, missing_ok: bool):
    """``what(a, axis=...)``: ``op`` along each axis named (by default every axis of ``a``)."""

    def reduce(ctx, a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        _refuse_options(what, dtype=dtype, out=out, initial=initial, where=where)
        t = _tracer(ctx, a)
        for name in axis_names(ctx, t, axis, what):
            if name in t.axes:
                t = ctx.apply(op, t, axis=name)
            elif not missing_ok:  # along an axis a value is constant on, only some ops keep it
                raise GirError(
                    f"{what} over axis {name!r} of a value that does not vary along it is not supported: "
                    "the axis length is not known while tracing"
                )
        return t

    return reduce


def _scan(op: str, what: str):
    """``what(a, axis=...)``: the running ``op`` along one axis of ``a`` (booleans count as floats)."""

    def scan(ctx, a, axis=None, dtype=None, out=None):
        _refuse_options(what, dtype=dtype, out=out)
        t = Tracer(ctx, ctx.to_float(ctx.lift(a)))
        if axis is None and len(t.axes) != 1:
            raise GirError(f"{what} of a value on axes {list(t.axes)} needs an axis (axis=-1 or axis='E')")
        names = t.axes if axis is None else axis_names(ctx, t, axis, what)
        if len(names) != 1 or names[0] not in t.axes:
            raise GirError(
                f"{what} along {axis!r} of a value on axes {list(t.axes)} is not supported: "
                "the axis length is not known while tracing"
            )
        return ctx.apply(op, t, axis=names[0])

    return scan


def _clip(ctx, a, a_min=None, a_max=None, out=None, **kwargs):
    _refuse_options("np.clip", out=out, **kwargs)
    t = _tracer(ctx, a)
    if a_min is not None:
        t = ctx.apply("maximum", t, a_min)
    if a_max is not None:
        t = ctx.apply("minimum", t, a_max)
    return t


def _part(which: str):
    return lambda ctx, val: getattr(val, which)


def _constant_like(what: str, fill: float | None):
    def like(ctx, a, fill_value=None, dtype=None, order="K", subok=True, shape=None):
        _refuse_options(what, dtype=dtype, shape=shape)
        return _tracer(ctx, fill if fill is not None else fill_value)

    return like


#: NumPy functions that are not a single op applied to their operands (the others: the ops' traced_from).
EXTRA_FUNCTIONS: dict[Any, Callable[..., Any]] = {
    np.where: _where,
    np.clip: _clip,
    np.real: _part("real"),
    np.imag: _part("imag"),
    np.zeros_like: _constant_like("np.zeros_like", 0.0),
    np.ones_like: _constant_like("np.ones_like", 1.0),
    np.full_like: _constant_like("np.full_like", None),
}


def call_function(func: Any, args: tuple, kwargs: dict) -> Any:
    """Apply NumPy function ``func`` to tracers and numbers."""
    rule = _rules()[1].get(func)
    if rule is None:
        raise GirError(f"{function_name(func)} is not supported by gir.trace")
    return rule(_context((*args, *kwargs.values())), *args, **kwargs)


# -- the rules the op registry gives ------------------------------------------------------------


def _rule(op: OpDef, func: Any) -> Callable[..., Any]:
    """How a call of ``func`` (in ``op.traced_from``) becomes ``op``."""
    if op.along == "scan":
        return _scan(op.name, function_name(func))
    if op.along is not None:
        return _each_axis(op.name, function_name(func), missing_ok=op.keeps_constant)
    return _op(op.name)


@derived
def _rules() -> tuple[dict[np.ufunc, Callable[..., Any]], dict[Any, Callable[..., Any]]]:
    """(ufunc rules, function rules): from every registered op's traced_from, then the extra tables."""
    ufuncs: dict[np.ufunc, Callable[..., Any]] = {}
    functions: dict[Any, Callable[..., Any]] = {}
    for op in OPS.values():
        for func in op.traced_from:
            (ufuncs if isinstance(func, np.ufunc) else functions)[func] = _rule(op, func)
    return {**ufuncs, **EXTRA_UFUNCS}, {**functions, **EXTRA_FUNCTIONS}
