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
  LM). Converged parameters may sit on a bound (``active_mask``).
- Termination (scipy's meanings): ``gtol`` on the cosine between the
  residual and each free column, ``max |g_i| / (|J_i| |r|)``; ``ftol`` when
  both the actual and the predicted relative reductions of the cost are
  below it on an accepted step; ``xtol`` when every parameter's step is small,
  ``|h_i| <= xtol (xtol + |x_i|)`` (per parameter, not scipy's norm over all, in
  which the parameters of large columns hide the others).
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


def levmar(
    fun: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    jac: Callable[[np.ndarray], np.ndarray],
    bounds: tuple[Any, Any] = (-np.inf, np.inf),
    *,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    max_nfev: int | None = None,
    x_scale: Any = "jac",
    damping: float = 0.3,
) -> OptimizeResult:
    """Minimize ``0.5 |fun(x)|^2`` within ``bounds`` (see the module docstring).

    ``fun`` returns the residual (m,), ``jac`` its Jacobian (m, n); ``jac(x)``
    is only called at points where ``fun(x)`` was called just before, and
    neither result is used after the next call of ``fun`` (they may share
    memory). The result has scipy.optimize.least_squares' fields, less ``fun``
    and ``jac``.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    n = x.size
    lo, hi = (np.broadcast_to(np.asarray(b, dtype=np.float64), (n,)) for b in bounds)
    if np.any((x < lo) | (x > hi)):
        raise InputError("levmar: the start point lies outside the bounds")
    max_nfev = 100 * n if max_nfev is None else int(max_nfev)
    fixed_scale = not (isinstance(x_scale, str) and x_scale == "jac")
    if fixed_scale:
        scale = np.broadcast_to(np.asarray(x_scale, dtype=np.float64), (n,))
        if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
            raise InputError("x_scale must be 'jac' or positive finite numbers")
        d = 1.0 / scale
    r = np.asarray(fun(x), dtype=np.float64)
    if not np.all(np.isfinite(r)):
        raise InputError("levmar: the residual at the start point is not finite")
    J = jac(x)
    nfev = njev = 1
    cost = 0.5 * float(r @ r)
    A, g = normal_equations(J, r)
    col = np.sqrt(np.diag(A))
    if not fixed_scale:
        d = np.where(col > 0, col, 1.0)
    lam, nu = damping, 2.0
    status = None
    while status is None:
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        rnorm = np.sqrt(2.0 * cost)
        with np.errstate(divide="ignore", invalid="ignore"):
            cosines = np.abs(g[free]) / (np.where(col[free] > 0, col[free], 1.0) * rnorm)
        if rnorm == 0.0 or not free.any() or np.max(cosines, initial=0.0) <= gtol:
            status = 1
            break
        if nfev >= max_nfev:
            status = 0
            break
        h = np.zeros(n)
        try:
            factor = scipy.linalg.cho_factor(A[np.ix_(free, free)] + lam * np.diag(d[free] ** 2))
            h[free] = scipy.linalg.cho_solve(factor, -g[free])
        except np.linalg.LinAlgError:
            lam, nu = lam * nu, nu * 2.0
            continue
        x_new = np.clip(x + h, lo, hi)
        h = x_new - x
        predicted = -float(g @ h + 0.5 * h @ (A @ h))
        r_new = np.asarray(fun(x_new), dtype=np.float64)
        nfev += 1
        cost_new = 0.5 * float(r_new @ r_new) if np.all(np.isfinite(r_new)) else np.inf
        actual = cost - cost_new
        rho = actual / predicted if predicted > 0 else -1.0
        small_step = bool(np.all(np.abs(h) <= xtol * (xtol + np.abs(x))))
        if rho > 1e-4:
            small_f = actual < ftol * cost and predicted < ftol * cost
            x, r, cost = x_new, r_new, cost_new
            J = jac(x)
            njev += 1
            A, g = normal_equations(J, r)
            col = np.sqrt(np.diag(A))
            if not fixed_scale:
                d = np.maximum(d, col)
            lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            nu = 2.0
            if small_f:
                status = 4 if small_step else 2
        else:
            lam, nu = lam * nu, nu * 2.0
        if status is None and small_step:
            status = 3
    active = np.where(x <= lo, -1, np.where(x >= hi, 1, 0))
    return OptimizeResult(
        x=x,
        cost=cost,
        grad=g,
        optimality=float(np.max(np.abs(g[~active.astype(bool)]), initial=0.0)),
        active_mask=active,
        nfev=nfev,
        njev=njev,
        status=status,
        message=MESSAGES[status],
        success=status > 0,
    )
