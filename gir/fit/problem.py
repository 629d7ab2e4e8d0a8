"""The least-squares problem behind every fit: stacked data sets over one parameter vector.

A :class:`Problem` stacks the weighted residuals ``w * (model - data)`` of one
or more data sets (:mod:`gir.fit.dataset`) and their Jacobian with respect to
one global vector of free parameters. Each data set has its own executable
and its own arrays; an index map sends the global vector into each data set's
theta, whose other entries are fixed.

A large problem (a stacked Jacobian over :data:`BLOCK_BYTES`) gives
Levenberg-Marquardt the normal equations ``J^T J`` and ``J^T r`` directly
(:meth:`Problem.normal_equations`): each data set's grid is cut into blocks
along an axis that no op of its derivative graph sums, scans or reorders
along (:func:`block_axis`; a point there depends only on the inputs at its
own position), the model and its Jacobian are evaluated on one block at a
time into reused buffers, and each block is added to the normal equations, so
that neither the Jacobian nor the residual is ever held whole.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from gir.errors import InputError
from gir.fit.dataset import PreparedDataset
from gir.fit.grid import Evaluation
from gir.fit.normal_equations import normal_system, residual_squares
from gir.ir.graph import Graph
from gir.ir.ops import OPS
from gir.passes.inline import inline

#: Bytes of model values one batched evaluation in :meth:`Problem.costs` may produce: below the 32 MB
#: up to which gir has malloc reuse freed memory (gir.runtime.memory), so that batch after batch
#: runs without page faults (64 rows of a 212 x 1131 grid took 44 ms in one call, 36 ms in 16-row batches).
BATCH_BYTES = 30 * 2**20
#: Bytes of the stacked Jacobian (points x free parameters) above which Levenberg-Marquardt works on
#: :meth:`Problem.normal_equations` (:attr:`Problem.blocked`). On a 2000 x 4000 grid with 9 free
#: parameters the stacked path held 17 times the data's size at its peak (the blocks: a quarter). Both
#: paths took the same time per fit on 212 x 1131 to 1000 x 2000 grids (Numba, one BLAS thread); below
#: this size the stacked Jacobian is a small allocation and the path of every other solver.
BLOCK_BYTES = 64 * 2**20
#: Bytes of model values, residual and Jacobian columns of one block (well within the 32 MB up to which
#: gir has malloc reuse freed memory, so that the blocks of every step reuse the same pages).
BLOCK_TARGET = 8 * 2**20


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
        single = len(self.datasets) == 1
        self.data = self.datasets[0].data if single else np.concatenate([d.data for d in self.datasets])
        self.weights = None
        if single:
            self.weights = self.datasets[0].weights
        elif any(d.weights is not None for d in self.datasets):
            self.weights = np.concatenate(
                [np.ones(d.n) if d.weights is None else d.weights for d in self.datasets]
            )
        self.counts = {"value": 0, "jacobian": 0}
        self._value_cache: tuple[bytes, np.ndarray] | None = None
        self._jac_cache: dict[tuple, tuple[bytes, np.ndarray, np.ndarray]] = {}
        self._buffers: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._residual: np.ndarray | None = None
        self._grid_blocks: dict[int, GridBlocks] = {}
        self._normal_cache: tuple[bytes, float, np.ndarray, np.ndarray] | None = None

    @property
    def nfree(self) -> int:
        return len(self.names)

    @functools.cached_property
    def wdata(self) -> np.ndarray:
        """The weighted data ``w * data``, stacked (formed at first use: a blocked fit never needs it)."""
        return self.data if self.weights is None else self.weights * self.data

    @property
    def blocked(self) -> bool:
        """Whether the stacked Jacobian would exceed :data:`BLOCK_BYTES` (then fit by
        :meth:`normal_equations`)."""
        return 8 * self.n * self.nfree > BLOCK_BYTES

    def theta(self, k: int, x: np.ndarray) -> np.ndarray:
        """Data set k's full theta for the global vector ``x``."""
        t = self.base[k].copy()
        li, gi = self.maps[k]
        t[li] = x[gi]
        return t

    def full_x(self, x: np.ndarray) -> list[np.ndarray]:
        return [self.theta(k, x) for k in range(len(self.datasets))]

    def model(self, x: np.ndarray) -> np.ndarray:
        """Weighted model values ``w * y(x)`` of every data set, stacked (cached for the last x, unless
        :attr:`blocked`: then the caller's array is the only one of the grid's size)."""
        x = np.asarray(x, dtype=np.float64)
        key = x.tobytes()
        if self._value_cache is not None and self._value_cache[0] == key:
            return self._value_cache[1]
        for ck, y, _, shared in self._jac_cache.values():
            if ck == key:
                return y.copy() if shared else y
        self.counts["value"] += 1
        ys = [d.model_flat(self.theta(k, x)) for k, d in enumerate(self.datasets)]  # fresh arrays
        y = ys[0] if len(ys) == 1 else np.concatenate(ys)
        if self.weights is not None:
            y *= self.weights  # in place: a blocked problem's residual holds only grid-sized arrays it needs
        if not self.blocked:
            self._value_cache = (key, y)
        return y

    def residual(self, x: np.ndarray) -> np.ndarray:
        """The weighted residual ``w * y(x) - w * data``, stacked (a :attr:`blocked` problem forms it
        without keeping ``w * data``)."""
        if not self.blocked or self.weights is None:
            return self.model(x) - self.wdata
        r = self.weights * self.data
        return np.subtract(self.model(x), r, out=r)

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
        for start in range(0, rows.size, chunk):
            take = rows[start : start + chunk]
            total = np.zeros(take.size)
            for k, d in enumerate(self.datasets):
                cut = slice(self.offsets[k], self.offsets[k + 1])
                w = None if self.weights is None else self.weights[cut]
                total += residual_squares(d.model_flats(thetas[k][take]), w, self.wdata[cut])
            out[take] = np.where(np.isfinite(total), total, np.inf)
        return out

    def normal_equations(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """``(chisqr, J^T J, J^T r)`` of the weighted residual ``r`` at ``x`` over every free parameter,
        summed over the blocks of each data set's grid (cached for the last x).

        ``chisqr = |r|^2`` is inf or NaN where the residual is not finite.
        """
        x = np.asarray(x, dtype=np.float64)
        key = x.tobytes()
        if self._normal_cache is not None and self._normal_cache[0] == key:
            return self._normal_cache[1:]
        self.counts["jacobian"] += 1
        p = self.nfree
        a, g, chisqr = np.zeros((p, p)), np.zeros(p), 0.0
        for k in range(len(self.datasets)):
            cols = self.maps[k][1]
            for jac, r in self.blocks_of(k).residuals(self.theta(k, x), columns=True):
                ab, gb, rr = normal_system(jac, r)
                a[np.ix_(cols, cols)] += ab
                g[cols] += gb
                chisqr += rr
        self._normal_cache = (key, chisqr, a, g)
        return chisqr, a, g

    def chisqr(self, x: np.ndarray) -> float:
        """``|r|^2`` of the weighted residual at ``x``, from model values alone, block by block (inf or NaN
        where it is not finite)."""
        x = np.asarray(x, dtype=np.float64)
        if self._normal_cache is not None and self._normal_cache[0] == x.tobytes():
            return self._normal_cache[1]
        self.counts["value"] += 1
        total = 0.0
        for k in range(len(self.datasets)):
            for _, r in self.blocks_of(k).residuals(self.theta(k, x), columns=False):
                total += float(np.einsum("i,i->", r, r))  # no BLAS: a call per block may wait for its threads
        return total

    def blocks_of(self, k: int) -> GridBlocks:
        """Data set k's grid blocks over its free parameters (made at first use)."""
        blocks = self._grid_blocks.get(k)
        if blocks is None:
            d = self.datasets[k]
            wrt = tuple(d.param_names[i] for i in self.maps[k][0])
            blocks = self._grid_blocks[k] = GridBlocks(d, wrt)
        return blocks

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


def block_axis(graph: Graph, grid_axes: Sequence[str]) -> int | None:
    """The outermost of ``grid_axes`` along which no op of ``graph`` sums, scans or reorders (its
    ``OpDef.along``), so that each point along it depends only on the inputs at its own position; None
    when every axis is coupled or the graph has an op of unknown reach (not elementwise, not along an
    axis, not a broadcast)."""
    coupled: set[str] = set()
    for node in inline(graph).nodes:
        op = OPS[node.op]
        if op.along is not None:
            coupled.add(node.attr("axis"))
        elif not op.elementwise and not op.shape_only:
            return None
    return next((k for k, axis in enumerate(grid_axes) if axis not in coupled), None)


class GridBlocks:
    """One data set's weighted residual and its Jacobian columns ``wrt``, block by block.

    The blocks are slices along :func:`block_axis` of the derivative graph, of
    about :data:`BLOCK_TARGET` bytes; a data set whose window is cut after
    evaluation (``window_after``), or without such an axis, is one block: its
    whole grid. Each block's inputs are slices of the data set's graph inputs
    (the derived ones included, computed once on the whole axis), and its
    values and columns are written into buffers kept for the next evaluation.
    """

    def __init__(self, d: PreparedDataset, wrt: tuple[str, ...]):
        self.d, self.wrt = d, wrt
        ev = d.ev
        dim = None if ev.select is not None else block_axis(ev.exe.derivative(wrt).graph, ev.grid_axes)
        self.dim = dim
        per_step = 1 if dim is None else ev.size // ev.eval_shape[dim]
        length = 1 if dim is None else ev.eval_shape[dim]
        step = length if dim is None else max(1, min(length, BLOCK_TARGET // (8 * (len(wrt) + 2) * per_step)))
        self.slices = [slice(start, min(start + step, length)) for start in range(0, length, step)]
        self.views = [self._view(ev, s) for s in self.slices] if dim is not None else [ev]
        size = step * per_step if dim is not None else d.n
        self._y = np.empty(size)
        self._jac = np.empty(size * len(wrt))
        if dim is not None:
            self.data_grid = d.data_grid
            self.weights_grid = None
            if d.weights is not None:
                self.weights_grid = (
                    d.weights.reshape(ev.shape) if d.mask is None else ev.cut(d.spec.weights, "weights")
                )

    def _view(self, ev: Evaluation, cut: slice) -> Evaluation:
        """``ev`` restricted to the block ``cut`` of its grid dimension :attr:`dim` (inputs sliced)."""
        axis = ev.grid_axes[self.dim]
        axes_of = {v.name: v.type.axes for v in ev.inner.graph.arrays}
        view = copy.copy(ev)
        view.inputs = {}
        for name, value in ev.inputs.items():
            axes = axes_of.get(name, ())
            if axis in axes:
                value = np.asarray(value)[(slice(None),) * axes.index(axis) + (cut,)]
            view.inputs[name] = value
        shape = list(ev.eval_shape)
        shape[self.dim] = cut.stop - cut.start
        view.eval_shape = view.shape = tuple(shape)
        view.size = int(np.prod(shape))
        return view

    def residuals(self, theta: np.ndarray, columns: bool) -> Iterator[tuple[np.ndarray | None, np.ndarray]]:
        """``(w * dy/dwrt, w * (y - data))`` of each block at ``theta``: the columns an (m, len(wrt))
        column-major array (None without ``columns``); both valid until the next block."""
        for cut, view in zip(self.slices, self.views, strict=True):
            y, jac = self._evaluate(view, theta, columns)
            if self.dim is None:
                data, w = self.d.data, self.d.weights
            else:
                y, jac, data, w = self._finite(cut, y, jac)
            if w is not None:
                y *= w
                if jac is not None:
                    jac *= w[:, None]
            yield jac, y - (data if w is None else w * data)

    def _evaluate(self, view: Evaluation, theta: np.ndarray, columns: bool):
        """One block's model values (flat) and, with ``columns``, its Jacobian columns (else None); the
        columns, and the values with them, in the kept buffers."""
        whole = self.dim is None
        if not columns:
            return (self.d.model_flat(theta) if whole else view.value(theta)), None
        m = self.d.n if whole else view.size
        jac = self._jac[: m * len(self.wrt)].reshape((m, len(self.wrt)), order="F")
        return (self.d if whole else view).value_and_columns(theta, self.wrt, out=jac, y=self._y[:m])

    def _finite(self, cut: slice, y: np.ndarray, jac: np.ndarray | None):
        """The block's values, columns, data and weights at its points with finite data and weights."""
        index = (slice(None),) * self.dim + (cut,)
        data = self.data_grid[index].ravel()
        w = None if self.weights_grid is None else self.weights_grid[index].ravel()
        if self.d.mask is None:
            return y, jac, data, w
        keep = np.isfinite(data) if w is None else np.isfinite(data) & np.isfinite(w)
        jac = None if jac is None else np.asfortranarray(jac[keep])
        return y[keep], jac, data[keep], None if w is None else w[keep]


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
