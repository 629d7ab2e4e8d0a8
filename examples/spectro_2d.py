"""A time- and energy-resolved spectrum: build a model, simulate noisy data, fit, check, plot.

Offset + Shirley + two GLP peaks; the second peak's parameters are
expressions of the first's, and the first peak's position oscillates in time.
The start is what a scientist would guess: positions off by a fraction of a
peak width, amplitudes and widths off by 10-20 %. The fit is weighted with the
noise level, so a right fit has a reduced chi-square near 1 and recovers the
true parameters within their standard errors; the script says so, or exits
with an error. Writes data, fit and residual to a PNG (default spectro_2d.png).

    python examples/spectro_2d.py [output.png] [--target numba]
"""

import argparse
import sys

import numpy as np

import gir
from gir import models as gm


def build() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=gm.Param(1.0, bounds=(0, 10))))
    m.add(gm.GLP("p1", A=gm.Param(10.0, bounds=(0, 100)), x0=gm.Param(84.0, bounds=(80, 88)),
                 F=gm.Param(1.0, bounds=(0.2, 5)), m=gm.Param(0.3, bounds=(0, 1))))  # fmt: skip
    m.add(gm.GLP("p2", A="0.5*p1.A", x0="p1.x0 + 3.65", F="p1.F", m="p1.m"))
    m.add(gm.Shirley(pShirley=gm.Param(1e-3, bounds=(0, 0.1))))
    m.dynamics("p1.x0", [gm.sinFun(A=gm.Param(0.3, bounds=(0, 2)), f=gm.Param(0.4, bounds=(0.05, 2)),
                                   phi=gm.Param(0.5, bounds=(-4, 4)), t0=0.0)])  # fmt: skip
    return m


#: How far from the truth the fit starts: a shift in units of the peak width F for positions
#: and phases, a factor for everything else.
START = {
    "Offset.y0": 1.15,
    "p1.A": 0.85,
    "p1.x0": +0.3,  # 0.3 F
    "p1.F": 1.15,
    "p1.m": 0.8,
    "Shirley.pShirley": 1.2,
    "p1.x0.sinFun.A": 1.2,
    "p1.x0.sinFun.f": 0.97,
    "p1.x0.sinFun.phi": -0.3,  # radians
}


def start_values(exe, truth: np.ndarray) -> np.ndarray:
    """The truth moved as in :data:`START`."""
    values = dict(zip(exe.param_names, truth, strict=True))
    width = values["p1.F"]
    start = {}
    for name, v in values.items():
        move = START[name]
        if name == "p1.x0":
            start[name] = v + move * width
        elif name.endswith(".phi"):
            start[name] = v + move
        else:
            start[name] = v * move
    return np.array([start[n] for n in exe.param_names])


def fit(target: str = "auto", seed: int = 1):
    """Simulate data from the model's start values and fit it from a rough start; (result, truth)."""
    model = build()
    exe = gir.compile(model, target=target)
    time = np.linspace(-1.0, 10.0, 212)
    energy = np.linspace(78.0, 94.0, 1131)
    truth = exe.theta0.copy()
    clean = exe(truth, energy=energy, time=time)
    sigma = 0.05 * np.sqrt(clean)
    data = clean + np.random.default_rng(seed).normal(0.0, sigma)
    result = gir.fit.least_squares(
        exe, data, theta0=start_values(exe, truth), weights=1 / sigma, energy=energy, time=time
    )
    return result, truth


def check(result, truth: np.ndarray) -> list[str]:
    """What is wrong with the fit: parameters more than 3 standard errors from the truth, a reduced
    chi-square more than 20 % from 1, parameters at a bound, and the fit's own diagnostics."""
    problems = [str(d) for d in result.diagnostics]
    for name, v, e, t in zip(result.param_names, result.x, result.stderr, truth, strict=True):
        if not abs(v - t) <= 3 * e:
            problems.append(f"{name} = {v:.6g} +/- {e:.2g}, the truth is {t:.6g}")
    if abs(result.redchi - 1) > 0.2:
        problems.append(f"reduced chi-square {result.redchi:.3g}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", nargs="?", default="spectro_2d.png")
    ap.add_argument("--target", default="auto")
    args = ap.parse_args()

    result, truth = fit(args.target)
    print(f"{result.nfev} evaluations, {result.wall_time:.2f} s")
    print(result.report())
    problems = check(result, truth)
    fig = result.plot()
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")
    if problems:
        sys.exit("the fit is wrong:\n  " + "\n  ".join(problems))
    print("the fit recovers the truth: every parameter within 3 standard errors, reduced chi-square near 1")


if __name__ == "__main__":
    main()
