"""Gaussian instrument responses in closed form (convolution="analytic") against direct integration."""

import functools
import math
from itertools import pairwise

import numpy as np
import pytest
from scipy import integrate

import gir
from gir import models as gm
from gir.models import closed_form as cf
from tests.available import require_target


def decay(s, A, tau, t0):
    return A * math.exp(-(s - t0) / tau) if s >= t0 else 0.0


TERMS = {  # name -> (closed form, f(s) of the term, its parameters)
    "stepFun": (cf.stepFun, lambda s, A, t0: A * (s >= t0), dict(A=1.3, t0=0.7)),
    "linFun": (cf.linFun, lambda s, m, t0: m * (s - t0) * (s >= t0), dict(m=0.4, t0=0.7)),
    "expFun": (cf.expFun, decay, dict(A=1.3, tau=1.0, t0=0.7)),
}


def window_share(f, t, s0, sn, sd):
    """integral over [s0, sn] of k(t - s) f(s) ds / (SD sqrt(2 pi)), by adaptive quadrature (split at the
    kernel's centre and tails and where the terms below start)."""

    def k(s):
        return math.exp(-((t - s) ** 2) / (2 * sd * sd)) * f(s)

    cuts = sorted({s0, sn, *(c for c in (t - 8 * sd, t, t + 8 * sd, 0.2, 0.7, 2.0) if s0 < c < sn)})
    parts = [integrate.quad(k, lo, hi, limit=200, epsabs=1e-15, epsrel=1e-13)[0] for lo, hi in pairwise(cuts)]
    return sum(parts) / (sd * math.sqrt(2 * math.pi))


@pytest.mark.parametrize("term", TERMS)
@pytest.mark.parametrize("sd", [0.05, 0.5, 4.0])
def test_closed_forms_equal_the_integrals(term, sd):
    form, f, params = TERMS[term]
    t = np.linspace(-3.0, 12.0, 16)
    got = form(t, t - t[0], t - t[-1], sd, *params.values())
    want = [window_share(lambda s: f(s, *params.values()), ti, t[0], t[-1], sd) for ti in t]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


FAR = [(30.0, 0.02, 0.7), (0.01, 50.0, 0.7), (0.3, 1.0, -400.0), (0.3, 1.0, 400.0), (0.3, 1e-3, 11.99)]


@pytest.mark.parametrize("sd, tau, t0", FAR)
def test_exponential_form_is_finite_and_right_far_from_its_start(sd, tau, t0):
    t = np.linspace(-3.0, 12.0, 16)
    got = cf.expFun(t, t - t[0], t - t[-1], sd, 1.0, tau, t0)
    assert np.all(np.isfinite(got))
    want = [window_share(lambda s: decay(s, 1.0, tau, t0), ti, t[0], t[-1], sd) for ti in t]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def offset_model(how: str) -> gm.Model:
    """A convolved offset: the model is the convolved trace itself, on every energy."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=gm.Param(0.5, bounds=(-5, 5))))
    A, tau = gm.Param(1.3, bounds=(-5, 5)), gm.Param(1.0, bounds=(0.05, 20))
    terms = [
        gm.expFun(A=A, tau=tau, t0=gm.Param(0.7, bounds=(-2, 5))),
        gm.stepFun(A=gm.Param(0.4, bounds=(-2, 2)), t0=0.2),
        gm.linFun(m=gm.Param(0.05, bounds=(-1, 1)), t0=2.0),
    ]
    m.dynamics("Offset.y0", terms, irf=gm.gaussCONV(SD=gm.Param(0.6, bounds=(0.01, 3))), convolution=how)
    return m


def trace(s, y0=0.5, A=1.3, tau=1.0, t0=0.7):
    return y0 + decay(s, A, tau, t0) + 0.4 * (s >= 0.2) + 0.05 * (s - 2.0) * (s >= 2.0)


T = np.concatenate([np.linspace(-3, 0, 7), np.geomspace(0.05, 9, 14)])  # non-uniform
E = np.linspace(0.0, 1.0, 3)


def test_analytic_convolution_is_the_continuous_convolution_with_edge_values():
    y = gir.compile(offset_model("analytic"), target="numpy")(energy=E, time=T)
    sd, s0, sn = 0.6, T[0], T[-1]
    r = sd * math.sqrt(2)
    for i, t in enumerate(T):
        low, high = 0.5 * math.erfc((t - s0) / r), 0.5 * math.erfc((sn - t) / r)
        want = window_share(trace, t, s0, sn, sd) + trace(s0) * low + trace(sn) * high
        np.testing.assert_allclose(y[i], want, rtol=1e-12)


def test_quadrature_converges_to_the_analytic_convolution():
    errors = []
    for n in (101, 401, 1601):
        t = np.linspace(-3, 9, n)
        ya = gir.compile(offset_model("analytic"), target="numpy")(energy=E, time=t)
        yq = gir.compile(offset_model("quadrature"), target="numpy")(energy=E, time=t)
        errors.append(np.max(np.abs(ya - yq)))
    assert errors[0] > 3 * errors[1] > 9 * errors[2]  # at least first order: the jumps at t0


@pytest.mark.parametrize("target", ["numpy", "numba", "jax"])
def test_targets_and_jacobian(target):
    require_target(target)
    ref = gir.compile(offset_model("analytic"), target="numpy")
    exe = gir.compile(offset_model("analytic"), target=target)
    theta = exe.theta0
    want = ref(theta, energy=E, time=T)
    np.testing.assert_allclose(exe(theta, energy=E, time=T), want, rtol=1e-13, atol=1e-15)
    jac = exe.jacobian(theta, energy=E, time=T)
    step = 1e-6 * np.maximum(1.0, np.abs(theta))
    for k in range(len(theta)):
        up, down = theta.copy(), theta.copy()
        up[k] += step[k]
        down[k] -= step[k]
        fd = (ref(up, energy=E, time=T) - ref(down, energy=E, time=T)) / (2 * step[k])
        np.testing.assert_allclose(jac[..., k], fd, rtol=1e-6, atol=1e-8, err_msg=exe.param_names[k])


def test_round_trip_and_errors():
    back = gm.Model.from_dict(offset_model("analytic").to_dict())
    assert back.dynamics_of["Offset.y0"].convolution == "analytic"
    assert "convolution" not in str(offset_model("quadrature").to_dict())
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=1.0))
    dynamics = functools.partial(m.dynamics, "Offset.y0", convolution="analytic")
    with pytest.raises(gir.GirError, match=r"no closed form for \['sinFun'\]"):
        dynamics([gm.sinFun(A=1, f=1, phi=0, t0=0)], irf=gm.gaussCONV(SD=0.1))
    with pytest.raises(gir.GirError, match="needs one kernel of gaussCONV"):
        dynamics([gm.expFun(A=1, tau=1, t0=0)], irf=gm.boxCONV(width=0.1))
    with pytest.raises(gir.GirError, match="'quadrature' or 'analytic'"):
        m.dynamics("Offset.y0", [gm.expFun(A=1, tau=1, t0=0)], irf=gm.gaussCONV(SD=0.1), convolution="exact")
