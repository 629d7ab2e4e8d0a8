"""The linear-parameter analysis (gir.passes.linearity) and variable projection fits."""

from __future__ import annotations

import numpy as np
import pytest
from available import require_target

import gir
import gir.fit
from gir import models as gm
from gir.errors import InputError
from gir.passes.linearity import NONLINEAR, is_jointly_linear, linear_parameters, output_degree

P = gm.Param
E = np.linspace(80.0, 92.0, 200)
T = np.linspace(-1.0, 8.0, 50)


def shirley_model() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(1.0, bounds=(0, 10))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.0, bounds=(0.1, 5)), m=P(0.3, bounds=(0, 1))
        )
    )
    m.add(gm.GLP("p2", A=P(5.0, bounds=(0, 100)), x0="p1.x0 + 3.65", F="p1.F", m="p1.m"))
    m.add(gm.Shirley(pShirley=P(1e-3, bounds=(0, 1))))
    m.dynamics("p1.x0", [gm.expFun(A=P(0.5), tau=P(1.5, bounds=(0.05, 20)), t0=0.0)])
    return m


# -- the analysis -----------------------------------------------------------------------


def test_shirley_factor_is_linear_alone_but_not_with_the_amplitudes():
    g = shirley_model().graph()
    for name in ["Offset.y0", "p1.A", "p2.A", "Shirley.pShirley"]:
        assert output_degree(g, [name]) == 1, name
    assert output_degree(g, ["p1.A", "Shirley.pShirley"]) == 2
    assert not is_jointly_linear(g, ["p2.A", "Shirley.pShirley"])
    assert is_jointly_linear(g, ["Offset.y0", "p1.A", "p2.A"])
    for name in ["p1.x0", "p1.F", "p1.m", "p1.x0.expFun.A", "p1.x0.expFun.tau"]:
        assert output_degree(g, [name]) == NONLINEAR, name
    assert linear_parameters(g) == ("Offset.y0", "p1.A", "p2.A")


def test_greedy_prefers_the_larger_set():
    # pShirley conflicts with two amplitudes; dropping it keeps three parameters instead of two
    g = shirley_model().graph()
    chosen = linear_parameters(g, ["Shirley.pShirley", "p1.A", "p2.A"])
    assert chosen == ("p1.A", "p2.A")
    assert linear_parameters(g, ["Shirley.pShirley", "p1.x0"]) == ("Shirley.pShirley",)


def test_linearity_through_expressions_dynamics_and_convolution():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=P(2.0), x0=P(84.0), SD=P(0.5)))
    m.add(gm.Gauss("h", A="0.5 * g.A + 1", x0="g.x0 + 2", SD="g.SD"))
    m.add(gm.LinBack(m=P(0.1), b=P(0.2), xStart=P(81.0), xStop=P(90.0)))
    m.dynamics(
        "g.A",
        [gm.expFun(A=P(0.5), tau=P(1.0), t0=0.0), gm.stepFun(A=P(0.2), t0=P(0.1))],
        irf=gm.gaussCONV(SD=P(0.2)),
    )
    g = m.graph()
    lin = set(linear_parameters(g))
    assert {"g.A", "g.A.expFun.A", "g.A.stepFun.A", "LinBack.m", "LinBack.b"} <= lin
    for name in ["g.A.gaussCONV.SD", "g.A.expFun.tau", "g.A.stepFun.t0", "LinBack.xStart", "g.SD"]:
        assert name not in lin


def test_degree_rules_on_traced_functions():
    def f(x, a, b, c, d, k):
        return a * np.exp(-x / k) + b * x + c**2 + np.where(x > d, 1.0, 0.0) + (a + b) / (1 + x)

    g = gir.trace(f, x="E")
    assert linear_parameters(g) == ("a", "b")
    assert output_degree(g, ["c"]) == 2
    assert output_degree(g, ["d"]) == NONLINEAR
    assert output_degree(g, ["k"]) == NONLINEAR
    assert output_degree(g, []) == 0

    def ratio(x, a, b):
        return a / b + x

    assert output_degree(gir.trace(ratio, x="E"), ["b"]) == NONLINEAR
    assert output_degree(gir.trace(ratio, x="E"), ["a"]) == 1

    def product(x, a, b):
        return a * b * x

    g = gir.trace(product, x="E")
    assert linear_parameters(g) == ("a",)
    assert linear_parameters(g, ["b", "a"]) == ("b",)  # ties go in candidate order
    assert linear_parameters(g, ["nope"]) == ()


# -- VARPRO fits ----------------------------------------------------------------------


def _noisy(exe, seed=1):
    truth = exe.theta0.copy()
    rng = np.random.default_rng(seed)
    data = exe(truth, energy=E, time=T)
    return truth, data + rng.normal(0, 0.05, data.shape)


TIGHT = {"ftol": 1e-12, "xtol": 1e-12, "gtol": 1e-12}


