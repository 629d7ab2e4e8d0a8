"""Levenberg-Marquardt on the normal equations, with box bounds.

For a residual ``r(x)`` with m values and n parameters, a step solves
``(J^T J + lam D^2) h = -J^T r`` (n x n), so an iteration costs one product
``J^T J`` on top of the model and its Jacobian. scipy's ``trf`` and ``lm``
factor the m x n Jacobian itself (an SVD or QR of J at every step), which on
a 212 x 1131 grid takes longer than evaluating the model and its Jacobian.
Squaring J squares its condition number; with the column scaling ``D`` below
that is harmless for fits whose uncertainties mean anything (condition of the
scaled J well below 1e8), and a singular system only raises the damping.

- Scaling: ``D = diag(|J_i|)``, the column norms, never decreasing over the
  iterations (MINPACK), or ``1 / x_scale`` when given.
- Damping: ``lam`` starts at ``damping`` (0.3: a step between Gauss-Newton and
  scaled gradient descent; on the benchmark fits and the tests this took fewer
  evaluations than 1e-3, which starts with nearly a Gauss-Newton step, or than 1
  and more), then follows Nielsen's update from the gain ratio ``rho`` (actual over
  predicted reduction of the cost): accepted steps (``rho > 1e-4``) shrink
  ``lam`` by ``max(1/3, 1 - (2 rho - 1)^3)``, rejected ones grow it by 2, 4, 8, ...
- Bounds: a trial point is projected onto the box; a parameter at a bound
  whose gradient points out of the box is left out of the step (projected
  LM). Converged parameters may sit on a bound (``active_mask``). Where
  ``fun`` raises an InputError at the trial point (a kernel width of 0 on its
  bound: the model is undefined there), the parameters that left the box go
  half the way to their bound, then a quarter, ..., the others solved for
  again with them there (at most :data:`MAX_BACKOFFS` tries); a trial point
  where the residual is not finite, or still undefined, is a rejected step.
- Termination (scipy's meanings): ``gtol`` on the cosine between the
  residual and each free column, ``max |g_i| / (|J_i| |r|)``; ``ftol`` when
  both the actual and the predicted relative reductions of the cost are
  below it on an accepted step; ``xtol`` when every parameter's step is small,
  ``|h_i| <= xtol (xtol + |x_i|)`` (per parameter, not scipy's norm over all, in
  which the parameters of large columns hide the others). A step is only small
  because of heavy damping after rejected trials (a model that is nonlinear
  across the step) as often as because the minimum is near, so both tests
  also need the undamped (Gauss-Newton) step from the current point to pass
  them: its predicted reduction below ``ftol`` of the cost, or its scaled norm
  within ``xtol`` of the scaled norm of ``x``.

The iteration needs the residual only through its cost and the normal
equations: :func:`levmar_normal` takes those two as functions, for residuals
too large to hold with their Jacobian (:meth:`gir.fit.problem.Problem.normal_equations`
forms them block by block); :func:`levmar` forms them from ``fun`` and ``jac``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
from scipy.optimize import OptimizeResult

from gir.errors import InputError
from gir.fit.normal_equations import normal_equations

MESSAGES = {
    0: "the maximum number of function evaluations is exceeded",
    1: "gtol termination condition is satisfied",
    2: "ftol termination condition is satisfied",
    3: "xtol termination condition is satisfied",
    4: "both ftol and xtol termination conditions are satisfied",
}
#: Damping beyond which no step is tried: the step is then below any tolerance.
MAX_DAMPING = 1e300


def levmar(
    fun: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    jac: Callable[[np.ndarray], np.ndarray],
    bounds: tuple[Any, Any] = (-np.inf, np.inf),
    **options: Any,
) -> OptimizeResult:
    """Minimize ``0.5 |fun(x)|^2`` within ``bounds`` (see the module docstring).

    ``fun`` returns the residual (m,), ``jac`` its Jacobian (m, n); ``jac(x)``
    is only called at points where ``fun(x)`` was called just before, and
    neither result is used after the next call of ``fun`` (they may share
    memory). ``options`` are :func:`levmar_normal`'s. The result has
    scipy.optimize.least_squares' fields, less ``fun`` and ``jac``.
    """
    last: list[np.ndarray] = []

    def cost(x: np.ndarray) -> float:
        r = np.asarray(fun(x), dtype=np.float64)
        last[:] = [r]
        return _half_square(r)

    def normal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return normal_equations(jac(x), last[0])

    return levmar_normal(cost, normal, x0, bounds, **options)


def _half_square(r: np.ndarray) -> float:
    """``0.5 |r|^2``, or inf where ``r`` is not finite."""
    return 0.5 * float(r @ r) if np.all(np.isfinite(r)) else np.inf


def levmar_normal(
    cost: Callable[[np.ndarray], float],
    normal: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    x0: np.ndarray,
    bounds: tuple[Any, Any] = (-np.inf, np.inf),
    *,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    max_nfev: int | None = None,
    x_scale: Any = "jac",
    damping: float = 0.3,
) -> OptimizeResult:
    """:func:`levmar` on the normal equations alone, for residuals too large to hold with their Jacobian.

    ``cost(x)`` is ``0.5 |r(x)|^2`` (inf where the residual is not finite; an
    InputError where the model is undefined) and ``normal(x)`` the pair
    ``(J^T J, J^T r)``, only called at the point of the last ``cost`` call.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    n = x.size
    lo, hi = (_per_parameter(b, n, "bounds") for b in bounds)
    if np.any((x < lo) | (x > hi)):
        raise InputError("levmar: the start point lies outside the bounds")
    max_nfev = 100 * n if max_nfev is None else int(max_nfev)
    fixed_scale = not (isinstance(x_scale, str) and x_scale == "jac")
    if fixed_scale:
        scale = _per_parameter(x_scale, n, "x_scale")
        if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
            raise InputError("x_scale must be 'jac' or positive finite numbers")
        d = 1.0 / scale
    cost_x = float(cost(x))
    if not np.isfinite(cost_x):
        raise InputError("levmar: the residual at the start point is not finite")
    nfev = njev = 1
    A, g = _checked(*normal(x))
    col = np.sqrt(np.diag(A))
    if not fixed_scale:
        d = np.where(col > 0, col, 1.0)
    near = _near_minimum(A, g, d, x, lo, hi, cost_x, ftol, xtol)
    lam, nu = damping, 2.0
    status, message = None, None
    while status is None:
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        rnorm = np.sqrt(2.0 * cost_x)
        with np.errstate(divide="ignore", invalid="ignore"):
            cosines = np.abs(g[free]) / (np.where(col[free] > 0, col[free], 1.0) * rnorm)
        if rnorm == 0.0 or not free.any() or np.max(cosines, initial=0.0) <= gtol:
            status = 1
            break
        if nfev >= max_nfev:
            status = 0
            break
        if lam > MAX_DAMPING:
            status, message = 0, "no step reduces the cost (the damping exceeds 1e300)"
            break
        try:
            h, x_new, cost_new, evaluations = _trial(cost, A, g, lam * d**2, free, x, lo, hi, max_nfev - nfev)
        except np.linalg.LinAlgError:
            lam, nu = lam * nu, nu * 2.0
            continue
        nfev += evaluations
        predicted = -float(g @ h + 0.5 * h @ (A @ h))
        actual = cost_x - cost_new
        rho = actual / predicted if predicted > 0 else -1.0
        small_step = bool(np.all(np.abs(h) <= xtol * (xtol + np.abs(x))))
        if rho > 1e-4:
            small_f = actual < ftol * cost_x and predicted < ftol * cost_x
            x, cost_x = x_new, cost_new
            njev += 1
            A, g = _checked(*normal(x))
            col = np.sqrt(np.diag(A))
            if not fixed_scale:
                d = np.maximum(d, col)
            lam = max(lam * max(1.0 / 3.0, 1.0 - (2.0 * min(rho, 1.0) - 1.0) ** 3), 1e-300)
            nu = 2.0
            near = _near_minimum(A, g, d, x, lo, hi, cost_x, ftol, xtol)
            small_f, small_step = small_f and near[0], small_step and near[1]
            if small_f:
                status = 4 if small_step else 2
        else:
            lam, nu = lam * nu, nu * 2.0
            small_step = small_step and near[1]
        if status is None and small_step:
            status = 3
    active = np.where(x <= lo, -1, np.where(x >= hi, 1, 0))
    held = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
    return OptimizeResult(
        x=x,
        cost=cost_x,
        grad=g,
        optimality=float(np.max(np.abs(g[~held]), initial=0.0)),
        active_mask=active,
        nfev=nfev,
        njev=njev,
        status=status,
        message=message or MESSAGES[status],
        success=status > 0,
    )


