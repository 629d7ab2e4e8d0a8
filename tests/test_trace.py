"""gir.trace and @gir.component: graphs recorded from NumPy-style functions."""

import math
import re

import numpy as np
import pytest
import scipy.special as sp

import gir

RTOL = 1e-12
E = np.linspace(-4.0, 6.0, 41)
T = np.linspace(-1.0, 5.0, 9)


def evaluate(graph, passes="O0", **inputs):
    return gir.compile(graph, target="numpy", passes=passes)(**inputs)


def close(got, want):
    got = np.asarray(got, dtype=float)
    want = np.asarray(want, dtype=float)
    np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=RTOL, atol=0)


def count(graph, op):
    return sum(n.op == op for n in graph.nodes)


def types_by_name(graph):
    """Printed value name -> printed type, from the dump (names come from the function's locals)."""
    return dict(re.findall(r"%(\w+): (\S+) =", gir.dump(graph)))


# -- models --------------------------------------------------------------------------------------


def ds_shirley(x, A, x0, F, alpha, pS, m, b, xs):
    """Doniach-Sunjic peak, Shirley background of it, linear background below/above xs."""
    d = x - x0
    ds = (
        A
        * np.cos(np.pi * alpha / 2 + (1 - alpha) * np.arctan(d / F))
        / np.power(F**2 + d**2, (1 - alpha) / 2)
    )
    shirley = pS * np.cumsum(ds[::-1])[::-1]
    lin = np.where(x < xs, b, m * (x - xs) + b)
    return ds + shirley + lin


DS_PARAMS = dict(A=2.0, x0=0.7, F=0.9, alpha=0.2, pS=0.03, m=0.1, b=0.5, xs=1.5)


def glp(x, A, x0, F, m):
    u2 = ((x - x0) / F) ** 2
    return A * np.exp(-4 * np.log(2) * (1 - m) * u2) / (1 + 4 * m * u2)


def voigt(x, A, x0, SD, W):
    z = (x - x0 + 1j * W / 2) / (SD * np.sqrt(2))
    z0 = 1j * W / (2 * SD * np.sqrt(2))
    return A * sp.wofz(z).real / sp.wofz(z0).real


def decaying_peak(t, x, A, tau, x0, F, m):
    width = F * (1 + m)
    peak = np.exp(-(((x - x0) / width) ** 2))
    amp = A * np.where(t >= 0, np.exp(-t / tau), 0.0)
    return amp[:, None] * peak[None, :]


# -- tracing, printing, parsing, evaluating ------------------------------------------------------


@pytest.mark.parametrize("passes", ["O0", "O2"])
def test_numpy_model_traces_prints_parses_and_evaluates(passes):
    g = gir.trace(ds_shirley, x="E")
    text = gir.dump(g)
    assert text.startswith("graph @ds_shirley(%x: f64[E], %A: f64, %x0: f64, %F: f64, %alpha: f64,")
    for op in ("arctan", "cos", "pow", "where", "cumsum", "flip"):
        assert f"= {op} " in text
    assert "cumsum %" in text and "{axis=E, reverse=false}" in text
    assert [v.name for v in g.params] == ["A", "x0", "F", "alpha", "pS", "m", "b", "xs"]
    back = gir.parse(text)
    assert back == g
    assert gir.dump(back) == text
    want = ds_shirley(E, **DS_PARAMS)
    close(evaluate(g, passes, x=E, **DS_PARAMS), want)
    close(evaluate(back, passes, x=E, **DS_PARAMS), want)
    theta = [DS_PARAMS[v.name] for v in g.params]
    close(gir.compile(g, target="numpy", passes=passes)(theta, x=E), want)


