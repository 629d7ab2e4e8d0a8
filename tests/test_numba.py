"""The Numba target: every op against the NumPy target, loop structure, Faddeeva, fast exp, cache, batch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import scipy.special  # noqa: E402

import gir  # noqa: E402
from gir.codegen.numba_backend import generate, unsupported  # noqa: E402
from gir.codegen.numba_backend.faddeeva import faddeeva  # noqa: E402
from gir.codegen.numba_backend.fastexp import fast_exp  # noqa: E402
from gir.ir.builder import Builder  # noqa: E402
from gir.ir.ops import OPS  # noqa: E402
from gir.ir.types import Type  # noqa: E402

TARGETS = ["numba", "numba-parallel"]
RTOL = 1e-12
ATOL = 1e-300  # subnormal results may differ in their last (few) bits

# edge values: zeros of both signs, negatives, large magnitudes
T_VALUES = np.array([-3.0, -0.5, 0.0, 1.5, 40.0])
E_VALUES = np.array([-700.0, -2.5, -1.0, -0.0, 0.0, 0.25, 1.0, 3.0, 650.0])
PARAM_SETS = [(0.7, -1.3), (0.0, 2.5), (-250.0, 0.0), (3.0, 1e-3)]


def _z_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    z = rng.normal(0.0, 3.0, (len(T_VALUES), len(E_VALUES)))
    z[0, :3] = [0.0, -0.0, 1e300]
    z[1, :2] = [-1e-300, 500.0]
    return z


def _inputs(p: float, q: float) -> list:
    """The op graph's inputs in full-rank (T, E) layout: t, x, z, p, q."""
    return [T_VALUES.reshape(-1, 1), E_VALUES.reshape(1, -1), _z_values(), np.float64(p), np.float64(q)]


def _assert_close(got, want, what: str = "") -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    if got.ndim == 0 and want.size == 1:  # a scalar: 0-d here, maybe (1, 1) from NumPy's keepdims
        want = want.reshape(())
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype == bool or got.dtype == bool:
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    np.testing.assert_allclose(
        got.astype(float), want.astype(float), rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=what
    )


# -- every op of the registry, on scalars, [E], [T], [T,E] ----------------------


def _op_graph(only: str | None = None):
    """A graph applying registry ops (all, or ``only``) to operands of each kind; outputs labelled by op."""
    b = Builder()
    t = b.input("t", Type("f64", ("T",)))
    x = b.input("x", Type("f64", ("E",)))
    z = b.input("z", Type("f64", ("T", "E")))
    p = b.input("p")
    q = b.input("q")
    outs, labels = [], []

    def out(op, v):
        outs.append(v)
        labels.append(op)

    unary_operands = [z, x, t, p]
    binary_operands = [(z, x), (t, x), (p, z), (x, p), (p, q), (z, z)]
    for name, op in OPS.items():
        if name in ("call", "const", "where") or only not in (None, name):
            continue
        if not op.elementwise:
            for v in (z, x, t):
                for axis in v.type.axes:
                    extra = [{"reverse": False}, {"reverse": True}] if name == "cumsum" else [{}]
                    for kw in extra:
                        out(name, b.op(name, v, axis=axis, **kw))
        elif op.arity == 1:
            for v in unary_operands:
                out(name, b.op(name, v))
        else:
            for u, v in binary_operands:
                out(name, b.op(name, u, v))
            if op.arity is None:
                out(name, b.op(name, p, z, x))
                out(name, b.op(name, x, t, q, p))
    if only in (None, "where"):
        for cond, u, v in [(b.op("gt", z, x), t, p), (b.op("gt", p, q), x, z), (b.op("le", x, p), t, q)]:
            out("where", b.op("where", cond, u, v))
    if only in (None, "const"):
        for value in (2.5, -0.0, float("inf"), float("nan"), 3, True):
            out("const", b.const(value))
        out("const", b.op("add", b.const(1e-3), z))
    return b.build(outs, name=f"op_{only or 'all'}"), labels


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("op", sorted(set(OPS) - {"call"}))
def test_op_matches_numpy(op, target):
    g, _ = _op_graph(op)
    want = gir.compile(g, target="numpy", passes="O0")._artifact
    got = gir.compile(g, target=target, passes="O0")._artifact
    for ps in PARAM_SETS:
        args = _inputs(*ps)
        for i, (a, w) in enumerate(zip(got.call(args), want.call(args), strict=True)):
            _assert_close(a, w, f"{op} output {i} ({g.outputs[i].type}) at params {ps}")


