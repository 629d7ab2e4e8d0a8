"""Posterior sampling with emcee around a least-squares fit, each half of the walker ensemble scored in
one batched model evaluation.

::

    from gir.fit.mcmc import mcmc
    chain = mcmc(result, steps=2000, seed=0)      # a FitResult from gir.fit.least_squares
    chain = mcmc(exe, data, energy=E, time=T)     # fits by least squares first
    print(chain.report()); chain.corner()

The log-posterior of the free parameters ``x`` is the log-likelihood
``-chi2(x) / (2 s^2)`` (``chi2`` the sum of squared weighted residuals) plus the
log-prior: uniform within the fit's bounds (``-inf`` outside) plus ``log_prior``
when given. The noise scale ``s`` is

- 1 with weights ``1/sigma`` (the chi-square is in units of the noise);
- without weights, the least-squares estimate ``sqrt(redchi)``, held fixed;
- with ``noise=True``, a parameter ``__lnsigma = ln s`` sampled with the others (lmfit's
  name; flat prior on ``ln s``), the likelihood then ``-chi2 / (2 s^2) - n ln s``: ``s``
  is the noise level of unweighted data, or a factor on the given sigmas.

The walkers start in a ball around the solution (a tenth of each standard error,
reflected into the bounds). emcee's stretch move (``vectorize=True``) updates the
ensemble in two halves, and each half's proposals within the prior's support are
scored in one batched model evaluation (:meth:`gir.fit.problem.Problem.costs`, one
:meth:`gir.Executable.batch` call up to :data:`BATCH_BYTES` of model values).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from gir.errors import GirError, InputError
from gir.errors import warn as gir_warn
from gir.fit.problem import Problem
from gir.fit.result import FitResult

log = logging.getLogger(__name__)

#: The name of the sampled log noise scale (lmfit's).
NOISE = "__lnsigma"
#: Default chain length and walkers: a first look, enough for medians and the autocorrelation time. A
#: 32-walker step on a 212 x 1131 grid (4 free parameters, Numba, 2 cores) takes about 40 ms on an idle
#: machine (a 32-row batch took 31 ms), 90 ms at a load of 4.5, 175 ms at 7: 12 s to a minute.
STEPS = 300
MIN_WALKERS = 32
#: A chain shorter than this many autocorrelation times (after the burn-in) gets a warning (emcee's advice).
TAU_FACTOR = 50
#: The starting ball's radius in standard errors.
BALL = 0.1
#: Model values one batched evaluation may produce (more walkers go in several): a half-ensemble of
#: 16 walkers on a 212 x 1131 grid (31 MB) in one call took as long as in two (noisy 2-core machine).
BATCH_BYTES = 2**28


@attrs.define(eq=False)
class MCMCResult:
    """Samples of the posterior. ``chain`` is (kept steps, walkers, parameters) after ``burn`` and
    ``thin``; ``log_prob`` (kept steps, walkers); ``autocorr`` the integrated autocorrelation time of
    each parameter in steps (emcee's estimate, without its length check); ``acceptance`` per walker;
    ``fit`` the least-squares fit the chain started from."""

    param_names: tuple[str, ...]
    chain: np.ndarray
    log_prob: np.ndarray
    acceptance: np.ndarray
    autocorr: np.ndarray
    walkers: int
    steps: int
    burn: int
    thin: int
    wall_time: float
    fit: FitResult | None = attrs.field(default=None, repr=False)

    @property
    def samples(self) -> np.ndarray:
        """The kept samples of all walkers, (kept steps x walkers, parameters)."""
        return self.chain.reshape(-1, self.chain.shape[-1])

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        return self.samples.std(axis=0, ddof=1)

    @property
    def median(self) -> np.ndarray:
        return np.median(self.samples, axis=0)

    @property
    def covar(self) -> np.ndarray:
        return np.atleast_2d(np.cov(self.samples, rowvar=False))

    def quantiles(self, q: Any = (0.02275, 0.15866, 0.5, 0.84134, 0.97725)) -> np.ndarray:
        """The sample quantiles ``q`` (default: the median and +-1 and 2 sigma), (len(q), parameters)."""
        return np.quantile(self.samples, np.asarray(q, dtype=np.float64), axis=0)

    @property
    def params(self) -> dict[str, float]:
        """The median of each parameter, by name."""
        return {n: float(v) for n, v in zip(self.param_names, self.median, strict=True)}

    @property
    def errors(self) -> dict[str, float]:
        """Half the width of the central 68.27 % of each parameter's samples, by name (lmfit's stderr)."""
        lo, hi = self.quantiles((0.15866, 0.84134))
        return {n: float(v) for n, v in zip(self.param_names, (hi - lo) / 2, strict=True)}

    @property
    def ess(self) -> np.ndarray:
        """Effective sample size of each parameter: walkers x steps after the burn-in over the
        autocorrelation time (at most the number of kept samples)."""
        n = self.walkers * (self.steps - self.burn)
        return np.minimum(n / np.maximum(self.autocorr, 1.0), self.samples.shape[0])

    @property
    def mcse(self) -> np.ndarray:
        """Monte Carlo standard error of each posterior mean: ``std / sqrt(ess)``."""
        return self.std / np.sqrt(self.ess)

    @property
    def acceptance_fraction(self) -> float:
        """The mean acceptance fraction of the walkers (0.2-0.5 is typical of a healthy run)."""
        return float(np.mean(self.acceptance))

    def derived(self, expression: str) -> np.ndarray:
        """Samples of an expression of the parameters (read as :meth:`FitResult.propagate
        <gir.fit.result.FitResult.propagate>` reads it): its value at every sample, in one batched
        evaluation."""
        from gir.fit.intervals import result_expression

        if self.fit is None:
            raise InputError("MCMCResult.derived needs the fit the chain started from")
        return result_expression(self.fit, expression, self.param_names).values(self.samples)

    def report(self) -> str:
        """A text table: the run, then each parameter's median, +-1 sigma quantiles, mean, std and
        sampling diagnostics."""
        lines = [
            f"[[MCMC]] emcee: {self.walkers} walkers x {self.steps} steps (burn {self.burn}, thin "
            f"{self.thin}), {self.samples.shape[0]} samples, {self.wall_time:.2f} s",
            f"    acceptance fraction = {self.acceptance_fraction:.3f}",
        ]
        width = max(len("name"), *(len(n) for n in self.param_names))
        lines.append("[[Variables]]")
        head = f"    {'name':<{width}}  {'median':>14}  {'-1 sigma':>11}  {'+1 sigma':>11}  {'mean':>14}"
        lines.append(head + f"  {'std':>11}  {'tau':>8}  {'ess':>8}")
        q = self.quantiles((0.15866, 0.5, 0.84134))
        columns = zip(self.param_names, q.T, self.mean, self.std, self.autocorr, self.ess, strict=True)
        for name, (low, mid, high), mean, std, tau, ess in columns:
            lines.append(
                f"    {name:<{width}}  {mid:>14.8g}  {low - mid:>11.4g}  {high - mid:>+11.4g}"
                f"  {mean:>14.8g}  {std:>11.4g}  {tau:>8.1f}  {ess:>8.0f}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def corner(self, **kwargs: Any) -> Any:
        """A corner plot of the samples (``corner.corner``; keywords go to it), the least-squares
        solution marked; needs the ``corner`` package."""
        try:
            import corner
        except ImportError:
            raise GirError("MCMCResult.corner needs the corner package: pip install corner") from None
        kwargs.setdefault("labels", list(self.param_names))
        kwargs.setdefault("quantiles", (0.15866, 0.5, 0.84134))
        kwargs.setdefault("show_titles", True)
        if self.fit is not None and "truths" not in kwargs:
            kwargs["truths"] = [self.fit.params.get(n) for n in self.param_names]
        return corner.corner(self.samples, **kwargs)


class LogPosterior:
    """The log-posterior of a fit's free parameters (and ``__lnsigma`` with ``noise``) at each row of a
    (walkers, parameters) array, from one batched evaluation of the rows within the prior's support."""

    def __init__(
        self,
        problem: Problem,
        *,
        scale2: float,
        noise: bool,
        log_prior: Callable[[Mapping[str, np.ndarray]], Any] | None,
    ):
        self.problem = problem
        self.scale2 = scale2
        self.noise = noise
        self.log_prior = log_prior
        self.names = problem.names + ((NOISE,) if noise else ())
        lo, hi = problem.bounds
        extra = np.array([-np.inf] if noise else [])
        self.lo, self.hi = np.concatenate([lo, extra]), np.concatenate([hi, -extra])

    def prior(self, xs: np.ndarray) -> np.ndarray:
        """The log-prior at each row: 0 (or ``log_prior``) within the bounds, -inf outside."""
        inside = np.isfinite(xs).all(axis=1) & ((xs >= self.lo) & (xs <= self.hi)).all(axis=1)
        out = np.where(inside, 0.0, -np.inf)
        if self.log_prior is not None and inside.any():
            user = self.log_prior({n: xs[inside, i] for i, n in enumerate(self.names)})
            user = np.asarray(user, dtype=np.float64)
            try:
                out[inside] += np.broadcast_to(user, (int(inside.sum()),))
            except ValueError:
                raise InputError(
                    f"log_prior must return one value per walker (shape ({int(inside.sum())},)), "
                    f"got shape {user.shape}"
                ) from None
        return np.where(np.isnan(out), -np.inf, out)

    def __call__(self, xs: np.ndarray) -> np.ndarray:
        xs = np.atleast_2d(np.asarray(xs, dtype=np.float64))
        out = self.prior(xs)
        rows = np.nonzero(np.isfinite(out))[0]
        if rows.size:
            p = self.problem.nfree
            chi2 = self.problem.costs(xs[rows, :p], max_bytes=BATCH_BYTES)
            if self.noise:
                ln_s = xs[rows, p]
                out[rows] += -0.5 * chi2 * np.exp(-2.0 * ln_s) - self.problem.n * ln_s
            else:
                out[rows] += -0.5 * chi2 / self.scale2
        return out


