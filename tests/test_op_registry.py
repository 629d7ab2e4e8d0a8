"""Defining an op through the public API: one registration, and tracing, every target, autodiff and
the analyses follow from the registry. Each test registers its ops itself and removes them again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

import gir
from gir.ir.ops import ALONG_AXIS, KEEPS_FINITE, REQUIRED, floating, reduce_mean
from gir.passes.linearity import NONLINEAR, linear_parameters, output_degree
from tests.available import require_target

TARGETS = ["numpy", "numba", "numba-parallel", "jax", "jax-cpu"]

COSH = gir.OpDef(
    "cosh", 1, floating, "np.cosh({0})", traced_from=(np.cosh,), partials=lambda b, z, x: [b.op("sinh", x)]
)
SINH = gir.OpDef(
    "sinh", 1, floating, "np.sinh({0})", traced_from=(np.sinh,), partials=lambda b, z, x: [b.op("cosh", x)]
)
#: An op along an axis: the product of the elements (NumPy's np.prod).
PROD = gir.OpDef(
    "prod",
    1,
    reduce_mean,
    "np.prod({0}, axis={axis}, keepdims=True)",
    {"axis": (str, REQUIRED)},
    elementwise=False,
    traced_from=(np.prod,),
    along="reduce",
)

X = np.linspace(-2.0, 2.0, 41)


@contextlib.contextmanager
def defined(*ops: gir.OpDef) -> Iterator[None]:
    """The ops registered for the duration, then removed with the compiled graphs that used them."""
    for op in ops:
        assert op.name not in gir.OPS
    done = []
    try:
        for op in ops:
            done.append(gir.register_op(op))
        yield
    finally:
        for op in reversed(done):
            gir.unregister_op(op.name)
        gir.clear_cache()


@pytest.fixture
def hyperbolic() -> Iterator[None]:
    with defined(COSH, SINH):
        yield


def central_differences(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    cols = []
    for i in range(len(theta)):
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        cols.append((f(up) - f(down)) / (2 * h))
    return np.stack(cols, axis=-1)


def test_a_new_op_traces_from_numpy(hyperbolic):
    g = gir.trace(lambda x, a: np.cosh(a * x), x="E")
    assert "cosh" in [n.op for n in g.nodes]
    assert "cosh" in gir.dump(g)
    assert gir.parse(gir.dump(g)) == g


@pytest.mark.parametrize("target", TARGETS)
def test_a_new_op_compiles_and_differentiates_on_every_target(hyperbolic, target):
    require_target(target)
    g = gir.trace(lambda x, a, b: np.cosh(a * x) + np.sinh(b * x), x="E")
    exe = gir.compile(g, target=target)
    theta = np.array([0.7, -1.3])
    expected = np.cosh(0.7 * X) + np.sinh(-1.3 * X)
    np.testing.assert_allclose(exe(theta, x=X), expected, rtol=1e-12, atol=1e-12)
    jac = exe.jacobian(theta, x=X)
    assert jac.shape == (X.size, 2)
    np.testing.assert_allclose(jac, central_differences(lambda t: exe(t, x=X), theta), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(jac[:, 0], X * np.sinh(0.7 * X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jac[:, 1], X * np.cosh(-1.3 * X), rtol=1e-12, atol=1e-12)


def test_a_new_op_is_known_to_the_analyses(hyperbolic):
    g = gir.trace(lambda x, A, a: A * np.cosh(a * x), x="E")
    assert linear_parameters(g) == ("A",)
    assert output_degree(g, ["a"]) == NONLINEAR
    assert "cosh" not in KEEPS_FINITE and "cosh" not in ALONG_AXIS


def test_removing_an_op_removes_what_follows_from_it():
    with defined(COSH, SINH):
        assert gir.trace(lambda x, a: np.cosh(a * x), x="E").nodes
    assert "cosh" not in gir.OPS and "sinh" not in gir.OPS
    with pytest.raises(gir.GirError, match=r"np\.cosh is not supported"):
        gir.trace(lambda x, a: np.cosh(a * x), x="E")
    with pytest.raises(gir.GirError, match="unknown op 'cosh'"):
        gir.parse("graph @g(%x: f64[E]) -> f64[E] {\n  %y: f64[E] = cosh %x\n  return %y\n}")


def test_an_op_along_an_axis_traces_and_couples_its_axis():
    with defined(PROD):
        assert "prod" in ALONG_AXIS
        g = gir.trace(lambda x, a: np.prod(a * x, axis="E") + a, x="E")
        exe = gir.compile(g, target="numpy")
        np.testing.assert_allclose(exe([0.9], x=X[1:6]), np.prod(0.9 * X[1:6]) + 0.9, rtol=1e-14)
        with pytest.raises(gir.GirError, match=r"np\.prod over axis 'T'"):
            gir.trace(lambda x, t: np.prod(x * 2.0, axis="T") + t, x="E", t="T")
    assert "prod" not in ALONG_AXIS


def test_registration_errors_name_the_problem():
    with pytest.raises(gir.GirError, match="'exp' is already defined"):
        gir.register_op(gir.OpDef("exp", 1, floating, "np.exp({0})"))
    with pytest.raises(gir.GirError, match="already traced as op 'exp'"):
        gir.register_op(gir.OpDef("my_exp", 1, floating, "np.exp({0})", traced_from=(np.exp,)))
    assert "my_exp" not in gir.OPS
    with pytest.raises(gir.GirError, match="built in"):
        gir.unregister_op("exp")
    with pytest.raises(gir.GirError, match="unknown op 'no_such_op'"):
        gir.unregister_op("no_such_op")
    with pytest.raises(gir.GirError, match="needs an axis attribute"):
        gir.OpDef("bad", 1, floating, "np.exp({0})", along="reduce")
    with pytest.raises(gir.GirError, match="along must be one of"):
        gir.OpDef("bad", 1, floating, None, {"axis": (str, None)}, elementwise=False, along="sideways")
    with pytest.raises(gir.GirError, match="names an input it does not have"):
        gir.OpDef("bad", 1, floating, "np.exp({0})", linear=(1,))
    with pytest.raises(gir.GirError, match="must be an identifier"):
        gir.OpDef("bad op", 1, floating, "np.exp({0})")