def test_integer_and_bool_operands():
    b = Builder()
    k = b.input("k", Type("i64", ("E",)))
    j = b.input("j", "i64")
    x = b.input("x", Type("f64", ("E",)))
    flag = b.op("gt", x, b.const(0.0))
    outs = [
        b.op("abs", k),
        b.op("sign", k),
        b.op("minimum", k, j),
        b.op("maximum", j, k),
        b.op("mod", k, j),
        b.op("neg", k),
        b.op("add", k, j),
        b.op("mul", k, x),
        b.op("div", k, j),
        b.op("sum", k, axis="E"),
        b.op("sum", flag, axis="E"),
        b.op("mean", k, axis="E"),
        b.op("cumsum", k, axis="E"),
        b.op("where", flag, k, x),
        b.op("floor", k),
        b.op("pow", x, j),
    ]
    g = b.build(outs, name="ints")
    args = [np.array([-3, 0, 2, 7, -8]), np.int64(3), np.array([-1.5, 0.0, 2.0, 0.5, 3.0])]
    want = gir.compile(g, target="numpy", passes="O0")._artifact.call(args)
    for target in TARGETS:
        got = gir.compile(g, target=target, passes="O0")._artifact.call(args)
        for i, (a, w) in enumerate(zip(got, want)):
            _assert_close(a, w, f"output {i}: {outs[i]}")


def test_unsupported_is_empty_for_the_registry():
    g, _ = _op_graph()
    assert unsupported(g) == []


def test_unknown_option_is_a_clear_error():
    g, _ = _op_graph()
    with pytest.raises(gir.GirError, match="no option 'vectorize'"):
        gir.compile(g, target="numba", passes="O0", vectorize=True)


# -- models: fusion structure and numbers ---------------------------------------


def _glp(b, E, A, x0, F, m, name):
    u = b.op("div", b.op("sub", E, x0), F)
    u2 = b.op("mul", u, u, hint=f"u2_{name}")
    c = b.op("mul", b.const(-4 * np.log(2)), b.op("sub", b.const(1.0), m), hint=f"c_{name}")
    num = b.op("exp", b.op("mul", c, u2))
    den = b.op("add", b.const(1.0), b.op("mul", b.const(4.0), m, u2))
    return b.op("div", b.op("mul", A, num), den, hint=f"peak_{name}")


def dense_graph():
    """A GLP peak whose position moves in time: x0(t) = x0 + a exp(-t/tau)."""
    b = Builder()
    t = b.input("t", Type("f64", ("T",)))
    E = b.input("E", Type("f64", ("E",)))
    A, x0, a, tau, F, m = (b.input(n) for n in ("A", "x0", "a", "tau", "F", "m"))
    x0t = b.op("add", x0, b.op("mul", a, b.op("exp", b.op("neg", b.op("div", t, tau)))), hint="x0t")
    return b.build(_glp(b, E, A, x0t, F, m, "1"), name="dense")


def separable_graph():
    """Two GLP peaks with amplitudes A(t) and a Shirley background of their sum."""
    b = Builder()
    t = b.input("t", Type("f64", ("T",)))
    E = b.input("E", Type("f64", ("E",)))
    ps = {n: b.input(n) for n in ("A1", "x1", "F1", "m1", "k1", "A2", "x2", "F2", "m2", "k2", "pS")}
    one = b.const(1.0)
    decay = b.op("exp", b.op("neg", t), hint="decay")
    a1 = b.op("mul", ps["A1"], b.op("add", one, b.op("mul", ps["k1"], decay)), hint="A1t")
    a2 = b.op("mul", ps["A2"], b.op("add", one, b.op("mul", ps["k2"], decay)), hint="A2t")
    p1 = _glp(b, E, one, ps["x1"], ps["F1"], ps["m1"], "1")
    p2 = _glp(b, E, one, ps["x2"], ps["F2"], ps["m2"], "2")
    s = b.op("add", b.op("mul", a1, p1), b.op("mul", a2, p2), hint="S")
    shirley = b.op("mul", ps["pS"], b.op("cumsum", s, axis="E", reverse=True), hint="shirley")
    return b.build(b.op("add", s, shirley, hint="y"), name="separable")


