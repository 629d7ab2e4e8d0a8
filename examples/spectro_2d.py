"""A time- and energy-resolved spectrum: build a model, simulate noisy data, fit, plot.

Offset + Shirley + two GLP peaks; the second peak's parameters are
expressions of the first's, and the first peak's position oscillates in time.
Writes data, fit and residual to a PNG (default spectro_2d.png).

    python examples/spectro_2d.py [output.png] [--target numba]
"""

import argparse

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
                                   phi=gm.Param(0.0, bounds=(-4, 4)), t0=0.0)])  # fmt: skip
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", nargs="?", default="spectro_2d.png")
    ap.add_argument("--target", default="auto")
    args = ap.parse_args()

    model = build()
    exe = gir.compile(model, target=args.target)
    time = np.linspace(-1.0, 10.0, 212)
    energy = np.linspace(78.0, 94.0, 1131)
    truth = exe.theta0.copy()
    rng = np.random.default_rng(1)
    clean = exe(truth, energy=energy, time=time)
    data = clean + rng.normal(0.0, 0.05 * np.sqrt(clean), clean.shape)

    start = truth * (1 + 0.05 * rng.standard_normal(truth.size))
    start = np.clip(start, *exe.bounds)
    result = gir.fit.least_squares(exe, data, theta0=start, energy=energy, time=time)
    print(f"target {exe.target}: {result.nfev} evaluations, {result.wall_time:.2f} s")
    print(result.report())

    fig = result.plot()
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
