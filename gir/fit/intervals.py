"""Uncertainties of a least-squares fit beyond its covariance: profile-likelihood confidence intervals
and the propagated standard error of a derived quantity.

::

    ci = result.conf_interval(["p1.x0"], sigmas=(1, 2))   # {"p1.x0": [(0.9545, lo2), (0.6827, lo1),
                                                          #   (0.0, best), (0.6827, hi1), (0.9545, hi2)]}
    area = result.propagate("p1.A * p1.F")                # area.value, area.stderr

**Profile intervals.** A parameter is held at trial values while the others are
re-fitted (Levenberg-Marquardt from the nearest fit already made, on the fit's own
problem: the held parameter's Jacobian column is computed and dropped, so nothing is
recompiled). Each limit is the root (``scipy.optimize.brentq``) of
``chi2(v) - chi2_min = delta(p)``:

- ``statistic="f"`` (the default, lmfit's ``f_compare``): an F-test of the fit with
  one parameter held against the best fit, ``delta = chi2_min F^-1(p; 1, nfree) / nfree``.
  It estimates the noise from the residual, as the standard errors do.
- ``statistic="chi2"``: Wilks' theorem, ``delta = s^2 chi2^-1(p; 1)`` (``sigma^2`` for
  ``sigma < 1`` taken as a probability aside), with ``s^2 = 1`` when weights ``1/sigma``
  were given (the chi-square is in units of the noise) and the reduced chi-square otherwise.

A level is a number of standard deviations ``sigma`` (probability ``erf(sigma / sqrt 2)``),
or a probability where below 1, as in lmfit. For a model linear in its parameters the
profile is a parabola and ``"chi2"`` gives ``x +- sigma * sqrt(redchi^-1 covar_ii)``
for weighted data. A limit beyond a bound is ``+-inf`` (with a warning).

**Propagation.** ``propagate(result, "p1.A * p1.F")``: the value of an expression of the
parameters (gir's expression language, :func:`gir.expr`; fixed parameters are constants,
expression parameters of a single data set their expressions) and its standard error
``sqrt(g^T C g)``, with ``g`` the expression's exact gradient (gir's forward-mode
autodiff) and ``C`` the fit's covariance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from gir.errors import GirError, InputError
from gir.errors import warn as gir_warn
from gir.fit.problem import Problem
from gir.fit.result import FitResult
from gir.fit.solver import minimize, solver_options

#: Solver tolerances of the re-fits with a parameter held: tighter than a fit's default, since the
#: chi-square differences the roots are found on are small compared with the chi-square.
PROFILE_TOLERANCES = {"ftol": 1e-12, "xtol": 1e-12, "gtol": 1e-12}
#: Steps out from the best value (each 1.6 times the last) before a limit is given up as unreachable.
MAX_STEPS = 50
STATISTICS = ("f", "chi2")


# -- levels ---------------------------------------------------------------------------


def probability(sigma: float) -> float:
    """A level's probability: ``erf(sigma / sqrt 2)``, or ``sigma`` itself below 1 (lmfit's rule)."""
    if not sigma > 0:
        raise InputError(f"sigmas must be positive, got {sigma}")
    return float(sigma) if sigma < 1 else math.erf(sigma / math.sqrt(2.0))


def delta_chi2(result: FitResult, p: float, statistic: str) -> float:
    """The rise of the chi-square above its minimum at a limit of probability ``p`` (module docstring)."""
    from scipy import stats

    if statistic == "f":
        if result.nfree < 1:
            raise InputError("the F-test needs more data points than free parameters")
        return result.chisqr * float(stats.f.ppf(p, 1, result.nfree)) / result.nfree
    if statistic == "chi2":
        scale = 1.0 if result.weighted else result.redchi
        return scale * float(stats.chi2.ppf(p, 1))
    raise InputError(f"statistic must be one of {STATISTICS}, got {statistic!r}")


# -- the profile of one parameter -------------------------------------------------------


class Profile:
    """``chi2`` of a fit with parameter ``j`` held at a value and the others re-fitted.

    Every evaluated ``(value, chi2, rest)`` is kept: a re-fit starts from the
    kept solution nearest its value, and :meth:`bracket` narrows root brackets.
    """

    def __init__(self, problem: Problem, x: np.ndarray, j: int):
        self.problem = problem
        self.j = j
        self.keep = np.arange(problem.nfree) != j
        self.x = np.asarray(x, dtype=np.float64)
        lo, hi = problem.bounds
        self.bounds = (lo[self.keep], hi[self.keep])
        self.options = solver_options(**PROFILE_TOLERANCES)
        self.points: dict[float, tuple[float, np.ndarray]] = {}

    def full(self, value: float, rest: np.ndarray) -> np.ndarray:
        x = self.x.copy()
        x[self.j] = value
        x[self.keep] = rest
        return x

    def __call__(self, value: float) -> float:
        value = float(value)
        if value in self.points:
            return self.points[value][0]
        if self.points:
            start = self.points[min(self.points, key=lambda v: abs(v - value))][1]
        else:
            start = self.x[self.keep]
        out = self._refit(value, start) if start.size else start
        chi2 = self._chisqr(self.full(value, out))
        self.points[value] = (chi2, out)
        return chi2

    def _refit(self, value: float, start: np.ndarray) -> np.ndarray:
        """The other parameters' best values with the held one at ``value``: Levenberg-Marquardt on the
        residual, or on the normal equations for a problem too large to hold its Jacobian."""
        if self.problem.blocked:
            from gir.fit.levmar import levmar_normal

            cost, normal = self._normal_functions(value)
            return levmar_normal(cost, normal, start, self.bounds, **self.options).x
        fun, jac = self._functions(value)
        return minimize(fun, start, jac, "levmar", self.bounds, self.options).x

    def _chisqr(self, x: np.ndarray) -> float:
        if self.problem.blocked:
            return float(self.problem.chisqr(x))
        r = self.problem.residual(x)
        return float(r @ r)

    def _functions(self, value: float) -> tuple[Callable[[np.ndarray], np.ndarray], ...]:
        """The residual and its Jacobian in the other parameters (one evaluation of both, cached by the
        problem; the held parameter's column is left out)."""

        def fun(rest: np.ndarray) -> np.ndarray:
            return self.problem.residual_and_jacobian(self.full(value, rest))[0]

        def jac(rest: np.ndarray) -> np.ndarray:
            return self.problem.residual_and_jacobian(self.full(value, rest))[1][:, self.keep]

        return fun, jac

    def _normal_functions(self, value: float) -> tuple[Callable[[np.ndarray], Any], ...]:
        """The cost and the normal equations in the other parameters (the held one's row and column
        left out), formed block by block by the problem."""
        keep = self.keep

        def cost(rest: np.ndarray) -> float:
            chisqr = self.problem.normal_equations(self.full(value, rest))[0]
            return 0.5 * chisqr if np.isfinite(chisqr) else np.inf

        def normal(rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            _, a, g = self.problem.normal_equations(self.full(value, rest))
            return a[np.ix_(keep, keep)], g[keep]

        return cost, normal

    def bracket(self, target: float, start: float, limit: float) -> tuple[float, float]:
        """The kept values nearest the crossing of ``target`` between ``start`` (below it) and ``limit``
        (above it)."""
        sign = 1.0 if limit > start else -1.0
        below = [v for v, (c, _) in self.points.items() if c < target and sign * (v - start) >= 0]
        above = [v for v, (c, _) in self.points.items() if c >= target and sign * (limit - v) >= 0]
        inner = max(below, key=lambda v: sign * v, default=start)
        outer = min((v for v in above if sign * (v - inner) > 0), key=lambda v: sign * v, default=limit)
        return inner, outer


def _step(result: FitResult, j: int, delta: float) -> float:
    """A first step out from the best value: where a parabola with the standard error reaches
    ``delta`` (lmfit's fallback, 20 % of the value, without a usable standard error)."""
    e, v = result.stderr[j], result.x[j]
    if np.isfinite(e) and e > 0:
        scale = result.redchi if np.isfinite(result.redchi) and result.redchi > 0 else 1.0
        return float(e * math.sqrt(delta / scale))
    return max(abs(v) * 0.2, 1e-3)


def _side(profile: Profile, result: FitResult, deltas: Sequence[float], direction: float) -> list[float]:
    """The limits on one side (``direction`` +-1) where the chi-square has risen by each of ``deltas``
    (ascending); +-inf where a bound comes first."""
    from scipy.optimize import brentq

    j = profile.j
    best, chi2_min = float(result.x[j]), result.chisqr
    bound = float(result.bounds[1][j] if direction > 0 else result.bounds[0][j])
    step = _step(result, j, deltas[-1])
    tol = 1e-9 * step
    limit, rise = best, 0.0
    for _ in range(MAX_STEPS):
        limit = best + direction * step
        if direction * (limit - bound) >= 0:
            limit = bound
        rise = profile(limit) - chi2_min
        if rise >= deltas[-1] or limit == bound:
            break
        step *= 1.6
    name = result.param_names[j]
    out = []
    for delta in deltas:
        if rise < delta:
            where = f"its bound {bound:g}" if limit == bound else f"{limit:g} after {MAX_STEPS} steps"
            gir_warn(
                f"conf_interval: the chi-square of {name!r} rises by {rise:.4g} < {delta:.4g} up to {where}"
            )
            out.append(direction * math.inf)
            continue
        a, b = profile.bracket(chi2_min + delta, best, limit)
        out.append(float(brentq(lambda v, d=delta: profile(v) - chi2_min - d, a, b, xtol=tol)))
    return out


def conf_interval(
    result: FitResult,
    names: Sequence[str] | None = None,
    sigmas: Sequence[float] = (1, 2, 3),
    *,
    statistic: str = "f",
) -> dict[str, list[tuple[float, float]]]:
    """Profile-likelihood confidence intervals of ``names`` (default: every free parameter).

    Returns lmfit's structure: name -> ``[(p_k, lower_k), ..., (p_1, lower_1),
    (0.0, best), (p_1, upper_1), ..., (p_k, upper_k)]`` with the probabilities
    ``p`` of ``sigmas`` ascending (``lmfit.printfuncs.report_ci`` prints it).
    ``statistic``: ``"f"`` (F-test, lmfit's default) or ``"chi2"`` (see the module docstring).
    """
    names = list(result.param_names if names is None else [names] if isinstance(names, str) else names)
    for name in names:
        if name not in result.param_names:
            raise InputError(
                f"conf_interval: {name!r} is not a free parameter; they are {list(result.param_names)}"
            )
    probs = sorted({probability(s) for s in sigmas})
    if not probs:
        raise InputError("conf_interval: give at least one level in sigmas")
    deltas = [delta_chi2(result, p, statistic) for p in probs]
    problem = result.problem()
    out = {}
    for name in names:
        j = result.param_names.index(name)
        profile = Profile(problem, result.x, j)
        lower = _side(profile, result, deltas, -1.0)
        upper = _side(profile, result, deltas, +1.0)
        below = [(p, v) for p, v in zip(probs, lower, strict=True)][::-1]
        above = [(p, v) for p, v in zip(probs, upper, strict=True)]
        out[name] = [*below, (0.0, float(result.x[j])), *above]
    return out


# -- derived quantities -------------------------------------------------------------------------


@attrs.frozen
class Derived:
    """A quantity derived from the parameters: its value, standard error and gradient (by name)."""

    expression: str
    value: float
    stderr: float
    gradient: dict[str, float]

    def __iter__(self):
        return iter((self.value, self.stderr))

    def __str__(self) -> str:
        return f"{self.expression} = {self.value:.8g} +/- {self.stderr:.4g}"


def _substitute(text: str, replacements: Mapping[str, str]) -> str:
    """``text`` with each whole name (dots and ``label:`` prefixes included) replaced, longest first."""
    if not replacements:
        return text
    alternatives = "|".join(re.escape(n) for n in sorted(replacements, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.:])(?:{alternatives})(?![\w.:])")
    return pattern.sub(lambda m: replacements[m.group()], text)


class Expression:
    """An expression of named parameters compiled once (numpy target), with its exact gradient.

    Names in ``constants`` are inlined as numbers and ``aliases`` as their own
    expressions (in parentheses); every other name must be one of ``names``.
    """

    def __init__(
        self,
        text: str,
        names: Sequence[str],
        constants: Mapping[str, float] | None = None,
        aliases: Mapping[str, str] | None = None,
    ):
        import gir

        if not isinstance(text, str):
            raise InputError(f"an expression must be a string, got {type(text).__name__}")
        self.text = text
        self.names = tuple(names)
        placeholders = {n: f"_p{i}" for i, n in enumerate(self.names)}
        body = _substitute(text, {n: f"({t})" for n, t in (aliases or {}).items()})
        body = _substitute(body, {n: f"({float(v)!r})" for n, v in (constants or {}).items()})
        body = _substitute(body, placeholders)
        try:
            graph = gir.expr(body)
        except GirError as e:
            raise InputError(f"cannot read the expression {text!r}: {e}") from None
        back = {p: n for n, p in placeholders.items()}
        unknown = [v.name for v in graph.inputs if v.name not in back]
        if unknown:
            raise InputError(
                f"unknown name {unknown[0]!r} in {text!r}; the parameters are {list(self.names)}"
            )
        self.exe = gir.compile(graph, target="numpy")
        self.columns = np.array([self.names.index(back[n]) for n in self.exe.param_names], dtype=np.intp)

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The value at ``x`` (in the order of ``names``) and its gradient with respect to ``x``."""
        grad = np.zeros(len(self.names))
        if not self.columns.size:
            return float(self.exe(np.zeros(0))), grad
        value, jac = self.exe.value_and_jacobian(np.asarray(x, dtype=np.float64)[self.columns])
        np.add.at(grad, self.columns, np.ravel(jac))
        return float(value), grad

    def values(self, xs: np.ndarray) -> np.ndarray:
        """The value at each row of ``xs`` (B, len(names)), in one batched evaluation."""
        xs = np.asarray(xs, dtype=np.float64)
        if not self.columns.size:
            return np.full(xs.shape[0], float(self.exe(np.zeros(0))))
        return np.asarray(self.exe.batch(xs[:, self.columns]), dtype=np.float64).reshape(xs.shape[0])


def result_expression(result: FitResult, text: str, names: Sequence[str] | None = None) -> Expression:
    """``text`` over a fit's free parameters (or ``names``), its fixed ones as constants and, for one
    data set, its expression parameters by their expressions."""
    aliases = {n: t for n, (t, _) in result.tied.items()} if len(result.datasets) == 1 else {}
    return Expression(text, result.param_names if names is None else names, result.fixed, aliases)


def propagate(result: FitResult, expression: str) -> Derived:
    """The value of ``expression`` at the solution and its standard error from the covariance,
    ``sqrt(g^T C g)`` with ``g`` the exact gradient (NaN where the covariance is undetermined)."""
    ex = result_expression(result, expression)
    value, grad = ex.value_and_gradient(result.x)
    used = grad != 0
    var = float(grad[used] @ result.covar[np.ix_(used, used)] @ grad[used])
    gradient = {n: float(g) for n, g in zip(result.param_names, grad, strict=True)}
    return Derived(expression, value, math.sqrt(var) if var >= 0 else math.nan, gradient)
