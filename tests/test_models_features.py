"""gir.models: a model using every feature on every target, subcycles and profiles
against MODELS.md, the IR's shape of a model, semantics and errors, serialization,
per-component values and batches."""

from __future__ import annotations

import json
import math
import pickle
import re

import numpy as np
import pytest
from test_models import (
    ALL_TARGETS,
    COMPILED,
    assert_rel,
    ref_peak,
    ref_shirley,
    ref_time,
    require_target,
    theta_of,
)

import gir
from gir import models as gm
from gir.errors import GirError, InputError

P = gm.Param
E = np.linspace(78.0, 94.0, 241)
T = np.unique(np.concatenate([np.linspace(-1.0, 1.0, 17), np.geomspace(1.1, 12.0, 23)]))
DEPTH = np.linspace(0.0, 20.0, 13)
FLUENCE = np.geomspace(0.5, 30.0, 8)


def full_model() -> gm.Model:
    """Every feature: peaks, expressions (also of time-dependent and profiled parameters),
    Shirley with an explicit and a default signal, LinBack, dynamics with an irf, subcycle
    dynamics with global terms and an irf, a time-dependent background, a mean profile and
    a trapezoid profile on two aux axes."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(0.4, bounds=(0, 10))))
    m.add(gm.GLP("p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0), F=P(1.0, bounds=(0.1, 5)), m=0.3))
    m.add(gm.GLS("p2", A="0.5*p1.A", x0="p1.x0 + 3.65", F="p1.F", m="min(p1.F, 0.4)"))
    m.add(gm.Voigt("p3", A=P(3.0), x0=P(88.0), SD=P(0.5, bounds=(0.01, 3)), W="sqrt(abs(p1.F)) * 0.6"))
    m.add(gm.DS("p4", A=P(2.0), x0=P(80.5), F=0.4, alpha=P(0.1, bounds=(0, 0.5))))
    m.add(gm.GaussAsym("p5", A=P(1.5), x0=P(91.0), SD=0.7, ratio=P(1.8)))
    m.add(
        gm.Lorentz(
            "p6",
            A="0.2 * p3.A + max(p1.A * 0.01, cos(pi / 3)) - e / e",
            x0="p1.x0 + 2",
            W="p7.SD**2 + sin(p7.A) / 4",
        )
    )
    m.add(gm.Gauss("p7", A=P(0.7), x0=P(86.5), SD="exp(log(p3.SD))"))
    m.add(gm.LinBack(m=P(0.02), b=P(0.3), xStart=81.0, xStop=90.0))
    m.add(gm.Shirley(pShirley=P(1e-3, bounds=(0, 1)), signal=["p1", "p3"]))
    m.add(gm.Shirley("sh_all", pShirley=P(5e-4)))
    m.dynamics(
        "p1.x0",
        [gm.expFun(A=P(0.3), tau=P(1.2, bounds=(0.05, 20)), t0=0.0), gm.stepFun(A=P(-0.1), t0=P(0.5))],
        irf=gm.gaussCONV(SD=P(0.1, bounds=(1e-3, 1))),
    )
    m.dynamics(
        "p4.A",
        [
            [gm.expFun(A=P(1.0), tau=P(0.8), t0=0.0)],
            [gm.linFun(m=P(0.5), t0=0.0), gm.sinFun(A=0.2, f=P(0.7), phi=0.0, t0=0.0)],
        ],
        frequency=P(0.2),
        global_terms=[gm.erfFun(A=P(0.5), SD=P(0.2), t0=0.0)],
        irf=gm.expDecayCONV(tau=P(0.15)),
    )
    m.dynamics("LinBack.b", [gm.sqrtFun(A=P(0.05), t0=0.0)])
    m.profile("p3.A", [gm.pExpDecay(A=P(1.0), tau=P(3.0))], axis="depth")
    m.profile(
        "p5.x0", [gm.pGauss(A=P(0.3), x0=P(10.0), SD=P(5.0)), gm.pLinear(m=P(0.01), b=0.0)], axis="fluence",
        weights="trapezoid",
    )  # fmt: skip
    return m


def full_exe(target):
    return COMPILED.get("full", target, full_model)


def call_full(exe, theta=None, depth=DEPTH, fluence=FLUENCE):
    return exe(theta, energy=E, time=T, depth=depth, fluence=fluence)


def thetas_around(exe, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return exe.theta0 * (1 + 0.05 * rng.standard_normal((n, exe.theta0.size)))


# -- 4. every target equals numpy -------------------------------------------------------


@pytest.mark.parametrize("target", [t for t in ALL_TARGETS if t != "numpy"])
def test_full_model_every_target_equals_numpy(target):
    ref, exe = full_exe("numpy"), full_exe(target)
    assert exe.param_names == ref.param_names
    for theta in [ref.theta0, *thetas_around(ref, 2)]:
        assert_rel(call_full(exe, theta), call_full(ref, theta), what=f"{target} total")
    # the aux axes are given at call time: other lengths, the same executable
    for depth, fluence in [(DEPTH[:1], FLUENCE[:2]), (np.linspace(0, 30, 50), np.geomspace(1, 5, 21))]:
        assert_rel(call_full(exe, None, depth, fluence), call_full(ref, None, depth, fluence), what=target)
    parts, ref_parts = (
        e.components(None, energy=E, time=T, depth=DEPTH, fluence=FLUENCE) for e in (exe, ref)
    )
    assert list(parts) == list(ref_parts)
    for name in ref_parts:
        assert_rel(parts[name], ref_parts[name], what=f"{target} {name}")
    thetas = thetas_around(ref)
    kw = dict(energy=E, time=T, depth=DEPTH, fluence=FLUENCE)
    assert_rel(exe.batch(thetas, **kw), ref.batch(thetas, **kw), what=f"{target} batch")


def test_full_model_is_time_dependent_and_uses_every_parameter():
    """Guards for the comparison above: each free parameter changes the result."""
    exe = full_exe("numpy")
    y0 = call_full(exe)
    assert np.ptp(y0, axis=0).max() > 0.1
    for i, name in enumerate(exe.param_names):
        theta = exe.theta0.copy()
        theta[i] = theta[i] * 1.1 + (0.05 if theta[i] == 0 else 0)
        assert np.max(np.abs(call_full(exe, theta) - y0)) > 1e-9, name


# -- subcycles and profiles against MODELS.md ---------------------------------------------


def ref_subcycles(t, base, f, subs, global_terms):
    """p(t) = base + global terms(t) + the k-th subcycle's terms on the local time where the index is k."""
    n_sub = len(subs)
    tau_s = 1 / (f * n_sub)
    out = np.full(t.shape, float(base))
    for kind, p in global_terms:
        out += ref_time(kind, t, p)
    for i, ti in enumerate(t):
        if ti >= 0:
            n = math.floor(ti / tau_s)
            local, index = ti - n * tau_s, n % n_sub + 1
        else:
            local, index = 0.0, 0
        for k, terms in enumerate(subs, 1):
            if index == k:
                out[i] += sum(float(ref_time(kind, np.array(local), p)) for kind, p in terms)
    return out


