"""trspecfit's workflow in gir: import the model files, fit a baseline, the 2D map and slice by slice.

The model files in examples/data/trspecfit/ are in trspecfit's format: an
energy model (Offset + Shirley + two GLP peaks, the second tied to the first)
and a dynamics model (a Gaussian instrument response and an exponential) on
the first peak's amplitude. The script simulates a noisy time x energy map
from the imported 2D model (the values in the files are the truth), then:

1. baseline: the energy model alone (the 1D import) fitted to the mean of the
   time slices before time zero;
2. 2D fit: the whole map, started from the baseline's values (as trspecfit
   users do) and a rough guess of the dynamics, reported in trspecfit's names;
3. slice by slice: the energy model fitted to every time slice
   (``gir.fit.batch``), giving the time trace of ``GLP_01_A``.

The fits are weighted with the known noise, so a right 2D fit has a reduced
chi-square near 1 and recovers the true parameters within 3 standard errors;
the script says so, or exits with an error. Writes data, fit, residual and the
slice-by-slice trace to a PNG (default from_trspecfit.png).

    python examples/from_trspecfit.py [output.png] [--target numba]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import erfc

import gir
from gir import models as gm

FOLDER = Path(__file__).resolve().parent / "data" / "trspecfit"
#: trspecfit's add_time_dependence(...) arguments: the amplitude of the first peak follows
#: the dynamics model "MonoExp" of models_time.yaml.
DYNAMICS = {
    "target_parameter": "GLP_01_A",
    "dynamics_yaml": "models_time.yaml",
    "dynamics_model": ["MonoExp"],
}
#: The time slices averaged for the baseline: those before this time, well before time zero and
#: the rise of the instrument response.
BEFORE_T0 = -0.8

#: How far from the truth a scientist's first guess is: a shift in units of the peak width
#: for the position, a factor for everything else.
START = {
    "Offset_y0": 1.15,
    "Shirley_pShirley": 1.2,
    "GLP_01_A": 0.85,
    "GLP_01_x0": +0.3,  # 0.3 F
    "GLP_01_F": 1.15,
    "GLP_01_m": 0.8,
    "GLP_02_A": 1.15,
    "GLP_01_A_gaussCONV_SD": 1.2,
    "GLP_01_A_expFun_01_A": 0.85,
    "GLP_01_A_expFun_01_tau": 1.2,
}


def guess(names, truth: dict[str, float]) -> dict[str, float]:
    """The truth of ``names`` moved as in :data:`START`."""
    out = {}
    for name in names:
        if name == "GLP_01_x0":
            out[name] = truth[name] + START[name] * truth["GLP_01_F"]
        else:
            out[name] = truth[name] * START[name]
    return out


def models():
    """The energy model alone (1D) and with its dynamics (2D), imported from trspecfit's files."""
    energy = FOLDER / "models_energy.yaml"
    return (
        gm.from_trspecfit(energy, model="Peaks"),
        gm.from_trspecfit(energy, model="Peaks", time_dependence=[DYNAMICS]),
    )


def trace(t: np.ndarray, base: float, sd: float, a: float, tau: float, t0: float = 0.0) -> np.ndarray:
    """``GLP_01_A`` in time: its base value plus A exp(-(t - t0)/tau) for t > t0, convolved with
    a Gaussian of standard deviation ``sd`` (the closed form)."""
    s = t - t0
    rise = erfc((sd**2 / tau - s) / (sd * np.sqrt(2)))
    return base + 0.5 * a * np.exp(sd**2 / (2 * tau**2) - s / tau) * rise


