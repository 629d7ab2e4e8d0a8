"""One executable bound to fixed arrays on one (windowed) grid: flat model values and Jacobian columns.

Derivatives come from forward-mode graphs (:meth:`gir.Executable.derivative`)
compiled for the executable's own target, with respect to exactly the columns
a solver asks for (all free parameters, or the linear ones for variable
projection), so fixed parameters cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
                if np.ndim(arrays[name]) != 1:
                    raise InputError(f"axis array {name!r} must be 1D, got shape {np.shape(arrays[name])}")
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
