"""The layout pass: choosing and applying a graph's axis order."""

import numpy as np
import pytest

import gir
from gir import models as gm
from gir.ir.verify import verify
from gir.passes import optimize
from gir.passes.layout import choose_order, for_sizes, permute_axes
from tests.available import require_target
from tests.test_numpy_backend_buffers import irf_model

LN2 = np.log(2.0)
T = np.linspace(-1.0, 10.0, 23)
E = np.linspace(80.0, 92.0, 57)
THETA = np.array([10.0, 84.0, 1.0, 0.3, 0.5, 1.2])


def dense(x, t, A, x0, F, m, a, tau):
    pos = x0 + a * np.where(t >= 0, np.exp(-np.maximum(t, 0.0) / tau), 0.0)
    u = ((x - pos) / F) ** 2
    return A * np.exp(-4 * LN2 * (1 - m) * u) / (1 + 4 * m * u)


def traced(axes=("T", "E")):
    return gir.trace(dense, x="E", t="T", axes=axes)


def profiled() -> gm.Model:
    m = irf_model()
    m.profile("p1.A", [gm.pExpDecay(A=gm.Param(5.0), tau=gm.Param(2.0))], axis="depth")
    return m


def test_choose_order_moves_only_the_longest_axis_innermost():
    assert choose_order(("T", "E"), {"T": 212, "E": 1131}) == ("T", "E")
    assert choose_order(("E", "T"), {"T": 212, "E": 1131}) == ("T", "E")
    assert choose_order(("E", "T", "depth"), {"T": 5, "E": 9, "depth": 3}) == ("T", "depth", "E")
    assert choose_order(("E", "T"), {"T": 50, "E": 50}) == ("E", "T")  # a tie keeps the declared order
    assert choose_order(("E", "T"), {"E": 7}) == ("T", "E")  # a missing length counts as 1
    assert choose_order((), {}) == ()


def test_permute_axes_retypes_every_value_in_the_new_order():
    g = optimize(traced(), "O2")
    p = permute_axes(g, ("E", "T"))
    verify(p)
    assert p.axes == ("E", "T")
    two = [v for n in p.nodes for v in n.outputs if len(v.type.axes) == 2]
    assert two and all(v.type.axes == ("E", "T") for v in two)
    assert p.outputs[0].type.axes == ("E", "T")
    assert [v.name for v in p.inputs] == [v.name for v in g.inputs]


def test_permute_axes_to_the_same_order_returns_the_graph():
    g = optimize(traced(), "O2")
    assert permute_axes(g, ("T", "E")) is g


def test_permute_axes_rejects_an_order_of_other_axes():
    with pytest.raises(gir.GirError, match="is not an order of the axes"):
        permute_axes(traced(), ("E", "X"))


def test_permute_axes_follows_called_graphs():
    g = profiled().to_graph()  # unoptimized: components are calls
    assert any(n.op == "call" for n in g.nodes)
    order = ("T", "S", "E", "depth")
    p = permute_axes(g, order)
    verify(p)
    for callee in p.callees():
        assert list(callee.axes) == sorted(callee.axes, key=lambda a: order.index(a) if a in order else 99)


@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_layout_pass_gives_the_transposed_result_exactly(target):
    require_target(target)
    g = traced()
    flipped = optimize(g, "O2,layout{inner=T}")
    assert flipped.axes == ("E", "T")
    want = gir.compile(g, target=target)(THETA, x=E, t=T)
    got = gir.compile(flipped, target=target, passes="O0")(THETA, x=E, t=T)
    assert got.shape == (E.size, T.size)
    np.testing.assert_array_equal(got, want.T)  # elementwise: the same operations per point


def test_layout_pass_without_inner_changes_nothing():
    g = optimize(traced(), "O2")
    assert optimize(g, "layout") is g
    assert optimize(g, "layout{inner=E}") is g


def test_layout_pass_rejects_an_unknown_axis():
    with pytest.raises(gir.GirError, match="has no axis 'Q'"):
        optimize(traced(), "layout{inner=Q}")


def test_layout_keeps_a_model_on_its_declared_grid():
    m = profiled()
    z = np.linspace(0.0, 6.0, 31)
    arrays = {"time": T, "energy": E, "depth": z}
    base = gir.compile(m, target="numpy")
    moved = gir.compile(m, target="numpy", passes="O2,layout{inner=depth}")
    assert moved.graph.axes == ("T", "S", "E", "depth")
    want = base(None, **arrays)
    got = moved(None, **arrays)
    assert got.shape == want.shape == (T.size, E.size)
    # the mean over depth sums in another order: a few ulps of the largest value
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.abs(want).max())


def test_layout_refuses_to_reorder_a_two_axis_input():
    with pytest.raises(gir.GirError, match=r"input 'time\.d'"):
        gir.compile(profiled(), target="numpy", passes="O2,layout{inner=T}")


def test_for_sizes_runs_the_longest_axis_innermost_where_inputs_allow():
    g = optimize(traced(("E", "T")), "O2")
    assert for_sizes(g, {"T": 212, "E": 1131}).axes == ("T", "E")
    assert for_sizes(g, {"T": 1131, "E": 212}) is g
    model = optimize(profiled().to_graph(), "O2")  # axes T, S, depth, E; time.d is [T,S]
    assert for_sizes(model, {"T": 40, "S": 40, "depth": 500, "E": 60}).axes == ("T", "S", "E", "depth")
    assert for_sizes(model, {"T": 900, "S": 900, "depth": 5, "E": 60}) is model  # would reorder time.d