def test_glp_computes_the_quadratic_once_and_keeps_scalars_scalar():
    g = gir.trace(glp, x="E")
    x, x0 = g.input("x"), g.input("x0")
    assert [n for n in g.nodes if n.op == "sub" and n.inputs == (x, x0)] != []
    assert sum(n.op == "sub" and n.inputs == (x, x0) for n in g.nodes) == 1
    assert count(g, "exp") == 1
    assert count(g, "pow") == 1  # u2, used twice, recorded once
    producers = g.producers()
    (exp_node,) = [n for n in g.nodes if n.op == "exp"]
    arg = producers[exp_node.inputs[0]]
    assert arg.op == "mul"
    scalar, u2 = arg.inputs
    assert str(scalar.type) == "f64" and str(u2.type) == "f64[E]"
    assert u2.name == "u2"
    # -4*ln2*(1-m): a scalar chain ending in 1 - m
    assert re.search(r": f64 = sub %\w+, %m\n", gir.dump(g))
    params = dict(A=1.5, x0=0.4, F=1.2, m=0.3)
    close(evaluate(g, x=E, **params), glp(E, **params))


def test_2d_model_keeps_each_value_on_the_axes_it_depends_on():
    g = gir.trace(decaying_peak, t="T", x="E")
    assert g.axes == ("T", "E")
    types = types_by_name(g)
    assert types["width"] == "f64"
    assert types["peak"] == "f64[E]"
    assert types["amp"] == "f64[T]"
    assert str(g.outputs[0].type) == "f64[T,E]"
    for node in g.nodes:  # a value never gains axes its operands do not have
        axes = set().union(*(v.type.axes for v in node.inputs)) if node.inputs else set()
        assert set(node.outputs[0].type.axes) == axes
    params = dict(A=2.0, tau=1.3, x0=0.5, F=0.8, m=0.25)
    close(evaluate(g, t=T, x=E, **params), decaying_peak(T, E, **params))


def test_grid_input_and_axes_override():
    def f(grid, x, a):
        return grid * a + x

    g = gir.trace(f, grid=("T", "E"), x="E")
    assert g.axes == ("T", "E")
    assert str(g.input("grid").type) == "f64[T,E]"
    g2 = gir.trace(f, grid=("T", "E"), x="E", axes=("E", "T"))
    assert g2.axes == ("E", "T")
    assert str(g2.input("grid").type) == "f64[E,T]"
    assert "axes [E,T]" not in gir.dump(g2)  # first appearance in the inputs is already E, T
    g3 = gir.trace(lambda x, grid: x + grid, x="E", grid=("T", "E"), axes=("T", "E"))
    assert g3.axes == ("T", "E") and "axes [T,E]" in gir.dump(g3)
    assert g3.name == "main"
    G = np.arange(len(T) * len(E), dtype=float).reshape(len(T), len(E))
    close(evaluate(g, grid=G, x=E, a=0.5), G * 0.5 + E)


def test_voigt_through_wofz_matches_scipy():
    g = gir.trace(voigt, x="E")
    assert count(g, "wofz_re") == 2 and count(g, "wofz_im") == 0
    types = types_by_name(g)
    assert types["z_re"] == "f64[E]" and types["z_im"] == "f64" and types["z0_im"] == "f64"
    params = dict(A=3.0, x0=0.5, SD=0.6, W=0.8)
    y = evaluate(g, x=E, **params)
    close(y, voigt(E, **params))
    profile = sp.voigt_profile(E - 0.5, 0.6, 0.4) / sp.voigt_profile(0.0, 0.6, 0.4)
    np.testing.assert_allclose(y, 3.0 * profile, rtol=1e-9)


def test_complex_arithmetic_and_parts():
    def f(x, a, b):
        z = (x + 1j * a) * (b - 2j) / (a + 1j * x) - 1j
        w = np.conj(z) * 2 + (1 + z) / 3
        return np.real(w), w.imag, np.abs(z), np.imag(x + 0 * a)

    g = gir.trace(f, x="E")
    got = evaluate(g, x=E, a=0.7, b=-1.3)
    for out, want in zip(got, f(E, 0.7, -1.3)):
        close(out, want)
    assert "z_re" in types_by_name(g)  # the parts of a complex local are named after it


