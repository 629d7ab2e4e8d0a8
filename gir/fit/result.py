"""Fit results: best values, uncertainties, statistics, a text report and plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from gir.errors import InputError
from gir.errors import warn as gir_warn


@attrs.define(eq=False, slots=False)
class DatasetFit:
    """One data set of a fit on its (windowed) grid."""

    label: str
    param_names: tuple[str, ...]  # the executable's parameters
    theta: np.ndarray  # the executable's full theta at the solution (fixed values included)
    axes: dict[str, np.ndarray]  # axis name -> values on the fitted grid
    axis_names: tuple[str, ...]  # grid dimension names, in order
    data: np.ndarray  # on the fitted grid (non-finite points were left out)
    best_fit: np.ndarray  # the model on the fitted grid
    weights: np.ndarray | None = None
    init: np.ndarray | None = None  # the executable's full theta at the start
    source: Any = attrs.field(default=None, repr=False)  # the prepared data set; not pickled

    @property
    def residual(self) -> np.ndarray:
        """data - model on the grid (unweighted)."""
        return self.data - self.best_fit

    def evaluate(self, theta: np.ndarray) -> np.ndarray:
        """The model on the fitted grid at the executable's full ``theta``."""
        return self._source().model_grid(theta)

    def components(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Each component on the fitted grid at the executable's full ``theta``."""
        return self._source().components_grid(theta)

    def _source(self) -> Any:
        if self.source is None:
            raise InputError(f"data set {self.label!r}: a result restored from a pickle cannot evaluate")
        return self.source

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "source": None}


#: A parameter within this distance of a bound (relative to max(1, |bound|)) is reported as at it.
AT_BOUND = 1e-6


def _near(v: float, bound: float) -> bool:
    return bool(np.isfinite(bound) and abs(v - bound) <= AT_BOUND * max(1.0, abs(bound)))


@attrs.frozen
class Diagnostic:
    """Something about a fit a user should look at: ``kind`` (a short key), a message, the parameters."""

    kind: str  # "failed", "max_nfev", "at_bound", "undetermined", "rank_deficient", "redchi"
    message: str
    params: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


def redchi_is_off(redchi: float, dof: int) -> bool:
    """Whether a reduced chi-square with weights (1/sigma) is implausibly far from 1.

    More than 20 % off, and outside four standard deviations of its distribution
    (``sqrt(2 / dof)``), so that small data sets are not flagged by chance.
    """
    return dof > 0 and np.isfinite(redchi) and abs(redchi - 1) > max(0.2, 4 * math.sqrt(2 / dof))


def covariance(
    normal: np.ndarray, n: int, scale: float, jac: np.ndarray | None = None
) -> tuple[np.ndarray, bool]:
    """``scale * (J^T J)^-1`` from the normal matrix ``J^T J`` of ``n`` rows (pseudo-inverse when J is
    rank deficient); whether it was.

    From the normal matrix with unit diagonal, ``S = D^-1 J^T J D^-1`` (``D`` the
    column norms), by eigendecomposition: P x P work, where an SVD of J costs as
    much as a dozen model evaluations on a large grid. When S is so
    ill-conditioned (smallest eigenvalue below 1e-8 of the largest) that forming
    it lost digits, from the SVD of ``J D^-1`` instead when ``jac`` is given (a
    fit that formed J^T J block by block never holds J). Directions with a
    singular value below ``max(n, P) * eps`` of the largest are left out, and
    parameters in them get NaN.
    """
    p = normal.shape[0]
    if p == 0 or n == 0:
        return np.zeros((p, p)), False
    d = np.sqrt(np.diag(normal))
    d = np.where(d > 0, d, 1.0)
    w, v = np.linalg.eigh(normal / np.outer(d, d))
    if w[0] < 1e-8 * w[-1] and jac is not None:
        _, sv, vt = np.linalg.svd(jac / d, full_matrices=False)
        w, v = sv[::-1] ** 2, vt[::-1].T  # ascending, as from eigh
    keep = w > (max(n, p) * np.finfo(float).eps) ** 2 * w[-1]
    vk = v[:, keep]
    cov = (vk / w[keep]) @ vk.T / np.outer(d, d)
    deficient = not keep.all()
    if deficient:
        bad = np.any(np.abs(v[:, ~keep]) > 1e-8, axis=1)
        cov[bad, :] = np.nan
        cov[:, bad] = np.nan
    return cov * scale, deficient


