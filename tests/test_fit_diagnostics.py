"""Fits that say when they are wrong: diagnostics, warnings at the caller's line, lmfit's names,
and batch input checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gir
import gir.fit
from gir import models as gm
from gir.errors import InputError

P = gm.Param
E = np.linspace(80.0, 90.0, 200)


def peak_model(A_bounds=(0, 100)) -> gm.Model:
    m = gm.Model()
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=A_bounds), x0=P(84.0, bounds=(80, 90)), F=P(1.2, bounds=(0.1, 5)), m=0.3
        )
    )
    m.add(gm.GLP("p2", A="0.5*p1.A", x0="p1.x0 + 3", F="p1.F", m=0.3))
    return m


def data_for(exe, theta, sigma=0.05, seed=0, n=None):
    clean = exe(theta, energy=E)
    rng = np.random.default_rng(seed)
    shape = clean.shape if n is None else (n, *clean.shape)
    return clean + rng.normal(0.0, sigma, shape)


@pytest.fixture(scope="module")
def exe():
    return gir.compile(peak_model(), target="numpy")


def test_a_good_fit_has_no_diagnostics_and_reports_fixed_and_tied_parameters(exe):
    truth = exe.theta0
    data = data_for(exe, truth)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = gir.fit.least_squares(exe, data, weights=np.full(E.shape, 1 / 0.05), energy=E)
    assert r.diagnostics == []
    assert r.fixed == {"p1.m": 0.3, "p2.m": 0.3}
    assert r.tied["p2.A"] == ("0.5*p1.A", pytest.approx(0.5 * r.params["p1.A"], rel=1e-14))
    assert r.tied["p2.x0"][1] == pytest.approx(r.params["p1.x0"] + 3, rel=1e-14)
    text = r.report()
    assert "[[Warnings]]" not in text
    assert "(fixed)" in text and "== '0.5*p1.A'" in text
    assert r.fit_report() == text


def test_parameter_at_bound_is_diagnosed_and_warned_at_the_callers_line():
    exe = gir.compile(peak_model(A_bounds=(0, 5)), target="numpy")  # the truth (10) is outside
    data = data_for(exe, np.where(np.array(exe.param_names) == "p1.A", 10.0, exe.theta0))
    with pytest.warns(RuntimeWarning, match=r"at a bound: p1\.A") as record:
        r = gir.fit.least_squares(exe, data, theta0={"p1.A": 4.0}, energy=E)
    assert record[0].filename == __file__
    assert r.at_bounds == ("p1.A",)
    assert [d.kind for d in r.diagnostics] == ["at_bound"]
    assert "[[Warnings]]" in r.report() and "at a bound: p1.A" in r.report()


def test_undetermined_errors_and_rank_deficiency():
    exe = gir.compile(gir.expr("a * b * exp(-(x - c)**2)", x="E"), target="numpy")
    data = exe([2.0, 3.0, 85.0], x=E)
    with pytest.warns(RuntimeWarning, match="rank deficient") as record:
        r = gir.fit.least_squares(exe, data, theta0=[1.0, 1.0, 85.2], x=E)
    assert record[0].filename == __file__
    kinds = {d.kind for d in r.diagnostics}
    assert {"rank_deficient", "undetermined"} <= kinds
    undetermined = next(d for d in r.diagnostics if d.kind == "undetermined")
    assert set(undetermined.params) == {"a", "b"}


def test_reduced_chi_square_far_from_one_is_flagged_only_with_weights(exe):
    data = data_for(exe, exe.theta0, sigma=0.1)
    with pytest.warns(RuntimeWarning, match="reduced chi-square"):
        r = gir.fit.least_squares(exe, data, weights=np.full(E.shape, 1 / 0.05), energy=E)  # sigma is 0.1
    assert r.redchi == pytest.approx(4.0, rel=0.3)
    assert [d.kind for d in r.diagnostics] == ["redchi"]
    unweighted = gir.fit.least_squares(exe, data, energy=E)
    assert unweighted.diagnostics == []


def test_stopping_on_max_nfev_is_diagnosed(exe):
    data = data_for(exe, exe.theta0)
    with pytest.warns(RuntimeWarning, match="stopped early"):
        r = gir.fit.least_squares(exe, data, theta0={"p1.x0": 84.6, "p1.A": 6.0}, max_nfev=2, energy=E)
    assert r.diagnostics[0].kind == "max_nfev"


def test_eval_components_sum_to_the_fit_and_plot_draws_them(exe):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    data = data_for(exe, exe.theta0)
    r = gir.fit.least_squares(exe, data, theta0={"p1.x0": 84.3}, energy=E)
    parts = r.eval_components()
    assert list(parts) == ["Offset", "p1", "p2"]
    np.testing.assert_allclose(sum(parts.values()), r.best_fit, rtol=1e-12)
    np.testing.assert_allclose(r.eval(), r.best_fit, rtol=1e-14)
    np.testing.assert_allclose(r.eval(r.datasets[0].init), exe(r.datasets[0].init, energy=E), rtol=1e-14)
    fig = r.plot()
    labels = {line.get_label() for line in fig.axes[0].get_lines()}
    assert {"data", "fit", "initial guess", "Offset", "p1", "p2"} <= labels


def test_components_on_a_window_cut_after_evaluation():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.GLP("p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=1.2, m=0.3))
    m.dynamics("p1.x0", [gm.expFun(A=P(0.6), tau=P(1.3, bounds=(0.05, 20)), t0=0.0)],
               irf=gm.gaussCONV(SD=0.2))  # fmt: skip
    exe = gir.compile(m, target="numpy")
    T = np.linspace(-1.0, 6.0, 30)
    data = exe(exe.theta0, energy=E, time=T)
    r = gir.fit.least_squares(exe, data, window={"time": (0.0, None)}, energy=E, time=T)
    parts = r.eval_components()
    assert parts["p1"].shape == r.best_fit.shape == (int((T >= 0).sum()), E.size)
    np.testing.assert_allclose(parts["p1"], r.best_fit, rtol=1e-12)


def test_a_pickled_result_keeps_its_numbers_but_cannot_evaluate(exe):
    import pickle

    r = gir.fit.least_squares(exe, data_for(exe, exe.theta0), energy=E)
    back = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(back.best_fit, r.best_fit)
    with pytest.raises(InputError, match="pickle"):
        back.eval_components()


# -- batch ------------------------------------------------------------------------------------


def test_batch_refuses_one_spectrum_and_wrong_shapes(exe):
    one = data_for(exe, exe.theta0)
    with pytest.raises(InputError, match=r"\(N, \*grid\) = \(N, 200\).*one spectrum"):
        gir.fit.batch(exe, one, energy=E, progress=False)
    with pytest.raises(InputError, match=r"data set 0 has shape \(199,\)"):
        gir.fit.batch(exe, np.zeros((3, 199)), energy=E, progress=False)
    with pytest.raises(InputError, match="scalar"):
        gir.fit.batch(exe, 1.0, energy=E, progress=False)


def test_batch_params_errors_dataframe_and_aggregated_warnings():
    exe = gir.compile(peak_model(A_bounds=(0, 11)), target="numpy")
    truths = np.tile(exe.theta0, (6, 1))
    i_a = list(exe.param_names).index("p1.A")
    truths[[1, 4], i_a] = 12.0  # beyond the bound: those two fits end at it
    rng = np.random.default_rng(3)
    datas = np.array([exe(t, energy=E) for t in truths]) + rng.normal(0, 0.05, (6, E.size))
    with pytest.warns(RuntimeWarning, match=r"2 of 6 fits: at a bound: p1\.A: \[1, 4\]") as record:
        b = gir.fit.batch(exe, datas, energy=E, progress=False)
    assert record[0].filename == __file__
    assert set(b.params) == set(exe.param_names)
    np.testing.assert_array_equal(b.params["p1.A"], b.x[:, i_a])
    np.testing.assert_array_equal(b.errors["p1.A"], b.stderr[:, i_a])
    assert "2 of 6 fits: at a bound: p1.A: [1, 4]" in b.report()
    pytest.importorskip("pandas")
    df = b.to_dataframe()
    assert len(df) == 6 and {"p1.A", "p1.A_stderr", "redchi", "success", "nfev"} <= set(df.columns)
    np.testing.assert_array_equal(df["p1.x0"].to_numpy(), b.params["p1.x0"])


def test_a_scalar_axis_array_is_refused_by_name(exe):
    data = data_for(exe, exe.theta0)
    with pytest.raises(InputError, match="axis array 'energy' must be 1D"):
        gir.fit.least_squares(exe, data, energy=84.0)
