"""gir against trspecfit on the same models: time per evaluation and per fit.

Builds each model twice from the model files in tests/data/trspecfit/ (trspecfit's
File.load_model / add_time_dependence / add_par_profile, and gm.from_trspecfit), checks
that the two evaluate the same (1e-12 relative), then times

* per call (median of repeated calls after warm-up): trspecfit's interpreter
  (``spectra.fit_model_mcp``), trspecfit's compiled plan (``spectra.fit_model_gir``, its
  default in fits, where the model lowers to one), and gir's numpy and numba targets;
* per fit, from the same perturbed start on noise-free data: trspecfit's own fit
  (``File.fit_2d`` / ``File.fit_spectrum``: lmfit ``leastsq``, one stage, no confidence
  intervals) and ``gir.fit.least_squares``.

Needs trspecfit (Python >= 3.12) and numba:

    PYTHONPATH=. python benchmarks/bench_trspecfit.py
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:
    from trspecfit import File, Project
    from trspecfit.graph_ir import build_graph, can_lower_1d, can_lower_2d, schedule_1d, schedule_2d
    from trspecfit.spectra import fit_model_gir, fit_model_mcp
except ImportError as e:  # pragma: no cover
    sys.exit(f"bench_trspecfit.py needs trspecfit (pip install trspecfit, Python >= 3.12): {e}")

from common import timeit

import gir
import gir.models as gm

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "trspecfit"
ENERGY = DATA / "models_energy.yaml"

IRF_SUBCYCLES = [
    {"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml",
     "dynamics_model": ["IRF", "Neg", "Pos", "Nothing"], "frequency": 0.2},
]  # fmt: skip
PROFILE_DYN = [
    {"target_parameter": "GLP_01_A_pExpDecay_01_A", "dynamics_yaml": "models_time.yaml",
     "dynamics_model": "MonoExp"},
]  # fmt: skip
PROFILE = [
    {"target_parameter": "GLP_01_A", "profile_yaml": "models_profile.yaml", "profile_model": ["Decay"]}
]

#: name, trspecfit model, time dependences, profiles, time points, energies, aux points, fit or not
CASES = [
    ("2D: IRF + 3 subcycles", "2D", IRF_SUBCYCLES, [], 300, 600, 0, True),
    ("2D: IRF + subcycles + profile with dynamics", "2D", IRF_SUBCYCLES + PROFILE_DYN, PROFILE,
     200, 400, 10, False),
    ("1D: every component", "every_kind", [], [], 0, 1000, 0, True),
]  # fmt: skip


def build(model: str, calls: list, profiles: list, energy, time_, aux, data=None):
    """trspecfit's File with the model loaded (data optional) and gir's import of the same."""
    project = Project(path=str(DATA), config_file=None)
    project.show_output = 0
    kw = {"energy": energy, "data": data}
    if time_ is not None:
        kw["time"] = time_
    if aux is not None:
        kw["aux_axis"] = aux
    f = File(parent_project=project, **kw)
    f.load_model("models_energy.yaml", [model])
    for call in profiles:
        f.add_par_profile(**{"target_model": model, **call})
    for call in calls:
        f.add_time_dependence(**{"target_model": model, **call})
    return f, gm.from_trspecfit(ENERGY, model, time_dependence=calls, par_profiles=profiles)


def full_vector(exe, theirs, theta) -> np.ndarray:
    """trspecfit's parameter vector (every parameter, its order) at gir's free values ``theta``."""
    fixed, tied = exe.fixed_and_tied(theta)
    values = {
        **dict(zip(exe.param_names, theta, strict=True)),
        **fixed,
        **{k: v for k, (_, v) in tied.items()},
    }
    return np.array([values[n] for n in theirs.parameter_names])


def trspecfit_plan(theirs):
    """trspecfit's compiled plan and its parameter indices, or None where the model does not lower."""
    graph = build_graph(theirs)
    if theirs.dim == 2:
        if not can_lower_2d(graph):
            return None
        plan = schedule_2d(graph)
    else:
        if not can_lower_1d(graph):
            return None
        plan = schedule_1d(graph)
    index = {n: i for i, n in enumerate(theirs.parameter_names)}
    return plan, np.array([index[n] for n in plan.opt_param_names], dtype=np.intp)


def perturbed(exe) -> np.ndarray:
    """The start of the fits: peak positions (``*_x0``) moved by +-0.2, every other free parameter
    by +-5 %, kept off the bounds."""
    signs = np.where(np.arange(len(exe.theta0)) % 2 == 0, 1.0, -1.0)
    theta = exe.theta0 * (1 + 0.05 * signs)
    for i, name in enumerate(exe.param_names):
        if name.endswith("_x0"):
            theta[i] = exe.theta0[i] + 0.2 * signs[i]
    lo, hi = exe.bounds
    pad = 1e-3 * np.where(np.isfinite(hi - lo), hi - lo, 0.0)
    return np.clip(theta, lo + pad, hi - pad)


