"""gm.from_trspecfit: trspecfit's YAML model files as gir models, with trspecfit's parameter names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import gir
import gir.models as gm
from gir.errors import GirError

DATA = Path(__file__).parent / "data" / "trspecfit"
ENERGY = DATA / "models_energy.yaml"
E = np.linspace(78, 92, 60)
T = np.linspace(-2, 12, 40)
Z = np.linspace(0, 6, 7)
P = gm.Param


def same(imported: gm.Model, built: gm.Model, **arrays) -> None:
    """Both models agree at their start values (theta orders differ)."""
    a, b = gir.compile(imported, target="numpy"), gir.compile(built, target="numpy")
    assert len(a.param_names) == len(b.param_names)
    np.testing.assert_allclose(a(a.theta0, **arrays), b(b.theta0, **arrays), rtol=1e-12, atol=1e-12)


def every_kind() -> gm.Model:
    m = gm.Model()
    m.add(gm.Offset("Offset", y0=P(2, bounds=(0, 10))))
    m.add(gm.LinBack("LinBack", m=P(-0.5, vary=False), b=P(1, vary=False), xStart=P(81, vary=False),
                     xStop=P(83, vary=False)))  # fmt: skip
    m.add(gm.Shirley("Shirley", pShirley=P(1e-3, bounds=(1e-9, 1))))
    m.add(
        gm.GLP("GLP_01", A=P(20, bounds=(0, 100)), x0=P(84, bounds=(82, 86)), F=P(1, bounds=(0.5, 3)), m=0.3)
    )
    m.add(gm.GLP("GLP_02", A="3/4*GLP_01.A", x0="GLP_01.x0 + 3.6", F="GLP_01.F", m="GLP_01.m"))
    m.add(gm.Gauss("Gauss_01", A=P(5, bounds=(0, 50)), x0=80, SD=P(0.4)))
    m.add(gm.GaussAsym("GaussAsym_01", A=4, x0=82.5, SD=0.3, ratio=P(1.5, bounds=(1, 3))))
    m.add(gm.Lorentz("Lorentz_01", A=3, x0=85.5, W=0.6))
    m.add(gm.Voigt("Voigt_01", A=P(6, bounds=(0, 20)), x0=86.5, SD=0.3, W=0.2))
    m.add(gm.GLS("GLS_01", A=2, x0=89, F=0.8, m=0.5))
    m.add(gm.DS("DS_01", A=1.5, x0=90, F=0.3, alpha=0.1))
    return m


def test_every_energy_component_and_names():
    m = gm.from_trspecfit(ENERGY, "every_kind")
    same(m, every_kind(), energy=E)
    exe = gir.compile(m, target="numpy")
    assert exe.param_names == ("Offset_y0", "Shirley_pShirley", "GLP_01_A", "GLP_01_x0", "GLP_01_F",
                               "Gauss_01_A", "Gauss_01_SD", "GaussAsym_01_ratio", "Voigt_01_A")  # fmt: skip
    assert m.parameters()["GLP_02.x0"] == "GLP_01_x0 + 3.6"  # trspecfit's names, resolved by alias
    fixed, tied = exe.fixed_and_tied(exe.theta0)
    assert fixed["GLP_01_m"] == 0.3 and tied["GLP_02_x0"] == ("GLP_01_x0 + 3.6", 87.6)
    assert m.canonical("GLP_02_A") == "GLP_02.A"


DYN = [
    {"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml",
     "dynamics_model": ["IRF", "Neg", "Pos", "Nothing"], "frequency": 0.2},
    {"target_model": "2D", "target_parameter": "GLP_01_A_pExpDecay_01_A", "dynamics_yaml": "models_time.yaml",
     "dynamics_model": "MonoExp"},
]  # fmt: skip
PROF = [{"target_parameter": "GLP_01_A", "profile_yaml": "models_profile.yaml", "profile_model": ["Decay"]}]


def two_d() -> gm.Model:
    m = gm.Model(("time", "energy"))
    m.add(gm.Offset("Offset", y0=P(1, vary=False)))
    m.add(gm.GLP("GLP_01", A=P(10, bounds=(0, 100)), x0=P(84, bounds=(82, 86)), F=P(1.2, vary=False),
                 m=P(0.2, vary=False)))  # fmt: skip
    m.add(gm.GLP("GLP_02", A="0.5*GLP_01.A", x0="GLP_01.x0 + 2", F="GLP_01.F", m=P(0.2, vary=False)))
    return m


def test_dynamics_subcycles_irf_profile_equal_hand_built():
    m = gm.from_trspecfit(ENERGY, "2D", time_dependence=DYN, par_profiles=PROF)
    h = two_d()
    h.profile("GLP_01.A", [gm.pExpDecay(A=P(8, bounds=(0, 100)), tau=P(2, vary=False))], axis="aux")
    h.dynamics(
        "GLP_01.x0",
        [[gm.expFun(A=P(-1.5, bounds=(-5, 0)), tau=P(1, bounds=(0.05, 5)), t0=P(0, vary=False))],
         [gm.expFun(A="-GLP_01.x0.sub1.expFun.A", tau=P(1.5, bounds=(0.05, 5)), t0=P(0, vary=False))], []],
        irf=gm.gaussCONV(SD=P(0.3, bounds=(1e-3, 2))), frequency=0.2,
    )  # fmt: skip
    h.dynamics(
        "GLP_01.A.pExpDecay.A", [gm.expFun(A=P(1, bounds=(-5, 5)), tau=P(2, bounds=(0.1, 10)), t0=0.0)]
    )
    same(m, h, energy=E, time=T, aux=Z)
    exe = gir.compile(m, target="numpy")
    assert exe.param_names == (
        "GLP_01_A", "GLP_01_A_pExpDecay_01_A", "GLP_01_A_pExpDecay_01_A_expFun_01_A",
        "GLP_01_A_pExpDecay_01_A_expFun_01_tau", "GLP_01_x0", "GLP_01_x0_gaussCONV_SD",
        "GLP_01_x0_expFun_01_A", "GLP_01_x0_expFun_01_tau", "GLP_01_x0_expFun_02_tau",
    )  # fmt: skip
    assert m.parameters()["GLP_01.x0.sub2.expFun_02.A"] == "-GLP_01_x0_expFun_01_A"  # relative name resolved


@pytest.mark.parametrize("target", ["numba", "numba-parallel", "jax"])
def test_imported_models_compile_on_every_target(target):
    """The 2D import with subcycles, an instrument response and a profile with dynamics, and the energy
    model with every component, agree with the numpy target to 1e-12 at moved parameter values."""
    from available import require_target

    require_target(target)
    cases = [
        (gm.from_trspecfit(ENERGY, "2D", time_dependence=DYN, par_profiles=PROF), {"time": T, "aux": Z}),
        (gm.from_trspecfit(ENERGY, "every_kind"), {}),
    ]
    for m, arrays in cases:
        ref, exe = gir.compile(m, target="numpy"), gir.compile(m, target=target)
        assert exe.param_names == ref.param_names
        theta = ref.theta0 * 1.01
        want = ref(theta, energy=E, **arrays)
        np.testing.assert_allclose(
            exe(theta, energy=E, **arrays), want, rtol=1e-12, atol=1e-12 * abs(want).max()
        )


def test_every_time_function_and_a_chain():
    calls = [
        {"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml", "dynamics_model": "Every"}
    ]
    m = gm.from_trspecfit(ENERGY, "2D", time_dependence=calls)
    h = two_d()
    h.dynamics("GLP_01.x0", [gm.stepFun(A=0.2, t0=0.5), gm.linFun(m=0.05, t0=1.0),
                             gm.sinFun(A=0.1, f=0.5, phi=0.2, t0=0.0), gm.sinDivX(A=0.1, f=0.7, t0=0.5),
                             gm.erfFun(A=0.3, SD=0.4, t0=1.0), gm.sqrtFun(A=0.1, t0=2.0)])  # fmt: skip
    same(m, h, energy=E, time=T)
    calls = [{"target_parameter": "GLP_01_A", "dynamics_yaml": "models_time.yaml", "dynamics_model": "Chain"}]
    try:
        m = gm.from_trspecfit(ENERGY, "2D", time_dependence=calls)
    except GirError as e:
        assert "chain" in str(e)
        return
    h = two_d()
    h.dynamics("GLP_01.A", [gm.expFun(A=P(1), tau=2.0, t0=0.0)],
               irf=[gm.expDecayCONV(tau=0.5), gm.gaussCONV(SD=0.2)])  # fmt: skip
    same(m, h, energy=E, time=T)


def test_aliases_round_trip_and_fit_names():
    m = gm.from_trspecfit(ENERGY, "2D", time_dependence=DYN, par_profiles=PROF)
    back = gm.Model.from_dict(m.to_dict())
    assert back.aliases == m.aliases and back.to_dict() == m.to_dict()
    a, b = gir.compile(m, target="numpy"), gir.compile(back, target="numpy")
    assert a.param_names == b.param_names
    np.testing.assert_array_equal(a(a.theta0, energy=E, time=T, aux=Z), b(b.theta0, energy=E, time=T, aux=Z))

    m = gm.from_trspecfit(ENERGY, "every_kind")
    exe = gir.compile(m, target="numpy")
    data = exe(exe.theta0 * 1.01, energy=E)
    result = gir.fit.least_squares(exe, data, energy=E)
    assert list(result.params) == list(exe.param_names)
    assert "GLP_01_x0" in result.params and "GLP_01.x0" not in result.params


def test_alias_api():
    m = gm.Model()
    m.add(gm.Gauss("p", A=P(1), x0=P(0.0), SD=1.0))
    m.add(gm.Offset("o", y0="2*p_A"))
    m.alias("p.A", "p_A")
    m.alias("p.x0", "pos")
    exe = gir.compile(m, target="numpy")
    assert exe.param_names == ("p_A", "pos")
    assert exe.bounds[0].shape == (2,)
    np.testing.assert_allclose(exe([1.0, 0.0], energy=np.array([0.0])), [3.0])
    with pytest.raises(GirError, match="unknown parameter"):
        m.alias("p.W", "w")
    with pytest.raises(GirError, match="already names"):
        m.alias("o.y0", "pos")
    with pytest.raises(GirError, match="not an identifier"):
        m.alias("o.y0", "o.y")


@pytest.mark.parametrize(
    ("model", "calls", "match"),
    [
        ("background_after_shirley", {}, "backgrounds before it"),
        ("twice_offset", {}, "appears twice"),
        ("bad_list", {}, r"GLP_01, parameter 'A'"),
        ("unknown_reference", {}, "unknown parameter 'GLP_03_A'"),
        ("nope", {}, "no model 'nope'"),
        ("2D", {"time_dependence": [{"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml",
                                     "dynamics_model": "LateKernel"}]}, "list the instrument response first"),
        ("2D", {"time_dependence": [{"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml",
                                     "dynamics_model": ["IRF", "MonoExp"]}]}, "need a frequency"),
        ("2D", {"time_dependence": [{"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml",
                                     "dynamics_model": ["MonoExp", "IRF"], "frequency": 1.0}]},
         "in a subcycle"),
        ("2D", {"time_dependence": [{"target_parameter": "GLP_02_x0", "dynamics_yaml": "models_time.yaml",
                                     "dynamics_model": "MonoExp"}]}, "is an expression"),
        ("2D", {"time_dependence": [{"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml",
                                     "dynamics_model": "MonoExp", "speed": 1}]}, "unknown argument 'speed'"),
        ("2D", {"par_profiles": [{"target_parameter": "GLP_01_A", "profile_yaml": "models_profile.yaml",
                                  "profile_model": "Decay", "target_model": "base"}]}, "target_model 'base'"),
    ],
)  # fmt: skip
def test_clear_errors(model, calls, match):
    with pytest.raises(GirError, match=match) as info:
        gm.from_trspecfit(ENERGY, model, **calls)
    assert "models_" in str(info.value) or "entry" in str(info.value)


def test_yaml_scalars_as_trspecfit_reads_them(tmp_path):
    (tmp_path / "e.yaml").write_text("m:\n  Offset:\n    y0: [1E-3, True, 0, 1.0e+1]\n")
    m = gm.from_trspecfit(tmp_path / "e.yaml", "m")
    assert m.parameters()["Offset.y0"] == P(1e-3, bounds=(0, 10))


EVERY = [{"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml", "dynamics_model": "Every"}]
CHAIN = [{"target_parameter": "GLP_01_A", "dynamics_yaml": "models_time.yaml", "dynamics_model": "Chain"}]
SHAPES = [
    {"target_parameter": "GLP_01_x0", "profile_yaml": "models_profile.yaml", "profile_model": "Gradient"},
    {"target_parameter": "GLP_01_F", "profile_yaml": "models_profile.yaml", "profile_model": "Bump"},
]


@pytest.mark.skipif(importlib.util.find_spec("trspecfit") is None, reason="trspecfit is not installed")
@pytest.mark.parametrize(
    ("model", "calls", "profiles"),
    [("every_kind", [], []), ("2D", DYN, PROF), ("2D", EVERY, []), ("2D", CHAIN, []), ("2D", [], SHAPES)],
    ids=["every_kind", "dynamics_profile", "every_time_function", "kernel_chain", "profiles"],
)
def test_against_trspecfit(model, calls, profiles):  # pragma: no cover - needs trspecfit (Python >= 3.12)
    """gir's import evaluates as trspecfit's own model does, at the same values by trspecfit's names."""
    from trspecfit import File, Project
    from trspecfit.spectra import fit_model_mcp

    project = Project(path=str(DATA), config_file=None)
    project.show_output = 0
    f = File(parent_project=project, energy=E, time=T, aux_axis=Z)
    f.load_model("models_energy.yaml", [model])
    for call in profiles:
        f.add_par_profile(**{"target_model": model, **call})
    for call in calls:
        f.add_time_dependence(**{"target_model": model, **call})
    theirs = f.model_active

    m = gm.from_trspecfit(ENERGY, model, time_dependence=calls, par_profiles=profiles)
    exe = gir.compile(m, target="numpy")
    arrays = {"energy": E} if theirs.dim == 1 else {"energy": E, "time": T}
    if profiles:
        arrays["aux"] = Z
    signs = np.where(np.arange(len(exe.param_names)) % 2 == 0, 1.0, -1.0)
    for theta in (exe.theta0, exe.theta0 * (1 + 0.01 * signs)):
        assert np.all((exe.bounds[0] <= theta) & (theta <= exe.bounds[1]))  # lmfit would clip
        fixed, tied = exe.fixed_and_tied(theta)
        values = {**dict(zip(exe.param_names, theta)), **fixed, **{k: v for k, (_, v) in tied.items()}}
        assert sorted(theirs.parameter_names) == sorted(m.aliases.values())
        # the subcycle frequency is a fixed parameter in gir, a number in trspecfit
        assert all(k.endswith(".frequency") for k in set(values) - set(theirs.parameter_names))
        ref = fit_model_mcp(E, [values[n] for n in theirs.parameter_names], True, theirs, theirs.dim)
        assert ref.shape == ((len(E),) if theirs.dim == 1 else (len(T), len(E)))
        np.testing.assert_allclose(exe(theta, **arrays), ref, rtol=1e-12, atol=0)


