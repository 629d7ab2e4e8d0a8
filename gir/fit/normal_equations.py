"""``J^T J`` and ``J^T r`` for a tall, column-major Jacobian, as Levenberg-Marquardt needs them.

BLAS handles a matrix of a few columns poorly (``J.T @ J`` of 240,000 x 9 runs
at a tenth of the core's peak). With Numba installed, one pass over row blocks
that fit in L1 does both products: every pair of columns is a dot product over
the block, vectorized (the sums may be reassociated, which blocking makes more
accurate, not less); about 40% faster here. Without Numba, or for small or
row-major Jacobians, BLAS.
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
        for start in range(0, n, BLOCK):
            stop = min(n, start + BLOCK)
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

    return normal


def normal_equations(jac: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(J^T J, J^T r)``."""
    n, p = jac.shape
    kernel = _kernel() if n >= 16 * BLOCK and jac.flags.f_contiguous and jac.dtype == np.float64 else None
    if kernel is None:
        return jac.T @ jac, jac.T @ r
    a, g = np.empty((p, p)), np.empty(p)
    kernel(jac, np.ascontiguousarray(r, dtype=np.float64), a, g)
    return a, g
