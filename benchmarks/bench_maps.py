"""Map fitting: 10,000 independent spectra of one model, fitted in compiled code by ``gir.fit.batch``,
against a per-spectrum lmfit loop and gir's previous one-fit-at-a-time batch path.

Model: a GLP peak on a Line background over 1,000 energy points, 6 free
parameters with ``gm.Param`` bounds. Data: truths varying per spectrum (peak
height 5-20, position 83-87, width 0.8-1.6, Lorentz fraction 0.1-0.6,
background slope and intercept), Gaussian noise of 0.1. Starts 10 % off:
height, width, fraction and intercept times 1.1, the position by a tenth of
the width, the slope by 0.002.

- compiled: ``gir.fit.batch(exe, spectra, theta0=starts, workers=THREADS)`` on
  the ``numba`` target (:mod:`gir.fit.compiled_lm`), all spectra, after one
  warm-up call that compiles or loads the driver from the disk cache (its time
  is printed too);
- previous: the same call with ``compiled=False`` (one Python levmar per
  spectrum in THREADS threads), on ``--subset`` spectra, scaled to all;
- lmfit: ``lmfit.minimize(..., method="leastsq")`` (MINPACK, forward
  differences, bounds) on a plain NumPy model function, one spectrum after the
  other, on ``--subset`` spectra, scaled to all.

Each is repeated ``--repeat`` times; medians are quoted. The compiled and
previous paths must agree (parameters to 1e-6 relative on the subset).

    python benchmarks/bench_maps.py [--n 10000] [--subset 200] [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads: BLAS must not fight the fits

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

import gir
import gir.fit
from gir import models as gm

P = gm.Param
E = np.linspace(80.0, 90.0, 1000)
LN2 = np.log(2.0)
NOISE = 0.1


def map_model() -> gm.Model:
    m = gm.Model(axes=("energy",))
    m.add(gm.Line(slope=P(0.0, bounds=(-1, 1)), intercept=P(1.0, bounds=(-10, 10))))
    m.add(
        gm.GLP(
            "p1",
            A=P(10.0, bounds=(0, 100)),
            x0=P(85.0, bounds=(80, 90)),
            F=P(1.2, bounds=(0.1, 5)),
            m=P(0.3, bounds=(0, 1)),
        )
    )
    return m


def simulate(
    exe, n: int, seed: int = 0, energy: np.ndarray = E, noise: float = NOISE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truths (n, 6) varying per spectrum, noisy spectra (n, energy points) and starts 10 % off (the
    position by a tenth of the width)."""
    rng = np.random.default_rng(seed)
    truths = np.column_stack(
        [
            rng.uniform(-0.02, 0.02, n),
            rng.uniform(0.5, 2.0, n),
            rng.uniform(5.0, 20.0, n),
            rng.uniform(83.0, 87.0, n),
            rng.uniform(0.8, 1.6, n),
            rng.uniform(0.1, 0.6, n),
        ]
    )
    spectra = np.asarray(exe.batch(truths, energy=energy)) + rng.normal(0.0, noise, (n, energy.size))
    starts = truths * 1.1
    starts[:, 0] = truths[:, 0] + 0.002
    starts[:, 3] = truths[:, 3] + 0.1 * truths[:, 4]
    return truths, spectra, starts


def numpy_model(x: np.ndarray, slope, intercept, A, x0, F, m) -> np.ndarray:
    u2 = ((x - x0) / F) ** 2
    return slope * x + intercept + A * np.exp(-4 * LN2 * (1 - m) * u2) / (1 + 4 * m * u2)


def lmfit_loop(exe, spectra: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """One lmfit.minimize (leastsq, bounds) per spectrum; the fitted parameters."""
    import lmfit

    names = [n.replace(".", "_") for n in exe.param_names]
    lo, hi = exe.bounds
    out = np.empty_like(starts)
    for k, (y, s) in enumerate(zip(spectra, starts, strict=True)):
        params = lmfit.Parameters()
        for name, v, a, b in zip(names, s, lo, hi, strict=True):
            params.add(name, value=v, min=a, max=b)

        def residual(p, y=y):
            return numpy_model(E, *(p[n].value for n in names)) - y

        fit = lmfit.minimize(residual, params, method="leastsq")
        out[k] = [fit.params[n].value for n in names]
    return out


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--subset", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # the fits' diagnostics: counted below instead

    exe = gir.compile(map_model(), target="numba")
    truths, spectra, starts = simulate(exe, args.n)
    sub = slice(0, min(args.subset, args.n))
    scale = args.n / (sub.stop - sub.start)
    print(f"# gir map fitting: {args.n} spectra x {E.size} points, 6 free parameters; {machine()}")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (other processes share the cores)")

    def compiled(rows=slice(None), progress=False):
        return gir.fit.batch(exe, spectra[rows], theta0=starts[rows], workers=args.threads, progress=progress,
                             energy=E)  # fmt: skip

    t0 = time.perf_counter()
    compiled(slice(0, 256))
    print(f"warm-up (compile or load the driver, 256 spectra): {time.perf_counter() - t0:.2f} s")
    t_comp, b = timed(compiled, args.repeat)
    t_bar, _ = timed(lambda: compiled(progress=True), 1)

    def previous():
        return gir.fit.batch(exe, spectra[sub], theta0=starts[sub], workers=args.threads, progress=False,
                             compiled=False, energy=E)  # fmt: skip

    t_prev, prev = timed(previous, args.repeat)
    t_lmfit, lm = timed(lambda: lmfit_loop(exe, spectra[sub], starts[sub]), args.repeat)

    agree = np.max(np.abs(b.x[sub] - prev.x) / np.maximum(np.abs(prev.x), 1e-12))
    lm_agree = np.median(np.max(np.abs(lm - b.x[sub]) / np.maximum(b.stderr[sub], 1e-300), axis=1))
    pulls = np.abs(b.x - truths) / b.stderr
    print(f"{b.mode}: {int(b.success.sum())} of {args.n} succeeded, nfev median {int(np.median(b.nfev))}, "
          f"median |x - truth| / stderr {np.nanmedian(pulls):.2f}")  # fmt: skip
    print(f"compiled vs previous path ({sub.stop} fits): max relative difference of parameters {agree:.2e}")
    print(f"lmfit vs compiled: median over fits of max |difference| / stderr {lm_agree:.2e}")
    print()
    print(f"{'path':<44} {'median s':>10} {'s for ' + str(args.n):>12} {'ms/fit':>8} {'speed-up':>9}")
    rows = [
        (f"compiled, numba, {args.threads} threads (all {args.n})", t_comp, t_comp),
        ("compiled, with the tqdm progress bar (1 run)", t_bar, t_bar),
        (f"previous batch path, {args.threads} threads ({sub.stop}, scaled)", t_prev, t_prev * scale),
        (f"lmfit leastsq loop ({sub.stop}, scaled)", t_lmfit, t_lmfit * scale),
    ]
    for name, t, total in rows:
        print(f"{name:<44} {t:>10.3f} {total:>12.2f} {total / args.n * 1e3:>8.3f} {total / t_comp:>8.1f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    print(f"goals: all {args.n} < 3 s: {t_comp:.2f} s; >= 20x lmfit: {t_lmfit * scale / t_comp:.1f}x; "
          f">= 10x previous batch: {t_prev * scale / t_comp:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
