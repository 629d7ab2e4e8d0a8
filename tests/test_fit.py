"""gir.fit.least_squares: recovery of the truth from perturbed starts, windows, weights, results.

Every fit starts away from the truth. Noiseless data must give the truth back
to 1e-8 relative; noisy data within 3 reported standard errors. The 1D model
is GLP + Offset, the 2D model a GLP whose position moves in time (expFun),
on a 50 x 200 grid; both run on numpy and on every available target among
numba and jax.
"""

from __future__ import annotations

import numpy as np
import pytest
from available import require_target

import gir
import gir.fit
from gir import models as gm
from gir.errors import InputError

P = gm.Param
FIT_TARGETS = ["numpy", "numba", "numba-parallel", "jax"]


E1 = np.linspace(80.0, 90.0, 400)
E2 = np.linspace(80.0, 90.0, 200)
T2 = np.linspace(-1.0, 8.0, 50)


def model_1d() -> gm.Model:
    m = gm.Model()
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=(0, 100)), x0=P(84.3), F=P(1.2, bounds=(0.1, 5)), m=P(0.35, bounds=(0, 1))
        )
    )
    return m


def model_2d(irf: bool = False) -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.1, bounds=(0.1, 5)), m=P(0.3, bounds=(0, 1))
        )
    )
    m.dynamics(
        "p1.x0",
        [gm.expFun(A=P(0.8), tau=P(1.5, bounds=(0.05, 20)), t0=0.0)],
        irf=gm.gaussCONV(SD=0.3) if irf else None,
    )
    return m


_EXES: dict = {}


def compiled(kind: str, target: str):
    require_target(target)
    key = (kind, target)
    if key not in _EXES:
        _EXES[key] = gir.compile(
            {"1d": model_1d, "2d": model_2d, "2d_irf": lambda: model_2d(True)}[kind](), target=target
        )
    return _EXES[key]


def arrays_of(kind: str) -> dict:
    return {"energy": E1} if kind == "1d" else {"energy": E2, "time": T2}


def perturbed_start(truth: np.ndarray, names) -> np.ndarray:
    """A start away from the truth: a few percent on every parameter, positions shifted."""
    factors = 1 + 0.08 * np.sin(np.arange(len(truth)) * 1.7 + 0.5)
    start = truth * factors
    for i, n in enumerate(names):
        if n.endswith(".x0"):
            start[i] = truth[i] + 0.25
        if start[i] == truth[i]:
            start[i] = truth[i] + 0.1
    return start


@pytest.mark.parametrize("target", FIT_TARGETS)
@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_noiseless_recovers_truth(kind, target):
    exe = compiled(kind, target)
    arrays = arrays_of(kind)
    truth = exe.theta0.copy()
    data = exe(truth, **arrays)
    start = perturbed_start(truth, exe.param_names)
    assert np.all(np.abs(start / truth - 1) > 1e-3)
    r = gir.fit.least_squares(exe, data, theta0=start, **arrays)
    assert r.success, r.message
    np.testing.assert_allclose(r.x, truth, rtol=1e-8, atol=0)
    assert r.params == dict(zip(exe.param_names, r.x, strict=True))
    assert r.cost < 1e-20 * np.sum(data**2)
    assert r.evaluations["jacobian"] >= r.nfev - 1  # eager: value and Jacobian together
    assert r.wall_time > 0 and r.nfev > 1


@pytest.mark.parametrize("target", FIT_TARGETS)
@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_noisy_within_three_stderr(kind, target):
    exe = compiled(kind, target)
    arrays = arrays_of(kind)
    truth = exe.theta0.copy()
    sigma = 0.05
    rng = np.random.default_rng(12345)
    clean = exe(truth, **arrays)
    data = clean + rng.normal(0.0, sigma, clean.shape)
    r = gir.fit.least_squares(
        exe,
        data,
        theta0=perturbed_start(truth, exe.param_names),
        weights=np.full(clean.shape, 1 / sigma),
        **arrays,
    )
    assert r.success
    assert np.all(r.stderr > 0) and np.all(np.isfinite(r.stderr))
    z = (r.x - truth) / r.stderr
    assert np.all(np.abs(z) < 3), dict(zip(exe.param_names, z, strict=True))
    assert 0.9 < r.redchi < 1.1
    # stderr from J^T J scaled by redchi: the same as lmfit's convention
    jac = r.jac
    cov = np.linalg.inv(jac.T @ jac) * r.redchi
    np.testing.assert_allclose(r.covar, cov, rtol=1e-6, atol=1e-9 * np.max(np.abs(cov)))
    np.testing.assert_allclose(r.stderr, np.sqrt(np.diag(cov)), rtol=1e-6)
    assert r.chisqr == pytest.approx(2 * r.cost) and r.ndata == clean.size


