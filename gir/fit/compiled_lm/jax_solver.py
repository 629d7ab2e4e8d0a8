"""The JAX form of the batched fit: ``jax.vmap`` of a ``jax.lax.while_loop``, one model evaluation per
trip, compiled once per chunk size by XLA (the GPU path).

Each trip evaluates the weighted residual and Jacobian (the derivative
executable's pure JAX function, :attr:`Compiled.function` of the JAX backend)
at the point the state asks for, then advances the state as
:mod:`gir.fit.compiled_lm.kernel` does: the first evaluation, a trial step
(its back-off from a bound where the model is undefined, its acceptance or
rejection, the ftol/xtol tests) and the top of levmar's loop (gtol,
``max_nfev``, the damping limit and the damped Cholesky step, the damping
raised until the matrix is positive definite). Parameters held by a bound or
out of the step are masked: their rows and columns of the damped matrix are
the identity's, so one P x P Cholesky serves every subset. Under ``vmap``
the branches are selections; the loop runs until every spectrum has stopped.
The covariance follows :func:`gir.fit.result.covariance` (eigenvalues of the
unit-diagonal normal matrix, or the SVD of the scaled Jacobian where that is
too ill-conditioned).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gir.fit.compiled_lm import codes as K
from gir.fit.levmar import MAX_BACKOFFS, MAX_DAMPING


class State(NamedTuple):
    x: Any
    xt: Any  # the point to evaluate next
    move: Any
    d: Any
    col: Any
    g: Any
    a: Any
    free: Any
    out: Any
    cost: Any
    lam: Any
    nu: Any
    nfev: Any
    njev: Any
    status: Any
    phase: Any  # K.START or K.TRIAL (K.DONE once stopped)
    evals: Any
    budget: Any
    near_f: Any
    near_x: Any


def _where(c, a: State, b: State) -> State:
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda u, v: jnp.where(c, u, v), a, b)


def _held(x, g, lo, hi):
    return ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))


def _damped_step(a, g, damping, free, move):
    """``(A + diag(damping)) h = -g`` over ``free``, the others moving by ``move``; whether the
    damped matrix was positive definite."""
    import jax.numpy as jnp

    mask = free[:, None] & free[None, :]
    m = jnp.where(mask, a, 0.0) + jnp.diag(jnp.where(free, damping, 1.0))
    h0 = jnp.where(free, 0.0, move)
    rhs = jnp.where(free, -(g + a @ h0), h0)
    c = jnp.linalg.cholesky(m)
    ok = jnp.all(jnp.isfinite(c)) & jnp.all(jnp.diag(c) > 0)
    z = jnp.linalg.solve(c.T, jnp.linalg.solve(c, rhs))
    return jnp.where(free, z, h0), ok


def _near_minimum(a, g, d, x, lo, hi, cost, ftol, xtol):
    """levmar's ``_near_minimum`` over the parameters not held by a bound."""
    import jax.numpy as jnp

    free = ~_held(x, g, lo, hi)
    mask = free[:, None] & free[None, :]
    scaled = jnp.where(mask, a / jnp.outer(d, d), 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
    rhs = jnp.where(free, -g / d, 0.0)
    z = jnp.linalg.solve(scaled, rhs)
    z = jnp.where(jnp.all(jnp.isfinite(z)), z, jnp.linalg.lstsq(scaled, rhs)[0])
    z = jnp.where(free, z, 0.0)
    predicted = -0.5 * jnp.sum(g * z / d)
    xs = jnp.sqrt(jnp.sum(jnp.where(free, d * x, 0.0) ** 2))
    return predicted <= ftol * cost, jnp.sqrt(jnp.sum(z * z)) <= xtol * (xtol + xs)


def _trial_point(s: State, h, lo, hi) -> State:
    """Parameters whose step leaves the box go to their bound (marked ``out``); the point to evaluate
    is the step clipped into the box."""
    import jax.numpy as jnp

    target = s.x + h
    leaving = s.free & ~s.out & ((target < lo) | (target > hi))
    clipped = jnp.minimum(jnp.maximum(target, lo), hi)
    return s._replace(move=jnp.where(leaving, clipped - s.x, s.move), out=s.out | leaving, xt=clipped)


def _next_trial(s: State, lo, hi, opts, scale) -> State:
    """The top of levmar's loop: the termination tests, the damped step (the damping raised until
    the matrix is positive definite) and its first trial point, or a stop."""
    import jax
    import jax.numpy as jnp

    free = ~_held(s.x, s.g, lo, hi)
    rnorm = jnp.sqrt(2.0 * s.cost)
    c = jnp.where(s.col > 0, s.col, 1.0)
    cosines = jnp.where(free, jnp.abs(s.g) / (c * rnorm), 0.0)
    converged = (rnorm == 0.0) | ~jnp.any(free) | (jnp.max(cosines, initial=0.0) <= opts[K.GTOL])
    zeros = jnp.zeros_like(s.x)

    def cond(carry):
        lam, _, _, ok = carry
        return ~ok & (lam <= MAX_DAMPING)

    def body(carry):
        lam, nu, _, _ = carry
        h, ok = _damped_step(s.a, s.g, lam * s.d**2, free, zeros)
        return jnp.where(ok, lam, lam * nu), jnp.where(ok, nu, nu * 2.0), h, ok

    lam, nu, h, _ = jax.lax.while_loop(cond, body, (s.lam, s.nu, zeros, jnp.asarray(False)))
    status = jnp.where(
        converged,
        1,
        jnp.where(s.nfev >= opts[K.MAX_NFEV], 0, jnp.where(lam > MAX_DAMPING, K.NO_STEP, K.RUNNING)),
    )
    lam = jnp.where(converged | (s.nfev >= opts[K.MAX_NFEV]), s.lam, lam)
    budget = jnp.minimum(MAX_BACKOFFS, opts[K.MAX_NFEV].astype(s.nfev.dtype) - s.nfev)
    moved = s._replace(
        free=free, out=jnp.zeros_like(s.out), move=zeros, lam=lam, nu=nu, evals=0, budget=budget
    )
    moved = _trial_point(moved, h, lo, hi)._replace(phase=K.TRIAL)
    stopped = s._replace(free=free, lam=lam, nu=nu, status=status, phase=K.DONE)
    return _where(status == K.RUNNING, moved, stopped)


def _advance(s: State, r, jac, ok, lo, hi, opts, scale) -> State:
    """One evaluation's effect on the state (see the module docstring)."""
    import jax.numpy as jnp

    finite = ok & jnp.all(jnp.isfinite(r))
    cost_new = jnp.where(finite, 0.5 * jnp.dot(r, r), jnp.inf)
    a_new = jac.T @ jac
    g_new = jac.T @ r
    jac_ok = jnp.all(jnp.isfinite(a_new)) & jnp.all(jnp.isfinite(g_new))
    col_new = jnp.sqrt(jnp.diag(a_new))
    fixed_scale = opts[K.FIXED_SCALE] != 0.0
    ftol, xtol = opts[K.FTOL], opts[K.XTOL]

    # -- the first evaluation
    d0 = jnp.where(fixed_scale, 1.0 / scale, jnp.where(col_new > 0, col_new, 1.0))
    near0 = _near_minimum(a_new, g_new, d0, s.x, lo, hi, cost_new, ftol, xtol)
    started = s._replace(cost=cost_new, a=a_new, g=g_new, col=col_new, d=d0, nfev=1, njev=1,
                         lam=opts[K.DAMPING], nu=2.0, near_f=near0[0], near_x=near0[1])  # fmt: skip
    start_status = jnp.where(~finite, K.START_NOT_FINITE, jnp.where(jac_ok, K.RUNNING, K.JACOBIAN_NOT_FINITE))
    started = started._replace(status=start_status, cost=jnp.where(finite, cost_new, jnp.nan))

    # -- a trial point: back off from the bound where the model is undefined there
    evals = s.evals + 1
    move = jnp.where(s.out, 0.5 * s.move, 0.0)
    h_back, back_ok = _damped_step(s.a, s.g, s.lam * s.d**2, s.free & ~s.out, move)
    backing = ~ok & jnp.any(s.out) & (evals < s.budget) & back_ok
    backed = _trial_point(s._replace(move=move, evals=evals), h_back, lo, hi)

    # -- or accept or reject the step
    h = s.xt - s.x
    predicted = -(jnp.dot(s.g, h) + 0.5 * jnp.dot(h, s.a @ h))
    actual = s.cost - cost_new
    rho = jnp.where(predicted > 0, actual / jnp.where(predicted > 0, predicted, 1.0), -1.0)
    small_step = jnp.all(jnp.abs(h) <= xtol * (xtol + jnp.abs(s.x)))
    accept = rho > 1e-4
    small_f = (actual < ftol * s.cost) & (predicted < ftol * s.cost)
    d_acc = jnp.where(fixed_scale, s.d, jnp.maximum(s.d, col_new))
    factor = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * jnp.minimum(rho, 1.0) - 1.0) ** 3)
    near = _near_minimum(a_new, g_new, d_acc, s.xt, lo, hi, cost_new, ftol, xtol)
    lam = jnp.maximum(s.lam * factor, 1e-300)
    accepted = s._replace(x=s.xt, cost=cost_new, a=a_new, g=g_new, col=col_new, d=d_acc, njev=s.njev + 1,
                          lam=lam, nu=2.0, near_f=near[0], near_x=near[1])  # fmt: skip
    rejected = s._replace(lam=s.lam * s.nu, nu=s.nu * 2.0)
    done = _where(accept, accepted, rejected)._replace(nfev=s.nfev + evals)
    small_f = accept & small_f & done.near_f
    small_step = small_step & done.near_x
    status = jnp.where(small_f, jnp.where(small_step, 4, 2), jnp.where(small_step, 3, K.RUNNING))
    status = jnp.where(accept & ~jac_ok, K.JACOBIAN_NOT_FINITE, status)
    done = done._replace(status=status)

    after = _where(s.phase == K.START, started, _where(backing, backed, done))
    top = _next_trial(after, lo, hi, opts, scale)
    go_on = (after.status == K.RUNNING) & ((s.phase == K.START) | ~backing)
    return _where(go_on, top, _where(after.status == K.RUNNING, after, after._replace(phase=K.DONE)))