DENSE_THETA = {"A": 2.0, "x0": 0.1, "a": 0.5, "tau": 3.0, "F": 1.2, "m": 0.3}
SEPARABLE_THETA = {
    "A1": 2.0,
    "x1": -1.0,
    "F1": 1.2,
    "m1": 0.3,
    "k1": 0.5,
    "A2": 1.0,
    "x2": 1.5,
    "F2": 0.8,
    "m2": 0.6,
    "k2": -0.3,
    "pS": 0.01,
}
T_GRID = np.linspace(-1.0, 10.0, 21)
E_GRID = np.linspace(-5.0, 5.0, 37)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("make", "theta"), [(dense_graph, DENSE_THETA), (separable_graph, SEPARABLE_THETA)])
def test_models_match_numpy(make, theta, target):
    g = make()
    want = gir.compile(g, target="numpy", passes="O0")(t=T_GRID, E=E_GRID, **theta)
    got = gir.compile(g, target=target, passes="O0")(t=T_GRID, E=E_GRID, **theta)
    _assert_close(got, want)


def _function(source: str, name: str) -> list[str]:
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    ends = (i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace())
    end = next(ends, len(lines))
    return lines[start:end]


def _loops_around(lines: list[str], pattern: str) -> list[list[str]]:
    """For each line whose IR comment matches ``pattern``: the loop headers enclosing it."""
    found = []
    for i, line in enumerate(lines):
        if "#" in line and re.search(pattern, line.split("#", 1)[1]):
            indent = len(line) - len(line.lstrip())
            headers = []
            for prev in reversed(lines[:i]):
                depth = len(prev) - len(prev.lstrip())
                if prev.strip() and depth < indent:
                    if prev.lstrip().startswith("for "):
                        headers.append(prev.strip())
                    indent = depth
            found.append(headers)
    assert found, f"no line computes {pattern}"
    return found


@pytest.mark.parametrize("parallel", [False, True])
def test_values_are_computed_where_they_vary(parallel):
    src = generate(separable_graph(), parallel=parallel)
    body = _function(src, "model_into")
    for headers in _loops_around(body, r": f64 = "):  # scalars: before every loop
        assert headers == []
    for headers in _loops_around(body, r": f64\[E\] = "):  # [E]: once per energy, never per (t, E)
        assert len(headers) == 1 and "i_E" in headers[0]
    for headers in _loops_around(body, r": f64\[T\] = "):  # [T]: the outer loop of the (t, E) nest
        assert len(headers) == 1 and "i_T" in headers[0]
    for headers in _loops_around(body, r": f64\[T,E\] = (mul|add)"):
        assert [h.split()[1] for h in headers] == ["i_E", "i_T"]
    loop = "prange" if parallel else "range"
    assert f"for i_T in {loop}(n_T)" in "\n".join(body)


def test_fused_values_stay_scalars():
    src = generate(dense_graph())
    body = "\n".join(_function(src, "model_into"))
    assert "np.empty" not in body  # the one output is the only array
    assert body.count("for i_T") == 1 and body.count("for i_E") == 1
    assert "fast_exp(" in body and "math.exp(" not in body
    assert "math.exp(" in generate(dense_graph(), fast_exp=False)


def test_source_carries_ir_comments_and_is_a_cached_file():
    exe = gir.compile(dense_graph(), target="numba", passes="O0")
    assert "# %u2_1: f64[T,E] = mul" in exe.source
    module = exe._artifact._module
    assert module.__file__.endswith(".py") and os.path.exists(module.__file__)
    with open(module.__file__) as f:
        assert f.read() == exe.source


