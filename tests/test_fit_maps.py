"""Map fits of labelled xarray data (gir.fit.maps): in memory, with dask, to netCDF; the map example."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from available import require_target

import gir
import gir.fit
from gir import models as gm
from gir.errors import InputError
from gir.fit.maps import FLAGS, STATS, evaluate_map

xr = pytest.importorskip("xarray")

P = gm.Param
E = np.linspace(80.0, 88.0, 120)
T = np.linspace(-1.0, 5.0, 12)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "map_fit.py"


def peak_model() -> gm.Model:
    m = gm.Model(axes=("energy",))
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0, bounds=(81, 87)), F=P(1.2, bounds=(0.2, 5)), m=0.3
        )
    )
    return m


@pytest.fixture(scope="module")
def exe():
    return gir.compile(peak_model(), target="numpy")


def truths(exe, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Parameter rows varying smoothly over the map: (*shape, P)."""
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij"), -1).sum(-1)
    out = np.empty((*shape, len(exe.param_names)))
    out[...] = exe.theta0
    out[..., exe.param_names.index("p1.x0")] = 83.0 + 1.5 * grid / len(shape)
    out[..., exe.param_names.index("p1.A")] = 9.0 + np.random.default_rng(seed).uniform(0, 2, shape)
    return out


def map_data(exe, shape=(3, 4), noise=0.05, seed=0):
    """A noisy map over (x, y, energy) with coordinates, a label per x and attributes; and its truths."""
    truth = truths(exe, shape, seed)
    clean = exe.batch(truth.reshape(-1, truth.shape[-1]), energy=E).reshape(*shape, E.size)
    noisy = clean + np.random.default_rng(seed + 1).normal(0, noise, clean.shape)
    coords = {"x": np.arange(shape[0]) * 0.5, "y": np.arange(shape[1]) * 2.0, "energy": E}
    coords["label"] = ("x", [f"row{i}" for i in range(shape[0])])
    data = xr.DataArray(noisy, dims=("x", "y", "energy"), coords=coords, attrs={"sample": "S1", "T_K": 80.0})
    return data, truth


def reference(exe, data, **kws):
    """Each spectrum of ``data`` (x, y, energy) fitted alone: FitResults by (i, j)."""
    return {
        (i, j): gir.fit.least_squares(exe, data.values[i, j], energy=E, **kws)
        for i in range(data.sizes["x"])
        for j in range(data.sizes["y"])
    }


def assert_matches(ds, refs, rtol=1e-10):
    for (i, j), r in refs.items():
        cell = ds.isel(x=i, y=j)
        np.testing.assert_allclose(cell.modelfit_coefficients.values, r.x, rtol=rtol)
        np.testing.assert_allclose(cell.modelfit_stderr.values, r.stderr, rtol=1e-6)
        stats = dict(zip(STATS, cell.modelfit_stats.values, strict=True))
        assert (stats["nfev"], stats["ndata"], stats["nvarys"], stats["nfree"]) == (
            r.nfev,
            r.ndata,
            r.nvarys,
            r.nfree,
        )
        np.testing.assert_allclose([stats["chisqr"], stats["redchi"]], [r.chisqr, r.redchi], rtol=1e-8)
        assert int(cell.modelfit_success) == int(r.success)


# -- in memory ----------------------------------------------------------------------------------


def test_map_fit_equals_each_spectrum_fitted_alone(exe):
    data, truth = map_data(exe)
    ds = gir.fit.least_squares(exe, data, progress=False)
    assert_matches(ds, reference(exe, data))
    assert ds.modelfit_coefficients.dims == ("x", "y", "param")
    assert list(ds.param.values) == list(exe.param_names)
    assert ds.modelfit_covariance.dims == ("x", "y", "param", "cov_param")
    assert list(ds.label.values) == list(data.label.values) and ds.attrs["sample"] == "S1"
    np.testing.assert_array_equal(ds.energy.values, E)
    assert (ds.modelfit_flags == 0).all()
    x0 = ds.modelfit_coefficients.sel(param="p1.x0")
    err = ds.modelfit_stderr.sel(param="p1.x0")
    assert (abs(x0 - truth[..., exe.param_names.index("p1.x0")]) < 4 * err).all()


