"""Large fits: the normal equations formed block by block (gir.fit.problem), against the stacked Jacobian.

The blocked path must give the stacked path's ``J^T J``, ``J^T r`` and squared
residual to rounding (1e-12 relative), fits identical to 1e-10 in the
parameters, and never hold a residual or Jacobian of the whole grid.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import gir
import gir.fit
import gir.fit.problem as problem_module
from gir import models as gm
from gir.fit.normal_equations import residual_squares
from gir.fit.problem import block_axis, build_problem
from gir.fit.solver import bounds_for, run_local, start_point, warm_up
from tests.available import require_target

P = gm.Param
T = np.linspace(-1.0, 10.0, 40)
E = np.linspace(78.0, 94.0, 240)


def spectro_model(irf: bool = False) -> gm.Model:
    """examples/spectro_2d.py: Offset + Shirley + two GLP peaks (tied), the first peak's position
    oscillating in time; 9 free parameters. With ``irf``, an exponential rise convolved with a
    Gaussian instrument response on the first peak's amplitude instead (10 free parameters)."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(1.0, bounds=(0, 10))))
    m.add(gm.GLP("p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0, bounds=(80, 88)),
                 F=P(1.0, bounds=(0.2, 5)), m=P(0.3, bounds=(0, 1))))  # fmt: skip
    m.add(gm.GLP("p2", A="0.5*p1.A", x0="p1.x0 + 3.65", F="p1.F", m="p1.m"))
    m.add(gm.Shirley(pShirley=P(1e-3, bounds=(0, 0.1))))
    m.dynamics("p1.x0", [gm.sinFun(A=P(0.3, bounds=(0, 2)), f=P(0.4, bounds=(0.05, 2)),
                                   phi=P(0.5, bounds=(-4, 4)), t0=0.0)])  # fmt: skip
    if irf:
        m.dynamics("p1.A", [gm.expFun(A=P(0.8, bounds=(0, 5)), tau=P(1.5, bounds=(0.05, 20)), t0=0.0)],
                   irf=gm.gaussCONV(SD=P(0.3, bounds=(0.05, 2))))  # fmt: skip
    return m


def cumsum_in_time(t, e, A, x0, k, s):
    """A peak decaying in time plus its running sum along time: the graph scans along T."""
    peak = A * np.exp(-((e - x0) ** 2)) * np.exp(-k * t)
    return peak + s * np.cumsum(peak, 0)


_EXES: dict[tuple[str, str], gir.Executable] = {}


def executable(kind: str, target: str = "numpy") -> gir.Executable:
    if (kind, target) not in _EXES:
        if kind == "traced":
            source = gir.trace(cumsum_in_time, t="T", e="E")
        else:
            source = spectro_model(irf=kind == "irf")
        _EXES[kind, target] = gir.compile(source, target=target)
    return _EXES[kind, target]


def noisy_data(exe: gir.Executable, truth: np.ndarray, arrays: dict, seed: int = 1):
    clean = exe(truth, **arrays)
    sigma = 0.05 * np.sqrt(np.abs(clean)) + 0.01
    return clean + np.random.default_rng(seed).normal(0.0, sigma), 1.0 / sigma


def case(kind: str, target: str = "numpy"):
    """(executable, truth, start, arrays) of a test problem."""
    exe = executable(kind, target)
    if kind == "traced":
        truth = np.array([5.0, 85.0, 0.2, 0.01])
        return exe, truth, truth * np.array([0.9, 1.002, 1.2, 1.3]), {"t": T, "e": E}
    truth = exe.theta0.copy()
    start = truth * (1 + 0.1 * np.sin(np.arange(truth.size) * 1.7 + 0.5))
    start[exe.param_names.index("p1.x0")] = truth[exe.param_names.index("p1.x0")] + 0.3
    return exe, truth, start, {"energy": E, "time": T}


@pytest.fixture
def small_blocks(monkeypatch):
    """Every problem blocked, in blocks of about 20 kB (a few rows of the test grid)."""
    monkeypatch.setattr(problem_module, "BLOCK_BYTES", 0)
    monkeypatch.setattr(problem_module, "BLOCK_TARGET", 20_000)


def stacked_reference(problem, x):
    """(|r|^2, J^T J, J^T r) from the stacked residual and Jacobian."""
    r, jac = problem.residual_and_jacobian(x)
    return float(r @ r), jac.T @ jac, jac.T @ r