def start_ball(
    x: np.ndarray, stderr: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], walkers: int, rng: Any
) -> np.ndarray:
    """``walkers`` points around ``x``: normal offsets of :data:`BALL` standard errors (1e-4 of the
    value where there is none), reflected into the bounds (then clipped)."""
    lo, hi = bounds
    usable = np.isfinite(stderr) & (stderr > 0)
    scale = np.where(usable, BALL * np.where(usable, stderr, 0.0), 1e-4 * np.maximum(np.abs(x), 1.0))
    pos = x + scale * rng.standard_normal((walkers, x.size))
    pos = np.where(pos < lo, 2 * lo - pos, pos)
    pos = np.where(pos > hi, 2 * hi - pos, pos)
    return np.clip(pos, lo, hi)


def _noise_start(fit: FitResult) -> tuple[float, float]:
    """``ln s`` at the least-squares solution (``s^2 = redchi``) and its standard error ``1/sqrt(2 n)``."""
    if not (np.isfinite(fit.redchi) and fit.redchi > 0):
        raise InputError(
            "noise=True needs a fit with a positive reduced chi-square (more data than parameters)"
        )
    return 0.5 * math.log(fit.redchi), 1.0 / math.sqrt(2.0 * fit.ndata)


def _check_run(walkers: int, steps: int, burn: int, thin: int, ndim: int) -> None:
    for name, v, least in (("walkers", walkers, 2 * ndim), ("steps", steps, 1), ("thin", thin, 1)):
        if not isinstance(v, int | np.integer) or v < least:
            raise InputError(f"{name} must be an integer >= {least}, got {v!r}")
    if not isinstance(burn, int | np.integer) or not 0 <= burn < steps:
        raise InputError(f"burn must be an integer in [0, steps={steps}), got {burn!r}")


