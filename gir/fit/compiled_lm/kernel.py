"""The Levenberg-Marquardt iteration of :mod:`gir.fit.levmar` as Numba functions, by reverse communication.

A fit's state lives in a workspace (a tuple of arrays, :func:`workspace`). The
caller evaluates the weighted residual ``r`` (m,) and its Jacobian, stored
transposed as ``jac`` (P, m), at :func:`point` and hands them to
:func:`advance`, until :func:`running` is false; :func:`results` then writes
the solution, the covariance and the counts. :func:`fit_chunk` runs this
loop for each spectrum of a chunk, the model being a compiled callback
generated per model (:mod:`gir.fit.compiled_lm.numba_driver`), so the whole
fit runs in compiled code and the iteration compiles once per machine.

The algorithm, its scaling, damping updates, bounds treatment, back-off from
bounds where the model is undefined and termination tests are those of
:func:`gir.fit.levmar.levmar` step for step; the covariance is that of
:func:`gir.fit.result.covariance`. Linear algebra is done here on P x P
matrices (Cholesky for the damped step, LU with partial pivoting for the
Gauss-Newton step, falling back to the minimum-norm solution from ``eigh``
where it is singular, LAPACK's ``eigh`` and ``svd`` through Numba),
so singular systems are detected the way LAPACK detects them: a
non-positive Cholesky pivot, an exactly zero LU pivot.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from gir.fit.compiled_lm.codes import (
    BUDGET,
    COL,
    COST,
    DAMPING,
    DEFICIENT,
    DONE,
    EVALS,
    FINAL,
    FIXED_SCALE,
    FREE,
    FTOL,
    GTOL,
    JACOBIAN_NOT_FINITE,
    LAM,
    MAX_NFEV,
    MOVE,
    N_FLOATS,
    N_INTS,
    N_ROWS,
    NEAR_F,
    NEAR_X,
    NFEV,
    NJEV,
    NO_STEP,
    NU,
    OUT,
    OUT_COST,
    OUT_DEFICIENT,
    OUT_NFEV,
    OUT_NJEV,
    OUT_STATUS,
    PHASE,
    RUNNING,
    START,
    START_NOT_FINITE,
    STATUS,
    TRIAL,
    XT,
    XTOL,
    D,
    G,
    H,
    X,
)
from gir.fit.levmar import MAX_BACKOFFS, MAX_DAMPING

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_F64 = types.CPointer(types.float64)
#: The signature of the model callback :func:`fit_chunk` takes: ``evaluate(theta, fixed, index, y, jac)``.
EVALUATE = types.void(_F64, _F64, types.CPointer(types.int64), _F64, _F64)


@njit(**_JIT)
def workspace(p: int):
    """A fresh workspace for P parameters: (float rows, J^T J, boolean rows, floats, integers)."""
    return (
        np.zeros((N_ROWS, p)),
        np.zeros((p, p)),
        np.zeros((2, p), np.bool_),
        np.zeros(N_FLOATS),
        np.zeros(N_INTS, np.int64),
    )


@njit(**_JIT)
def begin(ws, x0) -> None:
    """Start a fit at ``x0`` (inside the bounds): the first point asked for is ``x0``."""
    rows, _, _, _, ints = ws
    rows[X, :] = x0
    rows[XT, :] = x0
    ints[STATUS] = RUNNING
    ints[PHASE] = START


@njit(**_JIT)
def running(ws) -> bool:
    """Whether the fit asks for an evaluation at :func:`point`."""
    return ws[4][PHASE] != DONE


@njit(**_JIT)
def point(ws):
    """The parameters at which the fit asks for the residual and Jacobian (a view)."""
    return ws[0][XT]


@njit(**_JIT)
def defined(x, positive) -> bool:
    """Whether the model is defined at ``x``: each parameter flagged in ``positive`` (a kernel
    width) is above 0 (:meth:`gir.Executable.check`)."""
    for j in range(x.size):
        if positive[j] and not x[j] > 0.0:
            return False
    return True


@njit(**_JIT)
def advance(ws, r, jac, ok: bool, lo, hi, opts, scale, ndata: int) -> None:
    """Take the residual ``r`` and Jacobian ``jac`` (P, m) at :func:`point` (``ok`` false where the
    model is undefined there, and then they are not read) and go on to the next point."""
    phase = ws[4][PHASE]
    if phase == START:
        _start(ws, r, jac, ok, lo, hi, opts, scale, ndata)
    elif phase == TRIAL:
        _after_evaluation(ws, r, jac, ok, lo, hi, opts, ndata)
    elif phase == FINAL:
        _covariance_svd(ws, jac, ndata)
        ws[4][PHASE] = DONE


@njit(**_JIT)
def results(ws, x, cov, floats, ints) -> None:
    """Write the solution ``x`` (P), the covariance ``cov`` (P, P), the cost and the counts."""
    rows, a, _, fs, iw = ws
    x[:] = rows[X]
    cov[:, :] = a  # the covariance replaces J^T J once the fit is done (see _conclude)
    floats[OUT_COST] = fs[COST]
    ints[OUT_NFEV] = iw[NFEV]
    ints[OUT_NJEV] = iw[NJEV]
    ints[OUT_STATUS] = iw[STATUS]
    ints[OUT_DEFICIENT] = iw[DEFICIENT]


# -- the iteration --------------------------------------------------------------------------------


@njit(**_JIT)
def _finite(v) -> bool:
    for i in range(v.size):
        if not np.isfinite(v[i]):
            return False
    return True


@njit(fastmath={"reassoc", "contract"}, **_JIT)
def _normal_equations(jac, r, a, g) -> bool:
    """``a = J^T J``, ``g = J^T r`` (J stored transposed); whether both are finite. The sums are
    vectorized (reassociated), as BLAS reorders them too."""
    p, m = jac.shape
    for j in range(p):
        cj = jac[j]
        acc = 0.0
        for i in range(m):
            acc += cj[i] * r[i]
        g[j] = acc
        for k in range(j + 1):
            ck = jac[k]
            acc = 0.0
            for i in range(m):
                acc += cj[i] * ck[i]
            a[j, k] = acc
            a[k, j] = acc
    return _finite(g) and _finite(a.ravel())


@njit(**_JIT)
def _sum_squares(r) -> float:
    acc = 0.0
    for i in range(r.size):
        acc += r[i] * r[i]
    return acc


@njit(**_JIT)
def _start(ws, r, jac, ok, lo, hi, opts, scale, ndata) -> None:
    rows, a, _, fs, iw = ws
    if not ok or not _finite(r):
        _stop(ws, START_NOT_FINITE, ndata)
        return
    iw[NFEV] = 1
    iw[NJEV] = 1
    fs[COST] = 0.5 * _sum_squares(r)
    if not _normal_equations(jac, r, a, rows[G]):
        _stop(ws, JACOBIAN_NOT_FINITE, ndata)
        return
    p = a.shape[0]
    for j in range(p):
        rows[COL, j] = np.sqrt(a[j, j])
        if opts[FIXED_SCALE] != 0.0:
            rows[D, j] = 1.0 / scale[j]
        else:
            rows[D, j] = rows[COL, j] if rows[COL, j] > 0.0 else 1.0
    _near_minimum(ws, lo, hi, opts)
    fs[LAM] = opts[DAMPING]
    fs[NU] = 2.0
    _next_trial(ws, lo, hi, opts, ndata)


@njit(**_JIT)
def _free(ws, lo, hi) -> bool:
    """Flag the parameters not held by a bound (FREE); whether any is."""
    rows, _, flags, _, _ = ws
    x, g = rows[X], rows[G]
    anyfree = False
    for j in range(x.size):
        held = (x[j] <= lo[j] and g[j] > 0.0) or (x[j] >= hi[j] and g[j] < 0.0)
        flags[FREE, j] = not held
        anyfree = anyfree or not held
    return anyfree


@njit(**_JIT)
def _next_trial(ws, lo, hi, opts, ndata) -> None:
    """The top of levmar's loop: the termination tests, then the damped step and its first trial
    point (or a stop)."""
    rows, a, flags, fs, iw = ws
    p = a.shape[0]
    while True:
        anyfree = _free(ws, lo, hi)
        rnorm = np.sqrt(2.0 * fs[COST])
        largest = 0.0
        for j in range(p):
            if flags[FREE, j]:
                c = rows[COL, j] if rows[COL, j] > 0.0 else 1.0
                cosine = np.abs(rows[G, j]) / (c * rnorm)
                if not cosine <= largest:  # NaN propagates, as np.max does
                    largest = cosine
        if rnorm == 0.0 or not anyfree or largest <= opts[GTOL]:
            _stop(ws, 1, ndata)
            return
        if iw[NFEV] >= opts[MAX_NFEV]:
            _stop(ws, 0, ndata)
            return
        if fs[LAM] > MAX_DAMPING:
            _stop(ws, NO_STEP, ndata)
            return
        for j in range(p):
            flags[OUT, j] = False
            rows[MOVE, j] = 0.0
        if _step(ws, fs[LAM], flags[FREE], False):
            break
        fs[LAM] *= fs[NU]
        fs[NU] *= 2.0
    iw[EVALS] = 0
    iw[BUDGET] = min(MAX_BACKOFFS, int(opts[MAX_NFEV]) - iw[NFEV])
    _trial_point(ws, lo, hi)


@njit(**_JIT)
def _step(ws, lam, free, with_move: bool) -> bool:
    """The damped step into row H: ``(A + lam D^2) h = -g`` over ``free``; the others move by row
    MOVE (``with_move``) or stay. False where the damped matrix is not positive definite."""
    rows, a, _, _, _ = ws
    p = a.shape[0]
    h = rows[H]
    for j in range(p):
        h[j] = rows[MOVE, j] if with_move else 0.0
    idx = np.empty(p, np.int64)
    k = 0
    for j in range(p):
        if free[j]:
            idx[k] = j
            k += 1
    m = np.empty((k, k))
    rhs = np.empty(k)
    for u in range(k):
        acc = rows[G, idx[u]]
        for j in range(p):
            acc += a[idx[u], j] * h[j]
        rhs[u] = -acc
        for v in range(k):
            m[u, v] = a[idx[u], idx[v]]
        m[u, u] += lam * rows[D, idx[u]] ** 2
    if not _cholesky_solve(m, rhs):
        return False
    for u in range(k):
        h[idx[u]] = rhs[u]
    return True


@njit(**_JIT)
def _cholesky_solve(m, b) -> bool:
    """Solve ``m z = b`` in place (b becomes z) by Cholesky; False where m is not positive definite."""
    n = m.shape[0]
    for j in range(n):
        s = m[j, j]
        for k in range(j):
            s -= m[j, k] * m[j, k]
        if not s > 0.0:
            return False
        d = np.sqrt(s)
        m[j, j] = d
        for i in range(j + 1, n):
            t = m[i, j]
            for k in range(j):
                t -= m[i, k] * m[j, k]
            m[i, j] = t / d
    for i in range(n):
        t = b[i]
        for k in range(i):
            t -= m[i, k] * b[k]
        b[i] = t / m[i, i]
    for i in range(n - 1, -1, -1):
        t = b[i]
        for k in range(i + 1, n):
            t -= m[k, i] * b[k]
        b[i] = t / m[i, i]
    return True


@njit(**_JIT)
def _trial_point(ws, lo, hi) -> None:
    """Parameters whose step leaves the box go to their bound (and are marked OUT); the point is
    the step clipped into the box."""
    rows, _, flags, _, iw = ws
    x, h = rows[X], rows[H]
    for j in range(x.size):
        target = x[j] + h[j]
        clipped = min(max(target, lo[j]), hi[j])
        if flags[FREE, j] and not flags[OUT, j] and (target < lo[j] or target > hi[j]):
            rows[MOVE, j] = clipped - x[j]
            flags[OUT, j] = True
        rows[XT, j] = clipped
    iw[PHASE] = TRIAL


@njit(**_JIT)
def _after_evaluation(ws, r, jac, ok, lo, hi, opts, ndata) -> None:
    """A trial point was evaluated: back off from the bound where the model is undefined there,
    else accept or reject the step."""
    rows, a, flags, fs, iw = ws
    iw[EVALS] += 1
    if ok:
        _conclude_trial(ws, r, jac, _finite(r), lo, hi, opts, ndata)
        return
    p = a.shape[0]
    anyout = False
    for j in range(p):
        anyout = anyout or flags[OUT, j]
    if anyout and iw[EVALS] < iw[BUDGET]:
        free_in = np.empty(p, np.bool_)
        for j in range(p):
            rows[MOVE, j] = 0.5 * rows[MOVE, j] if flags[OUT, j] else 0.0
            free_in[j] = flags[FREE, j] and not flags[OUT, j]
        if _step(ws, fs[LAM], free_in, True):
            _trial_point(ws, lo, hi)
            return
    _conclude_trial(ws, r, jac, False, lo, hi, opts, ndata)


@njit(**_JIT)
def _conclude_trial(ws, r, jac, finite, lo, hi, opts, ndata) -> None:
    """levmar's gain ratio test, damping update and ftol/xtol tests for the evaluated trial point
    (its residual not finite, or the model undefined there: a rejected step)."""
    rows, a, _, fs, iw = ws
    p = a.shape[0]
    x, xt, h, g = rows[X], rows[XT], rows[H], rows[G]
    for j in range(p):
        h[j] = xt[j] - x[j]
    iw[NFEV] += iw[EVALS]
    quad = 0.0
    lin = 0.0
    small_step = True
    for j in range(p):
        ah = 0.0
        for k in range(p):
            ah += a[j, k] * h[k]
        quad += h[j] * ah
        lin += g[j] * h[j]
        if not np.abs(h[j]) <= opts[XTOL] * (opts[XTOL] + np.abs(x[j])):
            small_step = False
    predicted = -(lin + 0.5 * quad)
    cost = fs[COST]
    cost_new = 0.5 * _sum_squares(r) if finite else np.inf
    actual = cost - cost_new
    rho = actual / predicted if predicted > 0.0 else -1.0
    status = RUNNING
    if rho > 1e-4:
        small_f = actual < opts[FTOL] * cost and predicted < opts[FTOL] * cost
        x[:] = xt
        fs[COST] = cost_new
        iw[NJEV] += 1
        if not _normal_equations(jac, r, a, g):
            _stop(ws, JACOBIAN_NOT_FINITE, ndata)
            return
        for j in range(p):
            rows[COL, j] = np.sqrt(a[j, j])
            if opts[FIXED_SCALE] == 0.0:
                rows[D, j] = max(rows[D, j], rows[COL, j])
        factor = 1.0 - (2.0 * min(rho, 1.0) - 1.0) ** 3
        fs[LAM] = max(fs[LAM] * max(1.0 / 3.0, factor), 1e-300)
        fs[NU] = 2.0
        _near_minimum(ws, lo, hi, opts)
        small_f = small_f and iw[NEAR_F] != 0
        small_step = small_step and iw[NEAR_X] != 0
        if small_f:
            status = 4 if small_step else 2
    else:
        fs[LAM] *= fs[NU]
        fs[NU] *= 2.0
        small_step = small_step and iw[NEAR_X] != 0
    if status == RUNNING and small_step:
        status = 3
    if status != RUNNING:
        _stop(ws, status, ndata)
    else:
        _next_trial(ws, lo, hi, opts, ndata)


@njit(**_JIT)
def _near_minimum(ws, lo, hi, opts) -> None:
    """levmar's ``_near_minimum``: flags NEAR_F (the Gauss-Newton step predicts a reduction below
    ftol of the cost) and NEAR_X (it is within xtol in the scaled norm)."""
    rows, a, flags, fs, iw = ws
    _free(ws, lo, hi)
    p = a.shape[0]
    idx = np.empty(p, np.int64)
    k = 0
    for j in range(p):
        if flags[FREE, j]:
            idx[k] = j
            k += 1
    scaled = np.empty((k, k))
    rhs = np.empty(k)
    for u in range(k):
        du = rows[D, idx[u]]
        rhs[u] = -rows[G, idx[u]] / du
        for v in range(k):
            scaled[u, v] = a[idx[u], idx[v]] / (du * rows[D, idx[v]])
    z = rhs.copy()
    if not _lu_solve(scaled.copy(), z):
        z = _min_norm_solve(scaled, rhs)
    gh = 0.0
    step = 0.0
    xs = 0.0
    for u in range(k):
        du = rows[D, idx[u]]
        gh += rows[G, idx[u]] * (z[u] / du)
        step += z[u] * z[u]
        xs += (du * rows[X, idx[u]]) ** 2
    predicted = -0.5 * gh
    iw[NEAR_F] = 1 if predicted <= opts[FTOL] * fs[COST] else 0
    iw[NEAR_X] = 1 if np.sqrt(step) <= opts[XTOL] * (opts[XTOL] + np.sqrt(xs)) else 0


@njit(**_JIT)
def _min_norm_solve(m, b):
    """The minimum-norm least-squares solution of ``m z = b`` for a symmetric ``m`` (numpy's lstsq
    with its default cutoff: singular values, here ``|eigenvalues|``, below ``eps * n`` of the
    largest count as 0), from ``eigh`` (LAPACK's least-squares driver costs seconds to compile)."""
    n = m.shape[0]
    w, v = np.linalg.eigh(m)
    cutoff = np.finfo(np.float64).eps * n * np.max(np.abs(w)) if n else 0.0
    z = np.zeros(n)
    for k in range(n):
        if np.abs(w[k]) > cutoff:
            c = 0.0
            for i in range(n):
                c += v[i, k] * b[i]
            c /= w[k]
            for i in range(n):
                z[i] += c * v[i, k]
    return z


@njit(**_JIT)
def _lu_solve(m, b) -> bool:
    """Solve ``m z = b`` in place (b becomes z) by LU with partial pivoting; False at an exactly
    zero pivot (singular, as LAPACK's getrf reports it)."""
    n = m.shape[0]
    for j in range(n):
        piv = j
        for i in range(j + 1, n):
            if np.abs(m[i, j]) > np.abs(m[piv, j]):
                piv = i
        if m[piv, j] == 0.0:
            return False
        if piv != j:
            for k in range(n):
                m[j, k], m[piv, k] = m[piv, k], m[j, k]
            b[j], b[piv] = b[piv], b[j]
        for i in range(j + 1, n):
            f = m[i, j] / m[j, j]
            m[i, j] = f
            for k in range(j + 1, n):
                m[i, k] -= f * m[j, k]
            b[i] -= f * b[j]
    for i in range(n - 1, -1, -1):
        t = b[i]
        for k in range(i + 1, n):
            t -= m[i, k] * b[k]
        b[i] = t / m[i, i]
    return True


# -- the end: status and covariance ----------------------------------------------------------------


@njit(**_JIT)
def _stop(ws, status: int, ndata: int) -> None:
    """Record the status and put the covariance in place of J^T J (NaN without a solution); where
    J^T J is too ill-conditioned, ask for J at the solution (phase FINAL) for an SVD."""
    rows, a, _, fs, iw = ws
    iw[STATUS] = status
    iw[PHASE] = DONE
    if status == START_NOT_FINITE or status == JACOBIAN_NOT_FINITE:
        a[:, :] = np.nan
        if status == START_NOT_FINITE:
            fs[COST] = np.nan
        return
    p = a.shape[0]
    d = _column_norms(a)
    s = np.empty((p, p))
    for j in range(p):
        for k in range(p):
            s[j, k] = a[j, k] / (d[j] * d[k])
    w, v = np.linalg.eigh(s)
    if w[0] < 1e-8 * w[-1]:
        rows[XT, :] = rows[X]
        iw[PHASE] = FINAL  # J^T J stays: the driver evaluates J at X, then _covariance_svd
        return
    m = max(ndata, p)
    _covariance_from(ws, w, v, d, m, ndata)


@njit(**_JIT)
def _column_norms(a):
    p = a.shape[0]
    d = np.empty(p)
    for j in range(p):
        d[j] = np.sqrt(a[j, j])
        if not d[j] > 0.0:
            d[j] = 1.0
    return d


@njit(**_JIT)
def _covariance_svd(ws, jac, ndata) -> None:
    """The covariance from the SVD of ``J D^-1`` (J at the solution), as gir.fit.result.covariance
    does for an ill-conditioned J^T J."""
    a = ws[1]
    p, m = jac.shape
    d = _column_norms(a)
    scaled = np.empty((m, p))
    for i in range(m):
        for j in range(p):
            scaled[i, j] = jac[j, i] / d[j]
    _, sv, vt = np.linalg.svd(scaled, full_matrices=False)
    w = np.empty(p)
    v = np.empty((p, p))
    for k in range(p):
        w[k] = sv[p - 1 - k] ** 2
        for j in range(p):
            v[j, k] = vt[p - 1 - k, j]
    _covariance_from(ws, w, v, d, max(m, p), ndata)


@njit(**_JIT)
def _covariance_from(ws, w, v, d, m: int, ndata: int) -> None:
    """``scale * (J^T J)^-1`` from the eigenpairs ``w`` (ascending), ``v`` of the unit-diagonal
    normal matrix, into the workspace's matrix; directions below ``max(m, P) eps`` of the largest
    singular value are left out and parameters in them get NaN (gir.fit.result.covariance)."""
    _, a, _, fs, iw = ws
    p = a.shape[0]
    eps = np.finfo(np.float64).eps
    keep = np.empty(p, np.bool_)
    deficient = False
    for k in range(p):
        keep[k] = w[k] > (m * eps) ** 2 * w[p - 1]
        deficient = deficient or not keep[k]
    dof = ndata - p
    scale = 2.0 * fs[COST] / dof if dof > 0 else 1.0
    for i in range(p):
        for j in range(p):
            acc = 0.0
            for k in range(p):
                if keep[k]:
                    acc += v[i, k] * v[j, k] / w[k]
            a[i, j] = acc / (d[i] * d[j]) * scale
    if deficient:
        for i in range(p):
            bad = False
            for k in range(p):
                if not keep[k] and np.abs(v[i, k]) > 1e-8:
                    bad = True
            if bad:
                a[i, :] = np.nan
                a[:, i] = np.nan
    iw[DEFICIENT] = 1 if deficient else 0


# -- the driver ------------------------------------------------------------------------------------


@njit(**_JIT)
def fit_chunk(evaluate, fixed, index, wdata, weights, weighted, x0, lo, hi, base, free, positive, opts, scale,
              ndata, out_x, out_cov, out_f, out_i) -> None:  # fmt: skip
    """Fit each row of ``wdata`` (N, m) from the row of ``x0`` (N, P); results into ``out_x``, ``out_cov``,
    ``out_f`` and ``out_i``. ``evaluate(theta, fixed, index, y, jac)`` (a compiled C callback over raw
    pointers, :mod:`gir.fit.compiled_lm.numba_driver`) writes the model (m,) and its derivative
    columns (P, m) at the full parameter vector ``theta`` (``base`` with the free parameters, at
    positions ``free``, set); ``fixed`` and ``index`` are its inputs. Weights are one row for all
    or one per data set."""
    n, m = wdata.shape
    p = x0.shape[1]
    per_row = 1 if weights.shape[0] > 1 else 0
    y = np.empty(m)
    r = np.empty(m)
    jac = np.empty((p, m))
    theta = base.copy()
    for s in range(n):
        ws = workspace(p)
        w = weights[s * per_row]
        begin(ws, x0[s])
        while running(ws):
            xt = point(ws)
            ok = defined(xt, positive)
            if ok:
                for j in range(p):
                    theta[free[j]] = xt[j]
                evaluate(theta.ctypes, fixed.ctypes, index.ctypes, y.ctypes, jac.ctypes)
                if weighted:
                    for j in range(p):
                        for i in range(m):
                            jac[j, i] *= w[i]
                    for i in range(m):
                        r[i] = w[i] * y[i] - wdata[s, i]
                else:
                    for i in range(m):
                        r[i] = y[i] - wdata[s, i]
            advance(ws, r, jac, ok, lo, hi, opts, scale, ndata[s])
        results(ws, out_x[s], out_cov[s], out_f[s], out_i[s])
