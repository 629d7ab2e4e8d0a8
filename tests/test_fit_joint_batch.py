"""Joint fits (shared, local and fixed parameters over several data sets) and batch fits (threads, dask)."""

from __future__ import annotations

import numpy as np
import pytest
from available import require_target

import gir
import gir.fit
from gir import models as gm
from gir.errors import InputError

P = gm.Param
E = np.linspace(80.0, 90.0, 150)
E_B = np.linspace(81.0, 89.0, 97)  # a second, different energy grid
T = np.linspace(-1.0, 6.0, 30)


def spectrum_model() -> gm.Model:
    m = gm.Model()
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.2, bounds=(0.1, 5)), m=P(0.3, bounds=(0, 1))
        )
    )
    return m


def map_model() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(
        gm.GLP(
            "p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.2, bounds=(0.1, 5)), m=P(0.3, bounds=(0, 1))
        )
    )
    m.dynamics("p1.x0", [gm.expFun(A=P(0.6), tau=P(1.3, bounds=(0.05, 20)), t0=0.0)])
    return m


# -- joint ------------------------------------------------------------------------------


def test_joint_shared_local_and_fixed_parameters_recover_truth():
    spec = gir.compile(spectrum_model(), target="numpy")
    fmap = gir.compile(map_model(), target="numpy")
    # truths: x0, F shared; A and y0 local; m fixed (and wrong in the start values)
    t_spec = {"Offset.y0": 0.4, "p1.A": 12.0, "p1.x0": 84.2, "p1.F": 1.1, "p1.m": 0.3}
    t_spec_b = {**t_spec, "Offset.y0": 0.9, "p1.A": 7.0}
    t_map = {**t_spec, "Offset.y0": -0.2, "p1.A": 20.0, "p1.x0.expFun.A": 0.6, "p1.x0.expFun.tau": 1.3}
    theta = lambda exe, t: np.array([t[n] for n in exe.param_names])
    d1 = spec(theta(spec, t_spec), energy=E)
    d2 = spec(theta(spec, t_spec_b), energy=E_B)
    d3 = fmap(theta(fmap, t_map), energy=E, time=T)
    start = {"Offset.y0": 0.0, "p1.A": 9.0, "p1.x0": 84.5, "p1.F": 1.3, "p1.m": 0.5}
    datasets = [
        gir.fit.Dataset(spec, d1, label="a", energy=E, theta0=start),
        {"exe": spec, "data": d2, "label": "b", "energy": E_B, "theta0": start},
        gir.fit.Dataset(
            fmap,
            d3,
            label="map",
            energy=E,
            time=T,
            theta0={**start, "p1.x0.expFun.A": 0.4, "p1.x0.expFun.tau": 1.0},
        ),
    ]
    r = gir.fit.joint(datasets, local=["Offset.y0", "p1.A"], fixed={"p1.m": 0.3})
    assert r.success
    assert r.param_names == (
        "a:Offset.y0",
        "a:p1.A",
        "p1.x0",
        "p1.F",
        "b:Offset.y0",
        "b:p1.A",
        "map:Offset.y0",
        "map:p1.A",
        "p1.x0.expFun.A",
        "p1.x0.expFun.tau",
    )
    want = {
        "a:Offset.y0": 0.4,
        "a:p1.A": 12.0,
        "p1.x0": 84.2,
        "p1.F": 1.1,
        "b:Offset.y0": 0.9,
        "b:p1.A": 7.0,
        "map:Offset.y0": -0.2,
        "map:p1.A": 20.0,
        "p1.x0.expFun.A": 0.6,
        "p1.x0.expFun.tau": 1.3,
    }
    for name, value in want.items():
        assert r.params[name] == pytest.approx(value, rel=1e-8), name
    assert r.ndata == d1.size + d2.size + d3.size
    assert [d.label for d in r.datasets] == ["a", "b", "map"]
    np.testing.assert_allclose(r.datasets[2].theta, theta(fmap, t_map), rtol=1e-8)
    np.testing.assert_allclose(r.datasets[1].best_fit, d2, rtol=1e-8, atol=1e-10)
    # the Jacobian is block structured: a's local columns are zero in b's rows
    jac = r.jac
    rows_b = slice(d1.size, d1.size + d2.size)
    assert np.all(jac[rows_b, r.param_names.index("a:p1.A")] == 0)
    assert np.any(jac[rows_b, r.param_names.index("p1.x0")] != 0)
    # VARPRO over the joint problem: the linear ones are the offsets and amplitudes
    rv = gir.fit.joint(datasets, local=["Offset.y0", "p1.A"], fixed={"p1.m": 0.3}, varpro=True)
    assert set(rv.varpro["linear"]) == {f"{k}:{n}" for k in ("a", "b", "map") for n in ("Offset.y0", "p1.A")}
    np.testing.assert_allclose(rv.x, r.x, rtol=1e-8)