@attrs.define(eq=False)
class FitResult:
    """The result of :func:`gir.fit.least_squares`, :func:`gir.fit.joint` (and each fit of a batch).

    ``x``, ``stderr``, ``init`` and the rows and columns of ``covar`` follow
    ``param_names`` (the free parameters; for a single data set the
    executable's parameters, less any held ``fixed``). ``params`` and
    ``errors`` are the same by name. ``cost = chisqr / 2``, with ``chisqr``
    the sum of squared weighted residuals; ``redchi = chisqr / (ndata - nvarys)``;
    ``covar`` is ``(J^T J)^-1`` of the weighted residual Jacobian at the
    solution, times ``redchi``. ``nfev``/``njev`` count the optimizer's
    function and Jacobian calls (the outer ones for variable projection);
    ``evaluations`` counts model evaluations (``value``) and value+Jacobian
    evaluations (``jacobian``). ``wall_time`` is the optimization, without
    ``setup_time`` (compilation, windows, the first evaluation).
    ``global_stage`` (fits with ``starts=``) holds ``candidates`` (how many were
    scored), ``defined`` (with a finite cost), ``refined``, ``reached`` (refined
    starts whose final cost is within ``rtol`` of the best), ``time`` (drawing and
    scoring the candidates, seconds), ``refine_time``, ``starts`` (the refined
    starts), ``start_costs`` and ``costs`` (their costs before and after).
    """

    param_names: tuple[str, ...]
    x: np.ndarray
    init: np.ndarray
    bounds: tuple[np.ndarray, np.ndarray]
    stderr: np.ndarray
    covar: np.ndarray
    residual: np.ndarray  # weighted residual model - data, flat over all data sets
    cost: float
    chisqr: float
    redchi: float
    ndata: int
    nfev: int
    njev: int
    success: bool
    message: str
    method: str
    wall_time: float
    setup_time: float = 0.0
    status: int = 0
    evaluations: dict[str, int] = attrs.field(factory=dict)
    datasets: list[DatasetFit] = attrs.field(factory=list)
    varpro: dict[str, Any] | None = None
    jac: np.ndarray | None = None
    covar_deficient: bool = False
    global_stage: dict[str, Any] | None = None  # with least_squares(starts=...): see gir.fit.global_stage
    weighted: bool = False  # weights (1/sigma) were given: the reduced chi-square should be near 1
    fixed: dict[str, float] = attrs.field(factory=dict)  # parameters held constant, by name
    tied: dict[str, tuple[str, float]] = attrs.field(factory=dict)  # expression parameters: (text, value)

    # -- by name ----------------------------------------------------------------------

    @property
    def params(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.param_names, self.x, strict=True)}

    @property
    def errors(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.param_names, self.stderr, strict=True)}

    @property
    def nvarys(self) -> int:
        return len(self.param_names)

    @property
    def nfree(self) -> int:
        """Degrees of freedom: ndata - nvarys."""
        return self.ndata - self.nvarys

    @property
    def correl(self) -> np.ndarray:
        d = np.sqrt(np.diag(self.covar))
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.covar / np.outer(d, d)

    @property
    def aic(self) -> float:
        n = self.ndata
        return n * math.log(max(self.chisqr, 1e-300) / n) + 2 * self.nvarys

    @property
    def bic(self) -> float:
        n = self.ndata
        return n * math.log(max(self.chisqr, 1e-300) / n) + math.log(n) * self.nvarys

    # -- diagnostics -----------------------------------------------------------------------

    @property
    def at_bounds(self) -> tuple[str, ...]:
        """Parameters at or within 1e-6 (relative) of a bound."""
        lo, hi = self.bounds
        return tuple(
            n
            for n, v, a, b in zip(self.param_names, self.x, lo, hi, strict=True)
            if _near(v, a) or _near(v, b)
        )

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """What to look at before trusting the fit (empty when nothing is suspicious)."""
        out = []
        if "maximum number of function evaluations" in self.message.lower():
            out.append(Diagnostic("max_nfev", f"the fit stopped early: {self.message}"))
        elif not self.success:
            out.append(Diagnostic("failed", f"the fit did not converge: {self.message}"))
        at = self.at_bounds
        if at:
            out.append(Diagnostic("at_bound", f"at a bound: {', '.join(at)}", at))
        undetermined = tuple(
            n for n, e in zip(self.param_names, self.stderr, strict=True) if not np.isfinite(e)
        )
        if self.covar_deficient:
            out.append(
                Diagnostic(
                    "rank_deficient",
                    "the Jacobian at the solution is rank deficient (parameters the data cannot tell apart)",
                )
            )
        if undetermined:
            out.append(
                Diagnostic(
                    "undetermined", f"undetermined standard errors: {', '.join(undetermined)}", undetermined
                )
            )
        if self.weighted and redchi_is_off(self.redchi, self.nfree):
            out.append(
                Diagnostic(
                    "redchi",
                    f"reduced chi-square {self.redchi:.4g} is far from 1 with weights given "
                    "(a wrong model or wrong uncertainties)",
                )
            )
        return out

    def warn(self) -> None:
        """Issue one RuntimeWarning listing the diagnostics, at the caller's line (nothing if none)."""
        found = self.diagnostics
        if found:
            gir_warn("fit: " + "; ".join(map(str, found)))

    # -- the single data set's views -----------------------------------------------------

    @property
    def theta(self) -> np.ndarray:
        """The (first) data set's full theta, in its executable's parameter order."""
        return self.datasets[0].theta

    @property
    def data(self) -> np.ndarray:
        return self.datasets[0].data

    @property
    def best_fit(self) -> np.ndarray:
        return self.datasets[0].best_fit

    # -- output -----------------------------------------------------------------------

    def report(self, correl: float = 0.5) -> str:
        """A readable text table: statistics, then each parameter with its uncertainty and bounds."""
        lines = [
            f"[[Fit]] {self.method}{' + VARPRO' if self.varpro else ''}: "
            f"{'success' if self.success else 'FAILED'} ({self.message})",
            f"    data points = {self.ndata}, variables = {self.nvarys}, "
            f"function evals = {self.nfev}, jacobian evals = {self.njev}",
            f"    chi-square = {self.chisqr:.6g}, reduced chi-square = {self.redchi:.6g}, "
            f"cost = {self.cost:.6g}",
            f"    wall time = {self.wall_time * 1e3:.1f} ms (setup {self.setup_time * 1e3:.1f} ms)",
        ]
        if self.varpro:
            lines.append(f"    linear (projected) parameters: {', '.join(self.varpro['linear']) or 'none'}")
        g = self.global_stage
        if g:
            lines.append(
                f"    global stage: {g['candidates']} candidates ({g['defined']} defined) in "
                f"{g['time'] * 1e3:.1f} ms, {g['refined']} refined; {g['reached']} of {g['refined']} "
                f"reached the best cost (rtol {g['rtol']:g})"
            )
        found = self.diagnostics
        if found:
            lines.append("[[Warnings]]")
            lines += [f"    {d}" for d in found]
        width = max([len("name"), *(len(n) for n in (*self.param_names, *self.fixed, *self.tied))])
        lines.append("[[Variables]]")
        header = f"    {'name':<{width}}  {'value':>14}  {'stderr':>11}  {'rel':>8}  {'init':>12}  bounds"
        lines.append(header)
        for i, name in enumerate(self.param_names):
            v, e, v0 = self.x[i], self.stderr[i], self.init[i]
            rel = f"{abs(e / v) * 100:7.2f}%" if v != 0 and np.isfinite(e) else "       -"
            lo, hi = self.bounds[0][i], self.bounds[1][i]
            bnd = "" if not (np.isfinite(lo) or np.isfinite(hi)) else f"[{lo:.4g}, {hi:.4g}]"
            at = " (at bound)" if _near(v, lo) or _near(v, hi) else ""
            lines.append(f"    {name:<{width}}  {v:>14.8g}  {e:>11.4g}  {rel}  {v0:>12.6g}  {bnd}{at}")
        for name, v in self.fixed.items():
            lines.append(f"    {name:<{width}}  {v:>14.8g}  (fixed)")
        for name, (text, v) in self.tied.items():
            lines.append(f"    {name:<{width}}  {v:>14.8g}  == {text!r}")
        pairs = []
        c = self.correl
        for i in range(self.nvarys):
            for j in range(i + 1, self.nvarys):
                if np.isfinite(c[i, j]) and abs(c[i, j]) >= correl:
                    pairs.append((abs(c[i, j]), c[i, j], self.param_names[i], self.param_names[j]))
        if pairs:
            lines.append(f"[[Correlations]] (|C| >= {correl})")
            for _, cij, a, b in sorted(pairs, reverse=True):
                lines.append(f"    C({a}, {b}) = {cij:+.4f}")
        return "\n".join(lines)

    def fit_report(self, correl: float = 0.5) -> str:
        """The same as :meth:`report` (lmfit's name)."""
        return self.report(correl)

    def __str__(self) -> str:
        return self.report()

    def eval(self, theta: Any = None, dataset: int | str = 0) -> np.ndarray:
        """The model of a data set on its fitted grid at ``theta`` (default: the solution)."""
        d = self._dataset(dataset)
        return d.evaluate(d.theta if theta is None else np.asarray(theta, dtype=np.float64))

    def eval_components(self, theta: Any = None, dataset: int | str = 0) -> dict[str, np.ndarray]:
        """Each component's values on the fitted grid, by name (lmfit's name); a model without
        components gives its total under its graph's name."""
        d = self._dataset(dataset)
        return d.components(d.theta if theta is None else np.asarray(theta, dtype=np.float64))

    def plot(self, dataset: int | str = 0, fig: Any = None, *, components: bool = True, init: bool = True):
        """Data, fit and residual (matplotlib): lines for 1D data (with each component and the
        initial guess, as lmfit draws them), one image each for 2D data."""
        import matplotlib.pyplot as plt

        d = self._dataset(dataset)
        if fig is None:
            fig = plt.figure(figsize=(7, 5) if d.data.ndim == 1 else (13, 4))
        if d.data.ndim == 1:
            name = d.axis_names[0]
            x = d.axes.get(name, np.arange(d.data.size))
            top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
            top.plot(x, d.data, ".", ms=3, label="data")
            if init and d.source is not None and d.init is not None:
                top.plot(x, d.evaluate(d.init), "--", color="0.5", lw=1, label="initial guess")
            top.plot(x, d.best_fit, "-", label="fit")
            parts = d.components(d.theta) if components and d.source is not None else {}
            if len(parts) > 1:
                for part, values in parts.items():
                    top.plot(x, np.broadcast_to(values, x.shape), "-", lw=0.8, label=part)
            top.legend(fontsize="small")
            top.set_title(f"{d.label}: chi2 = {self.chisqr:.4g}")
            bottom.plot(x, d.residual, ".", ms=2)
            bottom.axhline(0, color="k", lw=0.5)
            bottom.set_xlabel(name)
            bottom.set_ylabel("data - fit")
        elif d.data.ndim == 2:
            rows, cols = d.axis_names
            y = d.axes.get(rows, np.arange(d.data.shape[0]))
            x = d.axes.get(cols, np.arange(d.data.shape[1]))
            axs = fig.subplots(1, 3, sharey=True)
            lo, hi = np.nanmin(d.data), np.nanmax(d.data)
            for ax, image, title in zip(axs, [d.data, d.best_fit, d.residual], ["data", "fit", "data - fit"]):
                kw = {"vmin": lo, "vmax": hi} if title != "data - fit" else {"cmap": "RdBu_r"}
                mesh = ax.pcolormesh(x, y, image, shading="auto", **kw)
                fig.colorbar(mesh, ax=ax)
                ax.set_title(f"{d.label}: {title}")
                ax.set_xlabel(cols)
            axs[0].set_ylabel(rows)
        else:
            raise ValueError(f"cannot plot {d.data.ndim}D data")
        fig.tight_layout()
        return fig

    # -- uncertainties beyond the covariance ------------------------------------------------

    def problem(self) -> Any:
        """The fit's :class:`~gir.fit.problem.Problem` rebuilt over its prepared data sets (nothing is
        recompiled): the free parameters ``param_names`` at their bounds, the others held at their
        values at the solution. Evaluate it at ``x`` (``costs``, ``residual``)."""
        from gir.fit.problem import Problem

        index = {n: g for g, n in enumerate(self.param_names)}
        several = len(self.datasets) > 1
        sources, maps, base = [], [], []
        for d in self.datasets:
            source = d._source()
            sources.append(source)
            li, gi = [], []
            for i, name in enumerate(source.param_names):
                g = index.get(f"{d.label}:{name}") if several else None
                g = index.get(name) if g is None else g
                if g is not None:
                    li.append(i)
                    gi.append(g)
            maps.append((li, gi))
            base.append(d.theta.copy())
        return Problem(sources, self.param_names, self.x, self.bounds, maps, base)

    def conf_interval(
        self,
        names: Sequence[str] | None = None,
        sigmas: Sequence[float] = (1, 2, 3),
        *,
        statistic: str = "f",
    ) -> dict[str, list[tuple[float, float]]]:
        """Profile-likelihood confidence intervals, as ``lmfit.conf_interval`` returns them: name ->
        ``[(p, lower), ..., (0.0, best), ..., (p, upper)]``. See :func:`gir.fit.intervals.conf_interval`."""
        from gir.fit.intervals import conf_interval

        return conf_interval(self, names, sigmas, statistic=statistic)

    def propagate(self, expression: str) -> Any:
        """The value and standard error of an expression of the parameters (``"p1.A * p1.F"``), from the
        covariance and the expression's exact gradient. See :func:`gir.fit.intervals.propagate`."""
        from gir.fit.intervals import propagate

        return propagate(self, expression)

    def _dataset(self, which: int | str) -> DatasetFit:
        if isinstance(which, str):
            for d in self.datasets:
                if d.label == which:
                    return d
            raise KeyError(f"no data set {which!r}; labels are {[d.label for d in self.datasets]}")
        return self.datasets[which]


