"""A global first stage for least-squares fits: many candidate starts scored at once, the best few refined.

Levenberg-Marquardt is local: from a start outside the basin of the global
minimum (a frequency off by a few percent, a peak position off by a width) it
stops in a local one. With ``starts=N`` :func:`gir.fit.least_squares`

1. draws ``N - 1`` candidates by Latin hypercube sampling (``scipy.stats.qmc``),
   three quarters of them in a box around the start (half-width ``spread``
   times the smaller of ``|value|`` and the bound width, per parameter: the
   start is usually roughly right) and the rest over the whole box of the
   bounds (for starts that are not); the start itself is one more candidate;
2. scores every candidate by its cost (the sum of squared weighted residuals)
   in one batched evaluation (:meth:`gir.fit.Problem.costs`; +inf where the
   model is undefined);
3. refines the ``refine`` best candidates that are distinct (apart by at
   least a tenth of the local box in some parameter) with the fit's own
   method: each gets :data:`PROBE_NFEV` evaluations first (most fits of the
   benchmark converge within them), then the best one still going continues
   while its cost is below every converged one; the best result is returned.

Measured on a 2D model with an oscillating peak position (a sine's frequency
and amplitude, a peak's position and height free; docs/performance.md), the
lowest-cost candidate lies in the basin of the global minimum in most runs and
one of the best four in nearly all; the start itself, refined when it ranks
among them, reaches it less often than either. ``global_stage`` of the result
records the candidates, the refined starts and how many of them reached the
best cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gir.errors import InputError
from gir.fit.problem import Problem
from gir.fit.result import FitResult, make_result
from gir.fit.solver import (
    DEFAULTS,
    bounds_for,
    check_method,
    run_local,
    solve_local,
    start_point,
    warm_up,
)
from gir.fit.varpro import solve_varpro

#: Fraction of the candidates drawn over the whole box of the bounds (the others around the start).
WIDE = 0.25
#: Refined starts whose cost is within this relative tolerance of the best count as reaching it.
REACHED_RTOL = 1e-6
#: Candidates closer than this fraction of the local box in every parameter are not both refined.
DISTINCT = 0.1
#: Evaluations each refined start gets first; only the best of those still going is fitted to the end.
PROBE_NFEV = 10


def check_options(starts: Any, refine: Any, spread: Any) -> None:
    """Raise an InputError for global-stage options out of range."""
    if isinstance(starts, bool) or not isinstance(starts, int | np.integer) or starts < 1:
        raise InputError(
            f"starts must be a positive integer (the number of candidate starts), got {starts!r}"
        )
    if isinstance(refine, bool) or not isinstance(refine, int | np.integer) or not 1 <= refine <= starts:
        raise InputError(f"refine must be an integer from 1 to starts ({starts}), got {refine!r}")
    if not (isinstance(spread, int | float) and np.isfinite(spread) and spread > 0):
        raise InputError(f"spread must be a positive number (relative half-width), got {spread!r}")


def candidates(
    x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, starts: int, spread: float, seed: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``starts`` candidate rows (the start first, then the local box, then the whole box) and the local
    box's widths."""
    from scipy.stats import qmc

    p = x0.size
    width = hi - lo
    half = spread * np.where(x0 != 0, np.minimum(np.abs(x0), width), width)
    a, b = np.maximum(lo, x0 - half), np.minimum(hi, x0 + half)
    n_wide = round(WIDE * (starts - 1)) if starts > 2 else 0
    n_local = starts - 1 - n_wide
    rng = np.random.default_rng(seed)
    rows = [x0[None, :]]
    for n, (u, v) in ((n_local, (a, b)), (n_wide, (lo, hi))):
        if n:
            unit = qmc.LatinHypercube(d=p, seed=rng).random(n)
            rows.append(u + unit * (v - u))
    return np.clip(np.concatenate(rows), lo, hi), b - a


def pick(costs: np.ndarray, xs: np.ndarray, box: np.ndarray, refine: int) -> list[int]:
    """The ``refine`` lowest-cost rows with a finite cost, skipping rows within :data:`DISTINCT` of the
    local box of one already picked (while enough others remain); the start (row 0) if none is finite."""
    scale = np.where(box > 0, box, 1.0)
    order = [int(i) for i in np.argsort(costs, kind="stable") if np.isfinite(costs[i])]
    if not order:
        return [0]
    chosen = [order[0]]
    skipped = []
    for i in order[1:]:
        if len(chosen) == refine:
            break
        near = any(np.all(np.abs(xs[i] - xs[j]) < DISTINCT * scale) for j in chosen)
        (skipped if near else chosen).append(i)
    chosen += skipped[: refine - len(chosen)]
    return chosen


def _cost(problem: Problem, x: np.ndarray) -> float:
    r = problem.residual(x)
    return 0.5 * float(r @ r)


def _refine(problem: Problem, x0: np.ndarray, method: str, bounds, jacobian: str, options: Mapping[str, Any]):
    """One local fit from ``x0`` with ``method`` (as :func:`gir.fit.solve` runs it); scipy's result."""
    return run_local(problem, x0, method, bounds, jacobian, options)


