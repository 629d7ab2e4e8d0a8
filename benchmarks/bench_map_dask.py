"""A 64 x 64 x 500 map fitted in memory and as a dask-backed DataArray on a 2-process LocalCluster.

The map is written to a netCDF file; the in-memory fit loads it, the dask fit
opens it in chunks of ``--chunk`` x ``--chunk`` spectra, which the workers
read. Both give the same Dataset (checked: the script exits non-zero
otherwise); prints the wall time of each (median of ``--repeat`` runs; the
cluster's first run, in which each worker compiles, is shown apart).

    python benchmarks/bench_map_dask.py [--size 64] [--points 500] [--target numba] [--repeat 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per process (workers inherit it)

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from map_fit import build  # the example's model

import gir


def simulate(exe, size: int, points: int) -> xr.DataArray:
    """A noisy map over (x, y, energy): peak position and width smooth over the map."""
    x = y = np.linspace(0.0, 1.0, size)
    gx, gy = np.meshgrid(x, y, indexing="ij")
    rng = np.random.default_rng(0)
    values = {"Offset.y0": 1.0 + 0 * gx, "p1.A": rng.uniform(8, 12, gx.shape),
              "p1.x0": 83.5 + 0.8 * np.sin(2.5 * gx) + 0.6 * gy**2, "p1.F": 1.0 + 0.2 * gy}  # fmt: skip
    rows = np.stack([values[n] for n in exe.param_names], -1).reshape(-1, len(exe.param_names))
    energy = np.linspace(80.0, 88.0, points)
    clean = exe.batch(rows, energy=energy).reshape(size, size, points)
    noisy = clean + rng.normal(0.0, 0.1, clean.shape)
    return xr.DataArray(noisy, dims=("x", "y", "energy"), coords={"x": x, "y": y, "energy": energy})


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--target", default="numba")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=16, help="spectra per chunk along x and y")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    exe = gir.compile(build(), target=args.target)
    path = Path(tempfile.mkdtemp()) / "map.nc"
    simulate(exe, args.size, args.points).to_netcdf(path, engine="scipy")
    data = xr.load_dataarray(path, engine="scipy")
    gir.fit.least_squares(exe, data.isel(x=slice(0, 2), y=slice(0, 2)), progress=False)  # compile here
    memory_times, memory = [], None
    for _ in range(args.repeat):
        t, memory = timed(lambda: gir.fit.least_squares(exe, data, progress=False))
        memory_times.append(t)
    chunked = xr.open_dataarray(path, engine="scipy", chunks={"x": args.chunk, "y": args.chunk})
    lazy = gir.fit.least_squares(exe, chunked)
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        first, _ = timed(lazy.compute)
        dask_times, cluster_fit = [], None
        for _ in range(args.repeat):
            t, cluster_fit = timed(lazy.compute)
            dask_times.append(t)
    same = cluster_fit.identical(memory)
    tm, td = statistics.median(memory_times), statistics.median(dask_times)
    n = args.size * args.size
    print(machine())
    shape = f"{args.size} x {args.size} x {args.points}"
    print(f"map {shape}, target {exe.target}, chunks of {args.chunk} x {args.chunk} spectra")
    print(f"in memory (gir.fit.batch, {n} spectra):  {tm:8.2f} s  ({tm / n * 1e3:.2f} ms per spectrum)")
    print(f"dask, LocalCluster of 2 processes:        {td:8.2f} s  (first run {first:.2f} s)")
    print(f"in memory / dask: {tm / td:.2f}; results identical: {same}")
    if not same:
        diff = float(abs(cluster_fit.modelfit_coefficients - memory.modelfit_coefficients).max())
        print(
            f"FAILED: the cluster's fit differs from the in-memory fit (max |diff| {diff:.3g})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