def test_calls_are_inlined():
    inner = Builder()
    E = inner.input("E", Type("f64", ("E",)))
    A, x0, F, m = (inner.input(n) for n in ("A", "x0", "F", "m"))
    glp = inner.build(_glp(inner, E, A, x0, F, m, "c"), name="GLP")
    b = Builder()
    t = b.input("t", Type("f64", ("T",)))
    E = b.input("E", Type("f64", ("E",)))
    A, x0, F, m = (b.input(n) for n in ("A", "x0", "F", "m"))
    amp = b.op("mul", A, b.op("exp", b.op("neg", t)), hint="At")  # a time-dependent amplitude
    (y,) = b.call(glp, E, amp, x0, F, m)
    (w,) = b.call(glp, E, A, x0, F, m)
    g = b.build([b.op("add", y, w), w], name="calls")
    theta = {"A": 1.5, "x0": 0.2, "F": 0.9, "m": 0.4}
    want = gir.compile(g, target="numpy", passes="O0")(t=T_GRID, E=E_GRID, **theta)
    for target in TARGETS:
        exe = gir.compile(g, target=target, passes="O0")
        assert "call" not in re.findall(r"= (\w+)", exe.source)
        for a, b_ in zip(exe(t=T_GRID, E=E_GRID, **theta), want):
            _assert_close(a, b_)


def test_outputs_that_are_inputs_scalars_or_repeated():
    b = Builder()
    x = b.input("x", Type("f64", ("E",)))
    p = b.input("p")
    s = b.op("sum", x, axis="E", hint="total")
    y = b.op("mul", x, s)
    g = b.build([y, x, p, s, y, b.op("add", p, b.const(1.0))], name="odd")
    args = [np.array([1.0, 2.0, -0.5]), np.float64(3.0)]
    want = gir.compile(g, target="numpy", passes="O0")._artifact.call(args)
    for target in TARGETS:
        got = gir.compile(g, target=target, passes="O0")._artifact.call(args)
        assert len(got) == len(want)
        for a, w in zip(got, want):
            _assert_close(a, w)


def test_axis_order_e_before_t():
    b = Builder(("E", "T"))
    z = b.input("z", Type("f64", ("E", "T")))
    t = b.input("t", Type("f64", ("T",)))
    x = b.input("x", Type("f64", ("E",)))
    y = b.op("add", b.op("mul", z, b.op("exp", t)), b.op("sin", x))
    g = b.build([b.op("cumsum", y, axis="T", reverse=True), b.op("sum", y, axis="E"), y], name="et")
    rng = np.random.default_rng(3)
    args = [rng.normal(size=(4, 6)), rng.normal(size=(1, 6)), rng.normal(size=(4, 1))]
    want = gir.compile(g, target="numpy", passes="O0")._artifact.call(args)
    for target in TARGETS:
        for a, w in zip(gir.compile(g, target=target, passes="O0")._artifact.call(args), want):
            _assert_close(a, w)


def test_a_call_returning_one_value_twice():
    """Two outputs of a call that are one value once inlined: the kernels return it once."""
    b = Builder(())
    p = b.input("p")
    twice = b.op("abs", p)
    callee = b.build([twice, twice], name="twice")
    b = Builder(())
    first, second = b.call(callee, b.input("a"))
    g = b.build([first, second], name="main")
    for target in TARGETS:
        exe = gir.compile(g, target=target, passes="O0")
        assert exe([-2.0]) == (2.0, 2.0)
        outs = [np.empty(()), np.empty(())]
        exe.call_into(outs, [-3.0])
        assert [float(o) for o in outs] == [3.0, 3.0]


# -- random graphs ----------------------------------------------------------------


