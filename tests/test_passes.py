"""The pass infrastructure (rewrites, graph passes, pipelines, debug aids) and the acceptance checks."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gir
from gir.passes import PASSES, PRESETS, Stats, apply_rewrites, parse_pipeline
from tests.evaluate import assert_same, evaluate
from tests.test_passes_golden import CASES

ROOT = Path(__file__).resolve().parents[1]


def glp_naive(x, A, x0, F, m):
    return A * np.exp(-4 * np.log(2) * (1 - m) * ((x - x0) / F) ** 2) / (1 + 4 * m * ((x - x0) / F) ** 2)


GLP_ARGS = {"A": 2.0, "x0": 0.3, "F": 0.7, "m": 0.4}
X = np.linspace(-2, 2, 41)


def ops(graph, op):
    return [n for n in graph.nodes if n.op == op]


def small():
    return gir.parse("""\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %d1: f64[E] = sub %x, %a
  %d2: f64[E] = sub %x, %a
  %s: f64 = add %b, %a
  %t: f64 = add %a, %b
  %zero: f64 = const {value=0.0}
  %one: f64 = const {value=1.0}
  %o: f64 = add %one, %zero
  %p: f64[E] = mul %d1, %s, %o
  %q: f64[E] = mul %d2, %t
  %r: f64[E] = add %p, %q
  return %r
}
""")


# -- acceptance ---------------------------------------------------------------------


def test_glp_written_naively_optimizes_to_one_sub_and_one_exp():
    g = gir.trace(glp_naive, x="E")
    out = gir.optimize(g, "O2", verify=True)
    x, x0 = out.input("x"), out.input("x0")
    assert len([n for n in ops(out, "sub") if n.inputs == (x, x0)]) == 1
    assert len(ops(out, "exp")) == 1
    assert not ops(out, "pow")
    assert_same(evaluate(g, {"x": X, **GLP_ARGS}), evaluate(out, {"x": X, **GLP_ARGS}))


def test_glp_with_the_quadratic_spelled_twice_in_the_ir():
    twice = gir.parse(CASES["O2_naive_glp"][1])  # two (x - x0) / F, two pow
    assert len(ops(twice, "sub")) == 3
    out = gir.optimize(twice, "O2", verify=True)
    assert len(ops(out, "sub")) == 2 and len(ops(out, "exp")) == 1  # x - x0 once, 1 - m once


def test_fixing_m_to_zero_removes_the_lorentzian_factor():
    g = gir.trace(glp_naive, x="E")
    out = gir.optimize(g, "O2", fixed={"m": 0.0}, verify=True)
    assert [v.name for v in out.inputs] == ["x", "A", "x0", "F"]
    assert not ops(out, "div") or all(n.inputs[1] is out.input("F") for n in ops(out, "div"))
    assert len(ops(out, "exp")) == 1 and not ops(out, "add")
    assert all("m" != v.name for n in out.nodes for v in (*n.inputs, *n.outputs))
    args = {k: v for k, v in GLP_ARGS.items() if k != "m"}
    gauss = args["A"] * np.exp(-4 * np.log(2) * ((X - args["x0"]) / args["F"]) ** 2)
    assert_same(evaluate(out, {"x": X, **args}), [gauss])


def test_compiled_executable_loses_the_fixed_parameter():
    g = gir.trace(glp_naive, x="E")
    exe = gir.compile(g, target="numpy", fixed={"m": 0.0})
    assert "m" not in exe.param_names and list(exe.param_names) == ["A", "x0", "F"]
    y = exe(np.array([2.0, 0.3, 0.7]), x=X)
    np.testing.assert_allclose(y, glp_naive(X, 2.0, 0.3, 0.7, 0.0), rtol=1e-12)


def test_custom_pass_example_runs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_pass.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "merge_exps fired" in done.stdout


# -- pipelines ----------------------------------------------------------------------


def test_pipelines_as_string_list_and_preset_agree():
    g = small()
    want = gir.dump(gir.optimize(g, "O1"))
    assert gir.dump(gir.optimize(g, PRESETS["O1"])) == want
    assert gir.dump(gir.optimize(g, ["inline", "fold", PASSES["canonicalize"], "cse,dce"])) == want
    assert gir.dump(gir.optimize(g, ["O1"])) == want
    assert gir.dump(gir.optimize(g, " inline , fold,canonicalize ,cse,dce ")) == want
    assert gir.dump(gir.optimize(g, PRESETS["O2"].split(","))) == gir.dump(gir.optimize(g, "O2"))


def test_o0_only_verifies_and_o2_beats_o1():
    g = small()
    assert gir.optimize(g, "O0") is g
    o1, o2 = gir.optimize(g, "O1"), gir.optimize(g, "O2")
    assert len(o2.nodes) < len(o1.nodes) < len(g.nodes)
    assert (
        gir.dump(o2)
        == """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %d1: f64[E] = sub %x, %a
  %s: f64 = add %a, %b
  %p: f64[E] = mul %s, %d1
  %r: f64[E] = add %p, %p
  return %r
}
"""
    )
    with pytest.raises(gir.VerifyError):
        gir.optimize(gir.Graph(g.inputs, g.nodes[1:], g.outputs), "O0", verify=True)


def test_pipeline_options():
    steps = parse_pipeline("fold{max_size=0},simplify{finite_math},simplify{finite_math=false max_size=3}")
    assert [(s.name, dict(s.options)) for s in steps] == [
        ("fold", {"max_size": 0}),
        ("simplify", {"finite_math": True}),
        ("simplify", {"finite_math": False, "max_size": 3}),
    ]
    assert str(steps[1]) == "simplify{finite_math=true}"
    g = gir.parse(
        "graph @f(%a: f64) -> f64 {\n  %c: f64 = const {value=1.0}\n  %e: f64 = exp %c\n"
        "  %r: f64 = mul %a, %e\n  return %r\n}\n"
    )
    assert len(gir.optimize(g, "fold{max_size=0}").nodes) == 3
    assert len(gir.optimize(g, "fold").nodes) == 2


@pytest.mark.parametrize(
    "pipeline, message",
    [
        ("inline,nosuch", r"unknown pass 'nosuch'; known passes: O0, O1, O2, binarize, canonicalize, cse"),
        ("fold{size=3}", r"pass 'fold' has no option 'size' \(options: max_size\)"),
        ("fold{max_size=big}", r"option 'max_size' of pass 'fold' takes a int, not 'big'"),
        ("simplify{finite_math=1}", r"takes a bool, not 1"),
        ("fold{max_size=}", r"bad pass option"),
        ("fold{max_size=3", r"cannot parse pass pipeline"),
        ("O2{x=1}", r"preset 'O2' takes no options"),
        ("cse,,dce", r"cannot parse pass pipeline"),
    ],
)
def test_bad_pipelines_name_the_problem(pipeline, message):
    with pytest.raises(gir.GirError, match=message):
        gir.optimize(small(), pipeline)


def test_bad_pipeline_items():
    with pytest.raises(gir.GirError, match="cannot use 42 as a pass"):
        gir.optimize(small(), ["cse", 42])
    with pytest.raises(gir.GirError, match="dump must be"):
        gir.optimize(small(), "cse", dump="sometimes")


def test_fixed_parameter_errors():
    g = small()
    with pytest.raises(gir.GirError, match=r"cannot fix 'c': graph @main has no parameter 'c' \(parameters"):
        gir.optimize(g, "O1", fixed={"c": 1.0})
    with pytest.raises(gir.GirError, match=r"'x'.*array input"):
        gir.optimize(g, "O1", fixed={"x": 1.0})
    with pytest.raises(gir.GirError, match="cannot fix parameter 'a'"):
        gir.optimize(g, "O1", fixed={"a": "one"})


def test_fixed_runs_specialize_first_when_the_pipeline_has_none():
    out = gir.optimize(small(), "cse", fixed={"b": 2.0})
    assert [v.name for v in out.inputs] == ["x", "a"]
    both = gir.optimize(small(), "specialize{a=1.0}", fixed={"b": 2.0})
    assert [v.name for v in both.inputs] == ["x"]


# -- debug aids ---------------------------------------------------------------------


def test_dump_after_each_pass():
    out = io.StringIO()
    gir.optimize(small(), "cse,dce", dump="after_each", file=out)
    text = out.getvalue()
    assert text.count("// -----// IR after") == 2
    assert "IR after cse //" in text and "IR after dce //" in text
    after_dce = text.split("IR after dce //----- //\n")[1]
    assert gir.parse(after_dce) == gir.optimize(small(), "cse,dce")


def test_log_one_line_per_rewrite():
    lines = []
    gir.optimize(small(), "simplify", log=lines.append)
    assert lines == ["simplify: drop_units on add", "simplify: drop_units on mul"]
    stream = io.StringIO()
    gir.optimize(small(), "simplify", log=stream)
    assert stream.getvalue().splitlines() == lines
    err = io.StringIO()
    gir.optimize(small(), "simplify", log=True, file=err)
    assert err.getvalue().splitlines() == lines


def test_stats_per_pass():
    g, stats = gir.optimize(small(), "O1", stats=True)
    assert isinstance(g, gir.Graph) and isinstance(stats, Stats)
    assert [s.name for s in stats] == ["inline", "fold", "canonicalize", "cse", "dce"]
    assert stats[1].rewrites == 1 and stats[1].nodes_before == 10 and stats[1].nodes_after == 8
    assert stats[-1].nodes_after == len(g.nodes)
    assert all(s.seconds >= 0 for s in stats) and "canonicalize" in str(stats) and "total" in str(stats)


def test_verify_after_each_pass_names_the_pass(monkeypatch):
    @gir.graph_pass("break_order")
    def break_order(graph):
        return gir.Graph(graph.inputs, graph.nodes[::-1], graph.outputs, name=graph.name)

    with pytest.raises(gir.VerifyError, match="after pass break_order"):
        gir.optimize(small(), "cse,break_order,dce", verify=True)
    monkeypatch.setenv("GIR_VERIFY", "0")
    gir.optimize(small(), "break_order")  # not verified
    monkeypatch.setenv("GIR_VERIFY", "1")
    with pytest.raises(gir.VerifyError):
        gir.optimize(small(), "break_order")


# -- user rewrites and passes -------------------------------------------------------


@gir.rewrite("mul", name="mul_two_to_add", group="test_group")
def mul_two_to_add(node, b):
    """x * 2 -> x + x (binary only)."""
    if len(node.inputs) == 2 and b.constant(node.inputs[1]) == 2.0:
        x = node.inputs[0]
        return b.op("add", x, x)
    return None


@gir.rewrite("add", group="test_group")
def add_self_to_mul(node, b, factor: float = 2.0):
    """x + x -> factor * x ... with factor=2 (the option is only to test options)."""
    x = node.inputs[0]
    if len(node.inputs) == 2 and node.inputs[1] is x and factor != 2.0:
        return b.op("mul", x, b.const(factor))
    return None


def test_a_user_rewrite_runs_by_name_as_object_and_in_its_group():
    g = gir.parse(
        "graph @f(%x: f64[E]) -> f64[E] {\n  %c: f64 = const {value=2.0}\n"
        "  %y: f64[E] = mul %x, %c\n  return %y\n}\n"
    )
    want = "  %y: f64[E] = add %x, %x\n"
    for pipeline in ("mul_two_to_add", [mul_two_to_add], "test_group"):
        assert want in gir.dump(gir.optimize(g, pipeline, verify=True))
    assert PASSES["test_group"].options == {"factor": 2.0}
    assert mul_two_to_add.name == "mul_two_to_add" and mul_two_to_add.ops == ("mul",)
    # calling the decorated function calls the rewrite
    out = apply_rewrites(g, [mul_two_to_add])
    assert want in gir.dump(out)


def test_rewrites_never_mutate_their_input():
    g = small()
    key = g.key
    gir.optimize(g, "O2")
    assert g.key == key


def test_bad_rewrites_are_reported():
    g = gir.parse("graph @f(%x: f64[E], %n: i64) -> f64[E] {\n  %y: f64[E] = neg %x\n  return %y\n}\n")

    @gir.rewrite("neg", name="wrong_dtype")
    def wrong_dtype(node, b):
        return b.const(1)

    with pytest.raises(gir.GirError, match="rewrite 'wrong_dtype' replaced a f64\\[E\\] value by a i64 one"):
        gir.optimize(g, "wrong_dtype")

    @gir.rewrite("neg", name="two_values")
    def two_values(node, b):
        return node.inputs[0], node.inputs[0]

    with pytest.raises(gir.GirError, match="returned 2 values for 1 results"):
        gir.optimize(g, "two_values")

    @gir.rewrite("neg", name="not_a_value")
    def not_a_value(node, b):
        return 1.0

    with pytest.raises(gir.GirError, match=r"returned 1\.0, not a Value"):
        gir.optimize(g, "not_a_value")


def test_a_rewrite_that_never_settles_stops_at_the_cap():
    @gir.rewrite("neg", name="flip_flop")
    def flip_flop(node, b):
        return b.op("neg", node.inputs[0])

    g = gir.parse("graph @f(%x: f64) -> f64 {\n  %y: f64 = neg %x\n  %z: f64 = exp %y\n  return %z\n}\n")
    with pytest.warns(RuntimeWarning, match="'flip_flop' stopped after"):
        out = gir.optimize(g, "flip_flop", verify=True)
    assert gir.dump(out) == gir.dump(g)


def test_pass_names_are_unique_but_redefinition_replaces():
    with pytest.raises(gir.GirError, match="a pass named 'cse' is already registered"):

        @gir.graph_pass("cse")
        def my_cse(graph):
            return graph

    for k in range(2):  # the same function defined again (a re-run cell) replaces the old one

        @gir.graph_pass("test_redefined")
        def redefined(graph, k=k):
            return graph

    assert PASSES["test_redefined"].options == {"k": 1}
    with pytest.raises(gir.GirError, match="rewrite needs the op names"):
        gir.rewrite()(lambda node, b: None)


def test_graph_pass_classes_and_duck_typed_objects():
    @gir.graph_pass("test_rename")
    class Rename:
        def __init__(self, name: str = "renamed"):
            self.name = name

        def run(self, graph):
            return gir.Graph(graph.inputs, graph.nodes, graph.outputs, name=self.name, axes=graph.axes)

    assert gir.optimize(small(), "test_rename").name == "renamed"
    assert gir.optimize(small(), "test_rename{name=other}").name == "other"
    assert gir.optimize(small(), ["cse", Rename("third")]).name == "third"
    with pytest.raises(gir.GirError, match="no option 'nme'"):
        gir.optimize(small(), "test_rename{nme=x}")

    @gir.graph_pass("test_returns_none")
    def returns_none(graph):
        return None

    with pytest.raises(gir.GirError, match="returned NoneType, not a Graph"):
        gir.optimize(small(), "test_returns_none")


def test_compile_takes_pass_objects():
    g = gir.trace(lambda x, a: a * x * 2.0, x="E")
    exe = gir.compile(g, target="numpy", passes=["canonicalize", mul_two_to_add, "O2"])
    np.testing.assert_allclose(exe(np.array([3.0]), x=X), 6.0 * X)


# -- driver semantics ---------------------------------------------------------------


def test_narrowing_retypes_users():
    g = gir.parse("""\
