"""Time functions convolved with a Gaussian instrument response, in closed form.

``m.dynamics(..., irf=gm.gaussCONV(SD=...), convolution="analytic")`` replaces
the quadrature (an O(T S) sum of kernel values, rebuilt every call because SD
is a fit parameter) with the exact integrals below, O(T) per call. Each is the
normalized convolution's share of one term over the time window [s0, sN]:

    W(t) = integral over [s0, sN] of k(t - s) f(s) ds / (SD sqrt(2 pi)),  k(d) = exp(-d^2 / (2 SD^2))

and the trace outside the window is its edge value, as in the quadrature. The
arguments are the time ``t``, its distances to the window's edges ``a = t - s0``
and ``b = t - sN`` (inputs the model derives from the time axis), the width and
the term's parameters. Differences of erfc are taken where both are small and
the exponential term goes through erfcx, so nothing overflows or cancels far
from the edges. The quadrature converges to these values as the time axis gets
finer (second order in the step).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import erfc, erfcx

SQRT2 = np.sqrt(2.0)


def _between(near, far, r):
    """2 x the Gaussian's normalized mass for t - s from ``far`` up to ``near`` (far <= near)."""
    return np.where(near < 0, erfc(-near / r) - erfc(-far / r), erfc(far / r) - erfc(near / r))


def _start(t, a, b, t0):
    """t - max(t0, s0), kept within the window: the near end of a term that starts at t0."""
    return np.minimum(np.maximum(t - t0, b), a)


def stepFun(t, a, b, SD, A, t0):
    near = _start(t, a, b, t0)
    return 0.5 * A * _between(near, b, SD * SQRT2)


def linFun(t, a, b, SD, m, t0):
    near = _start(t, a, b, t0)
    r = SD * SQRT2
    slope_part = SD / np.sqrt(2 * np.pi) * (np.exp(-((near / r) ** 2)) - np.exp(-((b / r) ** 2)))
    return m * (slope_part + 0.5 * (t - t0) * _between(near, b, r))


def expFun(t, a, b, SD, A, tau, t0):
    r = SD * SQRT2
    shift = SD * SD / tau

    def end(e):  # exp(-(s - t0)/tau) exp(-e^2 / 2 SD^2) erfcx((shift - e) / r), at s = t - e
        q = (shift - e) / r
        damped = np.exp(-np.maximum(t - e - t0, 0.0) / tau - (e / r) ** 2) * erfcx(np.abs(q))
        # erfcx(q) = 2 exp(q^2) - erfcx(-q): the bulk term, finite where it is taken (q < 0)
        bulk = 2 * np.exp(np.minimum(-(t - t0) / tau + 0.5 * (SD / tau) ** 2, 0.0))
        return np.where(q < 0, bulk - damped, damped)

    return 0.5 * A * (end(_start(t, a, b, t0)) - end(b))


def edge_masses(a, b, SD):
    """The normalized Gaussian masses beyond the first and the last sample: (M_L, M_R)."""
    r = SD * SQRT2
    return 0.5 * erfc(a / r), 0.5 * erfc(-b / r)


#: kernel name -> time function name -> its convolved window share ``(t, a, b, width, *params)``.
CLOSED_FORMS: dict[str, dict[str, Callable]] = {
    "gaussCONV": {"stepFun": stepFun, "linFun": linFun, "expFun": expFun},
}