def run(target: str = "numba", seed: int = 3, progress: bool = True) -> dict:
    """Simulate the map and fit it three ways; a dict of the results, the truth and the grids."""
    model_1d, model_2d = models()
    exe_1d, exe_2d = gir.compile(model_1d, target=target), gir.compile(model_2d, target=target)
    truth = dict(zip(exe_2d.param_names, exe_2d.theta0, strict=True))  # the values in the files
    time, energy = np.linspace(-2.0, 10.0, 60), np.linspace(78.0, 94.0, 300)
    clean = exe_2d(exe_2d.theta0, energy=energy, time=time)
    sigma = 0.1 * np.sqrt(clean)  # counting noise, known
    data = clean + np.random.default_rng(seed).normal(0.0, sigma)

    # 1. Baseline: the mean of the slices before time zero, fitted with the energy model alone.
    rows = time < BEFORE_T0
    mean = data[rows].mean(axis=0)
    mean_sigma = np.sqrt((sigma[rows] ** 2).sum(axis=0)) / rows.sum()
    baseline = gir.fit.least_squares(
        exe_1d, mean, theta0=guess(exe_1d.param_names, truth), weights=1 / mean_sigma, energy=energy
    )

    # 2. The 2D fit. As in trspecfit, the baseline's values are the start of the energy
    # parameters, which stay free (the ones that do not change in time could instead be pinned
    # at them with fixed={...}); the dynamics start from a rough guess.
    start = guess(exe_2d.param_names, truth)
    start.update(baseline.params)
    fit_2d = gir.fit.least_squares(exe_2d, data, theta0=start, weights=1 / sigma, energy=energy, time=time)

    # 3. Slice by slice: the energy model on every time slice, from the baseline. The shape of
    # the peaks and the Shirley background do not change in time: pinned at the baseline.
    static = ("GLP_01_x0", "GLP_01_F", "GLP_01_m", "Shirley_pShirley")
    slices = gir.fit.batch(
        exe_1d,
        data,
        theta0=baseline.x,
        weights=1 / sigma,
        progress=progress,
        fit_kws={"fixed": {n: baseline.params[n] for n in static}},
        energy=energy,
    )
    return {
        "baseline": baseline,
        "fit": fit_2d,
        "slices": slices,
        "truth": truth,
        "time": time,
        "energy": energy,
    }


def check(result, truth: dict[str, float]) -> list[str]:
    """What is wrong with a fit: parameters more than 3 standard errors from the truth, a reduced
    chi-square more than 20 % from 1, and the fit's own diagnostics (a parameter at a bound...)."""
    problems = [str(d) for d in result.diagnostics]
    for name, v, e in zip(result.param_names, result.x, result.stderr, strict=True):
        if not abs(v - truth[name]) <= 3 * e:
            problems.append(f"{name} = {v:.6g} +/- {e:.2g}, the truth is {truth[name]:.6g}")
    if abs(result.redchi - 1) > 0.2:
        problems.append(f"reduced chi-square {result.redchi:.3g}")
    return problems


def plot(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit, slices, truth, time, energy = (out[k] for k in ("fit", "slices", "truth", "time", "energy"))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4), constrained_layout=True)
    extent = (energy[0], energy[-1], time[-1], time[0])
    for ax, image, title in zip(
        axes[:3], (fit.data, fit.best_fit, fit.data - fit.best_fit), ("data", "2D fit", "residual")
    ):
        if title == "residual":
            limit = np.abs(image).max()
            shown = ax.imshow(image, aspect="auto", extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
        else:
            shown = ax.imshow(image, aspect="auto", extent=extent)
        ax.set(title=title, xlabel="energy", ylabel="time")
        fig.colorbar(shown, ax=ax)
    ax = axes[3]
    ax.errorbar(time, slices.params["GLP_01_A"], slices.errors["GLP_01_A"], fmt=".", label="slice by slice")
    t = np.linspace(time[0], time[-1], 400)
    keys = ("GLP_01_A", "GLP_01_A_gaussCONV_SD", "GLP_01_A_expFun_01_A", "GLP_01_A_expFun_01_tau")
    ax.plot(t, trace(t, *(fit.params[k] for k in keys)), label="2D fit")
    ax.plot(t, trace(t, *(truth[k] for k in keys)), "k--", lw=1, label="truth")
    ax.set(title="GLP_01_A in time", xlabel="time", ylabel="GLP_01_A")
    ax.legend()
    fig.savefig(path, dpi=70)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", nargs="?", default="from_trspecfit.png")
    ap.add_argument("--target", default="numba")
    args = ap.parse_args()

    out = run(args.target)
    baseline, fit, slices, truth = (out[k] for k in ("baseline", "fit", "slices", "truth"))
    print("== baseline: the energy model on the mean of the slices before time zero ==")
    print(baseline.report())
    print(f"\n== 2D fit: {fit.nfev} evaluations, {fit.wall_time:.2f} s ==")
    print(fit.report())
    print("\n== slice by slice ==")
    print(slices.report())
    plot(out, args.output)
    print(f"wrote {args.output}")
    problems = [f"baseline: {p}" for p in check(baseline, truth)]
    problems += [f"2D fit: {p}" for p in check(fit, truth)]
    if problems:
        sys.exit("the fit is wrong:\n  " + "\n  ".join(problems))
    print("the fit recovers the truth: every parameter within 3 standard errors, reduced chi-square near 1")


if __name__ == "__main__":
    main()