graph @f(%x: f64[E], %t: f64[T], %a: f64) -> f64[T,E] axes [T,E] {
  %zero: f64 = const {value=0.0}
  %z: f64[E] = mul %x, %zero
  %u: f64[E] = add %z, %a
  %e: f64[E] = exp %u
  %w: f64[T,E] = mul %e, %t
  %r: f64[T,E] = add %w, %x
  return %r
}
""")
    out = gir.optimize(g, "simplify{finite_math}", verify=True)
    assert (
        gir.dump(out)
        == """\
graph @f(%x: f64[E], %t: f64[T], %a: f64) -> f64[T,E] axes [T,E] {
  %e: f64 = exp %a
  %w: f64[T] = mul %e, %t
  %r: f64[T,E] = add %w, %x
  return %r
}
"""
    )
    inputs = {"x": np.arange(3.0), "t": np.arange(2.0), "a": 1.5}
    assert_same(evaluate(g, inputs), evaluate(out, inputs))


def test_narrowing_never_changes_an_output_or_breaks_a_user():
    g = gir.parse("""\
graph @f(%x: f64[E], %t: f64[T], %a: f64) -> (f64[T,E], f64[E], f64) axes [T,E] {
  %zero: f64 = const {value=0.0}
  %z: f64[E] = mul %x, %zero
  %u: f64[T,E] = add %z, %t
  %v: f64[E] = add %z, %a
  %s: f64 = mean %z {axis=E}
  %w: f64 = add %s, %a
  return %u, %v, %w
}
""")
    # %u and %v would lose axis E: x*0 stays for them; the mean takes only x (0 * mean(x) = 0)
    out = gir.optimize(g, "simplify{finite_math}", verify=True)
    z = [n for n in out.nodes if n.op == "mul" and n.output.type.axes == ("E",)]
    assert len(z) == 1 and [v.type.axes for v in out.outputs] == [("T", "E"), ("E",), ()]
    assert not any(n.op == "mean" for n in out.nodes)
    inputs = {"x": np.arange(3.0), "t": np.arange(2.0), "a": 1.5}
    assert_same(evaluate(g, inputs), evaluate(out, inputs))


def test_reductions_run_on_the_axes_that_vary():
    """A Shirley background of peaks with time-dependent amplitudes needs cumsums over E only."""

    def model(x, t, a, b, pS):
        peaks = a * (1 + t) * np.exp(-x * x) + b * t / (1 + x * x)
        return peaks + pS * np.flip(np.cumsum(np.flip(peaks, -1), -1), -1) + np.sum(peaks * t, axis=-1)

    g = gir.trace(model, x="E", t="T", axes=("T", "E"))
    out = gir.optimize(g, "O2")
    reductions = [n for n in out.nodes if n.op in ("cumsum", "sum")]
    assert reductions and all(n.inputs[0].type.axes == ("E",) for n in reductions if n.op == "cumsum")
    assert all(len(n.inputs[0].type.axes) == 1 for n in reductions)
    inputs = {"x": np.linspace(-2, 2, 7), "t": np.linspace(0, 1, 3), "a": 1.5, "b": -0.5, "pS": 0.1}
    assert_same(evaluate(g, inputs), evaluate(out, inputs))


def test_a_mean_over_depth_runs_on_the_factors_that_vary_along_it():
    """A peak whose amplitude has a depth profile: the mean over Z takes only the amplitude."""

    def model(x, t, z, A, k, x0):
        amp = A * np.exp(-z / k)
        peak = np.exp(-((x - x0 * (1 + t)) ** 2)) / (1 + t * t)
        return np.mean(amp * peak, axis=-1)

    g = gir.trace(model, x="E", t="T", z="Z", axes=("T", "E", "Z"))
    out = gir.optimize(g, "O2")
    (mean,) = [n for n in out.nodes if n.op == "mean"]
    assert mean.inputs[0].type.axes == ("Z",)
    inputs = {"x": np.linspace(-2, 2, 7), "t": np.linspace(0, 1, 3), "z": np.linspace(0, 5, 4), "A": 1.5,
              "k": 2.0, "x0": 0.3}  # fmt: skip
    assert_same(evaluate(g, inputs), evaluate(out, inputs))


def test_share_reuses_a_smaller_sum_or_product():
    g = gir.parse("""\
