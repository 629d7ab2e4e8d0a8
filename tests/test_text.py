"""The IR text format: parse is the exact inverse of dump, and every malformed text is a ParseError."""

from __future__ import annotations

import contextlib
import itertools
import math
import random

import numpy as np
import pytest
from evaluate import evaluate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    INPUT_BOUND,
    MAX_AXIS_LEN,
    VALUE_BOUND,
    graphs_with_bounds,
    random_graphs,
    random_inputs,
)

import gir
from gir.errors import GirError, ParseError
from gir.ir import OPS, Builder, Graph, Type, dump, parse, verify
from gir.ir.ops import REQUIRED, OpDef

F64, E, T, TE = Type("f64"), Type("f64", ("E",)), Type("f64", ("T",)), Type("f64", ("T", "E"))
CONSTS = [
    0,
    1,
    -7,
    2**62,
    True,
    False,
    0.0,
    -0.0,
    1.5,
    -2.25,
    0.1,
    1 / 3,
    1e-300,
    5e-324,
    1e300,
    1e-05,
    1e16,
    1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
]


def roundtrip(g: Graph) -> str:
    """Check both directions of the inverse on ``g``; return its text."""
    text = dump(g)
    back = parse(text)
    assert back == g
    assert back.structural_hash == g.structural_hash
    assert dump(back) == text
    verify(back)
    return text


def canonical(text: str) -> Graph:
    """Check that hand-written ``text`` is canonical: it prints back unchanged."""
    g = parse(text)
    assert dump(g) == text
    assert parse(dump(g)) == g
    return g


# -- round trips --------------------------------------------------------------


def _callees() -> list[Graph]:
    b = Builder()
    u, w = b.input("u"), b.input("w", E)
    two = b.build([b.op("mul", u, w, hint="uw"), b.op("neg", u)], "two")
    b = Builder()
    zero = b.build(b.const(2.5), "zero")
    b = Builder()
    b.input("u")
    return [two, zero, b.build([], "nothing")]


def _attr_choices(op: OpDef) -> list[dict]:
    """Every combination of test values for the attributes of ``op``."""
    options = []
    for key, (kind, _) in op.attrs.items():
        if key == "axis":
            options.append(["T", "E"])
        elif key == "callee":
            options.append(_callees())
        elif key == "value":
            options.append(CONSTS)
        elif kind is bool:
            options.append([False, True])
        else:
            pytest.fail(f"no test values for attribute {key!r} of op {op.name!r}")
    return [dict(zip(op.attrs, combo)) for combo in itertools.product(*options)]


def op_graph(name: str) -> Graph:
    """One graph applying op ``name`` to every input combination and attribute its rules accept."""
    op = OPS[name]
    b = Builder(("T", "E"))
    ins = [
        b.input("x", TE),
        b.input("e", E),
        b.input("a", F64),
        b.input("i", "i64"),
        b.input("s", Type("f32", ("T",))),
        b.input("p", "bool"),
    ]
    x, e, a, i, s, p = ins
    arities = [op.arity] if op.arity is not None else sorted({op.min_arity, op.min_arity + 1, 3})
    outs = []
    for n in arities:
        combos = itertools.product(ins, repeat=n) if n < 3 else [(p, x, a), (p, i, s), (p, e, i), (x, a, e)]
        for operands, attributes in itertools.product(combos, _attr_choices(op)):
            with contextlib.suppress(GirError):
                outs += b.op_multi(name, *operands, hint=f"r{len(outs)}", **attributes)
    assert outs, f"no input combination is accepted by op {name!r}"
    return b.build(outs, name=f"op_{name}")


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_roundtrips(name):
    g = op_graph(name)
    assert {n.op for n in g.nodes} == {name}
    roundtrip(g)


def test_all_ops_in_one_graph():
    """One text holding every op: the main graph calls one graph per op."""
    b = Builder(("T", "E"))
    args = [
        b.input("x", TE),
        b.input("e", E),
        b.input("a"),
        b.input("i", "i64"),
        b.input("s", Type("f32", ("T",))),
        b.input("p", "bool"),
    ]
    outs = [out for name in sorted(OPS) for out in b.call(op_graph(name), *args, hint=name)]
    text = roundtrip(b.build(outs))
    assert all(f"{{callee=@op_{name}}}" in text for name in OPS)