#: Times a trial point where the model is undefined is moved back from its bound.
MAX_BACKOFFS = 8


def _trial(cost, A, g, damping, free, x, lo, hi, budget: int):
    """The damped step from ``x`` and the cost at its end: ``(h, x_new, cost_new, evaluations)``.

    Parameters whose step leaves the box go to their bound. Where ``cost`` raises
    an InputError there (the model undefined on the bound), every parameter
    that left the box goes half the way, then a quarter, ..., the others
    solved for again with them there; after :data:`MAX_BACKOFFS` tries, or the
    evaluation budget, the residual is inf (a rejected step).
    """
    h = _step(A, g, damping, free)
    out, move = np.zeros_like(free), np.zeros_like(x)
    x_new, evaluations = x, 0
    while evaluations < min(MAX_BACKOFFS, budget):
        if evaluations:  # half as far toward the bound as the last try; the others solved for again
            move = np.where(out, 0.5 * move, 0.0)
            try:
                h = _step(A, g, damping, free & ~out, move)
            except np.linalg.LinAlgError:
                break
        leaving = free & ~out & ((x + h < lo) | (x + h > hi))
        move = np.where(leaving, np.clip(x + h, lo, hi) - x, move)
        out |= leaving
        x_new = np.clip(x + h, lo, hi)
        evaluations += 1
        try:
            return x_new - x, x_new, float(cost(x_new)), evaluations
        except InputError:  # the model is undefined there (a width on its bound of 0)
            if not out.any():
                break
    return x_new - x, x_new, np.inf, evaluations


