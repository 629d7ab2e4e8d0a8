"""The JAX targets: every op against the NumPy target, float64 without the global flag,
the blocked cumulative sum, the Faddeeva function, batching, devices and errors."""

import math

import numpy as np
import pytest
import scipy.special

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gir  # noqa: E402
from gir.codegen import jax_backend  # noqa: E402
from gir.codegen.jax_backend import cumsum as cumsum_mod  # noqa: E402
from gir.codegen.jax_backend.faddeeva import wofz  # noqa: E402
from gir.ir.ops import OPS, OpDef, floating, register  # noqa: E402
from gir.ir.types import Type  # noqa: E402

CPU_TARGETS = ["jax", "jax-cpu"]
RTOL = 1e-12
GPU_REASON = next(t.reason for t in gir.targets() if t.name == "jax-gpu")

# Edge values every elementwise op sees (as arrays; parameters must be finite). No subnormals:
# XLA flushes them to zero, inputs and results alike (see test_subnormals_flush_to_zero).
EDGES = np.array(
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -2.5,
        3.0,
        1e-300,
        -1e-300,
        2.5e-308,
        1e-8,
        0.7853981633974483,
        30.0,
        -30.0,
        700.0,
        -745.0,
        1e300,
        -1e300,
        np.inf,
        -np.inf,
        np.nan,
    ]
)
RNG = np.random.default_rng(20240611)
T_LEN, E_LEN = 4, 9


def compile_pair(graph, target):
    return gir.compile(graph, target=target, passes="O0"), gir.compile(graph, target="numpy", passes="O0")


def assert_close(got, want, rtol=RTOL):
    got, want = (got if isinstance(got, tuple) else (got,)), (want if isinstance(want, tuple) else (want,))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        if w.dtype == bool or w.dtype.kind in "iu":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-300, equal_nan=True)


def run_both(graph, target, inputs, rtol=RTOL):
    exe, ref = compile_pair(graph, target)
    assert_close(exe(**inputs), ref(**inputs), rtol)
    return exe


# -- every op of the registry ------------------------------------------------------------------


def binary_graph(op, axes_a, axes_b, dtype="f64", **attrs):
    b = gir.Builder(("T", "E"))
    x = b.input("a", Type(dtype, axes_a))
    y = b.input("b", Type(dtype, axes_b))
    return b.build([b.op(op, x, y, **attrs)], op)


def unary_graph(op, axes, dtype="f64", **attrs):
    b = gir.Builder(("T", "E"))
    x = b.input("a", Type(dtype, axes))
    return b.build([b.op(op, x, **attrs)], op)


ELEMENTWISE = sorted(n for n, d in OPS.items() if d.elementwise and n not in ("const", "where") and d.numpy)
UNARY = [n for n in ELEMENTWISE if OPS[n].arity == 1]
BINARY = [n for n in ELEMENTWISE if OPS[n].arity in (2, None) and not n.startswith("wofz")]
AXIS_OPS = sorted(n for n, d in OPS.items() if "axis" in d.attrs)
N_EDGES = len(EDGES)


def test_the_op_lists_cover_the_registry():
    covered = set(UNARY) | set(BINARY) | set(AXIS_OPS) | {"const", "where", "call", "wofz_re", "wofz_im"}
    assert covered == set(OPS), set(OPS) - covered


@pytest.mark.parametrize("target", CPU_TARGETS)
@pytest.mark.parametrize("op", UNARY)
def test_unary_op_matches_numpy(op, target):
    # one graph, every layout: a parameter, the edge values along E, random values along T and [T,E]
    b = gir.Builder(("T", "E"))
    p, e = b.input("p"), b.input("e", Type("f64", ("E",)))
    t, z = b.input("t", Type("f64", ("T",))), b.input("z", Type("f64", ("T", "E")))
    g = b.build([b.op(op, v) for v in (p, e, t, z)], op)
    inputs = {"p": 1.25, "e": EDGES, "t": RNG.uniform(-3, 3, 5), "z": RNG.uniform(-3, 3, (5, N_EDGES))}
    run_both(g, target, inputs)