def test_all_targets_reach_the_same_minimum():
    results = {}
    for target in FIT_TARGETS:
        try:
            exe = compiled("2d", target)
        except pytest.skip.Exception:
            continue
        truth = exe.theta0.copy()
        rng = np.random.default_rng(3)
        data = exe(truth, energy=E2, time=T2) + rng.normal(0, 0.05, (len(T2), len(E2)))
        results[target] = gir.fit.least_squares(
            exe,
            data,
            theta0=perturbed_start(truth, exe.param_names),
            ftol=1e-12,
            xtol=1e-12,
            gtol=1e-12,
            energy=E2,
            time=T2,
        )
    base = results.pop("numpy")
    for target, r in results.items():
        assert r.cost == pytest.approx(base.cost, rel=1e-10), target
        np.testing.assert_allclose(r.x, base.x, rtol=1e-7, err_msg=target)


def test_model_plain_executable_and_lazy_policy():
    m = model_1d()
    exe = compiled("1d", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E1)
    start = perturbed_start(truth, exe.param_names)
    r_model = gir.fit.least_squares(m, data, theta0=start, target="numpy", energy=E1)
    np.testing.assert_allclose(r_model.x, truth, rtol=1e-8)

    def glp(x, y0, A, x0, F, m):
        u2 = ((x - x0) / F) ** 2
        return y0 + A * np.exp(-4 * np.log(2) * (1 - m) * u2) / (1 + 4 * m * u2)

    plain = gir.compile(gir.trace(glp, x="E"), target="numpy")
    r_plain = gir.fit.least_squares(plain, data, theta0=start, x=E1)
    np.testing.assert_allclose(r_plain.x, truth, rtol=1e-8)
    assert r_plain.param_names == ("y0", "A", "x0", "F", "m")
    with pytest.raises(InputError, match="theta0"):
        gir.fit.least_squares(plain, data, x=E1)  # a plain executable has no start values
    r_lazy = gir.fit.least_squares(exe, data, theta0=start, jacobian="lazy", energy=E1)
    np.testing.assert_allclose(r_lazy.x, truth, rtol=1e-8)
    assert r_lazy.evaluations["value"] > 0 and r_lazy.evaluations["jacobian"] == r_lazy.njev


def test_bounds_default_to_the_model_and_can_be_overridden():
    exe = compiled("1d", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E1)
    r = gir.fit.least_squares(exe, data, theta0=perturbed_start(truth, exe.param_names), energy=E1)
    np.testing.assert_array_equal(r.bounds[0], exe.bounds[0])
    # a bound that excludes the truth holds
    with pytest.warns(RuntimeWarning, match="clipped"):
        r = gir.fit.least_squares(
            exe, data, theta0=perturbed_start(truth, exe.param_names), bounds={"p1.A": (0, 9.0)}, energy=E1
        )
    assert r.params["p1.A"] == pytest.approx(9.0, abs=1e-9)
    assert "(at bound)" in r.report()


def test_fixed_parameters():
    exe = compiled("1d", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E1)
    start = perturbed_start(truth, exe.param_names)
    r = gir.fit.least_squares(exe, data, theta0=start, fixed={"p1.m": 0.35}, energy=E1)
    assert "p1.m" not in r.param_names and len(r.x) == len(truth) - 1
    np.testing.assert_allclose(r.theta, truth, rtol=1e-8)
    with pytest.raises(InputError, match="unknown"):
        gir.fit.least_squares(exe, data, fixed={"nope": 1.0}, energy=E1)


