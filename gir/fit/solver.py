"""The local solvers behind every fit: their options, start and bounds, and one run of a method on a
:class:`~gir.fit.problem.Problem`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gir.errors import InputError, warn
from gir.fit.problem import Problem
from gir.fit.result import FitResult, make_result

#: Default solver options (override with the same keywords).
DEFAULTS: dict[str, Any] = {"ftol": 1e-8, "xtol": 1e-8, "gtol": 1e-8, "x_scale": "jac"}
METHODS = ("trf", "dogbox", "lm", "levmar")
#: The options :func:`gir.fit.levmar.levmar` takes (scipy's others, such as ``loss``, are refused).
LEVMAR_OPTIONS = ("ftol", "xtol", "gtol", "max_nfev", "x_scale")


def solver_options(
    ftol: float | None = None,
    xtol: float | None = None,
    gtol: float | None = None,
    max_nfev: int | None = None,
    x_scale: Any = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The solver keywords of :func:`gir.fit.least_squares`, ``joint`` and ``batch`` as one mapping
    (defaults :data:`DEFAULTS`; ``options`` adds scipy's other keywords)."""
    kw = dict(DEFAULTS)
    given = {"ftol": ftol, "xtol": xtol, "gtol": gtol, "max_nfev": max_nfev, "x_scale": x_scale}
    kw.update({k: v for k, v in given.items() if v is not None})
    kw.update(options or {})
    for key in ("fun", "x0", "jac", "bounds", "method", "args", "kwargs"):
        if key in kw:
            raise InputError(f"option {key!r} is set by gir.fit, not through options")
    return kw


def check_method(method: str, jacobian: str) -> None:
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if jacobian not in ("eager", "lazy"):
        raise InputError(f"jacobian must be 'eager' or 'lazy', got {jacobian!r}")


