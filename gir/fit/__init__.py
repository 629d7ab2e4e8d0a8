"""Fitting gir models: least squares with analytic Jacobians, lmfit, VARPRO, joint and batch fits.

::

    import gir.fit
    result = gir.fit.least_squares(exe, data, energy=E, time=T)   # levmar, analytic Jacobian
    print(result.report()); result.plot()
    result = gir.fit.least_squares(exe, data, starts=64, energy=E, time=T)     # a global first stage
    result = gir.fit.least_squares(exe, data, varpro=True, energy=E, time=T)   # variable projection
    params = gir.fit.to_lmfit(exe)                                             # lmfit
    residual, dfun = gir.fit.lmfit_functions(exe, data, energy=E, time=T)
    result = gir.fit.joint([gir.fit.Dataset(exe, d1, energy=E, time=T, label="a"), ...], local=["p1.A"])
    results = gir.fit.batch(exe, spectra, energy=E, client=dask_client)
    fits = gir.fit.least_squares(exe, data_array)         # a map: xarray in, xarray Dataset out
    chain = gir.fit.mcmc(result, steps=2000)              # emcee, all walkers in one batched call
    result.conf_interval(["p1.x0"]); result.propagate("p1.A * p1.F")
    posterior = gir.fit.nuts(exe, data, sigma, energy=E)  # NUTS (numpyro) on a jax target

The modules: ``grid`` (an executable on one windowed grid), ``dataset`` (data,
weights, start values and bounds), ``problem`` (data sets stacked over one
parameter vector), ``solver`` (options and one local run), ``levmar``,
``global_stage``, ``varpro``, ``least_squares``, ``joint``, ``batch`` (with
``compiled_lm``, the batched solver in compiled code), ``maps`` (xarray),
``result``, ``intervals``, ``mcmc``, ``nuts``, ``lmfit_bridge``. Only light
modules load with ``import gir``; scipy.optimize, lmfit, matplotlib, tqdm,
xarray, emcee, numpyro and dask load when used. See docs/fitting.md,
docs/maps.md, docs/uncertainty.md and docs/interop.md.
"""

from gir.fit.batch import BatchResult, batch, releases_gil
from gir.fit.dataset import Dataset
from gir.fit.intervals import Derived, conf_interval, propagate
from gir.fit.joint import joint
from gir.fit.least_squares import least_squares, solve
from gir.fit.lmfit_bridge import lmfit_functions, lmfit_names, to_lmfit
from gir.fit.maps import evaluate_map, fit_map
from gir.fit.mcmc import MCMCResult, mcmc
from gir.fit.nuts import NutsResult, nuts
from gir.fit.problem import Problem, build_problem
from gir.fit.result import DatasetFit, FitResult
from gir.fit.varpro import linear_columns

__all__ = [
    "BatchResult",
    "Dataset",
    "DatasetFit",
    "Derived",
    "FitResult",
    "MCMCResult",
    "NutsResult",
    "Problem",
    "batch",
    "build_problem",
    "conf_interval",
    "evaluate_map",
    "fit_map",
    "joint",
    "least_squares",
    "linear_columns",
    "lmfit_functions",
    "lmfit_names",
    "mcmc",
    "nuts",
    "propagate",
    "releases_gil",
    "solve",
    "to_lmfit",
]