def assert_same_normal_equations(problem, x):
    chisqr, a, g = problem.normal_equations(x)
    ref_chisqr, ref_a, ref_g = stacked_reference(problem, x)
    assert chisqr == pytest.approx(ref_chisqr, rel=1e-12)
    scale = np.sqrt(np.outer(np.diag(ref_a), np.diag(ref_a)))
    np.testing.assert_array_less(np.abs(a - ref_a), 1e-12 * scale + 1e-300)
    np.testing.assert_array_less(np.abs(g - ref_g), 1e-12 * np.sqrt(np.diag(ref_a) * ref_chisqr) + 1e-300)


@pytest.mark.parametrize(
    "kind, window, dim",
    [
        ("spectro", None, 0),  # Shirley: a running sum along energy, blocks of time rows
        ("irf", None, 0),  # the convolution sums over the source time S, not T: blocks of time rows
        ("traced", None, 1),  # a running sum along time: blocks of energy columns
        ("irf", {"time": (0.0, 6.0)}, None),  # a window cut after evaluation: the whole grid
    ],
    ids=["shirley", "irf", "scan-in-time", "window-after"],
)
def test_normal_equations_match_the_stacked_jacobian(small_blocks, kind, window, dim):
    exe, truth, start, arrays = case(kind)
    data, weights = noisy_data(exe, truth, arrays)
    data[3, 5:9] = np.nan  # left out of the residual
    weights[7, 100] = np.inf
    ds = gir.fit.Dataset(exe, data, theta0=start, weights=weights, window=window, **arrays).prepare()
    problem = build_problem([ds])
    blocks = problem.blocks_of(0)
    assert problem.blocked and blocks.dim == dim
    assert len(blocks.slices) > (1 if dim is not None else 0)
    assert_same_normal_equations(problem, start)
    assert problem.chisqr(start * (1 + 1e-3)) == pytest.approx(
        stacked_reference(problem, start * (1 + 1e-3))[0], rel=1e-12
    )


def test_joint_problem_adds_each_data_set_at_its_columns(small_blocks):
    exe, truth, start, arrays = case("spectro")
    sets = []
    for k, factor in enumerate((1.0, 1.3)):
        data, weights = noisy_data(exe, truth * factor, arrays, seed=k)
        sets.append(gir.fit.Dataset(exe, data, theta0=start, weights=weights, label=f"s{k}", **arrays))
    problem = build_problem([d.prepare() for d in sets], local=["p1.A", "Offset.y0"])
    assert problem.nfree == 11
    assert_same_normal_equations(problem, problem.x0)


def test_gradient_is_the_derivative_of_the_blocked_cost(small_blocks):
    """J^T r against central differences of 0.5 |r|^2 (an independent check of the columns)."""
    exe, truth, start, arrays = case("spectro")
    data, weights = noisy_data(exe, truth, arrays)
    problem = build_problem([gir.fit.Dataset(exe, data, theta0=start, weights=weights, **arrays).prepare()])
    _, _, g = problem.normal_equations(start)
    for j in range(problem.nfree):
        step = 1e-6 * max(abs(start[j]), 1e-3)
        up, down = start.copy(), start.copy()
        up[j] += step
        down[j] -= step
        slope = 0.5 * (problem.chisqr(up) - problem.chisqr(down)) / (2 * step)
        assert g[j] == pytest.approx(slope, rel=1e-5, abs=1e-6 * np.abs(g).max())


@pytest.mark.parametrize(
    "kind, target",
    [("spectro", "numpy"), ("irf", "numpy"), ("traced", "numpy"), ("spectro", "numba"), ("irf", "numba")],
)
@pytest.mark.parametrize("jacobian", ["eager", "lazy"])
def test_blocked_fit_is_the_stacked_fit(monkeypatch, kind, target, jacobian):
    require_target(target)
    exe, truth, start, arrays = case(kind, target)
    data, weights = noisy_data(exe, truth, arrays)
    fits = {}
    for path, limit in (("stacked", float("inf")), ("blocked", 0)):
        monkeypatch.setattr(problem_module, "BLOCK_BYTES", limit)
        monkeypatch.setattr(problem_module, "BLOCK_TARGET", 20_000)
        fits[path] = gir.fit.least_squares(
            exe, data, theta0=start, weights=weights, jacobian=jacobian, **arrays
        )
    stacked, blocked = fits["stacked"], fits["blocked"]
    assert blocked.success and blocked.nfev > 2
    np.testing.assert_allclose(blocked.x, stacked.x, rtol=1e-10, atol=0)
    assert blocked.cost == pytest.approx(stacked.cost, rel=1e-10)
    assert (blocked.nfev, blocked.njev) == (stacked.nfev, stacked.njev)
    assert blocked.evaluations == stacked.evaluations
    np.testing.assert_allclose(blocked.stderr, stacked.stderr, rtol=1e-8)