@pytest.mark.parametrize("value", CONSTS, ids=repr)
def test_const_values(value):
    b = Builder()
    text = roundtrip(b.build(b.const(value)))
    back = parse(text).nodes[0].attr("value")
    assert type(back) is type(value)
    assert repr(back) == repr(value)  # -0.0, nan and the last bit of every float survive


def test_numpy_float_attribute_prints_as_a_float():
    b = Builder()
    g = b.build(b.op("const", value=np.float64(0.1)))
    assert "{value=0.1}" in roundtrip(g)


def test_multi_output_graph():
    b = Builder()
    x, a = b.input("x", E), b.input("a")
    y = b.op("mul", x, a, hint="y")
    two, _, nothing = _callees()
    p, q = b.call(two, a, x, hint="pq")
    b.call(nothing, a)  # a node without results
    text = roundtrip(b.build([y, a, y, p, q]))
    assert "-> (f64[E], f64, f64[E], f64[E], f64)" in text
    assert "\n   = call %a {callee=@nothing}\n" in text
    assert "return %y, %a, %y, %pq, %pq_1" in text
    assert "graph @nothing(%u: f64) -> () {\n  return \n}" in text


def test_axes_order_differs_from_inputs():
    b = Builder(("T", "E"))
    x, t, z = b.input("x", E), b.input("t", T), b.input("z", TE)
    y = b.op("add", b.op("mul", x, t, hint="xt"), z, hint="y")
    text = roundtrip(b.build([y, b.op("sum", y, axis="T", hint="s")], "model2d"))
    head = "graph @model2d(%x: f64[E], %t: f64[T], %z: f64[T,E]) -> (f64[T,E], f64[E]) axes [T,E] {"
    assert text.startswith(head)
    assert parse(text).axes == ("T", "E")


def test_graph_axes_without_inputs_on_them():
    b = Builder(("T", "E"))
    g = b.build(b.input("a"))
    assert "axes [T,E]" in roundtrip(g)


def test_nested_calls():
    b = Builder()
    u = b.input("u")
    sq = b.build(b.op("mul", u, u), "sq")
    b = Builder()
    v, w = b.input("v"), b.input("w", E)
    (s,) = b.call(sq, v)
    mid = b.build(b.call(sq, b.op("add", s, w)), "mid")
    b = Builder(("T", "E"))
    x, a = b.input("x", TE), b.input("a")
    (m,) = b.call(mid, a, x)
    (q,) = b.call(sq, m)
    text = roundtrip(b.build(q))
    assert [line.split("(")[0] for line in text.splitlines() if line.startswith("graph")] == [
        "graph @sq",
        "graph @mid",
        "graph @main",
    ]
    assert parse(text).nodes[0].attr("callee").nodes[0].attr("callee") == sq


GLP = """\
graph @glp(%E: f64[E], %A: f64, %x0: f64, %F: f64, %m: f64) -> f64[E] {
  %d: f64[E] = sub %E, %x0
  %u: f64[E] = div %d, %F
  %u2: f64[E] = mul %u, %u
  %0: f64 = const {value=-4.0}
  %1: f64[E] = mul %0, %u2
  %g: f64[E] = exp %1
  %2: i64 = const {value=1}
  return %g
}
"""

TWO_D = """\
graph @peak(%x: f64, %c: f64) -> (f64, f64) {
  %d: f64 = sub %x, %c
  %s: f64 = mul %d, %d
  return %d, %s
}

graph @model(%E: f64[E], %t: f64[T], %k: f64) -> (f64[T,E], f64[T], i64) axes [T,E] {
  %p: f64[E], %p2: f64[E] = call %E, %k {callee=@peak}
  %y: f64[T,E] = mul %p, %t, %p2
  %m: f64[T] = mean %y {axis=E}
  %c: f64[T,E] = cumsum %y {axis=T, reverse=true}
  %neg: bool[T] = lt %m, %k
  %w: f64[T] = where %neg, %m, %t
  %0: i64 = const {value=3}
  %x.y: f64[T,E] = flip %c {axis=E}
  return %x.y, %w, %0
}
"""


