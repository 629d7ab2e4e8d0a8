"""Per-op scalar expressions for Numba: one element of each elementwise op.

An elementwise op's NumPy template is itself the Numba expression of one
element when it refers to nothing but ``np`` (Numba compiles NumPy ufuncs on
scalars): ``sub``, ``div``, the comparisons, ``floor``, and any op registered
later with such a template need no entry here. :data:`SCALAR` holds only the
ops whose Numba code differs from the template. An emitter maps the operand
sources (names, array reads or literals), the op's attributes and the operand
dtypes to a Python expression for one element, with the semantics of the
template (the reference): ``math.*`` for the scalar functions, the helpers in
:mod:`gir.codegen.numba_backend.support` where NumPy's ufunc differs from Python
(sign, minimum, maximum, sinc), SciPy's functions (no Numba support) through
:mod:`gir.codegen.numba_backend.faddeeva` and ``math``. Division by zero gives inf/nan
because every kernel is compiled with ``error_model="numpy"``.

Ops along an axis (sum, mean, cumsum, flip: :data:`LOOP_OPS`) are loops, not
expressions; :mod:`gir.codegen.numba_backend.kernel` emits them (sums in NumPy's own
order). Both tables are checked against the op registry on import.

Agreement with the NumPy target, measured as the largest relative difference
on the op tests' inputs (tests/test_numba.py): identical results for the
arithmetic, comparisons, where, minimum/maximum, abs, sign, floor, mod, sqrt,
log, sin, cos, arctan, sums, means and cumulative sums; at most 4e-16 where
libm and NumPy's SIMD loops round differently (exp through ``fast_exp``,
expm1, log1p, tan, tanh, arctan2, erf, pow) and 2e-15 for erfc; wofz_re and
wofz_im 7e-15 and 5e-14, erfcx (w(ix)) 5e-16 (see
:mod:`gir.codegen.numba_backend.faddeeva`). A graph can amplify these like
any rounding difference: exp of arguments near -100 turns 1 ulp into 2e-14
(the dense GLP model in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gir.errors import GirError
from gir.ir.ops import OPS, get_op

#: (operand sources, attributes, operand dtypes) -> expression
ScalarEmitter = Callable[[Sequence[str], Mapping[str, Any], Sequence[str]], str]

#: The helpers generated modules may import, by the module that defines them.
HELPERS = {
    "gir.codegen.numba_backend.support": ("sign", "minimum", "maximum", "sinc", "pairwise_sum"),
    "gir.codegen.numba_backend.fastexp": ("fast_exp",),
    "gir.codegen.numba_backend.faddeeva": ("wofz_re", "wofz_im", "erfcx"),
}


def _is_float(dtypes: Sequence[str]) -> bool:
    return any(d in ("f32", "f64") for d in dtypes)


def literal(value: bool | int | float) -> str:
    """A Python literal Numba reads as a constant (inf and nan through np)."""
    if isinstance(value, bool | int):
        return repr(value)
    if math.isnan(value):
        return "np.nan"
    if math.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    return repr(float(value))


def _fmt(template: str) -> ScalarEmitter:
    return lambda args, attrs, dtypes: template.format(*args)


def _minmax(helper: str, builtin: str) -> ScalarEmitter:
    def emit(args, attrs, dtypes):
        return f"{helper if _is_float(dtypes) else builtin}({args[0]}, {args[1]})"

    return emit


def _sign(args, attrs, dtypes):
    if _is_float(dtypes):
        return f"sign({args[0]})"
    x = args[0]
    return f"(1 if {x} > 0 else (-1 if {x} < 0 else 0))"


def _exp(args, attrs, dtypes, fast: bool = True):
    return f"fast_exp({args[0]})" if fast else f"math.exp({args[0]})"


#: The ops whose Numba expression differs from their NumPy template.
SCALAR: dict[str, ScalarEmitter] = {
    "const": lambda args, attrs, dtypes: literal(attrs["value"]),
    "pow": _fmt("math.pow({0}, {1})"),
    "mod": _fmt("({0} % {1})"),  # Python's floored modulo, as np.mod
    "minimum": _minmax("minimum", "min"),
    "maximum": _minmax("maximum", "max"),
    "abs": _fmt("abs({0})"),
    "sign": _sign,
    "exp": _exp,
    "log": _fmt("math.log({0})"),
    "log1p": _fmt("math.log1p({0})"),
    "expm1": _fmt("math.expm1({0})"),
    "sqrt": _fmt("math.sqrt({0})"),
    "sin": _fmt("math.sin({0})"),
    "cos": _fmt("math.cos({0})"),
    "tan": _fmt("math.tan({0})"),
    "arctan": _fmt("math.atan({0})"),
    "arctan2": _fmt("math.atan2({0}, {1})"),
    "tanh": _fmt("math.tanh({0})"),
    "erf": _fmt("math.erf({0})"),
    "erfc": _fmt("math.erfc({0})"),
    "sinc": _fmt("sinc({0})"),
    "erfcx": _fmt("erfcx({0})"),
    "wofz_re": _fmt("wofz_re({0}, {1})"),
    "wofz_im": _fmt("wofz_im({0}, {1})"),
    "where": _fmt("({1} if {0} else {2})"),
    "bcast": _fmt("{0}"),  # in a loop over the union of the axes, reading the first operand broadcasts it
}

#: Ops along an axis, emitted as loops of their own by :mod:`gir.codegen.numba_backend.kernel`.
LOOP_OPS = ("sum", "mean", "cumsum", "flip")


def _check_tables() -> None:
    """Every op named here is a registered op of the right kind (an elementwise op, an op along an axis)."""
    for name in SCALAR:
        if not get_op(name).elementwise:
            raise GirError(f"the Numba scalar table names op {name!r}, which is not elementwise")
    for name in LOOP_OPS:
        if get_op(name).along is None:
            raise GirError(f"the Numba loop table names op {name!r}, which does not act along an axis")


_check_tables()


def from_template(op: str) -> bool:
    """Whether the NumPy template of elementwise ``op`` is its Numba expression (it refers only to ``np``)."""
    d = OPS.get(op)
    if d is None or not d.elementwise:
        return False
    names = d.template_names()
    return names is not None and names <= {"np"}


def scalar_expr(
    op: str, args: Sequence[str], attrs: Mapping[str, Any], dtypes: Sequence[str], fast_exp: bool = True
) -> str:
    """The Numba expression of one element of ``op`` applied to ``args``."""
    if op == "exp":
        return _exp(args, attrs, dtypes, fast_exp)
    if op in SCALAR:
        return SCALAR[op](args, attrs, dtypes)
    if from_template(op):
        return get_op(op).source(args, attrs)
    raise GirError(f"the numba target has no expression for op {op!r}")


def supported(op: str) -> bool:
    """Whether the Numba target compiles ``op`` (looked up in the registry when asked)."""
    return op == "call" or op in SCALAR or op in LOOP_OPS or from_template(op)
