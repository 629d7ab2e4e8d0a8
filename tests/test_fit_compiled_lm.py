"""Batched Levenberg-Marquardt in compiled code (gir.fit.compiled_lm) through gir.fit.batch: each fit
equals the one-at-a-time levmar fit (same optimum to 1e-6 relative, same iterations and diagnostics).

The Numba driver compiles once per model (about 15 s on a busy machine, then loaded from the disk
cache); every test here uses the same model, so the fast ones share that compile.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from available import require_target

import gir
import gir.fit
from benchmarks.bench_maps import map_model, simulate
from gir import models as gm
from gir.errors import InputError
from gir.fit.compiled_lm import unsupported

P = gm.Param
E = np.linspace(80.0, 90.0, 400)
RTOL = 1e-6  # parameters and standard errors against the one-at-a-time fits


def spectra(exe, n: int, noise: float = 0.1, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truths varying per spectrum, noisy data and starts 10 % off, as the map benchmark makes them."""
    return simulate(exe, n, seed=seed, energy=E, noise=noise)


@pytest.fixture(scope="module")
def exe():
    return gir.compile(map_model(), target="numba")


def one_at_a_time(exe, data, starts, **kw) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [
            gir.fit.least_squares(exe, d, theta0=s, energy=E, **kw) for d, s in zip(data, starts, strict=True)
        ]