SUBS = [
    [("expFun", {"A": 1.0, "tau": 0.3, "t0": 0.0})],
    [("linFun", {"m": 0.5, "t0": 0.0}), ("sinFun", {"A": 0.2, "f": 0.7, "phi": 0.1, "t0": 0.0})],
    [],  # a subcycle without terms
    [("stepFun", {"A": -0.4, "t0": 0.25})],
]
GLOBAL = [("erfFun", {"A": 0.5, "SD": 0.2, "t0": 0.0})]


def subcycle_model() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(0.1)))
    subs = [[gm.REGISTRY[k](**{n: P(v) for n, v in p.items()}) for k, p in terms] for terms in SUBS]
    glob = [gm.REGISTRY[k](**{n: P(v) for n, v in p.items()}) for k, p in GLOBAL]
    m.dynamics("Offset.y0", subs, frequency=P(0.4), global_terms=glob)
    return m


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_subcycle_dynamics_match_spec(target):
    exe = COMPILED.get("subcycles", target, subcycle_model)
    assert "Offset.y0.frequency" in exe.param_names and "Offset.y0.sub2.sinFun.phi" in exe.param_names
    tau_s = 1 / (0.4 * len(SUBS))
    t = np.unique(np.concatenate([np.linspace(-1.0, 12.0, 401), np.arange(0, 12, tau_s)]))  # every boundary
    got = exe(None, energy=E[:3], time=t)[:, 0]
    want = ref_subcycles(t, 0.1, 0.4, SUBS, GLOBAL)
    assert_rel(got, want, what="subcycles")
    # guards: every subcycle index occurs, and the subcycle terms matter
    index = np.where(t >= 0, np.floor(t / tau_s) % len(SUBS) + 1, 0)
    assert set(index) == {0, 1, 2, 3, 4}
    assert np.max(np.abs(want - ref_subcycles(t, 0.1, 0.4, [[]] * len(SUBS), GLOBAL))) > 0.3


