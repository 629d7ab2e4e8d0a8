"""Parsing IR text: the exact inverse of :func:`gir.ir.printer.dump`.

``parse(dump(g)) == g`` for every printable graph and ``dump(parse(text)) ==
text`` for canonical text. Nodes are rebuilt through a :class:`Builder`, so the
op registry infers every type and the parser checks it against the declared
one. Blank lines and lines starting with ``#`` are skipped. Malformed text
raises :class:`ParseError` at the 1-based line and column of the offending
token, and never any other exception. The grammar, one construct a line::

    graph  := 'graph' @name '(' [%in ':' type, ...] ')' '->' (type | '(' [type, ...] ')')
              ['axes' '[' axis, ... ']'] '{'   node...   'return' [%v, ...]   '}'
    node   := [%v ':' type, ...] '=' op [%v, ...] ['{' key '=' attr, ... '}']
    type   := dtype ['[' axis, ... ']']
    attr   := true | false | int | float | inf | -inf | nan | ident | "json" | @graph | '[' attr, ... ']'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn, TypeVar

from gir.errors import ParseError
from gir.ir.builder import Builder
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import OPS
from gir.ir.types import DTYPES, Type

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
#: One token after optional blanks; ``bad`` catches any other character (an error).
_TOKEN = re.compile(
    rf"""[ \t]*(?:(?P<str>"(?:[^"\\]|\\.)*")
    |(?P<num>-?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|-inf(?![A-Za-z0-9_.]))
    |(?P<val>%(?:{_NAME}|[0-9]+))
    |(?P<ref>@{_NAME})
    |(?P<id>{_NAME})
    |(?P<sym>->|[(){{}}\[\],:=])
    |(?P<bad>[^ \t]))""",
    re.X,
)
_MAX_DEPTH = 50  # nesting of attribute lists
T = TypeVar("T")


class _Tok(NamedTuple):
    kind: str  # str, num, val (%x), ref (@g), id, sym
    text: str
    col: int


class _Line:
    """The tokens of one line, consumed left to right; errors point into the line."""

    def __init__(self, number: int, text: str):
        self.number, self.text, self.pos = number, text, 0
        self.toks: list[_Tok] = []
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup or ""
            if kind == "bad":
                col = m.start(kind)
                self.fail("unterminated string" if text[col] == '"' else f"unexpected {text[col]!r}", col + 1)
            self.toks.append(_Tok(kind, m.group(kind), m.start(kind) + 1))

    def fail(self, message: str, col: int | None = None) -> NoReturn:
        """Raise a ParseError at ``col`` (default: the next token, or the end of the line)."""
        if col is None:
            col = self.toks[self.pos].col if self.pos < len(self.toks) else len(self.text) + 1
        raise ParseError(message, self.number, col, self.text)

    def expected(self, what: str) -> NoReturn:
        got = self.peek()
        self.fail(f"expected {what}, got {repr(got.text) if got else 'end of line'}")

    def peek(self, kind: str | None = None) -> _Tok | None:
        tok = self.toks[self.pos] if self.pos < len(self.toks) else None
        return tok if tok is not None and kind in (None, tok.kind) else None

    def next(self, what: str, kind: str | None = None) -> _Tok:
        if (tok := self.peek(kind)) is None:
            self.expected(what)
        self.pos += 1
        return tok

    def accept(self, text: str) -> bool:
        """Consume the next token if it is the symbol or keyword ``text``."""
        tok = self.peek()
        ok = tok is not None and tok.kind in ("sym", "id") and tok.text == text
        self.pos += ok
        return ok

    def expect(self, text: str) -> None:
        if not self.accept(text):
            self.expected(repr(text))

    def items(self, close: str, item: Callable[[], T]) -> list[T]:
        """A comma-separated list of ``item()`` ending with the token ``close``."""
        out = [] if self.accept(close) else [item()]
        while out and not self.accept(close):
            if not self.accept(","):
                self.expected(f"',' or {close!r}")
            out.append(item())
        return out

    def commas(self, kind: str, item: Callable[[], T]) -> list[T]:
        """``item()`` repeated with commas between, if the next token is of ``kind``."""
        out = [item()] if self.peek(kind) else []
        while out and self.accept(","):
            out.append(item())
        return out

    def end(self) -> None:
        if (tok := self.peek()) is not None:
            self.fail(f"unexpected {tok.text!r}")

    def guard(self, col: int, action: Callable[[], T]) -> T:
        """Run a builder step; whatever it raises becomes a ParseError at ``col``."""
        try:
            return action()
        except Exception as e:  # type rules of registered ops may raise anything
            self.fail(str(e) or type(e).__name__, col)


def parse(text: str) -> Graph:
    """The graph IR ``text`` stands for: its last graph (earlier ones are call targets)."""
    return _Parser(text).parse()


class _Parser:
    """Recursive descent over the significant lines; ``graphs`` holds the call targets so far."""

    def __init__(self, text: str):
        lines = [(i, s.rstrip()) for i, s in enumerate(text.split("\n"), 1)]
        self.lines = [(i, s) for i, s in lines if s and not s.lstrip().startswith("#")]
        self.first = lines[0][1]
        self.at = 0
        self.graphs: dict[str, Graph] = {}
        self.types: dict[tuple[str, tuple[str, ...]], Type] = {}  # one object per distinct type

    def line(self, missing: str) -> _Line:
        """The next significant line; ``missing`` is the error at the end of the text."""
        if self.at == len(self.lines):
            number, text = self.lines[-1] if self.lines else (1, self.first)
            raise ParseError(missing, number, len(text) + 1 if self.lines else 1, text)
        self.at += 1
        return _Line(*self.lines[self.at - 1])

    def parse(self) -> Graph:
        graph = None
        while graph is None or self.at < len(self.lines):
            line = self.line("empty text: expected a graph")
            if line.peek("id") is None or line.peek().text != "graph":
                line.fail("expected 'graph'")
            graph = self.graph(line)
        return graph

    def graph(self, head: _Line) -> Graph:
        head.next("'graph'")
        name_tok = head.next("a graph name like @main", "ref")
        name = name_tok.text[1:]
        if name in self.graphs:
            head.fail(f"graph @{name} is defined twice", name_tok.col)
        head.expect("(")
        params = head.items(")", lambda: (head.next("an input like %x", "val"), self.colon_type(head)))
        head.expect("->")
        results = head.items(")", lambda: self.type(head)) if head.accept("(") else [self.type(head)]
        axes = None
        if head.accept("axes"):
            head.expect("[")
            toks = head.items("]", lambda: head.next("an axis name", "id"))
            axes = [t.text for t in toks]
            for i, tok in enumerate(toks):
                if tok.text in axes[:i]:
                    head.fail(f"axis {tok.text} is listed twice", tok.col)
        head.expect("{")
        head.end()
        b, env = Builder(axes or ()), {}
        for tok, (type_tok, t) in params:
            if axes is not None and not set(t.axes) <= set(axes):
                head.fail(f"{tok.text}: {t} uses an axis not in axes [{','.join(axes)}]", type_tok.col)
            if tok.text[1:] in env:
                head.fail(f"input {tok.text} is declared twice", tok.col)
            env[tok.text[1:]] = head.guard(tok.col, lambda tok=tok, t=t: b.input(tok.text[1:], t))
        outputs = None
        while True:
            line = self.line(f"graph @{name} is missing its closing '}}'")
            first = line.peek()
            if first.kind == "sym" and first.text == "}":
                line.next("'}'")
                line.end()
                break
            if first.kind == "id" and first.text == "graph":
                line.fail(f"expected '}}' to close graph @{name} before the next graph")
            if outputs is not None:
                line.fail(f"nothing may follow 'return' in graph @{name}")
            if first.kind == "id" and first.text == "return":
                outputs = self.ret(line, env, results)
            else:
                self.node(line, b, env)
        if outputs is None:
            line.fail(f"graph @{name} has no 'return'", first.col)
        self.graphs[name] = graph = b.build(outputs, name=name)
        return graph

    def colon_type(self, line: _Line) -> tuple[_Tok, Type]:
        line.expect(":")
        return self.type(line)

    def type(self, line: _Line) -> tuple[_Tok, Type]:
        """A type like ``f64[T,E]``, with its first token (where type errors point)."""
        tok = line.next("a type like f64[E]", "id")
        if tok.text not in DTYPES:
            line.fail(f"unknown dtype {tok.text!r}; expected one of {', '.join(DTYPES)}", tok.col)
        axes = line.items("]", lambda: line.next("an axis name", "id").text) if line.accept("[") else []
        key = (tok.text, tuple(axes))
        if key not in self.types:
            self.types[key] = line.guard(tok.col, lambda: Type(tok.text, axes))
        return tok, self.types[key]

    def values(self, line: _Line, env: dict[str, Value]) -> list[tuple[_Tok, Value]]:
        """A possibly empty comma-separated list of defined values: operands or returns."""

        def value() -> tuple[_Tok, Value]:
            tok = line.next("a value like %x", "val")
            if tok.text[1:] not in env:
                line.fail(f"unknown value {tok.text}", tok.col)
            return tok, env[tok.text[1:]]

        return line.commas("val", value)

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
        defined: set[str] = set()

        def result() -> tuple[_Tok, tuple[_Tok, Type]]:
            tok = line.next("a result like %y", "val")
            if tok.text[1:] in env or tok.text in defined:
                line.fail(f"value {tok.text} is already defined", tok.col)
            defined.add(tok.text)
            return tok, self.colon_type(line)

        results = line.commas("val", result)
        line.expect("=")
        op = line.next("an op name", "id")
        if op.text not in OPS:
            line.fail(f"unknown op {op.text!r}", op.col)
        inputs = [v for _, v in self.values(line, env)]
        attributes: dict[str, Any] = {}
        if line.accept("{"):
            for key, col, value in line.items("}", lambda: self.attribute(line)):
                if key.text in attributes or key.text not in OPS[op.text].attrs:
                    how = "repeated" if key.text in attributes else f"unknown to op {op.text!r}:"
                    line.fail(f"attribute {how} {key.text!r}", key.col)
                self.check_attribute(line, op.text, key.text, value, col)
                attributes[key.text] = value
        line.end()
        hints = [None if tok.text[1].isdigit() else tok.text[1:] for tok, _ in results]
        hint = hints[0] if len(hints) == 1 else None
        outs = line.guard(op.col, lambda: b.op_multi(op.text, *inputs, hint=hint, **attributes))
        if len(outs) != len(results):
            line.fail(f"op {op.text!r} gives {len(outs)} results, the line names {len(results)}", op.col)
        for (tok, (type_tok, declared)), out in zip(results, outs):
            if declared != out.type:
                line.fail(f"{tok.text} is declared {declared} but {op.text!r} gives {out.type}", type_tok.col)
        named = list(outs)
        if len(outs) > 1:  # one name hint per result
            named = [Value(out.type, hint) for out, hint in zip(outs, hints)]
            b.nodes[-1] = Node(op.text, inputs, named, b.nodes[-1].attrs)
        env.update((tok.text[1:], v) for (tok, _), v in zip(results, named))

    def attribute(self, line: _Line) -> tuple[_Tok, int, Any]:
        """``key=value``: the key's token, the value's column and the value."""
        key = line.next("an attribute name", "id")
        line.expect("=")
        col = tok.col if (tok := line.peek()) else len(line.text) + 1
        return key, col, self.attr_value(line, 0)

    def check_attribute(self, line: _Line, op: str, key: str, value: Any, col: int) -> None:
        """A ParseError at the value where ``callee`` is not a graph (other attributes' kinds are
        checked by the op registry, at the op)."""
        if key == "callee" and not isinstance(value, Graph):
            line.fail(f"attribute 'callee' of op {op!r} must be a graph like @f, got {_show(value)}", col)

    def attr_value(self, line: _Line, depth: int) -> Any:
        tok = line.next("an attribute value")
        if tok.kind == "num":
            number = float if any(c in tok.text for c in ".eEn") else int
            return line.guard(tok.col, lambda: number(tok.text))
        if tok.kind == "str":
            text = line.guard(tok.col, lambda: json.loads(tok.text))
            if not text.isascii() and any("\ud800" <= c <= "\udfff" for c in text):
                line.fail("a string may not hold a lone surrogate (\\ud800-\\udfff)", tok.col)
            return text
        if tok.kind == "ref":
            if tok.text[1:] not in self.graphs:
                line.fail(f"unknown graph {tok.text} (a callee must be defined before its use)", tok.col)
            return self.graphs[tok.text[1:]]
        if tok.kind == "id":
            return {"true": True, "false": False, "inf": math.inf, "nan": math.nan}.get(tok.text, tok.text)
        if tok.text == "[" and depth < _MAX_DEPTH:
            return tuple(line.items("]", lambda: self.attr_value(line, depth + 1)))
        line.fail(f"expected an attribute value, got {tok.text!r}", tok.col)


def _show(value: Any) -> str:
    """An attribute value as the text spells it."""
    if isinstance(value, Graph):
        return f"@{value.name}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)
