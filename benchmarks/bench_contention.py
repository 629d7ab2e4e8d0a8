"""Median call time of the CPU targets on an idle machine and under contention.

Contention: one busy-loop process per CPU this process may use, each bounded
in time and killed after the measurement. Two models: the dense 2D model of
bench_eval.py (212 x 1131 by default) and a small 1D one (two GLP peaks on 600
points). The numbers behind the ``auto`` rule (docs/targets.md).

    python benchmarks/bench_contention.py [--grid 212x1131] [--seconds 1.0] [--targets numba,jax-cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import LN2, dense, grid
from common import stamp, table

import gir
from gir.runtime.target import usable_cpus


def small(x, A1, x1, A2, x2, F, m):
    """Two GLP peaks on one axis."""
    u1 = ((x - x1) / F) ** 2
    u2 = ((x - x2) / F) ** 2
    return A1 * np.exp(-4 * LN2 * (1 - m) * u1) / (1 + 4 * m * u1) + A2 * np.exp(-4 * LN2 * (1 - m) * u2) / (
        1 + 4 * m * u2
    )


def models(spec: str) -> dict[str, tuple[gir.ir.graph.Graph, np.ndarray, dict[str, np.ndarray]]]:
    t_axis, e_axis = grid(spec)
    return {
        f"dense {spec}": (
            gir.trace(dense, x="E", t="T", axes=("T", "E")),
            np.array([10.0, 84.0, 1.0, 0.3, 0.5, 1.2]),
            {"x": e_axis, "t": t_axis},
        ),
        "small 1D 600": (
            gir.trace(small, x="E", axes=("E",)),
            np.array([10.0, 84.0, 5.0, 87.65, 1.0, 0.3]),
            {"x": np.linspace(80.0, 92.0, 600)},
        ),
    }


def call_times(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(median, minimum) seconds of single calls over about ``seconds``."""
    for _ in range(3):
        fn()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


BUSY = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


def busy(n: int, limit: float) -> list[subprocess.Popen]:
    """``n`` busy-loop processes, each ending by itself after ``limit`` seconds."""
    return [subprocess.Popen([sys.executable, "-c", BUSY.format(limit=limit)]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default="212x1131", help="time x energy points of the dense model")
    ap.add_argument("--targets", default="numba,numba-parallel,jax-cpu")
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per measurement")
    args = ap.parse_args()
    available = {t.name for t in gir.targets() if t.available}
    targets = [t for t in args.targets.split(",") if t in available]
    cpus = usable_cpus()
    rows = []
    for name, (graph, theta, arrays) in models(args.grid).items():
        exes = {t: gir.compile(graph, target=t) for t in targets}
        for exe in exes.values():
            exe(theta, **arrays)  # compile outside the timing
        calls = {t: (lambda e=e, th=theta, a=arrays: e(th, **a)) for t, e in exes.items()}
        idle = {t: call_times(fn, args.seconds) for t, fn in calls.items()}
        loaded = {}
        procs = busy(cpus, limit=args.seconds * len(exes) * 3 + 10)
        try:
            time.sleep(0.3)
            for t, fn in calls.items():
                loaded[t] = call_times(fn, args.seconds)
        finally:
            stop(procs)
        best = min(m for m, _ in loaded.values())
        for t in targets:
            rows.append([
                name, t,
                f"{idle[t][0] * 1e3:.3f}", f"{idle[t][1] * 1e3:.3f}",
                f"{loaded[t][0] * 1e3:.3f}", f"{loaded[t][1] * 1e3:.3f}",
                f"{loaded[t][0] / best:.2f}",
            ])  # fmt: skip
            print(f"{name:16s} {t:15s} idle {idle[t][0] * 1e3:8.3f} ms  busy {loaded[t][0] * 1e3:8.3f} ms",
                  file=sys.stderr)  # fmt: skip
    print(f"{stamp()}; {cpus} usable CPUs, {cpus} busy processes under contention.\n")
    header = ["model", "target", "idle median ms", "idle min ms", "busy median ms", "busy min ms"]
    print(table([*header, "busy / best"], rows))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
