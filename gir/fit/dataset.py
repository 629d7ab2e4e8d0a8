"""One data set of a fit: its executable, data, arrays, weights, window, start values and bounds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gir.errors import InputError
from gir.fit.grid import Evaluation, as_executable
from gir.runtime.executable import Executable


class Dataset:
    """One data set of a fit: an executable (or model), its data, arrays and options.

    ``theta0`` (vector in the executable's parameter order, or a mapping of
    some names to values) and ``bounds`` (``(lo, hi)`` vectors or a mapping
    name -> (lo, hi)) override the executable's own; ``weights`` multiply the
    residual (1/sigma); non-finite data points are left out. ``label`` names
    the data set in joint fits (default ``d0``, ``d1``, ...).
    """

    def __init__(
        self,
        exe: Any,
        data: Any,
        *,
        arrays: Mapping[str, Any] | None = None,
        theta0: Any = None,
        bounds: Any = None,
        weights: Any = None,
        window: Mapping[str, Any] | None = None,
        window_after: Iterable[str] | None = None,
        label: str | None = None,
        target: str = "auto",
        **more_arrays: Any,
    ):
        self.exe = as_executable(exe, target)
        self.data_in = data
        self.arrays = {**dict(arrays or {}), **more_arrays}
        self.theta0 = theta0
        self.bounds = bounds
        self.weights = weights
        self.window = window
        self.window_after = window_after
        self.label = label

    def prepare(self) -> PreparedDataset:
        return PreparedDataset(self)


def start_and_bounds(exe: Executable, names: tuple[str, ...], theta0: Any, bounds: Any):
    """Start values and ``(lo, hi)`` bounds of ``names``: the executable's own (a model's), overridden
    by ``theta0`` (a vector or a mapping of some names) and ``bounds`` (vectors or a mapping)."""
    p = len(names)
    start = None if exe.theta0 is None else np.asarray(exe.theta0, dtype=np.float64).copy()
    if theta0 is not None:
        if isinstance(theta0, Mapping):
            if start is None:
                missing = [n for n in names if n not in theta0]
                if missing:
                    raise InputError(f"theta0 lacks {missing} (the executable has no start values)")
                start = np.zeros(p)
            for k, v in theta0.items():
                if k not in names:
                    raise InputError(f"theta0: unknown parameter {k!r}; parameters are {list(names)}")
                start[names.index(k)] = float(v)
        else:
            start = np.asarray(theta0, dtype=np.float64).reshape(-1).copy()
            if start.shape != (p,):
                raise InputError(f"theta0 must have {p} values {list(names)}, got {start.size}")
    if start is None:
        raise InputError(f"give theta0: start values of {list(names)}")
    lo, hi = np.full(p, -np.inf), np.full(p, np.inf)
    own = exe.bounds
    if own is not None:
        lo, hi = (np.asarray(b, dtype=np.float64).copy() for b in own)
    if bounds is not None:
        if isinstance(bounds, Mapping):
            for k, (a, b) in bounds.items():
                if k not in names:
                    raise InputError(f"bounds: unknown parameter {k!r}; parameters are {list(names)}")
                i = names.index(k)
                lo[i] = -np.inf if a is None else a
                hi[i] = np.inf if b is None else b
        else:
            a, b = bounds
            lo = np.broadcast_to(np.asarray(a, dtype=np.float64), (p,)).copy()
            hi = np.broadcast_to(np.asarray(b, dtype=np.float64), (p,)).copy()
    if np.any(lo > hi):
        i = int(np.argmax(lo > hi))
        raise InputError(f"bounds of {names[i]!r}: lower {lo[i]} > upper {hi[i]}")
    return start, (lo, hi)


class PreparedDataset:
    """A :class:`Dataset` on its grid: evaluation, flat data and weights, start values and bounds."""

    def __init__(self, ds: Dataset):
        self.spec = ds
        self.exe = ds.exe
        self.label = ds.label
        data = np.asarray(ds.data_in, dtype=np.float64)
        self.ev = Evaluation(ds.exe, ds.arrays, data.shape, ds.window, ds.window_after)
        self.param_names = self.ev.param_names
        self.data_grid = self.ev.cut(data, "data")
        w = None if ds.weights is None else self.ev.cut(ds.weights, "weights")
        finite = np.isfinite(self.data_grid).ravel()
        if w is not None:
            finite &= np.isfinite(w).ravel()
        self.mask = None if finite.all() else np.nonzero(finite)[0]
        if self.mask is not None and self.mask.size == 0:
            raise InputError("the data has no finite point in the window")
        self.data = self._masked(self.data_grid.ravel())
        self.weights = None if w is None else self._masked(np.ascontiguousarray(w).ravel())
        self.theta0, self.bounds = start_and_bounds(ds.exe, self.param_names, ds.theta0, ds.bounds)

    @property
    def n(self) -> int:
        return self.data.size

    def _masked(self, flat: np.ndarray) -> np.ndarray:
        return flat if self.mask is None else flat[self.mask]

    def model_flat(self, theta: np.ndarray) -> np.ndarray:
        return self._masked(self.ev.value(theta))

    def model_flats(self, thetas: np.ndarray) -> np.ndarray:
        """The model at each row of ``thetas``: (B, n), flat and masked like :meth:`model_flat`."""
        y = self.ev.values(thetas)
        return y if self.mask is None else y[:, self.mask]

    def model_grid(self, theta: np.ndarray) -> np.ndarray:
        """The model on the window's grid (all points, also those left out of the residual)."""
        y = self.ev.value(theta)
        return y.reshape(self.ev.shape)

    def components_grid(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Each component of a compiled model on the window's grid (a plain executable: its output)."""
        if self.exe.binding is None:
            return {self.exe.graph.name: self.model_grid(theta)}
        ev = self.ev
        out = {}
        for name, v in self.exe.components(theta, **ev.arrays).items():
            v = np.broadcast_to(v, ev.eval_shape)
            out[name] = v.ravel()[ev.select].reshape(ev.shape) if ev.select is not None else v.copy()
        return out

    def fixed_and_tied(self, theta: np.ndarray) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
        """The executable's fixed and expression parameters at ``theta``."""
        return self.exe.fixed_and_tied(theta)

    def value_and_columns(
        self,
        theta: np.ndarray,
        wrt: tuple[str, ...],
        out: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ):
        """Model values (flat, masked; into ``y`` if given) and the (n, len(wrt)) derivative columns
        (into ``out`` if given)."""
        if self.mask is None:
            return self.ev.value_and_columns(theta, wrt, out, y)
        full, jac = self.ev.value_and_columns(theta, wrt)
        y = full[self.mask] if y is None else np.take(full, self.mask, out=y)
        if out is None:
            return y, np.asfortranarray(jac[self.mask])
        out[:] = jac[self.mask]
        return y, out