@pytest.mark.parametrize("target", CPU_TARGETS)
@pytest.mark.parametrize("op", BINARY)
def test_binary_op_matches_numpy(op, target):
    # one graph, every layout pair; a along T against b along E spans every pair of edge values
    b = gir.Builder(("T", "E"))
    p, q = b.input("p"), b.input("q")
    a, e = b.input("a", Type("f64", ("T",))), b.input("b", Type("f64", ("E",)))
    z1, z2 = b.input("z1", Type("f64", ("T", "E"))), b.input("z2", Type("f64", ("T", "E")))
    pairs = [(p, z1), (z1, p), (z1, z2), (a, e), (e, p), (p, q)]
    g = b.build([b.op(op, u, v) for u, v in pairs], op)
    shape = (N_EDGES, N_EDGES)
    inputs = {
        "p": 1.25,
        "q": -0.75,
        "a": EDGES,
        "b": EDGES,
        "z1": RNG.uniform(-3, 3, shape),
        "z2": RNG.uniform(-3, 3, shape),
    }
    run_both(g, target, inputs)


@pytest.mark.parametrize("target", CPU_TARGETS)
@pytest.mark.parametrize("op", ["add", "mul"])
def test_nary_op_matches_numpy(op, target):
    b = gir.Builder(("T", "E"))
    x, y, z = b.input("x", Type("f64", ("T",))), b.input("y", Type("f64", ("E",))), b.input("z")
    g = b.build([b.op(op, x, y, z), b.op(op, z, z, x, y)], op)
    run_both(g, target, {"x": RNG.uniform(-3, 3, T_LEN), "y": EDGES, "z": 0.3})


@pytest.mark.parametrize("target", CPU_TARGETS)
@pytest.mark.parametrize(
    "op", ["add", "sub", "mul", "neg", "abs", "sign", "minimum", "maximum", "mod", "div", "floor", "lt", "eq"]
)
def test_integer_operands_match_numpy(op, target):
    ints = np.array([-7, -3, -1, 0, 1, 2, 5, 9])
    if OPS[op].arity == 1:
        g = unary_graph(op, ("E",), "i64")
        run_both(g, target, {"a": ints})
    else:
        g = binary_graph(op, ("T",), ("E",), "i64")
        inputs = {"a": ints, "b": ints[ints != 0] if op in ("mod", "div") else ints}
        run_both(g, target, inputs)


@pytest.mark.parametrize("target", CPU_TARGETS)
def test_where_matches_numpy(target):
    b = gir.Builder(("T", "E"))
    c = b.input("c", Type("bool", ("T", "E")))
    x, y, s = b.input("x", Type("f64", ("E",))), b.input("y", Type("f64", ("T",))), b.input("s")
    z = b.input("z", Type("f64", ("T", "E")))
    cmp = b.op("lt", x, y)
    g = b.build([b.op("where", c, x, s), b.op("where", cmp, s, y), b.op("where", c, z, x)], "where")
    inputs = {
        "c": RNG.random((T_LEN, E_LEN)) < 0.5,
        "x": RNG.normal(size=E_LEN),
        "y": RNG.normal(size=T_LEN),
        "s": 2.5,
        "z": RNG.normal(size=(T_LEN, E_LEN)),
    }
    run_both(g, target, inputs)


@pytest.mark.parametrize("target", CPU_TARGETS)
@pytest.mark.parametrize("value", [1.5, -0.0, 1e-300, 1e300, math.inf, -math.inf, math.nan, 3, -2, True])
def test_const_matches_numpy(value, target):
    b = gir.Builder(("E",))
    x = b.input("x", Type("f64", ("E",)))
    k = b.const(value)
    outs = [k] if isinstance(value, bool) else [k, b.op("mul", x, k), b.op("add", k, k)]
    run_both(b.build(outs, "const"), target, {"x": EDGES})


