"""The NumPy target's buffer reuse: results bitwise those of the op templates, inputs untouched.

The reference is the shared emitter's plain template source (one new array per
operation), compiled here independently of the backend.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gir
from gir import models as gm
from gir.codegen import numpy_backend
from gir.codegen.emitter import Emitter, emit_function
from gir.ir.graph import Graph
from gir.ir.types import NUMPY_DTYPES
from tests.strategies import random_graphs, random_inputs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T = np.linspace(-1.0, 10.0, 17)
E = np.linspace(78.0, 94.0, 45)


def template(graph: Graph):
    """The graph as plain template source: the reference the in-place code must match bitwise."""
    em = Emitter(numpy_backend.NAMESPACE)
    name = emit_function(em, graph, graph.axes, {}, name="model")
    return em.compile("<reference>")[name]


def layout_args(exe: gir.Executable, theta, **arrays) -> list:
    """The artifact's arguments (graph order, full-rank layout) for a bound or plain executable."""
    return exe._arguments(theta, exe.graph_inputs(arrays), batch=False)[0]


def shirley_model() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=gm.Param(1.0)))
    m.add(gm.GLP("p1", A=gm.Param(10.0), x0=gm.Param(84.0), F=gm.Param(1.0), m=gm.Param(0.3)))
    m.add(gm.GLP("p2", A="0.5*p1.A", x0="p1.x0 + 3.65", F="p1.F", m="p1.m"))
    m.add(gm.Shirley(pShirley=gm.Param(1e-3)))
    m.dynamics("p1.x0", [gm.sinFun(A=gm.Param(0.3), f=gm.Param(0.4), phi=gm.Param(0.0), t0=0.0)])
    return m


def irf_model() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.GLP("p1", A=gm.Param(10.0), x0=gm.Param(84.0), F=gm.Param(1.0), m=gm.Param(0.3)))
    m.dynamics(
        "p1.x0",
        [gm.expFun(A=gm.Param(0.5), tau=gm.Param(1.5), t0=0.0)],
        irf=gm.gaussCONV(SD=gm.Param(0.2, bounds=(1e-3, 1))),
    )
    return m


def same(got, want) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.broadcast_to(g, np.shape(w)), w)


@pytest.mark.parametrize("build", [shirley_model, irf_model])
def test_models_match_the_templates_bitwise_and_reuse_buffers(build):
    exe = gir.compile(build(), target="numpy")
    assert "out=" in exe.source  # buffers are reused
    args = layout_args(exe, exe.theta0, time=T, energy=E)
    copies = [np.copy(a) for a in args]
    same(exe._artifact.call(args), template(exe.graph)(*args))
    same(args, copies)  # the inputs (the caller's axes, the derived inputs) are never written


@pytest.mark.parametrize("build", [shirley_model, irf_model])
def test_call_into_writes_the_callers_array(build):
    exe = gir.compile(build(), target="numpy")
    want = exe(exe.theta0, time=T, energy=E)
    out = np.full((T.size, E.size), np.nan)
    exe.call_into([out], exe.theta0, time=T, energy=E)
    np.testing.assert_array_equal(out, want)


def test_forward_jacobian_matches_central_differences():
    exe = gir.compile(shirley_model(), target="numpy")
    theta = exe.theta0
    value, jac = exe.value_and_jacobian(theta, mode="forward", time=T, energy=E)
    np.testing.assert_allclose(value, exe(theta, time=T, energy=E), rtol=1e-13, atol=1e-13)
    for j in range(theta.size):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        fd = (exe(up, time=T, energy=E) - exe(down, time=T, energy=E)) / (2 * h)
        np.testing.assert_allclose(jac[..., j], fd, rtol=0, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_a_value_without_the_batch_dimension_never_takes_a_batched_result():
    g = gir.parse("""\
graph @main(%t: f64[T], %x: f64[E], %a: f64) -> f64[T,E] {
  %p: f64[T,E] = mul %x, %t
  %q: f64[T,E] = add %p, %a
  %r: f64[T,E] = exp %q
  return %r
}
""")
    exe = gir.compile(g, target="numpy", passes="O0")
    thetas = np.array([[0.1], [-0.2], [0.3]])
    x, t = np.linspace(0, 1, 5), np.linspace(0, 2, 4)
    batch = exe.batch(thetas, x=x, t=t)
    assert batch.shape == (3, 4, 5)
    for row, th in zip(batch, thetas, strict=True):
        np.testing.assert_array_equal(row, np.exp(x * t[:, None] + th[0]))


@SETTINGS
@given(data=st.data())
def test_random_graphs_match_the_templates_bitwise(data):
    graph = data.draw(random_graphs(16, calls=1, max_outputs=3))
    inputs = data.draw(random_inputs(graph))
    exe = gir.compile(graph, target="numpy", passes="O0")
    args = layout_args(exe, None, **inputs)
    copies = [np.copy(a) for a in args]
    want = template(graph)(*args)
    same(exe._artifact.call(args), want)
    same(args, copies)
    results = exe(**inputs)
    results = results if isinstance(results, tuple) else (results,)
    outs = [
        np.full(np.shape(r), -1, NUMPY_DTYPES[v.type.dtype])
        for r, v in zip(results, graph.outputs, strict=True)
    ]
    exe.call_into(outs, **inputs)  # straight into the arrays where they are C-contiguous floats
    same(outs, [np.asarray(r) for r in results])


def test_a_called_graph_whose_argument_carries_more_axes_is_not_computed_in_place():
    g = gir.parse("""\
graph @inner(%y: f64[E], %x: f64[E]) -> f64[E] {
  %d: f64[E] = mul %x, %x
  %q: f64[E] = sub %d, %y
  return %q
}

graph @main(%t: f64[T], %x: f64[E]) -> f64[T,E] {
  %tx: f64[T,E] = add %t, %x
  %r: f64[T,E] = call %tx, %x {callee=@inner}
  return %r
}
""")
    exe = gir.compile(g, target="numpy", passes="O0")
    t, x = np.linspace(0, 1, 3), np.linspace(-1, 1, 4)
    np.testing.assert_array_equal(exe(t=t, x=x), x * x - (t[:, None] + x))


def test_a_buffer_with_a_view_of_it_is_not_written():
    # %r is a flipped view of %e: adding 1 at the last use of %e must not write into %e's buffer
    g = gir.parse("""\
graph @views(%t: f64[T]) -> (f64[T]) {
  %one: f64 = const {value=1.0}
  %e: f64[T] = exp %t
  %r: f64[T] = flip %e {axis=T}
  %a: f64[T] = add %e, %one
  %y: f64[T] = mul %a, %r
  return %y
}
""")
    exe = gir.compile(g, target="numpy", passes="")
    t = np.linspace(-1.0, 1.0, 5)
    np.testing.assert_array_equal(exe(t=t), (np.exp(t) + 1.0) * np.exp(t)[::-1])
