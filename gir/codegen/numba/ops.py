"""Per-op scalar emitters for Numba: one element of each elementwise op.

An emitter maps the operand sources (names, array reads or literals), the
op's attributes and the operand dtypes to a Python expression for one
element. Every expression has the semantics of the op's NumPy template
(the reference): ``math.*`` for the scalar functions, the helpers in
:mod:`gir.codegen.numba.support` where NumPy's ufunc differs from Python
(sign, minimum, maximum, sinc), and n-ary sums and products evaluated left
to right as the NumPy template does. Division by zero gives inf/nan because
every kernel is compiled with ``error_model="numpy"``.

Non-elementwise ops (sum, mean, cumsum, flip) are loops, not expressions;
:mod:`gir.codegen.numba.kernel` emits them (sums in NumPy's own order).

Agreement with the NumPy target, measured as the largest relative difference
on the op tests' inputs (tests/test_numba.py): identical results for the
arithmetic, comparisons, where, minimum/maximum, abs, sign, floor, mod, sqrt,
log, sin, cos, arctan, sums, means and cumulative sums; at most 4e-16 where
libm and NumPy's SIMD loops round differently (exp through ``fast_exp``,
expm1, log1p, tan, tanh, arctan2, erf, pow) and 2e-15 for erfc; wofz_re and
wofz_im 7e-15 and 5e-14 (see :mod:`gir.codegen.numba.faddeeva`). A graph can
amplify these like any rounding difference: exp of arguments near -100 turns
1 ulp into 2e-14 (the dense GLP model in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: (operand sources, attributes, operand dtypes) -> expression
ScalarEmitter = Callable[[Sequence[str], Mapping[str, Any], Sequence[str]], str]

#: The helpers generated modules may import, by the module that defines them.
HELPERS = {
    "gir.codegen.numba.support": ("sign", "minimum", "maximum", "sinc", "pairwise_sum"),
    "gir.codegen.numba.fastexp": ("fast_exp",),
    "gir.codegen.numba.faddeeva": ("wofz_re", "wofz_im"),
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


def _join(sep: str) -> ScalarEmitter:
    return lambda args, attrs, dtypes: "(" + sep.join(args) + ")"


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


SCALAR: dict[str, ScalarEmitter] = {
    "const": lambda args, attrs, dtypes: literal(attrs["value"]),
    "add": _join(" + "),
    "mul": _join(" * "),
    "sub": _fmt("({0} - {1})"),
    "div": _fmt("({0} / {1})"),
    "neg": _fmt("(-{0})"),
    "pow": _fmt("math.pow({0}, {1})"),
    "mod": _fmt("({0} % {1})"),  # Python's floored modulo, as np.mod
    "minimum": _minmax("minimum", "min"),
    "maximum": _minmax("maximum", "max"),
    "abs": _fmt("abs({0})"),
    "sign": _sign,
    "floor": _fmt("np.floor({0})"),  # math.floor would return an int
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
    "wofz_re": _fmt("wofz_re({0}, {1})"),
    "wofz_im": _fmt("wofz_im({0}, {1})"),
    "lt": _fmt("({0} < {1})"),
    "le": _fmt("({0} <= {1})"),
    "gt": _fmt("({0} > {1})"),
    "ge": _fmt("({0} >= {1})"),
    "eq": _fmt("({0} == {1})"),
    "ne": _fmt("({0} != {1})"),
    "where": _fmt("({1} if {0} else {2})"),
    "bcast": _fmt("{0}"),  # in a loop over the union of the axes, reading the first operand broadcasts it
}

#: Non-elementwise ops, emitted as loops of their own.
LOOP_OPS = ("sum", "mean", "cumsum", "flip")


def scalar_expr(
    op: str, args: Sequence[str], attrs: Mapping[str, Any], dtypes: Sequence[str], fast_exp: bool = True
) -> str:
    """The Numba expression of one element of ``op`` applied to ``args``."""
    if op == "exp":
        return _exp(args, attrs, dtypes, fast_exp)
    return SCALAR[op](args, attrs, dtypes)


def supported(op: str) -> bool:
    return op in SCALAR or op in LOOP_OPS or op == "call"