def test_random_graphs_agree_with_numpy():
    strategies = pytest.importorskip("strategies")
    evaluate = pytest.importorskip("evaluate")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data):
        g = data.draw(strategies.random_graphs(max_nodes=10, calls=1))
        inputs = data.draw(strategies.random_inputs(g))
        args = [evaluate.full_rank(inputs[v.name], v, g.axes) for v in g.inputs]
        args = [a.reshape(()) if not v.type.axes else a for a, v in zip(args, g.inputs)]
        want = gir.compile(g, target="numpy", passes="O0")._artifact.call(args)
        target = data.draw(st.sampled_from(TARGETS))
        got = gir.compile(g, target=target, passes="O0")._artifact.call(args)
        for a, w in zip(got, want):
            a, w = np.broadcast_arrays(np.asarray(a, float), np.asarray(w, float))
            np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-12, equal_nan=True)

    check()


# -- batch ------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_batch_equals_looped_calls(target):
    g = separable_graph()
    exe = gir.compile(g, target=target, passes="O0")
    rng = np.random.default_rng(5)
    base = np.array(list(SEPARABLE_THETA.values()))
    thetas = base * (1 + 0.1 * rng.normal(size=(7, len(base))))
    got = exe.batch(thetas, t=T_GRID, E=E_GRID)
    assert got.shape == (7, len(T_GRID), len(E_GRID))
    for i, theta in enumerate(thetas):
        np.testing.assert_array_equal(got[i], exe(theta, t=T_GRID, E=E_GRID))
    want = gir.compile(g, target="numpy", passes="O0").batch(thetas, t=T_GRID, E=E_GRID)
    _assert_close(got, want)


def test_batch_with_scalar_outputs():
    b = Builder()
    x = b.input("x", Type("f64", ("E",)))
    p = b.input("p")
    g = b.build([b.op("mean", b.op("mul", x, p), axis="E"), b.op("exp", p)], name="scal")
    exe = gir.compile(g, target="numba", passes="O0")
    thetas = np.array([[0.5], [1.0], [-2.0]])
    x_values = np.array([1.0, 2.0, 4.0])
    got = exe.batch(thetas, x=x_values)
    want = gir.compile(g, target="numpy", passes="O0").batch(thetas, x=x_values)
    for a, w in zip(got, want):
        assert a.shape == (3,)
        _assert_close(a, w)


# -- the Faddeeva function ------------------------------------------------------


@numba.njit(cache=True)
def _faddeeva_grid(xs, ys):
    re = np.empty((ys.size, xs.size))
    im = np.empty((ys.size, xs.size))
    for i in range(ys.size):
        for j in range(xs.size):
            re[i, j], im[i, j] = faddeeva(xs[j], ys[i])
    return re, im


def test_faddeeva_accuracy_in_the_fit_region():
    """Grid: Re z in [-200, 200] step 0.1 plus [-10, 10] step 0.01; Im z: 400 log-spaced in [1e-3, 100]."""
    xs = np.concatenate([np.linspace(-200.0, 200.0, 4001), np.linspace(-10.0, 10.0, 2001)])
    ys = np.geomspace(1e-3, 100.0, 400)
    re, im = _faddeeva_grid(xs, ys)
    ref = scipy.special.wofz(xs[None, :] + 1j * ys[:, None])
    rel = np.abs(re + 1j * im - ref) / np.abs(ref)
    rel_re = np.abs(re - ref.real) / np.abs(ref.real)  # Re w > 0 here: the Voigt profile
    assert rel.max() < 1e-12, rel.max()
    assert rel_re.max() < 1e-12, rel_re.max()


def test_faddeeva_elsewhere():
    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.uniform(-30, 30, 3000), [0.0, 0.75, -7.0, 1e10, -1e200, 3.0]])
    ys = np.concatenate([rng.uniform(-4, 1e-3, 3000), [0.0, 0.0, 0.0, 1.0, 2.0, -1e-300]])
    got = np.array([complex(*faddeeva(x, y)) for x, y in zip(xs, ys)])
    ref = scipy.special.wofz(xs + 1j * ys)
    finite = np.isfinite(ref) & (ref != 0)
    assert (np.abs(got - ref)[finite] / np.abs(ref[finite])).max() < 1e-10
    assert np.all(np.isfinite(got[finite]))
    for z, want in [(complex(np.inf, 1.0), 0.0), (complex(1.0, np.inf), 0.0), (0j, 1.0)]:
        assert complex(*faddeeva(z.real, z.imag)) == pytest.approx(want, abs=1e-14)
    assert np.isnan(faddeeva(np.nan, 1.0)[0])
    assert faddeeva(3.0, 0.0)[0] == np.exp(-9.0)  # Re w = exp(-x^2) on the axis


