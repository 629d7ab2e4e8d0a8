"""gir.fit.mcmc: emcee around a least-squares fit, against the analytic posterior of a linear-Gaussian
model (means and standard deviations within 3 Monte Carlo standard errors)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy import special

import gir
import gir.fit
from gir import models as gm
from gir.errors import GirError, InputError
from gir.fit.mcmc import NOISE, mcmc, start_ball
from gir.fit.problem import Problem

pytest.importorskip("emcee")
# short chains in the tests of everything but the statistics warn (tested on its own below)
pytestmark = pytest.mark.filterwarnings("ignore:mcmc. the chain after the burn-in:RuntimeWarning")

P = gm.Param
E = np.linspace(0.0, 5.0, 40)
SIGMA = 0.2
PEAK = {"x0": 2.0, "F": 1.0, "m": 0.3}


def linear_model() -> gm.Model:
    """Linear in its free parameters: a line and a fixed-shape peak with a free amplitude."""
    m = gm.Model()
    m.add(gm.Line(slope=P(0.1, bounds=(-10, 10)), intercept=P(1.0, bounds=(-100, 100))))
    m.add(gm.GLP("p1", A=P(5.0, bounds=(-100, 100)), **PEAK))
    return m


def design() -> np.ndarray:
    u2 = ((E - PEAK["x0"]) / PEAK["F"]) ** 2
    m = PEAK["m"]
    peak = np.exp(-4 * math.log(2) * (1 - m) * u2) / (1 + 4 * m * u2)
    return np.column_stack([E, np.ones_like(E), peak])  # slope, intercept, p1.A


@pytest.fixture(scope="module")
def exe():
    return gir.compile(linear_model(), target="numpy")


@pytest.fixture(scope="module")
def data(exe):
    return exe(exe.theta0, energy=E) + np.random.default_rng(0).normal(0.0, SIGMA, E.size)


@pytest.fixture(scope="module")
def weighted(exe, data):
    """The weighted fit and the analytic posterior (flat prior, known sigma): N(x_hat, (X^T X)^-1 sigma^2)."""
    result = gir.fit.least_squares(exe, data, weights=np.full(E.size, 1 / SIGMA), energy=E)
    x = design()
    mean = np.linalg.lstsq(x, data, rcond=None)[0]
    cov = np.linalg.inv(x.T @ x) * SIGMA**2
    return result, mean, cov


def assert_matches(chain, mean, std, columns=slice(None)):
    """Means within 3 MCSE; standard deviations within 3 of theirs (std / sqrt(2 ESS), for a normal)."""
    ess = chain.ess[columns]
    np.testing.assert_array_less(np.abs(chain.mean[columns] - mean), 3 * chain.std[columns] / np.sqrt(ess))
    np.testing.assert_array_less(np.abs(chain.std[columns] - std), 3 * std / np.sqrt(2 * ess))


def test_posterior_of_a_linear_gaussian_model(weighted):
    result, mean, cov = weighted
    chain = mcmc(result, steps=1500, seed=1, progress=False)
    assert chain.param_names == result.param_names
    assert chain.chain.shape == (1500 - 375, 32, 3)
    assert chain.samples.shape == (1125 * 32, 3)
    assert chain.log_prob.shape == (1125, 32)
    assert 0.3 < chain.acceptance_fraction < 0.9
    assert np.all(chain.ess > 600)
    assert_matches(chain, mean, np.sqrt(np.diag(cov)))
    corr = chain.covar / np.outer(chain.std, chain.std)
    want = cov / np.outer(np.sqrt(np.diag(cov)), np.sqrt(np.diag(cov)))
    np.testing.assert_allclose(corr, want, atol=0.05)  # -0.84 between slope and intercept
    q = chain.quantiles((0.15866, 0.5, 0.84134))
    assert chain.params == {n: float(v) for n, v in zip(chain.param_names, q[1], strict=True)}
    assert list(chain.errors.values()) == pytest.approx((q[2] - q[0]) / 2, rel=1e-15)
    assert "[[MCMC]]" in chain.report() and "p1.A" in str(chain)


def test_a_gaussian_log_prior_gives_the_conjugate_posterior(weighted):
    result, mean, cov = weighted
    mu, tau = 4.6, 0.05  # a prior on p1.A narrower than its likelihood (std 0.10)
    precision = np.linalg.inv(cov)
    post_prec = precision + np.diag([0.0, 0.0, 1 / tau**2])
    post_cov = np.linalg.inv(post_prec)
    post_mean = post_cov @ (precision @ mean + np.array([0.0, 0.0, mu / tau**2]))

    def log_prior(p):
        return -0.5 * ((p["p1.A"] - mu) / tau) ** 2

    chain = mcmc(result, steps=1200, log_prior=log_prior, seed=2, progress=False)
    assert_matches(chain, post_mean, np.sqrt(np.diag(post_cov)))


def test_sampled_noise_scale_follows_its_chi_square_posterior(exe, data):
    """Flat priors on the coefficients and on ln s: RSS / s^2 ~ chi2(n - P), so ln s has mean
    (ln RSS - psi(k/2) - ln 2) / 2 and variance psi'(k/2) / 4, k = n - P."""
    chain = mcmc(exe, data, energy=E, noise=True, steps=1500, seed=3, progress=False)
    assert chain.param_names[-1] == NOISE
    x = design()
    coef = np.linalg.lstsq(x, data, rcond=None)[0]
    rss = float(np.sum((data - x @ coef) ** 2))
    k = E.size - 3
    mean = 0.5 * (math.log(rss) - special.digamma(k / 2) - math.log(2))
    std = 0.5 * math.sqrt(special.polygamma(1, k / 2))
    assert_matches(chain, mean, std, columns=slice(3, 4))


