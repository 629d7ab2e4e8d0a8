"""gir.expr: expression strings to graphs, through the same tracers as gir.trace."""

import math

import numpy as np
import pytest
import scipy.special as sp

import gir

E = np.linspace(-3.0, 4.0, 29)
T = np.linspace(0.0, 2.0, 5)


def evaluate(graph, **inputs):
    return gir.compile(graph, target="numpy", passes="O0")(**inputs)


def close(got, want):
    want = np.asarray(want, dtype=float)
    np.testing.assert_allclose(
        np.broadcast_to(np.asarray(got, dtype=float), want.shape), want, rtol=1e-12, atol=0
    )


CASES = [
    ("A * exp(-(x - x0)**2 / (2 * sd**2))", dict(A=2.0, x0=0.5, sd=0.7),
     lambda x, A, x0, sd: A * np.exp(-((x - x0) ** 2) / (2 * sd**2))),
    ("log(abs(x) + 1) - sqrt(abs(x)) + -x / 3", {},
     lambda x: np.log(np.abs(x) + 1) - np.sqrt(np.abs(x)) + -x / 3),
    ("sin(x) * cos(k*x) + tan(x / 10) + arctan(x) + atan(x) + tanh(x)", dict(k=0.3),
     lambda x, k: np.sin(x) * np.cos(k * x) + np.tan(x / 10) + np.arctan(x) + np.arctan(x) + np.tanh(x)),
    ("A/2 * (1 + erf((x - t0) / (s * sqrt(2)))) + erfc(x)", dict(A=1.5, t0=0.2, s=0.4),
     lambda x, A, t0, s: A / 2 * (1 + sp.erf((x - t0) / (s * np.sqrt(2)))) + sp.erfc(x)),
    ("min(x, a) + max(x, 0, b) + ln(e) * pi", dict(a=1.0, b=-0.5),
     lambda x, a, b: np.minimum(x, a) + np.maximum(np.maximum(x, 0), b) + math.pi),
    ("+x ** 2 ** 0.5 - 2e-1", {}, lambda x: +(x ** 2**0.5) - 0.2),
]  # fmt: skip


@pytest.mark.parametrize(("text", "params", "fn"), CASES, ids=[c[0] for c in CASES])
def test_expressions_evaluate_like_numpy(text, params, fn):
    g = gir.expr(text, x="E")
    assert g.name == "expr"
    assert [v.name for v in g.inputs] == ["x", *params]
    with np.errstate(invalid="ignore"):  # x ** 1.41 of x < 0 is nan in both
        close(evaluate(g, x=E, **params), fn(E, **params))
    assert gir.parse(gir.dump(g)) == g


def test_parameters_in_order_of_first_appearance_arrays_first():
    g = gir.expr("b * x + a * t + b", t="T", x="E")
    assert [v.name for v in g.inputs] == ["t", "x", "b", "a"]
    assert g.axes == ("T", "E")
    assert str(g.outputs[0].type) == "f64[T,E]"
    g2 = gir.expr("x + t", x="E", t="T", axes=("T", "E"))
    assert g2.axes == ("T", "E")
    close(evaluate(g, t=T, x=E, a=2.0, b=0.5), 0.5 * E[None, :] + 2.0 * T[:, None] + 0.5)


def test_parameter_expressions_stay_scalar():
    g = gir.expr("2 * a + exp(b) / max(a, b)")
    assert g.axes == () and str(g.outputs[0].type) == "f64"
    assert [v.name for v in g.inputs] == ["a", "b"]
    assert evaluate(g, a=1.5, b=0.5) == pytest.approx(3 + np.exp(0.5) / 1.5, rel=1e-12)
    g2 = gir.expr("a * x + 4 * log(2) * (1 - m) * b", x="E", name="lin")
    types = {n.op: str(n.outputs[0].type) for n in g2.nodes}
    assert g2.name == "lin" and types["sub"] == "f64" and types["add"] == "f64[E]"
    assert sum(n.op == "log" for n in g2.nodes) == 0  # log(2) of a number is folded


def test_constants_numbers_and_names():
    g = gir.expr("2 * pi + e")
    assert g.inputs == () and [n.op for n in g.nodes] == ["const"]
    assert evaluate(g) == 2 * math.pi + math.e
    assert [v.name for v in gir.expr("e * x", e="E", x="E").inputs] == ["e", "x"]  # a declared array wins
    assert gir.expr("1 / 0").nodes[0].attr("value") == math.inf
    assert gir.expr("  a + 1").inputs[0].name == "a"


def test_expr_and_trace_share_one_lowering():
    def peak(x, A, x0, w):
        return A * np.exp(-((x - x0) ** 2) / w) + abs(x)

    assert gir.expr("A * exp(-(x - x0)**2 / w) + abs(x)", x="E", name="peak") == gir.trace(peak, x="E")


ERRORS = [
    ("a +* b", 4, r"syntax error"),
    ("a + b.c", 5, r"attribute access"),
    ("np.exp(a)", 1, r"unsupported call np\.exp\(\.\.\.\)"),
    ("a + x[0]", 5, r"subscripts"),
    ("a + (b < c)", 8, r"comparisons"),
    ("a and b", 1, r"and/or"),
    ("lambda: a", 1, r"lambdas"),
    ("a if b else c", 1, r"conditional"),
    ("a + foo(b)", 5, r"unknown function 'foo'"),
    ("exp(a, b)", 1, r"exp\(\) takes 1 argument, got 2"),
    ("max(a)", 1, r"max\(\) takes two or more arguments"),
    ("exp(x=a)", 7, r"keyword"),
    ("a % b", 3, r"unsupported operator %"),
    ("2 * a ^ 2", 7, r"\*\* is the power operator"),
    ("a + 'b'", 5, r"unsupported constant 'b'"),
    ("1j * a", 1, r"unsupported constant 1j"),
    ("True * a", 1, r"unsupported constant True"),
    ("a + exp", 5, r"exp is a function"),
    ("(a, b)", 1, r"tuples"),
    ("  x // 2", 5, r"unsupported operator //"),
    ("not a", 1, r"unsupported operator not"),
]


@pytest.mark.parametrize(("text", "column", "match"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_problem_and_its_column(text, column, match):
    with pytest.raises(gir.ParseError, match=match) as info:
        gir.expr(text, x="E")
    assert info.value.line == 1
    assert info.value.column == column
    assert text.strip() in str(info.value)  # the line is reprinted with a caret


def test_multiline_and_declaration_errors():
    with pytest.raises(gir.ParseError) as info:
        gir.expr("(a +\n b.c)")
    assert (info.value.line, info.value.column) == (2, 2)
    with pytest.raises(gir.GirError, match="axis name"):
        gir.expr("x", x=1)
    with pytest.raises(gir.GirError, match="needs a string"):
        gir.expr(3.0)
