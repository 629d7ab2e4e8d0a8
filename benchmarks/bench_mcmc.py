"""emcee on a 2D map: gir's batched log-probability against a per-walker one in NumPy and against
single model evaluations.

Model: example-02-like (two GLP peaks + Shirley + Offset, a sinFun on the first
peak's position; 212 x 1131; free: p1.A, p1.x0 and the sine's A and f), noisy
data (sigma 0.1, weights given), 32 walkers.

- gir: ``gir.fit.mcmc.mcmc(result, walkers=32, steps=2000)`` on numba: emcee's
  ``vectorize=True``, each half-ensemble of a step scored in one batched
  evaluation (:meth:`gir.fit.problem.Problem.costs`).
- NumPy: emcee with a per-walker log-probability, the model written directly in
  NumPy (benchmarks/bench_fit.py's formulas), timed over ``--baseline-steps``
  steps and scaled to the same number of steps.
- Single evaluations: walkers x steps (64,000) single numba evaluations
  (``exe(theta)``) one after the other, without emcee, timed over ``--probe`` steps' worth.

The machine is shared and noisy, so the four are timed in interleaved rounds
(``--rounds``, each ``--probe`` steps; NumPy ``--probe / 4``), the medians per step
scaled to ``--steps``; the gir chain also runs with Numba's thread pool cut to one
thread (the batch kernel runs its rows in parallel over the pool), and once in full
(``--steps``) for its autocorrelation times.

Goals: gir >= 10x faster than the NumPy per-walker chain, and within 2x of the
single evaluations' time.

    python benchmarks/bench_mcmc.py [--steps 2000] [--probe 100] [--rounds 3] [--target numba] [--write]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import glp, model_example02
from common import stamp, table, write_section

import gir
import gir.fit
from gir.fit.mcmc import mcmc

WALKERS = 32
SIGMA = 0.1
#: The fixed values of the example-02-like model (model_example02), for the NumPy version.
FIXED = {"y0": 1.0, "F": 1.0, "m": 0.3, "A2": 5.0, "x2": 87.65, "F2": 1.2, "pS": 2e-3, "phi": 0.4}


def example02(target: str) -> tuple[gir.Executable, np.ndarray, dict[str, np.ndarray]]:
    """The compiled model, noisy data at its start values, and the axes."""
    arrays = {"energy": np.linspace(80.0, 92.0, 1131), "time": np.linspace(-1.0, 10.0, 212)}
    exe = gir.compile(model_example02(), target=target)
    clean = exe(exe.theta0, **arrays)
    return exe, clean + np.random.default_rng(0).normal(0.0, SIGMA, clean.shape), arrays


def numpy_model(theta: np.ndarray, E: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The example-02-like model at ``theta = (p1.A, p1.x0, sine A, sine f)`` in plain NumPy."""
    A, x0, sA, sf = theta
    f = FIXED
    pos = x0 + np.where(T >= 0, sA * np.sin(2 * np.pi * sf * T + f["phi"]), 0.0)[:, None]
    peaks = glp(E[None, :], A, pos, f["F"], f["m"]) + glp(E[None, :], f["A2"], f["x2"], f["F2"], f["m"])
    return f["y0"] + peaks + f["pS"] * np.flip(np.cumsum(np.flip(peaks, -1), -1), -1)


def start(result: gir.fit.FitResult) -> np.ndarray:
    noise = np.random.default_rng(1).standard_normal((WALKERS, result.x.size))
    return result.x + 0.1 * result.stderr * noise


def numpy_chain_time(result: gir.fit.FitResult, data, arrays, steps: int) -> float:
    """Seconds per step of emcee with a per-walker NumPy log-probability (uniform prior in the bounds)."""
    import emcee

    E, T = arrays["energy"], arrays["time"]
    lo, hi = result.bounds

    def log_prob(theta):
        if np.any(theta < lo) or np.any(theta > hi):
            return -np.inf
        r = (numpy_model(theta, E, T) - data) / SIGMA
        return -0.5 * float(np.sum(r * r))

    sampler = emcee.EnsembleSampler(WALKERS, result.x.size, log_prob)
    t0 = time.perf_counter()
    sampler.run_mcmc(start(result), steps)
    return (time.perf_counter() - t0) / steps


