"""Per-call time of a library model on every target against a straightforward NumPy version.

The model: Offset + Shirley + two GLP peaks, the second peak's parameters
expressions of the first's, and a sine-wave time dependence of the first
peak's position, on a 212 x 1131 (time x energy) grid.

    python benchmarks/bench_models.py [--grid 212x1131] [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ms, stamp, table, timeit, write_section

import gir
from gir import models as gm

LN2 = np.log(2.0)


def build() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=gm.Param(1.0, bounds=(0, 10))))
    m.add(
        gm.GLP("p1", A=gm.Param(10.0, bounds=(0, 100)), x0=gm.Param(84.0), F=gm.Param(1.0), m=gm.Param(0.3))
    )
    m.add(gm.GLP("p2", A="0.5*p1.A", x0="p1.x0 + 3.65", F="p1.F", m="p1.m"))
    m.add(gm.Shirley(pShirley=gm.Param(1e-3, bounds=(0, 1))))
    m.dynamics("p1.x0", [gm.sinFun(A=gm.Param(0.3), f=gm.Param(0.4), phi=gm.Param(0.0), t0=0.0)])
    return m


def straightforward(theta: np.ndarray, energy: np.ndarray, time: np.ndarray) -> np.ndarray:
    """The model as users write it in NumPy: every component on the full grid."""
    y0, A1, x1, F, m, pS, sA, sf, sphi = theta
    t = time[:, None]
    x = energy[None, :]
    x1t = x1 + np.where(t >= 0.0, sA * np.sin(2 * np.pi * sf * t + sphi), 0.0)

    def glp(A, x0, F, m):
        return A * np.exp(-4 * LN2 * (1 - m) * ((x - x0) / F) ** 2) / (1 + 4 * m * ((x - x0) / F) ** 2)

    peaks = glp(A1, x1t, F, m) + glp(0.5 * A1, x1t + 3.65, F, m)
    shirley = pS * np.flip(np.cumsum(np.flip(peaks, axis=1), axis=1), axis=1)
    return y0 + peaks + shirley


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default="212x1131")
    ap.add_argument("--targets", default="numpy,numba,numba-parallel,jax-cpu")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    nt, ne = (int(n) for n in args.grid.split("x"))
    time, energy = np.linspace(-1.0, 10.0, nt), np.linspace(78.0, 94.0, ne)
    model = build()
    available = {t.name for t in gir.targets() if t.available}
    first = gir.compile(model, target="numpy")
    theta = first.theta0
    order = ["Offset.y0", "p1.A", "p1.x0", "p1.F", "p1.m", "Shirley.pShirley",
             "p1.x0.sinFun.A", "p1.x0.sinFun.f", "p1.x0.sinFun.phi"]  # fmt: skip
    plain = theta[[first.param_names.index(n) for n in order]]
    want = straightforward(plain, energy, time)
    base = timeit(lambda: straightforward(plain, energy, time))
    rows = [["straightforward NumPy", ms(base), "1.00", "0"]]
    for target in [t for t in args.targets.split(",") if t in available]:
        exe = gir.compile(model, target=target)
        got = exe(theta, energy=energy, time=time)
        err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        sec = timeit(lambda exe=exe: exe(theta, energy=energy, time=time))
        rows.append([target, ms(sec), f"{base / sec:.2f}", f"{err:.1e}"])
        print(f"{target:15s} {ms(sec)} ms", file=sys.stderr)
    report = (
        f"Grid {args.grid} (time x energy), {stamp()}. Offset + Shirley + two GLP peaks (the second's "
        "parameters expressions of the first's), sinusoidal time dependence of the first peak's position. "
        "Median of repeated runs, ratios from the same run.\n\n"
        + table(["implementation", "ms/call", "speed-up", "max rel. diff"], rows)
    )
    print(report)
    if args.write:
        write_section(f"bench_models {args.grid}", f"### Model library, {args.grid}\n\n" + report)


if __name__ == "__main__":
    main()