def test_dimension_order_of_a_two_axis_model_map():
    """A (time, energy) model on data stored as (energy, temperature, time): each spectrum is transposed."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.GLP("p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.0, bounds=(0.2, 5)), m=0.3))
    m.dynamics("p1.x0", [gm.expFun(A=P(0.5), tau=P(1.5, bounds=(0.1, 10)), t0=0.0)])
    exe2 = gir.compile(m, target="numpy")
    temps = np.array([80.0, 150.0])
    rows = np.array([exe2.theta0 * [1.0, 1.0, 1.0, 1.2, 0.9], exe2.theta0 * [1.1, 1.0, 1.0, 0.8, 1.1]])
    clean = exe2.batch(rows, energy=E, time=T)  # (temperature, time, energy)
    data = xr.DataArray(clean.transpose(2, 0, 1), dims=("energy", "temperature", "time"),
                        coords={"energy": E, "time": T, "temperature": temps})  # fmt: skip
    ds = gir.fit.least_squares(exe2, data, progress=False)
    assert ds.modelfit_coefficients.dims == ("temperature", "param")
    for k in range(2):
        alone = gir.fit.least_squares(exe2, clean[k], energy=E, time=T)
        np.testing.assert_allclose(ds.modelfit_coefficients.values[k], alone.x, rtol=1e-10)
    np.testing.assert_allclose(ds.modelfit_coefficients.values, rows, rtol=1e-6)


def test_axis_keyword_wins_over_the_coordinate(exe):
    data, _ = map_data(exe, (2, 2))
    shifted = data.assign_coords(energy=E + 1.0)
    ds = gir.fit.least_squares(exe, shifted, progress=False, energy=E)
    assert_matches(ds, reference(exe, data))
    np.testing.assert_array_equal(ds.energy.values, E)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # stopped early / chi-square: on purpose
def test_weights_as_a_data_array_per_spectrum_and_on_the_grid(exe):
    data, _ = map_data(exe, (2, 3))
    sigma = 0.05 * (1 + data.x) * (1 + (data.energy - 80.0) / 2)  # over (x, energy)
    ds = gir.fit.least_squares(exe, data, weights=1 / sigma, progress=False)
    for (i, j), r in reference(exe, data).items():
        alone = gir.fit.least_squares(exe, data.values[i, j], weights=1 / sigma.values[i], energy=E)
        np.testing.assert_allclose(ds.modelfit_coefficients.values[i, j], alone.x, rtol=1e-10)
        np.testing.assert_allclose(ds.modelfit_stderr.values[i, j], alone.stderr, rtol=1e-6)
        assert not np.allclose(alone.x, r.x, rtol=1e-6)  # the weights matter
    on_grid = 1 / sigma.isel(x=0, drop=True)  # over energy only: the same for every spectrum
    ds = gir.fit.least_squares(exe, data, weights=on_grid, progress=False)
    alone = gir.fit.least_squares(exe, data.values[1, 2], weights=on_grid.values, energy=E)
    np.testing.assert_allclose(ds.modelfit_coefficients.values[1, 2], alone.x, rtol=1e-10)


def starts_map(exe, data) -> xr.DataArray:
    """Per-spectrum starts of two parameters, over (x, y)."""
    idx = [exe.param_names.index(n) for n in ("p1.A", "p1.x0")]
    values = truths(exe, (data.sizes["x"], data.sizes["y"]), seed=5)[..., idx] + [1.5, -0.4]
    return xr.DataArray(values, dims=("x", "y", "param"),
                        coords={"x": data.x, "y": data.y, "param": ["p1.A", "p1.x0"]})  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # stopped early / chi-square: on purpose
def test_per_spectrum_starts_are_used(exe):
    """Two iterations only, so the result depends on the start: each equals its spectrum fitted alone
    from the same start."""
    data, _ = map_data(exe, (2, 3))
    starts = starts_map(exe, data)
    ds = gir.fit.least_squares(exe, data, theta0=starts, max_nfev=2, progress=False)
    for i in range(2):
        for j in range(3):
            start = dict(zip(["p1.A", "p1.x0"], starts.values[i, j], strict=True))
            alone = gir.fit.least_squares(exe, data.values[i, j], theta0=start, max_nfev=2, energy=E)
            np.testing.assert_allclose(ds.modelfit_coefficients.values[i, j], alone.x, rtol=1e-12)
    assert (ds.modelfit_flags & (1 << FLAGS.index("max_nfev")) > 0).any()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # stopped early / chi-square: on purpose
def test_an_earlier_result_as_start(exe):
    data, _ = map_data(exe, (2, 2))
    first = gir.fit.least_squares(exe, data, progress=False)
    again = gir.fit.least_squares(exe, data, theta0=first, max_nfev=2, progress=False)
    np.testing.assert_allclose(again.modelfit_coefficients, first.modelfit_coefficients, rtol=1e-7)
    per_variable = first.modelfit_coefficients.to_dataset("param")  # one variable per parameter
    third = gir.fit.least_squares(exe, data, theta0=per_variable, max_nfev=2, progress=False)
    xr.testing.assert_identical(third, again)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # stopped early / chi-square: on purpose
def test_warm_starts_along_a_dimension(exe):
    """Slice k starts from slice k-1's results; a spectrum whose neighbour has no data starts from
    theta0. Reference: the same chain of single fits, two iterations each."""
    data, _ = map_data(exe, (3, 2))
    data[0, 1] = np.nan  # no data: not fitted, flagged; its neighbour at x=1 starts from theta0
    start = {"p1.A": 10.0, "p1.x0": 83.6}
    ds = gir.fit.least_squares(exe, data, theta0=start, along="x", max_nfev=3, progress=False)
    for j in range(2):
        previous = start
        for i in range(3):
            if i == 0 and j == 1:
                previous = start
                continue
            alone = gir.fit.least_squares(exe, data.values[i, j], theta0=previous, max_nfev=3, energy=E)
            np.testing.assert_allclose(ds.modelfit_coefficients.values[i, j], alone.x, rtol=1e-12)
            previous = alone.x
    cell = ds.isel(x=0, y=1)
    assert np.isnan(cell.modelfit_coefficients).all() and np.isnan(cell.modelfit_stats).all()
    assert int(cell.modelfit_success) == 0 and int(cell.modelfit_flags) == 1 << FLAGS.index("no_data")
    assert ds.attrs["gir_warm_start_along"] == "x"


def test_fixed_parameters_and_evaluate_map(exe):
    data, _ = map_data(exe, (2, 3))
    data[1, 0] = np.nan
    ds = gir.fit.least_squares(exe, data, fixed={"Offset.y0": 0.5}, progress=False)
    assert list(ds.param.values) == ["p1.A", "p1.x0", "p1.F"]
    assert json.loads(ds.attrs["gir_fixed"]) == {"Offset.y0": 0.5}
    best = evaluate_map(exe, ds)
    assert best.dims == ("x", "y", "energy") and best.name == "best_fit"
    np.testing.assert_array_equal(best.energy.values, E)
    assert np.isnan(best.values[1, 0]).all()
    theta = dict(zip(ds.param.values, ds.modelfit_coefficients.values[0, 2], strict=True))
    row = [0.5 if n == "Offset.y0" else theta[n] for n in exe.param_names]
    np.testing.assert_allclose(best.values[0, 2], exe(np.array(row), energy=E), rtol=1e-13)
    lazy = evaluate_map(exe, ds.chunk({"x": 1}))  # dask-backed parameters: lazy
    assert lazy.chunks is not None
    xr.testing.assert_identical(lazy.compute(), best)


def test_plain_graph_executable_and_its_provenance():
    def line(a, b, x):
        return a * x + b

    plain = gir.compile(gir.trace(line, x="X"), target="numpy")
    xs = np.linspace(0.0, 1.0, 30)
    a = np.array([1.0, 2.0, -1.0])
    data = xr.DataArray(a[:, None] * xs + 0.5, dims=("pixel", "x"), coords={"x": xs})
    with pytest.raises(InputError, match="give theta0"):
        gir.fit.least_squares(plain, data, progress=False)
    ds = gir.fit.least_squares(plain, data, theta0=[0.0, 0.0], progress=False)
    np.testing.assert_allclose(ds.modelfit_coefficients.sel(param="a"), a, atol=1e-10)
    assert "gir_model" not in ds.attrs
    assert gir.parse(ds.attrs["gir_graph"]).structural_hash == plain.graph.structural_hash
    np.testing.assert_allclose(evaluate_map(plain, ds).values, data.values, atol=1e-10)


def test_netcdf_round_trip_with_the_scipy_engine(exe, tmp_path):
    pytest.importorskip("scipy.io")
    data, _ = map_data(exe, (2, 2))
    data[0, 0] = np.nan
    ds = gir.fit.least_squares(exe, data, progress=False)
    assert all(v.dtype != object for v in ds.variables.values())
    path = tmp_path / "fit.nc"
    ds.to_netcdf(path, engine="scipy")
    back = xr.load_dataset(path, engine="scipy")
    xr.testing.assert_identical(back, ds)
    assert back.modelfit_success.dtype == np.int8 and back.modelfit_flags.dtype == np.int16
    model = gm.Model.from_dict(json.loads(back.attrs["gir_model"]))  # the file says which model
    again = gir.compile(model, target="numpy")
    theta = back.modelfit_coefficients.values[1, 1]
    np.testing.assert_allclose(again(theta, energy=E), exe(theta, energy=E), rtol=1e-14)


def test_progress_passes_through_to_batch(exe, monkeypatch):
    module = sys.modules["gir.fit.batch"]
    seen = []
    original = module.batch

    def spy(*args, **kws):
        seen.append(kws.get("progress"))
        return original(*args, **kws)

    monkeypatch.setattr(module, "batch", spy)
    data, _ = map_data(exe, (2, 2))
    gir.fit.least_squares(exe, data, progress=False)
    gir.fit.least_squares(exe, data, along="y", progress=True)
    assert seen == [False, True, True]


def test_bad_inputs_are_named(exe):
    data, _ = map_data(exe, (2, 2))
    with pytest.raises(InputError, match="not the model's axes \\['energy'\\]"):
        gir.fit.least_squares(exe, data.rename(energy="E"), progress=False)
    with pytest.raises(InputError, match="no coordinate 'energy'"):
        gir.fit.least_squares(exe, data.drop_vars("energy"), progress=False)
    with pytest.raises(InputError, match="along='z' is not a dimension"):
        gir.fit.least_squares(exe, data, along="z", progress=False)
    with pytest.raises(InputError, match="give along="):
        gir.fit.least_squares(exe, data, theta0="previous", progress=False)
    with pytest.raises(InputError, match="global stage"):
        gir.fit.least_squares(exe, data, starts=8)
    bad = starts_map(exe, data).assign_coords(param=["p1.A", "nope"])
    with pytest.raises(InputError, match="unknown parameters \\['nope'\\]"):
        gir.fit.least_squares(exe, data, theta0=bad, progress=False)
    with pytest.raises(InputError, match="coordinates differ"):
        gir.fit.least_squares(exe, data, theta0=starts_map(exe, data).assign_coords(x=[9.0, 10.0]))
    with pytest.raises(InputError, match="dimensions \\['z'\\] that the data lacks"):
        gir.fit.least_squares(exe, data, weights=xr.DataArray(np.ones(3), dims="z"), progress=False)


# -- dask ---------------------------------------------------------------------------------------


def test_dask_backed_map_is_lazy_and_equals_the_in_memory_fit(exe):
    pytest.importorskip("dask")
    data, _ = map_data(exe, (4, 3))
    data[2, 1] = np.nan
    memory = gir.fit.least_squares(exe, data, progress=False)
    lazy = gir.fit.least_squares(exe, data.chunk({"x": 2, "y": 2, "energy": 60}), progress=False)
    assert lazy.modelfit_coefficients.chunks == ((2, 2), (2, 1), (4,))
    xr.testing.assert_identical(lazy.compute(), memory)
    warm = gir.fit.least_squares(exe, data, along="x", progress=False)
    lazy_warm = gir.fit.least_squares(exe, data.chunk({"x": 2, "y": 1}), along="x", progress=False)
    assert lazy_warm.modelfit_coefficients.chunks[0] == (4,)  # along one chunk
    xr.testing.assert_identical(lazy_warm.compute(), warm)
    with pytest.raises(InputError, match="dask-backed"):
        gir.fit.least_squares(exe, data.chunk({"x": 2}), client=object())


@pytest.mark.slow
def test_dask_map_on_a_local_cluster_with_two_processes(exe):
    distributed = pytest.importorskip("distributed")
    data, _ = map_data(exe, (4, 4))
    starts = starts_map(exe, data)
    sigma = xr.full_like(data, 0.05)
    memory = gir.fit.least_squares(exe, data, theta0=starts, weights=1 / sigma, progress=False)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        lazy = gir.fit.least_squares(
            exe, data.chunk({"x": 2, "y": 2}), theta0=starts, weights=(1 / sigma).chunk({"x": 1})
        )
        cluster_fit = lazy.compute()
    xr.testing.assert_identical(cluster_fit, memory)


# -- the example ---------------------------------------------------------------------------------


def load_example():
    spec = importlib.util.spec_from_file_location("map_fit", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_map_example_check_finds_a_wrong_fit():
    """The example's check passes on its fit and fails on a result moved off the truth."""
    example = load_example()
    data, truth = example.simulate(6, 5, target="numpy")
    ds = example.fit(data, target="numpy")
    assert example.check(ds, truth) == []
    moved = ds.copy(deep=True)
    moved["modelfit_coefficients"].loc[{"param": "p1.x0", "x": moved.x[2], "y": moved.y[3]}] += 0.05
    problems = example.check(moved, truth)
    assert len(problems) == 1 and "p1.x0" in problems[0]