def profile_model() -> gm.Model:
    m = gm.Model()
    m.add(gm.GaussAsym("g", A=P(1.5), x0=P(1.0), SD=0.7, ratio=P(1.8)))
    m.profile(
        "g.x0",
        [gm.pGauss(A=P(0.8), x0=P(2.0), SD=P(1.5)), gm.pLinear(m=P(0.1), b=0.0)],
        axis="z",
        weights="trapezoid",
    )
    m.add(gm.Lorentz("l", A=P(2.0), x0=P(-1.0), W=P(0.9)))
    m.profile("l.W", [gm.pExpDecay(A=P(0.5), tau=P(2.0))], axis="depth")
    m.add(gm.Gauss("h", A=P(0.5), x0=P(3.0), SD="l.W * 2"))  # an expression of a profiled parameter
    return m


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_profiles_average_the_component(target):
    """The component (not the parameter) is averaged: trapezoid weights / uniform mean."""
    exe = COMPILED.get("profile2", target, profile_model)
    x = np.linspace(-4.0, 6.0, 201)
    z = np.array([0.0, 0.2, 0.5, 1.0, 2.0, 3.5, 6.0])
    depth = np.linspace(0.0, 8.0, 9)
    parts = exe.components(None, energy=x, z=z, depth=depth)
    w = np.zeros(z.size)
    w[:-1] += np.diff(z) / 2
    w[1:] += np.diff(z) / 2
    x0 = 1.0 + 0.8 * np.exp(-0.5 * ((z - 2.0) / 1.5) ** 2) + 0.1 * z
    rows = [ref_peak("GaussAsym", x, {"A": 1.5, "x0": xz, "SD": 0.7, "ratio": 1.8}) for xz in x0]
    assert_rel(parts["g"], np.tensordot(w, rows, 1) / w.sum(), what="trapezoid profile")
    W = 0.9 + 0.5 * np.exp(-depth / 2.0)
    rows = [ref_peak("Lorentz", x, {"A": 2.0, "x0": -1.0, "W": wz}) for wz in W]
    assert_rel(parts["l"], np.mean(rows, axis=0), what="mean profile")
    rows = [ref_peak("Gauss", x, {"A": 0.5, "x0": 3.0, "SD": 2 * wz}) for wz in W]
    assert_rel(parts["h"], np.mean(rows, axis=0), what="expression of a profiled parameter")
    # not the component at the averaged parameter
    at_mean = ref_peak("Lorentz", x, {"A": 2.0, "x0": -1.0, "W": W.mean()})
    assert np.max(np.abs(parts["l"] - at_mean)) > 1e-3


# -- 5. the IR of a model ----------------------------------------------------------------


def value_types(graph) -> dict[str, tuple[str, ...]]:
    return {v.name: v.type.axes for n in graph.nodes for v in n.outputs if v.name}


def calls_to(graph, callee: str) -> list:
    return [n for n in graph.nodes if n.op == "call" and n.attr("callee").name == callee]


def test_time_independent_values_stay_on_energy_axis():
    m = full_model()
    g = m.graph()
    text = gir.dump(g)
    types = value_types(g)
    for name in ("Offset", "p7"):  # no parameter depends on time
        assert types[name] == ("E",), name
        assert re.search(rf"%{name}: f64\[E\] = call", text), name
    for name in ("p1", "p2", "p6", "p4", "LinBack", "Shirley", "sh_all"):  # time dependent
        assert types[name][0] == "T" and types[name][-1] == "E", name
    for name in ("p1.F", "p2.A"):
        assert re.search(rf"%{re.escape(name)}: f64 = ", text) or types.get(name, ()) == (), name
    assert types["p2.x0"] == ("T",) and types["p1.x0.convolved"] == ("T",)
    # the convolution reduces over the source axis S; its kernel is built on (T, S)
    for kernel in ("gaussCONV", "expDecayCONV"):
        (call,) = calls_to(g, kernel)
        assert [v.type.axes for v in call.outputs] == [("T", "S"), ("T",), ("T",)], kernel
    # and the optimized graph keeps the time-independent peak on E only
    opt = full_exe("numpy").graph
    assert value_types(opt)["p7"] == ("E",)