def test_operators_scalars_on_either_side_and_comparisons():
    def f(x, a):
        return (
            2 - x, x - 2, 3 / x, x / 3, 2**x, x**2, -x, +x, abs(x - a), np.float64(2.5) * x,
            np.array(1.5) + x, x % 1.5, (x < a) * 1.0, (a <= x) + 0, (x > 1) * x, (x >= 1) * 2.0,
            (x == 1.0) * 1.0, (x != 1.0) * 1.0, np.where((x > 0) & (x < 2) | ~(x < 5), x, -1.0),
        )  # fmt: skip

    got = evaluate(gir.trace(f, x="E"), x=E, a=0.3)
    with np.errstate(divide="ignore"):
        want = f(E, 0.3)
    assert len(got) == len(want)
    for out, ref in zip(got, want):
        close(out, ref)


def test_ufuncs_and_functions():
    funcs = [
        np.exp, np.log, np.log1p, np.expm1, np.sqrt, np.abs, np.absolute, np.sign, np.sin, np.cos, np.tan,
        np.arctan, np.tanh, np.square, np.floor, sp.erf, sp.erfc, np.sinc, np.negative,
    ]  # fmt: skip

    def f(x, a):
        y = np.abs(x) + 0.5
        outs = tuple(fn(y) for fn in funcs)
        return (*outs, np.arctan2(x, a), np.minimum(x, a), np.maximum(a, x), np.power(y, a), np.mod(x, a),
                np.add(x, a), np.subtract(a, x), np.multiply(x, a), np.divide(x, a), np.clip(x, -1, a),
                np.heaviside(x - 1, 0.5), np.heaviside(np.floor(x), a), np.sum(x), np.mean(x), np.cumsum(x),
                np.flip(x), x.sum(), x.mean(axis=0), np.ones_like(x) * a, np.zeros_like(x) + 1.0,
                np.full_like(x, 2.0), np.logical_and(x > 0, x < 3), np.where(x, a, 2.0))  # fmt: skip

    x = np.concatenate([E, [0.0, 1.0]])
    got = evaluate(gir.trace(f, x="E"), x=x, a=0.6)
    for i, (out, ref) in enumerate(zip(got, f(x, 0.6), strict=True)):
        assert np.allclose(np.broadcast_to(out, np.shape(ref)), ref, rtol=RTOL, atol=0), i


def test_reverse_cumsum_spellings_and_axis_insertions():
    def by_index(grid):
        return np.cumsum(grid[..., ::-1], axis=-1)[..., ::-1]

    def by_flip(grid):
        return np.flip(np.cumsum(np.flip(grid, axis=-1), axis=-1), axis=-1)

    def by_name(grid):
        return np.flip(np.cumsum(np.flip(grid, "E"), axis="E"), "E")

    gs = [gir.trace(fn, grid=("T", "E")) for fn in (by_index, by_flip, by_name)]
    assert gir.dump(gs[0]).replace("by_index", "f") == gir.dump(gs[1]).replace("by_flip", "f")
    assert [n.op for n in gs[0].nodes] == ["flip", "cumsum", "flip"]
    assert all(n.attr("axis") == "E" for n in gs[0].nodes)
    G = np.random.default_rng(0).normal(size=(len(T), len(E)))
    for g in gs:
        close(evaluate(g, grid=G), by_index(G))

    # t[:, None] and x[None, :] are no-ops; a flip of a value constant along the axis is itself
    def f(t, x, a):
        return t[:, None] * x[None, :] + a[..., ::-1] + x[None, ::-1]

    g = gir.trace(f, t="T", x="E")
    assert [n.op for n in g.nodes] == ["mul", "add", "flip", "add"]
    close(evaluate(g, t=T, x=E, a=2.0), T[:, None] * E[None, :] + 2.0 + E[None, ::-1])


def test_integer_axes_count_the_values_own_axes():
    def f(grid, x):
        return (
            np.sum(grid, axis=-1),
            np.sum(grid, axis=0),
            np.sum(grid),
            np.mean(grid, axis=(0, 1)),
            np.sum(x, 0),
        )

    g = gir.trace(f, grid=("T", "E"), x="E")
    assert [str(v.type) for v in g.outputs] == ["f64[T]", "f64[E]", "f64", "f64", "f64"]
    G = np.random.default_rng(1).normal(size=(len(T), len(E)))
    for out, want in zip(evaluate(g, grid=G, x=E), f(G, E)):
        close(out, want)