def test_voigt_ops_against_scipy():
    b = Builder()
    x = b.input("x", Type("f64", ("E",)))
    y = b.input("y")
    g = b.build([b.op("wofz_re", x, y), b.op("wofz_im", x, y)], name="voigt")
    xs = np.linspace(-150.0, 150.0, 3001)
    exe = gir.compile(g, target="numba", passes="O0")
    for yv in (1e-3, 0.3, 2.0, 80.0):
        re, im = exe(x=xs, y=yv)
        w = scipy.special.wofz(xs + 1j * yv)
        np.testing.assert_allclose(re, w.real, rtol=1e-12)
        np.testing.assert_allclose(im, w.imag, rtol=1e-12, atol=1e-15 * np.abs(w).max())


# -- the vectorizable exp -------------------------------------------------------


@numba.njit
def _fast_exp_all(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = fast_exp(x[i])
    return out


def test_fast_exp_within_one_ulp():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.uniform(-745.2, 709.8, 400_000),
            rng.uniform(-1, 1, 100_000),
            rng.uniform(-1e-8, 1e-8, 1000),
            [
                0.0,
                -0.0,
                709.782712893384,
                709.79,
                -708.4,
                -745.13,
                -745.14,
                -1e4,
                1e4,
                np.inf,
                -np.inf,
                np.nan,
            ],
        ]
    )
    got = _fast_exp_all(x)
    with np.errstate(over="ignore"):
        want = np.exp(x)
    normal = np.isfinite(want) & (want >= np.finfo(float).tiny)
    ulps = np.abs(got[normal] - want[normal]) / np.spacing(want[normal])
    assert ulps.max() <= 1.0
    sub = want < np.finfo(float).tiny
    assert np.all(np.abs(got[sub] - want[sub]) <= 5e-324)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])


def test_fast_exp_loop_is_vectorized():
    llvm = _fast_exp_all.inspect_llvm(_fast_exp_all.signatures[0])
    assert "vector.body" in llvm


# -- the on-disk cache ------------------------------------------------------------

_CACHE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    import numpy as np
    t0 = time.perf_counter()
    import gir
    from test_numba import dense_graph, DENSE_THETA
    t1 = time.perf_counter()
    exe = gir.compile(dense_graph(), target="numba", passes="O0")
    y = exe(t=np.linspace(0, 5, 50), E=np.linspace(-3, 3, 80), **DENSE_THETA)
    t2 = time.perf_counter()
    model = exe._artifact._module.model
    print(json.dumps({{"file": exe._artifact._module.__file__, "hits": sum(model.stats.cache_hits.values()),
                      "misses": sum(model.stats.cache_misses.values()), "import": t1 - t0,
                      "compile_and_call": t2 - t1, "checksum": float(y.sum())}}))
