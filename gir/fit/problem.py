"""The least-squares problem behind every fit: data sets, windows, weights, parameter maps.

A :class:`Problem` stacks the weighted residuals ``w * (model - data)`` of one
or more data sets and their Jacobian with respect to one global vector of
free parameters. Each data set has its own executable (a plain
:class:`gir.Executable` or a compiled model) and its own arrays; an index map
sends the global vector into each data set's theta, whose other entries are
fixed.

Derivatives come from forward-mode graphs (:func:`gir.passes.autodiff.jvp`)
compiled for the executable's own target, with respect to exactly the
columns a solver asks for (all free parameters, or the linear ones for
variable projection), so fixed parameters cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from gir.errors import InputError
from gir.ir.graph import Graph
from gir.ir.ops import ALONG_AXIS
from gir.passes.inline import inline
from gir.runtime.compile import compile
from gir.runtime.executable import Executable, on_axes

_REDUCING = ALONG_AXIS  # ops acting along an axis, read from the op registry
_BATCH = "\0batch"  # the leading axis of a batched result (no IR axis has this name)
#: Bytes of model values one batched evaluation in :meth:`Problem.costs` may produce: below the 32 MB
#: up to which gir has malloc reuse freed memory (gir.runtime.memory), so that batch after batch
#: runs without page faults (64 rows of a 212 x 1131 grid took 44 ms in one call, 36 ms in 16-row batches).
BATCH_BYTES = 30 * 2**20


# -- executables ---------------------------------------------------------------------


def as_executable(obj: Any, target: str = "auto") -> Executable:
    """``obj`` if it is an Executable, else ``obj`` compiled for ``target`` (a graph or a model)."""
    if isinstance(obj, Executable):
        return obj
    if isinstance(obj, Graph) or hasattr(obj, "to_graph"):
        return compile(obj, target=target)
    raise InputError(
        f"cannot fit {type(obj).__name__}: give a gir.Executable, a compiled model "
        "(gir.compile(model)) or a gir.models.Model"
    )


# -- one data set on its grid --------------------------------------------------------


class Evaluation:
    """An executable bound to fixed arrays: flat model values and Jacobian columns on one (windowed) grid.

    ``window`` maps an axis (its array's name, e.g. ``"energy"``, or the IR axis
    name) to a range ``(lo, hi)`` (``None`` for an open end). By default the
    axis arrays are cut *before* evaluation, so the model is evaluated on the
    window only. An axis in ``window_after`` is evaluated in full and cut
    afterwards; by default that is the time axis of a model with an
    instrument response (the convolution must see the whole time axis), and
    for a plain executable every axis the graph sums, scans or flips along.
    """

    def __init__(
        self,
        exe: Any,
        arrays: Mapping[str, Any],
        data_shape: tuple[int, ...] | None,
        window: Mapping[str, Any] | None = None,
        window_after: Iterable[str] | None = None,
    ):
        self.exe = exe
        self.inner = exe.unbound()
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        if exe.binding is not None:
            grid = exe.grid
            self.grid_axes, self.grid_names = tuple(grid.values()), tuple(grid)
            for name in self.grid_names:
                if name not in arrays:
                    raise InputError(f"missing axis array {name!r} (the model's axes are {list(grid)})")
            self.sizes = [int(np.shape(arrays[n])[0]) for n in self.grid_names]
            auto_after = set(exe.binding.coupled)
            self._axis_arrays = dict(zip(self.grid_axes, self.grid_names, strict=True))
        else:
            self._grid_of_plain(arrays, data_shape)
            auto_after = self._coupled_axes()
        graph = self.inner.graph
        if len(graph.outputs) != 1:
            raise InputError(
                f"a fit needs an executable with one output, @{graph.name} has {len(graph.outputs)}"
            )
        self.param_names: tuple[str, ...] = tuple(self.inner.param_names)
        self.full_shape = tuple(self.sizes)
        named = auto_after if window_after is None else window_after
        after = {self.grid_names[self._dim(k, "window_after")] for k in named}
        # -- windows ---------------------------------------------------------------------
        self.index: list[np.ndarray | None] = [None] * len(self.grid_axes)  # kept indices per grid dim
        self.after = [False] * len(self.grid_axes)
        for key, rng in (window or {}).items():
            k = self._dim(key, "window")
            name = self.grid_names[k]
            if name not in arrays or np.ndim(arrays[name]) != 1:
                raise InputError(f"window on {key!r}: no 1D array gives that axis")
            lo, hi = rng
            lo = -np.inf if lo is None else lo
            hi = np.inf if hi is None else hi
            axis_values = arrays[name]
            keep = np.nonzero((axis_values >= lo) & (axis_values <= hi))[0]
            if keep.size == 0:
                raise InputError(f"window {key!r}: ({lo}, {hi}) holds no point of the axis")
            self.index[k] = keep
            self.after[k] = self.grid_names[k] in after
        inputs = dict(arrays)
        for k, keep in enumerate(self.index):
            if keep is None or self.after[k]:
                continue
            axis = self.grid_axes[k]
            for v in graph.arrays:
                if v.name in inputs and axis in v.type.axes:
                    inputs[v.name] = np.take(inputs[v.name], keep, axis=v.type.axes.index(axis))
        self.eval_shape = tuple(
            len(keep) if keep is not None and not self.after[k] else n
            for k, (keep, n) in enumerate(zip(self.index, self.sizes, strict=True))
        )
        self.shape = tuple(
            n if keep is None else len(keep) for keep, n in zip(self.index, self.sizes, strict=True)
        )
        self.window_axes = {  # the axis arrays of the fitted (windowed) grid, by name
            name: (np.asarray(arrays[name])[keep] if keep is not None else np.asarray(arrays[name]))
            for name, keep in zip(self.grid_names, self.index, strict=True)
            if name in arrays and np.ndim(arrays[name]) == 1
        }
        self.inputs = exe.graph_inputs(inputs)
        self.arrays = inputs
        if any(self.after):  # flat positions of the window in the evaluated grid
            take = np.ix_(
                *[
                    keep if (keep is not None and after) else np.arange(n)
                    for keep, after, n in zip(self.index, self.after, self.eval_shape, strict=True)
                ]
            )
            self.select: np.ndarray | None = (
                np.arange(int(np.prod(self.eval_shape))).reshape(self.eval_shape)[take].ravel()
            )
        else:
            self.select = None
        self.size = int(np.prod(self.shape))

    # -- setup helpers ------------------------------------------------------------------

    def _grid_of_plain(self, arrays: dict[str, np.ndarray], data_shape) -> None:
        graph = self.inner.graph
        out_axes = graph.outputs[0].type.axes if len(graph.outputs) == 1 else ()
        array_axes = tuple(a for a in graph.axes if any(a in v.type.axes for v in graph.arrays))
        if data_shape is None or len(data_shape) == len(out_axes):
            grid = tuple(out_axes)
        elif len(data_shape) == len(array_axes):
            grid = array_axes
        else:
            raise InputError(
                f"data has {len(data_shape)} dimension(s); the model's output has axes {list(out_axes)}"
            )
        self.grid_axes = grid
        names, sizes = [], []
        for a in grid:
            owners = [v for v in graph.arrays if v.type.axes == (a,)]
            names.append(owners[0].name if owners else a)
            size = None
            for v in graph.arrays:
                if a in v.type.axes and v.name in arrays:
                    size = int(np.shape(arrays[v.name])[v.type.axes.index(a)])
                    break
            if size is None:
                raise InputError(f"no array gives the length of axis {a}")
            sizes.append(size)
        self.grid_names = tuple(names)
        self.sizes = sizes
        self._axis_arrays = dict(zip(grid, names, strict=True))

    def _coupled_axes(self) -> set[str]:
        """Grid axes the graph sums, scans or flips along (a window there must not cut the inputs)."""
        axes = {node.attr("axis") for node in inline(self.inner.graph).nodes if node.op in _REDUCING}
        return {self._axis_arrays[a] for a in self.grid_axes if a in axes}

    def _dim(self, key: str, what: str) -> int:
        if key in self.grid_names:
            return self.grid_names.index(key)
        if key in self.grid_axes:
            return self.grid_axes.index(key)
        raise InputError(f"{what}: unknown axis {key!r}; the data's axes are {list(self.grid_names)}")

    # -- data on the grid -----------------------------------------------------------------

    def cut(self, values: Any, what: str) -> np.ndarray:
        """``values`` on the full grid (or already on the window) as the window's grid."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape == self.shape:
            return v
        try:
            v = np.broadcast_to(v, self.full_shape)
        except ValueError:
            raise InputError(
                f"{what} has shape {np.shape(values)}; the grid is {self.full_shape}"
                + (f" (window: {self.shape})" if self.shape != self.full_shape else "")
            ) from None
        if all(k is None for k in self.index):
            return v
        return v[
            np.ix_(*[np.arange(n) if k is None else k for k, n in zip(self.index, self.sizes, strict=True)])
        ]

    # -- evaluation -----------------------------------------------------------------------

    def check(self, theta: np.ndarray) -> None:
        self.exe.check(theta)

    def _flat(self, grid: np.ndarray, out: np.ndarray) -> None:
        if self.select is None:
            np.copyto(out.reshape(self.eval_shape), grid)
        else:
            out[:] = np.asarray(grid).ravel()[self.select]

    def _evaluate(self, exe, theta: np.ndarray, flats: list[np.ndarray]) -> None:
        """``exe``'s outputs at ``theta`` into the flat window arrays ``flats``, one per output.

        An output over the grid's axes is written in place (no copy on the Numba
        targets); others, and windows cut after evaluation, go through a copy.
        """
        outputs = exe.graph.outputs
        direct = self.select is None
        outs = [
            flat.reshape(self.eval_shape)
            if direct and v.type.axes == self.grid_axes
            else np.empty(tuple(self.eval_shape[self.grid_axes.index(a)] for a in v.type.axes))
            for v, flat in zip(outputs, flats, strict=True)
        ]
        exe.call_into(outs, theta, **self.inputs)
        for v, out, flat in zip(outputs, outs, flats, strict=True):
            if not (direct and v.type.axes == self.grid_axes):
                self._flat(on_axes(out, v.type.axes, self.grid_axes, self.eval_shape), flat)

    def value(self, theta: np.ndarray) -> np.ndarray:
        """The model on the window, flat (C order of the grid)."""
        self.check(theta)
        out = np.empty(self.size)
        self._evaluate(self.inner, theta, [out])
        return out

    def values(self, thetas: np.ndarray) -> np.ndarray:
        """The model on the window at each row of ``thetas`` (B, P): a (B, size) array (possibly a
        read-only view), rows flat like :meth:`value`, from one batched call of the executable (the
        caller checks the rows)."""
        count = thetas.shape[0]
        out = np.asarray(self.inner.batch(thetas, **self.inputs))
        axes = self.inner.graph.outputs[0].type.axes
        if axes != self.grid_axes:
            out = on_axes(out, (_BATCH, *axes), (_BATCH, *self.grid_axes), (count, *self.eval_shape))
        flat = np.reshape(out, (count, -1))
        return flat[:, self.select] if self.select is not None else flat

    def value_and_columns(
        self,
        theta: np.ndarray,
        wrt: tuple[str, ...],
        out: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ):
        """The model (flat) and its derivatives with respect to ``wrt``: an (n, len(wrt)) array.

        ``out`` may be a preallocated (n, len(wrt)) array (column-major is fastest) to fill,
        ``y`` a preallocated (n,) array.
        """
        self.check(theta)
        y = np.empty(self.size) if y is None else y
        jac = np.empty((self.size, len(wrt)), order="F") if out is None else out
        columns = [jac[:, j] if jac.flags.f_contiguous else np.empty(self.size) for j in range(len(wrt))]
        self._evaluate(self.exe.derivative(wrt), theta, [y, *columns])
        if not jac.flags.f_contiguous:
            for j, c in enumerate(columns):
                jac[:, j] = c
        return y, jac