def assert_same_fits(b, refs) -> None:
    np.testing.assert_allclose(b.x, [r.x for r in refs], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(b.stderr, [r.stderr for r in refs], rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(b.cost, [r.cost for r in refs], rtol=RTOL)
    np.testing.assert_array_equal(b.nfev, [r.nfev for r in refs])
    np.testing.assert_array_equal(b.success, [r.success for r in refs])
    assert [b.stacked.levmar_status(i) for i in range(len(b))] == [r.status for r in refs]


def test_compiled_batch_equals_one_at_a_time_levmar(exe):
    truths, data, starts = spectra(exe, 12)
    b = gir.fit.batch(exe, data, theta0=starts, progress=False, workers=2, chunksize=5, energy=E)
    assert b.mode == "compiled (numba, 2 threads)"
    refs = one_at_a_time(exe, data, starts)
    assert_same_fits(b, refs)
    np.testing.assert_allclose(b.redchi, [r.redchi for r in refs], rtol=RTOL)
    assert np.all(np.abs(b.x - truths) < 5 * b.stderr + 1e-9)  # and near the truths
    # the FitResults, built when asked for, are those of the one-at-a-time fit
    r3 = b[3]
    np.testing.assert_allclose(r3.x, refs[3].x, rtol=RTOL)
    np.testing.assert_allclose(r3.stderr, refs[3].stderr, rtol=RTOL)
    np.testing.assert_allclose(r3.best_fit, refs[3].best_fit, rtol=RTOL)
    assert r3.message == refs[3].message and r3.nfev == refs[3].nfev
    assert b[-1] is b[11] and len(list(b)) == 12
    df = b.to_dataframe()
    assert list(df["p1.x0"]) == list(b.params["p1.x0"]) and df["success"].all()
    assert "12 fits, 12 succeeded" in b.report()


def test_one_start_for_all_and_shared_weights(exe):
    _, data, starts = spectra(exe, 6, seed=4)
    sigma = 0.1 * (1.0 + 0.5 * (E - E[0]) / (E[-1] - E[0]))
    b = gir.fit.batch(exe, data, theta0=starts[0], weights=1 / sigma, progress=False, energy=E)
    assert b.mode.startswith("compiled (numba")
    assert_same_fits(b, one_at_a_time(exe, data, [starts[0]] * 6, weights=1 / sigma))
    assert b.stacked.weighted


@pytest.mark.slow
def test_per_spectrum_weights_missing_points_bounds_fixed_and_window(exe):
    _, data, starts = spectra(exe, 8, seed=5)
    rng = np.random.default_rng(0)
    w = 1.0 / rng.uniform(0.05, 0.2, data.shape)
    data[2, 200] = np.nan  # left out of that fit
    kw = {"bounds": {"p1.m": (0.0, 0.35)}, "fixed": {"Line.slope": 0.0}, "window": {"energy": (81.0, 89.0)}}
    b = gir.fit.batch(exe, data, theta0=starts, weights=w, progress=False, fit_kws=kw, energy=E)
    assert b.mode.startswith("compiled") and b.param_names == exe.param_names[1:]
    refs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for d, s, wk in zip(data, starts, w, strict=True):
            refs.append(gir.fit.least_squares(exe, d, theta0=s, weights=wk, energy=E, **kw))
    assert_same_fits(b, refs)
    assert b.stacked.ndata[2] == refs[2].ndata == b.stacked.ndata[0] - 1
    assert (
        b.diagnostics()
        == gir.fit.batch(
            exe, data, theta0=starts, weights=w, progress=False, fit_kws=kw, compiled=False, energy=E
        ).diagnostics()
    )


@pytest.mark.slow
def test_diagnostics_at_bounds_and_max_nfev_agree_with_the_python_batch(exe):
    _, data, starts = spectra(exe, 10, seed=6)
    data[::3] -= 15.0  # a background below the bound of the intercept: it ends there
    for kw in ({}, {"max_nfev": 4}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            b = gir.fit.batch(exe, data, theta0=starts, progress=False, fit_kws=kw, energy=E)
            py = gir.fit.batch(exe, data, theta0=starts, progress=False, fit_kws=kw, compiled=False, energy=E)
        assert b.mode.startswith("compiled") and not py.mode.startswith("compiled")
        assert b.diagnostics() == py.diagnostics() and b.diagnostics()
        np.testing.assert_allclose(b.x, py.x, rtol=RTOL, atol=1e-12)
        np.testing.assert_array_equal(b.nfev, py.nfev)
        assert [r.message for r in b] == [r.message for r in py]


def test_which_batches_run_compiled(exe):
    assert unsupported(exe, {}) is None
    assert unsupported(exe, {"varpro": True}) == "varpro"
    assert unsupported(exe, {"method": "trf"}) == "method 'trf'"
    numpy_exe = gir.compile(map_model(), target="numpy")
    assert unsupported(numpy_exe, {}) == "target 'numpy'"
    _, data, starts = spectra(numpy_exe, 2)
    with pytest.raises(InputError, match="target 'numpy'"):
        gir.fit.batch(numpy_exe, data, theta0=starts, progress=False, compiled=True, energy=E)
    b = gir.fit.batch(numpy_exe, data, theta0=starts, progress=False, energy=E)
    assert b.mode == "sequential" and b.stacked is None


@pytest.mark.slow
def test_jax_cpu_batch_equals_one_at_a_time_levmar():
    require_target("jax-cpu")
    jexe = gir.compile(map_model(), target="jax-cpu")
    _, data, starts = spectra(jexe, 6, seed=8)
    data[::3] -= 15.0  # the intercept ends on its bound
    w = 1.0 / np.random.default_rng(1).uniform(0.05, 0.2, data.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        b = gir.fit.batch(
            jexe, data, theta0=starts, weights=w, progress=False, chunksize=4, compiled=True, energy=E
        )
        py = gir.fit.batch(jexe, data, theta0=starts, weights=w, progress=False, compiled=False, energy=E)
    assert b.mode == "compiled (jax-cpu, vmap)"
    refs = list(py)
    assert_same_fits(b, refs)
    assert b.diagnostics() == py.diagnostics() and "at a bound: Line.intercept" in b.diagnostics()


@pytest.mark.slow
def test_two_dimensional_data_with_a_window_cut_after_evaluation():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(gm.GLP("p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.2, bounds=(0.1, 5)), m=0.3))
    m.dynamics("p1.x0", [gm.expFun(A=P(0.6), tau=P(1.3, bounds=(0.05, 20)), t0=0.0)])
    exe = gir.compile(m, target="numba")
    energy, time = np.linspace(80.0, 88.0, 60), np.linspace(-1.0, 6.0, 25)
    rng = np.random.default_rng(2)
    truths = exe.theta0 * (1 + 0.05 * rng.uniform(-1, 1, (4, exe.theta0.size)))
    data = np.asarray(exe.batch(truths, energy=energy, time=time)) + rng.normal(0, 0.05, (4, 25, 60))
    starts = truths * 1.02
    kw = {"window": {"time": (0.0, 5.0), "energy": (81.0, 87.0)}, "window_after": ("time",)}
    b = gir.fit.batch(exe, data, theta0=starts, progress=False, fit_kws=kw, energy=energy, time=time)
    assert b.mode.startswith("compiled")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        refs = [
            gir.fit.least_squares(exe, d, theta0=s, energy=energy, time=time, **kw)
            for d, s in zip(data, starts, strict=True)
        ]
    assert_same_fits(b, refs)
    assert b[1].best_fit.shape == refs[1].best_fit.shape == (np.sum((time >= 0) & (time <= 5)), 44)
