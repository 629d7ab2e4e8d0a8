"""The Faddeeva function w(z) = exp(-z^2) erfc(-iz) for Numba, in plain float arithmetic.

Everything below works on the real and imaginary parts ``(x, y)`` of ``z``
with real operations only (no complex type, no tables beyond a few
constants), so the same algorithm transcribes line by line to JAX
(``jnp.where`` for the branches). ``scipy.special.wofz`` is the reference.

Algorithm
---------
Symmetries first: ``w(-x + iy) = conj(w(x + iy))`` lets the core work on
``x >= 0``, and ``w(z) = 2 exp(-z^2) - w(-z)`` maps ``y < 0`` to the upper
half plane. In the upper half plane, with ``r = |z|``:

1. ``r >= 7``: the Laplace continued fraction
   ``w(z) = (i/sqrt(pi)) / (z - (1/2)/(z - 1/(z - (3/2)/(z - 2/(z - ...)))))``,
   evaluated bottom up with N terms (N = 16 at r = 7 down to 3 at r = 200;
   chosen so the truncation error is below 3e-16, measured against mpmath).
   Its imaginary parts stay positive all the way up, so Re w keeps full
   relative accuracy even where it is tiny (large x, small y). Close to the
   real axis (y < 1e-3, so x >= 7) the truncated fraction is the Dawson part
   of ``w(z) = exp(-z^2) + (2i/sqrt(pi)) F(z)``; the (tiny) ``exp(-z^2)`` is
   added, so that ``Re w(x) = exp(-x^2)`` on the axis.
2. ``r < 7`` and ``y >= 1e-3``: the trapezoidal rule with step ``h = 3/8``
   applied to ``w(z) = (i/pi) Int exp(-t^2)/(z - t) dt``, plus the exact
   correction for the pole at ``t = z`` (Chiarella & Reichel 1968, Matta &
   Reichel 1971)::

       w(z) = (i h/pi) sum_n exp(-n^2 h^2)/(z - n h) - 2 exp(-z^2) q/(1 - q),
       q = exp(2 pi i z/h),

   with an error of order exp(-pi^2/h^2) = 3e-31 (the correction applies for
   y < pi/h, which holds everywhere in this region). The sum pairs n and -n,
   and each pair is written in real form, ``Re = 2y(r^2 + a^2)/D``,
   ``Im = 2x((x-a)(x+a) + y^2)/D`` with ``a = n h`` and
   ``D = ((x-a)^2 + y^2)((x+a)^2 + y^2)``: the real parts are sums of
   positive terms. 19 pairs reach exp(-a^2) < 1e-20. The correction is
   computed without avoidable cancellation: x is split as ``x = n0 h + f``
   with ``n0 = round(x/h)`` (exact, since h is a power-of-two fraction), so
   ``q = exp(-2 pi y/h) exp(2 pi i f/h)``,
   ``1 - q = -expm1(-u) + 2 e^-u sin^2(theta/2) - i e^-u sin(theta)`` and
   ``exp(-z^2) = exp(-(n0 h)^2) exp(y^2 - f (x + n0 h)) (cos 2xy - i sin 2xy)``.
   Near ``x = n0 h`` the n0-th term and the correction cancel by a factor of
   about (h/pi)/y, about 120 at y = 1e-3.
3. ``r < 7`` and ``|y| < 1e-3`` (either side of the axis): a Taylor
   expansion (8 terms) from ``z0 = x + 1e-3 i`` using
   ``w' = -2 z w + 2i/sqrt(pi)`` and ``w^(k+1) = -2 z w^(k) - 2 k w^(k-1)``.
   Relative to |w| this is as accurate as case 2. Re w alone loses accuracy
   where it is much smaller than |w| (|x| > 4, where Re w -> exp(-x^2)), so
   for ``|y| < 1e-8`` it is taken from the expansion about the axis,
   ``Re w = Re exp(-z^2) - y (2/sqrt(pi) - 2 x Im w) + O(y^3)``, exact at y = 0.
4. ``|z| > 1e8``: ``w = i/(sqrt(pi) z)`` computed with scaling (no overflow).

Accuracy (tests/test_numba.py, grid: Re z in [-200, 200] step 0.1 and
[-10, 10] step 0.01, Im z 400 log-spaced points in [1e-3, 100]): against
scipy.special.wofz, max |w - wofz|/|wofz| = 4.6e-14 and max
|Re w - Re wofz|/|Re wofz| = 1.2e-13, the latter at z = 6.01 + 0.1i where
scipy itself is 1.1e-13 off (mpmath, 40 digits); against mpmath on 3500
random points of the same region both errors stay below 2.2e-14. Outside it:
2.6e-14 (relative to |w|) for 0 <= |y| < 1e-3, 4.7e-14 for y < 0 down to
-6. Im w vanishes on x = 0; for |x| < 1e-8 it comes from
``Im w = x (2/sqrt(pi) - 2 y w(iy)) + O(x^3)``, but for 1e-8 < |x| << 1 and
small y it is accurate relative to |w|, not to itself (about 1e-10 at
y = 1e-3, from the pole cancellation in case 2).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Step of the trapezoidal rule (exactly representable: x - n0*H is exact).
H = 0.375
#: Number of (n, -n) pairs in the trapezoidal sum.
NPAIRS = 19
#: exp(-(n H)^2) for n = 0 .. NPAIRS + 1.
WEIGHTS = np.exp(-((np.arange(NPAIRS + 2) * H) ** 2))
#: Radius beyond which the continued fraction is used.
R_CF = 7.0
#: Below this |imaginary part| (and inside R_CF) a Taylor step from Y_TAYLOR is used.
Y_TAYLOR = 1e-3
#: Below this |imaginary part| Re w comes from its expansion about the real axis.
Y_TINY = 1e-8
#: Below this |real part| Im w comes from its expansion about the imaginary axis.
X_TINY = 1e-8
#: Beyond this modulus w = i/(sqrt(pi) z) to double precision.
R_ASYMPTOTIC = 1e8
SQRT_PI = math.sqrt(math.pi)
INV_SQRT_PI = 1.0 / SQRT_PI
TWO_PI_OVER_H = 2.0 * math.pi / H

_jit = njit(cache=True, error_model="numpy")


@_jit
def _cf_terms(r2):
    """Continued-fraction depth for |z|^2 = r2 (truncation error < 3e-16)."""
    if r2 < 64.0:
        return 17
    if r2 < 144.0:
        return 13
    if r2 < 400.0:
        return 10
    if r2 < 3600.0:
        return 7
    return 5


@_jit
def _w_cf(x, y, n):
    """Laplace continued fraction with n terms; y > 0."""
    rr = 0.0
    ri = 0.0
    for k in range(n, 0, -1):
        tr = x - rr
        ti = y - ri
        d = tr * tr + ti * ti
        rr = 0.5 * k * tr / d
        ri = -0.5 * k * ti / d
    tr = x - rr
    ti = y - ri
    d = SQRT_PI * (tr * tr + ti * ti)
    return ti / d, tr / d


@_jit
def _w_asymptotic(x, y):
    """w = i/(sqrt(pi) z) with scaling, for |z| > R_ASYMPTOTIC (y >= 0)."""
    s = max(abs(x), y)
    xs = x / s
    ys = y / s
    d = SQRT_PI * s * (xs * xs + ys * ys)
    return ys / d, xs / d


@_jit
def _w_trapezoid(x, y):
    """Trapezoidal sum with pole correction; 0 <= x < R_CF, y > 0."""
    x2 = x * x
    y2 = y * y
    r2 = x2 + y2
    sre = y / r2  # the n = 0 term, i/z
    sim = x / r2
    for n in range(1, NPAIRS + 1):
        a = n * H
        a2 = a * a
        xm = x - a
        xp = x + a
        c = 2.0 * WEIGHTS[n] / ((xm * xm + y2) * (xp * xp + y2))
        sre += c * y * (r2 + a2)
        sim += c * x * (xm * xp + y2)  # r^2 - a^2 without cancellation near x = a
    scale = H / math.pi
    re = scale * sre
    im = scale * sim
    # correction -2 exp(-z^2) q/(1-q), q = exp(2 pi i z/h); x = n0 h + f exactly
    n0 = math.floor(x / H + 0.5)
    a0 = n0 * H
    f = x - a0
    e = WEIGHTS[n0] * math.exp(y2 - f * (x + a0))
    er = e * math.cos(2.0 * x * y)
    ei = -e * math.sin(2.0 * x * y)
    u = TWO_PI_OVER_H * y
    theta = TWO_PI_OVER_H * f
    eu = math.exp(-u)
    sh = math.sin(0.5 * theta)
    st = math.sin(theta)
    dr = -math.expm1(-u) + 2.0 * eu * sh * sh  # 1 - q
    di = -eu * st
    qr = eu * math.cos(theta)
    qi = eu * st
    den = dr * dr + di * di
    tr = (qr * dr + qi * di) / den  # q/(1-q)
    ti = (qi * dr - qr * di) / den
    re -= 2.0 * (er * tr - ei * ti)
    im -= 2.0 * (er * ti + ei * tr)
    return re, im


@_jit
def _w_near_axis(x, y):
    """Taylor expansion from x + i Y_TAYLOR to x + iy, for |y| < Y_TAYLOR and 0 <= x < R_CF."""
    w0r, w0i = _w_trapezoid(x, Y_TAYLOR)
    zr = x
    zi = Y_TAYLOR
    # w' = -2 z w + 2i/sqrt(pi)
    w1r = -2.0 * (zr * w0r - zi * w0i)
    w1i = -2.0 * (zr * w0i + zi * w0r) + 2.0 * INV_SQRT_PI
    d = y - Y_TAYLOR  # z - z0 = i d
    # p = (i d)^k / k!, kept as (pr, pim)
    pr = 0.0
    pim = d
    sr = w0r + (w1r * pr - w1i * pim)
    si = w0i + (w1r * pim + w1i * pr)
    wpr, wpi = w0r, w0i
    wr, wi = w1r, w1i
    for k in range(1, 8):
        # w^(k+1) = -2 z w^(k) - 2 k w^(k-1)
        nr = -2.0 * (zr * wr - zi * wi) - 2.0 * k * wpr
        ni = -2.0 * (zr * wi + zi * wr) - 2.0 * k * wpi
        wpr, wpi = wr, wi
        wr, wi = nr, ni
        pr, pim = -pim * d / (k + 1), pr * d / (k + 1)
        sr += wr * pr - wi * pim
        si += wr * pim + wi * pr
    if abs(y) < Y_TINY:
        # Re w = Re exp(-z^2) - y (2/sqrt(pi) - 2 x Im w(x)) + O(y^3), without the cancellation
        sr = math.exp(y * y - x * x) * math.cos(2.0 * x * y) - y * (2.0 * INV_SQRT_PI - 2.0 * x * si)
    return sr, si


@_jit
def _w_upper(x, y):
    """w(x + iy) for x >= 0 and y > 0, away from the real axis (y >= Y_TAYLOR or |z| >= R_CF)."""
    r2 = x * x + y * y
    if r2 < R_CF * R_CF:
        return _w_trapezoid(x, y)
    if r2 > R_ASYMPTOTIC * R_ASYMPTOTIC:
        return _w_asymptotic(x, y)
    re, im = _w_cf(x, y, _cf_terms(r2))
    if y < Y_TAYLOR:  # near the real axis the fraction gives the Dawson part; add exp(-z^2)
        e = math.exp(y * y - x * x)
        re += e * math.cos(2.0 * x * y)
        im -= e * math.sin(2.0 * x * y)
    return re, im


@_jit
def faddeeva(x, y):
    """(Re w, Im w) of w(x + iy), for any finite or infinite x, y."""
    if x != x or y != y:
        return math.nan, math.nan
    ax = abs(x)
    if (ax == math.inf and y != -math.inf) or y == math.inf:
        return 0.0, (-0.0 if x < 0.0 else 0.0)
    if abs(y) < Y_TAYLOR and ax < R_CF:
        re, im = _w_near_axis(ax, y)  # both sides of the axis
    elif y > 0.0:
        re, im = _w_upper(ax, y)
    else:
        # w(z) = 2 exp(-z^2) - w(-z); -z = -x - iy has positive imaginary part
        re, im = _w_upper(ax, -y)
        im = -im  # w(-x - iy) from w(|x| - iy) by the x-symmetry, for x >= 0
        e = 2.0 * math.exp(y * y - ax * ax)
        c = 2.0 * ax * y
        cs = math.cos(c)
        sn = math.sin(c)
        re = (e * cs if cs != 0.0 else 0.0) - re  # no inf * 0 when exp overflows
        im = (-e * sn if sn != 0.0 else 0.0) - im
    if ax < X_TINY and y * y < R_CF * R_CF:
        # Im w is odd in x: Im w = x (2/sqrt(pi) - 2 y w(iy)) + O(x^3), without the cancellation
        im = ax * (2.0 * INV_SQRT_PI - 2.0 * y * re)
    if x < 0.0:
        im = -im
    return re, im


@_jit
def wofz_re(x, y):
    """Re w(x + iy)."""
    return faddeeva(x, y)[0]


@_jit
def wofz_im(x, y):
    """Im w(x + iy)."""
    return faddeeva(x, y)[1]


@_jit
def erfcx(x):
    """exp(x^2) erfc(x) = w(ix) for real x (inf at -inf, where w's evaluation gives nan)."""
    return math.inf if x == -math.inf else faddeeva(0.0, x)[0]
