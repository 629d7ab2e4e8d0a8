"""Variable projection (VARPRO) with the Kaufman Jacobian.

The model is split into nonlinear parameters ``a`` and parameters ``c`` it is
jointly affine in (found by :func:`gir.passes.linearity.linear_parameters`):
``y(a, c) = y0(a) + Phi(a) c``. For given ``a``, the best ``c*(a)`` solves
the linear least-squares problem ``min |W (Phi c - (d - y0))|``; the outer
optimizer (``levmar`` or scipy's ``trf``/``lm``, on ``a`` only, with ``a``'s
bounds) minimizes the projected residual
``r(a) = W (y(a, c*) - d) = -P_perp W (d - y0)``.

``Phi = dy/dc`` is the forward-mode Jacobian with respect to ``c``: exact and
independent of ``c`` because ``y`` is affine in ``c``, so one evaluation at
``c = 0`` gives both ``y0`` and ``Phi``. The outer Jacobian is Kaufman's
approximation ``P_perp W dy/da`` evaluated at ``(a, c*)``, which gives the
exact gradient of the projected cost.

Bounds of linear parameters: the inner problem is solved without bounds, and
when that solution leaves the bounds, by bounded least squares (BVLS); the
parameters at a bound then stay fixed for the projection, so the Kaufman
Jacobian covers the free ones. A projected solution with a linear parameter
at a bound is a weak point of variable projection (a peak whose best
amplitude is 0 has no gradient in its position: a start with a peak far from
its place can end there), so the problem is then fitted again without
projection, from the start values, and ``result.varpro["fallback"]`` says
so; nfev and the times include both fits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gir.errors import GirError, InputError
from gir.fit.problem import Problem
from gir.fit.result import FitResult, make_result
from gir.fit.solver import minimize, solve_local
from gir.passes.linearity import is_jointly_linear, linear_parameters


def linear_columns(problem: Problem, names: Iterable[str] | None = None) -> list[int]:
    """Global indices of parameters every data set is jointly linear in (all free ones considered).

    With ``names``, those parameters, checked.
    """
    if names is not None:
        names = list(names)
        unknown = [n for n in names if n not in problem.names]
        if unknown:
            raise InputError(f"varpro: {unknown[0]!r} is not a free parameter (free: {list(problem.names)})")
        cols = [problem.names.index(n) for n in names]
        for k, d in enumerate(problem.datasets):
            li, gi = problem.maps[k]
            local = [d.param_names[i] for i, g in zip(li, gi, strict=True) if g in cols]
            if not is_jointly_linear(d.ev.inner.graph, local):
                raise InputError(f"varpro: the model of {d.label!r} is not jointly linear in {local}")
        return sorted(cols)
    cand = set(range(problem.nfree))
    changed = True
    while changed:
        changed = False
        for k, d in enumerate(problem.datasets):
            li, gi = problem.maps[k]
            local = [(d.param_names[i], g) for i, g in zip(li, gi, strict=True) if g in cand]
            keep = set(linear_parameters(d.ev.inner.graph, [n for n, _ in local]))
            for n, g in local:
                if n not in keep:
                    cand.discard(g)
                    changed = True
    return sorted(cand)


def _lstsq(phi: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """min |phi c - b| by pivoted QR: c, and an orthonormal basis of the range of phi."""
    import scipy.linalg

    c = np.zeros(phi.shape[1])
    if phi.shape[1] == 0:
        return c, np.zeros((phi.shape[0], 0))
    q, r, piv = scipy.linalg.qr(phi, mode="economic", pivoting=True, check_finite=False)
    diag = np.abs(np.diag(r))
    tol = max(phi.shape) * np.finfo(float).eps * diag[0]
    rank = int(np.sum(diag > tol))
    if rank:
        c[piv[:rank]] = scipy.linalg.solve_triangular(r[:rank, :rank], q[:, :rank].T @ b, check_finite=False)
    return c, q[:, :rank]


def _bounded_lstsq(phi: np.ndarray, b: np.ndarray, bounds) -> tuple[np.ndarray, np.ndarray]:
    """min |phi c - b| within bounds (BVLS): c, and a basis of the range of the free columns.

    The parameters at a bound stay there; the projection (and so the Kaufman
    Jacobian) is onto the free columns, which keeps the gradient exact where
    the active set does not change.
    """
    from scipy.optimize import lsq_linear

    lo, hi = bounds
    c = lsq_linear(phi, b, bounds=(lo, hi), method="bvls").x
    c = np.clip(c, lo, hi)
    span = np.maximum(np.abs(c), 1.0) * 1e-12
    free = ~((c <= lo + span) | (c >= hi - span))
    _, q = _lstsq(phi[:, free], b - phi[:, ~free] @ c[~free])
    return c, q


class _Projection:
    """The inner linear solve for given nonlinear parameters, cached for the last ``a``."""

    def __init__(self, problem: Problem, x0: np.ndarray, lin: list[int], non: list[int], bounds=None):
        self.problem, self.lin, self.non = problem, lin, non
        self.template = x0.copy()
        self.key: bytes | None = None
        self.c = x0[lin].copy()
        self.q: np.ndarray | None = None
        self.r: np.ndarray | None = None
        self.inner_solves = 0
        self.cbounds = None
        if bounds is not None:
            lo, hi = bounds[0][lin], bounds[1][lin]
            if np.isfinite(lo).any() or np.isfinite(hi).any():
                self.cbounds = (lo, hi)

    def x(self, a: np.ndarray, c: np.ndarray) -> np.ndarray:
        x = self.template.copy()
        x[self.non] = a
        x[self.lin] = c
        return x

    def solve(self, a: np.ndarray) -> None:
        a = np.asarray(a, dtype=np.float64)
        key = a.tobytes()
        if key == self.key:
            return
        p = self.problem
        y0, phi = p.model_and_jacobian(self.x(a, np.zeros(len(self.lin))), self.lin, reuse=True)
        b = p.wdata - y0
        c, q = _lstsq(phi, b)
        if self.cbounds is not None and not np.all((self.cbounds[0] <= c) & (c <= self.cbounds[1])):
            c, q = _bounded_lstsq(phi, b, self.cbounds)
        self.q = q
        self.c = c
        self.r = phi @ c - b
        self.key = key
        self.inner_solves += 1

    def residual(self, a: np.ndarray) -> np.ndarray:
        self.solve(a)
        return self.r

    def jacobian(self, a: np.ndarray) -> np.ndarray:
        self.solve(a)
        x = self.x(np.asarray(a, dtype=np.float64), self.c)
        _, ja = self.problem.model_and_jacobian(x, self.non, reuse=True)
        return ja - self.q @ (self.q.T @ ja)


def solve_varpro(
    problem: Problem,
    x0: np.ndarray,
    varpro: Any,
    *,
    method: str,
    bounds,
    scipy_options: Mapping[str, Any],
    setup_time: float = 0.0,
    keep_jac: bool = True,
) -> FitResult:
    """Fit by variable projection; the result holds every parameter (see the module docstring)."""
    t0 = time.perf_counter()
    names = None if varpro is True else ([varpro] if isinstance(varpro, str) else list(varpro))
    lin = linear_columns(problem, names)
    non = [i for i in range(problem.nfree) if i not in lin]
    proj = _Projection(problem, x0, lin, non, bounds)
    info: dict[str, Any] = {"linear": [problem.names[i] for i in lin], "fallback": None}
    if non:
        proj.jacobian(x0[non])  # compiles both derivative graphs
    elif lin:
        proj.solve(np.zeros(0))
    setup_time += time.perf_counter() - t0
    t0 = time.perf_counter()
    if non:
        b = None if bounds is None else (bounds[0][non], bounds[1][non])
        opts = dict(scipy_options)
        scale = opts.get("x_scale")
        if not isinstance(scale, str) and np.ndim(scale) == 1 and np.size(scale) == problem.nfree:
            opts["x_scale"] = np.asarray(scale)[non]  # one per free parameter: the nonlinear ones
        out = minimize(proj.residual, x0[non], proj.jacobian, method, b, opts)
        a = out.x
        proj.solve(a)
        nfev, njev, success, message, status = (
            int(out.nfev),
            int(out.njev or 0),
            bool(out.success),
            str(out.message),
            int(out.status),
        )
    else:
        a = np.zeros(0)
        nfev, njev, success, message, status = 1, 0, True, "linear problem solved directly", 0
    wall = time.perf_counter() - t0
    x = proj.x(a, proj.c)
    info.update(outer_nfev=nfev, outer_njev=njev, inner_solves=proj.inner_solves)
    if bounds is not None:
        lo, hi = bounds
        bad = [problem.names[i] for i in lin if not lo[i] < x[i] < hi[i]]
        if bad:
            info["fallback"] = f"linear parameters at their bounds: {bad}; fitted again without projection"
            full = solve_local(problem, x0, bounds, method=method,
                               jacobian="eager", options=scipy_options, keep_jac=keep_jac)  # fmt: skip
            info.update(fallback_nfev=full.nfev, fallback_njev=full.njev)
            full.varpro = info
            full.nfev += nfev
            full.njev += njev
            full.wall_time += wall
            full.setup_time += setup_time
            return full
    if not np.all(np.isfinite(x)):
        raise GirError("variable projection produced non-finite parameters")
    return make_result(
        problem,
        x,
        method=method,
        nfev=nfev,
        njev=njev,
        success=success,
        message=message,
        status=status,
        wall_time=wall,
        setup_time=setup_time,
        varpro=info,
        keep_jac=keep_jac,
    )
