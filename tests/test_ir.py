"""The IR core: types, the op registry, graphs, builder and verifier."""

import subprocess
import sys

import networkx as nx
import pytest

import gir
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import OPS, get_op
from gir.ir.types import Type, promote, union_axes

E = Type("f64", ("E",))
T = Type("f64", ("T",))


def glp_like(axes=("T", "E")):
    b = gir.Builder(axes)
    x = b.input("x", E)
    t = b.input("t", T)
    a, x0 = b.input("a"), b.input("x0")
    d = b.op("sub", x, x0, hint="d")
    s = b.op("mul", a, b.const(2.0), hint="s")
    y = b.op("mul", b.op("exp", b.op("neg", b.op("mul", d, d))), s, t, hint="y")
    return b.build(y, "f")


def test_type_text_and_promotion():
    assert str(Type("f64")) == "f64" and str(Type("f32", ("T", "E"))) == "f32[T,E]"
    assert promote("bool", "f64") == "f64" and promote("i64", "f32") == "f64" and promote("i64") == "i64"
    assert union_axes(("T", "E"), [("E",), ("T",)]) == ("T", "E")
    with pytest.raises(gir.GirError, match="dtype"):
        Type("f16")
    with pytest.raises(gir.GirError, match="not axes of the graph"):
        union_axes(("E",), [("Z",)])


def test_values_get_only_the_axes_they_depend_on():
    g = glp_like()
    types = {v.name: v.type for n in g.nodes for v in n.outputs}
    assert types["d"] == E  # energy only
    assert types["s"] == Type("f64")  # parameters only: a scalar
    assert types["y"] == Type("f64", ("T", "E"))


def test_axis_order_is_the_graphs():
    b = gir.Builder()
    x, t = b.input("x", E), b.input("t", T)
    assert b.op("add", x, t).type.axes == ("E", "T")
    b = gir.Builder(("T", "E"))
    x, t = b.input("x", E), b.input("t", T)
    assert b.op("add", x, t).type.axes == ("T", "E")


def test_structural_equality_and_stable_hash():
    g1, g2 = glp_like(), glp_like()
    assert g1 == g2 and hash(g1) == hash(g2) and g1 is not g2
    assert g1.structural_hash == g2.structural_hash
    code = "from tests.test_ir import glp_like; print(glp_like().structural_hash)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == g1.structural_hash  # the same in another process
    b = gir.Builder()
    x = b.input("x", E)
    assert b.build(b.op("exp", x)) != b.build(b.op("sin", x))


def test_registry_has_every_op_once_with_reference():
    required = """add sub mul div neg pow exp log log1p expm1 sqrt abs sign sin cos tan arctan arctan2
        tanh erf erfc sinc minimum maximum lt le gt ge eq ne where const sum mean cumsum
        wofz_re wofz_im""".split()
    assert set(required) <= set(OPS)
    for name, op in OPS.items():
        assert op.name == name
        if name not in ("call", "const"):
            assert op.numpy is not None
    assert get_op("erf").reference()(0.5) == pytest.approx(0.5204998778130465, rel=1e-15)
    assert get_op("add").reference()(1.0, 2.0, 3.0) == 6.0
    with pytest.raises(gir.GirError, match="unknown op 'frobnicate'"):
        get_op("frobnicate")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda b, x: b.op("exp", x, x), "takes 1 inputs"),
        (lambda b, x: b.op("add", x), "at least 2"),
        (lambda b, x: b.op("sum", x), "needs the attribute 'axis'"),
        (lambda b, x: b.op("sum", x, axis="T"), "axis T is not an axis"),
        (lambda b, x: b.op("exp", x, axis="E"), "has no attribute 'axis'"),
        (lambda b, x: b.op("cumsum", x, axis="E", reverse=1), "wrong kind"),
        (lambda b, x: b.op("where", x, x, x), "condition of where must be bool"),
        (lambda b, x: b.op("add", b.op("lt", x, x), x), "numeric operands"),
        (lambda b, x: b.op("nope", x), "unknown op"),
        (lambda b, x: b.input("x", E), "duplicate input"),
        (lambda b, x: b.input("not a name"), "not an identifier"),
        (lambda b, x: b.input("z", Type("f64", ("T", "E"))), "not in the graph's axis order"),
    ],
)
def test_builder_rejects_bad_nodes(build, message):
    b = gir.Builder()
    x = b.input("x", E)
    with pytest.raises(gir.GirError, match=message):
        build(b, x)


def test_verifier_accepts_good_and_names_the_bad_line():
    g = glp_like()
    assert gir.verify(g) is g
    n = g.nodes
    swapped = Graph(g.inputs, (*n[:4], n[5], n[4], *n[6:]), g.outputs, name="f", axes=g.axes)
    with pytest.raises(gir.VerifyError, match="not defined before") as err:
        gir.verify(swapped)
    assert "= exp %" in str(err.value)  # the offending line is reprinted  # the offending line is reprinted
    wrong_type = Node("exp", [g.inputs[0]], [Value(Type("f64"))])
    with pytest.raises(gir.VerifyError, match="type rule"):
        gir.verify(Graph(g.inputs, [wrong_type], wrong_type.outputs))
    twice = Node("exp", [g.inputs[0]], [g.inputs[0]])
    with pytest.raises(gir.VerifyError, match="defined twice"):
        gir.verify(Graph(g.inputs, [twice], []))
    dangling = Value(E, "ghost")
    with pytest.raises(gir.VerifyError, match="not defined"):
        gir.verify(Graph(g.inputs, [], [dangling]))
    bad_attr = Node("sum", [g.inputs[0]], [Value(Type("f64"))], {"axis": "E", "extra": 1})
    with pytest.raises(gir.VerifyError, match="no attribute 'extra'"):
        gir.verify(Graph(g.inputs, [bad_attr], bad_attr.outputs))


def test_call_maps_a_component_over_extra_axes():
    b = gir.Builder()
    x, a = b.input("x", E), b.input("a")
    peak = b.build(b.op("mul", a, b.op("exp", x)), "peak")
    b = gir.Builder(("T", "E"))
    x, at = b.input("x", E), b.input("at", T)
    (y,) = b.call(peak, x, at)
    assert y.type == Type("f64", ("T", "E"))
    g = gir.verify(b.build(y))
    assert list(g.callees()) == [peak]
    with pytest.raises(gir.GirError, match="input %x is f64\\[E\\]"):
        b.call(peak, at, at)


def test_to_networkx_exports_the_dataflow():
    g = glp_like()
    nxg = g.to_networkx()
    assert isinstance(nxg, nx.MultiDiGraph)
    assert nx.is_directed_acyclic_graph(nxg)
    ops = [d["op"] for _, d in nxg.nodes(data=True) if d["kind"] == "node"]
    assert ops == [n.op for n in g.nodes]
    assert nxg.in_degree(("node", 2)) == 2  # mul %d, %d: two edges from one producer
    assert nx.has_path(nxg, ("input", "x"), ("output", 0))