def test_profile_is_a_map_over_the_aux_axis():
    m = full_model()
    g = m.graph()
    types = value_types(g)
    (voigt,) = calls_to(g, "Voigt")
    assert voigt.inputs[1].type.axes == ("depth",)  # p3.A(z)
    assert types["p3"] == ("depth", "E")  # one value typed with the aux axis
    assert types["p5"] == ("fluence", "E")
    assert len(calls_to(g, "GaussAsym")) == 1
    means = [n for n in g.nodes if n.op == "mean" and n.attr("axis") == "depth"]
    assert len(means) >= 1
    text = gir.dump(g)
    assert re.search(r"%p3: f64\[depth,E\] = call", text)
    # p6 depends on p3.A (an expression of a profiled parameter) and on time
    assert types["p6"] == ("T", "depth", "E")
    # no length is baked in: one executable, the same graph, any aux length
    exe = full_exe("numpy")
    n_nodes = len(exe.graph.nodes)
    for n in (1, 3, 50, 200):
        y = exe(None, energy=E, time=T, depth=np.linspace(0, 20, n), fluence=FLUENCE)
        assert y.shape == (T.size, E.size)
    assert len(exe.graph.nodes) == n_nodes
    assert len(calls_to(exe.graph, "Voigt")) <= 1


def test_shirley_signal_is_explicit_in_the_ir():
    m = full_model()
    g = m.graph()
    producers = g.producers()
    (shirley,) = [n for n in g.nodes if n.outputs[0].name == "Shirley"]
    signal = producers[shirley.inputs[1]]
    assert signal.op == "add" and len(signal.inputs) == 2
    named = {v.name if v.name else producers[v].inputs[0].name for v in signal.inputs}  # p3 is averaged first
    assert named == {"p1", "p3"}
    (all_peaks,) = [n for n in g.nodes if n.outputs[0].name == "sh_all"]
    assert len(producers[all_peaks.inputs[1]].inputs) == 7  # p1..p7, not the backgrounds


# -- 6. semantics and errors -------------------------------------------------------------


def shirley_model(first: bool, signal=None) -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    sh = gm.Shirley(pShirley=P(2e-3), signal=signal)
    if first:
        m.add(sh)
    m.add(gm.Offset(y0=P(0.5)))
    m.add(gm.Gauss("p1", A=P(3.0), x0=P(84.0), SD=P(0.8)))
    m.add(gm.LinBack(m=P(0.1), b=P(0.2), xStart=80.0, xStop=90.0))
    m.add(gm.Lorentz("p2", A=P(1.0), x0=P(88.0), W=P(1.1)))
    if not first:
        m.add(sh)
    m.dynamics("p1.x0", [gm.expFun(A=P(0.5), tau=P(1.0), t0=0.0)])
    return m


@pytest.mark.parametrize("signal", [None, ["p1"], ["p2", "p1"]])
def test_shirley_independent_of_listing_order(signal):
    a, b = (gir.compile(shirley_model(first, signal), target="numpy") for first in (True, False))
    values = dict(zip(a.param_names, a.theta0, strict=True))
    pa = a.components(None, energy=E, time=T)
    pb = b.components(theta_of(b, values), energy=E, time=T)
    assert_rel(pa["Shirley"], pb["Shirley"], rtol=1e-14, what="Shirley")
    assert_rel(a(None, energy=E, time=T), b(theta_of(b, values), energy=E, time=T), rtol=1e-14)
    # and it is the reverse cumulative sum of exactly the chosen peaks
    chosen = ["p1", "p2"] if signal is None else signal
    want = ref_shirley(sum(pa[p] for p in chosen), 2e-3)
    assert_rel(pa["Shirley"], want, what="Shirley of the chosen peaks")


def test_shirley_signal_subset_uses_only_those_peaks():
    exe = gir.compile(shirley_model(False, ["p1"]), target="numpy")
    parts = exe.components(None, energy=E, time=T)
    assert_rel(parts["Shirley"], ref_shirley(parts["p1"], 2e-3))
    full = gir.compile(shirley_model(False), target="numpy").components(None, energy=E, time=T)
    assert np.max(np.abs(full["Shirley"] - parts["Shirley"])) > 1e-3


def gauss(name="g", **kw):
    return gm.Gauss(name, **{"A": P(1.0), "x0": 0.0, "SD": 1.0, **kw})


def test_duplicate_component_names():
    m = gm.Model()
    m.add(gauss("g"))
    with pytest.raises(GirError, match="'g'"):
        m.add(gm.Lorentz("g", A=1.0, x0=0.0, W=1.0))
    m.add(gm.Offset(y0=1.0))
    with pytest.raises(GirError, match="'Offset'"):
        m.add(gm.Offset(y0=2.0))
    assert [c.name or c.definition.name for c in m.components] == ["g", "Offset"]