PROJECT_ENERGY = """
2D:
    Offset:
        y0: [1, static]
    GLP:
        A: [10, static]
        x0: [84, static]
        F: [1.2, static]
        m: [0.2, False]
"""
PROJECT_TIME = """
MonoExp:
    expFun:
        A: [{A}, file, -10, 10]
        tau: [3, project, {tau_lo}, 20]
        t0: [0, False]
"""
PROJECT_DYN = [
    {"target_parameter": "GLP_01_A", "dynamics_yaml": "models_time.yaml", "dynamics_model": "MonoExp"}
]


def project_file(folder: Path, a: float = 4.0, tau_lo: float = 0.1, level: str = "project") -> gm.Model:
    """One file of a trspecfit project: the shared energy model and a dynamics model of its own."""
    folder.mkdir(exist_ok=True)
    (folder / "models_energy.yaml").write_text(PROJECT_ENERGY)
    (folder / "models_time.yaml").write_text(
        PROJECT_TIME.format(A=a, tau_lo=tau_lo).replace("project", level)
    )
    return gm.from_trspecfit(folder / "models_energy.yaml", "2D", time_dependence=PROJECT_DYN)


def test_vary_levels_are_recorded():
    m = gm.from_trspecfit(ENERGY, "2D", time_dependence=DYN, par_profiles=PROF)
    assert set(m.trspecfit_vary) < set(m.aliases.values())  # trspecfit's names, expressions left out
    assert m.trspecfit_vary["GLP_01_A"] == "file"  # True
    assert m.trspecfit_vary["Offset_y0"] == "static"  # False
    assert m.trspecfit_vary["GLP_01_x0_expFun_01_t0"] == "static"
    assert "GLP_02_A" not in m.trspecfit_vary  # an expression has no level
    free = set(gir.compile(m, target="numpy").param_names)
    assert free == {n for n, level in m.trspecfit_vary.items() if level != "static"}


