"""Fit wall time and function evaluations: finite differences as users run them today against
gir's analytic Jacobian on each target, and variable projection (VARPRO).

Models:

- 2D: Offset + Shirley + two GLP peaks, the second peak's parameters expressions
  of the first (A2 = A1/2, x2 = x1 + 3.65, same F and m), the first peak's
  position oscillating in time (sinFun); grid 212 x 1131, 9 free parameters.
- 1D: GLP peak + Offset at 1,000 and 100,000 points, 5 free parameters.

Baseline: ``lmfit.minimize(..., method="leastsq")`` without Dfun (MINPACK's
forward differences) on a straightforward NumPy implementation of the same
model written here. gir: ``gir.fit.least_squares`` with the analytic Jacobian
per target, with its default solver (``levmar``: Levenberg-Marquardt on the
normal equations) and with scipy's ``trf``, and with ``varpro=True``. Every fit starts from the same
perturbed values on the same noisy data; the cost column shows they reach the
same minimum. Also: the cost of one value+Jacobian evaluation as a multiple of
one value evaluation, per target.

BLAS runs on one thread (OPENBLAS_NUM_THREADS=1, set before NumPy loads) so
that the solvers' dense algebra does not fight the numba-parallel threads and
other processes for the cores.

    python benchmarks/bench_fit.py [--targets numpy,numba,numba-parallel,jax] [--repeat 5] [--write]

``--global``: robust starts instead. An example-02-like model (two GLP peaks +
Shirley + Offset, sinFun on the first peak's position; 212 x 1131; free: p1.A,
p1.x0 and the sine's A and f, the rest fixed) on noisy data, fitted from 20
starts with every free parameter moved by 10-20 % of its value (of its bound
width where that leaves the bounds; random sign): how many reach the global
optimum (cost within 1e-6 relative of the best known, parameters within 1e-4
relative of it) for plain ``levmar``, for ``least_squares(starts=64)`` and
for a Nelder-Mead + leastsq two-stage fit through gir's lmfit bridge, and
their median wall times (the whole call).

    python benchmarks/bench_fit.py --global [--target numba] [--starts 64] [--write]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import stamp, table, timeit, write_section

import gir
import gir.fit
from gir import models as gm

LN2 = np.log(2.0)
P = gm.Param


# -- the models, in gir ----------------------------------------------------------------


def model_2d() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=P(1.0, bounds=(-10, 10))))
    m.add(
        gm.GLP(
            "p1",
            A=P(10.0, bounds=(0, 100)),
            x0=P(84.0, bounds=(80, 88)),
            F=P(1.0, bounds=(0.2, 3)),
            m=P(0.3, bounds=(0, 1)),
        )
    )
    m.add(gm.GLP("p2", A="0.5 * p1.A", x0="p1.x0 + 3.65", F="p1.F", m="p1.m"))
    m.add(gm.Shirley(pShirley=P(2e-3, bounds=(0, 0.1))))
    m.dynamics(
        "p1.x0",
        [gm.sinFun(A=P(0.3, bounds=(-2, 2)), f=P(0.5, bounds=(0.01, 5)), phi=P(0.4, bounds=(-4, 4)), t0=0.0)],
    )
    return m


def model_1d() -> gm.Model:
    m = gm.Model()
    m.add(gm.Offset(y0=P(1.0, bounds=(-10, 10))))
    m.add(
        gm.GLP(
            "p1",
            A=P(10.0, bounds=(0, 100)),
            x0=P(84.0, bounds=(80, 88)),
            F=P(1.0, bounds=(0.2, 3)),
            m=P(0.3, bounds=(0, 1)),
        )
    )
    return m


# -- the same models, written directly in NumPy (the baseline) --------------------------


def glp(x, A, x0, F, m):
    u2 = ((x - x0) / F) ** 2
    return A * np.exp(-4 * LN2 * (1 - m) * u2) / (1 + 4 * m * u2)


def numpy_2d(E, T, y0, A, x0, F, m, pS, sA, sf, sphi):
    pos = x0 + np.where(T >= 0, sA * np.sin(2 * np.pi * sf * T + sphi), 0.0)[:, None]
    peaks = glp(E[None, :], A, pos, F, m) + glp(E[None, :], 0.5 * A, pos + 3.65, F, m)
    return y0 + peaks + pS * np.flip(np.cumsum(np.flip(peaks, -1), -1), -1)


def numpy_1d(E, y0, A, x0, F, m):
    return y0 + glp(E, A, x0, F, m)


# -- cases ------------------------------------------------------------------------------


class Case:
    def __init__(self, name, model, numpy_fn, arrays, truth, start, noise):
        self.name, self.model, self.numpy_fn, self.arrays = name, model, numpy_fn, arrays
        ref = gir.compile(model, target="numpy")
        self.names = ref.param_names
        self.truth = np.array([truth[n] for n in self.names])
        self.start = np.array([start[n] for n in self.names])
        self.bounds = ref.bounds
        clean = ref(self.truth, **arrays)
        self.data = clean + np.random.default_rng(0).normal(0.0, noise, clean.shape)
        baseline = self.numpy_fn(*self.arrays.values(), *self.truth)
        self.mismatch = float(np.max(np.abs(baseline - clean)) / np.max(np.abs(clean)))


def cases() -> list[Case]:
    E2 = np.linspace(80.0, 92.0, 1131)
    T2 = np.linspace(-1.0, 10.0, 212)
    truth2 = {
        "Offset.y0": 1.0,
        "p1.A": 10.0,
        "p1.x0": 84.0,
        "p1.F": 1.0,
        "p1.m": 0.3,
        "Shirley.pShirley": 2e-3,
        "p1.x0.sinFun.A": 0.3,
        "p1.x0.sinFun.f": 0.5,
        "p1.x0.sinFun.phi": 0.4,
    }
    start2 = {
        "Offset.y0": 1.2,
        "p1.A": 8.5,
        "p1.x0": 84.25,
        "p1.F": 1.15,
        "p1.m": 0.4,
        "Shirley.pShirley": 1.5e-3,
        "p1.x0.sinFun.A": 0.22,
        "p1.x0.sinFun.f": 0.48,
        "p1.x0.sinFun.phi": 0.3,
    }
    truth1 = {"Offset.y0": 1.0, "p1.A": 10.0, "p1.x0": 84.0, "p1.F": 1.0, "p1.m": 0.3}
    start1 = {"Offset.y0": 1.3, "p1.A": 8.0, "p1.x0": 84.3, "p1.F": 1.2, "p1.m": 0.45}
    out = [Case("2D 212x1131", model_2d(), numpy_2d, {"energy": E2, "time": T2}, truth2, start2, 0.1)]
    for n in (1_000, 100_000):
        E1 = np.linspace(78.0, 90.0, n)
        out.append(Case(f"1D {n:,}", model_1d(), numpy_1d, {"energy": E1}, truth1, start1, 0.1))
    return out


# -- runs -------------------------------------------------------------------------------


def lmfit_baseline(case: Case):
    import lmfit

    params = lmfit.Parameters()
    keys = [n.replace(".", "_") for n in case.names]
    for k, v, lo, hi in zip(keys, case.start, *case.bounds, strict=True):
        params.add(k, value=v, min=lo, max=hi)
    axes = list(case.arrays.values())
    flat = case.data.ravel()
    count = [0]

    def residual(p):
        count[0] += 1
        return flat - case.numpy_fn(*axes, *(p[k].value for k in keys)).ravel()

    t0 = time.perf_counter()
    out = lmfit.minimize(residual, params, method="leastsq")
    wall = time.perf_counter() - t0
    return wall, count[0], 0.5 * float(out.chisqr)


def gir_fit(exe, case: Case, repeat: int, **kw):
    walls, result = [], None
    for _ in range(repeat):
        result = gir.fit.least_squares(exe, case.data, theta0=case.start, **kw, **case.arrays)
        walls.append(result.wall_time)
    return statistics.median(walls), result


def lmfit_with_dfun(exe, case: Case):
    """lmfit's leastsq with gir's residual and analytic Dfun (the bridge)."""
    import lmfit

    residual, dfun = gir.fit.lmfit_functions(exe, case.data, **case.arrays)
    params = gir.fit.to_lmfit(exe, theta0=case.start)
    t0 = time.perf_counter()
    out = lmfit.minimize(residual, params, method="leastsq", Dfun=dfun)
    return time.perf_counter() - t0, out.nfev, 0.5 * float(out.chisqr)


def value_jacobian_ratio(exe, case: Case) -> tuple[float, float, float, float]:
    """Value ms, value+Jacobian ms as the fits evaluate them (flat, one forward-mode call), their
    ratio, and the ratio for the public ``exe.value_and_jacobian`` against ``exe()``."""
    ds = gir.fit.Dataset(exe, case.data, arrays=case.arrays).prepare()
    x = case.truth.copy()
    t_value = timeit(lambda: ds.model_flat(x), repeat=5)
    t_jac = timeit(lambda: ds.value_and_columns(x, exe.param_names), repeat=5)
    t_call = timeit(lambda: exe(x, **case.arrays), repeat=5)
    t_public = timeit(lambda: exe.value_and_jacobian(x, **case.arrays), repeat=5)
    return t_value, t_jac, t_jac / t_value, t_public / t_call


# -- robust starts (--global) ------------------------------------------------------------


def model_example02() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.Offset(y0=1.0))
    m.add(gm.GLP("p1", A=P(10.0, bounds=(0, 100)), x0=P(84.0, bounds=(80, 88)), F=1.0, m=0.3))
    m.add(gm.GLP("p2", A=5.0, x0=87.65, F=1.2, m=0.3))
    m.add(gm.Shirley(pShirley=2e-3))
    m.dynamics("p1.x0", [gm.sinFun(A=P(0.3, bounds=(-2, 2)), f=P(0.5, bounds=(0.01, 5)), phi=0.4, t0=0.0)])
    return m


def perturbed_starts(truth: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """``n`` starts: each parameter moved by 10-20 % of its value (of its bound width where that leaves
    the bounds), random sign."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        move = rng.uniform(0.1, 0.2, truth.size) * rng.choice([-1.0, 1.0], truth.size)
        start = truth * (1 + move)
        outside = (start < lo) | (start > hi)
        out.append(np.where(outside, truth + move * (hi - lo), start))
    return np.array(out)


