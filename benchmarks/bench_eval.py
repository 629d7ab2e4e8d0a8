"""Per-call evaluation time of every target on a time x energy grid.

Two models, each written once as plain NumPy: the hand-written baseline runs
the function on broadcast arrays, gir traces the same function. The floor is
one np.exp over the grid. Also: compile times in fresh processes (cold: empty
disk cache; warm: a second process), and a batch of 64 parameter vectors
against 64 single calls.

    python benchmarks/bench_eval.py [--grid 212x1131] [--targets numpy,numba] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ms, stamp, table, timeit, write_section

import gir

LN2 = np.log(2.0)


def separable(x, t, A1, x1, A2, x2, F, m, tau, rise, pS):
    """Two GLP peaks whose amplitudes move in time, plus a Shirley background."""
    decay = np.where(t >= 0, np.exp(-np.maximum(t, 0.0) / tau), 0.0)
    u1 = ((x - x1) / F) ** 2
    u2 = ((x - x2) / F) ** 2
    g1 = np.exp(-4 * LN2 * (1 - m) * u1) / (1 + 4 * m * u1)
    g2 = np.exp(-4 * LN2 * (1 - m) * u2) / (1 + 4 * m * u2)
    peaks = A1 * (1 + rise * decay) * g1 + A2 * (1 - rise * decay) * g2
    return peaks + pS * np.flip(np.cumsum(np.flip(peaks, -1), -1), -1)


def dense(x, t, A, x0, F, m, a, tau):
    """A GLP peak whose position moves in time: every grid point needs its own exp."""
    pos = x0 + a * np.where(t >= 0, np.exp(-np.maximum(t, 0.0) / tau), 0.0)
    u = ((x - pos) / F) ** 2
    return A * np.exp(-4 * LN2 * (1 - m) * u) / (1 + 4 * m * u)


MODELS = {
    "separable": (separable, [10.0, 84.0, 5.0, 87.65, 1.0, 0.3, 1.2, 0.4, 1e-3]),
    "dense": (dense, [10.0, 84.0, 1.0, 0.3, 0.5, 1.2]),
}


def grid(spec: str) -> tuple[np.ndarray, np.ndarray]:
    nt, ne = (int(n) for n in spec.split("x"))
    return np.linspace(-1.0, 10.0, nt), np.linspace(80.0, 92.0, ne)


def compile_model(name: str, target: str):
    fn, _ = MODELS[name]
    return gir.compile(gir.trace(fn, x="E", t="T", axes=("T", "E")), target=target)


def probe(name: str, target: str, spec: str) -> None:
    """Run in a fresh process: time compile + first call, print JSON."""
    t_axis, e_axis = grid(spec)
    t0 = time.perf_counter()
    exe = compile_model(name, target)
    exe(np.array(MODELS[name][1]), x=e_axis, t=t_axis)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def compile_times(name: str, target: str, spec: str) -> tuple[float, float]:
    """(cold, warm): compile + first call in a new process with an empty, then a filled disk cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GIR_CACHE_DIR": cache}
        cmd = [sys.executable, __file__, "--probe", name, "--targets", target, "--grid", spec]
        out = [
            json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)[
                "seconds"
            ]
            for _ in range(2)
        ]
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default="212x1131", help="time x energy points")
    ap.add_argument("--targets", default="numpy,numba,numba-parallel,jax-cpu")
    ap.add_argument("--write", action="store_true", help="write the tables to docs/performance.md")
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(args.probe, args.targets, args.grid)
    available = {t.name for t in gir.targets() if t.available}
    targets = [t for t in args.targets.split(",") if t in available]
    t_axis, e_axis = grid(args.grid)
    exponent = -np.abs(e_axis[None, :] - 86.0) * (1 + t_axis[:, None] ** 2)
    floor = timeit(lambda: np.exp(exponent))
    rows, compile_rows, batch_rows = [], [], []
    for name, (fn, theta) in MODELS.items():
        theta = np.array(theta)
        want = fn(e_axis[None, :], t_axis[:, None], *theta)
        base = timeit(lambda fn=fn, theta=theta: fn(e_axis[None, :], t_axis[:, None], *theta))
        rows.append([name, "hand-written NumPy", ms(base), "1.00", f"{base / floor:.2f}", "0"])
        for target in targets:
            exe = compile_model(name, target)
            got = exe(theta, x=e_axis, t=t_axis)
            err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
            sec = timeit(lambda exe=exe, theta=theta: exe(theta, x=e_axis, t=t_axis))
            rows.append([name, target, ms(sec), f"{base / sec:.2f}", f"{sec / floor:.2f}", f"{err:.1e}"])
            cold, warm = compile_times(name, target, args.grid)
            compile_rows.append([name, target, f"{cold:.2f}", f"{warm:.2f}"])
            thetas = theta * (1 + 0.01 * np.random.default_rng(0).standard_normal((64, theta.size)))
            batch = timeit(lambda exe=exe, th=thetas: exe.batch(th, x=e_axis, t=t_axis), repeat=3)
            single = timeit(lambda exe=exe, th=thetas: [exe(row, x=e_axis, t=t_axis) for row in th], repeat=3)
            batch_rows.append([name, target, ms(batch), ms(single), f"{single / batch:.2f}"])
            print(f"{name:9s} {target:15s} {ms(sec)} ms", file=sys.stderr)
    report = "\n\n".join([
        f"Grid {args.grid} (time x energy), {stamp()}. Median of repeated runs; floor = one np.exp over the "
        f"grid ({ms(floor)} ms). Ratios are measured in the same run.",
        table(["model", "target", "ms/call", "speed-up vs NumPy", "x floor", "max rel. diff"], rows),
        "Compile + first call in a new process, seconds (cold: empty disk cache; warm: second process).",
        table(["model", "target", "cold s", "warm s"], compile_rows),
        "Batch of 64 parameter vectors in one call vs 64 single calls (ms).",
        table(["model", "target", "batch 64", "64 singles", "speed-up"], batch_rows),
    ])  # fmt: skip
    print(report)
    if args.write:
        write_section(f"bench_eval {args.grid}", f"### Evaluation, {args.grid}\n\n" + report)


if __name__ == "__main__":
    main()
