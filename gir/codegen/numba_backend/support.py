"""Scalar helpers the generated Numba modules import: NumPy semantics in scalar code.

Each function reproduces the NumPy ufunc the op registry names, for one
element, so a fused loop gives what the NumPy target gives. They are small
and LLVM inlines them into the loops (vectorization included).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_jit = njit(cache=True, error_model="numpy")


@_jit
def sign(x):
    """np.sign for a float: -1, 0 or 1, and NaN for NaN."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0 if x == 0.0 else x


@_jit
def minimum(a, b):
    """np.minimum: NaN if either operand is NaN."""
    return a if (a < b or a != a) else b


@_jit
def maximum(a, b):
    """np.maximum: NaN if either operand is NaN."""
    return a if (a > b or a != a) else b


@_jit
def sinc(x):
    """np.sinc, computed the way NumPy does: sin(pi y)/(pi y), y = 1e-20 at 0."""
    y = math.pi * (1.0e-20 if x == 0.0 else x)
    return math.sin(y) / y


@_jit
def _pairwise_leaf(a, start, n):
    """NumPy's pairwise sum of a[start:start+n] for n <= 128: 8 accumulators."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0 = a[start]
    r1 = a[start + 1]
    r2 = a[start + 2]
    r3 = a[start + 3]
    r4 = a[start + 4]
    r5 = a[start + 5]
    r6 = a[start + 6]
    r7 = a[start + 7]
    i = start + 8
    stop = start + n - n % 8
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + n:
        res += a[i]
        i += 1
    return res


@_jit
def pairwise_sum(a):
    """Sum of a 1-D float array in NumPy's order, so results agree to the last bit.

    np.sum along a contiguous axis splits the range in halves (rounded to
    multiples of 8) down to blocks of at most 128, sums each block with 8
    accumulators and adds the halves. The recursion is unrolled here with an
    explicit stack (Numba's cache cannot hold recursive functions).
    """
    n = a.shape[0]
    if n <= 128:
        return _pairwise_leaf(a, 0, n)
    starts = np.empty(64, np.int64)
    sizes = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)  # 0: left half next, 1: right half next, 2: add the halves
    values = np.empty(64)
    starts[0] = 0
    sizes[0] = n
    top = 0
    nvalues = 0
    while top >= 0:
        m = sizes[top]
        if m <= 128:
            values[nvalues] = _pairwise_leaf(a, starts[top], m)
            nvalues += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top] == 2:
            values[nvalues - 2] = values[nvalues - 2] + values[nvalues - 1]
            nvalues -= 1
            top -= 1
            continue
        first = stage[top] == 0
        stage[top] += 1
        top += 1
        starts[top] = starts[top - 1] if first else starts[top - 1] + half
        sizes[top] = half if first else m - half
        stage[top] = 0
    return values[0]
