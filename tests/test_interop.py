"""Executables inside JAX programs (jit, vmap, grad, jacfwd, jacrev through gir's derivative graphs),
inside Numba code (numba_function), and NUTS sampling through JAX (gir.fit.nuts).

Derivatives are compared with the executable's own Jacobian (``exe.jacobian``, itself checked against
finite differences in test_fit_jacobians.py) to 1e-12 of the result's scale; values with exe(...)
to 1e-12 relative. The NUTS posterior of a linear-Gaussian problem is compared with its analytic
mean and standard deviation within 3 Monte Carlo standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

import gir
from gir import models as gm

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

P = gm.Param
TOL = 1e-12
T = np.linspace(-1.0, 4.0, 17)
E = np.linspace(80.0, 90.0, 23)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def irf_model() -> gm.Model:
    """A peak with convolved dynamics: the executable derives inputs from the time axis."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=P(3.0), x0=P(84.0), SD=P(0.8)))
    m.add(gm.Offset(y0=P(0.2)))
    m.dynamics("g.A", [gm.expFun(A=P(0.8), tau=P(1.3), t0=P(0.0234))], irf=gm.gaussCONV(SD=P(0.25)))
    return m


def small_model() -> gm.Model:
    """A peak with a decaying amplitude (no inputs derived from the axes)."""
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Gauss("g", A=P(3.0), x0=P(84.0), SD=P(0.8)))
    m.add(gm.Offset(y0=P(0.2)))
    m.dynamics("g.A", [gm.expFun(A=P(0.8), tau=P(1.3), t0=P(0.0234))])
    return m


@pytest.fixture(scope="module")
def jexe():
    return gir.compile(irf_model(), target="jax-cpu")


@pytest.fixture(scope="module")
def small():
    return gir.compile(small_model(), target="jax-cpu")


def two_outputs(x, t, a, b):
    return a * x + b, a * b * t * t


def close(got, want, scale=None):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = np.max(np.abs(want)) if scale is None else scale
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL * scale)


def thetas(exe, n=3):
    return exe.theta0 * (1.0 + 0.02 * np.arange(n))[:, None]


# -- JAX: values ------------------------------------------------------------------------------------


def test_values_eager_jit_and_vmap(jexe):
    f = jexe.jax_function
    th = jexe.theta0
    want = jexe(th, time=T, energy=E)
    close(f(th, time=T, energy=E), want)
    close(jax.jit(lambda t: f(t, time=T, energy=E))(jnp.asarray(th)), want)
    close(f(None, time=T, energy=E), want)  # the start values
    close(f(dict(zip(jexe.param_names, th)), time=T, energy=E), want)
    ths = thetas(jexe)
    close(jax.vmap(lambda t: f(t, time=T, energy=E))(ths), jexe.batch(ths, time=T, energy=E))


def test_call_with_tracers_dispatches(jexe):
    th = jnp.asarray(jexe.theta0)
    got = jax.jit(lambda t: jexe(t, time=T, energy=E))(th)
    close(got, jexe(jexe.theta0, time=T, energy=E))


# -- JAX: derivatives through gir's graphs ------------------------------------------------------------


def test_grad_is_the_jacobian_contracted(jexe):
    w = np.random.default_rng(3).normal(size=(T.size, E.size))
    th = jexe.theta0
    J = jexe.jacobian(th, time=T, energy=E)
    want = np.tensordot(w, J, 2)

    def loss(t):
        return jnp.sum(w * jexe(t, time=T, energy=E))

    close(jax.grad(loss)(jnp.asarray(th)), want)
    close(jax.jit(jax.grad(loss))(jnp.asarray(th)), want)


def test_vmap_of_grad(small):
    w = np.random.default_rng(4).normal(size=(T.size, E.size))
    ths = thetas(small)
    got = jax.jit(jax.vmap(jax.grad(lambda t: jnp.sum(w * small(t, time=T, energy=E)))))(ths)
    for g, th in zip(np.asarray(got), ths, strict=True):
        close(g, np.tensordot(w, small.jacobian(th, time=T, energy=E), 2))
    # over energy grids (traced arrays: the model derives nothing from them)
    grids = np.stack([E, E + 0.5])
    th = jnp.asarray(small.theta0)
    got = jax.vmap(lambda e: jax.grad(lambda t: jnp.sum(w * small(t, time=T, energy=e)))(th))(grids)
    for g, e in zip(np.asarray(got), grids, strict=True):
        close(g, np.tensordot(w, small.jacobian(small.theta0, time=T, energy=e), 2))


@pytest.mark.parametrize("jac", ["jacfwd", "jacrev"])
def test_jacobians(small, jac):
    th = small.theta0
    want = small.jacobian(th, time=T, energy=E)
    fn = jax.jit(getattr(jax, jac)(lambda t: small.jax_function(t, time=T, energy=E)))
    close(fn(jnp.asarray(th)), want)


def test_jvp_is_a_jacobian_column_combination(small):
    th, v = small.theta0, np.linspace(-1.0, 1.0, len(small.param_names))
    y, dy = jax.jvp(lambda t: small.jax_function(t, time=T, energy=E), (jnp.asarray(th),), (jnp.asarray(v),))
    close(y, small(th, time=T, energy=E))
    close(dy, small.jacobian(th, time=T, energy=E) @ v)