def _step(A, g, damping, free, fixed=None) -> np.ndarray:
    """The damped step ``(A + diag(damping)) h = -g`` over the ``free`` parameters; the others move
    by ``fixed`` (default 0)."""
    h = np.zeros(len(g)) if fixed is None else fixed.copy()
    rhs = -(g + A @ h)[free]
    factor = scipy.linalg.cho_factor(A[np.ix_(free, free)] + np.diag(damping[free]), check_finite=False)
    h[free] = scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    return h


def _near_minimum(A, g, d, x, lo, hi, cost: float, ftol: float, xtol: float) -> tuple[bool, bool]:
    """Whether the Gauss-Newton step from ``x`` (of the parameters not held by a bound; minimum
    norm in the scaled variables) predicts a reduction of the cost below ``ftol`` of it, and
    whether it is within ``xtol`` in the scaled norm (scipy's test: per parameter, the
    rounding noise of a zero-residual fit would fail it for a parameter whose value is 0)."""
    free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
    df, gf = d[free], g[free]
    scaled = A[np.ix_(free, free)] / np.outer(df, df)
    try:
        h = np.linalg.solve(scaled, -gf / df) / df
    except np.linalg.LinAlgError:  # singular: the minimum-norm step
        h = np.linalg.lstsq(scaled, -gf / df, rcond=None)[0] / df
    predicted = -0.5 * float(gf @ h)
    small = np.linalg.norm(df * h) <= xtol * (xtol + np.linalg.norm(df * x[free]))
    return predicted <= ftol * cost, bool(small)


def _per_parameter(value: Any, n: int, what: str) -> np.ndarray:
    """A number or n numbers, as n floats."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1 or arr.size not in (1, n):
        raise InputError(f"levmar: {what} needs a number or {n} numbers (one a parameter), got {arr.shape}")
    return np.broadcast_to(arr.reshape(-1), (n,))


def _checked(A: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(J^T J, J^T r)`` as given; an InputError names the columns of J that are not finite (or overflow)."""
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(g))):
        bad = np.flatnonzero(~np.isfinite(np.diag(A)) | ~np.isfinite(g)).tolist()
        raise InputError(f"levmar: the Jacobian is not finite in column(s) {bad}")
    return A, g