""")


@pytest.mark.slow
def test_cache_files_are_reused_by_a_new_process(tmp_path):
    env = {**os.environ, "GIR_CACHE_DIR": str(tmp_path)}
    script = _CACHE_SCRIPT.format(tests=os.path.dirname(__file__))
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["file"] == second["file"] and first["file"].startswith(str(tmp_path))
    folder = tmp_path / "numba"
    assert any(folder.glob("gir_*.py"))
    assert any((folder / "__pycache__").glob("*.nbi")) and any((folder / "__pycache__").glob("*.nbc"))
    assert first["misses"] == 1 and second["hits"] == 1 and second["misses"] == 0
    assert first["checksum"] == second["checksum"]


@pytest.mark.parametrize("target", TARGETS)
def test_scratch_arrays_are_reused_per_thread_and_per_grid(target):
    """The running sum gets its own nest, its operand a scratch array kept between calls."""
    import threading

    exe = gir.compile(separable_graph(), target=target, passes="O0")
    assert "buf_" in exe.source  # the scan's operand is materialized
    ref = gir.compile(separable_graph(), target="numpy", passes="O0")
    grids = [(T_GRID, E_GRID), (T_GRID[:7], E_GRID[:11])]
    want = [ref(**SEPARABLE_THETA, t=t, E=e) for t, e in grids]
    for _ in range(2):  # alternating grid sizes reallocate, repeated sizes reuse
        for (t, e), w in zip(grids, want, strict=True):
            np.testing.assert_allclose(exe(**SEPARABLE_THETA, t=t, E=e), w, rtol=1e-12, atol=1e-300)
    results = {}

    def worker(k):
        t, e = grids[k % 2]
        results[k] = [exe(**SEPARABLE_THETA, t=t, E=e) for _ in range(20)]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k, outs in results.items():
        for out in outs:
            np.testing.assert_allclose(out, want[k % 2], rtol=1e-12, atol=1e-300)


# -- evaluation into given arrays, scan nests, vectorization of wide nests --------------


@pytest.mark.parametrize("target", ["numpy", *TARGETS])
def test_call_into_writes_the_given_arrays(target):
    b = Builder()
    x = b.input("x", Type("f64", ("E",)))
    p = b.input("p")
    y = b.op("mul", x, b.op("sum", x, axis="E"))
    g = b.build([y, x, p, y], name="into")
    exe = gir.compile(g, target=target, passes="O0")
    xs = np.array([1.0, 2.0, -0.5])
    outs = [np.empty(3), np.empty(3), np.empty(()), np.empty(3)]
    exe.call_into(outs, x=xs, p=3.0)
    for got, want in zip(outs, exe(x=xs, p=3.0)):
        np.testing.assert_array_equal(got, want)
    strided = np.empty(6)[::2]  # not contiguous: filled through a copy
    exe.call_into([strided, outs[1], outs[2], outs[3]], x=xs, p=3.0)
    np.testing.assert_array_equal(strided, outs[0])
    with pytest.raises(gir.GirError, match="shape \\(3,\\)"):
        exe.call_into([np.empty(4), *outs[1:]], x=xs, p=3.0)
    frozen = np.empty(3)
    frozen.flags.writeable = False
    for bad in (frozen, np.empty(3, dtype=np.int64)):
        with pytest.raises(gir.GirError, match="writeable array taking float64"):
            exe.call_into([bad, *outs[1:]], x=xs, p=3.0)


def _scans_graph(n: int = 3):
    b = Builder()
    t = b.input("t", Type("f64", ("T",)))
    e = b.input("E", Type("f64", ("E",)))
    ps = [b.input(f"p{i}") for i in range(n)]
    outs = []
    for p in ps:
        peak = b.op("exp", b.op("mul", p, b.op("mul", t, e)))
        outs.append(b.op("add", peak, b.op("cumsum", peak, axis="E", reverse=True)))
    return b.build(outs, name="scans")


def test_scans_of_one_direction_share_a_nest():
    body = "\n".join(_function(generate(_scans_graph()), "model_into"))
    assert body.count("for i_E in range(n_E - 1, -1, -1)") == 1
    assert body.count("for i_E in range(n_E)") == 1  # the peaks, vectorizable, in a nest of their own


def test_a_nest_storing_many_arrays_is_vectorized(tmp_path, monkeypatch):
    """20 stored arrays need about 200 runtime overlap checks: past LLVM's default limit (128)."""
    monkeypatch.setenv("GIR_CACHE_DIR", str(tmp_path))  # compiled here, so LLVM IR can be inspected
    exe = gir.compile(_scans_graph(20), target="numba", passes="O0")
    theta = {f"p{i}": -0.01 * (i + 1) for i in range(20)}
    exe(t=np.linspace(0, 1, 5), E=np.linspace(0, 1, 64), **theta)
    into = exe._artifact._module.model_into
    assert "vector.body" in into.inspect_llvm(into.signatures[0])