def _covariance(a, jac, cost, ndata):
    """``redchi * (J^T J)^-1`` as gir.fit.result.covariance computes it; whether J is rank deficient."""
    import jax.numpy as jnp

    m, p = jac.shape
    d = jnp.sqrt(jnp.diag(a))
    d = jnp.where(d > 0, d, 1.0)
    w, v = jnp.linalg.eigh(a / jnp.outer(d, d))
    _, sv, vt = jnp.linalg.svd(jac / d, full_matrices=False)
    use_svd = w[0] < 1e-8 * w[-1]
    w = jnp.where(use_svd, sv[::-1] ** 2, w)
    v = jnp.where(use_svd, vt[::-1].T, v)
    keep = w > (max(m, p) * np.finfo(float).eps) ** 2 * w[-1]
    cov = (v * jnp.where(keep, 1.0 / w, 0.0)) @ v.T / jnp.outer(d, d)
    deficient = ~jnp.all(keep)
    bad = jnp.any((jnp.abs(v) > 1e-8) & ~keep[None, :], axis=1)
    cov = jnp.where(bad[:, None] | bad[None, :], jnp.nan, cov)
    dof = ndata - p
    scale = jnp.where(dof > 0, 2.0 * cost / jnp.maximum(dof, 1), 1.0)
    return cov * scale, deficient


