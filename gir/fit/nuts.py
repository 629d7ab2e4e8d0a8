"""``gir.fit.nuts``: Bayesian posterior sampling with NumPyro's No-U-Turn sampler.

The model is an executable of a JAX target run inside NumPyro's program
through :attr:`gir.Executable.jax_function`, so the sampler's gradients are
gir's own reverse-mode derivative graph. The likelihood is Gaussian with the
data's standard deviations; each parameter's prior is uniform within its
bounds unless given. numpyro (and jax) load when this runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gir.errors import InputError, TargetError
from gir.fit.dataset import start_and_bounds
from gir.fit.grid import as_executable
from gir.runtime.executable import Executable


@dataclass
class NutsResult:
    """Posterior samples and NumPyro's diagnostics, by parameter name.

    ``chains[name]`` has shape (chains, samples); ``samples[name]`` is that
    flattened (chains one after another). ``r_hat`` is the split Gelman-Rubin
    statistic, ``n_eff`` the effective sample size; ``divergences`` counts the
    divergent transitions after warm-up. ``mcmc`` is NumPyro's MCMC object.
    """

    param_names: tuple[str, ...]
    chains: dict[str, np.ndarray]
    r_hat: dict[str, float]
    n_eff: dict[str, float]
    divergences: int
    mcmc: Any = field(repr=False)

    @property
    def samples(self) -> dict[str, np.ndarray]:
        return {n: c.reshape(-1) for n, c in self.chains.items()}

    @property
    def mean(self) -> dict[str, float]:
        return {n: float(np.mean(c)) for n, c in self.chains.items()}

    @property
    def std(self) -> dict[str, float]:
        return {n: float(np.std(c, ddof=1)) for n, c in self.chains.items()}

    def array(self) -> np.ndarray:
        """Every sample as a row of parameter values, shape (chains * samples, P)."""
        return np.stack([self.samples[n] for n in self.param_names], axis=-1)

    def report(self) -> str:
        """One line per parameter: mean, standard deviation, n_eff and r_hat."""
        width = max((len(n) for n in self.param_names), default=4)
        lines = [f"{'name':<{width}} {'mean':>12} {'std':>12} {'n_eff':>8} {'r_hat':>6}"]
        mean, std = self.mean, self.std
        for n in self.param_names:
            lines.append(
                f"{n:<{width}} {mean[n]:12.6g} {std[n]:12.4g} {self.n_eff[n]:8.0f} {self.r_hat[n]:6.3f}"
            )
        lines.append(f"divergences: {self.divergences}")
        return "\n".join(lines)


def nuts(
    exe_or_model: Any,
    data: Any,
    sigma: Any,
    *,
    priors: Mapping[str, Any] | None = None,
    theta0: Any = None,
    bounds: Any = None,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 2,
    seed: int = 0,
    target_accept: float = 0.8,
    progress: bool = False,
    **arrays: Any,
) -> NutsResult:
    """Sample the posterior of ``exe_or_model``'s parameters given ``data`` with NumPyro's NUTS.

    ``exe_or_model`` is an executable of a JAX target (``gir.compile(model,
    target="jax-cpu")``) or a model, compiled for ``"jax-cpu"``. The likelihood
    is ``Normal(exe(theta, **arrays), sigma)`` over the finite data points
    (``sigma`` a number or an array like ``data``). ``priors`` maps parameter
    names to NumPyro distributions (their bounds then do not apply); every other
    parameter is uniform within its bounds (the model's, overridden by
    ``bounds`` as in :func:`gir.fit.least_squares`), which must then be finite. Chains start at
    ``theta0`` (default the model's start values) and run one after another;
    ``seed`` seeds them. Computes in float64.
    """
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS, init_to_value

    exe = as_executable(exe_or_model, "jax-cpu")
    if not exe.target.startswith("jax"):
        raise TargetError(
            f"nuts needs an executable of a JAX target, got {exe.target!r}: compile with target='jax-cpu'"
        )
    names = exe.param_names
    start, (lo, hi) = start_and_bounds(exe, names, theta0, bounds)
    priors = _priors(names, dict(priors or {}), lo, hi)
    y, sd = _observed(data, sigma)
    with jax.enable_x64(True):
        program = _program(exe, names, priors, start, y, sd, arrays)
        kernel = NUTS(
            program,
            target_accept_prob=target_accept,
            init_strategy=init_to_value(values=_inside(names, start, lo, hi)),
        )
        mcmc = MCMC(
            kernel,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            chain_method="sequential",
            progress_bar=progress,
        )
        mcmc.run(jax.random.PRNGKey(seed), extra_fields=("diverging",))
        chains = {n: np.asarray(v) for n, v in mcmc.get_samples(group_by_chain=True).items()}
        summary = numpyro.diagnostics.summary(chains, group_by_chain=True)
        divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    return NutsResult(
        names,
        {n: chains[n] for n in names},
        {n: float(summary[n]["r_hat"]) for n in names},
        {n: float(summary[n]["n_eff"]) for n in names},
        divergences,
        mcmc,
    )


def _priors(names: tuple[str, ...], given: dict[str, Any], lo: np.ndarray, hi: np.ndarray) -> dict[str, Any]:
    """Each parameter's prior: the given distribution, else uniform within finite bounds."""
    import numpyro.distributions as dist

    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputError(f"priors: unknown parameter {unknown[0]!r}; parameters are {list(names)}")
    priors = {}
    for i, n in enumerate(names):
        if n in given:
            priors[n] = given[n]
        elif np.isfinite(lo[i]) and np.isfinite(hi[i]) and lo[i] < hi[i]:
            priors[n] = dist.Uniform(float(lo[i]), float(hi[i]))
        else:
            raise InputError(
                f"parameter {n!r} has bounds ({lo[i]}, {hi[i]}): a uniform prior needs finite bounds "
                "lo < hi; give bounds or a prior for it"
            )
    return priors


def _observed(data: Any, sigma: Any) -> tuple[np.ndarray, np.ndarray]:
    """The data and their standard deviations broadcast to the data's shape (checked where the data
    are finite: the other points are left out of the likelihood)."""
    y = np.asarray(data, dtype=np.float64)
    try:
        sd = np.broadcast_to(np.asarray(sigma, dtype=np.float64), y.shape)
    except ValueError:
        raise InputError(
            f"sigma of shape {np.shape(sigma)} does not broadcast to the data's {y.shape}"
        ) from None
    finite = np.isfinite(y)
    if np.any(finite & ~(np.isfinite(sd) & (sd > 0))):
        raise InputError("sigma must be finite and > 0 wherever the data are finite")
    return y, sd


def _inside(names: tuple[str, ...], start: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    """The start values, moved just inside open bounds (a uniform prior's density is zero on them)."""
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    inside = np.clip(start, lo + 1e-9 * span, hi - 1e-9 * span)
    return {n: float(v) for n, v in zip(names, inside, strict=True)}


def _program(
    exe: Executable,
    names: tuple[str, ...],
    priors: dict[str, Any],
    start: np.ndarray,
    y: np.ndarray,
    sd: np.ndarray,
    arrays: dict[str, Any],
) -> Callable[[], None]:
    """The NumPyro program: priors, the model on its grid, a Gaussian likelihood of the finite data."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    f = exe.jax_function
    shape = np.shape(f(start, **arrays))
    if shape != y.shape:
        raise InputError(f"data have shape {y.shape}, but the model's results have {shape}")
    kept = np.flatnonzero(np.isfinite(y))
    observed, scale = jnp.asarray(y.reshape(-1)[kept]), jnp.asarray(sd.reshape(-1)[kept])

    site = "data"
    while site in names:  # the observations' site name, apart from the parameters'
        site += "_"

    def program() -> None:
        theta = jnp.stack([numpyro.sample(n, priors[n]) for n in names])
        numpyro.sample(site, dist.Normal(jnp.reshape(f(theta, **arrays), -1)[kept], scale), obs=observed)

    return program
