"""A map of spectra: simulate, fit from an xarray.DataArray, check the recovered parameters, plot.

A 32 x 32 map of spectra (one peak on a constant background, 300 energy
points) whose peak position varies smoothly over x and y and whose amplitude
varies from pixel to pixel, with Gaussian noise of known sigma. Every
spectrum is fitted with ``gir.fit.least_squares(exe, data)`` (weights 1/sigma)
from one rough start. The script exits non-zero unless every spectrum's fit
succeeded with each parameter within 5 standard errors of the truth and the
median reduced chi-square within 10 % of 1, and writes the fitted position
map to a PNG (default map_fit.png).

    python examples/map_fit.py [output.png] [--target numba] [--size 32]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import xarray as xr

import gir
from gir import models as gm

SIGMA = 0.1  # the noise level


def build() -> gm.Model:
    m = gm.Model(axes=("energy",))
    m.add(gm.Offset(y0=gm.Param(0.8, bounds=(-5, 5))))
    m.add(gm.GLP("p1", A=gm.Param(8.0, bounds=(0, 100)), x0=gm.Param(84.0, bounds=(81, 87)),
                 F=gm.Param(1.2, bounds=(0.2, 5)), m=0.3))  # fmt: skip
    return m


def simulate(
    nx: int = 32, ny: int = 32, target: str = "auto", seed: int = 1
) -> tuple[xr.DataArray, xr.DataArray]:
    """A noisy map over (x, y, energy) and its true parameters over (x, y, param)."""
    exe = gir.compile(build(), target=target)
    x, y = np.linspace(0.0, 1.0, nx), np.linspace(0.0, 1.0, ny)
    gx, gy = np.meshgrid(x, y, indexing="ij")
    rng = np.random.default_rng(seed)
    values = {
        "Offset.y0": np.full(gx.shape, 1.0),
        "p1.A": rng.uniform(8.0, 12.0, gx.shape),
        "p1.x0": 83.5 + 0.8 * np.sin(2.5 * gx) + 0.6 * gy**2,
        "p1.F": 1.0 + 0.2 * gy,
    }
    truth = xr.DataArray(np.stack([values[n] for n in exe.param_names], -1), dims=("x", "y", "param"),
                         coords={"x": x, "y": y, "param": list(exe.param_names)})  # fmt: skip
    energy = np.linspace(80.0, 88.0, 300)
    clean = exe.batch(truth.values.reshape(-1, len(exe.param_names)), energy=energy).reshape(nx, ny, -1)
    data = xr.DataArray(
        clean + rng.normal(0.0, SIGMA, clean.shape),
        dims=("x", "y", "energy"),
        coords={"x": x, "y": y, "energy": energy},
        attrs={"units": "counts", "sigma": SIGMA},
        name="intensity",
    )
    return data, truth


def fit(data: xr.DataArray, target: str = "auto") -> xr.Dataset:
    """Every spectrum of the map, weighted by 1/sigma, from the model's start values."""
    exe = gir.compile(build(), target=target)
    weights = xr.full_like(data.isel(x=0, y=0, drop=True), 1.0 / SIGMA)  # the same for every spectrum
    return gir.fit.least_squares(exe, data, weights=weights, progress=False)


def check(ds: xr.Dataset, truth: xr.DataArray, within: float = 5.0) -> list[str]:
    """What is wrong with the fit (empty when nothing): failed fits, parameters more than ``within``
    standard errors off the truth, a median reduced chi-square more than 10 % off 1."""
    problems = []
    failed = int((ds.modelfit_success == 0).sum())
    if failed:
        problems.append(f"{failed} fits did not succeed")
    off = abs(ds.modelfit_coefficients - truth) / ds.modelfit_stderr
    for name in ds.param.values:
        bad = off.sel(param=name) > within
        if bad.any():
            worst = off.sel(param=name).argmax(dim=("x", "y"))
            where = {d: float(ds[d][int(i)]) for d, i in worst.items()}
            problems.append(
                f"{name}: {int(bad.sum())} of {bad.size} spectra off the truth by more than {within} "
                f"standard errors (worst at {where})"
            )
    redchi = float(ds.modelfit_stats.sel(fit_stat="redchi").median())
    if abs(redchi - 1.0) > 0.1:
        problems.append(f"median reduced chi-square {redchi:.3f} is more than 10 % off 1")
    return problems


def plot(ds: xr.Dataset, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ds.modelfit_coefficients.sel(param="p1.x0").plot(x="x", y="y", ax=axes[0])
    axes[0].set_title("fitted peak position p1.x0")
    ds.modelfit_stderr.sel(param="p1.x0").plot(x="x", y="y", ax=axes[1])
    axes[1].set_title("its standard error")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="map_fit.png")
    parser.add_argument("--target", default="auto")
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    data, truth = simulate(args.size, args.size, args.target)
    ds = fit(data, args.target)
    plot(ds, args.output)
    problems = check(ds, truth)
    for p in problems:
        print("FAILED:", p, file=sys.stderr)
    if problems:
        return 1
    x0 = ds.modelfit_stderr.sel(param="p1.x0")
    print(
        f"{ds.modelfit_success.size} spectra fitted; p1.x0 standard error {float(x0.median()):.2g} (median)"
    )
    print(f"the map fit recovers the truth; position map written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