def _fit_of(fit: Any, data: Any, fit_options: Mapping[str, Any]) -> FitResult:
    if isinstance(fit, FitResult):
        if data is not None or fit_options:
            given = ["data"] if data is not None else []
            raise InputError(
                f"mcmc: a FitResult carries its data and options; got {given + sorted(fit_options)} too"
            )
        return fit
    if data is None:
        raise InputError("mcmc: give a FitResult, or an executable (or model) and its data")
    from gir.fit.least_squares import least_squares

    return least_squares(fit, data, **fit_options)


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def mcmc(
    fit: Any,
    data: Any = None,
    *,
    walkers: int | None = None,
    steps: int = STEPS,
    burn: int | None = None,
    thin: int = 1,
    noise: bool = False,
    log_prior: Callable[[Mapping[str, np.ndarray]], Any] | None = None,
    seed: Any = None,
    progress: bool = True,
    **fit_options: Any,
) -> MCMCResult:
    """Sample the posterior of a fit's free parameters with emcee (see the module docstring).

    - ``fit``: a :class:`~gir.fit.result.FitResult`; or an executable or model, then fitted
      first by :func:`gir.fit.least_squares` with ``data`` and ``fit_options`` (the axis arrays,
      ``weights=``, ``fixed=``, ...).
    - ``walkers``: default the larger of 32 and ``2 P + 2`` (even); ``steps`` (default 300),
      ``burn`` (steps left out at the start; default a quarter), ``thin`` (keep every n-th).
    - ``noise``: sample the noise scale as ``__lnsigma``.
    - ``log_prior``: called with a mapping name -> array of the walkers' values (within the
      bounds) and returning the log-prior per walker (written with NumPy it works for both), added
      to the uniform prior within the bounds.
    - ``seed``: seeds the starting ball and emcee's moves; ``progress``: a tqdm bar (when tqdm
      is installed) and the estimated time, on stderr. The estimate (one batched evaluation's time
      x steps) is logged on the ``gir.fit.mcmc`` logger in any case.

    Warns when the chain after the burn-in is shorter than 50 autocorrelation times.
    """
    import emcee

    result = _fit_of(fit, data, fit_options)
    if result.nvarys == 0:
        raise InputError("mcmc: the fit has no free parameters")
    scale2 = 1.0 if result.weighted or noise else result.redchi
    posterior = LogPosterior(result.problem(), scale2=scale2, noise=noise, log_prior=log_prior)
    x, stderr = result.x, result.stderr
    if noise:
        ln_s, ln_s_err = _noise_start(result)
        x, stderr = np.append(x, ln_s), np.append(stderr, ln_s_err)
    ndim = x.size
    walkers = max(MIN_WALKERS, 2 * ndim + 2) if walkers is None else walkers
    burn = steps // 4 if burn is None else burn
    _check_run(walkers, steps, burn, thin, ndim)
    rng = np.random.default_rng(seed)
    start = _finite_start(posterior, x, stderr, (posterior.lo, posterior.hi), walkers, rng)
    t0 = time.perf_counter()
    lp0 = posterior(start)
    once = time.perf_counter() - t0
    _announce(walkers, steps, once, progress)
    sampler = emcee.EnsembleSampler(walkers, ndim, posterior, vectorize=True)
    sampler.random_state = np.random.RandomState(int(rng.integers(2**32))).get_state()
    t0 = time.perf_counter()
    sampler.run_mcmc(emcee.State(start, log_prob=lp0), steps, progress=progress and _has_tqdm())
    wall = time.perf_counter() - t0
    tau = np.asarray(sampler.get_autocorr_time(discard=burn, tol=0), dtype=np.float64)
    out = MCMCResult(
        param_names=posterior.names,
        chain=sampler.get_chain(discard=burn, thin=thin),
        log_prob=sampler.get_log_prob(discard=burn, thin=thin),
        acceptance=np.asarray(sampler.acceptance_fraction, dtype=np.float64),
        autocorr=tau,
        walkers=walkers,
        steps=steps,
        burn=burn,
        thin=thin,
        wall_time=wall,
        fit=result,
    )
    _check_length(out)
    return out