def test_unknown_parameter_in_expression():
    m = gm.Model()
    m.add(gauss("g"))
    m.add(gauss("h", A="2 * g.A + q.A"))
    with pytest.raises(GirError, match=r"'h\.A'.*'q\.A'"):
        m.graph()
    m = gm.Model()
    m.add(gauss("h", A="2 * nothere"))
    with pytest.raises(GirError, match=r"'h\.A'.*'nothere'"):
        gir.compile(m, target="numpy")


def test_cyclic_expressions():
    m = gm.Model()
    m.add(gauss("a", A="b.A + 1"))
    m.add(gauss("b", A="c.A * 2"))
    m.add(gauss("c", A="a.A"))
    with pytest.raises(GirError, match=r"cyclic.*a\.A.*b\.A.*c\.A"):
        m.graph()
    m = gm.Model()
    m.add(gauss("s", A="s.A + 1"))
    with pytest.raises(GirError, match=r"cyclic.*s\.A"):
        m.graph()


@pytest.mark.parametrize("kind", ["gaussCONV", "expSymCONV", "expDecayCONV", "expRiseCONV", "boxCONV"])
@pytest.mark.parametrize("width", [0.0, -0.2, P(0.0, bounds=(-1, 1)), P(-0.5), math.inf, math.nan])
def test_fixed_kernel_width_not_positive(kind, width):
    m = gm.Model(axes=("time", "energy"))
    m.add(gauss("g"))
    key = gm.REGISTRY[kind].params[0]
    with pytest.raises(GirError, match=rf"g\.x0\.{kind}\.{key}"):
        m.dynamics("g.x0", [gm.stepFun(A=1.0, t0=0.0)], irf=gm.REGISTRY[kind](**{key: width}))
    assert not m.dynamics_of


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_free_kernel_width_not_positive_at_call(target):
    require_target(target)
    m = gm.Model(axes=("time", "energy"))
    m.add(gauss("g"))
    m.dynamics("g.x0", [gm.stepFun(A=P(1.0), t0=0.0)], irf=gm.boxCONV(width=P(0.3, bounds=(-1, 1))))
    exe = gir.compile(m, target=target)
    i = exe.param_names.index("g.x0.boxCONV.width")
    assert exe(None, energy=E, time=T).shape == (T.size, E.size)
    for bad in (0.0, -0.3):
        theta = exe.theta0.copy()
        theta[i] = bad
        with pytest.raises(InputError, match=r"g\.x0\.boxCONV\.width"):
            exe(theta, energy=E, time=T)
        with pytest.raises(InputError, match=r"g\.x0\.boxCONV\.width"):
            exe.components(theta, energy=E, time=T)
        with pytest.raises(InputError, match=r"g\.x0\.boxCONV\.width"):
            exe.batch(np.stack([exe.theta0, theta]), energy=E, time=T)
    theta = exe.theta0.copy()
    theta[i] = math.nan
    with pytest.raises(InputError, match=r"g\.x0\.boxCONV\.width"):
        exe(theta, energy=E, time=T)


def test_fixed_at_compile_time():
    m = shirley_model(False)
    m.dynamics("p2.x0", [gm.stepFun(A=P(0.2), t0=0.0)], irf=gm.gaussCONV(SD=P(0.2)))
    full = gir.compile(m, target="numpy")
    part = gir.compile(m, target="numpy", fixed={"p1.A": 2.5, "p2.x0.gaussCONV.SD": 0.3})
    assert set(full.param_names) - set(part.param_names) == {"p1.A", "p2.x0.gaussCONV.SD"}
    values = dict(zip(full.param_names, full.theta0, strict=True))
    values.update({"p1.A": 2.5, "p2.x0.gaussCONV.SD": 0.3})
    assert_rel(part(None, energy=E, time=T), full(theta_of(full, values), energy=E, time=T), rtol=1e-14)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(GirError, match=r"p2\.x0\.gaussCONV\.SD"):
            gir.compile(m, target="numpy", fixed={"p2.x0.gaussCONV.SD": bad})


def test_kernel_width_expression_must_not_vary_in_time():
    m = gm.Model(axes=("time", "energy"))
    m.add(gauss("g", SD=P(1.0)))
    m.dynamics("g.x0", [gm.stepFun(A=1.0, t0=0.0)], irf=gm.gaussCONV(SD="g.SD"))
    assert m.graph() is not None  # a scalar expression is a valid width
    m.dynamics("g.SD", [gm.stepFun(A=0.1, t0=0.0)])
    with pytest.raises(GirError, match=r"g\.x0\.gaussCONV\.SD"):
        m.graph()


