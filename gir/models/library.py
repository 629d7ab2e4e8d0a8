"""The spectroscopy component library: each component defined once, in NumPy.

A definition is an ordinary NumPy function decorated with its kind; gir traces
it into a composite graph, so every target and every derivative follows from
this one formula. The first argument is the axis the component lives on
(energy ``x``, time ``t``, time difference ``d`` for kernels, auxiliary ``z``
for profiles); the remaining arguments are its parameters, in order.

Each docstring has a summary, the formula (an indented block), notes, and a
``Parameters:`` list; ``help(gm.Voigt)`` and docs/components.md (written by
``python -m gir.models.reference --write``) show them with the component's kind
and default axes. Adding a component is adding one decorated function here (see
docs/models.md).
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
    """Gaussian peak of height A, with its width given as a standard deviation.

        A exp(-1/2 ((x - x0) / SD)^2)

    The FWHM is 2 sqrt(2 ln 2) SD = 2.3548 SD; the area is A SD sqrt(2 pi).

    Parameters:
        A: peak height (the value at x0), not the area
        x0: position of the maximum
        SD: standard deviation (not a FWHM)
    """
    return A * np.exp(-0.5 * ((x - x0) / SD) ** 2)


@peak
def GaussAsym(x, A, x0, SD, ratio):
    """Asymmetric Gaussian: width SD below x0 and SD * ratio from x0 on.

        A exp(-1/2 ((x - x0) / s)^2),  s = SD for x < x0,  s = SD ratio for x >= x0

    Parameters:
        A: peak height (the value at x0)
        x0: position of the maximum
        SD: standard deviation on the low side, x < x0 (not a FWHM)
        ratio: standard deviation on the high side divided by SD (1: a Gauss)
    """
    width = np.where(x < x0, SD, SD * ratio)
    return A * np.exp(-0.5 * ((x - x0) / width) ** 2)


@peak
def Lorentz(x, A, x0, W):
    """Lorentzian (Cauchy) peak of height A and full width at half maximum W.

        A / (1 + (2 (x - x0) / W)^2)

    The area is A pi W / 2.

    Parameters:
        A: peak height (the value at x0), not the area
        x0: position of the maximum
        W: full width at half maximum (FWHM)
    """
    return A / (1 + (2 * (x - x0) / W) ** 2)


@peak
def Voigt(x, A, x0, SD, W):
    """Voigt profile: a Gauss (standard deviation SD) convolved with a Lorentz (FWHM W), of height A.

        A Re w(z) / Re w(z0),  z = ((x - x0) + i W/2) / (SD sqrt 2),  z0 = i W / (2 SD sqrt 2)

    w is the Faddeeva function (scipy.special.wofz); dividing by Re w(z0)
    makes A the peak height. W = 0 gives a Gauss of standard deviation SD.

    Parameters:
        A: peak height (the value at x0), not the area
        x0: position of the maximum
        SD: standard deviation of the Gaussian part (not a FWHM; must be positive)
        W: full width at half maximum (FWHM) of the Lorentzian part
    """
    s = SD * SQRT2
    return A * wofz(((x - x0) + 0.5j * W) / s).real / wofz(0.5j * W / s).real


@peak
def GLS(x, A, x0, F, m):
    """Gauss-Lorentz sum (pseudo-Voigt): a mix of a Gauss and a Lorentz of equal FWHM F.

        A [(1 - m) exp(-4 ln2 u2) + m / (1 + 4 u2)],  u2 = ((x - x0) / F)^2

    Both parts are at half height at x0 +- F/2, so the sum's FWHM is F for every m.

    Parameters:
        A: peak height (the value at x0)
        x0: position of the maximum
        F: full width at half maximum (FWHM)
        m: Lorentz fraction, 0 (pure Gauss) to 1 (pure Lorentz)
    """
    u2 = ((x - x0) / F) ** 2
    return A * ((1 - m) * np.exp(-4 * LN2 * u2) + m / (1 + 4 * u2))


@peak
def GLP(x, A, x0, F, m):
    """Gauss-Lorentz product: a Gauss and a Lorentz of FWHM F multiplied, weighted by m.

        A exp(-4 ln2 (1 - m) u2) / (1 + 4 m u2),  u2 = ((x - x0) / F)^2

    F is the FWHM at m = 0 and m = 1; in between the product's FWHM is a
    little smaller (the value at x0 + F/2 is 0.471 A for m = 0.5).

    Parameters:
        A: peak height (the value at x0)
        x0: position of the maximum
        F: full width at half maximum (FWHM) of the pure Gauss and pure Lorentz limits
        m: Lorentz fraction, 0 (pure Gauss) to 1 (pure Lorentz)
    """
    u2 = ((x - x0) / F) ** 2
    return A * np.exp(-4 * LN2 * (1 - m) * u2) / (1 + 4 * m * u2)


@peak
def DS(x, A, x0, F, alpha):
    """Doniach-Sunjic line shape: a Lorentz with a power-law tail toward x < x0 for alpha > 0.

        A cos(pi alpha / 2 + (1 - alpha) atan(d / F)) / (F^2 + d^2)^((1 - alpha) / 2),  d = x - x0

    For alpha = 0 this is A F / (F^2 + d^2), a Lorentz of half width at half
    maximum F and height A / F: A is an amplitude, not the peak height, and for
    alpha > 0 the maximum lies below x0.

    Parameters:
        A: amplitude (the value at x0 is A cos(pi alpha / 2) / F^(1 - alpha))
        x0: position (of the maximum for alpha = 0)
        F: half width at half maximum (HWHM) of the Lorentzian core, not a FWHM
        alpha: asymmetry, 0 (symmetric) up to below 1
    """
    d = x - x0
    return A * np.cos(np.pi * alpha / 2 + (1 - alpha) * np.arctan(d / F)) / (F**2 + d**2) ** ((1 - alpha) / 2)


# -- backgrounds ----------------------------------------------------------------


@background
def Offset(x, y0):
    """Constant background.

        y0

    Parameters:
        y0: the constant value
    """
    return y0 + 0 * x


@background
def Line(x, slope, intercept):
    """Straight-line background over the whole energy axis (lmfit's LinearModel).

        slope x + intercept

    The intercept is the value at x = 0, not at the start of the data: on an
    axis far from 0 (84 eV) the two parameters are strongly correlated in a
    fit; LinBack with xStart at the window's start avoids that.

    Parameters:
        slope: change per unit of x
        intercept: value at x = 0
    """
    return slope * x + intercept


@background
def LinBack(x, m, b, xStart, xStop):
    """Ramp between two plateaus: constant b below xStart, slope m up to xStop, constant above.

        b                      for x < xStart
        m (x - xStart) + b     for xStart <= x <= xStop
        m (xStop - xStart) + b for x > xStop

    A continuous piecewise-linear background (a linear step), as used under a
    peak whose background differs on its two sides. It assumes xStart <=
    xStop; otherwise it steps from b to m (xStop - xStart) + b at xStart.

    Parameters:
        m: slope between xStart and xStop, per unit of x
        b: value below xStart (the low-x plateau)
        xStart: where the ramp starts
        xStop: where the ramp stops; above it the value stays m (xStop - xStart) + b
    """
    return np.where(x < xStart, b, np.where(x > xStop, m * (xStop - xStart) + b, m * (x - xStart) + b))


@background(signal=True)
def Shirley(x, S, pShirley):
    """Shirley background: pShirley times the reverse cumulative sum of the signal S along energy.

        B_i = pShirley sum_{j >= i} S_j

    S is the sum of the model's peaks (or of those named in ``signal=``),
    per time row in 2D. The sum runs over the energy points from i to the end
    of the axis in array order (the signal at higher kinetic energy on an
    increasing kinetic-energy axis); it is a sum over samples, not an integral,
    so pShirley scales with the energy step.

    Parameters:
        pShirley: scale of the background per unit of summed signal
    """
    return pShirley * np.flip(np.cumsum(np.flip(S, -1), -1), -1)


# -- time dependence of a parameter: p(t) = p + sum of these --------------------
# Branches that are not taken are kept finite so derivatives stay finite too.


@time_function
def stepFun(t, A, t0):
    """Step at t0.

        A H(t - t0),  H(u) = 1 for u >= 0, else 0

    Parameters:
        A: height of the step
        t0: time of the step
    """
    return np.where(t >= t0, A, 0.0)


@time_function
def linFun(t, m, t0):
    """Linear change from t0 on.

        m (t - t0) H(t - t0)

    Parameters:
        m: slope, per unit of time
        t0: start time
    """
    return np.where(t >= t0, m * (t - t0), 0.0)


@time_function
def expFun(t, A, tau, t0):
    """Exponential decay from t0 on.

        A exp(-(t - t0) / tau) H(t - t0)

    Parameters:
        A: value at t0
        tau: decay time (1/e time)
        t0: start time
    """
    return np.where(t >= t0, A * np.exp(-np.maximum(t - t0, 0.0) / tau), 0.0)


@time_function
def sinFun(t, A, f, phi, t0):
    """Oscillation from t0 on.

        A sin(2 pi f (t - t0) + phi) H(t - t0)

    Parameters:
        A: amplitude
        f: frequency in cycles per unit of time (not angular)
        phi: phase at t0, in radians
        t0: start time
    """
    return np.where(t >= t0, A * np.sin(2 * np.pi * f * (t - t0) + phi), 0.0)


@time_function
def sinDivX(t, A, f, t0):
    """Damped oscillation sin(u)/u from t0 on (the normalized sinc).

        A sinc(2 f (t - t0)) H(t - t0),  sinc(v) = sin(pi v) / (pi v)

    Parameters:
        A: value at t0
        f: frequency in cycles per unit of time (zeros at t0 + k / (2 f))
        t0: start time
    """
    return np.where(t >= t0, A * np.sinc(2 * f * (t - t0)), 0.0)


@time_function
def erfFun(t, A, SD, t0):
    """Smooth step: the integral of a Gaussian, half way up at t0.

        A/2 [1 + erf((t - t0) / (SD sqrt 2))]

    Unlike the other time functions it is not zero before t0. The 10-90 % rise
    time is 2.563 SD.

    Parameters:
        A: height of the step
        SD: standard deviation of the Gaussian the step is the integral of (not a FWHM)
        t0: time of the half-way point
    """
    return A / 2 * (1 + erf((t - t0) / (SD * SQRT2)))


@time_function
def sqrtFun(t, A, t0):
    """Square-root rise from t0 on.

        A sqrt(max(t - t0, 0))

    The derivative stays finite at t <= t0 (the untaken branch is kept finite).

    Parameters:
        A: value at t0 + 1
        t0: start time
    """
    positive = t > t0
    return np.where(positive, A * np.sqrt(np.where(positive, t - t0, 1.0)), 0.0)


# -- instrument response kernels: k(d), and their masses beyond the window ------
# Each returns (k(d), integral of k over [a, inf), integral of k over (-inf, b]).


@kernel
def gaussCONV(d, a, b, SD):
    """Gaussian instrument response.

        k(d) = exp(-1/2 (d / SD)^2)
        mass over [a, inf) = SD sqrt(pi/2) erfc(a / (SD sqrt 2))
        mass over (-inf, b] = SD sqrt(pi/2) erfc(-b / (SD sqrt 2))

    The convolution is normalized, so the kernel's scale does not matter.

    Parameters:
        SD: standard deviation (not a FWHM; FWHM = 2.3548 SD); must be positive
    """
    c = SD * np.sqrt(np.pi / 2)
    return np.exp(-0.5 * (d / SD) ** 2), c * erfc(a / (SD * SQRT2)), c * erfc(-b / (SD * SQRT2))


@kernel
def expSymCONV(d, a, b, tau):
    """Symmetric exponential (Laplace) instrument response.

        k(d) = exp(-|d| / tau)

    Parameters:
        tau: decay length on each side (1/e width); must be positive
    """
    above = np.where(a >= 0, tau * np.exp(-np.abs(a) / tau), 2 * tau - tau * np.exp(-np.abs(a) / tau))
    below = np.where(b <= 0, tau * np.exp(-np.abs(b) / tau), 2 * tau - tau * np.exp(-np.abs(b) / tau))
    return np.exp(-np.abs(d) / tau), above, below


@kernel
def expDecayCONV(d, a, b, tau):
    """One-sided exponential response: a value at time s spreads to later times (causal).

        k(d) = exp(-d / tau) for d >= 0, else 0   (d = t - s)

    Parameters:
        tau: decay time (1/e time); must be positive
    """
    k = np.where(d >= 0, np.exp(-np.maximum(d, 0.0) / tau), 0.0)
    return k, tau * np.exp(-np.maximum(a, 0.0) / tau), -tau * np.expm1(-np.maximum(b, 0.0) / tau)


@kernel
def expRiseCONV(d, a, b, tau):
    """One-sided exponential response: a value at time s spreads to earlier times.

        k(d) = exp(d / tau) for d <= 0, else 0   (d = t - s)

    Parameters:
        tau: rise time (1/e time); must be positive
    """
    k = np.where(d <= 0, np.exp(np.minimum(d, 0.0) / tau), 0.0)
    return k, -tau * np.expm1(np.minimum(a, 0.0) / tau), tau * np.exp(np.minimum(b, 0.0) / tau)


@kernel
def boxCONV(d, a, b, width):
    """Box (moving average) instrument response.

        k(d) = 1 for |d| <= width / 2, else 0

    Parameters:
        width: full width of the box; must be positive
    """
    half = width / 2
    k = np.where(np.abs(d) <= half, 1.0, 0.0)
    return k, np.minimum(np.maximum(half - a, 0.0), width), np.minimum(np.maximum(b + half, 0.0), width)


# -- profiles along an auxiliary axis: p(z) = p + sum of these ------------------


@profile
def pExpDecay(z, A, tau):
    """Exponential decay along the auxiliary axis (a depth profile).

        A exp(-z / tau)

    Parameters:
        A: value at z = 0
        tau: decay length (1/e length), in units of z
    """
    return A * np.exp(-z / tau)


@profile
def pLinear(z, m, b):
    """Linear profile along the auxiliary axis.

        m z + b

    Parameters:
        m: slope, per unit of z
        b: value at z = 0
    """
    return m * z + b


@profile
def pGauss(z, A, x0, SD):
    """Gaussian profile along the auxiliary axis.

        A exp(-1/2 ((z - x0) / SD)^2)

    Parameters:
        A: height (the value at z = x0)
        x0: position of the maximum along z
        SD: standard deviation (not a FWHM)
    """
    return A * np.exp(-0.5 * ((z - x0) / SD) ** 2)