@pytest.mark.slow
def test_map_example_runs_and_writes_its_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "map.png"
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), str(png), "--target", "numpy"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "the map fit recovers the truth" in out.stdout
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_a_pickled_map_fit_unpickles_its_executable_once_per_process(exe):
    """The blocks a worker process runs share one executable (and the derivatives it compiled)."""
    import pickle

    from gir.fit.maps import MapFit

    fit = MapFit(exe, exe.theta0, {"max_nfev": 5}, {}, "x")
    a, b = pickle.loads(pickle.dumps(fit)), pickle.loads(pickle.dumps(fit))
    assert a.exe is b.exe and a.exe is not exe
    assert (a.fit_kws, a.along, list(a.start)) == ({"max_nfev": 5}, "x", list(exe.theta0))


def test_one_spectrum_as_a_data_array(exe):
    data, _ = map_data(exe, (1, 1))
    one = data.isel(x=0, y=0)  # only the model's axis: a Dataset without other dimensions
    ds = gir.fit.least_squares(exe, one, progress=False)
    alone = gir.fit.least_squares(exe, one.values, energy=E)
    assert ds.modelfit_coefficients.dims == ("param",)
    np.testing.assert_allclose(ds.modelfit_coefficients.values, alone.x, rtol=1e-10)
    assert float(ds.x) == 0.0 and ds.label.item() == "row0"  # scalar coordinates kept


