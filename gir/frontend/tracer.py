"""Tracer objects: stand-ins for arrays that record what a function computes.

A :class:`Context` owns the :class:`~gir.ir.builder.Builder` of one trace.
Every operation on a :class:`Tracer` becomes a node; an operation already
recorded on the same operands returns the recorded value (hash-consing), so
a subexpression computed twice is recorded once. Python numbers become
``const`` nodes. Complex values, needed for the Faddeeva function of Voigt
profiles, are a pair of real operands (:class:`ComplexTracer`).

How NumPy calls map to ops lives in :mod:`gir.frontend.lowering`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from gir.errors import GirError
from gir.ir.builder import Builder
from gir.ir.graph import Graph, Value, attr_key
from gir.ir.ops import get_op
from gir.ir.types import NUMPY_DTYPES

_active = threading.local()


def active_context() -> Context | None:
    """The innermost trace running in this thread, if any."""
    stack = getattr(_active, "stack", [])
    return stack[-1] if stack else None


class Context:
    """The state of one trace: its builder and the nodes recorded so far."""

    def __init__(self, builder: Builder):
        self.builder = builder
        self.memo: dict[tuple, tuple[Value, ...]] = {}

    def __enter__(self) -> Context:
        _active.__dict__.setdefault("stack", []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active.stack.pop()

    def emit(self, op: str, *inputs: Value, **attributes: Any) -> tuple[Value, ...]:
        """Record ``op`` (or find the identical node recorded before)."""
        key = (op, tuple(sorted((k, attr_key(v)) for k, v in attributes.items())), inputs)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self.builder.op_multi(op, *inputs, **attributes)
        return found

    def lift(self, x: Any) -> Value:
        """The IR value of an operand: a tracer of this trace, one of its values, or a real scalar."""
        if isinstance(x, Value):
            return x
        if isinstance(x, Tracer):
            if x.ctx is not self:
                raise GirError("a traced value from another trace is used here (a closure over a tracer?)")
            return x.value
        if isinstance(x, ComplexTracer) or isinstance(x, complex | np.complexfloating):
            raise GirError("a complex value is used where gir needs a real one: take .real or .imag")
        if isinstance(x, bool | np.bool_):
            return self.emit("const", value=bool(x))[0]
        if isinstance(x, int | float | np.integer | np.floating):
            return self.emit("const", value=float(x))[0]
        if isinstance(x, np.ndarray):
            if x.ndim == 0:
                return self.lift(x[()])
            raise GirError(
                f"a NumPy array of shape {x.shape} is used inside the traced function but is not one "
                "of its inputs; it must be passed as an array argument (declare it, e.g. name='E')"
            )
        raise GirError(f"a value of type {type(x).__name__} cannot be used in a traced computation")

    def apply(self, op: str, *operands: Any, **attributes: Any) -> Tracer:
        """Record ``op`` on operands (tracers or numbers); bools entering arithmetic become 0/1."""
        values = [self.lift(x) for x in operands]
        if op != "where" and get_op(op).elementwise:
            values = [self.to_float(v) for v in values]
        return Tracer(self, self.emit(op, *values, **attributes)[0])

    def to_float(self, v: Value) -> Value:
        if v.type.dtype != "bool":
            return v
        return self.emit("where", v, self.lift(1.0), self.lift(0.0))[0]

    def to_bool(self, x: Any) -> Value:
        """A condition: bools as they are, numbers compared with zero (NumPy truthiness)."""
        v = self.lift(x)
        return v if v.type.dtype == "bool" else self.emit("ne", v, self.lift(0.0))[0]

    def call(self, callee: Graph, operands: list[Any]) -> tuple[Tracer, ...]:
        values = [self.to_float(self.lift(x)) for x in operands]
        return tuple(Tracer(self, v) for v in self.emit("call", *values, callee=callee))


def _ufunc(uf: np.ufunc):
    def method(self, *others):
        return lowering.call_ufunc(uf, (self, *others), {})

    return method


def _reflected(uf: np.ufunc):
    def method(self, other):
        return lowering.call_ufunc(uf, (other, self), {})

    return method


def _refuse(what: str):
    def method(self, *args):
        raise GirError(what)

    return method


_NO_BOOL = (
    "data-dependent control flow: a traced value has no truth value while tracing "
    "(if/while/and/or/not, min()/max() on traced values); use np.where(cond, a, b), "
    "np.minimum or np.maximum instead"
)
_NO_FLOAT = (
    "a traced value cannot be converted to a Python number (float(), int(), math.exp and other "
    "math functions); use the NumPy function, e.g. np.exp"
)


class _Traced:
    """What real and complex tracers share: operators and the refusals."""

    __array_priority__ = 1000
    __hash__ = object.__hash__

    __add__, __radd__ = _ufunc(np.add), _reflected(np.add)
    __sub__, __rsub__ = _ufunc(np.subtract), _reflected(np.subtract)
    __mul__, __rmul__ = _ufunc(np.multiply), _reflected(np.multiply)
    __truediv__, __rtruediv__ = _ufunc(np.divide), _reflected(np.divide)
    __neg__, __pos__, __abs__ = _ufunc(np.negative), _ufunc(np.positive), _ufunc(np.absolute)

    __bool__ = _refuse(_NO_BOOL)
    __float__ = __int__ = __index__ = __complex__ = _refuse(_NO_FLOAT)
    __len__ = __iter__ = _refuse("the length of a traced array is not known while tracing")
    __setitem__ = _refuse("in-place assignment to a traced array is not supported; use np.where")
    __array__ = _refuse(
        "a traced value cannot become a NumPy array (np.asarray, np.array, stacking); "
        "traced values already act as arrays"
    )

    @property
    def shape(self):
        raise GirError("the shape of a traced array is not known while tracing")

    def __array_ufunc__(self, uf, method, *inputs, **kwargs):
        if method != "__call__":
            raise GirError(f"{lowering.ufunc_name(uf)}.{method} is not supported by gir.trace")
        return lowering.call_ufunc(uf, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return lowering.call_function(func, args, kwargs)


class Tracer(_Traced):
    """A real value in a trace: an IR :class:`Value` that acts like a NumPy array."""

    def __init__(self, ctx: Context, value: Value):
        self.ctx = ctx
        self.value = value

    __pow__, __rpow__ = _ufunc(np.power), _reflected(np.power)
    __mod__, __rmod__ = _ufunc(np.mod), _reflected(np.mod)
    __floordiv__, __rfloordiv__ = _ufunc(np.floor_divide), _reflected(np.floor_divide)
    __lt__, __le__ = _ufunc(np.less), _ufunc(np.less_equal)
    __gt__, __ge__ = _ufunc(np.greater), _ufunc(np.greater_equal)
    __eq__, __ne__ = _ufunc(np.equal), _ufunc(np.not_equal)  # type: ignore[assignment]
    __hash__ = object.__hash__
    __and__, __rand__ = _ufunc(np.logical_and), _reflected(np.logical_and)
    __or__, __ror__ = _ufunc(np.logical_or), _reflected(np.logical_or)
    __invert__ = _ufunc(np.logical_not)

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes this value varies along, in the graph's order."""
        return self.value.type.axes

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(NUMPY_DTYPES[self.value.type.dtype])

    @property
    def real(self) -> Tracer:
        return self

    @property
    def imag(self) -> Tracer:
        return self.ctx.apply("const", value=0.0)

    @property
    def T(self) -> Tracer:
        return self

    def __getitem__(self, key: Any) -> Tracer:
        return lowering.index(self, key)

    def sum(self, axis=None, **kwargs):
        return lowering.call_function(np.sum, (self,), {"axis": axis, **kwargs})

    def mean(self, axis=None, **kwargs):
        return lowering.call_function(np.mean, (self,), {"axis": axis, **kwargs})

    def cumsum(self, axis=None, **kwargs):
        return lowering.call_function(np.cumsum, (self,), {"axis": axis, **kwargs})

    def clip(self, a_min=None, a_max=None):
        return lowering.call_function(np.clip, (self, a_min, a_max), {})

    def __repr__(self) -> str:
        return f"<Tracer %{self.value.name or '?'}: {self.value.type}>"


class ComplexTracer(_Traced):
    """``re + 1j*im``; each part a :class:`Tracer` or a Python float (exact zeros stay floats)."""

    def __init__(self, ctx: Context, re: Tracer | float, im: Tracer | float):
        self.ctx = ctx
        self.re = re
        self.im = im

    def _part(self, x: Tracer | float) -> Tracer:
        return x if isinstance(x, Tracer) else self.ctx.apply("const", value=float(x))

    @property
    def real(self) -> Tracer:
        return self._part(self.re)

    @property
    def imag(self) -> Tracer:
        return self._part(self.im)

    def conjugate(self) -> ComplexTracer:
        return lowering.call_ufunc(np.conjugate, (self,), {})

    conj = conjugate

    def __repr__(self) -> str:
        return f"<ComplexTracer re={self.re!r} im={self.im!r}>"


from gir.frontend import lowering  # noqa: E402  (lowering imports the classes above)