@pytest.mark.parametrize("target", CPU_TARGETS)
@pytest.mark.parametrize("op", AXIS_OPS)
def test_axis_op_matches_numpy(op, target):
    variants = [{"reverse": False}, {"reverse": True}] if op == "cumsum" else [{}]
    # positive (sums of mixed signs cancel: test_blocked_cumsum_accuracy bounds those by cumsum(|x|));
    # 150 points: the cumulative sum works in 3 blocks of 50
    z = RNG.uniform(0.1, 3, (T_LEN, 150))
    bad = z.copy()
    bad[0, 3], bad[1, 5], bad[2, 2], bad[2, 66], bad[3, 1] = np.inf, np.nan, -np.inf, np.inf, 1e308
    bad[3, 2] = 1e308  # overflows in sums
    for attrs in variants:
        b = gir.Builder(("T", "E"))
        a = b.input("a", Type("f64", ("T", "E")))
        g = b.build([b.op(op, a, axis="T", **attrs), b.op(op, a, axis="E", **attrs)], op)
        exe, ref = compile_pair(g, target)
        for data in (z, bad):
            assert_close(exe(a=data), ref(a=data))
        g = unary_graph(op, ("E",), axis="E", **attrs)
        exe, ref = compile_pair(g, target)
        got, want = np.asarray(exe(a=EDGES)), np.asarray(ref(a=EDGES))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        if op in ("sum", "mean", "cumsum"):  # 1e300 - 1e300 cancels: compare within the rounding bound
            bound = 1e-12 * np.abs(ref(a=np.abs(np.nan_to_num(EDGES, posinf=0, neginf=0))))
            finite = np.isfinite(want)
            assert np.all(np.abs(got[finite] - want[finite]) <= np.broadcast_to(bound, want.shape)[finite])
        else:
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("target", CPU_TARGETS)
def test_wofz_ops_match_numpy(target):
    b = gir.Builder(("T", "E"))
    x, y = b.input("x", Type("f64", ("E",))), b.input("y", Type("f64", ("T",)))
    g = b.build([b.op("wofz_re", x, y), b.op("wofz_im", x, y)], "w")
    xs = np.concatenate([-np.geomspace(1e-4, 200, 40), [0.0], np.geomspace(1e-4, 200, 40), [5.5, 6.5, 8.0]])
    ys = np.concatenate([np.geomspace(1e-3, 100, 40), [0.1, 5.0, 7.0]])
    run_both(g, target, {"x": xs, "y": ys})
    # outside the fitting region: correct, if less accurate
    exe, ref = compile_pair(g, target)
    ys = np.array([-3.0, -0.5, -1e-3, 0.0, 1e-12, 1e-6, 150.0, 1e5])
    xs = np.array([-1e8, -300.0, -7.0, -0.3, 0.0, 0.3, 2.0, 9.0, 30.0, 1e8])
    assert_close(exe(x=xs, y=ys), ref(x=xs, y=ys), rtol=1e-10)


@pytest.mark.parametrize("target", CPU_TARGETS)
def test_wofz_parts_share_one_computation(target):
    b = gir.Builder(("E",))
    x, y = b.input("x", Type("f64", ("E",))), b.input("y")
    both = b.build([b.op("wofz_re", x, y), b.op("wofz_im", x, y)], "both")
    b = gir.Builder(("E",))
    x, y = b.input("x", Type("f64", ("E",))), b.input("y")
    one = b.build([b.op("wofz_re", x, y), b.op("exp", x)], "one")

    def divides(graph):
        art = gir.compile(graph, target=target, passes="O0")._artifact
        with jax_backend.x64():
            hlo = art._call.lower(np.ones((5,)), 0.5).compile().as_text()
        return hlo.count(" divide(")

    assert divides(both) <= divides(one) + 2  # the second part adds no second w(z)


# -- random graphs ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", CPU_TARGETS)
def test_random_graphs_agree_with_numpy(target):
    strategies = pytest.importorskip("tests.strategies")

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def check(data):
        g = data.draw(strategies.random_graphs(max_nodes=10, calls=1))
        inputs = data.draw(strategies.random_inputs(g))
        exe, ref = compile_pair(g, target)
        assert_close(exe(**inputs), ref(**inputs))

    check()


# -- float64 without the global flag ------------------------------------------------------------


