"""The lmfit bridge: Parameters from gir models, residual and Dfun for lmfit.minimize."""

from __future__ import annotations

import numpy as np
import pytest

lmfit = pytest.importorskip("lmfit")

import gir  # noqa: E402
import gir.fit  # noqa: E402
from gir import models as gm  # noqa: E402
from gir.errors import InputError  # noqa: E402
from gir.fit import lmfit_bridge  # noqa: E402

P = gm.Param
E = np.linspace(80.0, 92.0, 200)
T = np.linspace(-1.0, 8.0, 40)


def model() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(1.0, bounds=(0, 10))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.0, bounds=(0.1, 5)), m=P(0.3, bounds=(0, 1))
        )
    )
    m.add(gm.GLP("p2", A="0.5 * p1.A", x0="p1.x0 + 3.65", F="p1.F", m="ln(exp(p1.m))"))
    m.add(gm.Shirley(pShirley=P(1e-3, bounds=(0, 1))))
    m.dynamics("p1.x0", [gm.expFun(A=P(0.5), tau=P(1.5, bounds=(0.05, 20)), t0=0.0)])
    return m


@pytest.fixture(scope="module")
def setup():
    exe = gir.compile(model(), target="numpy")
    truth = exe.theta0.copy()
    rng = np.random.default_rng(11)
    data = exe(truth, energy=E, time=T)
    noisy = data + rng.normal(0, 0.05, data.shape)
    start = truth * (1 + 0.03 * np.sin(np.arange(len(truth)) + 1))
    start[list(exe.param_names).index("p1.x0")] = 84.2
    return exe, truth, noisy, start


def params_at(exe, start):
    params = gir.fit.to_lmfit(exe)
    names = gir.fit.lmfit_names(exe.binding.parameters())
    for n, v in zip(exe.param_names, start, strict=True):
        params[names[n]].value = v
    return params, names


def test_to_lmfit_values_bounds_vary_and_expressions():
    m = model()
    params = gir.fit.to_lmfit(m)
    assert list(params) == [
        "Offset_y0",
        "p1_A",
        "p1_x0",
        "p1_F",
        "p1_m",
        "p2_A",
        "p2_x0",
        "p2_F",
        "p2_m",
        "Shirley_pShirley",
        "p1_x0_expFun_A",
        "p1_x0_expFun_tau",
        "p1_x0_expFun_t0",
    ]
    assert params["p1_A"].value == 10.0 and params["p1_A"].min == 0 and params["p1_A"].max == 100
    assert params["p1_x0"].vary and params["p1_x0"].min == -np.inf
    assert not params["p1_x0_expFun_t0"].vary and params["p1_x0_expFun_t0"].value == 0.0
    assert params["p2_x0"].expr == "p1_x0 + 3.65" and params["p2_x0"].value == pytest.approx(87.65)
    assert params["p2_m"].expr == "log(exp(p1_m))" and params["p2_m"].value == pytest.approx(0.3)
    assert params["p2_A"].user_data == {"gir": "p2.A", "gir_expr": "0.5 * p1.A"}
    params["p1_A"].value = 20.0
    params.update_constraints()
    assert params["p2_A"].value == pytest.approx(10.0)


def test_to_lmfit_of_compiled_models_and_plain_executables():
    exe = gir.compile(model(), target="numpy", fixed={"p1.m": 0.25})
    params = gir.fit.to_lmfit(exe)
    assert not params["p1_m"].vary and params["p1_m"].value == 0.25
    assert params["p2_m"].value == pytest.approx(0.25)

    def line(x, a, b):
        return a * x + b

    plain = gir.compile(gir.trace(line, x="E"), target="numpy")
    params = gir.fit.to_lmfit(plain, theta0=[2.0, 1.0], bounds={"a": (0, 5)})
    assert params["a"].value == 2.0 and params["a"].max == 5 and params["b"].value == 1.0
    with pytest.raises(InputError, match="theta0"):
        gir.fit.to_lmfit(plain)
    assert gir.fit.lmfit_names(["a.b", "a_b", "1x"]) == {"a.b": "a_b", "a_b": "a_b_2", "1x": "p_1x"}


def test_unrepresentable_expression_becomes_fixed(monkeypatch):
    monkeypatch.setattr(lmfit_bridge, "_translate", lambda expr, names: "undefined_function(1)")
    with pytest.warns(RuntimeWarning, match="not representable"):
        params = gir.fit.to_lmfit(model())
    assert not params["p2_x0"].vary and params["p2_x0"].expr is None
    assert params["p2_x0"].value == pytest.approx(87.65)
    assert "not representable" in params["p2_x0"].user_data["note"]