graph @main(%x: f64[E], %a: f64, %b: f64) -> (f64[E], f64[E], f64[E], f64[E]) {
  %s: f64[E] = add %x, %a
  %t: f64[E] = add %b, %x, %a
  %p: f64[E] = mul %a, %x
  %q: f64[E] = mul %x, %x, %a, %b
  return %s, %t, %p, %q
}
""")
    out = gir.optimize(g, "share", verify=True)
    t, q = (out.producers()[v] for v in out.outputs[1::2])
    assert t.inputs == (out.outputs[0], out.input("b"))
    assert q.inputs == (out.outputs[2], out.input("x"), out.input("b"))
    inputs = {"x": X, "a": 0.5, "b": -2.0}
    assert_same(evaluate(g, inputs), evaluate(out, inputs))
    assert gir.dump(gir.optimize(out, "share")) == gir.dump(out)


def test_dividing_by_a_reciprocal_needs_finite_math():
    """``(x - c) / F`` with a scalar F becomes one division and a product per point under
    finite_math only: for a subnormal F, ``1/F`` overflows where the quotient may not."""
    g = gir.expr("(x - c) / F", x="E")
    plain = gir.optimize(g, "simplify", verify=True)
    assert sorted(n.op for n in plain.nodes) == ["div", "sub"]
    fast = gir.optimize(g, "simplify{finite_math}", verify=True)
    divs = [n for n in fast.nodes if n.op == "div"]
    assert len(divs) == 1 and divs[0].output.type.axes == ()
    x = np.linspace(1e-12, 1e-10, 5)
    exe = gir.compile(g, "numpy", passes="simplify")
    theta = [{"c": 0.0, "F": 1e-310}[n] for n in exe.param_names]
    np.testing.assert_array_equal(exe(theta, x=x), x / 1e-310)  # finite: up to 1e300