def test_project_fit_shares_project_parameters(tmp_path):
    """Two files with their own amplitude ("file") and one decay time ("project"): one joint fit."""
    from gir.models.trspecfit import project_shared

    models = [project_file(tmp_path / "a"), project_file(tmp_path / "b")]
    tau, amplitudes = 2.0, {"a": 3.0, "b": -5.0}
    data = {}
    for (label, amplitude), m, seed in zip(amplitudes.items(), models, (1, 2), strict=True):
        truth = {"GLP_01_A_expFun_01_A": amplitude, "GLP_01_A_expFun_01_tau": tau}
        data[label] = m.simulate(truth, noise=0.05, seed=seed, target="numpy", energy=E, time=T)

    shared = project_shared(models)
    assert shared == ("GLP_01_A_expFun_01_tau",)
    datasets = [
        gir.fit.Dataset(m, data[label], label=label, energy=E, time=T, target="numpy")
        for label, m in zip(amplitudes, models, strict=True)
    ]
    r = gir.fit.joint(datasets, shared=shared)
    assert set(r.params) == {"GLP_01_A_expFun_01_tau", "a:GLP_01_A_expFun_01_A", "b:GLP_01_A_expFun_01_A"}
    truths = {
        "GLP_01_A_expFun_01_tau": tau,
        **{f"{k}:GLP_01_A_expFun_01_A": v for k, v in amplitudes.items()},
    }
    for name, truth in truths.items():
        assert abs(r.params[name] - truth) < 4 * r.errors[name], (name, r.params[name], truth)
        assert abs(r.params[name] - truth) < 0.05 * abs(truth)


def test_project_shared_errors(tmp_path):
    from gir.models.trspecfit import project_shared

    a = project_file(tmp_path / "a")
    with pytest.raises(GirError, match=r"'GLP_01_A_expFun_01_tau' has the bounds \[0.1, 20.0\]"):
        project_shared([a, project_file(tmp_path / "b", tau_lo=0.5)])
    with pytest.raises(GirError, match="'project' in model 0 and 'file' in model 1"):
        project_shared([a, project_file(tmp_path / "c", level="file")])
    with pytest.raises(GirError, match=r"model 1 is not an import of gm\.from_trspecfit"):
        project_shared([a, two_d()])
    assert project_shared([a, project_file(tmp_path / "d", a=-2.0)]) == ("GLP_01_A_expFun_01_tau",)
