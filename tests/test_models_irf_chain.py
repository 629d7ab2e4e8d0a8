"""gir.models: chained instrument responses (irf=[k1, k2, ...]) and kernel widths given as expressions.

References follow MODELS.md: the normalized convolution on a non-uniform time axis
(trapezoid weights, the kernel's analytic masses beyond the first and last sample)
written in NumPy and applied once per kernel, in order, to the trace of the same
model without an instrument response.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from available import require_target
from scipy import special

import gir
from gir import GirError, InputError
from gir import models as gm

P = gm.Param
TARGETS = ["numpy", "numba", "jax"]
E = np.array([0.0, 1.0])
T = np.unique(
    np.concatenate(
        [np.linspace(-1.5, 0.0, 13), np.linspace(0.0, 1.0, 31), 1.0 + 4.0 * np.linspace(0, 1, 23) ** 1.6]
    )
)


def assert_rel(got, want, rtol=1e-12):
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape
    err, scale = np.max(np.abs(got - want)), np.max(np.abs(want))
    assert err <= rtol * scale, f"max abs error {err:.3e} > {rtol:g} * {scale:.3e}"


# -- a NumPy reference of one normalized convolution ------------------------------------------


def kernel(kind: str, x, w: float):
    if kind == "gaussCONV":
        return np.exp(-0.5 * (x / w) ** 2)
    if kind == "expDecayCONV":
        return np.where(x >= 0, np.exp(-np.maximum(x, 0) / w), 0.0)
    if kind == "expRiseCONV":
        return np.where(x <= 0, np.exp(np.minimum(x, 0) / w), 0.0)
    raise ValueError(kind)


def mass_above(kind: str, a, w: float):
    """The integral of the kernel over [a, inf)."""
    if kind == "gaussCONV":
        return w * math.sqrt(math.pi / 2) * special.erfc(a / (w * math.sqrt(2)))
    if kind == "expDecayCONV":
        return w * np.exp(-np.maximum(a, 0) / w)
    return np.where(a < 0, w * (1 - np.exp(np.minimum(a, 0) / w)), 0.0)


def mass_below(kind: str, b, w: float):
    """The integral of the kernel over (-inf, b]."""
    if kind == "gaussCONV":
        return w * math.sqrt(math.pi / 2) * special.erfc(-b / (w * math.sqrt(2)))
    if kind == "expDecayCONV":
        return np.where(b > 0, w * (1 - np.exp(-np.maximum(b, 0) / w)), 0.0)
    return w * np.exp(np.minimum(b, 0) / w)


def convolved(kind: str, w: float, t, p):
    """y_i = (sum_j K_ij p_j + M_L(i) p_0 + M_R(i) p_n) / (sum_j K_ij + M_L(i) + M_R(i))."""
    gaps = np.diff(t)
    weights = np.concatenate([[gaps[0] / 2], (gaps[:-1] + gaps[1:]) / 2, [gaps[-1] / 2]])
    K = kernel(kind, t[:, None] - t[None, :], w) * weights[None, :]
    ML, MR = mass_above(kind, t - t[0], w), mass_below(kind, t - t[-1], w)
    return (K @ p + ML * p[0] + MR * p[-1]) / (K.sum(axis=1) + ML + MR)


# -- models -----------------------------------------------------------------------------------

CHAINS = {
    "two": [("expDecayCONV", 0.3), ("gaussCONV", 0.15)],
    "three": [("expRiseCONV", 0.2), ("gaussCONV", 0.1), ("expDecayCONV", 0.4)],
    "repeated": [("expDecayCONV", 0.25), ("expDecayCONV", 0.6)],
}


def terms():
    return [gm.expFun(A=P(0.8), tau=P(0.9), t0=0.0), gm.stepFun(A=P(-0.3), t0=P(0.4))]


def chain_model(chain, irf: bool = True) -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    kernels = [gm.REGISTRY[k](**{gm.REGISTRY[k].params[0]: P(w)}) for k, w in chain]
    m.dynamics("c.y0", terms(), irf=kernels if irf else None)
    return m


def subcycle_model(chain, irf: bool = True) -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.1)))
    kernels = [gm.REGISTRY[k](**{gm.REGISTRY[k].params[0]: P(w)}) for k, w in chain]
    subs = [[gm.expFun(A=P(1.0), tau=P(0.3), t0=0.0)], [gm.linFun(m=P(0.5), t0=0.0)]]
    m.dynamics(
        "c.y0",
        subs,
        frequency=P(0.8),
        global_terms=[gm.stepFun(A=P(0.2), t0=0.0)],
        irf=kernels if irf else None,
    )
    return m


def reference(build, chain):
    """The trace of the model without an instrument response, convolved with each kernel in order."""
    y = gir.compile(build(chain, irf=False), target="numpy")(None, energy=E, time=T)[:, 0]
    for kind, width in chain:
        y = convolved(kind, width, T, y)
    return y


# -- values -----------------------------------------------------------------------------------


def test_reference_is_one_kernel_of_the_existing_path():
    """The NumPy reference of one convolution is what a single-kernel model computes."""
    for kind, width in [("gaussCONV", 0.15), ("expDecayCONV", 0.3), ("expRiseCONV", 0.2)]:
        got = gir.compile(chain_model([(kind, width)]), target="numpy")(None, energy=E, time=T)[:, 0]
        assert_rel(got, reference(chain_model, [(kind, width)]))
        single = gm.Model(axes=("time", "energy"))
        single.add(gm.Offset("c", y0=P(0.2)))
        single.dynamics("c.y0", terms(), irf=gm.REGISTRY[kind](**{gm.REGISTRY[kind].params[0]: P(width)}))
        assert_rel(gir.compile(single, target="numpy")(None, energy=E, time=T)[:, 0], got, rtol=1e-15)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("chain", list(CHAINS))
def test_chain_is_the_convolutions_in_order(chain, target):
    require_target(target)
    exe = gir.compile(chain_model(CHAINS[chain]), target=target)
    got = exe(None, energy=E, time=T)
    want = reference(chain_model, CHAINS[chain])
    assert got.shape == (T.size, E.size)
    assert_rel(got[:, 0], want)
    assert_rel(got[:, 1], want)
    # the order matters for one-sided kernels
    assert not np.allclose(want, reference(chain_model, CHAINS[chain][::-1]), rtol=1e-6, atol=0)


@pytest.mark.parametrize("target", TARGETS)
def test_chain_on_subcycle_dynamics(target):
    require_target(target)
    chain = CHAINS["two"]
    got = gir.compile(subcycle_model(chain), target=target)(None, energy=E, time=T)[:, 0]
    assert_rel(got, reference(subcycle_model, chain))


def test_chain_keeps_constants():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(-1.25)))
    m.dynamics("c.y0", [], irf=(gm.expDecayCONV(tau=0.3), gm.gaussCONV(SD=0.2), gm.expRiseCONV(tau=0.5)))
    got = gir.compile(m, target="numpy")(None, energy=E, time=T)
    np.testing.assert_allclose(got, -1.25, rtol=1e-13, atol=0)


def test_names_and_kernel_parameters():
    m = chain_model(CHAINS["repeated"])
    names = ["c.y0.expDecayCONV.tau", "c.y0.expDecayCONV_2.tau"]
    assert m.kernel_parameters() == names
    assert set(names) <= set(gir.compile(m, target="numpy").param_names)
    m = chain_model(CHAINS["three"])
    assert m.kernel_parameters() == ["c.y0.expRiseCONV.tau", "c.y0.gaussCONV.SD", "c.y0.expDecayCONV.tau"]


def test_jacobian_of_chained_widths():
    m = chain_model(CHAINS["three"])
    exe = gir.compile(m, target="numpy")
    theta = exe.theta0
    value, jac = exe.value_and_jacobian(theta, energy=E, time=T)
    assert_rel(value, exe(theta, energy=E, time=T), rtol=1e-14)
    for name in m.kernel_parameters():
        i = exe.param_names.index(name)
        h = 1e-6 * theta[i]
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        fd = (exe(up, energy=E, time=T) - exe(down, energy=E, time=T)) / (2 * h)
        assert np.max(np.abs(fd)) > 1e-3, name  # the width matters
        assert_rel(jac[..., i], fd, rtol=1e-6)


# -- widths as expressions --------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_expression_width_equals_the_fixed_width(target):
    require_target(target)

    def build(second, third):
        m = gm.Model(axes=("time", "energy"))
        m.add(gm.Offset("c", y0=P(0.2)))
        m.add(gm.Offset("w", y0=0.0))  # adds nothing; its parameter sets a width
        m.dynamics(
            "c.y0",
            terms(),
            irf=[gm.gaussCONV(SD=P(0.1)), gm.gaussCONV(SD=second), gm.expDecayCONV(tau=third)],
        )
        return m

    tied = gir.compile(build("c.y0.gaussCONV.SD * 2", "w.y0 + c.y0.expFun.tau / 3"), target=target)
    fixed = gir.compile(build(0.2, 0.3), target=target)
    assert tied.param_names == fixed.param_names
    assert_rel(tied(None, energy=E, time=T), fixed(None, energy=E, time=T))
    want = reference(chain_model, [("gaussCONV", 0.1), ("gaussCONV", 0.2), ("expDecayCONV", 0.3)])
    assert_rel(tied(None, energy=E, time=T)[:, 0], want)
    # the expression follows its parameter
    theta = tied.theta0.copy()
    theta[tied.param_names.index("c.y0.gaussCONV.SD")] = 0.05
    assert not np.allclose(tied(theta, energy=E, time=T), fixed(theta, energy=E, time=T), rtol=1e-6)


def test_expression_width_jacobian():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    m.dynamics("c.y0", terms(), irf=[gm.gaussCONV(SD=P(0.1)), gm.expDecayCONV(tau="3 * c.y0.gaussCONV.SD")])
    exe = gir.compile(m, target="numpy")
    theta = exe.theta0
    i = exe.param_names.index("c.y0.gaussCONV.SD")
    h = 1e-6 * theta[i]
    up, down = theta.copy(), theta.copy()
    up[i] += h
    down[i] -= h
    fd = (exe(up, energy=E, time=T) - exe(down, energy=E, time=T)) / (2 * h)
    assert_rel(exe.jacobian(theta, energy=E, time=T)[..., i], fd, rtol=1e-6)


# -- errors -----------------------------------------------------------------------------------


def test_not_a_kernel_in_the_list():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    with pytest.raises(GirError, match=r"c\.y0.*kernel.*expFun"):
        m.dynamics("c.y0", terms(), irf=[gm.gaussCONV(SD=0.1), gm.expFun(A=1.0, tau=1.0, t0=0.0)])
    with pytest.raises(GirError, match=r"c\.y0.*kernel"):
        m.dynamics("c.y0", terms(), irf=[gm.gaussCONV(SD=0.1), 0.3])
    assert not m.dynamics_of


@pytest.mark.parametrize("width", [0.0, -0.2, P(-0.1), math.nan])
def test_fixed_width_not_positive(width):
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    with pytest.raises(GirError, match=r"c\.y0\.expDecayCONV_2\.tau"):
        m.dynamics("c.y0", terms(), irf=[gm.expDecayCONV(tau=0.1), gm.expDecayCONV(tau=width)])
    assert not m.dynamics_of


def test_free_width_not_positive_at_call():
    exe = gir.compile(chain_model(CHAINS["repeated"]), target="numpy")
    i = exe.param_names.index("c.y0.expDecayCONV_2.tau")
    for bad in (0.0, -0.4, math.nan):
        theta = exe.theta0.copy()
        theta[i] = bad
        with pytest.raises(InputError, match=r"c\.y0\.expDecayCONV_2\.tau"):
            exe(theta, energy=E, time=T)
        with pytest.raises(InputError, match=r"c\.y0\.expDecayCONV_2\.tau"):
            exe.batch(np.stack([exe.theta0, theta]), energy=E, time=T)


def test_expression_width_not_positive_at_call():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    m.dynamics("c.y0", terms(), irf=[gm.gaussCONV(SD=P(0.3)), gm.gaussCONV(SD="c.y0.gaussCONV.SD - 0.2")])
    exe = gir.compile(m, target="numpy")
    assert exe(None, energy=E, time=T).shape == (T.size, E.size)
    theta = exe.theta0.copy()
    theta[exe.param_names.index("c.y0.gaussCONV.SD")] = 0.15  # first width positive, second -0.05
    with pytest.raises(InputError, match=r"c\.y0\.gaussCONV_2\.SD"):
        exe(theta, energy=E, time=T)
    with pytest.raises(InputError, match=r"c\.y0\.gaussCONV_2\.SD"):
        exe.batch(np.stack([exe.theta0, theta]), energy=E, time=T)
    with pytest.raises(InputError, match=r"c\.y0\.gaussCONV_2\.SD"):
        exe.jacobian(theta, energy=E, time=T)
    # an expression of fixed parameters only, non-positive: still caught at call
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    m.add(gm.Offset("w", y0=-0.5))
    m.dynamics("c.y0", terms(), irf=gm.gaussCONV(SD="w.y0 * 2"))
    with pytest.raises(InputError, match=r"c\.y0\.gaussCONV\.SD"):
        gir.compile(m, target="numpy")(None, energy=E, time=T)


def test_convolved_width_expression_is_rejected():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    m.add(gm.Offset("w", y0=P(0.2)))
    m.dynamics("w.y0", [gm.stepFun(A=P(0.1), t0=0.0)])
    m.dynamics("c.y0", terms(), irf=[gm.gaussCONV(SD=0.1), gm.gaussCONV(SD="w.y0")])
    with pytest.raises(GirError, match=r"c\.y0\.gaussCONV_2\.SD"):
        m.graph()


# -- serialization ----------------------------------------------------------------------------


def test_to_dict_round_trip(tmp_path):
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset("c", y0=P(0.2)))
    m.dynamics(
        "c.y0", terms(), irf=[gm.expDecayCONV(tau=P(0.3)), gm.gaussCONV(SD="c.y0.expDecayCONV.tau / 2")]
    )
    data = m.to_dict()
    assert isinstance(data["dynamics"][0]["irf"], list) and len(data["dynamics"][0]["irf"]) == 2
    back = gm.Model.from_dict(data)
    assert back.to_dict() == data
    assert back.parameters() == m.parameters()
    m.save(tmp_path / "m.json")
    loaded = gm.Model.load(tmp_path / "m.json")
    want = gir.compile(m, target="numpy")(None, energy=E, time=T)
    assert_rel(gir.compile(loaded, target="numpy")(None, energy=E, time=T), want, rtol=1e-15)
    sub = subcycle_model(CHAINS["three"])
    assert gm.Model.from_dict(sub.to_dict()).to_dict() == sub.to_dict()


def test_single_kernel_form_still_loads():
    m = chain_model([("gaussCONV", 0.15)])
    data = m.to_dict()
    (kernel_dict,) = data["dynamics"][0]["irf"]
    old = {**data, "dynamics": [{**data["dynamics"][0], "irf": kernel_dict}]}
    back = gm.Model.from_dict(old)
    assert back.to_dict() == data
    assert back.kernel_parameters() == ["c.y0.gaussCONV.SD"]
