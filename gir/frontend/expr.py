"""``gir.expr``: an expression string to a typed graph.

::

    g = gir.expr("A * exp(-(x - x0)**2 / (2 * sd**2))", x="E")

The text is a Python expression restricted to numbers, names, ``+ - * / **``,
unary minus and calls of a few functions (see :data:`FUNCTIONS`); ``pi``
and ``e`` are constants. Names declared as arrays are array inputs (first,
in declaration order); every other name is an ``f64`` parameter, in order of
first appearance. It is lowered through the same tracers as :func:`gir.trace`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.special as sp

from gir.errors import GirError, ParseError
from gir.frontend.trace import axis_order, finish, new_trace

#: Function name -> (implementation, number of arguments; None: two or more).
FUNCTIONS: dict[str, tuple[Any, int | None]] = {
    "exp": (np.exp, 1), "log": (np.log, 1), "ln": (np.log, 1), "sqrt": (np.sqrt, 1), "abs": (np.abs, 1),
    "sin": (np.sin, 1), "cos": (np.cos, 1), "tan": (np.tan, 1), "arctan": (np.arctan, 1),
    "atan": (np.arctan, 1), "tanh": (np.tanh, 1), "erf": (sp.erf, 1), "erfc": (sp.erfc, 1),
    "erfcx": (sp.erfcx, 1), "min": (np.minimum, None), "max": (np.maximum, None),
}  # fmt: skip
CONSTANTS = {"pi": math.pi, "e": math.e}
_BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive}
_COMPARE = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
    ast.NotIn: "not", ast.Is: "is", ast.IsNot: "is",
}  # fmt: skip
_SYNTAX_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Compare: "comparisons",
    ast.BoolOp: "and/or", ast.Lambda: "lambdas", ast.IfExp: "conditional expressions",
    ast.Tuple: "tuples", ast.List: "lists", ast.Dict: "dicts", ast.Starred: "starred arguments",
    ast.NamedExpr: "assignment expressions",
}  # fmt: skip


class _Source:
    def __init__(self, text: str):
        self.text = text
        self.indent = len(text) - len(text.lstrip(" \t"))

    def error(self, message: str, line: int, col: int) -> ParseError:
        """``col`` is 0-based in the parsed (left-stripped) text."""
        lines = self.text.splitlines() or [""]
        col += self.indent if line == 1 else 0
        return ParseError(message, line, col + 1, lines[min(line, len(lines)) - 1])

    def at(self, node: ast.AST, message: str) -> ParseError:
        return self.error(message, node.lineno, node.col_offset)

    def operator(self, node: ast.BinOp | ast.Compare, symbol: str, message: str) -> ParseError:
        """An error at the operator of ``node`` (found in the text after its left operand)."""
        left = node.left
        lines = self.text.lstrip(" \t").splitlines()
        line = lines[left.end_lineno - 1] if left.end_lineno and left.end_lineno <= len(lines) else ""
        col = line.find(symbol, left.end_col_offset or 0)
        if col < 0:
            return self.at(node, message)
        return self.error(message, left.end_lineno, col)


def _check(src: _Source, node: ast.AST, arrays: dict) -> None:
    """Reject what the expression language does not have, naming it and where it is."""
    if isinstance(node, ast.Expression):
        return _check(src, node.body, arrays)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            hint = "; ** is the power operator" if isinstance(node.op, ast.BitXor) else ""
            raise src.operator(node, _op_text(node.op), f"unsupported operator {_op_text(node.op)}{hint}")
        _check(src, node.left, arrays)
        return _check(src, node.right, arrays)
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise src.at(node, f"unsupported operator {_op_text(node.op)}")
        return _check(src, node.operand, arrays)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise src.at(node, f"unsupported constant {node.value!r}; only real numbers")
        return None
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS and node.id not in arrays:
            raise src.at(node, f"{node.id} is a function; call it as {node.id}(...)")
        return None
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            what = f"{ast.unparse(node.func)}(...)"
            raise src.at(
                node.func, f"unsupported call {what}; call a function by its plain name, e.g. exp(x)"
            )
        name = node.func.id
        if name not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise src.at(node.func, f"unknown function {name!r} (known: {known})")
        if node.keywords:
            raise src.at(node.keywords[0].value, f"{name}() takes no keyword arguments")
        arity = FUNCTIONS[name][1]
        n = len(node.args)
        if (arity is not None and n != arity) or (arity is None and n < 2):
            want = arity if arity is not None else "two or more"
            raise src.at(node, f"{name}() takes {want} argument{'s' if arity != 1 else ''}, got {n}")
        for arg in node.args:
            _check(src, arg, arrays)
        return None
    what = _SYNTAX_NAMES.get(type(node), type(node).__name__)
    if isinstance(node, ast.Compare):
        raise src.operator(
            node,
            _COMPARE.get(type(node.ops[0]), "<"),
            f"unsupported syntax: {what} cannot be used in a gir expression",
        )
    raise src.at(node, f"unsupported syntax: {what} cannot be used in a gir expression")


def _op_text(op: ast.AST) -> str:
    return {
        ast.Mod: "%", ast.FloorDiv: "//", ast.BitXor: "^", ast.BitAnd: "&", ast.BitOr: "|", ast.MatMult: "@",
        ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Not: "not",
    }.get(type(op), type(op).__name__)  # fmt: skip


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    assert isinstance(node, ast.Call)
    fn = FUNCTIONS[node.func.id][0]
    args = [_evaluate(a, env) for a in node.args]
    out = args[0]
    for arg in args[1:]:
        out = fn(out, arg)
    return fn(out) if len(args) == 1 else out


def expr(text: str, /, *, axes: Iterable[str] | None = None, name: str = "expr", **arrays: Any):
    """Compile expression ``text`` to a :class:`~gir.ir.graph.Graph` named ``name``.

    Keyword arguments declare array inputs and their axes (``x="E"``); errors
    are :class:`~gir.errors.ParseError` with the line and column at fault.
    """
    if not isinstance(text, str):
        raise GirError(f"gir.expr needs a string, got {type(text).__name__}")
    src = _Source(text)
    try:
        tree = ast.parse(text.lstrip(" \t"), mode="eval")
    except SyntaxError as e:
        raise src.error(f"syntax error: {e.msg}", e.lineno or 1, (e.offset or 1) - 1) from None
    _check(src, tree, arrays)
    callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    names = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in callees),
        key=lambda n: (n.lineno, n.col_offset),
    )
    params = [n.id for n in names if n.id not in arrays and n.id not in CONSTANTS]
    declared, order = axis_order(arrays, axes)
    inputs = [(a, spec) for a, spec in declared.items()] + [(p, ()) for p in dict.fromkeys(params)]
    ctx, env = new_trace(inputs, order)
    env = {**{k: np.float64(v) for k, v in CONSTANTS.items()}, **env}
    with ctx, np.errstate(all="ignore"):
        result = _evaluate(tree.body, env)
    return finish(ctx, result, name)
