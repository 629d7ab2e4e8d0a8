"""``gir.fit.least_squares``: gir's Levenberg-Marquardt (or scipy.optimize.least_squares) with the
analytic Jacobian."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gir.errors import InputError, warn
from gir.fit.problem import Dataset, Problem, build_problem
from gir.fit.result import FitResult, make_result

#: Default solver options (override with the same keywords).
DEFAULTS: dict[str, Any] = {"ftol": 1e-8, "xtol": 1e-8, "gtol": 1e-8, "x_scale": "jac"}
METHODS = ("trf", "dogbox", "lm", "levmar")
#: The options :func:`gir.fit.levmar.levmar` takes (scipy's others, such as ``loss``, are refused).
LEVMAR_OPTIONS = ("ftol", "xtol", "gtol", "max_nfev", "x_scale")


def least_squares(
    exe_or_model: Any,
    data: Any,
    theta0: Any = None,
    bounds: Any = None,
    method: str = "levmar",
    target: str = "auto",
    window: Mapping[str, tuple[float | None, float | None]] | None = None,
    weights: Any = None,
    varpro: bool | Iterable[str] = False,
    *,
    fixed: Mapping[str, float] | None = None,
    window_after: Iterable[str] | None = None,
    jacobian: str = "eager",
    ftol: float | None = None,
    xtol: float | None = None,
    gtol: float | None = None,
    max_nfev: int | None = None,
    x_scale: Any = None,
    options: Mapping[str, Any] | None = None,
    starts: int | None = None,
    refine: int = 4,
    seed: Any = 0,
    spread: float = 0.25,
    **arrays: Any,
) -> FitResult:
    """Fit ``exe_or_model`` to ``data`` by least squares with the analytic Jacobian.

    ``exe_or_model`` is a :class:`gir.Executable`, a compiled model
    (``gir.compile(model)``) or a :class:`gir.models.Model` (compiled for
    ``target``). Arrays (axes) are passed by name: ``energy=E, time=T``.
    The residual is ``weights * (model - data)``; non-finite data points are
    left out.

    - ``theta0``: start values (vector in parameter order, or a mapping of
      some names); default the model's start values. ``bounds``: ``(lo, hi)``
      vectors or a mapping name -> (lo, hi); default the model's bounds.
      ``fixed``: a mapping name -> value of parameters held constant.
    - ``method``: ``"levmar"`` (default: Levenberg-Marquardt on the normal
      equations, with bounds; :mod:`gir.fit.levmar`), or scipy's ``"trf"``,
      ``"dogbox"`` or ``"lm"`` (MINPACK, no bounds: the model's default bounds
      are dropped with a warning).
    - ``window``: axis name -> (lo, hi): fit only that part of the grid. The
      axis arrays are cut before evaluation, except along axes the model
      couples (the time axis of a model with an instrument response, which
      must see the whole time axis): those are evaluated in full and cut
      after. ``window_after`` names such axes explicitly.
    - ``varpro``: solve the parameters the model is jointly linear in by
      linear least squares inside each step (variable projection); ``True``
      finds them with :func:`gir.passes.linearity.linear_parameters`, or give
      the names.
    - ``jacobian``: ``"eager"`` evaluates the model and its Jacobian together
      at every point the optimizer tries (one forward-mode evaluation; the
      Jacobian call is then free); ``"lazy"`` evaluates the value alone and
      the Jacobian only where the optimizer asks for it.
    - ``ftol``, ``xtol``, ``gtol`` (default 1e-8), ``max_nfev``, ``x_scale``
      (default ``"jac"``) go to the solver; ``options`` (more keywords) to
      scipy.optimize.least_squares (``levmar`` takes no others).
    - ``starts``: a global first stage (:mod:`gir.fit.global_stage`; default
      off): that many candidate starts (the start, the rest drawn in a box of
      relative half-width ``spread`` around it and over the whole box of the
      bounds, which must be finite), scored by their cost in one batched
      evaluation; the start and the ``refine - 1`` best others are fitted and
      the best fit returned. ``seed`` seeds the draw (the same candidates for
      the same seed).
    """
    ds = Dataset(
        exe_or_model,
        data,
        arrays=arrays,
        theta0=theta0,
        bounds=bounds,
        weights=weights,
        window=window,
        window_after=window_after,
        target=target,
    )
    scipy_kw = _scipy_options(ftol, xtol, gtol, max_nfev, x_scale, options)
    stage = None
    if starts is not None:
        from gir.fit.global_stage import check_options

        check_options(starts, refine, spread)
        stage = {"starts": starts, "refine": refine, "seed": seed, "spread": spread}
    return fit_datasets(
        [ds], method, varpro, jacobian, scipy_kw, bounds is not None, fixed=fixed, global_stage=stage
    )


def fit_datasets(
    datasets: list[Dataset],
    method: str,
    varpro: Any,
    jacobian: str,
    scipy_options: dict[str, Any],
    explicit_bounds: bool,
    global_stage: Mapping[str, Any] | None = None,
    **problem_options: Any,
) -> FitResult:
    """Prepare ``datasets``, build one problem over them and solve it (setup time measured); with
    ``global_stage`` (keywords of :func:`gir.fit.global_stage.solve_global`) from many starts."""
    t0 = time.perf_counter()
    problem = build_problem([d.prepare() for d in datasets], **problem_options)
    setup = time.perf_counter() - t0
    run = solve
    if global_stage is not None:
        from gir.fit.global_stage import solve_global

        run = functools.partial(solve_global, **global_stage)
    result = run(
        problem,
        method=method,
        varpro=varpro,
        jacobian=jacobian,
        scipy_options=scipy_options,
        setup_time=setup,
        explicit_bounds=explicit_bounds,
    )
    result.warn()
    return result


def _scipy_options(ftol, xtol, gtol, max_nfev, x_scale, options) -> dict[str, Any]:
    kw = dict(DEFAULTS)
    for key, value in (
        ("ftol", ftol),
        ("xtol", xtol),
        ("gtol", gtol),
        ("max_nfev", max_nfev),
        ("x_scale", x_scale),
    ):
        if value is not None:
            kw[key] = value
    kw.update(options or {})
    for key in ("fun", "x0", "jac", "bounds", "method", "args", "kwargs"):
        if key in kw:
            raise InputError(f"option {key!r} is set by gir.fit, not through options")
    return kw


def _bounds_for(problem: Problem, method: str, explicit: bool) -> tuple[np.ndarray, np.ndarray] | None:
    lo, hi = problem.bounds
    finite = np.isfinite(lo).any() or np.isfinite(hi).any()
    if method != "lm":
        return lo, hi
    if finite:
        if explicit:
            raise InputError("method 'lm' does not support bounds; use method='levmar' or 'trf'")
        warn("method 'lm' ignores the model's parameter bounds")
    return None


def _start(problem: Problem, bounds) -> np.ndarray:
    x0 = problem.x0.copy()
    if bounds is not None:
        lo, hi = bounds
        outside = (x0 < lo) | (x0 > hi)
        if outside.any():
            names = [n for n, o in zip(problem.names, outside, strict=True) if o]
            warn(f"start values outside their bounds are clipped: {names}")
            x0 = np.clip(x0, lo, hi)
    return x0


def solve(
    problem: Problem,
    *,
    method: str = "levmar",
    varpro: bool | Iterable[str] = False,
    jacobian: str = "eager",
    scipy_options: Mapping[str, Any] | None = None,
    setup_time: float = 0.0,
    explicit_bounds: bool = False,
    keep_jac: bool = True,
) -> FitResult:
    """Minimize the problem's residual with ``method`` (see :func:`least_squares`), or by variable
    projection."""
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}")
    if jacobian not in ("eager", "lazy"):
        raise InputError(f"jacobian must be 'eager' or 'lazy', got {jacobian!r}")
    scipy_options = dict(DEFAULTS if scipy_options is None else scipy_options)
    bounds = _bounds_for(problem, method, explicit_bounds)
    x0 = _start(problem, bounds)
    if varpro is not False and problem.nfree:
        from gir.fit.varpro import solve_varpro

        return solve_varpro(
            problem,
            x0,
            varpro,
            method=method,
            bounds=bounds,
            scipy_options=scipy_options,
            setup_time=setup_time,
            keep_jac=keep_jac,
        )
    reuse = method == "levmar"  # it takes J^T J at once; scipy's methods keep J across trial steps
    t0 = time.perf_counter()
    if problem.nfree:  # compiles and warms up; the optimizer's first call reuses it
        problem.residual_and_jacobian(x0, reuse=reuse)
    setup_time += time.perf_counter() - t0
    if not problem.nfree:
        return make_result(
            problem,
            x0,
            method=method,
            nfev=1,
            njev=0,
            success=True,
            message="no free parameters",
            status=0,
            wall_time=0.0,
            setup_time=setup_time,
            keep_jac=keep_jac,
        )
    copy = scipy_options.get("loss", "linear") != "linear"  # robust losses scale J in place

    def jac(x):
        j = problem.residual_and_jacobian(x, reuse=reuse)[1]
        return j.copy() if copy else j

    def fun(x):
        if jacobian == "eager":
            return problem.residual_and_jacobian(x, reuse=reuse)[0]
        return problem.residual(x)

    t0 = time.perf_counter()
    out = minimize(fun, x0, jac, method, bounds, scipy_options)
    wall = time.perf_counter() - t0
    return make_result(
        problem,
        out.x,
        method=method,
        nfev=int(out.nfev),
        njev=int(out.njev or 0),
        success=bool(out.success),
        message=str(out.message),
        status=int(out.status),
        wall_time=wall,
        setup_time=setup_time,
        keep_jac=keep_jac,
    )


def minimize(fun, x0: np.ndarray, jac, method: str, bounds, options: Mapping[str, Any]):
    """``0.5 |fun(x)|^2`` minimized by scipy.optimize.least_squares or, for ``"levmar"``, by
    :func:`gir.fit.levmar.levmar`; a scipy OptimizeResult."""
    bounds = (-np.inf, np.inf) if bounds is None else bounds
    if method == "levmar":
        from gir.fit.levmar import levmar

        unknown = sorted(set(options) - set(LEVMAR_OPTIONS))
        if unknown:
            raise InputError(f"method 'levmar' takes the options {list(LEVMAR_OPTIONS)}, not {unknown}")
        return levmar(fun, x0, jac, bounds, **options)
    from scipy.optimize import least_squares as scipy_least_squares

    return scipy_least_squares(fun, x0, jac=jac, method=method, bounds=bounds, **options)