def test_residual_sign_and_dfun_layout(setup):
    exe, _truth, noisy, start = setup
    residual, dfun = gir.fit.lmfit_functions(exe, noisy, energy=E, time=T)
    params, _names = params_at(exe, start)
    r = residual(params)
    np.testing.assert_allclose(r, (noisy - exe(start, energy=E, time=T)).ravel(), rtol=1e-12)
    params["p1_F"].vary = False  # a varying subset, in Parameters order
    params["p1_m"].expr = "0.3 * p1_F"  # a gir parameter turned into an lmfit expression: chained in
    params.update_constraints()
    jac = dfun(params)
    varying = [n for n, p in params.items() if p.vary]
    assert jac.shape == (noisy.size, len(varying))
    # each column is the derivative of the residual with respect to that varying parameter
    for j, name in enumerate(varying):
        h = 1e-6 * max(1.0, abs(params[name].value))
        plus, minus = params.copy(), params.copy()
        plus[name].value += h
        minus[name].value -= h
        plus.update_constraints()
        minus.update_constraints()
        fd = (residual(plus) - residual(minus)) / (2 * h)
        scale = np.max(np.abs(fd))
        assert np.max(np.abs(jac[:, j] - fd)) <= 1e-6 * scale, name


def test_lmfit_leastsq_and_least_squares_equal_gir(setup):
    exe, _truth, noisy, start = setup
    own = gir.fit.least_squares(
        exe, noisy, theta0=start, energy=E, time=T, ftol=1e-12, xtol=1e-12, gtol=1e-12
    )
    residual, dfun = gir.fit.lmfit_functions(exe, noisy, energy=E, time=T)
    params, names = params_at(exe, start)
    out = lmfit.minimize(residual, params, method="leastsq", Dfun=dfun, ftol=1e-12, xtol=1e-12)
    assert out.success
    out2 = lmfit.minimize(
        residual, params, method="least_squares", jac=dfun, ftol=1e-12, xtol=1e-12, gtol=1e-12
    )
    for result in (out, out2):
        x = np.array([result.params[names[n]].value for n in exe.param_names])
        err = np.array([result.params[names[n]].stderr for n in exe.param_names])
        np.testing.assert_allclose(x, own.x, rtol=1e-7)
        np.testing.assert_allclose(err, own.stderr, rtol=1e-3)
        assert result.chisqr == pytest.approx(own.chisqr, rel=1e-10)
    # the derived parameters follow
    assert out.params["p2_x0"].value == pytest.approx(own.params["p1.x0"] + 3.65)
    # the analytic Jacobian needs far fewer function evaluations than lmfit's finite differences
    fd = lmfit.minimize(residual, params, method="leastsq", ftol=1e-12, xtol=1e-12)
    assert fd.nfev > 3 * out.nfev


def test_emcee_runs_on_the_residual_alone():
    pytest.importorskip("emcee")
    m = gm.Model()
    m.add(gm.Offset(y0=P(0.5, bounds=(-2, 2))))
    m.add(gm.GLP("p", A=P(5.0, bounds=(0, 20)), x0=P(84.0, bounds=(82, 86)), F=1.0, m=0.3))
    exe = gir.compile(m, target="numpy")
    data = exe(exe.theta0, energy=E) + np.random.default_rng(2).normal(0, 0.05, E.size)
    residual, _dfun = gir.fit.lmfit_functions(exe, data, energy=E)
    params = gir.fit.to_lmfit(exe)
    out = lmfit.minimize(
        residual,
        params,
        method="emcee",
        nwalkers=8,
        steps=40,
        burn=10,
        progress=False,
        is_weighted=False,
        seed=1,
    )
    assert out.var_names == ["Offset_y0", "p_A", "p_x0", "__lnsigma"]  # and the noise scale
    assert out.chain.shape[-1] == 4
    assert abs(out.params["p_x0"].value - 84.0) < 0.05  # the median of the chain


def test_lmfit_errors(setup):
    exe, _truth, noisy, start = setup
    residual, dfun = gir.fit.lmfit_functions(exe, noisy, energy=E, time=T)
    params, _ = params_at(exe, start)
    params["p1_x0_expFun_t0"].vary = True  # a constant of the compiled model
    with pytest.raises(InputError, match="not a parameter of the compiled model"):
        dfun(params)
    with pytest.raises(InputError, match="lack"):
        residual(lmfit.Parameters())
    with pytest.raises(InputError, match="jacobian"):
        gir.fit.lmfit_functions(exe, noisy, jacobian="sometimes", energy=E, time=T)