def small_model():
    b = gir.Builder(("T", "E"))
    x, t = b.input("x", Type("f64", ("E",))), b.input("t", Type("f64", ("T",)))
    a, x0, w = b.input("a"), b.input("x0"), b.input("w")
    d = b.op("div", b.op("sub", x, x0), w)
    y = b.op("mul", a, b.op("exp", b.op("neg", b.op("mul", d, d))), b.op("add", b.const(1.0), t))
    s = b.op("cumsum", y, axis="E", reverse=True)
    return b.build([b.op("add", y, b.op("mul", b.const(0.01), s)), b.op("sum", y, axis="T")], "small")


def test_x64_flag_is_untouched_and_results_are_float64():
    assert not jax.config.jax_enable_x64
    exe, ref = compile_pair(small_model(), "jax-cpu")
    x, t = np.linspace(-3, 3, 50), np.linspace(0, 1, 5)
    got = exe([1.3, 0.1, 0.7], x=x, t=t)
    assert not jax.config.jax_enable_x64
    assert all(g.dtype == np.float64 for g in got)
    assert_close(got, ref([1.3, 0.1, 0.7], x=x, t=t))
    # a value that float32 cannot hold survives
    tiny = exe([1e-200, 0.1, 0.7], x=x, t=t)[1]
    assert np.all(tiny > 0)
    exe.batch(np.array([[1.0, 0.0, 1.0], [2.0, 0.5, 0.5]]), x=x, t=t)
    assert not jax.config.jax_enable_x64
    assert jnp.ones(2).dtype == jnp.float32  # the user's JAX is still in its own mode


def test_constants_are_host_scalars_in_the_source():
    exe = gir.compile(small_model(), target="jax", passes="O0")
    assert "float64(1.0)" in exe.source and "jnp.float64" not in exe.source
    assert "_cumsum(" in exe.source and "# " in exe.source


def test_float32_operands_promote_like_numpy():
    b = gir.Builder(("E",))
    x = b.input("x", Type("f32", ("E",)))
    g = b.build([b.op("mul", x, b.const(0.1)), b.op("exp", x)], "f32")
    exe, ref = compile_pair(g, "jax")
    xs = np.linspace(-1, 1, 5, dtype=np.float32)
    (got_mul, got_exp), (want_mul, want_exp) = exe(x=xs), ref(x=xs)
    assert got_mul.dtype == want_mul.dtype == np.float64  # the constant is f64, as the IR types say
    assert got_exp.dtype == want_exp.dtype == np.float32
    np.testing.assert_allclose(got_mul, want_mul, rtol=1e-15)
    np.testing.assert_allclose(got_exp, want_exp, rtol=2e-7)  # XLA's float32 exp: a few ulps off NumPy's


def test_wofz_of_float32_operands_is_float32():
    b = gir.Builder(("E",))
    x = b.input("x", Type("f32", ("E",)))
    g = b.build([b.op("wofz_re", x, x), b.op("wofz_im", x, x)], "w32")
    exe, ref = compile_pair(g, "jax")
    xs = np.linspace(0.1, 3, 7, dtype=np.float32)
    for got, want in zip(exe(x=xs), ref(x=xs), strict=True):
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_subnormals_flush_to_zero():
    # XLA on CPU runs with denormals flushed: a documented difference to NumPy
    b = gir.Builder(("E",))
    x = b.input("x", Type("f64", ("E",)))
    g = b.build([b.op("log", x), b.op("exp", x)], "ftz")
    (log, exp) = gir.compile(g, target="jax-cpu", passes="O0")(x=np.array([5e-324, -745.0]))
    assert log[0] == -np.inf and exp[1] == 0.0


# -- the cumulative sum lowering ---------------------------------------------------------------


def np_cumsum(x, axis, reverse):
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis), axis)
    return np.cumsum(x, axis)


_CUMSUMS = {}


def jax_cumsum(x, axis, reverse):
    f = _CUMSUMS.setdefault((axis, reverse), jax.jit(lambda a: cumsum_mod.cumsum(a, axis, reverse)))
    with jax_backend.x64():
        return np.asarray(f(x))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("n", [1, 2, 31, 64, 65, 1131, 2100, 5000])
