"""Peak memory of one large 2D fit against the size of its data.

Model: examples/spectro_2d.py (Offset + Shirley + two GLP peaks, the first
peak's position oscillating in time; 9 free parameters) on a 2000 (time) x
4000 (energy) grid by default, weighted with the noise level, fitted with
``gir.fit.least_squares`` (``levmar``) from the example's rough start.

Each configuration runs in a fresh subprocess, after a small fit of the same
model has compiled everything. Memory is reported two ways:

- RSS: the growth of the process's peak resident size (``VmHWM``, reset
  through ``/proc/self/clear_refs`` just before the fit) over its resident
  size then: what a user sees, glibc's retained free memory included.
- traced: the peak of NumPy's allocations under ``tracemalloc`` above those
  alive before the fit.

Both are given for the optimization (building the problem and the
Levenberg-Marquardt iterations) and for the whole call, which also builds
the result (its residual, best fit and a copy of the data on the grid, and
the uncertainties). ``--paths`` picks the Jacobian handling: ``whole`` forces
the stacked Jacobian (the path of small fits), ``blocks`` the row blocks of
large ones (:data:`gir.fit.problem.BLOCK_BYTES`), ``auto`` the default choice.

    python benchmarks/bench_memory.py [--time 2000] [--energy 4000] [--target numba] [--paths whole,blocks]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import gc
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import stamp, table  # noqa: E402

MB = 2**20


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    """Set VmHWM to the current resident size (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def _problem(exe, n_time: int, n_energy: int, seed: int = 1):
    from spectro_2d import start_values

    time_axis = np.linspace(-1.0, 10.0, n_time)
    energy = np.linspace(78.0, 94.0, n_energy)
    truth = exe.theta0.copy()
    clean = exe(truth, energy=energy, time=time_axis)
    sigma = 0.05 * np.sqrt(clean)
    data = clean + np.random.default_rng(seed).normal(0.0, sigma)
    weights = 1.0 / sigma
    del clean, sigma
    return data, weights, {"energy": energy, "time": time_axis}, start_values(exe, truth)


def child(n_time: int, n_energy: int, target: str, path: str) -> dict:
    """One fit in this process; its memory figures."""
    from spectro_2d import build

    import gir
    import gir.fit
    import gir.fit.problem
    import gir.fit.solver

    if path == "whole":
        gir.fit.problem.BLOCK_BYTES = float("inf")
    elif path == "blocks":
        gir.fit.problem.BLOCK_BYTES = 0
    exe = gir.compile(build(), target=target)
    data, weights, axes, start = _problem(exe, 40, 200)  # compiles every executable the fit needs
    gir.fit.least_squares(exe, data, theta0=start, weights=weights, **axes)
    data, weights, axes, start = _problem(exe, n_time, n_energy)
    marks: dict[str, int] = {}
    make_result = gir.fit.solver.make_result

    def mark_then_make_result(*args, **kwargs):
        marks["rss"] = _status("VmHWM")
        marks["traced"] = tracemalloc.get_traced_memory()[1]
        return make_result(*args, **kwargs)

    gir.fit.solver.make_result = mark_then_make_result
    gc.collect()
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    rss0 = _status("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    result = gir.fit.least_squares(exe, data, theta0=start, weights=weights, **axes)
    wall = time.perf_counter() - t0
    rss_peak = _status("VmHWM")
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "data": data.nbytes,
        "rss_opt": marks["rss"] - rss0,
        "rss_all": rss_peak - rss0,
        "traced_opt": marks["traced"] - traced0,
        "traced_all": traced_peak - traced0,
        "wall": wall,
        "nfev": int(result.nfev),
        "success": bool(result.success),
        "x": result.x.tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=int, default=2000)
    ap.add_argument("--energy", type=int, default=4000)
    ap.add_argument("--target", default="numba")
    ap.add_argument("--paths", default="whole,blocks")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.time, args.energy, args.target, args.paths)))
        return
    print(f"{args.time} x {args.energy} grid, 9 free parameters, target {args.target}; {stamp()}")
    results, rows = {}, []
    for path in args.paths.split(","):
        cmd = [sys.executable, __file__, "--child", "--time", str(args.time), "--energy", str(args.energy),
               "--target", args.target, "--paths", path]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = results[path] = json.loads(out)
        size = r["data"]
        mb = [
            f"{r[k] / MB:.1f} ({r[k] / size:.2f}x)"
            for k in ("traced_opt", "traced_all", "rss_opt", "rss_all")
        ]
        rows.append([path, f"{size / MB:.1f}", *mb, f"{r['wall']:.2f}", str(r["nfev"])])
    header = ["path", "data MB", "traced, optimization", "traced, whole call", "RSS, optimization",
              "RSS, whole call", "wall s", "nfev"]  # fmt: skip
    print(table(header, rows))
    if len(results) > 1:
        xs = np.array([r["x"] for r in results.values()])
        spread = np.max(np.abs(xs - xs[0]) / np.maximum(np.abs(xs[0]), 1e-300))
        print(f"largest relative difference of the fitted parameters between the paths: {spread:.2e}")


if __name__ == "__main__":
    main()