def test_canonical_texts():
    glp = canonical(GLP)
    assert glp.nodes[3].outputs[0].name is None and glp.nodes[0].outputs[0].name == "d"
    assert isinstance(glp.nodes[6].attr("value"), int) and glp.nodes[3].attr("value") == -4.0
    model = canonical(TWO_D)
    assert model.name == "model" and model.axes == ("T", "E")
    assert [str(v.type) for v in model.outputs] == ["f64[T,E]", "f64[T]", "i64"]
    assert model.nodes[0].attr("callee").name == "peak"
    assert [v.name for v in model.nodes[0].outputs] == ["p", "p2"]


def test_names_and_hints():
    b = Builder()
    x = b.input("x", E)
    y1 = b.op("neg", x, hint="x")  # collides with the input
    y2 = b.op("neg", y1, hint="not a name")
    y3 = b.op("neg", y2, hint="x_1")  # collides with the renamed y1
    text = roundtrip(b.build([y1, y2, y3]))
    assert "return %x_1, %0, %x_1_1" in text
    assert [v.name for v in parse(text).outputs] == ["x_1", None, "x_1_1"]


def test_axis_names_that_need_quotes():
    b = Builder()
    x = b.input("x", Type("f64", ("true", "E")))
    text = roundtrip(b.build([b.op("sum", x, axis="true"), b.op("flip", x, axis="E")]))
    assert '{axis="true"}' in text and "{axis=E}" in text
    with pytest.raises(GirError, match="axis names must be identifiers"):
        Type("f64", ("E.sub",))


def test_non_canonical_text_is_accepted():
    text = """\
# a comment, then blank lines

graph @main( %x : f64 [E] ,%a:f64 )->(f64[E])   {
    # comments inside a graph
  %1 : f64[ E ] = cumsum %x{ axis = "E" }
  %y: f64[E] = add %1,%a,%a

  return %y\t
}
"""
    g = parse(text)
    assert (
        dump(g)
        == """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %0: f64[E] = cumsum %x {axis=E, reverse=false}
  %y: f64[E] = add %0, %a, %a
  return %y
}
"""
    )


@contextlib.contextmanager
def probe_op():
    """A temporary op ``probe`` whose attribute ``v`` takes any value."""
    op = OpDef("probe", 1, lambda ins, attrs, order: [ins[0]], None, {"v": (object, REQUIRED)})
    OPS["probe"] = op
    try:
        yield op
    finally:
        del OPS["probe"]


ATTR_VALUES = st.recursive(
    st.booleans() | st.integers() | st.floats() | st.text() | st.sampled_from(["inf", "true", "a.b", "x"]),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(ATTR_VALUES)
def test_attribute_values_roundtrip(value):
    with probe_op():
        b = Builder()
        g = b.build(b.op("probe", b.input("x"), v=value))
        roundtrip(g)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs(max_nodes=16, max_outputs=3, calls=2))
def test_random_graphs_roundtrip(g):
    verify(g)
    roundtrip(g)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_graphs_are_numerically_safe(data):
    """The contract of tests/strategies.py: bounded inputs give bounded, finite values."""
    g, bounds = data.draw(graphs_with_bounds(30, max_outputs=3, calls=1))
    inputs = data.draw(random_inputs(g, max_len=MAX_AXIS_LEN))
    assert all(np.max(np.abs(inputs[v.name])) <= INPUT_BOUND for v in g.inputs)
    _, values = evaluate(g, inputs, values=True)
    for v, x in values.items():
        assert v.type.dtype == "bool" or np.all(np.abs(x) <= VALUE_BOUND), (v, x)
        assert v not in bounds or np.all(np.abs(x) <= bounds[v] * (1 + 1e-12)), (v, x, bounds[v])


# -- malformed text -----------------------------------------------------------

OK = """\
graph @f(%x: f64) -> f64 {
  %y: f64 = neg %x
  return %y
}
"""
H = "graph @main(%x: f64[E], %a: f64) -> f64[E] {\n"
R = "  return %y\n}\n"