def test_dynamics_errors():
    m = gm.Model(axes=("time", "energy"))
    m.add(gauss("g"))
    m.add(gauss("h", x0="g.x0 + 1"))
    with pytest.raises(GirError, match=r"'h\.x0'.*expression"):
        m.dynamics("h.x0", [gm.stepFun(A=1.0, t0=0.0)])
    with pytest.raises(GirError, match=r"'g\.nope'"):
        m.dynamics("g.nope", [gm.stepFun(A=1.0, t0=0.0)])
    with pytest.raises(GirError, match=r"g\.x0"):
        m.dynamics("g.x0", [gm.pLinear(m=1.0, b=0.0)])  # not a time function
    with pytest.raises(GirError, match=r"g\.x0"):
        m.dynamics("g.x0", [gm.stepFun(A=1.0, t0=0.0)], irf=gm.expFun(A=1.0, tau=1.0, t0=0.0))
    with pytest.raises(GirError, match=r"g\.x0"):
        m.dynamics("g.x0", [gm.stepFun(A=1.0, t0=0.0)], frequency=P(1.0))  # needs per-subcycle lists
    with pytest.raises(GirError, match=r"g\.x0\.stepFun\.A"):
        m.dynamics("g.x0", [gm.stepFun(A="1 +* 2", t0=0.0)])
    assert not m.dynamics_of  # failed calls leave the model unchanged
    m.dynamics("g.x0", [gm.stepFun(A=1.0, t0=0.0)])
    with pytest.raises(GirError, match=r"'g\.x0'.*already"):
        m.dynamics("g.x0", [gm.stepFun(A=1.0, t0=0.0)])
    one_d = gm.Model()
    one_d.add(gauss("g"))
    with pytest.raises(GirError, match=r"'g\.x0'.*time axis"):
        one_d.dynamics("g.x0", [gm.stepFun(A=1.0, t0=0.0)])


def test_term_name_and_convolution_errors():
    m = gm.Model(axes=("time", "energy"))
    m.add(gauss("g"))
    twice = [gm.expFun(A=1.0, tau=1.0, t0=0.0), gm.expFun(A=1.0, tau=2.0, t0=0.0)]
    with pytest.raises(GirError, match=r"g\.x0.*'expFun_2'"):
        m.dynamics("g.x0", [*twice, gm.expFun("expFun_2", A=1.0, tau=1.0, t0=0.0)])
    m.dynamics("g.x0", [*twice, gm.expFun("slow", A=1.0, tau=9.0, t0=0.0)])
    assert {"g.x0.expFun_2.tau", "g.x0.slow.tau"} <= set(m.parameters())
    lin = gm.pLinear(m=1.0, b=0.0)
    with pytest.raises(GirError, match=r"g\.A.*'pLinear_2'"):
        m.profile("g.A", [lin, lin, gm.pLinear("pLinear_2", m=1.0, b=0.0)])
    assert not m.profiles
    # a convolved parameter inside another convolved trace
    m = gm.Model(axes=("time", "energy"))
    m.add(gauss("g", A=P(1.0)))
    m.dynamics("g.x0", [gm.stepFun(A=P(1.0), t0=0.0)], irf=gm.gaussCONV(SD=0.1))
    m.dynamics("g.A", [gm.stepFun(A="g.x0", t0=0.0)], irf=gm.gaussCONV(SD=0.1))
    with pytest.raises(GirError, match=r"'g\.x0'.*convolved"):
        m.graph()


def test_profile_errors():
    m = gm.Model()
    m.add(gauss("g"))
    m.add(gauss("h", A="g.A"))
    with pytest.raises(GirError, match=r"'h\.A'.*expression"):
        m.profile("h.A", [gm.pLinear(m=1.0, b=0.0)])
    with pytest.raises(GirError, match=r"g\.A"):
        m.profile("g.A", [gm.stepFun(A=1.0, t0=0.0)])
    with pytest.raises(GirError, match=r"weights"):
        m.profile("g.A", [gm.pLinear(m=1.0, b=0.0)], weights="simpson")
    with pytest.raises(GirError, match=r"'energy'"):
        m.profile("g.A", [gm.pLinear(m=1.0, b=0.0)], axis="energy")
    m.profile("g.A", [gm.pLinear(m=1.0, b=0.0)], axis="depth")
    with pytest.raises(GirError, match=r"'g\.SD'.*'depth'.*'mean'"):
        m.profile("g.SD", [gm.pLinear(m=1.0, b=0.0)], axis="depth", weights="trapezoid")
    m.profile("g.SD", [gm.pLinear(m=0.1, b=0.0)], axis="depth")  # same weighting: fine


