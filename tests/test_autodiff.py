"""Autodiff: every op's derivative rule against central differences, and the two modes agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import random_graphs, random_inputs

import gir
from gir.ir.ops import OPS
from gir.ir.types import Type
from gir.passes.autodiff import jvp, vjp

E = Type("f64", ("E",))
X = np.linspace(0.1, 1.0, 9)
THETA = np.array([0.7, 1.3, 0.4])
NONDIFF = {"const", "call", "lt", "le", "gt", "ge", "eq", "ne"}


def op_graph(op: str) -> gir.Graph:
    """``op`` applied to positive, parameter-dependent arrays 1.5 + p_i x (a domain every op accepts)."""
    b = gir.Builder()
    x = b.input("x", E)
    ps = [b.input(n) for n in "abc"]
    args = [b.op("add", b.op("mul", p, x), b.const(1.5)) for p in ps]
    if op == "where":
        y = b.op("where", b.op("lt", args[0], args[1]), args[1], args[2])
    elif op == "bcast":
        y = b.op("bcast", ps[0], x)
    elif op in ("sum", "mean", "cumsum", "flip"):
        y = b.op(op, b.op("mul", args[0], args[1]), axis="E")
    elif op in ("wofz_re", "wofz_im"):
        y = b.op(op, b.op("sub", args[0], b.const(1.9)), args[1])  # both signs of Re z
    else:
        d = OPS[op]
        n = d.arity if d.arity is not None else 3
        y = b.op(op, *args[:n])
    return b.build(y, f"d_{op}")


def central(exe, theta, h=1e-6, **arrays):
    cols = []
    for k in range(len(theta)):
        step = h * max(1.0, abs(theta[k]))
        up, down = theta.copy(), theta.copy()
        up[k] += step
        down[k] -= step
        cols.append((np.asarray(exe(up, **arrays)) - np.asarray(exe(down, **arrays))) / (2 * step))
    return np.stack(cols, axis=-1)


def assert_columns_close(got, want, rel=1e-7):
    scale = np.maximum(np.max(np.abs(want), axis=tuple(range(want.ndim - 1))), 1e-300)
    err = np.max(np.abs(got - want), axis=tuple(range(want.ndim - 1))) / scale
    assert np.all((err <= rel) | (np.max(np.abs(want), axis=tuple(range(want.ndim - 1))) < 1e-10)), err


@pytest.mark.parametrize("op", sorted(set(OPS) - NONDIFF))
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_every_op_rule_matches_central_differences(op, mode):
    exe = gir.compile(op_graph(op), "numpy", passes="O0")
    want = central(exe, THETA, x=X)
    got = exe.jacobian(THETA, x=X, mode=mode)
    assert got.shape == want.shape
    assert_columns_close(got, want, rel=1e-7)


def test_every_op_has_a_rule():
    assert {name for name, d in OPS.items() if not d.differentiable} == {"const", "call"}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.data())
def test_reverse_mode_is_the_transpose_of_forward_mode(data):
    """seed . J (forward mode) equals one reverse sweep with that seed, for random graphs."""
    g = data.draw(random_graphs(max_nodes=10, max_outputs=1, calls=1))
    if not g.params:
        return
    inputs = data.draw(random_inputs(g))
    names = [p.name for p in g.params]
    theta = np.array([inputs.pop(n) for n in names], dtype=float)
    exe = gir.compile(g, "numpy", passes="O0")
    y, jac = exe.value_and_jacobian(theta, mode="forward", **inputs)
    seed = np.cos(np.arange(np.size(y)) + 0.3).reshape(np.shape(y))
    want = np.tensordot(seed, jac, axes=np.ndim(y)) if np.ndim(y) else seed * jac
    got = exe.vjp(theta, seed, **inputs)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * (1 + np.max(np.abs(jac))))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.data())
def test_forward_mode_matches_differences_on_random_graphs(data):
    """Random graphs (with kinks: abs, min, max, where) against central differences where smooth."""
    g = data.draw(random_graphs(max_nodes=10, max_outputs=1))
    if not g.params:
        return
    inputs = data.draw(random_inputs(g))
    theta = np.array([inputs.pop(p.name) for p in g.params], dtype=float)
    exe = gir.compile(g, "numpy", passes="O0")
    got = exe.jacobian(theta, mode="forward", **inputs)
    y0 = np.asarray(exe(theta, **inputs))[..., None]
    ahead, behind = central(exe, theta, 1e-6, **inputs), None
    h = 1e-6 * np.maximum(1.0, np.abs(theta))
    ups = np.stack(
        [np.asarray(exe(theta + h[k] * np.eye(len(theta))[k], **inputs)) for k in range(len(theta))], -1
    )
    ahead, behind = (ups - y0) / h, ahead
    smooth = np.abs(ahead - behind) <= 1e-4 * (1 + np.abs(behind))  # a kink inside the step breaks this
    np.testing.assert_allclose(got[smooth], behind[smooth], rtol=1e-5, atol=1e-6)


def test_derivative_graphs_share_work_with_the_value():
    def glp(x, A, x0, F, m):
        u2 = ((x - x0) / F) ** 2
        return A * np.exp(-4 * np.log(2) * (1 - m) * u2) / (1 + 4 * m * u2)

    g = gir.trace(glp, x="E")
    forward = gir.optimize(jvp(g), "O2")
    assert sum(n.op == "exp" for n in forward.nodes) == 1  # one exp for the value and all 4 columns
    assert len(forward.outputs) == 1 + 4


def test_vjp_graph_takes_one_seed_per_output():
    b = gir.Builder()
    x, a = b.input("x", E), b.input("a")
    g = b.build([b.op("mul", a, x), b.op("sum", b.op("exp", b.op("mul", a, x)), axis="E")])
    r = vjp(g)
    assert [v.name for v in r.inputs] == ["x", "a", "seed0", "seed1"]
    assert [v.type for v in r.inputs[2:]] == [E, Type("f64")]
    exe = gir.compile(g, "numpy")
    x_ = np.linspace(0, 1, 5)
    jac = exe.jacobian([0.3], x=x_)
    np.testing.assert_allclose(jac[0][:, 0], x_, rtol=1e-14)
    np.testing.assert_allclose(jac[1], [np.sum(x_ * np.exp(0.3 * x_))], rtol=1e-13)


def test_unknown_parameter_and_mode_are_errors():
    g = op_graph("exp")
    with pytest.raises(gir.GirError, match="cannot differentiate with respect to 'zz'"):
        jvp(g, wrt=["zz"])
    exe = gir.compile(g, "numpy")
    with pytest.raises(gir.InputError, match="mode must be"):
        exe.jacobian(THETA, x=X, mode="sideways")


def moving_peak(scan_axis: str, direct: bool = False) -> gir.Graph:
    """A Gaussian on (T, E) whose centre c(t) = x0 + a sin(f t) depends on three parameters,
    followed by a running sum along ``scan_axis``; with ``direct`` the width also uses x0."""
    T, TE = Type("f64", ("T",)), Type("f64", ("T", "E"))
    b = gir.Builder(("T", "E"))
    t, x = b.input("t", T), b.input("x", Type("f64", ("E",)))
    x0, a, f, w = (b.input(n) for n in ("x0", "a", "f", "w"))
    centre = b.op("add", x0, b.op("mul", a, b.op("sin", b.op("mul", f, t))))
    width = b.op("add", w, b.op("mul", b.const(0.1), x0)) if direct else w
    u = b.op("div", b.op("sub", x, centre), width)
    y = b.op("exp", b.op("neg", b.op("mul", u, u)))
    assert y.type == TE
    return b.build(b.op("add", y, b.op("mul", b.const(0.3), b.op("cumsum", y, axis=scan_axis))), "moving")


@pytest.mark.parametrize(
    "scan_axis, direct, group",
    [("E", False, ["x0", "a", "f"]), ("E", True, ["a", "f"]), ("T", False, None)],
)
def test_parameters_acting_through_one_value_share_a_tangent(scan_axis, direct, group):
    """Parameters that reach the output only through the [T] centre get one tangent on (T, E),
    unless something downstream sums along T (then each keeps its own): columns match
    central differences either way."""
    from gir.passes.autodiff import shared_values

    g = moving_peak(scan_axis, direct)
    shared = shared_values(g, g.params)
    names = [[g.params[k].name for k in ks] for ks in shared.values()]
    assert names == ([group] if group else [])
    scans = sum(n.op == "cumsum" for n in gir.optimize(jvp(g), "O2").nodes)
    assert scans == 1 + len(g.params) - (len(group) - 1 if group else 0)
    exe = gir.compile(g, "numpy")
    arrays = {"t": np.linspace(0, 2, 7), "x": np.linspace(-1, 2, 11)}
    theta = np.array([0.5, 0.4, 1.7, 0.6])
    assert_columns_close(exe.jacobian(theta, mode="forward", **arrays), central(exe, theta, **arrays))


@st.composite
def graphs_through_a_time_value(draw):
    """A random [T] value of parameters a, b, c (an inner random graph) feeding a random graph on
    (T, E) that may sum, scan or flip along either axis: material for shared tangents."""
    inner = draw(random_graphs(max_nodes=6, max_outputs=1, params=("a", "b", "c"), arrays={"t": ("T",)}))
    outer = draw(
        random_graphs(
            max_nodes=8, max_outputs=1, params=("d",), arrays={"v": ("T",), "x": ("E",), "z": ("T", "E")}
        )
    )
    TE, T = Type("f64", ("T", "E")), Type("f64", ("T",))
    b = gir.Builder(("T", "E"))
    ins = {"t": b.input("t", T), "x": b.input("x", Type("f64", ("E",))), "z": b.input("z", TE)}
    ins.update({n: b.input(n) for n in "abcd"})
    (u,) = b.call(inner, *(ins[v.name] for v in inner.inputs))
    a_b_t = b.op("mul", b.const(0.01), ins["a"], ins["b"], ins["t"])
    ins["v"] = vt = b.op("add", u, b.op("mul", b.const(0.1), ins["t"]), a_b_t)  # [T], on a and b at least
    (y,) = b.call(outer, *(ins[v.name] for v in outer.inputs))
    term = b.op("mul", vt, ins["x"])  # on (T, E), through v
    if draw(st.booleans()):
        term = b.op(draw(st.sampled_from(["cumsum", "flip"])), term, axis=draw(st.sampled_from("TE")))
    return b.build(b.op("add", y, term), "through")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(graphs_through_a_time_value(), st.data())
def test_shared_tangents_agree_with_reverse_mode(g, data):
    """Forward mode (sharing tangents where it can) equals reverse mode, element by element."""
    inputs = data.draw(random_inputs(g))
    theta = np.array([inputs.pop(p.name) for p in g.params], dtype=float)
    exe = gir.compile(g, "numpy", passes="O0")
    forward = exe.jacobian(theta, mode="forward", **inputs)
    reverse = exe.jacobian(theta, mode="reverse", **inputs)
    np.testing.assert_allclose(forward, reverse, rtol=1e-10, atol=1e-10 * (1 + np.max(np.abs(reverse))))