def test_method_lm():
    exe = compiled("1d", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E1)
    start = perturbed_start(truth, exe.param_names)
    with pytest.warns(RuntimeWarning, match="ignores"):
        r = gir.fit.least_squares(exe, data, theta0=start, method="lm", energy=E1)
    np.testing.assert_allclose(r.x, truth, rtol=1e-8)
    assert r.method == "lm" and r.njev > 0
    with pytest.raises(InputError, match="bounds"):
        gir.fit.least_squares(exe, data, theta0=start, method="lm", bounds=(0, 100), energy=E1)
    with pytest.raises(InputError, match="method"):
        gir.fit.least_squares(exe, data, method="newton", energy=E1)


def test_energy_window_evaluates_only_the_window():
    exe = compiled("2d", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E2, time=T2)
    inside_e = (E2 >= 82) & (E2 <= 88)
    inside_t = (T2 >= 0) & (T2 <= 5)
    spoiled = data.copy()
    spoiled[:, ~inside_e] = 1e6  # garbage outside the window must not matter
    spoiled[~inside_t, :] = -1e6
    window = {"energy": (82, 88), "time": (0, 5)}
    r = gir.fit.least_squares(
        exe, spoiled, theta0=perturbed_start(truth, exe.param_names), window=window, energy=E2, time=T2
    )
    np.testing.assert_allclose(r.x, truth, rtol=1e-8)
    assert r.ndata == inside_e.sum() * inside_t.sum()
    assert r.data.shape == (inside_t.sum(), inside_e.sum())
    np.testing.assert_array_equal(r.datasets[0].axes["energy"], E2[inside_e])
    # the executable saw the windowed axes (evaluated on the window only)
    ds = gir.fit.Dataset(exe, spoiled, window=window, energy=E2, time=T2).prepare()
    assert ds.ev.eval_shape == (inside_t.sum(), inside_e.sum()) and ds.ev.select is None
    assert ds.ev.inputs["energy"].shape == (inside_e.sum(),)
    # data given on the window itself is accepted too
    r2 = gir.fit.least_squares(
        exe, data[np.ix_(inside_t, inside_e)], theta0=r.x, window=window, energy=E2, time=T2
    )
    np.testing.assert_allclose(r2.x, truth, rtol=1e-8)


def test_time_window_with_convolution_keeps_the_full_time_axis():
    exe = compiled("2d_irf", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E2, time=T2)
    window = {"time": (-0.5, 3.0), "energy": (81, 89)}
    ds = gir.fit.Dataset(exe, data, window=window, energy=E2, time=T2).prepare()
    inside_t = (T2 >= -0.5) & (T2 <= 3.0)
    inside_e = (E2 >= 81) & (E2 <= 89)
    assert ds.ev.eval_shape == (len(T2), inside_e.sum())  # full time axis, windowed energy
    assert ds.ev.select is not None
    np.testing.assert_allclose(ds.model_grid(truth), data[np.ix_(inside_t, inside_e)], rtol=1e-13)
    # cutting the time axis first would change the convolution near the window's edges
    cut = exe(truth, energy=E2[inside_e], time=T2[inside_t])
    assert np.max(np.abs(cut - data[np.ix_(inside_t, inside_e)])) > 1e-6
    r = gir.fit.least_squares(
        exe, data, theta0=perturbed_start(truth, exe.param_names), window=window, energy=E2, time=T2
    )
    np.testing.assert_allclose(r.x, truth, rtol=1e-8)
    # window_after=() forces cutting before evaluation
    ds_before = gir.fit.Dataset(exe, data, window=window, window_after=(), energy=E2, time=T2).prepare()
    assert ds_before.ev.eval_shape == (inside_t.sum(), inside_e.sum())
    ds_both = gir.fit.Dataset(
        exe, data, window=window, window_after=("E", "time"), energy=E2, time=T2
    ).prepare()
    assert ds_both.ev.eval_shape == (len(T2), len(E2))
    np.testing.assert_allclose(ds_both.model_grid(truth), data[np.ix_(inside_t, inside_e)], rtol=1e-13)
    with pytest.raises(InputError, match="unknown axis"):
        gir.fit.Dataset(exe, data, window=window, window_after=("depth",), energy=E2, time=T2).prepare()