def test_bad_component_arguments():
    with pytest.raises(GirError, match=r"Gauss.*'sigma'"):
        gm.Gauss("g", A=1.0, x0=0.0, sigma=1.0)
    with pytest.raises(GirError, match=r"Gauss 'g'.*'SD'"):
        gm.Gauss("g", A=1.0, x0=0.0)
    with pytest.raises(GirError, match=r"Gauss\.SD"):
        gm.Gauss("g", A=1.0, x0=0.0, SD=[1.0])
    with pytest.raises(GirError, match=r"Gauss\.SD"):
        gm.Gauss("g", A=1.0, x0=0.0, SD=True)
    with pytest.raises(GirError, match=r"Gauss"):
        gm.Gauss("g", A=1.0, x0=0.0, SD=1.0, signal=["p1"])
    with pytest.raises(GirError, match=r"empty"):
        P(2.0, bounds=(1, 0))
    m = gm.Model()
    with pytest.raises(GirError, match=r"'g\.A'"):
        m.add(gauss("g", A="1 +* 2"))
    assert m.components == []  # a failed add leaves the model unchanged
    with pytest.raises(GirError, match=r"'1g'"):
        m.add(gauss("1g"))
    with pytest.raises(GirError, match=r"'energy'.*axis"):
        m.add(gauss("energy"))
    two_d = gm.Model(axes=("time", "energy"))
    with pytest.raises(GirError, match=r"'time'.*axis"):  # its b would clash with the time axis' inputs
        two_d.add(gm.LinBack("time", m=0.1, b=0.5, xStart=0.0, xStop=1.0))
    with pytest.raises(GirError, match=r"expFun"):
        m.add(gm.expFun(A=1.0, tau=1.0, t0=0.0))
    m.add(gauss("g"))
    m.add(gm.Shirley(pShirley=0.1, signal=["g", "nope"]))
    with pytest.raises(GirError, match=r"Shirley.*'nope'"):
        m.graph()


def test_empty_model_and_bad_axes():
    with pytest.raises(GirError, match="no components"):
        gm.Model().graph()
    with pytest.raises(GirError, match="axes"):
        gm.Model(axes=("a", "b", "c"))


def test_unknown_component_type_in_from_dict():
    d = shirley_model(True).to_dict()
    d["components"][1]["type"] = "Gaussian"
    with pytest.raises(GirError, match="'Gaussian'"):
        gm.Model.from_dict(d)
    d = shirley_model(True).to_dict()
    d["dynamics"][0]["terms"][0]["type"] = "expFunction"
    with pytest.raises(GirError, match="'expFunction'"):
        gm.Model.from_dict(d)


# -- 7. serialization --------------------------------------------------------------------


def test_dict_round_trip(tmp_path):
    m = full_model()
    d = m.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON
    again = gm.Model.from_dict(d)
    assert again.to_dict() == d
    assert again.parameters().keys() == m.parameters().keys()
    assert {d["target"] for d in d["dynamics"]} == {"p1.x0", "p4.A", "LinBack.b"}
    assert any("subcycles" in x and "irf" in x and x["terms"] for x in d["dynamics"])
    assert [p["weights"] for p in d["profiles"]] == ["mean", "trapezoid"]
    a, b = (gir.compile(x, target="numpy") for x in (m, again))
    assert a.param_names == b.param_names and np.array_equal(a.theta0, b.theta0)
    np.testing.assert_array_equal(a.bounds[0], b.bounds[0])
    np.testing.assert_array_equal(a.bounds[1], b.bounds[1])
    np.testing.assert_array_equal(call_full(a), call_full(b))
    path = tmp_path / "model.json"
    m.save(path)
    loaded = gm.Model.load(path)
    assert loaded.to_dict() == d
    np.testing.assert_array_equal(call_full(gir.compile(loaded, target="numpy")), call_full(a))


