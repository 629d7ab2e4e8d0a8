"""The spectroscopy component library: each component defined once, in NumPy.

A definition is an ordinary NumPy function decorated with its kind; gir traces
it into a composite graph, so every target and every derivative follows from
this one formula. The first argument is the axis the component lives on
(energy ``x``, time ``t``, time difference ``d`` for kernels, auxiliary ``z``
for profiles); the remaining arguments are its parameters, in order.

Adding a component is adding one decorated function here (see docs/models.md).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, erfc, wofz

from gir.models.component import background, kernel, peak, profile, time_function

LN2 = np.log(2.0)
SQRT2 = np.sqrt(2.0)

# -- peaks on the energy axis ---------------------------------------------------


@peak
def Gauss(x, A, x0, SD):
    return A * np.exp(-0.5 * ((x - x0) / SD) ** 2)


@peak
def GaussAsym(x, A, x0, SD, ratio):
    """Gauss with width SD below x0 and SD * ratio from x0 on."""
    width = np.where(x < x0, SD, SD * ratio)
    return A * np.exp(-0.5 * ((x - x0) / width) ** 2)


@peak
def Lorentz(x, A, x0, W):
    """W is the full width at half maximum."""
    return A / (1 + (2 * (x - x0) / W) ** 2)


@peak
def Voigt(x, A, x0, SD, W):
    """Gauss (SD) convolved with Lorentz (FWHM W), scaled so that A is the peak height."""
    s = SD * SQRT2
    return A * wofz(((x - x0) + 0.5j * W) / s).real / wofz(0.5j * W / s).real


@peak
def GLS(x, A, x0, F, m):
    """Gauss-Lorentz sum (pseudo-Voigt) with FWHM F and Lorentz fraction m."""
    u2 = ((x - x0) / F) ** 2
    return A * ((1 - m) * np.exp(-4 * LN2 * u2) + m / (1 + 4 * u2))


@peak
def GLP(x, A, x0, F, m):
    """Gauss-Lorentz product with FWHM F and Lorentz fraction m."""
    u2 = ((x - x0) / F) ** 2
    return A * np.exp(-4 * LN2 * (1 - m) * u2) / (1 + 4 * m * u2)


@peak
def DS(x, A, x0, F, alpha):
    """Doniach-Sunjic line shape with width F and asymmetry alpha."""
    d = x - x0
    return A * np.cos(np.pi * alpha / 2 + (1 - alpha) * np.arctan(d / F)) / (F**2 + d**2) ** ((1 - alpha) / 2)


# -- backgrounds ----------------------------------------------------------------


@background
def Offset(x, y0):
    return y0 + 0 * x


@background
def LinBack(x, m, b, xStart, xStop):
    """b below xStart, a line of slope m up to xStop, constant above."""
    return np.where(x < xStart, b, np.where(x > xStop, m * (xStop - xStart) + b, m * (x - xStart) + b))


@background(signal=True)
def Shirley(x, S, pShirley):
    """pShirley times the reverse cumulative sum of the signal S along energy."""
    return pShirley * np.flip(np.cumsum(np.flip(S, -1), -1), -1)


# -- time dependence of a parameter: p(t) = p + sum of these --------------------
# Branches that are not taken are kept finite so derivatives stay finite too.


@time_function
def stepFun(t, A, t0):
    return np.where(t >= t0, A, 0.0)


@time_function
def linFun(t, m, t0):
    return np.where(t >= t0, m * (t - t0), 0.0)


@time_function
def expFun(t, A, tau, t0):
    return np.where(t >= t0, A * np.exp(-np.maximum(t - t0, 0.0) / tau), 0.0)


@time_function
def sinFun(t, A, f, phi, t0):
    return np.where(t >= t0, A * np.sin(2 * np.pi * f * (t - t0) + phi), 0.0)


@time_function
def sinDivX(t, A, f, t0):
    return np.where(t >= t0, A * np.sinc(2 * f * (t - t0)), 0.0)


@time_function
def erfFun(t, A, SD, t0):
    return A / 2 * (1 + erf((t - t0) / (SD * SQRT2)))


@time_function
def sqrtFun(t, A, t0):
    """A sqrt(max(t - t0, 0)); the inner where keeps the derivative finite at t <= t0."""
    positive = t > t0
    return np.where(positive, A * np.sqrt(np.where(positive, t - t0, 1.0)), 0.0)


# -- instrument response kernels: k(d), and their masses beyond the window ------
# Each returns (k(d), integral of k over [a, inf), integral of k over (-inf, b]).


@kernel
def gaussCONV(d, a, b, SD):
    c = SD * np.sqrt(np.pi / 2)
    return np.exp(-0.5 * (d / SD) ** 2), c * erfc(a / (SD * SQRT2)), c * erfc(-b / (SD * SQRT2))


@kernel
def expSymCONV(d, a, b, tau):
    above = np.where(a >= 0, tau * np.exp(-np.abs(a) / tau), 2 * tau - tau * np.exp(-np.abs(a) / tau))
    below = np.where(b <= 0, tau * np.exp(-np.abs(b) / tau), 2 * tau - tau * np.exp(-np.abs(b) / tau))
    return np.exp(-np.abs(d) / tau), above, below


@kernel
def expDecayCONV(d, a, b, tau):
    k = np.where(d >= 0, np.exp(-np.maximum(d, 0.0) / tau), 0.0)
    return k, tau * np.exp(-np.maximum(a, 0.0) / tau), -tau * np.expm1(-np.maximum(b, 0.0) / tau)


@kernel
def expRiseCONV(d, a, b, tau):
    k = np.where(d <= 0, np.exp(np.minimum(d, 0.0) / tau), 0.0)
    return k, -tau * np.expm1(np.minimum(a, 0.0) / tau), tau * np.exp(np.minimum(b, 0.0) / tau)


@kernel
def boxCONV(d, a, b, width):
    half = width / 2
    k = np.where(np.abs(d) <= half, 1.0, 0.0)
    return k, np.minimum(np.maximum(half - a, 0.0), width), np.minimum(np.maximum(b + half, 0.0), width)


# -- profiles along an auxiliary axis: p(z) = p + sum of these ------------------


@profile
def pExpDecay(z, A, tau):
    return A * np.exp(-z / tau)


@profile
def pLinear(z, m, b):
    return m * z + b


@profile
def pGauss(z, A, x0, SD):
    return A * np.exp(-0.5 * ((z - x0) / SD) ** 2)