def bounds_for(
    problem: Problem, method: str, explicit: bool, quiet: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """The problem's bounds as ``method`` takes them (None for MINPACK's ``lm``, which has none);
    ``quiet`` leaves out the warning that ``lm`` drops the model's bounds."""
    lo, hi = problem.bounds
    finite = np.isfinite(lo).any() or np.isfinite(hi).any()
    if method != "lm":
        return lo, hi
    if finite:
        if explicit:
            raise InputError("method 'lm' does not support bounds; use method='levmar' or 'trf'")
        if not quiet:
            warn("method 'lm' ignores the model's parameter bounds")
    return None


def start_point(problem: Problem, bounds, quiet: bool = False) -> np.ndarray:
    """The problem's start, clipped into ``bounds`` with a warning naming the parameters moved
    (unless ``quiet``)."""
    x0 = problem.x0.copy()
    if bounds is not None:
        lo, hi = bounds
        outside = (x0 < lo) | (x0 > hi)
        if outside.any():
            names = [n for n, o in zip(problem.names, outside, strict=True) if o]
            if not quiet:
                warn(f"start values outside their bounds are clipped: {names}")
            x0 = np.clip(x0, lo, hi)
    return x0


def residual_functions(
    problem: Problem, method: str, jacobian: str, options: Mapping[str, Any]
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The residual and its Jacobian as a solver calls them (value and Jacobian in one evaluation
    with ``jacobian="eager"``; levmar consumes J at once, so it gets the reused buffer)."""
    reuse = method == "levmar"  # it takes J^T J at once; scipy's methods keep J across trial steps
    copy = options.get("loss", "linear") != "linear"  # robust losses scale J in place

    def jac(x):
        j = problem.residual_and_jacobian(x, reuse=reuse)[1]
        return j.copy() if copy else j

    def fun(x):
        if jacobian == "eager":
            return problem.residual_and_jacobian(x, reuse=reuse)[0]
        return problem.residual(x)

    return fun, jac


def normal_functions(
    problem: Problem, jacobian: str
) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
    """The cost and the normal equations of a blocked problem as :func:`gir.fit.levmar.levmar_normal`
    calls them (``"eager"``: each cost evaluation forms the normal equations too, which the call of
    ``normal`` at an accepted point then finds cached; ``"lazy"``: model values alone)."""

    def cost(x: np.ndarray) -> float:
        chisqr = problem.normal_equations(x)[0] if jacobian == "eager" else problem.chisqr(x)
        return 0.5 * chisqr if np.isfinite(chisqr) else np.inf

    def normal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return problem.normal_equations(x)[1:]

    return cost, normal


def warm_up(problem: Problem, x0: np.ndarray, method: str) -> None:
    """One evaluation of the model and its Jacobian at ``x0`` as ``method`` asks for them (it compiles the
    derivative; the optimizer's first call reuses the result)."""
    if method == "levmar" and problem.blocked:
        problem.normal_equations(x0)
    else:
        problem.residual_and_jacobian(x0, reuse=method == "levmar")


def run_local(
    problem: Problem, x0: np.ndarray, method: str, bounds, jacobian: str, options: Mapping[str, Any]
):
    """One run of ``method`` on ``problem`` from ``x0``: on the normal equations formed block by block for
    ``levmar`` on a large problem (:attr:`gir.fit.problem.Problem.blocked`), else on the residual and its
    stacked Jacobian (:func:`minimize`); a scipy OptimizeResult."""
    if method == "levmar" and problem.blocked:
        from gir.fit.levmar import levmar_normal

        cost, normal = normal_functions(problem, jacobian)
        return levmar_normal(cost, normal, x0, _box(bounds), **levmar_options(options))
    fun, jac = residual_functions(problem, method, jacobian, options)
    return minimize(fun, x0, jac, method, bounds, options)


def solve_local(
    problem: Problem,
    x0: np.ndarray,
    bounds,
    *,
    method: str,
    jacobian: str,
    options: Mapping[str, Any],
    setup_time: float = 0.0,
    keep_jac: bool = True,
) -> FitResult:
    """One run of ``method`` from ``x0`` (the first evaluation, which compiles, counted as setup)."""
    t0 = time.perf_counter()
    if problem.nfree:  # compiles and warms up; the optimizer's first call reuses it
        warm_up(problem, x0, method)
    setup_time += time.perf_counter() - t0
    if not problem.nfree:
        return make_result(problem, x0, method=method, nfev=1, njev=0, success=True,
                           message="no free parameters", status=0, wall_time=0.0, setup_time=setup_time,
                           keep_jac=keep_jac)  # fmt: skip
    t0 = time.perf_counter()
    out = run_local(problem, x0, method, bounds, jacobian, options)
    wall = time.perf_counter() - t0
    return make_result(problem, out.x, method=method, nfev=int(out.nfev), njev=int(out.njev or 0),
                       success=bool(out.success), message=str(out.message), status=int(out.status),
                       wall_time=wall, setup_time=setup_time, keep_jac=keep_jac)  # fmt: skip


def minimize(fun, x0: np.ndarray, jac, method: str, bounds, options: Mapping[str, Any]):
    """``0.5 |fun(x)|^2`` minimized by scipy.optimize.least_squares or, for ``"levmar"``, by
    :func:`gir.fit.levmar.levmar`; a scipy OptimizeResult."""
    # scipy.optimize (which levmar uses too) takes ~0.13 s to import: it loads with the first fit
    from scipy.optimize import least_squares as scipy_least_squares

    from gir.fit.levmar import levmar

    bounds = _box(bounds)
    if method == "levmar":
        return levmar(fun, x0, jac, bounds, **levmar_options(options))
    return scipy_least_squares(fun, x0, jac=jac, method=method, bounds=bounds, **options)


def levmar_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as :func:`gir.fit.levmar.levmar` takes them; an InputError names the others."""
    unknown = sorted(set(options) - set(LEVMAR_OPTIONS))
    if unknown:
        raise InputError(f"method 'levmar' takes the options {list(LEVMAR_OPTIONS)}, not {unknown}")
    return dict(options)


def _box(bounds) -> tuple[Any, Any]:
    return (-np.inf, np.inf) if bounds is None else bounds