def make_result(
    problem,
    x: np.ndarray,
    *,
    method: str,
    nfev: int,
    njev: int,
    success: bool,
    message: str,
    status: int,
    wall_time: float,
    setup_time: float,
    varpro: dict | None = None,
    keep_jac: bool = True,
) -> FitResult:
    """Statistics and uncertainties at ``x`` from the Jacobian there (its normal matrix formed block by
    block for a :attr:`~gir.fit.problem.Problem.blocked` problem, which never holds the whole Jacobian)."""
    x = np.asarray(x, dtype=np.float64)
    counts = dict(problem.counts)
    if problem.nfree and problem.blocked:
        jac, normal = None, problem.normal_equations(x)[1]
        r = problem.residual(x)
    else:
        if problem.nfree:
            y, jac = problem.model_and_jacobian(x)
        else:
            y, jac = problem.model(x), np.zeros((problem.n, 0))
        normal, r = jac.T @ jac, y - problem.wdata
    chisqr = float(r @ r)
    dof = problem.n - problem.nfree
    redchi = chisqr / dof if dof > 0 else math.nan
    cov, deficient = covariance(normal, problem.n, redchi if dof > 0 else 1.0, jac)
    stderr = np.sqrt(np.abs(np.diag(cov))) if cov.size else np.zeros(0)
    fits = []
    fixed: dict[str, float] = {}
    tied: dict[str, tuple[str, float]] = {}
    several = len(problem.datasets) > 1
    for k, d in enumerate(problem.datasets):
        theta = problem.theta(k, x)
        prefix = f"{d.label}:" if several else ""
        free = set(problem.maps[k][0].tolist())
        fixed.update({prefix + n: float(theta[i]) for i, n in enumerate(d.param_names) if i not in free})
        model_fixed, model_tied = d.fixed_and_tied(theta)
        fixed.update({prefix + n: v for n, v in model_fixed.items()})
        tied.update({prefix + n: t for n, t in model_tied.items()})
        grid = d.data_grid.view()  # the data as given (a read-only view, like lmfit's reference: no copy)
        grid.flags.writeable = False
        if d.mask is not None:
            flat = np.full(grid.size, np.nan)
            flat[d.mask] = d.data
            grid = flat.reshape(grid.shape)
        fits.append(
            DatasetFit(
                label=d.label,
                param_names=d.param_names,
                theta=theta,
                axes=dict(d.ev.window_axes),
                axis_names=d.ev.grid_names,
                data=grid,
                best_fit=d.model_grid(theta),
                weights=None if d.weights is None else d.ev.cut(d.spec.weights, "weights"),
                init=problem.theta(k, problem.x0),
                source=d,
            )
        )
    return FitResult(
        param_names=problem.names,
        x=x,
        init=problem.x0.copy(),
        bounds=problem.bounds,
        stderr=stderr,
        covar=cov,
        residual=r,
        cost=0.5 * chisqr,
        chisqr=chisqr,
        redchi=redchi,
        ndata=problem.n,
        nfev=nfev,
        njev=njev,
        success=success,
        message=message,
        method=method,
        wall_time=wall_time,
        setup_time=setup_time,
        status=status,
        evaluations=counts,
        datasets=fits,
        varpro=varpro,
        jac=jac if keep_jac else None,
        covar_deficient=deficient,
        weighted=problem.weights is not None,
        fixed=fixed,
        tied=tied,
    )


def stack_results(results: Sequence[FitResult]) -> dict[str, np.ndarray]:
    return {
        "x": np.array([r.x for r in results]),
        "stderr": np.array([r.stderr for r in results]),
        "cost": np.array([r.cost for r in results]),
    }