# -- data sets and the stacked problem ------------------------------------------------


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


class Problem:
    """Stacked weighted residuals ``w * (model - data)`` of several data sets over one parameter vector.

    ``names`` are the global free parameters; ``maps[k]`` is a pair of index
    arrays (positions in data set k's theta, positions in the global vector)
    and ``base[k]`` the data set's full theta with its fixed values.
    """

    def __init__(
        self,
        datasets: Sequence[PreparedDataset],
        names: Sequence[str],
        x0: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        maps: Sequence[tuple[np.ndarray, np.ndarray]],
        base: Sequence[np.ndarray],
    ):
        self.datasets = list(datasets)
        self.names = tuple(names)
        self.x0 = np.asarray(x0, dtype=np.float64)
        self.bounds = (np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64))
        self.maps = [(np.asarray(li, dtype=np.intp), np.asarray(gi, dtype=np.intp)) for li, gi in maps]
        self.base = [np.asarray(b, dtype=np.float64) for b in base]
        self.offsets = np.cumsum([0] + [d.n for d in self.datasets])
        self.n = int(self.offsets[-1])
        self.data = np.concatenate([d.data for d in self.datasets])
        self.weights = None
        if any(d.weights is not None for d in self.datasets):
            self.weights = np.concatenate(
                [np.ones(d.n) if d.weights is None else d.weights for d in self.datasets]
            )
        self.wdata = self.data if self.weights is None else self.weights * self.data
        self.counts = {"value": 0, "jacobian": 0}
        self._value_cache: tuple[bytes, np.ndarray] | None = None
        self._jac_cache: dict[tuple, tuple[bytes, np.ndarray, np.ndarray]] = {}
        self._buffers: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._residual: np.ndarray | None = None

    @property
    def nfree(self) -> int:
        return len(self.names)

    def theta(self, k: int, x: np.ndarray) -> np.ndarray:
        """Data set k's full theta for the global vector ``x``."""
        t = self.base[k].copy()
        li, gi = self.maps[k]
        t[li] = x[gi]
        return t

    def full_x(self, x: np.ndarray) -> list[np.ndarray]:
        return [self.theta(k, x) for k in range(len(self.datasets))]

    def _weigh(self, flat: np.ndarray) -> np.ndarray:
        return flat if self.weights is None else flat * self.weights

    def model(self, x: np.ndarray) -> np.ndarray:
        """Weighted model values ``w * y(x)`` of every data set, stacked (cached for the last x)."""
        x = np.asarray(x, dtype=np.float64)
        key = x.tobytes()
        if self._value_cache is not None and self._value_cache[0] == key:
            return self._value_cache[1]
        for ck, y, _, shared in self._jac_cache.values():
            if ck == key:
                return y.copy() if shared else y
        self.counts["value"] += 1
        y = np.concatenate([d.model_flat(self.theta(k, x)) for k, d in enumerate(self.datasets)])
        y = self._weigh(y)
        self._value_cache = (key, y)
        return y

    def residual(self, x: np.ndarray) -> np.ndarray:
        return self.model(x) - self.wdata

    def _thetas(self, k: int, xs: np.ndarray) -> np.ndarray:
        """Data set k's full thetas (B, P_k) for the rows of ``xs`` (B, nfree)."""
        t = np.repeat(self.base[k][None, :], xs.shape[0], axis=0)
        li, gi = self.maps[k]
        t[:, li] = xs[:, gi]
        return t

    def _rows(self, xs: Any) -> np.ndarray:
        xs = np.asarray(xs, dtype=np.float64)
        if xs.ndim != 2 or xs.shape[1] != self.nfree:
            raise InputError(f"xs must have shape (B, {self.nfree}) {list(self.names)}, got {xs.shape}")
        return xs

    def residuals(self, xs: Any) -> np.ndarray:
        """The weighted residuals ``w * (y(x) - data)`` at each row of ``xs`` (B, nfree): a (B, n) array,
        row b equal to ``residual(xs[b])``, from one batched evaluation per data set.

        Raises an InputError when the model is undefined at a row (a kernel width <= 0), as
        :meth:`residual` does; :meth:`costs` scores such rows +inf instead.
        """
        xs = self._rows(xs)
        out = np.empty((xs.shape[0], self.n))
        for k, d in enumerate(self.datasets):
            thetas = self._thetas(k, xs)
            for theta in thetas:
                d.ev.check(theta)
            out[:, self.offsets[k] : self.offsets[k + 1]] = d.model_flats(thetas)
        if self.weights is not None:
            out *= self.weights
        out -= self.wdata
        return out

    def costs(self, xs: Any, max_bytes: int = BATCH_BYTES) -> np.ndarray:
        """The sum of squared weighted residuals at each row of ``xs`` (B, nfree); +inf at rows where the
        model is undefined (an InputError from a parameter check) or the residual is not finite.

        The rows are evaluated in batches whose model values take at most ``max_bytes`` (one row
        at least), and each batch's residuals are formed in place.
        """
        xs = self._rows(xs)
        out = np.full(xs.shape[0], np.inf)
        ok = np.isfinite(xs).all(axis=1)
        thetas = [self._thetas(k, xs) for k in range(len(self.datasets))]
        for b in np.nonzero(ok)[0]:
            try:
                for k, d in enumerate(self.datasets):
                    d.ev.check(thetas[k][b])
            except InputError:
                ok[b] = False
        rows = np.nonzero(ok)[0]
        per_row = 8 * max(int(np.prod(d.ev.eval_shape)) for d in self.datasets)
        chunk = max(1, min(rows.size, int(max_bytes // per_row)))
        buffers = [np.empty((chunk, d.n)) for d in self.datasets]
        for start in range(0, rows.size, chunk):
            take = rows[start : start + chunk]
            total = np.zeros(take.size)
            for k, d in enumerate(self.datasets):
                y = d.model_flats(thetas[k][take])
                cut = slice(self.offsets[k], self.offsets[k + 1])
                r = buffers[k][: take.size]
                with np.errstate(over="ignore", invalid="ignore"):
                    if self.weights is None:
                        np.subtract(y, self.wdata[cut], out=r)
                    else:
                        np.multiply(y, self.weights[cut], out=r)
                        r -= self.wdata[cut]
                    total += np.einsum("ij,ij->i", r, r)
            out[take] = np.where(np.isfinite(total), total, np.inf)
        return out

    def model_and_jacobian(self, x: np.ndarray, cols: Sequence[int] | None = None, *, reuse: bool = False):
        """``(w * y(x), w * dy/dx[:, cols])`` stacked; ``cols`` indexes the global vector (default: all).

        With ``reuse``, the results are written into arrays kept per ``cols`` (a
        fresh 10 MB array costs a page fault per 4 kB page): they are valid until
        the next evaluation with ``reuse``, for callers that consume them at once.
        """
        x = np.asarray(x, dtype=np.float64)
        cols_t = tuple(range(self.nfree)) if cols is None else tuple(int(c) for c in cols)
        key = x.tobytes()
        hit = self._jac_cache.get(cols_t)
        if hit is not None and hit[0] == key:
            _, y, jac, shared = hit
            return (y.copy(), jac.copy()) if shared and not reuse else (y, jac)
        self.counts["jacobian"] += 1
        pos = {c: j for j, c in enumerate(cols_t)}
        single = len(self.datasets) == 1
        if reuse:
            self._jac_cache.pop(cols_t, None)  # its arrays may be the buffers overwritten below
            if cols_t not in self._buffers:
                self._buffers[cols_t] = (np.empty(self.n), np.empty((self.n, len(cols_t)), order="F"))
            y_out, jac = self._buffers[cols_t]
        else:
            y_out, jac = None, np.empty((self.n, len(cols_t)), order="F")
        ys = []
        for k, d in enumerate(self.datasets):
            li, gi = self.maps[k]
            pairs = [(d.param_names[i], pos[g]) for i, g in zip(li, gi, strict=True) if g in pos]
            wrt = tuple(p for p, _ in pairs)
            rows = slice(self.offsets[k], self.offsets[k + 1])
            theta = self.theta(k, x)
            if single and [j for _, j in pairs] == list(range(len(cols_t))):
                y, _ = d.value_and_columns(theta, wrt, out=jac, y=y_out)
            else:
                y, block = d.value_and_columns(theta, wrt)
                jac[rows] = 0.0
                for j, (_, c) in enumerate(pairs):
                    jac[rows, c] = block[:, j]
            ys.append(y)
        y = ys[0] if single else np.concatenate(ys, out=y_out)
        if self.weights is not None:
            y *= self.weights
            jac *= self.weights[:, None]
        self._jac_cache[cols_t] = (key, y, jac, reuse)
        if len(self._jac_cache) > 4:
            self._jac_cache.pop(next(iter(self._jac_cache)))
        return y, jac

    def residual_and_jacobian(self, x: np.ndarray, cols: Sequence[int] | None = None, *, reuse: bool = False):
        """``model_and_jacobian`` less the weighted data; with ``reuse`` the residual is a kept array too."""
        y, jac = self.model_and_jacobian(x, cols, reuse=reuse)
        if not reuse:
            return y - self.wdata, jac
        if self._residual is None:
            self._residual = np.empty(self.n)
        return np.subtract(y, self.wdata, out=self._residual), jac


def build_problem(
    datasets: Sequence[PreparedDataset],
    *,
    shared: Iterable[str] | None = None,
    local: Iterable[str] = (),
    fixed: Mapping[str, float] | None = None,
    theta0: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> Problem:
    """The global parameter vector of a (joint) fit and its maps into each data set.

    A parameter name present in several data sets is one global parameter
    (shared) unless listed in ``local``: then each data set has its own,
    named ``label:name``. ``fixed`` holds names (or ``label:name``) at
    values; ``theta0`` and ``bounds`` override start values and bounds of
    global names.
    """
    datasets = list(datasets)
    single = len(datasets) == 1
    labels = []
    for k, d in enumerate(datasets):
        labels.append(d.label if d.label is not None else f"d{k}")
    if len(set(labels)) != len(labels):
        raise InputError(f"data set labels must be unique, got {labels}")
    local = set(local)
    fixed = dict(fixed or {})
    known_local = {n for d in datasets for n in d.param_names}
    for name in local:
        if name not in known_local:
            raise InputError(f"local: unknown parameter {name!r}")
    if shared is not None:
        shared = set(shared)
        for name in shared:
            if name not in known_local:
                raise InputError(f"shared: unknown parameter {name!r}")
            if name in local:
                raise InputError(f"{name!r} is both shared and local")
    names: list[str] = []
    x0: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    maps, base = [], []
    index: dict[str, int] = {}
    used_fixed: set[str] = set()
    for k, d in enumerate(datasets):
        li, gi = [], []
        t = d.theta0.copy()
        for i, name in enumerate(d.param_names):
            is_local = name in local or (shared is not None and name not in shared and not single)
            gname = f"{labels[k]}:{name}" if is_local and not single else name
            for key in (f"{labels[k]}:{name}", gname, name):
                if key in fixed:
                    t[i] = float(fixed[key])
                    used_fixed.add(key)
                    break
            else:
                if gname not in index:
                    index[gname] = len(names)
                    names.append(gname)
                    x0.append(t[i])
                    lo.append(d.bounds[0][i])
                    hi.append(d.bounds[1][i])
                else:  # shared: the intersection of the bounds
                    g = index[gname]
                    lo[g] = max(lo[g], d.bounds[0][i])
                    hi[g] = min(hi[g], d.bounds[1][i])
                li.append(i)
                gi.append(index[gname])
        maps.append((li, gi))
        base.append(t)
    unused = set(fixed) - used_fixed
    if unused:
        raise InputError(f"fixed: unknown parameter {sorted(unused)[0]!r}")
    x0a, loa, hia = (
        np.array(x0, dtype=np.float64),
        np.array(lo, dtype=np.float64),
        np.array(hi, dtype=np.float64),
    )
    for name, value in (theta0 or {}).items():
        if name not in index:
            raise InputError(f"theta0: unknown free parameter {name!r}; free parameters are {names}")
        x0a[index[name]] = float(value)
    for name, (a, b) in (bounds or {}).items():
        if name not in index:
            raise InputError(f"bounds: unknown free parameter {name!r}; free parameters are {names}")
        loa[index[name]] = -np.inf if a is None else a
        hia[index[name]] = np.inf if b is None else b
    if np.any(loa > hia):
        g = int(np.argmax(loa > hia))
        raise InputError(f"the bounds of {names[g]!r} are empty ({loa[g]}, {hia[g]})")
    for k, d in enumerate(datasets):
        d.label = labels[k]
    return Problem(datasets, names, x0a, (loa, hia), maps, base)