def test_subexpressions_are_recorded_once_and_dead_code_dropped():
    def f(x, x0, unused):
        np.log(x)  # computed and thrown away
        return np.exp(-((x - x0) ** 2)) + (x - x0) * 2 + (x - x0) * 2

    g = gir.trace(f, x="E")
    assert count(g, "sub") == 1 and count(g, "mul") == 1 and count(g, "log") == 0
    assert count(g, "const") == 1  # 2.0, shared
    assert [v.name for v in g.inputs] == ["x", "x0", "unused"]


def test_outputs_defaults_and_keyword_only_parameters():
    def f(x, a=1.0, *, b=2):
        return x * a, 3, b

    g = gir.trace(f, x="E")
    assert [v.name for v in g.inputs] == ["x", "a", "b"]
    assert [str(v.type) for v in g.outputs] == ["f64[E]", "f64", "f64"]
    got = evaluate(g, x=E, a=0.5, b=7.0)
    close(got[0], E * 0.5)
    assert got[1] == 3.0 and got[2] == 7.0
    assert str(gir.trace(lambda a: a).outputs[0].type) == "f64"


# -- components ----------------------------------------------------------------------------------


@gir.component(x="E")
def gauss(x, A, x0, SD=1.0):
    return A * np.exp(-0.5 * ((x - x0) / SD) ** 2)


def test_component_records_a_call():
    assert gauss.graph.name == "gauss"
    assert [v.name for v in gauss.graph.inputs] == ["x", "A", "x0", "SD"]

    def two(x, A1, A2, c, SD):
        return gauss(x, A1, c, SD) + gauss(x, A2, -c, SD=SD) + gauss(x, 1.0, c)

    g = gir.trace(two, x="E")
    calls = [n for n in g.nodes if n.op == "call"]
    assert len(calls) == 3 and all(n.attr("callee") is gauss.graph for n in calls)
    assert count(g, "exp") == 0
    text = gir.dump(g)
    assert text.startswith("graph @gauss(") and "call %x, %A1, %c, %SD {callee=@gauss}" in text
    params = dict(A1=1.0, A2=0.5, c=0.8, SD=0.7)
    want = sum(
        a * np.exp(-0.5 * ((E - c) / sd) ** 2)
        for a, c, sd in [(1.0, 0.8, 0.7), (0.5, -0.8, 0.7), (1.0, 0.8, 1.0)]
    )
    close(evaluate(g, "O2", x=E, **params), want)
    close(evaluate(gir.parse(text), "O2", x=E, **params), want)


def test_component_with_a_time_dependent_parameter():
    def f(t, x, A, tau, x0):
        amp = A * np.exp(-t / tau)
        return gauss(x, amp[:, None], x0, 0.5)

    g = gir.trace(f, t="T", x="E")
    assert str(g.outputs[0].type) == "f64[T,E]"
    ref = 1.2 * np.exp(-T / 2.0)[:, None] * np.exp(-0.5 * ((E - 0.3) / 0.5) ** 2)[None, :]
    close(evaluate(g, "O2", t=T, x=E, A=1.2, tau=2.0, x0=0.3), ref)


def test_bare_component_and_tracing_a_component():
    @gir.component
    def offset(y0):
        return y0 * 1.0

    assert offset.graph.name == "offset" and offset.graph.axes == ()
    assert gir.trace(gauss) == gauss.graph
    g = gir.trace(lambda x, y0: offset(y0) + x, x="E")
    assert count(g, "call") == 1


def test_component_outside_a_trace_points_to_compile():
    with pytest.raises(gir.GirError, match=r"gir\.compile\(gauss\.graph\)"):
        gauss(E, 1.0, 0.0)


# -- errors --------------------------------------------------------------------------------------


def _raises(fn, match, **arrays):
    with pytest.raises(gir.GirError, match=match):
        gir.trace(fn, **arrays)


