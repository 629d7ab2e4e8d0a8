"""gm.demo_axes and Model.simulate: shapes, reproducibility, noise level, parameter overrides, errors."""

import numpy as np
import pytest

import gir
from gir import models as gm


def model_2d() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=gm.Param(1.0, bounds=(0, 10))))
    m.add(gm.GLP("p1", A=gm.Param(10, bounds=(0, 100)), x0=gm.Param(84.0), F=1.0, m=0.3))
    m.dynamics("p1.x0", [gm.expFun(A=gm.Param(0.3), tau=gm.Param(1.2, bounds=(0.05, 20)), t0=0.0)])
    return m


def model_1d() -> gm.Model:
    m = gm.Model(axes=("energy",))
    m.add(gm.Gauss("g", A=gm.Param(2.0), x0=gm.Param(85.0), SD=gm.Param(0.5, bounds=(0.01, 5))))
    return m


def test_demo_axes_follow_the_model_axis_names():
    axes = gm.demo_axes(model_2d())
    assert list(axes) == ["time", "energy"]
    assert axes["energy"].shape == (400,) and axes["time"].shape == (120,)
    assert axes["energy"][0] < 84 < axes["energy"][-1]
    assert axes["time"][0] < 0 < axes["time"][-1]
    assert np.all(np.diff(axes["time"]) > 0)
    assert list(gm.demo_axes(("t", "E"), energy=50, time=7)) == ["t", "E"]
    assert gm.demo_axes(("t", "E"), energy=50, time=7)["E"].shape == (50,)
    assert list(gm.demo_axes(model_1d())) == ["energy"]
    assert list(gm.demo_axes("kinetic")) == ["kinetic"]


def test_demo_axes_include_profile_axes():
    m = model_1d()
    m.profile("g.A", [gm.pExpDecay(A=gm.Param(1.0), tau=gm.Param(2.0))], axis="depth")
    axes = gm.demo_axes(m, aux=20)
    assert list(axes) == ["energy", "depth"] and axes["depth"].shape == (20,)
    assert m.simulate().shape == (400,)


@pytest.mark.parametrize("bad", [({"energy": 0}), ({"time": -3}), ({"aux": 2.5})])
def test_demo_axes_reject_bad_sizes(bad):
    with pytest.raises(gir.InputError, match=next(iter(bad))):
        gm.demo_axes(model_2d(), **bad)


def test_demo_axes_reject_bad_names():
    with pytest.raises(gir.GirError, match="axes"):
        gm.demo_axes(("a", "b", "c"))


def test_simulate_without_noise_is_the_model_on_the_demo_grid():
    m = model_2d()
    exe = gir.compile(m, target="numpy")
    axes = gm.demo_axes(m)
    y = m.simulate()
    assert y.shape == (120, 400)
    np.testing.assert_allclose(y, exe(exe.theta0, **axes), rtol=1e-13)
    assert np.array_equal(m.simulate(seed=3), y)


def test_simulate_on_given_arrays_fills_missing_axes():
    m = model_2d()
    energy = np.linspace(80, 90, 31)
    assert m.simulate(energy=energy).shape == (120, 31)
    assert m.simulate(energy=energy, time=np.array([0.0, 1.0])).shape == (2, 31)
    assert model_1d().simulate(energy=energy).shape == (31,)


def test_simulate_is_reproducible_with_a_seed():
    m = model_2d()
    a = m.simulate(noise=0.1, seed=7)
    b = m.simulate(noise=0.1, seed=7)
    c = m.simulate(noise=0.1, seed=8)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_simulate_noise_has_the_requested_level():
    m = model_2d()
    clean = m.simulate()
    residual = m.simulate(noise=0.05, seed=0) - clean
    assert abs(residual.mean()) < 4 * 0.05 / np.sqrt(residual.size)
    assert residual.std() == pytest.approx(0.05, rel=0.02)  # 48,000 samples: std of the estimate 0.3%


def test_simulate_noise_array_broadcasts_to_the_grid():
    m = model_2d()
    sigma = np.linspace(0.0, 0.2, 400)  # per energy
    residual = m.simulate(noise=sigma, seed=1) - m.simulate()
    assert np.all(residual[:, 0] == 0)
    assert residual[:, 200:].std(axis=0).mean() == pytest.approx(sigma[200:].mean(), rel=0.05)


def test_simulate_theta_as_mapping_and_vector():
    m = model_1d()
    exe = gir.compile(m, target="numpy")
    y = m.simulate({"g.A": 4.0})
    assert y.max() == pytest.approx(4.0, rel=1e-3)
    theta = exe.theta0.copy()
    theta[exe.param_names.index("g.A")] = 4.0
    np.testing.assert_allclose(m.simulate(theta), y, rtol=1e-14)
    assert m.simulate({"g.x0": 82.0}).argmax() < m.simulate().argmax()


@pytest.mark.parametrize(
    ("theta", "match"),
    [
        ({"g.B": 1.0}, "'g.B'"),
        ({"p1.A": 1.0}, "'p1.A'"),
        ({"g.A": "big"}, "'g.A'"),
        ([1.0, 2.0], "theta has shape"),
        ("abc", "theta"),
    ],
)
def test_simulate_bad_theta_is_an_error_naming_it(theta, match):
    with pytest.raises(gir.InputError, match=match):
        model_1d().simulate(theta)


def test_simulate_names_a_fixed_parameter_as_not_free():
    with pytest.raises(gir.GirError, match=r"'p1\.F' is not a free parameter"):
        model_2d().simulate({"p1.F": 2.0})


@pytest.mark.parametrize(
    ("noise", "match"), [(-0.1, "non-negative"), (np.ones(3), r"shape \(3,\)"), ("loud", "noise")]
)
def test_simulate_bad_noise_is_an_error(noise, match):
    with pytest.raises(gir.InputError, match=match):
        model_1d().simulate(noise=noise)