def fit_trspecfit(model, calls, profiles, energy, time_, aux, data, exe, start):
    """trspecfit's own fit (lmfit leastsq, one stage) from ``start``: seconds, chi-square, evaluations."""
    f, _ = build(model, calls, profiles, energy, time_, aux, data=data)
    theirs = f.model_active
    full = full_vector(exe, theirs, start)
    for name, v in zip(theirs.parameter_names, full, strict=True):
        if theirs._lmfit_pars[name].expr is None:
            theirs._lmfit_pars[name].value = v
    kw = {"stages": 1, "fit_alg_1": "leastsq", "try_ci": 0}
    t0 = time.perf_counter()
    if theirs.dim == 2:
        f.fit_2d(model, seed_source="model", **kw)
        out = theirs.result
    else:
        f.fit_spectrum(model, show_plot=False, **kw)
        out = theirs.result
    seconds = time.perf_counter() - t0
    res = out.par_fin
    return seconds, float(res.chisqr), int(res.nfev)


def callables(energy, full, theirs, plan, exes, theta, arrays) -> dict:
    """The evaluations to time, by name, all at the same parameters."""
    out = {"trspecfit interpreter": lambda: fit_model_mcp(energy, full, True, theirs, theirs.dim)}
    if plan is not None:
        out["trspecfit plan"] = lambda: fit_model_gir(energy, full, True, *plan, theirs, theirs.dim)
    for t, e in exes.items():
        out[f"gir {t}"] = lambda e=e: e(theta, **arrays)
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    versions = (
        f"trspecfit {importlib.metadata.version('trspecfit')}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, numba {importlib.metadata.version('numba')}"
    )
    print(versions)
    rows = []
    for label, model, calls, profiles, nt, ne, nz, do_fit in CASES:
        energy = np.linspace(78, 92, ne)
        time_ = np.linspace(-2, 12, nt) if nt else None
        aux = np.linspace(0, 6, nz) if nz else None
        f, m = build(model, calls, profiles, energy, time_, aux)
        theirs = f.model_active
        arrays = {"energy": energy}
        if time_ is not None:
            arrays["time"] = time_
        if aux is not None:
            arrays["aux"] = aux
        exes = {t: gir.compile(m, target=t) for t in ("numpy", "numba")}
        exe = exes["numpy"]
        theta = perturbed(exe)
        full = full_vector(exe, theirs, theta)
        plan = trspecfit_plan(theirs)

        calls_ = callables(energy, full, theirs, plan, exes, theta, arrays)
        ref = np.asarray(calls_["trspecfit interpreter"]())
        for name, fn in calls_.items():  # agree before timing
            np.testing.assert_allclose(fn(), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max(), err_msg=name)
        ms = {name: 1e3 * timeit(fn, repeat=5, min_time=0.1) for name, fn in calls_.items()}
        shape = "x".join(str(n) for n in ref.shape) + (f" (aux {nz})" if nz else "")
        row = {"model": label, "shape": shape, "free": len(exe.param_names), **ms}

        if do_fit:
            data = exe(exe.theta0, **arrays)
            sec, chi2, nfev = fit_trspecfit(model, calls, profiles, energy, time_, aux, data, exe, theta)
            row["fit trspecfit"] = (1e3 * sec, chi2, nfev)
            for t in ("numpy", "numba"):
                gir.fit.least_squares(exes[t], data, theta0=theta, **arrays)  # warm-up
                t0 = time.perf_counter()
                r = gir.fit.least_squares(exes[t], data, theta0=theta, **arrays)
                row[f"fit gir {t}"] = (1e3 * (time.perf_counter() - t0), float(r.chisqr), int(r.nfev))
        rows.append(row)
        print(row, flush=True)

    heads = ["trspecfit interpreter", "trspecfit plan", "gir numpy", "gir numba"]
    print("\n| model | time x energy | free | " + " | ".join(heads) + " |")
    print("|---|---|---:|" + "---:|" * len(heads))
    for r in rows:
        cells = [f"{r[h]:.3g}" if h in r else "n/a" for h in heads]
        print(f"| {r['model']} | {r['shape']} | {r['free']} | " + " | ".join(cells) + " |")
    print("\n| model | fit | ms | chi-square | evaluations |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        for h in ("fit trspecfit", "fit gir numpy", "fit gir numba"):
            if h in r:
                ms, chi2, nfev = r[h]
                print(f"| {r['model']} | {h[4:]} | {ms:.0f} | {chi2:.2g} | {nfev} |")


if __name__ == "__main__":
    main()