def test_round_trip_keeps_param_details():
    m = gm.Model()
    m.add(gm.Gauss("g", A=P(1.0, vary=False, bounds=(0, None)), x0=P(0.5, bounds=(-1, 1)), SD=2))
    m.add(gm.Shirley("sh", pShirley=P(0.1), signal="g"))
    d = m.to_dict()
    again = gm.Model.from_dict(json.loads(json.dumps(d)))
    g = again.components[0]
    assert g.params["A"] == P(1.0, vary=False, bounds=(0, math.inf))
    assert g.params["x0"] == P(0.5, bounds=(-1, 1)) and g.params["SD"] == 2
    assert again.components[1].signal == ("g",)
    assert list(again.free_parameters()) == ["g.x0", "sh.pShirley"]


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_executable_pickles(target):
    exe = full_exe(target)
    again = pickle.loads(pickle.dumps(exe))
    assert again.param_names == exe.param_names and again.target == exe.target
    np.testing.assert_array_equal(again.theta0, exe.theta0)
    theta = thetas_around(exe, 1)[0]
    assert_rel(call_full(again, theta), call_full(exe, theta), rtol=1e-15)


# -- 8. components and batches -----------------------------------------------------------


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_components_sum_to_total(target):
    exe = full_exe(target)
    theta = thetas_around(exe, 1, seed=3)[0]
    kw = dict(energy=E, time=T, depth=DEPTH, fluence=FLUENCE)
    parts = exe.components(theta, **kw)
    assert list(parts) == [c.name or c.definition.name for c in exe.binding.model.components]
    assert all(v.shape == (T.size, E.size) for v in parts.values())
    assert_rel(sum(parts.values()), exe(theta, **kw), what="sum of components")


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_batch_equals_looped_calls(target):
    exe = full_exe(target)
    thetas = thetas_around(exe, 5, seed=1)
    kw = dict(energy=E, time=T, depth=DEPTH, fluence=FLUENCE)
    out = exe.batch(thetas, **kw)
    assert out.shape == (5, T.size, E.size)
    for i, theta in enumerate(thetas):
        assert_rel(out[i], exe(theta, **kw), what=f"batch row {i}")


@pytest.mark.parametrize("n_batch", [3, 5])
def test_batch_of_a_model_constant_in_time(n_batch):
    """A 2D model with no dynamics evaluates on E only; batches still get the time axis
    (also when the batch size equals the number of time points, T.size == 5 here)."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=P(1.0), x0=P(0.0), SD=1.0))
    m.add(gm.Offset(y0=P(0.5)))
    m.profile("g.A", [gm.pLinear(m=P(1.0), b=0.0)], axis="depth")
    exe = gir.compile(m, target="numpy")
    assert exe.graph.outputs[0].type.axes == ("E",)
    x, t, z = np.linspace(-3, 3, 7), np.linspace(0, 1, 5), np.array([0.0, 1.0])
    thetas = np.array([exe.theta0 * (1 + 0.1 * i) for i in range(n_batch)])
    out = exe.batch(thetas, energy=x, time=t, depth=z)
    assert out.shape == (n_batch, t.size, x.size)
    for i, theta in enumerate(thetas):
        np.testing.assert_array_equal(out[i], exe(theta, energy=x, time=t, depth=z))
        assert np.all(out[i] == out[i][0])


def test_fixed_parameters_and_their_expressions_are_constants():
    m = gm.Model()
    m.add(gm.Gauss("g", A=P(1.0), x0=0.0, SD=P(1.0, vary=False)))
    m.add(gm.Gauss("h", A="g.SD * 2 + sqrt(g.x0 + 4)", x0=0.5, SD="g.SD"))
    exe = gir.compile(m, target="numpy")
    assert exe.param_names == ("g.A",)
    assert not any(n.op == "call" for n in exe.graph.nodes)
    consts = [n.attr("value") for n in exe.graph.nodes if n.op == "const"]
    assert 4.0 in consts  # h.A folded
    x = np.linspace(-3, 3, 13)
    assert_rel(exe([2.0], energy=x), ref_peak("Gauss", x, {"A": 2.0, "x0": 0.0, "SD": 1.0})
               + ref_peak("Gauss", x, {"A": 4.0, "x0": 0.5, "SD": 1.0}))  # fmt: skip


def test_parameter_bookkeeping():
    exe = full_exe("numpy")
    m = exe.binding.model
    free = m.free_parameters()
    assert list(exe.param_names) == [n for n in m.parameters() if n in free]
    assert np.array_equal(exe.theta0, [free[n].value for n in exe.param_names])
    lo, hi = exe.bounds
    i = exe.param_names.index("p1.A")
    assert (lo[i], hi[i]) == (0.0, 100.0)
    assert np.isinf(lo[exe.param_names.index("p1.x0")])
    # fixed numbers and expressions are not parameters of the executable
    assert "p1.m" not in exe.param_names and "p2.A" not in exe.param_names
    assert "p4.A.sub2.sinFun.f" in exe.param_names and "p4.A.frequency" in exe.param_names