def test_unweighted_data_use_the_fitted_noise_scale(exe, data):
    """Without weights the noise is the least-squares estimate: the posterior is N(x_hat, covar)."""
    result = gir.fit.least_squares(exe, data, energy=E)
    chain = mcmc(result, steps=1000, seed=4, progress=False)
    mean = np.linalg.lstsq(design(), data, rcond=None)[0]
    assert_matches(chain, mean, result.stderr)


def test_every_step_scores_all_walkers_in_one_batched_call(weighted, monkeypatch):
    result, _, _ = weighted
    calls = []
    costs = Problem.costs

    def counting(self, xs, *args, **kwargs):
        calls.append(np.shape(xs)[0])
        return costs(self, xs, *args, **kwargs)

    monkeypatch.setattr(Problem, "costs", counting)
    chain = mcmc(result, walkers=10, steps=40, burn=0, seed=5, progress=False)
    assert chain.walkers == 10
    # the start (checked, then timed), then per step one call per half of the ensemble (emcee's
    # stretch move updates the walkers in two halves), with the proposals inside the bounds
    assert len(calls) == 2 + 2 * 40
    assert max(calls) <= 10 and sum(calls[2:]) <= 40 * 10


def test_seeded_runs_repeat_and_stay_within_bounds(weighted):
    result, _, _ = weighted
    a = mcmc(result, steps=60, seed=6, progress=False)
    b = mcmc(result, steps=60, seed=6, progress=False)
    np.testing.assert_array_equal(a.chain, b.chain)
    lo, hi = result.bounds
    assert np.all(a.samples >= lo) and np.all(a.samples <= hi)
    assert not np.array_equal(a.chain, mcmc(result, steps=60, seed=7, progress=False).chain)


def test_start_ball_is_reflected_into_the_bounds():
    rng = np.random.default_rng(0)
    x = np.array([0.0, 1.0])
    pos = start_ball(x, np.array([1.0, 0.0]), (np.array([0.0, -5.0]), np.array([1.0, 5.0])), 500, rng)
    assert pos.shape == (500, 2)
    assert np.all(pos[:, 0] >= 0.0) and np.all(pos[:, 0] <= 1.0)
    assert np.unique(pos[:, 0]).size == 500  # reflected, not piled up on the bound
    assert np.std(pos[:, 1]) == pytest.approx(1e-4, rel=0.2)  # no standard error: 1e-4 of the value


def test_a_short_chain_warns_about_its_autocorrelation_time(weighted):
    result, _, _ = weighted
    with pytest.warns(RuntimeWarning, match="shorter than 50 autocorrelation times"):
        chain = mcmc(result, steps=100, seed=7, progress=False)
    assert chain.burn == 25 and np.all(chain.autocorr > 0)


def test_cost_estimate_is_logged_and_printed(weighted, caplog, capsys):
    result, _, _ = weighted
    with caplog.at_level("INFO", logger="gir.fit.mcmc"):
        mcmc(result, steps=60, seed=8, progress=True)
    assert "scoring the walkers once takes" in caplog.text
    assert "32 walkers x 60 steps" in capsys.readouterr().err


def test_input_errors(weighted, exe, data):
    result, _, _ = weighted
    with pytest.raises(InputError, match="walkers must be an integer >= 6"):
        mcmc(result, walkers=4, progress=False)
    with pytest.raises(InputError, match=r"burn must be an integer in \[0, steps=10\)"):
        mcmc(result, steps=10, burn=10, progress=False)
    with pytest.raises(InputError, match="carries its data"):
        mcmc(result, data, progress=False)
    with pytest.raises(InputError, match="give a FitResult"):
        mcmc(exe, energy=E, progress=False)
    with pytest.raises(InputError, match="log_prior must return one value per walker"):
        mcmc(result, steps=10, burn=0, log_prior=lambda p: np.zeros(3), progress=False)


def test_corner_without_the_package_names_it(weighted, monkeypatch):
    result, _, _ = weighted
    chain = mcmc(result, steps=20, burn=0, seed=9, progress=False)
    monkeypatch.setitem(sys.modules, "corner", None)
    with pytest.raises(GirError, match="pip install corner"):
        chain.corner()


@pytest.mark.slow
def test_posterior_of_the_2d_map_model_agrees_with_the_fit():
    """The example-02-like map (212 x 1131, 4 free parameters, numba): the posterior is close to
    Gaussian, so its standard deviations are the least-squares standard errors within 15 %."""
    pytest.importorskip("numba")
    from benchmarks.bench_mcmc import example02

    exe, data, arrays = example02("numba")
    result = gir.fit.least_squares(exe, data, weights=np.full(data.shape, 10.0), **arrays)
    chain = mcmc(result, steps=400, seed=10, progress=False)
    np.testing.assert_array_less(np.abs(chain.median - result.x), 3 * result.stderr)
    np.testing.assert_allclose(chain.std, result.stderr, rtol=0.15)
