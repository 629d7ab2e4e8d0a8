"""``J^T J`` and ``J^T r`` (and ``r^T r``) for a tall, column-major Jacobian, as Levenberg-Marquardt
needs them.

BLAS handles a matrix of a few columns poorly (``J.T @ J`` of 240,000 x 9 runs
at a tenth of the core's peak). With Numba installed, one pass over row blocks
that fit in L1 does both products: every pair of columns is a dot product over
the block, vectorized (the sums may be reassociated, which blocking makes more
accurate, not less); about 40% faster here. Without Numba, or for small or
row-major Jacobians, BLAS. The kernel also sums ``r^T r`` in its pass over
``r``: a fit that adds up many blocks then calls no BLAS at all (each BLAS
call on a busy two-core machine may wait for its threads, ~20 ms a call).
:func:`residual_squares` sums a batch of model rows' squared residuals in one pass.
"""

from __future__ import annotations

import functools

import numpy as np

#: Rows per block: nine columns of it fill about half of a 32 kB L1 cache.
BLOCK = 256


@functools.cache
def _kernel():
    try:
        from numba import njit
    except ImportError:
        return None

    @njit(fastmath={"reassoc", "contract"}, nogil=True, cache=True)
    def normal(jac, r, a, g):  # pragma: no cover (compiled)
        n, p = jac.shape
        a[:] = 0.0
        g[:] = 0.0
        rr = 0.0
        for start in range(0, n, BLOCK):
            stop = min(n, start + BLOCK)
            acc = 0.0
            for i in range(start, stop):
                acc += r[i] * r[i]
            rr += acc
            for j in range(p):
                cj = jac[start:stop, j]
                acc = 0.0
                for i in range(stop - start):
                    acc += cj[i] * r[start + i]
                g[j] += acc
                for k in range(j + 1):
                    ck = jac[start:stop, k]
                    acc = 0.0
                    for i in range(stop - start):
                        acc += cj[i] * ck[i]
                    a[j, k] += acc
        for j in range(p):
            for k in range(j):
                a[k, j] = a[j, k]
        return rr

    return normal


def normal_equations(jac: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(J^T J, J^T r)``."""
    return _products(jac, r, square=False)[:2]


def normal_system(jac: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(J^T J, J^T r, r^T r)``: one block's share of the normal equations and of the squared residual."""
    return _products(jac, r, square=True)


def _products(jac: np.ndarray, r: np.ndarray, square: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """``(J^T J, J^T r, r^T r)``, the last only with ``square`` from BLAS (else NaN there)."""
    n, p = jac.shape
    kernel = _kernel() if n >= 16 * BLOCK and jac.flags.f_contiguous and jac.dtype == np.float64 else None
    if kernel is None:
        return jac.T @ jac, jac.T @ r, float(r @ r) if square else np.nan
    a, g = np.empty((p, p)), np.empty(p)
    rr = kernel(jac, np.ascontiguousarray(r, dtype=np.float64), a, g)
    return a, g, float(rr)


@functools.cache
def _squares_kernel():
    try:
        from numba import njit
    except ImportError:
        return None

    @njit(fastmath={"reassoc", "contract"}, nogil=True, cache=True)
    def squares(y, w, wd, out):  # pragma: no cover (compiled)
        for b in range(y.shape[0]):
            acc = 0.0
            for i in range(y.shape[1]):
                r = y[b, i] * w[i] - wd[i]
                acc += r * r
            out[b] = acc

    return squares


def residual_squares(y: np.ndarray, w: np.ndarray | None, wd: np.ndarray) -> np.ndarray:
    """``sum((w * y[b] - wd)^2)`` for each row of ``y`` (B, n) (``w`` None: 1), in one pass over ``y``
    with Numba (a batch of model rows is read once instead of three times), else with NumPy."""
    kernel = _squares_kernel()
    out = np.empty(y.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        if kernel is not None and y.dtype == np.float64 and y.flags.c_contiguous:
            w = np.ones(y.shape[1]) if w is None else np.ascontiguousarray(w)
            kernel(y, w, np.ascontiguousarray(wd), out)
        else:
            r = y - wd if w is None else y * w - wd
            out[:] = np.einsum("ij,ij->i", r, r)
    return out
