"""One executable type for graphs and models; gir.fit on its public API; gir without import cycles."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from available import require_target

import gir
from gir import models as gm
from gir.errors import InputError

ROOT = Path(__file__).resolve().parent.parent / "gir"
E = np.linspace(80.0, 90.0, 60)
T = np.linspace(-1.0, 5.0, 20)


def model() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=gm.Param(0.5, bounds=(0, 5))))
    m.add(gm.GLP("p1", A=gm.Param(10.0, bounds=(0, 100)), x0=gm.Param(84.0), F=1.2, m=0.3))
    m.dynamics("p1.x0", [gm.expFun(A=gm.Param(0.6), tau=gm.Param(1.3, bounds=(0.05, 20)), t0=0.0)],
               irf=gm.gaussCONV(SD=gm.Param(0.2, bounds=(0, 1))))  # fmt: skip
    return m


@pytest.mark.parametrize("target", ["numpy", "numba", "jax"])
def test_graphs_and_models_compile_to_one_executable_type(target):
    require_target(target)
    plain = gir.compile(gir.expr("a * exp(-b * x)", x="E"), target=target)
    exe = gir.compile(model(), target=target)
    assert type(plain) is gir.Executable and type(exe) is gir.Executable
    assert plain.binding is None and plain.theta0 is None and plain.bounds is None
    assert exe.grid == {"time": "T", "energy": "E"}
    y = exe(None, energy=E, time=T)
    assert y.shape == (T.size, E.size)
    np.testing.assert_allclose(y, exe(exe.theta0, energy=E, time=T), rtol=0)
    parts = exe.components(energy=E, time=T)
    np.testing.assert_allclose(sum(parts.values()), y, rtol=1e-12)


def test_model_executable_checks_theta_like_any_executable():
    exe = gir.compile(model(), target="numpy")
    theta = exe.theta0.astype(complex)
    with pytest.raises(InputError, match="real number"):
        exe(theta, energy=E, time=T)
    with pytest.raises(InputError, match=r"parameter 'p1\.A'"):
        exe({**dict(zip(exe.param_names, exe.theta0, strict=True)), "p1.A": "x"}, energy=E, time=T)
    bad = exe.theta0.copy()
    bad[exe.param_names.index("p1.x0.gaussCONV.SD")] = 0.0
    with pytest.raises(InputError, match="kernel width"):
        exe(bad, energy=E, time=T)
    with pytest.raises(InputError, match="kernel width"):
        exe.batch(np.stack([exe.theta0, bad]), energy=E, time=T)


def test_derivative_columns_equal_the_jacobian():
    exe = gir.compile(model(), target="numpy")
    y, jac = exe.value_and_jacobian(energy=E, time=T)
    wrt = ("p1.A", "p1.x0.expFun.tau")
    fwd = exe.derivative(wrt)
    assert exe.derivative(wrt) is fwd  # compiled once
    outs = fwd(exe.theta0, **exe.graph_inputs({"energy": E, "time": T}))
    np.testing.assert_allclose(np.broadcast_to(outs[0], y.shape), y, rtol=1e-13)
    for k, name in enumerate(wrt, 1):
        column = np.broadcast_to(outs[k], y.shape)
        np.testing.assert_allclose(column, jac[..., exe.param_names.index(name)], rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="unknown parameter 'nope'"):
        exe.derivative(["nope"])


def test_model_executable_pickles_with_its_binding():
    exe = gir.compile(model(), target="numpy", fixed={"p1.x0.gaussCONV.SD": 0.25})
    back = pickle.loads(pickle.dumps(exe))
    assert type(back) is gir.Executable and back.param_names == exe.param_names
    assert back.fixed == {"p1.x0.gaussCONV.SD": 0.25}
    np.testing.assert_array_equal(back.theta0, exe.theta0)
    np.testing.assert_allclose(back(energy=E, time=T), exe(energy=E, time=T), rtol=0)
    fixed, tied = back.fixed_and_tied()
    assert fixed["p1.x0.gaussCONV.SD"] == 0.25 and tied == {}


def test_fit_uses_only_the_public_executable_api():
    names = r"_kwargs|_scipy_options|_start_and_bounds|is_model_executable|_kernels|_kernel_expressions"
    private = re.compile(rf"(?<!\w)({names})\b|\._artifact")
    for path in (ROOT / "fit").rglob("*.py"):
        if path.name in ("numba_driver.py", "jax_solver.py"):
            continue  # the compiled batch solver's drivers call the backends' kernels directly
        hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
        assert not hits, f"{path.name} lines {hits}"


def _module_imports() -> nx.DiGraph:
    """Module-level imports between gir's modules (not those under ``if TYPE_CHECKING``)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    g = nx.DiGraph()
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            found = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                         for a in node.names]  # fmt: skip
            g.add_edges_from((name, t) for t in found if t in modules and t != name)
    return g


def test_gir_has_one_known_import_cycle_at_most():
    """The tracer and its lowering rules call each other (a tracer's operators lower through the
    rules, which build tracers); no other module imports back into its importers."""
    cycles = [sorted(c) for c in nx.simple_cycles(_module_imports())]
    assert cycles in ([], [["gir.frontend.lowering", "gir.frontend.tracer"]]), cycles


def test_vjp_of_a_model_takes_cotangents_on_its_grid():
    """A 2D model whose output does not vary in time: the gradient sums the cotangent over time."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.GLP("p1", A=gm.Param(10.0, bounds=(0, 100)), x0=gm.Param(84.0), F=1.0, m=0.3))
    exe = gir.compile(m, target="numpy")
    assert exe.graph.outputs[0].type.axes == ("E",)
    cotangent = np.random.default_rng(0).normal(size=(T.size, E.size))
    jac = exe.jacobian(energy=E, time=T)
    want = np.einsum("te,tep->p", cotangent, jac)
    np.testing.assert_allclose(exe.vjp(None, cotangent, energy=E, time=T), want, rtol=1e-12)


def test_a_ragged_theta_mapping_names_the_parameter():
    exe = gir.compile(model(), target="numpy")
    thetas = {n: np.full(2, v) for n, v in zip(exe.param_names, exe.theta0, strict=True)}
    thetas["p1.A"] = np.full(3, 10.0)
    with pytest.raises(InputError, match=r"'p1\.A' has shape \(3,\)"):
        exe.batch(thetas, energy=E, time=T)