def test_import_gir_does_not_import_xarray():
    code = "import sys, gir, gir.fit.maps; assert 'xarray' not in sys.modules, 'xarray imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_compiled_batches_give_the_same_map():
    """With a Numba target the spectra are fitted by the compiled batch solver: the same values and
    statistics as each spectrum fitted alone, and a fit at a bound is flagged."""
    require_target("numba")
    fast = gir.compile(peak_model(), target="numba")
    data, _ = map_data(fast, (3, 3))
    data[2, 2] = data[2, 2] * 0 + 0.5  # a flat spectrum: no peak, p1.A at its bound 0
    with pytest.warns(RuntimeWarning, match="at a bound"):
        ds = gir.fit.least_squares(fast, data, progress=False)
    for (i, j), r in reference(fast, data).items():
        if (i, j) == (2, 2):
            continue
        cell = ds.isel(x=i, y=j)
        np.testing.assert_allclose(cell.modelfit_coefficients.values, r.x, rtol=1e-7)
        np.testing.assert_allclose(cell.modelfit_stderr.values, r.stderr, rtol=1e-4)
        np.testing.assert_allclose(cell.modelfit_covariance.values, r.covar, rtol=1e-4, atol=1e-14)
        stats = dict(zip(STATS, cell.modelfit_stats.values, strict=True))
        assert (stats["ndata"], stats["nfree"]) == (r.ndata, r.nfree)
        np.testing.assert_allclose([stats["chisqr"], stats["redchi"]], [r.chisqr, r.redchi], rtol=1e-8)
    at_bound = (ds.modelfit_flags & (1 << FLAGS.index("at_bound"))) > 0
    assert at_bound.values.sum() == 1 and bool(at_bound[2, 2])
