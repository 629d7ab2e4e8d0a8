"""Jacobians of every library component and model feature against finite differences.

For each model below (peaks incl. Voigt and DS, backgrounds incl. Shirley and
LinBack; every time function, sqrtFun close to its t0, every kernel; subcycles
and profiles) and each available target, the analytic Jacobian (forward mode,
as the fits use it) must match a Richardson-extrapolated central difference of
the numpy target's values to 1e-7 of the column's scale. The step is chosen
per column among 1e-2 ... 1e-8 times max(1, |theta|) where successive
extrapolations agree best; that agreement (the difference's own error
estimate) is added to the tolerance, and it must itself be small.
"""

from __future__ import annotations

import numpy as np
import pytest
from available import require_target

import gir
import gir.fit
from gir import models as gm

P = gm.Param
# numba-parallel runs in the full suite (it compiles slowly)
JAC_TARGETS = ["numpy", "numba", pytest.param("numba-parallel", marks=pytest.mark.slow), "jax"]
RTOL = 1e-7


def model_peaks():
    """Every peak and background of the library, every parameter free."""
    m = gm.Model()
    m.add(gm.Gauss("g", A=P(3.0), x0=P(82.0), SD=P(0.6)))
    m.add(gm.GaussAsym("ga", A=P(2.0), x0=P(83.33), SD=P(0.5), ratio=P(1.7)))
    m.add(gm.Lorentz("l", A=P(2.5), x0=P(84.61), W=P(0.7)))
    m.add(gm.Voigt("v", A=P(4.0), x0=P(86.17), SD=P(0.4), W=P(0.3)))
    m.add(gm.GLS("gls", A=P(2.0), x0=P(87.4), F=P(0.9), m=P(0.35)))
    m.add(gm.GLP("glp", A=P(3.0), x0=P(88.63), F=P(1.1), m=P(0.25)))
    m.add(gm.DS("ds", A=P(1.5), x0=P(90.07), F=P(0.5), alpha=P(0.12)))
    m.add(gm.Offset(y0=P(0.7)))
    m.add(gm.LinBack(m=P(0.05), b=P(0.3), xStart=P(81.013), xStop=P(90.517)))
    m.add(gm.Shirley(pShirley=P(0.02)))
    return m, {"energy": np.linspace(80.0, 92.0, 241)}


def model_time():
    """Every time function and every kernel (t0s off the grid; sqrtFun's t0 1e-3 and 1e-4 from a point)."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=P(3.0), x0=P(84.0), SD=P(0.8)))
    m.add(gm.Lorentz("l", A=P(2.0), x0=P(87.0), W=P(0.9)))
    m.add(gm.GLP("p", A=P(1.5), x0=P(85.5), F=P(1.0), m=P(0.3)))
    m.dynamics(
        "g.A",
        [
            gm.stepFun(A=P(0.5), t0=P(0.1234)),
            gm.linFun(m=P(0.2), t0=P(0.5234)),
            gm.expFun(A=P(0.8), tau=P(1.3), t0=P(0.0234)),
        ],
        irf=gm.gaussCONV(SD=P(0.25)),
    )
    m.dynamics(
        "g.x0",
        [
            gm.sinFun(A=P(0.3), f=P(0.4), phi=P(0.2), t0=P(0.0567)),
            gm.sinDivX(A=P(0.2), f=P(0.3), t0=P(0.0789)),
        ],
        irf=gm.expSymCONV(tau=P(0.2)),
    )
    m.dynamics("g.SD", [gm.erfFun(A=P(0.1), SD=P(0.3), t0=P(0.7123))], irf=gm.expDecayCONV(tau=P(0.3)))
    m.dynamics("l.A", [gm.expFun(A=P(0.6), tau=P(0.9), t0=P(0.2345))], irf=gm.expRiseCONV(tau=P(0.15)))
    m.dynamics("l.x0", [gm.stepFun(A=P(0.4), t0=P(1.0345))], irf=gm.boxCONV(width=P(0.37)))
    m.dynamics("p.A", [gm.sqrtFun(A=P(0.7), t0=P(0.299))])
    m.dynamics("p.x0", [gm.sqrtFun(A=P(0.1), t0=P(-0.2001))])
    return m, {"time": np.linspace(-1.0, 4.0, 51), "energy": np.linspace(80.0, 92.0, 121)}


def model_sub():
    """Subcycle dynamics (with a global term) and profiles (mean and trapezoid weights)."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("s", A=P(3.0), x0=P(85.0), SD=P(0.7)))
    m.add(gm.Lorentz("q", A=P(2.0), x0=P(88.0), W=P(0.8)))
    m.dynamics(
        "s.x0",
        [[gm.expFun(A=P(0.5), tau=P(0.3), t0=P(0.0))], [gm.linFun(m=P(0.4), t0=P(0.0))]],
        frequency=P(0.4123),
        global_terms=[gm.stepFun(A=P(0.2), t0=P(0.0123))],
    )
    m.profile("s.A", [gm.pExpDecay(A=P(0.5), tau=P(2.0)), gm.pLinear(m=P(0.05), b=P(0.1))], axis="depth")
    m.profile("s.SD", [gm.pGauss(A=P(0.2), x0=P(1.5), SD=P(1.0))], axis="depth")
    m.profile("q.W", [gm.pLinear(m=P(0.03), b=P(0.0))], axis="fluence", weights="trapezoid")
    return m, {
        "time": np.linspace(-1.0, 6.0, 41),
        "energy": np.linspace(80.0, 92.0, 101),
        "depth": np.linspace(0.0, 5.0, 12),
        "fluence": np.array([0.0, 0.3, 1.0, 2.2, 4.0]),
    }


