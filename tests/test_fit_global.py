"""gir.fit.least_squares(starts=...): the global first stage and the batched residual behind it.

The model is a GLP peak whose position oscillates in time (sinFun): from a
start with the frequency 16 % off, Levenberg-Marquardt alone stops in a local
minimum (the amplitude shrinks towards 0); the global stage finds the truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from available import require_target

import gir
import gir.fit
from gir import models as gm
from gir.errors import InputError
from gir.fit.dataset import Dataset
from gir.fit.global_stage import candidates, pick
from gir.fit.problem import build_problem

P = gm.Param
E = np.linspace(80.0, 90.0, 120)
T = np.linspace(-1.0, 10.0, 60)
TRUTH = {"p1.A": 10.0, "p1.x0": 84.0, "p1.x0.sinFun.A": 0.6, "p1.x0.sinFun.f": 0.5}
START = {"p1.A": 11.5, "p1.x0": 83.4, "p1.x0.sinFun.A": 0.5, "p1.x0.sinFun.f": 0.42}


def oscillating(x0_bounds=(80.0, 88.0), irf: bool = False) -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(0.5, bounds=(-5, 5))))
    m.add(gm.GLP("p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0, bounds=x0_bounds), F=1.0, m=0.3))
    m.add(gm.Shirley(pShirley=2e-3))
    m.dynamics(
        "p1.x0",
        [gm.sinFun(A=P(0.6, bounds=(-2, 2)), f=P(0.5, bounds=(0.01, 5)), phi=0.4, t0=0.0)],
        irf=gm.gaussCONV(SD=P(0.3, bounds=(0, 1))) if irf else None,
    )
    return m


_EXES: dict = {}


def compiled(target: str = "numpy", **kw):
    require_target(target)
    key = (target, tuple(sorted(kw.items())))
    if key not in _EXES:
        _EXES[key] = gir.compile(oscillating(**kw), target=target)
    return _EXES[key]


def noiseless(exe) -> np.ndarray:
    theta = np.array([{**TRUTH, "Offset.y0": 0.5}.get(n, v) for n, v in zip(exe.param_names, exe.theta0)])
    return exe(theta, energy=E, time=T)


def test_global_stage_escapes_the_local_minimum_levmar_stops_in():
    exe = compiled()
    data = noiseless(exe)
    plain = gir.fit.least_squares(exe, data, theta0=START, energy=E, time=T)
    assert plain.global_stage is None
    assert plain.cost > 1.0  # a local minimum: the truth has cost 0
    assert abs(plain.params["p1.x0.sinFun.f"] - 0.5) > 0.01
    r = gir.fit.least_squares(exe, data, theta0=START, starts=32, energy=E, time=T)
    assert r.cost < 1e-12
    for name, value in TRUTH.items():
        assert r.params[name] == pytest.approx(value, rel=1e-6)
    g = r.global_stage
    assert g["candidates"] == 32 and g["defined"] == 32 and g["refined"] == 4
    assert 1 <= g["reached"] <= 4 and g["time"] >= 0.0
    assert g["starts"].shape == (4, r.nvarys) and np.all(g["costs"] >= r.cost * (1 - 1e-9))
    assert {n: v for n, v in zip(r.param_names, r.init, strict=True) if n in START} == START  # the user's
    assert r.nfev >= plain.nfev
    assert "global stage: 32 candidates (32 defined)" in r.report()
    assert "reached the best cost" in r.report()


def test_missing_bounds_are_an_input_error_naming_them():
    exe = compiled(x0_bounds=(-np.inf, np.inf))
    data = noiseless(exe)
    with pytest.raises(InputError, match=r"finite lower and upper bounds for \['p1\.x0'\]"):
        gir.fit.least_squares(exe, data, starts=8, energy=E, time=T)
    # bounds given in the call, or the parameter fixed, make it work
    r = gir.fit.least_squares(exe, data, starts=8, bounds={"p1.x0": (80, 88)}, energy=E, time=T)
    assert r.global_stage["candidates"] == 8
    gir.fit.least_squares(exe, data, starts=8, fixed={"p1.x0": 84.0}, energy=E, time=T)
    # without starts, open bounds are fine
    gir.fit.least_squares(exe, data, energy=E, time=T)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"starts": 0}, "starts must be a positive integer"),
        ({"starts": 2.5}, "starts must be a positive integer"),
        ({"starts": 8, "refine": 9}, "refine must be an integer from 1 to starts"),
        ({"starts": 8, "spread": 0.0}, "spread must be a positive number"),
    ],
)
def test_bad_options(kw, match):
    exe = compiled()
    with pytest.raises(InputError, match=match):
        gir.fit.least_squares(exe, noiseless(exe), energy=E, time=T, **kw)


def test_fixed_parameters_are_held_and_never_sampled():
    exe = compiled()
    data = noiseless(exe)
    fixed = {"p1.x0": 84.0, "Offset.y0": 0.5}
    r = gir.fit.least_squares(exe, data, theta0=START, fixed=fixed, starts=16, refine=3, energy=E, time=T)
    assert "p1.x0" not in r.param_names and "Offset.y0" not in r.param_names
    theta = dict(zip(exe.param_names, r.theta, strict=True))
    assert theta["p1.x0"] == 84.0 and theta["Offset.y0"] == 0.5
    assert r.global_stage["starts"].shape == (3, r.nvarys)
    assert r.params["p1.x0.sinFun.f"] == pytest.approx(0.5, rel=1e-6)


def test_seed_reproduces_the_candidates_and_the_fit():
    exe = compiled()
    data = noiseless(exe) + np.random.default_rng(1).normal(0.0, 0.05, (T.size, E.size))
    runs = [
        gir.fit.least_squares(exe, data, theta0=START, starts=16, seed=seed, energy=E, time=T)
        for seed in (7, 7, 8)
    ]
    a, b, c = (r.global_stage for r in runs)
    np.testing.assert_array_equal(a["starts"], b["starts"])
    np.testing.assert_array_equal(runs[0].x, runs[1].x)
    assert not np.array_equal(a["starts"], c["starts"])
    lo, hi = runs[0].bounds
    xs, box = candidates(runs[0].init, lo, hi, 16, 0.25, 7)
    assert xs.shape == (16, 5) and np.all((xs >= lo) & (xs <= hi)) and np.all(box > 0)
    np.testing.assert_array_equal(xs[0], runs[0].init)  # the start is a candidate


def test_pick_takes_the_best_distinct_finite_rows():
    xs = np.array([[0.0], [0.5], [0.501], [0.9], [0.2]])
    costs = np.array([3.0, 1.0, 1.1, 2.0, np.inf])
    assert pick(costs, xs, np.array([1.0]), 2) == [1, 3]  # row 2 is as good as row 1's neighbour
    assert pick(costs, xs, np.array([1.0]), 4) == [1, 3, 0, 2]  # too few distinct ones: taken after all
    assert pick(np.full(3, np.inf), xs[:3], np.array([1.0]), 2) == [0]


@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_batched_residual_equals_the_single_one(target):
    exe = compiled(target, irf=True)  # the time window is cut after the convolution
    data = noiseless(exe)
    data[30, 60] = np.nan  # left out (a mask)
    weights = 1.0 + 0.1 * np.cos(E)[None, :] * np.ones((T.size, 1))
    ds = Dataset(exe, data, energy=E, time=T, weights=weights, window={"energy": (81, 89), "time": (0, 9)})
    problem = build_problem([ds.prepare()], fixed={"p1.A": 10.0})
    assert problem.datasets[0].ev.select is not None and problem.datasets[0].mask is not None
    lo, hi = problem.bounds
    xs = lo + np.random.default_rng(2).uniform(0.1, 0.9, (5, problem.nfree)) * (hi - lo)
    batched = problem.residuals(xs)
    assert batched.shape == (5, problem.n)
    for x, row in zip(xs, batched, strict=True):
        np.testing.assert_allclose(row, problem.residual(x), rtol=1e-12, atol=1e-12)
    costs = problem.costs(xs, max_bytes=1)  # one row per batch
    np.testing.assert_allclose(costs, np.einsum("ij,ij->i", batched, batched), rtol=1e-12)
    np.testing.assert_allclose(problem.costs(xs), costs, rtol=1e-12)
    # undefined (kernel width 0) and non-finite rows score +inf; residuals raises like residual
    sd = problem.names.index("p1.x0.gaussCONV.SD")
    bad = xs[:3].copy()
    bad[1, sd] = 0.0
    bad[2, 0] = np.nan
    scored = problem.costs(bad)
    assert np.isfinite(scored[0]) and scored[1] == np.inf and scored[2] == np.inf
    with pytest.raises(InputError, match="kernel width"):
        problem.residuals(bad[:2])
    with pytest.raises(InputError, match=r"xs must have shape \(B, 5\)"):
        problem.residuals(xs[:, :2])