def test_blocked_cumsum_accuracy(n, reverse):
    for axis in (-1, -2):
        shape = (3, n) if axis == -1 else (n, 3)
        pos = RNG.random(shape)
        mixed = RNG.standard_normal(shape) * 10.0 ** RNG.integers(-3, 4, shape)
        got = jax_cumsum(pos, axis, reverse)
        np.testing.assert_allclose(got, np_cumsum(pos, axis, reverse), rtol=1e-12)
        err = np.abs(jax_cumsum(mixed, axis, reverse) - np_cumsum(mixed, axis, reverse))
        assert np.all(err <= 1e-12 * np_cumsum(np.abs(mixed), axis, reverse))


def test_blocked_cumsum_on_the_model_grid():
    x = RNG.random((212, 1131))
    for reverse in (False, True):
        np.testing.assert_allclose(jax_cumsum(x, -1, reverse), np_cumsum(x, -1, reverse), rtol=1e-12)
        np.testing.assert_allclose(jax_cumsum(x, -2, reverse), np_cumsum(x, -2, reverse), rtol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_blocked_cumsum_non_finite_values_follow_ieee(reverse):
    x = RNG.random((6, 300))
    x[0, 100] = np.inf
    x[1, 50], x[1, 250] = np.inf, -np.inf
    x[2, 7] = np.nan
    x[3, 299] = -np.inf
    x[4, 10:13] = 1e308  # finite inputs whose sums overflow
    with np.errstate(all="ignore"):
        want = np_cumsum(x, -1, reverse)
    got = jax_cumsum(x, -1, reverse)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_blocked_cumsum_check_stays_a_branch_under_batch():
    b = gir.Builder(("E",))
    x, p = b.input("x", Type("f64", ("E",))), b.input("p")
    g = b.build([b.op("cumsum", b.op("mul", x, p), axis="E")], "c")
    art = gir.compile(g, target="jax-cpu", passes="O0")._artifact
    with jax_backend.x64():
        # the backend's batch, and a user's own vmap of the function, keep one check for the batch
        for fn in (art._batch, jax.vmap(art.function, in_axes=(None, 0))):
            jaxpr = str(jax.make_jaxpr(fn)(np.ones((300,)), np.ones(4)))
            assert "cond[" in jaxpr and "select_n" not in jaxpr
    x = RNG.random(300)
    x[100] = np.inf
    got = gir.compile(g, target="jax-cpu", passes="O0").batch(np.array([[1.0], [-1.0]]), x=x)
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(got, [np.cumsum(x), np.cumsum(-x)], rtol=1e-12)


def test_blocked_cumsum_is_differentiable():
    x = RNG.random(200)
    with jax_backend.x64():
        grad = jax.grad(lambda a: jnp.sum(cumsum_mod.cumsum(a, -1, True) ** 2))(jnp.asarray(x))
    s = np_cumsum(x, -1, True)
    np.testing.assert_allclose(np.asarray(grad), np.cumsum(2 * s), rtol=1e-12)


# -- the Faddeeva function ---------------------------------------------------------------------


def wofz_errors(x, y):
    """Relative errors against scipy: complex, real part, imaginary part (relative to |w|)."""
    with jax_backend.x64():
        re, im = (np.asarray(v) for v in jax.jit(wofz)(x, y))
    ref = scipy.special.wofz(x + 1j * y)
    absw = np.abs(ref)
    with np.errstate(invalid="ignore", divide="ignore"):  # Re w is 0 where it underflows
        return (
            np.max(np.abs(re + 1j * im - ref) / absw),
            np.nanmax(np.abs(re - ref.real) / np.abs(ref.real)),
            np.max(np.abs(im - ref.imag) / absw),
        )


def test_faddeeva_accuracy_on_the_fitting_region():
    xs = np.concatenate(
        [-np.geomspace(1e-6, 200, 600)[::-1], [0.0], np.geomspace(1e-6, 200, 600), np.linspace(-10, 10, 801)]
    )
    ys = np.concatenate([np.geomspace(1e-3, 100, 300), np.linspace(0.05, 8, 160)])
    x, y = np.meshgrid(xs, ys)
    complex_err, re_err, im_err = wofz_errors(x, y)
    # measured: 2.3e-14, 6.8e-14 (Re, relative to itself), 2.3e-14 on 920k points
    assert complex_err < 1e-13 and re_err < 1e-12 and im_err < 1e-13
    x, y = RNG.uniform(-200, 200, 200_000), 10 ** RNG.uniform(-3, 2, 200_000)
    assert max(wofz_errors(x, y)) < 1e-12


def test_faddeeva_elsewhere_is_correct():
    xs = np.concatenate([-np.geomspace(1e-8, 1e9, 200)[::-1], [0.0], np.geomspace(1e-8, 1e9, 200)])
    ys = np.concatenate(
        [-np.geomspace(1e-10, 5, 60)[::-1], [0.0], np.geomspace(1e-12, 1e-3, 30), np.geomspace(100, 1e9, 30)]
    )
    x, y = np.meshgrid(xs, ys)
    complex_err, _, _ = wofz_errors(x, y)
    assert complex_err < 1e-12
    with jax_backend.x64():
        re, im = (np.asarray(v) for v in wofz(np.array([np.nan, 1.0, np.inf]), np.array([1.0, np.nan, 1.0])))
    assert np.isnan(re[:2]).all() and np.isnan(im[:2]).all() and re[2] == 0 and im[2] == 0


def test_faddeeva_derivatives_vmap_and_jit():
    with jax_backend.x64():
        dre = jax.jit(jax.grad(lambda x, y: wofz(x, y)[0], argnums=(0, 1)))
        for x, y in [(1.5, 0.3), (-7.0, 0.01), (0.0, 2.0), (30.0, 1e-3), (2.0, -0.5)]:
            h, w = 1e-6, scipy.special.wofz
            fd_x = (w(x + h + 1j * y) - w(x - h + 1j * y)).real / (2 * h)
            fd_y = (w(x + 1j * (y + h)) - w(x + 1j * (y - h))).real / (2 * h)
            gx, gy = dre(x, y)
            np.testing.assert_allclose([gx, gy], [fd_x, fd_y], rtol=1e-6, atol=1e-12)
        second = jax.jit(jax.hessian(lambda x: wofz(x, 0.3)[0]))(1.5)
        assert np.isfinite(second)
        xs = jnp.linspace(-3.0, 3.0, 7)
        mapped = jax.vmap(lambda y: wofz(xs, y)[1])(jnp.array([0.1, 1.0]))
        assert mapped.shape == (2, 7)
        np.testing.assert_allclose(mapped[1], scipy.special.wofz(np.asarray(xs) + 1j).imag, rtol=1e-13)


def test_faddeeva_through_a_compiled_model_is_differentiable():
    b = gir.Builder(("E",))
    x, x0, w = b.input("x", Type("f64", ("E",))), b.input("x0"), b.input("w")
    g = b.build([b.op("wofz_re", b.op("sub", x, x0), w)], "voigt")
    art = gir.compile(g, target="jax", passes="O0")._artifact
    xs = np.linspace(-5, 5, 11)
    with jax_backend.x64():
        grad = jax.grad(lambda x0: jnp.sum(art.function(xs, x0, 0.5)[0]))(0.3)
    h, w = 1e-6, scipy.special.wofz
    fd = (w(xs - 0.3 - h + 0.5j).real - w(xs - 0.3 + h + 0.5j).real).sum() / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


# -- batch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", CPU_TARGETS)
def test_batch_equals_looped_calls(target):
    exe, ref = compile_pair(small_model(), target)
    x, t = np.linspace(-3, 3, 40), np.linspace(0, 1, 6)
    thetas = np.array([[1.3, 0.1, 0.7], [0.2, -1.0, 2.0], [5.0, 0.5, 0.1], [1.0, 0.0, 1.0]])
    got = exe.batch(thetas, x=x, t=t)
    for i, theta in enumerate(thetas):
        single = exe(theta, x=x, t=t)
        for g, s in zip(got, single, strict=True):
            np.testing.assert_allclose(g[i], s, rtol=1e-14)
    assert_close(tuple(got), tuple(ref.batch(thetas, x=x, t=t)))


def test_large_batches_run_in_chunks(monkeypatch):
    exe = gir.compile(small_model(), target="jax-cpu", passes="O0")
    x, t = np.linspace(-3, 3, 40), np.linspace(0, 1, 6)
    thetas = RNG.uniform(0.5, 2.0, (7, 3))
    whole = exe.batch(thetas, x=x, t=t)
    monkeypatch.setattr(jax_backend, "BATCH_CELLS", 2 * 40 * 6)  # two examples a call: 4 calls, one padded
    chunked = exe.batch(thetas, x=x, t=t)
    for w, c in zip(whole, chunked, strict=True):
        assert c.shape == w.shape
        np.testing.assert_allclose(c, w, rtol=1e-15)


def test_batch_without_parameters_broadcasts():
    b = gir.Builder(("E",))
    x = b.input("x", Type("f64", ("E",)))
    g = b.build([b.op("exp", x)], "noparams")
    exe = gir.compile(g, target="jax", passes="O0")
    got = exe.batch(np.zeros((3, 0)), x=np.arange(4.0))
    np.testing.assert_allclose(got, np.broadcast_to(np.exp(np.arange(4.0)), (3, 4)), rtol=1e-15)


def test_call_nodes_compile():
    inner = gir.Builder(("E",))
    u, p = inner.input("u", Type("f64", ("E",))), inner.input("p")
    callee = inner.build([inner.op("mul", u, p), inner.op("exp", u)], "inner")
    b = gir.Builder(("T", "E"))
    x, t, a = b.input("x", Type("f64", ("E",))), b.input("t", Type("f64", ("T",))), b.input("a")
    y1, y2 = b.call(callee, x, a)
    z1, _ = b.call(callee, b.op("mul", x, t), a)
    g = b.build([b.op("add", y1, y2, z1)], "outer")
    exe = run_both(g, "jax", {"x": np.linspace(-1, 1, 5), "t": np.arange(3.0), "a": 0.5})
    assert "def g_inner(" in exe.source


# -- devices and errors -------------------------------------------------------------------------


def test_unsupported_ops_are_listed_and_compile_fails_early():
    op = register(OpDef("jaxtest_untemplated", 1, floating, None))
    try:
        b = gir.Builder(("E",))
        x = b.input("x", Type("f64", ("E",)))
        g = b.build([b.op("exp", b.op("jaxtest_untemplated", x))], "bad")
        assert jax_backend.unsupported(g) == ["jaxtest_untemplated"]
        with pytest.raises(gir.TargetError, match="jaxtest_untemplated"):
            gir.compile(g, target="jax", passes="O0")
    finally:
        del OPS[op.name]


def test_every_registry_op_is_supported():
    b = gir.Builder(("E",))
    x = b.input("x", Type("f64", ("E",)))
    nodes = [b.op("cumsum", x, axis="E"), b.op("wofz_re", x, x), b.op("wofz_im", x, x)]
    assert jax_backend.unsupported(b.build(nodes, "ok")) == []


def test_unknown_options_are_refused():
    with pytest.raises(gir.TargetError, match="unknown options"):
        gir.compile(small_model(), target="jax", passes="O0", fast_math=True)


@pytest.mark.skipif(GPU_REASON == "", reason="a GPU is visible")
def test_gpu_target_reports_unavailable_and_refuses():
    info = {t.name: t for t in gir.targets()}["jax-gpu"]
    assert not info.available and "GPU" in info.reason
    with pytest.raises(gir.TargetError, match="jax-gpu"):
        gir.compile(small_model(), target="jax-gpu", passes="O0")


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON != "", reason=GPU_REASON or "no GPU")
def test_gpu_target_matches_numpy():
    exe, ref = compile_pair(small_model(), "jax-gpu")
    x, t = np.linspace(-3, 3, 1131), np.linspace(0, 1, 212)
    assert_close(exe([1.3, 0.1, 0.7], x=x, t=t), ref([1.3, 0.1, 0.7], x=x, t=t))
    assert exe._artifact.device.platform == "gpu"