MODELS = {"peaks": model_peaks, "time": model_time, "subcycles_profiles": model_sub}
_CACHE: dict = {}


def compiled(name: str, target: str):
    require_target(target)
    if (name, target) not in _CACHE:
        m, arrays = MODELS[name]()
        _CACHE[name, target] = (gir.compile(m, target=target), arrays)
    return _CACHE[name, target]


def _central(f, theta, k, h):
    tp, tm = theta.copy(), theta.copy()
    tp[k] += h
    tm[k] -= h
    return (f(tp) - f(tm)) / (2 * h)


def finite_difference_column(f, theta, k):
    """Richardson-extrapolated central difference and its error estimate, at the best step."""
    s = max(1.0, abs(theta[k]))
    steps = [10.0**-e * s for e in range(2, 9)]
    rich = [(4 * _central(f, theta, k, h / 2) - _central(f, theta, k, h)) / 3 for h in steps]
    errs = [np.max(np.abs(rich[i] - rich[i + 1])) for i in range(len(rich) - 1)]
    i = int(np.argmin(errs))
    return rich[i], errs[i]


_FD: dict = {}


def reference(name: str):
    """The numpy target's values at theta0 and the finite-difference Jacobian, column by column."""
    if name not in _FD:
        exe, arrays = compiled(name, "numpy")
        theta = exe.theta0.copy()
        f = lambda t: exe(t, **arrays)
        cols = [finite_difference_column(f, theta, k) for k in range(len(theta))]
        _FD[name] = (theta, np.stack([c for c, _ in cols], -1), np.array([e for _, e in cols]))
    return _FD[name]


def check_columns(jac, fd, est, names, what):
    scales = np.max(np.abs(fd.reshape(-1, fd.shape[-1])), axis=0)
    top = scales.max()
    bad = []
    for k, name in enumerate(names):
        assert est[k] <= 1e-6 * max(scales[k], 1e-3 * top), (
            f"{what}: finite differences unreliable for {name}"
        )
        err = np.max(np.abs(jac[..., k] - fd[..., k]))
        if err > RTOL * scales[k] + 4 * est[k]:
            bad.append(f"{name}: error {err:.3e}, column scale {scales[k]:.3e}")
    assert not bad, f"{what}: " + "; ".join(bad)


@pytest.mark.parametrize("target", JAC_TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_model_jacobian_matches_finite_differences(name, target):
    exe, arrays = compiled(name, target)
    theta, fd, est = reference(name)
    y, jac = exe.value_and_jacobian(theta, **arrays)
    assert jac.shape == (*y.shape, len(exe.param_names))
    check_columns(jac, fd, est, exe.param_names, f"{name} on {target}")


@pytest.mark.parametrize("target", JAC_TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_fit_problem_jacobian_matches_finite_differences(name, target):
    """The Jacobian the fits use (flat, column subsets) is the same."""
    exe, arrays = compiled(name, target)
    theta, fd, est = reference(name)
    data = np.zeros(fd.shape[:-1])
    problem = gir.fit.build_problem([gir.fit.Dataset(exe, data, arrays=arrays).prepare()])
    y, jac = problem.model_and_jacobian(theta)
    np.testing.assert_allclose(y, exe(theta, **arrays).ravel(), rtol=1e-12, atol=1e-300)
    check_columns(jac.reshape(fd.shape), fd, est, exe.param_names, f"{name} (fit) on {target}")
    cols = [2, 0, 5]
    _, sub = problem.model_and_jacobian(theta, cols)  # another graph: rounding may differ in the last bits
    scale = np.max(np.abs(jac[:, cols]), axis=0)
    assert np.all(np.abs(sub - jac[:, cols]) <= 1e-13 * scale)


def test_derivatives_at_non_differentiable_points_are_the_branch_taken():
    """A step's position gets a zero derivative; sqrtFun's derivative stays finite at and before t0."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=P(1.0), x0=P(84.0), SD=P(0.5)))
    m.dynamics("g.A", [gm.stepFun(A=P(0.5), t0=P(0.5)), gm.sqrtFun(A=P(0.3), t0=P(1.0))])
    exe = gir.compile(m, target="numpy")
    t = np.array([0.0, 0.5, 1.0, 2.0])  # both t0s exactly on grid points
    _, jac = exe.value_and_jacobian(exe.theta0, energy=np.array([84.0]), time=t)
    names = list(exe.param_names)
    assert np.all(np.isfinite(jac))
    np.testing.assert_array_equal(jac[:, 0, names.index("g.A.stepFun.t0")], 0.0)
    d_t0 = jac[:, 0, names.index("g.A.sqrtFun.t0")]
    assert d_t0[0] == 0.0 and d_t0[2] == 0.0  # at t = t0 the branch taken is the constant 0
    assert d_t0[3] == pytest.approx(-0.3 / 2, rel=1e-12)  # -A / (2 sqrt(t - t0)) at t - t0 = 1