def test_joint_shared_argument_and_errors():
    spec = gir.compile(spectrum_model(), target="numpy")
    truth = spec.theta0.copy()
    d1 = spec(truth, energy=E)
    d2 = spec(truth * np.array([1, 1.5, 1, 1, 1]), energy=E)
    r = gir.fit.joint(
        [(spec, d1, {"energy": E}), (spec, d2, {"energy": E})],
        shared=["p1.x0", "p1.F", "p1.m", "Offset.y0"],
        theta0={"d0:p1.A": 9.0, "d1:p1.A": 14.0},
    )
    assert r.param_names == ("Offset.y0", "d0:p1.A", "p1.x0", "p1.F", "p1.m", "d1:p1.A")
    assert r.params["d1:p1.A"] == pytest.approx(15.0, rel=1e-8)
    assert r.init[1] == 9.0
    # "label:name" fixes a shared parameter in one data set only
    d3 = spec(truth * np.array([1, 1, 1, 1.2, 1]), energy=E)  # its own, known F
    r3 = gir.fit.joint(
        [(spec, d1, {"energy": E}), (spec, d3, {"energy": E})],
        local=["p1.A"],
        fixed={"d1:p1.F": truth[3] * 1.2},
        theta0={"p1.F": 1.0},
    )
    assert "p1.F" in r3.param_names and r3.params["p1.F"] == pytest.approx(truth[3], rel=1e-8)
    assert r3.datasets[1].theta[3] == truth[3] * 1.2
    with pytest.raises(InputError, match="unknown"):
        gir.fit.joint([(spec, d1, {"energy": E})], local=["nope"])
    with pytest.raises(InputError, match="labels"):
        gir.fit.joint(
            [gir.fit.Dataset(spec, d1, label="x", energy=E), gir.fit.Dataset(spec, d2, label="x", energy=E)]
        )
    with pytest.raises(InputError, match="Dataset"):
        gir.fit.joint([spec])


# -- batch ------------------------------------------------------------------------------


def _spectra(exe, n: int, noise: float = 0.0, seed: int = 5):
    rng = np.random.default_rng(seed)
    base = exe.theta0.copy()
    truths = base * (1 + 0.1 * rng.uniform(-1, 1, (n, base.size)))
    truths[:, list(exe.param_names).index("p1.x0")] = base[2] + rng.uniform(-0.5, 0.5, n)
    datas = np.array([exe(t, energy=E) for t in truths])
    return truths, datas + rng.normal(0, noise, datas.shape) if noise else datas


def _start(exe, truths):
    start = truths * 1.03
    start[..., list(exe.param_names).index("p1.x0")] = truths[..., 2] + 0.2
    return start


def test_batch_sequential_recovers_each_truth():
    exe = gir.compile(spectrum_model(), target="numpy")
    truths, datas = _spectra(exe, 6)
    starts = _start(exe, truths)
    b = gir.fit.batch(exe, datas, theta0=starts, progress=False, energy=E)
    assert b.mode == "sequential" and len(b) == 6
    np.testing.assert_allclose(b.x, truths, rtol=1e-8)
    assert b.success.all() and b.x.shape == (6, 5)
    np.testing.assert_allclose(b.params["p1.A"], truths[:, 1], rtol=1e-8)
    assert "6 fits" in b.report()
    b2 = gir.fit.batch(
        exe, list(datas[:3]), theta0=starts[0], progress=True, fit_kws={"varpro": True}, energy=E
    )
    np.testing.assert_allclose(b2.x, truths[:3], rtol=1e-8)
    with pytest.raises(InputError, match="fit_kws"):
        gir.fit.batch(exe, datas, fit_kws={"colour": 1}, energy=E)
    with pytest.raises(InputError, match="theta0"):
        gir.fit.batch(exe, datas, theta0=np.ones((2, 5)), energy=E)


def test_batch_threads_when_the_target_releases_the_gil():
    require_target("jax")
    exe = gir.compile(spectrum_model(), target="jax")
    assert gir.fit.releases_gil(exe)
    assert not gir.fit.releases_gil(gir.compile(spectrum_model(), target="numpy"))
    truths, datas = _spectra(exe, 5)
    b = gir.fit.batch(exe, datas, theta0=_start(exe, truths), progress=False, workers=2, energy=E)
    assert b.mode == "threads (2)"
    np.testing.assert_allclose(b.x, truths, rtol=1e-8)


@pytest.mark.slow
def test_batch_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed")
    exe = gir.compile(spectrum_model(), target="numpy")
    truths, datas = _spectra(exe, 8, noise=0.02)
    local = gir.fit.batch(exe, datas, theta0=_start(exe, truths), progress=False, energy=E)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        b = gir.fit.batch(
            exe, datas, theta0=_start(exe, truths), progress=False, client=client, chunksize=3, energy=E
        )
    assert b.mode == "dask (2 workers)"
    np.testing.assert_allclose(b.x, local.x, rtol=1e-10)
    np.testing.assert_allclose(b.stderr, local.stderr, rtol=1e-8)
    assert b[0].jac is None and b[0].datasets[0].best_fit.shape == E.shape