MALFORMED = [
    # (text, line, column, part of the message)
    ("", 1, 1, "empty text"),
    ("# only a comment\n\n", 1, 1, "empty text"),
    ("grph @main() -> f64 {\n", 1, 1, "expected 'graph'"),
    ("graph main() -> f64 {\n", 1, 7, "graph name"),
    ("graph @main(%x f64) -> f64 {\n", 1, 16, "expected ':'"),
    ("graph @main(%x: f65) -> f64 {\n", 1, 17, "unknown dtype"),
    ("graph @main(%x: f64[E,E]) -> f64 {\n", 1, 17, "repeated axis"),
    ("graph @main(%x: f64, %x: f64) -> f64 {\n", 1, 22, "declared twice"),
    ("graph @main(%0: f64) -> f64 {\n", 1, 13, "not an identifier"),
    ("graph @main(%x: f64) f64 {\n", 1, 22, "expected '->'"),
    ("graph @main(%x: f64) -> f64 axes [T,T] {\n", 1, 37, "listed twice"),
    ("graph @main(%x: f64[E]) -> f64 axes [T] {\n", 1, 17, "not in axes [T]"),
    ("graph @main(%x: f64) -> f64\n", 1, 28, "expected '{'"),
    ("graph @main(%x: f64) -> f64 { %x\n", 1, 31, "unexpected '%x'"),
    (H + "  %y: f64[E] = frobnicate %x\n" + R, 2, 16, "unknown op 'frobnicate'"),
    (H + "  %y: f64[E] = add %x, %q\n" + R, 2, 24, "unknown value %q"),
    (H + "  %x: f64[E] = neg %x\n" + R, 2, 3, "already defined"),
    (H + "  %y: f64[E], %y: f64[E] = neg %x\n" + R, 2, 15, "already defined"),
    (H + "  %y: f64[E] = neg %x, %a\n" + R, 2, 16, "takes 1 inputs, got 2"),
    (H + "  %y: f64[E] = add %x\n" + R, 2, 16, "at least 2"),
    (H + "  %y: f64 = add %x, %a\n" + R, 2, 7, "declared f64 but 'add' gives f64[E]"),
    (H + "  %y: f64[E], %z: f64 = add %x, %a\n" + R, 2, 25, "gives 1 results"),
    (H + "  %y: f64[E] = cumsum %x {axis=T}\n" + R, 2, 16, "axis T is not an axis"),
    (H + "  %y: f64[E] = cumsum %x {axes=E}\n" + R, 2, 27, "unknown to op 'cumsum'"),
    (H + "  %y: f64[E] = cumsum %x {axis=E, axis=E}\n" + R, 2, 35, "repeated"),
    (H + "  %y: f64[E] = cumsum %x {axis=E, reverse=1}\n" + R, 2, 16, "wrong kind"),
    (H + "  %y: f64[E] = cumsum %x {axis=E\n" + R, 2, 33, "expected ',' or '}'"),
    (H + "  %y: f64[E] = cumsum %x {axis=}\n" + R, 2, 32, "expected an attribute value, got '}'"),
    (H + '  %y: f64[E] = cumsum %x {axis="E}\n' + R, 2, 32, "unterminated string"),
    (H + '  %y: f64[E] = cumsum %x {axis="\\q"}\n' + R, 2, 32, "Invalid \\escape"),
    (H + "  %y: f64[E] = sub %x, %a $\n" + R, 2, 27, "unexpected '$'"),
    (H + "  %y: f64[E] = sub %x, %a\n  return %y\n", 3, 12, "missing its closing '}'"),
    (H + "  %y: f64[E] = sub %x, %a\n}\n", 3, 1, "no 'return'"),
    (H + "  %y: f64[E] = sub %x, %a\n  return\n}\n", 3, 3, "declares 1 results, 'return' gives 0"),
    (H + "  %y: f64 = sum %x {axis=E}\n" + R, 3, 10, "%y is f64 but the graph declares f64[E]"),
    (H + "  %y: f64[E] = sub %x, %a\n  return %y\n  %z: f64[E] = neg %y\n}\n", 4, 3, "nothing may follow"),
    (H + "  %y: f64[E] = sub %x, %a\n  return %y\n} extra\n", 4, 3, "unexpected 'extra'"),
    (H + "  %y: f64[E] = sub %x, %a\n" + R + "return %y\n", 5, 1, "expected 'graph'"),
    (H + "  %y: f64[E] = sub %x, %a\n  return %y\n" + OK, 4, 1, "expected '}' to close graph @main"),
    (H + "  %y: f64[E] = call %x {callee=@g}\n" + R, 2, 32, "unknown graph @g"),
    (H + "  %y: f64[E] = call %x {callee=1}\n" + R, 2, 32, "callee' of op 'call' must be a graph"),
    (OK + "\n" + OK, 6, 7, "graph @f is defined twice"),
    (OK + "\n" + OK.replace("@f", "@g").replace("neg %x", "call %x, %x {callee=@f}"), 7, 13, "takes 1"),
    (H + "  %y: f64[E] = const {value=[1, 2]}\n" + R, 2, 16, "wrong kind"),
    (H + "  %y: i64 = const {value=" + "9" * 5000 + "}\n" + R, 2, 26, "Exceeds the limit"),
    (H + "  %y: f64 = const {value=" + "[" * 60 + "}\n" + R, 2, 76, "expected an attribute value, got '['"),
    (H + "  %y: f64[E] = sub %x, %a,\n" + R, 2, 27, "expected a value like %x"),
    (H + "  %y: f64[E] sub %x, %a\n" + R, 2, 14, "expected '='"),
    (H + "  %y: f64[E] = sub %x %a\n" + R, 2, 23, "unexpected '%a'"),
    (H + "  %y: f64[E] = cumsum %x {axis=E} %a\n" + R, 2, 35, "unexpected '%a'"),
    (H + "  %y: f64[E] = %x\n" + R, 2, 16, "expected an op name"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), MALFORMED, ids=[m for *_, m in MALFORMED])
