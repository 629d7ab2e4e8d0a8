"""``gir.fit.least_squares``: gir's Levenberg-Marquardt (or scipy.optimize.least_squares) with the
analytic Jacobian."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gir.errors import InputError
from gir.fit.dataset import Dataset
from gir.fit.global_stage import check_options, solve_global
from gir.fit.maps import fit_map, is_data_array
from gir.fit.problem import Problem, build_problem
from gir.fit.result import FitResult
from gir.fit.solver import DEFAULTS, bounds_for, check_method, solve_local, solver_options, start_point
from gir.fit.varpro import solve_varpro

if TYPE_CHECKING:
    import xarray


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
) -> FitResult | xarray.Dataset:
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

    An ``xarray.DataArray`` ``data`` is a map of spectra: every spectrum is
    fitted and the result is an ``xarray.Dataset`` (:func:`gir.fit.maps.fit_map`,
    which takes more keywords: ``along``, ``progress``, ``client``, ...).
    """
    if is_data_array(data):
        if starts is not None:
            raise InputError("least_squares of a map (a DataArray) has no global stage: leave out starts=")
        kws = {"bounds": bounds, "method": method, "window": window, "varpro": varpro, "fixed": fixed,
               "window_after": window_after, "jacobian": jacobian, "ftol": ftol, "xtol": xtol, "gtol": gtol,
               "max_nfev": max_nfev, "x_scale": x_scale, "options": options}  # fmt: skip
        return fit_map(exe_or_model, data, theta0, weights=weights, target=target, fit_kws=kws, **arrays)
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
    scipy_kw = solver_options(ftol, xtol, gtol, max_nfev, x_scale, options)
    stage = None
    if starts is not None:
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
    quiet: bool = False,
) -> FitResult:
    """Minimize the problem's residual with ``method`` (see :func:`least_squares`), or by variable
    projection; ``quiet`` leaves out the warnings about bounds (a batch's fits in worker threads)."""
    check_method(method, jacobian)
    options = dict(DEFAULTS if scipy_options is None else scipy_options)
    bounds = bounds_for(problem, method, explicit_bounds, quiet)
    x0 = start_point(problem, bounds, quiet)
    if varpro is not False and problem.nfree:
        return solve_varpro(problem, x0, varpro, method=method, bounds=bounds, scipy_options=options,
                            setup_time=setup_time, keep_jac=keep_jac)  # fmt: skip
    return solve_local(problem, x0, bounds, method=method, jacobian=jacobian, options=options,
                       setup_time=setup_time, keep_jac=keep_jac)  # fmt: skip