def test_block_axis_reads_the_op_registry():
    exe = executable("spectro")
    graph = exe.derivative().graph
    assert block_axis(graph, ("T", "E")) == 0  # Shirley scans along E
    assert block_axis(graph, ("E", "T")) == 1
    assert block_axis(graph, ("E",)) is None
    traced = executable("traced").derivative().graph
    assert block_axis(traced, ("T", "E")) == 1  # a cumsum along T

    def both(t, e, s):
        return s * np.cumsum(np.cumsum(t * e, 0), 1)

    assert block_axis(gir.trace(both, t="T", e="E"), ("T", "E")) is None


def test_blocked_residual_forms_no_weighted_data(small_blocks):
    exe, truth, start, arrays = case("spectro")
    data, weights = noisy_data(exe, truth, arrays)
    problem = build_problem([gir.fit.Dataset(exe, data, theta0=start, weights=weights, **arrays).prepare()])
    r = problem.residual(start)
    np.testing.assert_array_equal(r, (weights * exe(start, **arrays) - weights * data).ravel())
    assert "wdata" not in problem.__dict__ and problem._value_cache is None


def test_small_problems_keep_the_stacked_jacobian():
    exe, truth, start, arrays = case("spectro")
    data, _ = noisy_data(exe, truth, arrays)
    problem = build_problem([gir.fit.Dataset(exe, data, theta0=start, **arrays).prepare()])
    assert not problem.blocked  # 9600 points x 9 parameters: 0.7 MB


def test_blocked_fit_holds_no_array_of_the_whole_grid(monkeypatch):
    """NumPy's allocations (tracemalloc) from building the problem to the last iteration: below 3 times
    the data's size when blocked (block buffers and temporaries), above the stacked Jacobian's otherwise."""
    exe, truth, start, _ = case("spectro")
    arrays = {"energy": np.linspace(78.0, 94.0, 600), "time": np.linspace(-1.0, 10.0, 100)}
    data, weights = noisy_data(exe, truth, arrays)
    peaks = {}
    for path, limit in (("stacked", float("inf")), ("blocked", 0)):
        monkeypatch.setattr(problem_module, "BLOCK_BYTES", limit)
        monkeypatch.setattr(problem_module, "BLOCK_TARGET", 2**16)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        ds = gir.fit.Dataset(exe, data, theta0=start, weights=weights, **arrays).prepare()
        problem = build_problem([ds])
        bounds = bounds_for(problem, "levmar", False)
        x0 = start_point(problem, bounds)
        warm_up(problem, x0, "levmar")
        out = run_local(problem, x0, "levmar", bounds, "eager", {"max_nfev": 6})
        peaks[path] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        assert out.nfev >= 3
        if path == "blocked":
            assert "wdata" not in problem.__dict__  # the weighted data is never formed
    assert peaks["blocked"] < 3 * data.nbytes, peaks  # the bound of the large fits (benchmarks)
    assert peaks["stacked"] > 9 * data.nbytes, peaks  # the stacked path: a Jacobian of 9 columns


@pytest.mark.parametrize("weighted", [True, False])
def test_residual_squares_of_a_batch_of_rows(weighted):
    rng = np.random.default_rng(3)
    y, wd = rng.normal(size=(4, 3000)), rng.normal(size=3000)
    w = rng.uniform(0.5, 2.0, 3000) if weighted else None
    r = y * w - wd if weighted else y - wd
    np.testing.assert_allclose(residual_squares(y, w, wd), np.sum(r * r, axis=1), rtol=1e-13)
    y[1, 7] = np.inf
    assert not np.isfinite(residual_squares(y, w, wd)[1])