def linear_maps(jaxpr) -> set[str]:
    """The functions gir's linear maps in ``jaxpr`` (and the jaxprs inside it) evaluate."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "gir_linear":
            found.add(eqn.params["pair"].forward.__name__)
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)
            if hasattr(inner, "eqns"):
                found |= linear_maps(inner)
    return found


def test_derivatives_are_gir_graphs(small):
    """Forward mode evaluates gir's forward-mode graph (tangents), reverse mode its transpose, the
    reverse-mode graph (cotangents), and nothing else."""
    f = small.jax_function
    th = jnp.asarray(small.theta0)
    fwd = jax.make_jaxpr(jax.jacfwd(lambda t: f(t, time=T, energy=E)))(th)
    assert linear_maps(fwd.jaxpr) == {"tangents"}
    rev = jax.make_jaxpr(jax.grad(lambda t: jnp.sum(f(t, time=T, energy=E))))(th)
    assert linear_maps(rev.jaxpr) == {"cotangents"}
    rev = jax.make_jaxpr(jax.jacrev(lambda t: f(t, time=T, energy=E)))(th)
    assert linear_maps(rev.jaxpr) == {"cotangents"}


def test_plain_graph_two_outputs_and_named_parameters():
    exe = gir.compile(gir.trace(two_outputs, x="X", t="T"), target="jax-cpu")
    x, t = np.linspace(0.0, 1.0, 5), np.linspace(-1.0, 2.0, 4)
    th = np.array([1.5, -0.7])
    ys = exe.jax_function(th, x=x, t=t)
    assert isinstance(ys, tuple) and len(ys) == 2
    for got, want in zip(ys, exe(th, x=x, t=t), strict=True):
        close(got, want)
    cts = (np.linspace(1.0, 2.0, 5), np.linspace(-1.0, 1.0, 4))

    def loss(a, b):
        y0, y1 = exe(a=a, b=b, x=x, t=t)
        return jnp.sum(cts[0] * y0) + jnp.sum(cts[1] * y1)

    got = jax.grad(loss, argnums=(0, 1))(th[0], th[1])
    close(np.array(got), exe.vjp(th, cts, x=x, t=t))
    J0, J1 = exe.jacobian(th, x=x, t=t)
    close(np.array(got), cts[0] @ J0 + cts[1] @ J1)


def test_scalar_output():
    exe = gir.compile(gir.trace(lambda x, a, b: np.sum(a * np.exp(-b * x * x)), x="X"), target="jax-cpu")
    x, th = np.linspace(-2.0, 2.0, 9), np.array([2.0, 0.5])
    close(exe.jax_function(th, x=x), exe(th, x=x))
    close(jax.grad(lambda t: exe(t, x=x))(jnp.asarray(th)), exe.jacobian(th, x=x))
    close(jax.jacfwd(lambda t: exe(t, x=x))(jnp.asarray(th)), exe.jacobian(th, x=x))


# -- JAX: errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_tracer_on_other_target_says_to_compile_for_jax(target):
    exe = gir.compile(gir.trace(two_outputs, x="X", t="T"), target=target)
    with pytest.raises(gir.GirError, match="target='jax-cpu'"):
        jax.jit(lambda a: exe(a=a, b=1.0, x=np.ones(3), t=np.ones(2)))(1.0)
    with pytest.raises(gir.GirError, match="target='jax-cpu'"):
        exe.jax_function  # noqa: B018


def test_errors(jexe):
    f = jexe.jax_function
    th = jnp.asarray(jexe.theta0)
    with pytest.raises(gir.InputError, match="time"):  # derived from time: must be concrete
        jax.jit(lambda t: f(th, time=t, energy=E))(T)
    with pytest.raises(gir.InputError, match="'energy'"):  # no derivatives with respect to arrays
        jax.grad(lambda e: jnp.sum(f(th, time=T, energy=e)))(E)
    with pytest.raises(gir.InputError, match="vector of 8 parameters"):
        f(th[:3], time=T, energy=E)
    with pytest.raises(gir.InputError, match="unknown input 'wrong'"):
        f(th, time=T, energy=E, wrong=E)
    with pytest.raises(gir.InputError, match="axis E has length"):
        exe = gir.compile(gir.trace(lambda x, y, a: a * x * y, x="E", y="E"), target="jax-cpu")
        exe.jax_function([1.0], x=np.ones(3), y=np.ones(4))
    with pytest.raises(gir.GirError, match="second derivatives"):
        jax.hessian(lambda t: jnp.sum(f(t, time=T, energy=E)))(th)


# -- Numba ------------------------------------------------------------------------------------------------


def test_numba_function_in_user_njit_loop():
    numba = pytest.importorskip("numba")
    exe = gir.compile(irf_model(), target="numba")
    f = exe.numba_function
    args = exe.numba_inputs(time=T, energy=E)
    assert len(args) == len(exe.array_names)

    @numba.njit
    def sums(ths, *arrays):
        out = np.empty(ths.shape[0])
        for i in range(ths.shape[0]):
            out[i] = np.sum(f(ths[i], *arrays))
        return out

    ths = thetas(exe, 4)
    want = exe.batch(ths, time=T, energy=E)
    np.testing.assert_allclose(sums(ths, *args), want.sum(axis=(1, 2)), rtol=1e-13)
    np.testing.assert_array_equal(f(ths[2], *args), exe(ths[2], time=T, energy=E))


def test_numba_function_two_outputs():
    pytest.importorskip("numba")
    exe = gir.compile(gir.trace(two_outputs, x="X", t="T"), target="numba")
    x, t, th = np.linspace(0.0, 1.0, 5), np.linspace(-1.0, 2.0, 4), np.array([1.5, -0.7])
    got = exe.numba_function(th, *exe.numba_inputs(x=x, t=t))
    for g, w in zip(got, exe(th, x=x, t=t), strict=True):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(gir.InputError, match="missing input 't'"):
        exe.numba_inputs(x=x)


def test_numba_function_needs_a_numba_target(jexe):
    with pytest.raises(gir.GirError, match="target='numba'"):
        jexe.numba_function  # noqa: B018


# -- NUTS -------------------------------------------------------------------------------------------------


def line(x, a, b):
    return a + b * x


def line_problem():
    rng = np.random.default_rng(11)
    x, sigma = np.linspace(-1.0, 1.0, 24), 0.3
    return x, sigma, 1.0 + 2.0 * x + rng.normal(0.0, sigma, x.size)


@pytest.mark.slow
def test_nuts_linear_gaussian_posterior():
    """Flat prior on a (uniform, far wider than the posterior), Normal(1.5, 0.2) prior on b: the
    posterior is Gaussian with precision X^T X / sigma^2 + diag(0, 1 / 0.2^2). The Monte Carlo
    standard error of the mean is sd / sqrt(n_eff); of the standard deviation sd / sqrt(2 n_eff'),
    n_eff' that of the squared deviations."""
    pytest.importorskip("numpyro")
    import numpyro.distributions as dist
    from numpyro.diagnostics import effective_sample_size

    from gir.fit.nuts import nuts

    x, sigma, y = line_problem()
    exe = gir.compile(gir.trace(line, x="X"), target="jax-cpu")
    X = np.stack([np.ones_like(x), x], axis=1)
    precision = X.T @ X / sigma**2 + np.diag([0.0, 1.0 / 0.2**2])
    cov = np.linalg.inv(precision)
    mean = cov @ (X.T @ y / sigma**2 + np.array([0.0, 1.5 / 0.2**2]))
    prior = {"b": dist.Normal(1.5, 0.2)}
    r = nuts(exe, y, sigma, priors=prior, theta0=[0.0, 1.0], bounds={"a": (-50.0, 50.0)},
             num_warmup=300, num_samples=1000, num_chains=2, seed=1, x=x)  # fmt: skip
    assert r.param_names == ("a", "b")
    assert r.chains["a"].shape == (2, 1000) and r.array().shape == (2000, 2)
    assert r.divergences == 0
    for i, n in enumerate(r.param_names):
        assert r.r_hat[n] < 1.02 and r.n_eff[n] > 200
        sd = np.sqrt(cov[i, i])
        assert abs(r.mean[n] - mean[i]) < 3 * sd / np.sqrt(r.n_eff[n]), n
        n_eff_var = effective_sample_size((r.chains[n] - r.mean[n]) ** 2)  # of the variance estimate
        assert abs(r.std[n] - sd) < 3 * sd / np.sqrt(2 * n_eff_var), n
    assert "r_hat" in r.report()


def test_nuts_input_errors():
    pytest.importorskip("numpyro")
    from gir.fit.nuts import nuts

    x, sigma, y = line_problem()
    jax_exe = gir.compile(gir.trace(line, x="X"), target="jax-cpu")
    with pytest.raises(gir.GirError, match="target='jax-cpu'"):
        nuts(gir.compile(gir.trace(line, x="X"), target="numpy"), y, sigma, theta0=[0, 0], x=x)
    with pytest.raises(gir.InputError, match="finite bounds"):
        nuts(jax_exe, y, sigma, theta0=[0, 0], x=x)
    with pytest.raises(gir.InputError, match="unknown parameter 'c'"):
        nuts(jax_exe, y, sigma, theta0=[0, 0], bounds=([-9, -9], [9, 9]), priors={"c": None}, x=x)
    with pytest.raises(gir.InputError, match="sigma must be finite and > 0"):
        nuts(jax_exe, y, 0.0, theta0=[0, 0], bounds=([-9, -9], [9, 9]), x=x)
    with pytest.raises(gir.InputError, match="does not broadcast"):
        nuts(jax_exe, y, np.ones(3), theta0=[0, 0], bounds=([-9, -9], [9, 9]), x=x)
    with pytest.raises(gir.InputError, match="data have shape"):
        nuts(jax_exe, y[:5], sigma, theta0=[0, 0], bounds=([-9, -9], [9, 9]), x=x)