def test_malformed_text(text, line, column, message):
    with pytest.raises(ParseError) as info:
        parse(text)
    e = info.value
    assert message in e.message
    assert (e.line, e.column) == (line, column), e
    assert e.source_line == text.split("\n")[line - 1].rstrip()


def test_malformed_cases_are_distinct():
    assert len({text for text, *_ in MALFORMED}) == len(MALFORMED) >= 25


def test_error_message_shows_line_and_caret():
    with pytest.raises(ParseError) as info:
        parse(H + "  %y: f64[E] = add %x, %q\n" + R)
    assert str(info.value) == "2:24: unknown value %q\n  " + "  %y: f64[E] = add %x, %q\n  " + " " * 23 + "^"
    assert isinstance(info.value, GirError) and isinstance(info.value, gir.ParseError)


# -- fuzzing: mutated text parses or raises ParseError, nothing else ---------

SAMPLES = [OK, GLP, TWO_D, dump(op_graph("cumsum")), dump(op_graph("call"))]
NOISE = st.sampled_from([*'%@{}[](),:=->\n #"\\.0123456789eE-abfilnrtxTE', "graph", "return", "inf", "\r"])


@st.composite
def mutated_texts(draw):
    text = draw(st.sampled_from(SAMPLES) | random_graphs(calls=1).map(dump))
    rnd = random.Random(draw(st.integers(0, 2**32)))  # hypothesis' own draws favour position 0
    for _ in range(draw(st.integers(1, 4))):
        i = rnd.randint(0, len(text))
        j = min(len(text), i + rnd.randint(0, 8))
        action = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "duplicate"]))
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + draw(NOISE | st.text(max_size=3)) + text[i:]
        elif action == "replace":
            text = text[:i] + draw(NOISE) + text[j:]
        elif action == "truncate":
            text = text[:i]
        else:
            text = text[:j] + text[i:]
    return text


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_texts())
def test_fuzzed_text_parses_or_raises_parse_error(text):
    try:
        g = parse(text)
    except ParseError as e:
        lines = text.split("\n")
        assert 1 <= e.line <= len(lines)
        assert e.source_line == lines[e.line - 1].rstrip()
        assert 1 <= e.column <= len(e.source_line) + 1
        assert f"{e.line}:{e.column}: " in str(e)
    else:
        verify(g)
        assert parse(dump(g)) == g