def gir_chain_time(result: gir.fit.FitResult, steps: int, threads: int | None = None) -> float:
    """Seconds per step of :func:`gir.fit.mcmc.mcmc` (with Numba's pool cut to ``threads`` if given)."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(threads or previous)
    try:
        with warnings.catch_warnings():  # a short chain: only its time counts
            warnings.simplefilter("ignore", RuntimeWarning)
            t0 = time.perf_counter()
            mcmc(result, walkers=WALKERS, steps=steps, burn=0, seed=0, progress=False)
            return (time.perf_counter() - t0) / steps
    finally:
        numba.set_num_threads(previous)


def singles_time(exe: gir.Executable, result: gir.fit.FitResult, arrays, steps: int) -> float:
    """Seconds per step's worth (``WALKERS``) of single model evaluations at the walkers' start points."""
    thetas = np.repeat(result.datasets[0].theta[None, :], WALKERS, axis=0)
    free = [exe.param_names.index(n) for n in result.param_names]
    thetas[:, free] = start(result)
    t0 = time.perf_counter()
    for _ in range(steps):
        for theta in thetas:
            exe(theta, **arrays)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--probe", type=int, default=100, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--target", default="numba")
    ap.add_argument("--write", action="store_true", help="write the section of docs/performance.md")
    args = ap.parse_args()

    exe, data, arrays = example02(args.target)
    result = gir.fit.least_squares(exe, data, weights=np.full(data.shape, 1 / SIGMA), **arrays)
    reference = numpy_model(result.x, arrays["energy"], arrays["time"])
    mismatch = float(np.max(np.abs(reference - result.best_fit)))
    print(f"free {list(result.param_names)}; NumPy model matches gir to {mismatch:.1e}", flush=True)
    assert mismatch < 1e-9, "the NumPy model is not the gir model"
    gir_chain_time(result, 5)  # compile the batch path

    runs = {
        "gir": lambda: gir_chain_time(result, args.probe),
        "gir, 1 thread": lambda: gir_chain_time(result, args.probe, threads=1),
        "singles": lambda: singles_time(exe, result, arrays, args.probe),
        "numpy": lambda: numpy_chain_time(result, data, arrays, max(1, args.probe // 4)),
    }
    per_step: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):
        for label, run in runs.items():
            per_step[label].append(run())
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1] * 1e3:.1f} ms/step" for k, v in per_step.items()))
    total = {k: statistics.median(v) * args.steps for k, v in per_step.items()}

    t0 = time.perf_counter()
    chain = mcmc(result, walkers=WALKERS, steps=args.steps, seed=0, progress=False)
    full = time.perf_counter() - t0
    print(chain.report(), flush=True)
    n_evals = WALKERS * args.steps
    rows = [
        [f"gir mcmc, batched log-probability ({args.target})", f"{total['gir']:.1f}", "1.0x"],
        [
            f"gir mcmc, batched, Numba pool cut to 1 thread ({args.target})",
            f"{total['gir, 1 thread']:.1f}",
            f"{total['gir, 1 thread'] / total['gir']:.2f}x",
        ],
        [
            "emcee, per-walker log-probability in NumPy",
            f"{total['numpy']:.1f}",
            f"{total['numpy'] / total['gir']:.1f}x",
        ],
        [
            f"{n_evals:,} single gir evaluations ({args.target}), no emcee",
            f"{total['singles']:.1f}",
            f"{total['singles'] / total['gir']:.2f}x",
        ],
    ]
    body = "\n\n".join(
        [
            "## MCMC (benchmarks/bench_mcmc.py)",
            f"{stamp()}. Example-02-like map, 212 x 1131, 4 free parameters; emcee, {WALKERS} walkers x "
            f"{args.steps} steps ({n_evals:,} model evaluations), from the medians of {args.rounds} "
            f"interleaved rounds of {args.probe} steps (NumPy: {max(1, args.probe // 4)}) scaled to "
            f"{args.steps} steps; time relative to gir's (above 1: gir is faster). The full "
            f"{args.steps}-step gir chain took {full:.1f} s: acceptance {chain.acceptance_fraction:.2f}, "
            f"autocorrelation times {np.array2string(chain.autocorr, precision=1)} steps. "
            f"Load average at the end: {os.getloadavg()[0]:.1f}.",
            table(["log-probability", "seconds", "relative"], rows),
        ]
    )
    print(body)
    if args.write:
        write_section("mcmc", body)


if __name__ == "__main__":
    main()