@pytest.mark.parametrize("method", ["levmar", "trf"])
@pytest.mark.parametrize("target", ["numpy", "numba", "jax"])
def test_varpro_reaches_the_same_minimum_with_fewer_evaluations(target, method):
    require_target(target)
    exe = gir.compile(shirley_model(), target=target)
    truth, data = _noisy(exe)
    start = truth * (1 + 0.02 * np.sin(np.arange(len(truth)) + 1))
    kw = dict(theta0=start, method=method, energy=E, time=T, **TIGHT)
    plain = gir.fit.least_squares(exe, data, **kw)
    vp = gir.fit.least_squares(exe, data, varpro=True, **kw)
    assert vp.varpro["linear"] == ["Offset.y0", "p1.A", "p2.A"] and vp.varpro["fallback"] is None
    assert vp.cost == pytest.approx(plain.cost, rel=1e-10)
    assert vp.param_names == plain.param_names  # every parameter, in the full order
    np.testing.assert_allclose(vp.x, plain.x, rtol=1e-7)
    np.testing.assert_allclose(vp.stderr, plain.stderr, rtol=1e-5)
    assert vp.nfev <= plain.nfev if method == "levmar" else vp.nfev < plain.nfev, (vp.nfev, plain.nfev)
    assert vp.wall_time > 0 and "VARPRO" in vp.report()


def test_varpro_explicit_names_and_errors():
    exe = gir.compile(shirley_model(), target="numpy")
    truth, data = _noisy(exe)
    start = truth * (1 + 0.02 * np.cos(np.arange(len(truth))))
    r = gir.fit.least_squares(exe, data, theta0=start, varpro=["Shirley.pShirley"], energy=E, time=T, **TIGHT)
    plain = gir.fit.least_squares(exe, data, theta0=start, energy=E, time=T, **TIGHT)
    assert r.varpro["linear"] == ["Shirley.pShirley"]
    assert r.cost == pytest.approx(plain.cost, rel=1e-10)
    with pytest.raises(InputError, match="not jointly linear"):
        gir.fit.least_squares(exe, data, varpro=["p1.A", "Shirley.pShirley"], energy=E, time=T)
    with pytest.raises(InputError, match="not a free parameter"):
        gir.fit.least_squares(exe, data, varpro=["p1.nope"], energy=E, time=T)


def test_varpro_noiseless_recovers_truth_and_fixed_parameters():
    exe = gir.compile(shirley_model(), target="numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E, time=T)
    start = truth * (1 + 0.05 * np.sin(np.arange(len(truth)) + 2))
    start[list(exe.param_names).index("p1.x0")] = 84.3
    r = gir.fit.least_squares(exe, data, theta0=start, varpro=True, fixed={"p1.m": 0.3}, energy=E, time=T)
    np.testing.assert_allclose(r.theta, truth, rtol=1e-8)
    assert "p1.m" not in r.param_names


def test_varpro_bounds_fallback_gives_the_plain_fit():
    exe = gir.compile(shirley_model(), target="numpy")
    truth, data = _noisy(exe)
    names = list(exe.param_names)
    start = truth.copy()
    start[names.index("p1.x0")] += 3.0  # the peaks start far from their place: best amplitudes are 0
    plain = gir.fit.least_squares(exe, data, theta0=start, energy=E, time=T)
    vp = gir.fit.least_squares(exe, data, theta0=start, varpro=True, energy=E, time=T)
    assert vp.varpro["fallback"] is not None
    assert vp.cost == pytest.approx(plain.cost, rel=1e-8)
    assert vp.nfev >= plain.nfev


def test_purely_linear_problem_is_solved_directly():
    m = gm.Model()
    m.add(gm.Offset(y0=P(0.0)))
    m.add(gm.GLP("p", A=P(1.0), x0=84.0, F=1.0, m=0.3))
    exe = gir.compile(m, target="numpy")
    data = exe([0.4, 7.0], energy=E)
    r = gir.fit.least_squares(exe, data, varpro=True, energy=E)
    np.testing.assert_allclose(r.x, [0.4, 7.0], rtol=1e-12)
    assert r.nfev == 1 and r.varpro["linear"] == ["Offset.y0", "p.A"]


def test_varpro_with_method_lm_and_a_plain_executable():
    def two_exp(t, a1, k1, a2, k2, c):
        return a1 * np.exp(-k1 * t) + a2 * np.exp(-k2 * t) + c

    exe = gir.compile(gir.trace(two_exp, t="T"), target="numpy")
    t = np.linspace(0, 10, 300)
    truth = np.array([3.0, 1.5, 1.0, 0.2, 0.5])
    data = exe(truth, t=t) + np.random.default_rng(4).normal(0, 0.01, t.size)
    start = np.array([2.0, 1.2, 1.5, 0.3, 0.0])
    plain = gir.fit.least_squares(exe, data, theta0=start, method="lm", t=t, **TIGHT)
    vp = gir.fit.least_squares(exe, data, theta0=start, method="lm", varpro=True, t=t, **TIGHT)
    assert vp.varpro["linear"] == ["a1", "a2", "c"]
    assert vp.cost == pytest.approx(plain.cost, rel=1e-10)
    assert vp.nfev < plain.nfev