class Layout(NamedTuple):
    """How the derivative function's inputs and outputs map to the fit (static: one compile per layout)."""

    slots: tuple[int | None, ...]  # per graph input: its position in theta, or None (a fixed input)
    order: tuple[int, ...]  # the graph's axes, in the data grid's order
    full: tuple[int, ...]  # the evaluated grid's sizes over the graph's axes
    gather: bool  # whether a window cut after evaluation selects the fitted points


def layout(fwd: Any, grid_axes: tuple[str, ...], eval_shape: tuple[int, ...], select: Any) -> Layout:
    graph = fwd.graph
    params = {name: j for j, name in enumerate(fwd.param_names)}
    return Layout(
        slots=tuple(params.get(v.name) for v in graph.inputs),
        order=tuple(graph.axes.index(a) for a in grid_axes),
        full=tuple(eval_shape[grid_axes.index(a)] if a in grid_axes else 1 for a in graph.axes),
        gather=select is not None,
    )


def fixed_inputs(fwd: Any, base: np.ndarray, inputs: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """``fwd``'s graph inputs that are not parameters, in the full-rank layout, in input order."""
    args, _ = fwd._arguments(base, inputs, batch=False)
    params = set(fwd.param_names)
    return tuple(np.asarray(a) for a, v in zip(args, fwd.graph.inputs, strict=True) if v.name not in params)


@functools.cache
def solver(fwd: Any, lay: Layout, p: int, per_spectrum_weights: bool) -> Callable:
    """The jitted batched fit for the derivative executable ``fwd`` (outputs: the model, then its P
    columns): ``(wdata, weights, x0, lo, hi, positive, opts, scale, ndata, base, free, consts, select)
    -> (x, cov, cost, nfev, njev, status, deficient)``, ``consts`` its fixed inputs."""
    import jax
    import jax.numpy as jnp

    fn = fwd._artifact.function

    def evaluate(x, base, free, consts, select):
        theta = base.at[free].set(x)
        given = iter(consts)
        outs = fn(*[theta[j] if j is not None else next(given) for j in lay.slots])

        def points(o):
            flat = jnp.transpose(jnp.broadcast_to(o, lay.full), lay.order).reshape(-1)
            return flat[select] if lay.gather else flat

        return points(outs[0]), jnp.stack([points(o) for o in outs[1:]], axis=1)

    def one(wdata, w, x0, lo, hi, positive, opts, scale, ndata, base, free, consts, select):
        def residual(x):
            y, cols = evaluate(x, base, free, consts, select)
            return w * y - wdata, cols * w[:, None]

        def body(s: State) -> State:
            ok = jnp.all(jnp.where(positive, s.xt > 0, True))
            r, jac = residual(s.xt)
            return _advance(s, r, jac, ok, lo, hi, opts, scale)

        zeros = jnp.zeros(p, jnp.float64)
        izero = jnp.zeros((), jnp.int64)
        fzero = jnp.zeros((), jnp.float64)
        no = jnp.zeros((), bool)
        s0 = State(x=x0, xt=x0, move=zeros, d=zeros, col=zeros, g=zeros, a=jnp.zeros((p, p), jnp.float64),
                   free=jnp.ones(p, bool), out=jnp.zeros(p, bool), cost=fzero, lam=fzero, nu=fzero + 2.0,
                   nfev=izero, njev=izero, status=izero + K.RUNNING, phase=izero + K.START, evals=izero,
                   budget=izero, near_f=no, near_x=no)  # fmt: skip
        s = jax.lax.while_loop(lambda s: s.phase != K.DONE, body, s0)
        _, jac = residual(s.x)
        cov, deficient = _covariance(s.a, jac, s.cost, ndata)
        failed = (s.status == K.START_NOT_FINITE) | (s.status == K.JACOBIAN_NOT_FINITE)
        cov = jnp.where(failed, jnp.nan, cov)
        return s.x, cov, s.cost, s.nfev, s.njev, s.status, deficient & ~failed

    shared = (None,) * 4  # base, free, consts, select
    axes = (0, 0 if per_spectrum_weights else None, 0, None, None, None, None, None, 0, *shared)
    return jax.jit(jax.vmap(one, in_axes=axes))