def test_window_on_a_plain_executable_that_sums_along_the_axis():
    def shirleyish(x, A, x0, s):
        peak = A * np.exp(-((x - x0) ** 2))
        return peak + s * np.flip(np.cumsum(np.flip(peak, -1), -1), -1)

    exe = gir.compile(gir.trace(shirleyish, x="E"), target="numpy")
    x = np.linspace(-5, 5, 101)
    truth = np.array([2.0, 0.3, 0.05])
    data = exe(truth, x=x)
    ds = gir.fit.Dataset(exe, data, theta0=truth, window={"x": (-1, 2)}, x=x).prepare()
    assert ds.ev.eval_shape == (101,)  # the graph scans along E: evaluated in full, cut after
    r = gir.fit.least_squares(exe, data, theta0=truth * 1.05, window={"x": (-1, 2)}, x=x)
    np.testing.assert_allclose(r.x, truth, rtol=1e-8)


def test_non_finite_data_are_left_out_and_weights_apply():
    exe = compiled("1d", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E1)
    holes = data.copy()
    holes[::7] = np.nan
    r = gir.fit.least_squares(exe, holes, theta0=perturbed_start(truth, exe.param_names), energy=E1)
    np.testing.assert_allclose(r.x, truth, rtol=1e-8)
    assert r.ndata == np.isfinite(holes).sum()
    rng = np.random.default_rng(0)
    sigma = np.where(E1 < 85, 0.01, 0.1)
    noisy = data + rng.normal(0, 1, data.shape) * sigma
    rw = gir.fit.least_squares(exe, noisy, theta0=truth, weights=1 / sigma, energy=E1)
    assert 0.85 < rw.redchi < 1.15
    ru = gir.fit.least_squares(exe, noisy, theta0=truth, energy=E1)
    assert rw.chisqr != pytest.approx(ru.chisqr)


def test_report_and_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    exe = compiled("2d", "numpy")
    truth = exe.theta0.copy()
    data = exe(truth, energy=E2, time=T2) + np.random.default_rng(1).normal(0, 0.05, (len(T2), len(E2)))
    r = gir.fit.least_squares(exe, data, theta0=perturbed_start(truth, exe.param_names), energy=E2, time=T2)
    text = r.report()
    for name in exe.param_names:
        assert name in text
    assert "reduced chi-square" in text and str(r.nfev) in text
    fig = r.plot()
    assert len(fig.axes) == 6  # data, fit, residual images and their colorbars
    fig.savefig(tmp_path / "fit2d.png")
    exe1 = compiled("1d", "numpy")
    r1 = gir.fit.least_squares(exe1, exe1(exe1.theta0, energy=E1), energy=E1)
    fig1 = r1.plot()
    assert len(fig1.axes) == 2
    import matplotlib.pyplot as plt

    plt.close("all")


def test_input_errors():
    exe = compiled("2d", "numpy")
    data = exe(exe.theta0, energy=E2, time=T2)
    with pytest.raises(InputError, match="shape"):
        gir.fit.least_squares(exe, data[:, :10], energy=E2, time=T2)
    with pytest.raises(InputError, match="unknown axis"):
        gir.fit.least_squares(exe, data, window={"depth": (0, 1)}, energy=E2, time=T2)
    with pytest.raises(InputError, match="no point"):
        gir.fit.least_squares(exe, data, window={"energy": (200, 300)}, energy=E2, time=T2)
    with pytest.raises(InputError, match="theta0"):
        gir.fit.least_squares(exe, data, theta0=[1.0, 2.0], energy=E2, time=T2)
    with pytest.raises(InputError, match="missing axis"):
        gir.fit.least_squares(exe, data, energy=E2)
    with pytest.raises(InputError, match="cannot fit"):
        gir.fit.least_squares("model", data)
