"""Parsing IR text: the exact inverse of :func:`gir.ir.printer.dump`.

``parse(dump(g)) == g`` for every printable graph, and ``dump(parse(text)) ==
text`` for canonical text. Nodes are rebuilt through a :class:`Builder`, so
every type is inferred by the op registry and checked against the type the
text declares. Blank lines and lines starting with ``#`` are skipped. Any
malformed text raises :class:`ParseError` with the 1-based line and column of
the offending token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import attrs

from gir.errors import ParseError
from gir.ir.builder import Builder
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import OPS
from gir.ir.types import DTYPES, Type

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_TOKEN = re.compile(
    rf"""(?P<str>"(?:[^"\\]|\\.)*")
    |(?P<num>-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|inf(?![A-Za-z0-9_.])))
    |(?P<val>%(?:{_NAME}|[0-9]+))
    |(?P<ref>@{_NAME})
    |(?P<id>{_NAME})
    |(?P<sym>->|[(){{}}\[\],:=])""",
    re.X,
)
_MAX_DEPTH = 50  # nesting of attribute tuples
T = TypeVar("T")


@attrs.frozen
class _Tok:
    kind: str  # str, num, val, ref, id, sym
    text: str
    col: int


class _Line:
    """The tokens of one line, consumed left to right."""

    def __init__(self, number: int, text: str):
        self.number, self.text, self.pos = number, text, 0
        self.toks: list[_Tok] = []
        col = 0
        while True:
            while col < len(text) and text[col] in " \t":
                col += 1
            if col == len(text):
                break
            m = _TOKEN.match(text, col)
            if not m:
                what = "unterminated string" if text[col] == '"' else f"unexpected character {text[col]!r}"
                self.fail(what, col + 1)
            self.toks.append(_Tok(m.lastgroup or "", m.group(), col + 1))
            col = m.end()

    def fail(self, message: str, col: int | None = None) -> NoReturn:
        """Raise a ParseError at ``col`` (default: the next token, or the end of the line)."""
        if col is None:
            col = self.toks[self.pos].col if self.pos < len(self.toks) else len(self.text) + 1
        raise ParseError(message, self.number, col, self.text)

    def peek(self) -> _Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def next(self, what: str, kind: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (kind is not None and tok.kind != kind):
            self.fail(f"expected {what}, got {repr(tok.text) if tok else 'end of line'}")
        self.pos += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.text == text and tok.kind in ("sym", "id"):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> _Tok:
        tok = self.peek()
        if not self.accept(text):
            self.fail(f"expected {text!r}, got {repr(tok.text) if tok else 'end of line'}")
        return tok

    def items(self, close: str, item: Callable[[], T]) -> list[T]:
        """A comma-separated list of ``item()`` up to the token ``close``."""
        out: list[T] = []
        if self.accept(close):
            return out
        while True:
            out.append(item())
            if self.accept(close):
                return out
            self.expect(",")

    def end(self) -> None:
        if (tok := self.peek()) is not None:
            self.fail(f"unexpected {tok.text!r}")

    def guard(self, col: int, action: Callable[[], T]) -> T:
        """Run a builder step; any error it raises becomes a ParseError at ``col``."""
        try:
            return action()
        except Exception as e:  # type rules of user-registered ops may raise anything
            self.fail(str(e) or type(e).__name__, col)


def parse(text: str) -> Graph:
    """The graph that IR ``text`` stands for: its last graph (earlier ones are its callees)."""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str):
        self.lines = [(i, s.rstrip()) for i, s in enumerate(text.split("\n"), 1)]
        self.lines = [(i, s) for i, s in self.lines if s.strip() and not s.lstrip().startswith("#")]
        self.at = 0
        self.graphs: dict[str, Graph] = {}

    def line(self, missing: str) -> _Line:
        if self.at == len(self.lines):
            number, text = self.lines[-1] if self.lines else (1, "")
            raise ParseError(missing, number, len(text) + 1, text)
        self.at += 1
        return _Line(*self.lines[self.at - 1])

    def parse(self) -> Graph:
        graph = None
        while self.at < len(self.lines) or graph is None:
            line = self.line("empty text: expected a graph")
            if line.peek() is None or line.peek().text != "graph":
                line.fail("expected 'graph'")
            graph = self.graph(line)
        return graph

    def graph(self, head: _Line) -> Graph:
        head.expect("graph")
        tok = head.next("a graph name like @main", "ref")
        name = tok.text[1:]
        if name in self.graphs:
            head.fail(f"graph @{name} is defined twice", tok.col)
        head.expect("(")
        params = head.items(")", lambda: (head.next("an input like %x", "val"), head.expect(":"), self.type(head)))
        head.expect("->")
        if head.accept("("):
            results = head.items(")", lambda: (head.peek(), self.type(head)))
        else:
            results = [(head.peek(), self.type(head))]
        axes = None
        if head.accept("axes"):
            head.expect("[")
            axes_toks = head.items("]", lambda: head.next("an axis name", "id"))
            axes = [t.text for t in axes_toks]
            for i, t in enumerate(axes_toks):
                if t.text in axes[:i]:
                    head.fail(f"axis {t.text} is listed twice", t.col)
        head.expect("{")
        head.end()
        b, env = Builder(axes or ()), {}
        for tok, colon, t in params:
            missing = [a for a in t.axes if axes is not None and a not in axes]
            if missing:
                head.fail(f"axis {missing[0]} of %{tok.text[1:]} is not in the graph's axes {axes}", colon.col + 1)
            if tok.text[1:] in env:
                head.fail(f"input {tok.text} is declared twice", tok.col)
            env[tok.text[1:]] = head.guard(tok.col, lambda tok=tok, t=t: b.input(tok.text[1:], t))
        outputs = None
        while True:
            line = self.line(f"graph @{name} is missing its closing '}}'")
            first = line.peek()
            if first.text == "}" and first.kind == "sym":
                line.next("'}'")
                line.end()
                break
            if first.text == "graph" and first.kind == "id":
                line.fail(f"expected '}}' to close graph @{name} before a new graph")
            if outputs is not None:
                line.fail("nothing may follow 'return' in a graph")
            if first.text == "return" and first.kind == "id":
                outputs = self.ret(line, env, results)
            else:
                self.node(line, b, env)
        if outputs is None:
            line.fail(f"graph @{name} has no 'return'", first.col)
        self.graphs[name] = graph = b.build(outputs, name=name)
        return graph

    def type(self, line: _Line) -> Type:
        tok = line.next("a type like f64[E]", "id")
        if tok.text not in DTYPES:
            line.fail(f"unknown dtype {tok.text!r}; expected one of {', '.join(DTYPES)}", tok.col)
        axes = [t.text for t in line.items("]", lambda: line.next("an axis name", "id"))] if line.accept("[") else []
        return line.guard(tok.col, lambda: Type(tok.text, axes))

    def values(self, line: _Line, env: dict[str, Value]) -> list[tuple[_Tok, Value]]:
        """A possibly empty comma-separated list of defined values: operands or returns."""
        out: list[tuple[_Tok, Value]] = []
        if (tok := line.peek()) is None or tok.kind != "val":
            return out
        while True:
            tok = line.next("a value like %x", "val")
            if tok.text[1:] not in env:
                line.fail(f"unknown value {tok.text}", tok.col)
            out.append((tok, env[tok.text[1:]]))
            if not line.accept(","):
                return out

    def ret(self, line: _Line, env: dict[str, Value], results: list[tuple[_Tok, Type]]) -> list[Value]:
        keyword = line.next("'return'")
        values = self.values(line, env)
        line.end()
        if len(values) != len(results):
            line.fail(f"the graph declares {len(results)} results, 'return' gives {len(values)}", keyword.col)
        for (tok, v), (_, declared) in zip(values, results):
            if v.type != declared:
                line.fail(f"{tok.text} is {v.type} but the graph declares {declared}", tok.col)
        return [v for _, v in values]

    def node(self, line: _Line, b: Builder, env: dict[str, Value]) -> None:
        results: list[tuple[_Tok, _Tok, Type]] = []
        while line.peek() is not None and line.peek().kind == "val":
            tok = line.next("a result name")
            if tok.text[1:] in env or any(r[0].text == tok.text for r in results):
                line.fail(f"value {tok.text} is already defined", tok.col)
            line.expect(":")
            results.append((tok, line.peek(), self.type(line)))
            if not line.accept(","):
                break
        line.expect("=")
        op = line.next("an op name", "id")
        if op.text not in OPS:
            line.fail(f"unknown op {op.text!r}", op.col)
        schema = OPS[op.text].attrs
        inputs = [v for _, v in self.values(line, env)]
        attributes: dict[str, Any] = {}
        if line.accept("{"):
            for key, value in line.items("}", lambda: self.attribute(line)):
                if key.text in attributes or key.text not in schema:
                    how = "repeated" if key.text in attributes else f"unknown for op {op.text!r}:"
                    line.fail(f"attribute {how} {key.text!r}", key.col)
                attributes[key.text] = value
        line.end()
        outs = line.guard(op.col, lambda: b.op_multi(op.text, *inputs, **attributes))
        if len(outs) != len(results):
            line.fail(f"op {op.text!r} gives {len(outs)} results here, the line declares {len(results)}", op.col)
        for (tok, type_tok, declared), out in zip(results, outs):
            if declared != out.type:
                line.fail(f"{tok.text} is declared {declared} but {op.text!r} gives {out.type}", type_tok.col)
        named = [Value(out.type, None if tok.text[1].isdigit() else tok.text[1:]) for (tok, _, _), out in zip(results, outs)]
        b.nodes[-1] = Node(op.text, inputs, named, b.nodes[-1].attrs)
        env.update((tok.text[1:], v) for (tok, _, _), v in zip(results, named))

    def attribute(self, line: _Line) -> tuple[_Tok, Any]:
        key = line.next("an attribute name", "id")
        line.expect("=")
        return key, self.attr_value(line, 0)

    def attr_value(self, line: _Line, depth: int) -> Any:
        tok = line.next("an attribute value")
        if tok.kind == "num":
            is_float = any(c in tok.text for c in ".eEn")
            return line.guard(tok.col, lambda: float(tok.text) if is_float else int(tok.text))
        if tok.kind == "str":
            return line.guard(tok.col, lambda: json.loads(tok.text))
        if tok.kind == "ref":
            if tok.text[1:] not in self.graphs:
                line.fail(f"unknown graph {tok.text} (callees must be defined before use)", tok.col)
            return self.graphs[tok.text[1:]]
        if tok.kind == "id":
            return {"true": True, "false": False, "nan": float("nan")}.get(tok.text, tok.text)
        if tok.text == "[" and depth < _MAX_DEPTH:
            return tuple(line.items("]", lambda: self.attr_value(line, depth + 1)))
        line.fail(f"expected an attribute value, got {tok.text!r}", tok.col)