def _finite_start(
    posterior: LogPosterior, x: np.ndarray, stderr: np.ndarray, bounds: Any, walkers: int, rng: Any
) -> np.ndarray:
    """The starting ball, walkers where the posterior is -inf drawn again closer to ``x`` (halving
    the ball up to 20 times); an InputError if ``x`` itself has no posterior density."""
    start = start_ball(x, stderr, bounds, walkers, rng)
    lp = posterior(start)
    for _ in range(20):
        bad = ~np.isfinite(lp)
        if not bad.any():
            return start
        stderr = stderr / 2
        start[bad] = start_ball(x, stderr, bounds, int(bad.sum()), rng)
        lp[bad] = posterior(start[bad])
    raise InputError(
        "mcmc: the posterior is zero around the least-squares solution (the model undefined there, "
        "or log_prior -inf)"
    )


def _announce(walkers: int, steps: int, once: float, progress: bool) -> None:
    message = (
        f"mcmc: {walkers} walkers x {steps} steps; scoring the walkers once takes "
        f"{once * 1e3:.1f} ms: about {once * steps:.1f} s"
    )
    log.info(message)
    if progress:
        print(message, file=sys.stderr, flush=True)


def _check_length(out: MCMCResult) -> None:
    kept = out.steps - out.burn
    worst = int(np.argmax(out.autocorr))
    tau = float(out.autocorr[worst])
    if kept < TAU_FACTOR * tau:
        gir_warn(
            f"mcmc: the chain after the burn-in ({kept} steps) is shorter than {TAU_FACTOR} autocorrelation "
            f"times (tau = {tau:.1f} steps for {out.param_names[worst]!r}): the estimates are rough; "
            f"run about {math.ceil(TAU_FACTOR * tau) + out.burn} steps"
        )