def solve_global(
    problem: Problem,
    *,
    starts: int,
    refine: int = 4,
    seed: Any = 0,
    spread: float = 0.25,
    method: str = "levmar",
    varpro: bool | Iterable[str] = False,
    jacobian: str = "eager",
    scipy_options: Mapping[str, Any] | None = None,
    setup_time: float = 0.0,
    explicit_bounds: bool = False,
    keep_jac: bool = True,
) -> FitResult:
    """Fit ``problem`` from the best of ``starts`` candidate starts (see the module docstring).

    The other keywords are :func:`gir.fit.solve`'s. ``wall_time`` of the result covers the
    global stage and every refinement; ``nfev`` and ``njev`` add up the refinements'.
    """
    check_options(starts, refine, spread)
    check_method(method, jacobian)
    lo, hi = problem.bounds
    open_ = [
        n for n, a, b in zip(problem.names, lo, hi, strict=True) if not (np.isfinite(a) and np.isfinite(b))
    ]
    if open_:
        raise InputError(
            f"a global stage (starts={starts}) draws candidates within the bounds: give finite lower and "
            f"upper bounds for {open_} (bounds={{name: (lo, hi)}}) or fix them"
        )
    options = dict(DEFAULTS if scipy_options is None else scipy_options)
    bounds = bounds_for(problem, method, explicit_bounds)
    x0 = start_point(problem, (lo, hi))
    if not problem.nfree:
        return solve_local(problem, x0, bounds, method=method, jacobian=jacobian, options=options,
                           setup_time=setup_time, keep_jac=keep_jac)  # fmt: skip
    t0 = time.perf_counter()
    problem.costs(x0[None, :])  # compiles and warms up the batched evaluation
    if varpro is False:
        warm_up(problem, x0, method)
    setup_time += time.perf_counter() - t0

    t0 = time.perf_counter()
    xs, box = candidates(x0, lo, hi, int(starts), float(spread), seed)
    costs = problem.costs(xs)
    chosen = pick(costs, xs, box, int(refine))
    stage_time = time.perf_counter() - t0

    fits = []
    t1 = time.perf_counter()
    if varpro is not False:
        for i in chosen:
            r = solve_varpro(problem, xs[i], varpro, method=method, bounds=bounds, scipy_options=options,
                             keep_jac=keep_jac)  # fmt: skip
            fits.append((r.cost, r.x, r.nfev, r.njev, r))
    else:
        probe = {**options, "max_nfev": min(PROBE_NFEV, options.get("max_nfev") or PROBE_NFEV)}
        for i in chosen:
            out = _refine(problem, xs[i], method, bounds, jacobian, probe)
            fits.append([_cost(problem, out.x), out.x, int(out.nfev), int(out.njev or 0), out])
        while True:  # the best probe that stopped on its budget goes on while it leads the converged ones
            going = [f for f in fits if f[4].status == 0 and np.isfinite(f[0])]
            done = [f[0] for f in fits if f[4].status != 0 and np.isfinite(f[0])]
            if not going:
                break
            f = min(going, key=lambda g: g[0])
            if done and f[0] >= min(done):
                break
            rest = options.get("max_nfev")
            more = dict(options) if rest is None else {**options, "max_nfev": max(1, rest - f[2])}
            out = _refine(problem, f[1], method, bounds, jacobian, more)
            if out.status == 0 and rest is None:  # cannot happen without a budget; guards the loop
                out.status = -2
            f[:] = [_cost(problem, out.x), out.x, f[2] + int(out.nfev), f[3] + int(out.njev or 0), out]
            if rest is not None and f[2] >= rest:
                break
    refine_time = time.perf_counter() - t1
    final = np.array([f[0] for f in fits])
    best = int(np.nanargmin(np.where(np.isfinite(final), final, np.nan))) if np.isfinite(final).any() else 0
    reached = int(np.sum(final <= final[best] * (1 + REACHED_RTOL) + 1e-300))
    info: dict[str, Any] = {
        "candidates": int(xs.shape[0]),
        "defined": int(np.isfinite(costs).sum()),
        "refined": len(chosen),
        "reached": reached,
        "rtol": REACHED_RTOL,
        "time": stage_time,
        "refine_time": refine_time,
        "best_start": int(chosen[best]),
        "starts": xs[chosen],
        "start_costs": 0.5 * costs[chosen],
        "costs": final,
    }
    nfev = sum(f[2] for f in fits)
    njev = sum(f[3] for f in fits)
    wall = stage_time + refine_time
    winner = fits[best][4]
    if isinstance(winner, FitResult):
        winner.nfev, winner.njev, winner.wall_time = nfev, njev, wall
        winner.setup_time += setup_time
        winner.init = x0.copy()
        winner.evaluations = dict(problem.counts)
        winner.global_stage = info
        return winner
    result = make_result(
        problem,
        winner.x,
        method=method,
        nfev=nfev,
        njev=njev,
        success=bool(winner.success),
        message=str(winner.message),
        status=int(winner.status),
        wall_time=wall,
        setup_time=setup_time,
        keep_jac=keep_jac,
    )
    result.init = x0.copy()
    result.global_stage = info
    return result