def nelder_leastsq(exe, data, start, arrays):
    """Nelder-Mead, then leastsq from its result, through gir's lmfit bridge; (x, cost)."""
    import lmfit

    residual, dfun = gir.fit.lmfit_functions(exe, data, **arrays)
    params = gir.fit.to_lmfit(exe, theta0=start)
    first = lmfit.minimize(residual, params, method="nelder")
    out = lmfit.minimize(residual, first.params, method="leastsq", Dfun=dfun)
    names = gir.fit.lmfit_names(exe.binding.parameters())
    return np.array([out.params[names[n]].value for n in exe.param_names]), 0.5 * float(out.chisqr)


def run_global(target: str, starts: int, n: int, write: bool) -> None:
    E = np.linspace(80.0, 92.0, 1131)
    T = np.linspace(-1.0, 10.0, 212)
    arrays = {"energy": E, "time": T}
    exe = gir.compile(model_example02(), target=target)
    truth = exe.theta0.copy()
    clean = exe(truth, **arrays)
    data = clean + np.random.default_rng(0).normal(0.0, 0.1, clean.shape)
    best = gir.fit.least_squares(exe, data, theta0=truth, **arrays)
    lo, hi = exe.bounds
    print(f"== {target}: free {list(exe.param_names)}, best cost {best.cost:.8g}", flush=True)

    def reached(x, cost) -> bool:
        return cost <= best.cost * (1 + 1e-6) and np.allclose(x, best.x, rtol=1e-4, atol=0.0)

    runs = {
        "gir levmar (plain)": lambda s: gir.fit.least_squares(exe, data, theta0=s, **arrays),
        f"gir least_squares(starts={starts})": lambda s: gir.fit.least_squares(
            exe, data, theta0=s, starts=starts, **arrays
        ),
        "lmfit nelder + leastsq (gir bridge)": lambda s: nelder_leastsq(exe, data, s, arrays),
    }
    for fit in runs.values():  # compile and warm up every path
        fit(truth)
    rows, medians, stage = [], {}, []
    for label, fit in runs.items():
        ok, walls = 0, []
        for start in perturbed_starts(truth, lo, hi, n):
            t0 = time.perf_counter()
            out = fit(start)
            walls.append(time.perf_counter() - t0)
            x, cost = (out.x, out.cost) if isinstance(out, gir.fit.FitResult) else out
            ok += reached(x, cost)
            if isinstance(out, gir.fit.FitResult) and out.global_stage:
                stage.append(out.global_stage["time"])
        medians[label] = statistics.median(walls)
        rows.append([label, f"{ok} of {n}", f"{medians[label] * 1e3:.0f}", f"{min(walls) * 1e3:.0f}"])
        print(rows[-1], flush=True)
    labels = list(runs)
    ratio = medians[labels[2]] / medians[labels[1]]
    body = "\n\n".join(
        [
            "## Robust starts: the global stage (benchmarks/bench_fit.py --global)",
            f"{stamp()}; BLAS on one thread; target {target}. Example-02-like model: Offset + Shirley + two "
            "GLP peaks, sinFun on the first peak's position; 212 x 1131; free p1.A, p1.x0, sinFun A and f "
            f"(the rest fixed); noise 0.1. {n} starts, every free parameter moved by 10-20 % of its value "
            "(of its bound width where that leaves the bounds), random sign. Reached: cost within 1e-6 "
            "relative of the best known and parameters within 1e-4 relative. Wall time of the whole call "
            "(compilation excluded).",
            table(["method", "reached the global optimum", "median wall ms", "min wall ms"], rows),
            f"The global stage (drawing and scoring {starts} candidates in one batched evaluation) took "
            f"{statistics.median(stage) * 1e3:.0f} ms (median); the two-stage fit took {ratio:.1f}x the "
            f"median wall time of the global stage. Load average at the end: {os.getloadavg()[0]:.1f} "
            "(the batched evaluation runs on Numba's threads, which suffer most on busy cores).",
        ]
    )
    print(body)
    if write:
        write_section("fit-global", body)
        print("written to docs/performance.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="numpy,numba,numba-parallel,jax")
    ap.add_argument("--repeat", type=int, default=5, help="fits per configuration (median wall time)")
    ap.add_argument("--write", action="store_true", help="write the section to docs/performance.md")
    ap.add_argument("--global", dest="global_", action="store_true", help="robust starts (see above)")
    ap.add_argument("--target", default="numba", help="--global: the target")
    ap.add_argument("--starts", type=int, default=64, help="--global: candidate starts")
    ap.add_argument("--n", type=int, default=20, help="--global: perturbed starts")
    args = ap.parse_args()
    if args.global_:
        run_global(args.target, args.starts, args.n, args.write)
        return
    available = {t.name for t in gir.targets() if t.available}
    targets = [t for t in args.targets.split(",") if t in available]
    rows, cost_rows = [], []
    for case in cases():
        print(f"== {case.name} (baseline model matches gir to {case.mismatch:.1e})", flush=True)
        runs = [lmfit_baseline(case) for _ in range(3)]
        wall, nfev, cost = runs[0]
        wall = statistics.median(r[0] for r in runs)
        base = wall
        rows.append(
            [
                case.name,
                "lmfit leastsq, finite differences (NumPy)",
                f"{wall * 1e3:.0f}",
                "1.0x",
                f"{nfev}",
                "-",
                f"{cost:.6g}",
            ]
        )
        print(rows[-1], flush=True)
        for target in targets:
            exe = gir.compile(case.model, target=target)
            gir.fit.least_squares(exe, case.data, theta0=case.start, **case.arrays)  # compile, warm up
            gir.fit.least_squares(exe, case.data, theta0=case.start, varpro=True, **case.arrays)
            variants = [
                ("analytic Jacobian, levmar", {}),
                ("analytic Jacobian, scipy trf", {"method": "trf"}),
                ("VARPRO, levmar", {"varpro": True}),
            ]
            for label, kw in variants:
                wall, r = gir_fit(exe, case, args.repeat, **kw)
                rows.append(
                    [
                        case.name,
                        f"gir {label}, {target}",
                        f"{wall * 1e3:.0f}",
                        f"{base / wall:.1f}x",
                        f"{r.nfev}",
                        f"{r.njev}",
                        f"{r.cost:.6g}",
                    ]
                )
                print(rows[-1], flush=True)
            lmfit_with_dfun(exe, case)  # warm up
            runs = [lmfit_with_dfun(exe, case) for _ in range(args.repeat)]
            _, nfev, cost = runs[0]
            wall = statistics.median(r[0] for r in runs)
            rows.append(
                [
                    case.name,
                    f"lmfit leastsq + gir Dfun, {target}",
                    f"{wall * 1e3:.0f}",
                    f"{base / wall:.1f}x",
                    f"{nfev}",
                    "-",
                    f"{cost:.6g}",
                ]
            )
            print(rows[-1], flush=True)
            tv, tj, ratio, public = value_jacobian_ratio(exe, case)
            cost_rows.append(
                [
                    case.name,
                    target,
                    str(len(exe.param_names)),
                    f"{tv * 1e3:.3f}",
                    f"{tj * 1e3:.3f}",
                    f"{ratio:.1f}",
                    f"{public:.1f}",
                ]
            )
            print(cost_rows[-1], flush=True)
    linear = gir.fit.least_squares(
        gir.compile(model_2d(), target="numpy"),
        cases()[0].data,
        varpro=True,
        theta0=cases()[0].start,
        **cases()[0].arrays,
    ).varpro["linear"]
    body = "\n\n".join(
        [
            "## Fits (benchmarks/bench_fit.py)",
            f"{stamp()}; BLAS on one thread. Wall time of the optimization (compilation excluded; "
            f"median of {args.repeat} fits, the baseline of 3), function "
            "evaluations (nfev; for VARPRO the outer optimizer's) and Jacobian evaluations (njev), and "
            "the final cost 1/2 sum r^2, which shows every method reaches the same minimum. The baseline "
            "is lmfit's leastsq without Dfun on the same model written in NumPy (each MINPACK iteration "
            "costs P + 1 model evaluations). 2D model: Offset + Shirley + two GLP peaks (second peak's "
            "parameters expressions of the first), sinFun on the first position, 9 free parameters; "
            f"VARPRO projects out {', '.join(linear)}. 1D: GLP + Offset, 5 free parameters.",
            table(["data", "method", "wall ms", "speedup", "nfev", "njev", "cost"], rows),
            "One evaluation of the model and its full Jacobian (forward mode, every free parameter), as "
            "the fits call it (flat, into a preallocated column-major array), against one evaluation of the "
            "model alone; finite differences cost P + 1 (forward) or 2P + 1 (central) evaluations for the "
            "same. The last column is the same ratio through the public API (grid-shaped copies).",
            table(
                [
                    "data",
                    "target",
                    "P",
                    "value ms",
                    "value+Jacobian ms",
                    "ratio",
                    "ratio, exe.value_and_jacobian / exe()",
                ],
                cost_rows,
            ),
        ]
    )
    print(body)
    if args.write:
        write_section("fit", body)
        print("written to docs/performance.md")


if __name__ == "__main__":
    main()
