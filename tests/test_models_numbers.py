"""gir.models: numbers as users write them (ints, NumPy scalars, 0-d arrays) and start values
outside their bounds (clipped with one warning naming the parameter)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from available import require_target

import gir
from gir import models as gm
from gir.errors import GirError

E = np.linspace(80.0, 88.0, 161)
T = np.linspace(-1.0, 4.0, 21)


def glp_model(A, x0, F, m, y0) -> gm.Model:
    model = gm.Model()
    model.add(gm.GLP("p1", A=A, x0=x0, F=F, m=m))
    model.add(gm.Offset(y0=y0))
    return model


@pytest.mark.parametrize("target", ["numpy", "numba", "numba-parallel", "jax"])
def test_int_parameters_compile_like_floats(target):
    require_target(target)
    ints = glp_model(300, 84, 1, 0, gm.Param(1, bounds=(0, 10)))
    floats = glp_model(300.0, 84.0, 1.0, 0.0, gm.Param(1.0, bounds=(0.0, 10.0)))
    exe_int, exe_float = gir.compile(ints, target=target), gir.compile(floats, target=target)
    assert exe_int.param_names == exe_float.param_names == ("Offset.y0",)
    want = exe_float(exe_float.theta0, energy=E)
    np.testing.assert_array_equal(exe_int(exe_int.theta0, energy=E), want)
    assert want[80] == 301.0  # E[80] = 84: the peak's height plus the offset


def test_numpy_scalars_and_0d_arrays_are_floats():
    c = gm.GLP("p1", A=np.int64(300), x0=np.float32(84.5), F=np.array(1), m=np.array(0.25))
    assert c.params == {"A": 300.0, "x0": 84.5, "F": 1.0, "m": 0.25}
    assert all(type(v) is float for v in c.params.values())
    p = gm.Param(np.int32(3), bounds=(np.uint8(0), np.array(10.0)))
    assert (p.value, p.bounds) == (3.0, (0.0, 10.0))
    assert type(p.value) is float and all(type(b) is float for b in p.bounds)
    assert gm.Param(2, bounds=(None, 5)).bounds == (-np.inf, 5.0)
    # strings stay expressions
    assert gm.Offset(y0="p1.A / 300").params == {"y0": "p1.A / 300"}


def test_bools_are_rejected_clearly():
    with pytest.raises(GirError, match=r"GLP\.F of 'p1': True is a bool, not a number"):
        gm.GLP("p1", A=300, x0=84, F=True, m=0)
    with pytest.raises(GirError, match=r"Offset\.y0: .*bool"):
        gm.Offset(y0=np.bool_(False))
    with pytest.raises(GirError, match=r"Param value: True is a bool"):
        gm.Param(True)
    with pytest.raises(GirError, match=r"Param lower bound: False is a bool"):
        gm.Param(1.0, bounds=(False, 2.0))


def test_complex_non_finite_and_non_numbers_name_the_parameter():
    with pytest.raises(GirError, match=r"Gauss\.A of 'g': 1j is complex"):
        gm.Gauss("g", A=1j, x0=0, SD=1)
    m = gm.Model()
    with pytest.raises(GirError, match=r"parameter 'Gauss\.SD': the fixed value inf is not finite"):
        m.add(gm.Gauss(A=1, x0=0, SD=np.inf))
    with pytest.raises(GirError, match=r"parameter 'g\.x0': the fixed value nan is not finite"):
        m.add(gm.Gauss("g", A=1, x0=np.float32("nan"), SD=1))
    with pytest.raises(GirError, match=r"parameter 'g\.A': the start value nan is not finite"):
        m.add(gm.Gauss("g", A=gm.Param(np.nan), x0=0, SD=1))
    assert m.components == []
    with pytest.raises(GirError, match=r"Gauss\.A: give one number, not an array of shape \(2,\)"):
        gm.Gauss(A=np.ones(2), x0=0, SD=1)
    with pytest.raises(GirError, match=r"Param value: .* is complex"):
        gm.Param(np.complex128(1 + 2j))
    with pytest.raises(GirError, match=r"Param value: '1' is not a number"):
        gm.Param("1")
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=1, x0=0, SD=1))
    with pytest.raises(GirError, match=r"g\.x0\.frequency: True is a bool"):
        m.dynamics("g.x0", [[gm.stepFun(A=1, t0=0)]], frequency=True)
    with pytest.raises(GirError, match=r"parameter 'g\.x0\.frequency': the fixed value inf"):
        m.dynamics("g.x0", [[gm.stepFun(A=1, t0=0)]], frequency=np.inf)
    with pytest.raises(GirError, match=r"parameter 'g\.x0\.sub1\.stepFun\.t0': the fixed value -inf"):
        m.dynamics("g.x0", [[gm.stepFun(A=1, t0=-np.inf)]], frequency=1)
    with pytest.raises(GirError, match=r"parameter 'g\.A\.pLinear\.b': the start value nan"):
        m.profile("g.A", [gm.pLinear(m=1, b=gm.Param(np.nan))])
    assert not m.dynamics_of and not m.profiles


def test_int_dynamics_kernel_and_profile_terms():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=gm.Param(1), x0=84, SD=1))
    m.dynamics("g.x0", [[gm.stepFun(A=1, t0=0)], [gm.linFun(m=1, t0=0)]], frequency=2)
    m.dynamics("g.A", [gm.expFun(A=1, tau=2, t0=0)], irf=gm.gaussCONV(SD=1))
    m.profile("g.SD", [gm.pLinear(m=1, b=0)], axis="depth")
    specs = m.parameters()
    assert specs["g.x0.frequency"] == 2.0 and type(specs["g.x0.frequency"]) is float
    assert all(type(v) is float for v in specs.values() if not isinstance(v, gm.Param))
    exe = gir.compile(m, target="numpy")
    y = exe(exe.theta0, energy=E, time=T, depth=np.linspace(0.0, 1.0, 3))
    assert y.shape == (T.size, E.size) and np.all(np.isfinite(y))


def record(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


def test_start_values_outside_bounds_are_clipped_with_one_warning():
    p = gm.Param(5, bounds=(0, 1))
    assert p.value == 5.0  # a Param does not know its name: it is clipped where it is named
    m = gm.Model(axes=("time", "energy"))
    caught = record(lambda: m.add(gm.GLP("p1", A=p, x0=84, F=1, m=0)))
    assert len(caught) == 1
    (w,) = caught
    assert w.category is RuntimeWarning
    assert str(w.message) == "the start value 5 of 'p1.A' is outside its bounds (0, 1); clipped to 1"
    assert w.filename == __file__  # it points at the user's call
    assert m.parameters()["p1.A"] == gm.Param(1.0, bounds=(0.0, 1.0))
    assert p.value == 5.0  # the user's Param is not changed

    terms = [gm.expFun(A=1, tau=gm.Param(-1, bounds=(0.1, 5)), t0=0)]
    irf = gm.gaussCONV(SD=gm.Param(3, bounds=(0.01, 0.5)))
    caught = record(lambda: m.dynamics("p1.x0", terms, irf=irf))
    assert [str(w.message).split("'")[1] for w in caught] == ["p1.x0.expFun.tau", "p1.x0.gaussCONV.SD"]
    assert all(w.filename == __file__ for w in caught)
    caught = record(
        lambda: m.dynamics("p1.F", [[gm.stepFun(A=1, t0=0)]], frequency=gm.Param(9, bounds=(0, 2)))
    )
    assert [str(w.message).split("'")[1] for w in caught] == ["p1.F.frequency"]
    caught = record(lambda: m.profile("p1.m", [gm.pLinear(m=gm.Param(-2, bounds=(0, 1)), b=0)]))
    assert [str(w.message).split("'")[1] for w in caught] == ["p1.m.pLinear.m"]
    specs = m.parameters()
    assert specs["p1.x0.expFun.tau"].value == 0.1 and specs["p1.x0.gaussCONV.SD"].value == 0.5
    assert specs["p1.F.frequency"].value == 2.0 and specs["p1.m.pLinear.m"].value == 0.0

    exe = gir.compile(m, target="numpy")
    lo, hi = exe.bounds
    assert np.all((lo <= exe.theta0) & (exe.theta0 <= hi))
    assert not record(lambda: gm.Model.from_dict(m.to_dict()))  # clipped once, saved clipped


def test_start_values_inside_bounds_do_not_warn_and_empty_bounds_raise():
    m = gm.Model()
    assert not record(lambda: m.add(gm.Gauss(A=gm.Param(1, bounds=(1, 1)), x0=0, SD=1)))
    with pytest.raises(GirError, match=r"Param bounds \(1\.0, 0\.0\) are empty"):
        gm.Param(0.5, bounds=(1, 0))
    with pytest.raises(GirError, match=r"bounds must be a pair"):
        gm.Param(0.5, bounds=1)
    with pytest.raises(GirError, match=r"are empty"):
        gm.Param(0.5, bounds=(np.nan, 1))


def test_dict_round_trip_keeps_floats():
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.GLP("p1", A=300, x0=np.int64(84), F=gm.Param(1, bounds=(0, 2)), m=0))
    m.dynamics("p1.x0", [gm.expFun(A=1, tau=2, t0=0)], irf=gm.gaussCONV(SD=1))
    data = m.to_dict()
    text = json.dumps(data)
    assert '"A": 300.0' in text and '"x0": 84.0' in text and '"SD": 1.0' in text
    again = gm.Model.from_dict(json.loads(text))
    assert again.to_dict() == data
    for spec in again.parameters().values():
        value = spec.value if isinstance(spec, gm.Param) else spec
        assert type(value) is float
