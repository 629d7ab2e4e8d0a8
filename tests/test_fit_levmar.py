"""gir.fit.levmar: Levenberg-Marquardt on the normal equations, against scipy.optimize.least_squares."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares as scipy_least_squares

import gir.fit
from gir.errors import InputError
from gir.fit.levmar import levmar
from tests.test_fit import arrays_of, compiled, perturbed_start

T = np.linspace(0.0, 4.0, 60)
TRUE = np.array([2.0, 1.3, 0.4])
DATA = TRUE[0] * np.exp(-TRUE[1] * T) + TRUE[2] + 0.01 * np.sin(7 * T)  # not exactly the model


def decay(x):
    return x[0] * np.exp(-x[1] * T) + x[2] - DATA


def decay_jac(x):
    e = np.exp(-x[1] * T)
    return np.column_stack([e, -x[0] * T * e, np.ones_like(T)])


def rosenbrock(x):
    return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def rosenbrock_jac(x):
    return np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])


TIGHT = {"ftol": 1e-12, "xtol": 1e-12, "gtol": 1e-12}


@pytest.mark.parametrize(
    "fun, jac, x0",
    [(decay, decay_jac, [1.0, 0.5, 0.0]), (rosenbrock, rosenbrock_jac, [-1.2, 1.0])],
    ids=["decay", "rosenbrock"],
)
def test_reaches_scipys_minimum(fun, jac, x0):
    ours = levmar(fun, np.array(x0), jac, **TIGHT)
    ref = scipy_least_squares(fun, x0, jac=jac, method="trf", **TIGHT)
    assert ours.success and ours.status in (1, 2, 3, 4), ours.message
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-7, atol=1e-10)
    assert ours.cost == pytest.approx(ref.cost, rel=1e-9, abs=1e-20)
    assert ours.njev <= ours.nfev


def test_bound_holds_and_is_reported_active():
    bounds = ([0.0, 0.0, 0.5], [10.0, 10.0, 10.0])  # the free minimum has x[2] = 0.4
    ours = levmar(decay, np.array([1.0, 0.5, 1.0]), decay_jac, bounds, **TIGHT)
    ref = scipy_least_squares(decay, [1.0, 0.5, 1.0], jac=decay_jac, bounds=bounds, **TIGHT)
    assert ours.x[2] == 0.5 and list(ours.active_mask) == [0, 0, -1]
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-7)
    assert ours.cost == pytest.approx(ref.cost, rel=1e-9)


def test_max_nfev_and_fixed_scale():
    out = levmar(rosenbrock, np.array([-1.2, 1.0]), rosenbrock_jac, max_nfev=3)
    assert out.status == 0 and not out.success and out.nfev == 3
    scaled = levmar(decay, np.array([1.0, 0.5, 0.0]), decay_jac, x_scale=[1.0, 0.1, 1.0], **TIGHT)
    free = levmar(decay, np.array([1.0, 0.5, 0.0]), decay_jac, **TIGHT)
    np.testing.assert_allclose(scaled.x, free.x, rtol=1e-7)


def test_no_tolerance_ends_when_no_step_reduces_the_cost():
    out = levmar(decay, np.array([1.0, 0.5, 0.0]), decay_jac, ftol=0, xtol=0, gtol=0)
    assert out.status == 0 and not out.success and "no step reduces the cost" in out.message
    ref = scipy_least_squares(decay, [1.0, 0.5, 0.0], decay_jac, **TIGHT)
    np.testing.assert_allclose(out.x, ref.x, rtol=1e-9)


def test_bad_input():
    x0 = np.array([1.0, 0.5, 0.0])
    with pytest.raises(InputError, match="outside the bounds"):
        levmar(decay, x0, decay_jac, ([0, 0, 0.5], [10, 10, 10]))
    with pytest.raises(InputError, match="x_scale"):
        levmar(decay, x0, decay_jac, x_scale=[1.0, 0.0, 1.0])
    with pytest.raises(InputError, match="x_scale needs a number or 3 numbers"):
        levmar(decay, x0, decay_jac, x_scale=[1.0, 2.0])
    with pytest.raises(InputError, match="bounds needs a number or 3 numbers"):
        levmar(decay, x0, decay_jac, ([0, 0], [10, 10]))
    with pytest.raises(InputError, match="not finite"):
        levmar(lambda x: decay(x) * np.nan, x0, decay_jac)
    with pytest.raises(InputError, match=r"Jacobian is not finite in column\(s\) \[1\]"):
        levmar(decay, x0, lambda x: decay_jac(x) + np.array([0.0, np.inf, 0.0]))
    exe = compiled("1d", "numpy")
    data = exe(exe.theta0, **arrays_of("1d"))
    with pytest.raises(InputError, match="'loss'"):
        gir.fit.least_squares(exe, data, options={"loss": "soft_l1"}, **arrays_of("1d"))


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_levmar_and_trf_fits_agree(kind):
    exe = compiled(kind, "numpy")
    arrays = arrays_of(kind)
    truth = exe.theta0.copy()
    clean = exe(truth, **arrays)
    data = clean + np.random.default_rng(3).normal(0.0, 0.05, clean.shape)
    start = perturbed_start(truth, exe.param_names)
    fits = [
        gir.fit.least_squares(exe, data, theta0=start, method=m, **TIGHT, **arrays) for m in ("levmar", "trf")
    ]
    assert fits[0].method == "levmar" and fits[1].method == "trf"
    assert fits[0].cost == pytest.approx(fits[1].cost, rel=1e-10)
    np.testing.assert_allclose(fits[0].x, fits[1].x, rtol=1e-6)
    np.testing.assert_allclose(fits[0].stderr, fits[1].stderr, rtol=1e-5)


@pytest.mark.parametrize("n, order", [(5_000, "F"), (16 * 256 + 77, "F"), (20_000, "C"), (300, "F")])
def test_normal_equations_match_blas(n, order):
    """The blocked J^T J and J^T r (Numba, column-major and tall) and the BLAS path agree."""
    from gir.fit.normal_equations import normal_equations

    rng = np.random.default_rng(n)
    jac = np.asarray(rng.normal(size=(n, 7)) * np.logspace(-3, 3, 7), order=order)
    r = rng.normal(size=n)
    a, g = normal_equations(jac, r)
    np.testing.assert_allclose(a, jac.T @ jac, rtol=1e-12, atol=1e-12 * np.abs(jac.T @ jac).max())
    np.testing.assert_allclose(g, jac.T @ r, rtol=1e-12, atol=1e-12 * np.abs(jac.T @ r).max())
    assert np.array_equal(a, a.T)


def test_a_kernel_width_clipped_to_its_zero_bound_is_a_rejected_step():
    """A step onto SD = 0, where the model is undefined, is refused; the fit still converges
    (heavy damping after the refusals does not pass for convergence)."""
    from gir import models as gm

    P = gm.Param
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.GLP("p1", A=10.0, x0=P(84.0, bounds=(80, 88)), F=1.0, m=0.3))
    m.dynamics(
        "p1.x0",
        [gm.expFun(A=P(0.5, bounds=(-5, 5)), tau=P(1.0, bounds=(0.05, 20)), t0=0.0)],
        irf=gm.gaussCONV(SD=P(0.3, bounds=(0, 5))),
    )
    exe = gir.compile(m, target="numpy")
    arrays = {"energy": np.linspace(80, 88, 200), "time": np.linspace(-1, 4, 60)}
    data = exe(exe.theta0, **arrays)
    start = exe.theta0 * [1.0, 1.1, 0.9, 0.02]  # SD 0.006: far below the time step of 0.085
    r = gir.fit.least_squares(exe, data, theta0=start, method="levmar", **arrays)
    np.testing.assert_allclose(r.x, exe.theta0, rtol=1e-7)


def test_zero_residual_fit_with_a_parameter_at_zero_converges():
    """Rounding noise at the exact minimum does not keep xtol from passing (c = 0 there)."""
    t = np.linspace(0, 4, 50)
    y = 100.0 * np.exp(-1.3 * t)

    def jac(x):
        return np.column_stack([np.exp(-x[1] * t), -x[0] * t * np.exp(-x[1] * t), np.ones_like(t)])

    out = levmar(lambda x: x[0] * np.exp(-x[1] * t) + x[2] - y, np.array([90.0, 1.0, 1.0]), jac)
    assert out.success, out.message
    np.testing.assert_allclose(out.x, [100.0, 1.3, 0.0], rtol=1e-10, atol=1e-10)


def test_a_step_accepted_at_heavy_damping_does_not_overflow():
    """A noisy residual with a Jacobian of the wrong sign: steps are accepted at a huge damping
    with a huge gain ratio, which must not overflow the damping update."""
    rng = np.random.default_rng(27)
    out = levmar(lambda x: np.array([x[0] - 3 + 1e-12 * rng.normal()]), np.array([0.0]), lambda x: -np.eye(1))
    assert np.isfinite(out.x).all() and out.nfev <= 100


def test_back_off_from_a_bound_where_the_model_is_undefined():
    """Two decays, undefined for tau <= 0 on the bound 0: when the others, solved for again,
    push another tau onto its bound, it backs off too (the fit reaches scipy's minimum)."""
    t = np.linspace(0, 5, 40)
    y = np.exp(-t / 0.3) + 0.5 * np.exp(-t / 2.0) + 0.002 * np.sin(9 * t)

    def fun(x):
        if x[1] <= 0 or x[3] <= 0:
            raise InputError("tau <= 0")
        return x[0] * np.exp(-t / x[1]) + x[2] * np.exp(-t / x[3]) - y

    def jac(x):
        e1, e3 = np.exp(-t / x[1]), np.exp(-t / x[3])
        return np.column_stack([e1, x[0] * t / x[1] ** 2 * e1, e3, x[2] * t / x[3] ** 2 * e3])

    bounds = ([-10, 0, -10, 0], [10, 10, 10, 10])
    out = levmar(fun, np.array([-0.53, 0.09, -0.247, 0.246]), jac, bounds)
    ref = scipy_least_squares(fun, [-0.53, 0.09, -0.247, 0.246], jac, bounds=bounds)
    assert out.success and out.cost <= ref.cost * (1 + 1e-6), (out.message, out.cost, ref.cost)