def test_unsupported_numpy_functions_and_ufuncs_are_named():
    _raises(lambda x: np.fft.fft(x), r"np\.fft\.fft is not supported by gir\.trace", x="E")
    _raises(lambda x: np.cosh(x), r"np\.cosh is not supported by gir\.trace", x="E")
    _raises(lambda x: np.add.reduce(x), r"np\.add\.reduce is not supported", x="E")
    _raises(lambda x: np.convolve(x, x), r"np\.convolve is not supported", x="E")
    _raises(lambda x: np.exp(x, out=None, dtype=np.float32), r"np\.exp\(\.\.\., dtype=", x="E")
    _raises(lambda x: np.sin(x + 1j), r"np\.sin of a complex value", x="E")


def test_data_dependent_control_flow_suggests_where():
    def f(x, a):
        if a > 0:
            return x
        return -x

    _raises(f, r"data-dependent control flow.*np\.where", x="E")
    _raises(lambda x, a: max(x, a), r"np\.maximum", x="E")
    _raises(lambda x: x if x else 0, r"control flow", x="E")


def test_captured_arrays_must_be_inputs():
    data = np.arange(5.0)
    _raises(lambda x: x * data, r"shape \(5,\).*must be passed as an array argument", x="E")
    _raises(lambda x: data * x, r"must be passed as an array argument", x="E")
    _raises(lambda x: np.where(x > 0, data, x), r"must be passed as an array argument", x="E")
    g = gir.trace(lambda x: x * np.array(2.0) + np.float64(1.0), x="E")  # 0-d arrays are constants
    assert count(g, "const") == 2


def test_bad_array_declarations():
    def f(x, a):
        return x * a

    _raises(f, r"y='E' names no parameter of f\('x', 'a'\)", y="E")
    _raises(f, r"axis name", x=3)
    _raises(f, r"not a valid axis name", x="E T")
    _raises(f, r"axes=.*must name each axis", x="E", axes=("T",))
    _raises(lambda *xs: xs[0], r"named parameters")
    _raises(np.exp, r"needs a Python function", x="E")


def test_bad_return_values():
    _raises(lambda x: "y", r"returns str, not a traced value or a number", x="E")
    _raises(lambda x: None, r"returns NoneType", x="E")
    _raises(lambda x: (), r"empty tuple", x="E")
    _raises(lambda x: x + 1j, r"returns a complex value", x="E")
    _raises(lambda x: np.ones(3), r"returns ndarray", x="E")


def test_python_number_conversions_are_refused():
    _raises(lambda x: math.exp(x), r"math\.exp.*np\.exp", x="E")
    _raises(lambda a: float(a), r"Python number")
    _raises(lambda x: np.asarray(x), r"cannot become a NumPy array", x="E")
    _raises(lambda x: len(x), r"length", x="E")
    _raises(lambda x: x.shape, r"shape", x="E")


def test_unsupported_indexing_and_axes():
    _raises(lambda x: x[0], r"indexing a traced value with 0", x="E")
    _raises(lambda x: x[1:], r"slice\(1, None, None\)", x="E")
    _raises(lambda x: x[x > 0], r"indexing a traced value", x="E")
    _raises(lambda t, x: (t * x)[:, :, ::-1], r"cannot tell which axis", t="T", x="E")
    _raises(lambda grid: np.sum(grid, axis=2), r"axis 2 is out of range", grid=("T", "E"))
    _raises(lambda x: np.sum(x, axis="T"), r"'T' is not an axis", x="E")
    _raises(lambda x, t: np.sum(x, axis="T") + t, r"does not vary along it", x="E", t="T")
    _raises(lambda grid: np.cumsum(grid), r"needs an axis", grid=("T", "E"))
    _raises(lambda x: np.where(x > 0), r"np\.where\(cond\) without branches", x="E")


def test_mixing_traces_is_refused():
    leaked = []

    def first(x):
        leaked.append(x)
        return x

    gir.trace(first, x="E")
    _raises(lambda y: y + leaked[0], r"another trace", y="E")
