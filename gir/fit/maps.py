"""Fits of maps of spectra given as labelled xarray data, in memory or chunk by chunk with Dask.

::

    ds = gir.fit.least_squares(exe, data)                 # data: xarray.DataArray over (x, y, energy)
    ds.modelfit_coefficients.sel(param="p1.x0").plot()    # one fitted parameter over the map
    ds = gir.fit.least_squares(exe, data, along="x")      # warm starts from the previous slice along x
    best = gir.fit.maps.evaluate_map(exe, ds)             # the model over (x, y, energy)
    ds.to_netcdf("fit.nc")                                # plain dtypes; attributes name the model

The data's dimensions named like the model's axes (``exe.grid``: ``energy``,
``time``) are the spectrum; every other dimension indexes spectra, which are
fitted with :func:`gir.fit.batch`. The result follows xarray-lmfit's layout
(see :func:`fit_map`). A dask-backed DataArray gives a lazy result computed
chunk by chunk (``xarray.map_blocks``) on whatever scheduler dask uses: threads,
a ``distributed`` cluster, dask-jobqueue. xarray (and dask) load when used.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from gir.errors import InputError
from gir.fit.dataset import start_and_bounds
from gir.fit.grid import as_executable
from gir.ir import dump

if TYPE_CHECKING:
    import xarray

#: Statistics of ``modelfit_stats``, along its ``fit_stat`` dimension (xarray-lmfit's names).
STATS = ("nfev", "nvarys", "ndata", "nfree", "chisqr", "redchi")
#: Bits of ``modelfit_flags``, lowest first: the kinds of :class:`gir.fit.result.Diagnostic`, and
#: ``no_data`` for a spectrum without a finite point (not fitted; its values are NaN).
FLAGS = ("failed", "max_nfev", "at_bound", "undetermined", "rank_deficient", "redchi", "no_data")
#: least_squares keywords at their defaults, left out of what goes to the batch.
_DEFAULTS = {"method": "levmar", "varpro": False, "jacobian": "eager"}


def is_data_array(obj: Any) -> bool:
    """Whether ``obj`` is an ``xarray.DataArray`` (without importing xarray: none exists unless it is
    imported)."""
    xr = sys.modules.get("xarray")
    return xr is not None and isinstance(obj, xr.DataArray)


def _xarray():
    try:
        import xarray
    except ImportError:
        raise InputError("fits of labelled data need xarray: pip install 'gir[fit]'") from None
    return xarray


def _is_dask(obj: Any) -> bool:
    return obj is not None and getattr(obj, "chunks", None) is not None


def _json(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v))


# -- the settings of one map fit (shipped to dask workers) ------------------------------------


@attrs.frozen
class MapFit:
    """What fits each block of a map: the executable, explicit axis arrays, start and batch options."""

    exe: Any
    start: np.ndarray  # the start vector, in exe.param_names order
    fit_kws: dict[str, Any]
    arrays: dict[str, np.ndarray]  # axis arrays given by keyword (they win over the data's coordinates)
    along: str | None = None
    batch_kws: dict[str, Any] = attrs.field(factory=dict)  # progress, client, workers, chunksize

    def __reduce__(self):
        payload = pickle.dumps(self.exe)
        key = hashlib.sha1(payload).hexdigest()
        return (_rebuild, (key, payload, self.start, self.fit_kws, self.arrays, self.along, self.batch_kws))

    @property
    def grid(self) -> tuple[str, ...]:
        """The spectrum's dimensions, in the executable's grid order."""
        return tuple(self.exe.grid)

    @property
    def names(self) -> tuple[str, ...]:
        """The fitted (free) parameters."""
        fixed = self.fit_kws.get("fixed") or {}
        return tuple(n for n in self.exe.param_names if n not in fixed)

    def others(self, data: Any) -> tuple[str, ...]:
        """The dimensions that index spectra, ``along`` first (the order of the fits)."""
        rest = tuple(d for d in data.dims if d not in self.grid)
        return rest if self.along is None else (self.along, *(d for d in rest if d != self.along))

    def axes(self, data: Any) -> dict[str, np.ndarray]:
        """The axis arrays: keywords first, then the data's coordinates."""
        return _axes(self.grid, self.arrays, data.coords)

    # -- one block, in memory ------------------------------------------------------------

    def fit_block(self, data: xarray.DataArray, weights: Any = None, starts: Any = None) -> xarray.Dataset:
        """Fit every spectrum of ``data`` (numpy-backed); the result Dataset (see :func:`fit_map`)."""
        order, grid = self.others(data), self.grid
        axes = self.axes(data)
        values = np.asarray(data.transpose(*order, *grid).values, dtype=np.float64)
        lead = values.shape[: len(order)]
        k = lead[0] if self.along is not None else 1
        spectra = values.reshape(k, -1, *values.shape[len(order) :])
        rows = self._start_rows(starts, data, order).reshape(k, spectra.shape[1], -1)
        w = self._weights(weights, data, order, spectra.shape)
        out = _Outputs(k * spectra.shape[1], len(self.names))
        previous = None
        for i in range(k):
            start = rows[i] if previous is None else self._warm(rows[i], previous)
            wi = w if w is None or w.ndim == len(grid) else w[i]
            previous = self._fit_slice(spectra[i], start, wi, axes, out, i)
        return _dataset(data, order, self.names, axes, out.arrays(lead), self._attrs(data))

    def _fit_slice(self, spectra, start, weights, axes, out: _Outputs, i: int) -> np.ndarray:
        """Fit one slice's spectra into ``out``; their fitted values (NaN where none), rows as ``start``."""
        m = spectra.shape[0]
        have = np.isfinite(spectra.reshape(m, -1)).any(axis=1)
        found = np.full((m, len(self.names)), np.nan)
        if have.any():
            from gir.fit.batch import batch  # batch imports least_squares, which imports this module

            idx = np.nonzero(have)[0]
            w = weights if weights is None or weights.ndim == len(self.grid) else weights[idx]
            b = batch(self.exe, spectra[idx], start[idx], weights=w, fit_kws=self.fit_kws,
                      **self.batch_kws, **axes)  # fmt: skip
            out.put(i * m + idx, b)
            found[idx] = b.x
        out.flags[i * m + np.nonzero(~have)[0]] = 1 << FLAGS.index("no_data")
        return found

    def _warm(self, rows: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """``rows`` with the free parameters set to the previous slice's results where those are finite."""
        cols = [self.exe.param_names.index(n) for n in self.names]
        rows = rows.copy()
        ok = np.isfinite(previous).all(axis=1)
        rows[np.ix_(ok, cols)] = previous[ok]
        return rows

    def _start_rows(self, starts: Any, data: Any, order: tuple[str, ...]) -> np.ndarray:
        """One start vector per spectrum (in ``order``), the per-spectrum starts over :attr:`start`."""
        n = int(np.prod([data.sizes[d] for d in order], dtype=np.int64))
        rows = np.tile(self.start, (n, 1))
        if starts is None:
            return rows
        cols = [self.exe.param_names.index(str(p)) for p in starts.coords["param"].values]
        spectra = data.isel({g: 0 for g in self.grid}, drop=True)
        given = np.asarray(
            _spread(starts, spectra, "theta0", ("param",)).transpose(*order, "param").values, dtype=float
        )
        given = given.reshape(n, len(cols))
        rows[:, cols] = np.where(np.isfinite(given), given, rows[:, cols])
        return rows

    def _weights(self, weights: Any, data: Any, order: tuple[str, ...], shape: tuple[int, ...]) -> Any:
        """None, one array on the grid, or one per spectrum shaped like the slices of ``shape``."""
        if weights is None or not is_data_array(weights):
            return None if weights is None else np.broadcast_to(np.asarray(weights, dtype=float), shape[2:])
        if set(weights.dims) <= set(self.grid):
            one = data.isel({d: 0 for d in order}, drop=True)
            return np.asarray(_spread(weights, one, "weights").transpose(*self.grid).values, dtype=float)
        full = _spread(weights, data, "weights").transpose(*order, *self.grid).values
        return np.asarray(full, dtype=float).reshape(shape)

    def _attrs(self, data: Any) -> dict[str, Any]:
        """The data's attributes and the fit's provenance (netCDF-ready strings)."""
        exe = self.exe
        model = getattr(getattr(exe.binding, "model", None), "to_dict", None)
        source = {"gir_model": _json(model())} if model is not None else {"gir_graph": dump(exe.graph)}
        return {
            **data.attrs,
            **source,
            "gir_target": exe.target,
            "gir_axes": _json(list(self.grid)),
            "gir_fixed": _json(dict(self.fit_kws.get("fixed") or {})),
            "gir_compiled_fixed": _json(dict(exe.fixed)),
            "gir_fit_options": _json({k: v for k, v in self.fit_kws.items() if k != "fixed"}),
            "gir_warm_start_along": self.along or "",
        }

    # -- a dask-backed map -----------------------------------------------------------------

    def fit_lazy(self, data: xarray.DataArray, weights: Any = None, starts: Any = None) -> xarray.Dataset:
        """The fit of a dask-backed ``data``: a lazy Dataset computed block by block."""
        xr = _xarray()
        whole = {d: -1 for d in (*self.grid, *([self.along] if self.along else ()))}
        data = data.chunk(whole)
        args = [a.chunk(_matching(a, data)) if is_data_array(a) else a for a in (weights, starts)]
        template = self._template(data)
        return xr.map_blocks(_fit_block, data, args=[self, *args], template=template)

    def _template(self, data: Any) -> Any:
        """The lazy result's layout: the result's variables as empty dask arrays on ``data``'s chunks."""
        import dask.array as da

        order = self.others(data)
        chunks = tuple(data.chunksizes[d] for d in order)
        lead = tuple(data.sizes[d] for d in order)
        p = len(self.names)
        arrays = {
            name: da.empty((*lead, *tail), dtype=dtype, chunks=(*chunks, *tail))
            for name, (tail, dtype) in _Outputs.layout(p).items()
        }
        return _dataset(data, order, self.names, self.axes(data), arrays, self._attrs(data))


#: Executables of map fits unpickled in this process, by their pickle's hash: the blocks of a fit that
#: one worker process runs share one executable and the derivatives it compiled for the first.
_EXECUTABLES: dict[str, Any] = {}
_KEEP = 8


def _rebuild(key: str, payload: bytes, *fields: Any) -> MapFit:
    """A pickled :class:`MapFit`, its executable unpickled once per process."""
    exe = _EXECUTABLES.get(key)
    if exe is None:
        exe = _EXECUTABLES[key] = pickle.loads(payload)
        while len(_EXECUTABLES) > _KEEP:
            _EXECUTABLES.pop(next(iter(_EXECUTABLES)))
    return MapFit(exe, *fields)


def _axes(grid: Sequence[str], arrays: Mapping[str, Any], coords: Any) -> dict[str, np.ndarray]:
    """The axis arrays of ``grid``: from ``arrays`` (keywords), else from the coordinates ``coords``."""
    out = {}
    for name in grid:
        if name in arrays:
            out[name] = np.asarray(arrays[name])
        elif name in coords:
            out[name] = np.asarray(coords[name].values)
        else:
            raise InputError(
                f"data has no coordinate {name!r}: assign it (data.assign_coords({name}=...)) "
                f"or pass {name}=..."
            )
    return out


def _fit_block(data: Any, fit: MapFit, weights: Any, starts: Any) -> Any:
    """One block of a lazy map fit (run by dask): the in-memory fit, with batch's threads off."""
    return attrs.evolve(fit, batch_kws={"progress": False, "workers": 1}).fit_block(data, weights, starts)


def _matching(obj: Any, data: Any) -> dict[str, Any]:
    """Chunks of ``data`` along ``obj``'s dimensions (whole where ``data`` lacks one)."""
    return {d: data.chunksizes.get(d, -1) for d in obj.dims}


def _spread(obj: Any, template: Any, name: str, keep: Sequence[str] = ()) -> Any:
    """``obj`` (``name``: what it is) broadcast over ``template``'s dimensions (its coordinates must
    equal the template's); ``keep``: dimensions of ``obj`` that the template lacks (``param``)."""
    xr = _xarray()
    extra = sorted(set(obj.dims) - set(template.dims) - set(keep), key=str)
    if extra:
        raise InputError(f"{name} has dimensions {extra} that the data lacks (it has {list(template.dims)})")
    try:
        obj, _ = xr.align(obj, template, join="exact")
    except ValueError as e:
        raise InputError(f"{name}: its coordinates differ from the data's: {e}") from None
    return obj.broadcast_like(template)


class _Outputs:
    """The per-spectrum result arrays of a map fit, filled fit by fit (NaN where not fitted)."""

    def __init__(self, n: int, p: int):
        self.coef = np.full((n, p), np.nan)
        self.stderr = np.full((n, p), np.nan)
        self.covar = np.full((n, p, p), np.nan)
        self.stats = np.full((n, len(STATS)), np.nan)
        self.success = np.zeros(n, dtype=np.int8)
        self.flags = np.zeros(n, dtype=np.int16)

    @staticmethod
    def layout(p: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Each variable's trailing shape and dtype."""
        f, n = np.dtype(np.float64), len(STATS)
        return {
            "modelfit_coefficients": ((p,), f),
            "modelfit_stderr": ((p,), f),
            "modelfit_covariance": ((p, p), f),
            "modelfit_stats": ((n,), f),
            "modelfit_success": ((), np.dtype(np.int8)),
            "modelfit_flags": ((), np.dtype(np.int16)),
        }

    def put(self, rows: np.ndarray, b: Any) -> None:
        """The fits of the batch ``b`` into ``rows``; a FitResult is built only for a fit with diagnostics."""
        p = self.coef.shape[1]
        self.coef[rows], self.stderr[rows], self.covar[rows] = b.x, b.stderr, _stack(b, "covar")
        ndata, chisqr = _stack(b, "ndata"), 2 * b.cost
        self.stats[rows] = np.column_stack(
            [b.nfev, np.full(len(rows), p), ndata, ndata - p, chisqr, b.redchi]
        )
        self.success[rows] = b.success
        for k in sorted({k for found in b.diagnostics().values() for k in found}):
            for d in b[k].diagnostics:
                self.flags[rows[k]] |= 1 << FLAGS.index(d.kind)

    def arrays(self, lead: tuple[int, ...]) -> dict[str, np.ndarray]:
        values = [self.coef, self.stderr, self.covar, self.stats, self.success, self.flags]
        return {
            name: v.reshape((*lead, *tail))
            for (name, (tail, _)), v in zip(self.layout(self.coef.shape[1]).items(), values, strict=True)
        }


def _stack(b: Any, field: str) -> np.ndarray:
    """``field`` of every fit of the batch ``b``, stacked: from its compiled arrays when it has them
    (its FitResults are then built only when asked for)."""
    if b.stacked is not None:
        return np.asarray(getattr(b.stacked, field))
    return np.array([getattr(r, field) for r in b.results])


def _dataset(
    data: Any,
    order: tuple[str, ...],
    names: tuple[str, ...],
    axes: Mapping[str, np.ndarray],
    arrays: Mapping[str, Any],
    attributes: Mapping[str, Any],
) -> Any:
    """The result Dataset: ``arrays`` over ``order`` (then param, cov_param or fit_stat), with the data's
    coordinates along ``order``, the axis arrays as coordinates, dimensions in the data's order."""
    xr = _xarray()
    tails = {"modelfit_covariance": ("param", "cov_param"), "modelfit_stats": ("fit_stat",),
             "modelfit_success": (), "modelfit_flags": ()}  # fmt: skip
    variables = {k: ((*order, *tails.get(k, ("param",))), v) for k, v in arrays.items()}
    coords = {k: c.variable for k, c in data.coords.items() if set(c.dims) <= set(order)}
    coords.update({g: (g, np.asarray(a)) for g, a in axes.items()})
    coords.update(param=list(names), cov_param=list(names), fit_stat=list(STATS))
    ds = xr.Dataset(variables, coords=coords, attrs=dict(attributes))
    ds["modelfit_flags"].attrs.update(
        flag_masks=np.array([1 << i for i in range(len(FLAGS))], dtype=np.int16),
        flag_meanings=" ".join(FLAGS),
    )
    ds["modelfit_success"].attrs.update(flag_values=np.array([0, 1], dtype=np.int8), flag_meanings="no yes")
    ds["modelfit_stderr"].attrs.update(long_name="standard error")
    rest = [d for d in data.dims if d in order]
    return ds.transpose(*rest, ...)


# -- the public functions -----------------------------------------------------------------------


def fit_map(
    exe_or_model: Any,
    data: xarray.DataArray,
    theta0: Any = None,
    *,
    weights: Any = None,
    target: str = "auto",
    along: str | None = None,
    progress: bool = True,
    client: Any = None,
    workers: int | None = None,
    chunksize: int | None = None,
    fit_kws: Mapping[str, Any] | None = None,
    **arrays: Any,
) -> xarray.Dataset:
    """Fit every spectrum of the ``xarray.DataArray`` ``data``; an ``xarray.Dataset`` of the results.

    ``gir.fit.least_squares(exe, data_array, ...)`` comes here, with its keywords
    as ``fit_kws`` (``bounds``, ``method``, ``window``, ``varpro``, ``fixed``,
    ``ftol``, ...; ``starts`` is not available).

    - ``data``: dimensions named like the model's axes (``exe.grid``: its
      array names, ``energy``, ``time``) hold each spectrum, whose axis arrays
      are the data's coordinates (an axis keyword, ``energy=E``, wins); every
      other dimension indexes spectra. Spectra without a finite point are not
      fitted (NaN results, flag ``no_data``).
    - ``weights`` (1/sigma): a DataArray over some of the data's dimensions
      (broadcast; coordinates must equal the data's) or one array on the grid.
    - ``theta0``: a vector or mapping (every spectrum); a DataArray with a
      ``param`` dimension (some or all parameters) over some of the other
      dimensions; or a Dataset, such as an earlier result (its
      ``modelfit_coefficients``) or one variable per parameter. Missing or
      non-finite values come from the model's start values.
    - ``along``: fit slice by slice along that dimension, each slice's spectra
      in one batch starting from the previous slice's results (warm starts);
      a spectrum whose neighbour has no finite result starts from ``theta0``.
    - ``progress``, ``client``, ``workers``, ``chunksize`` go to
      :func:`gir.fit.batch` (in-memory data). A dask-backed ``data`` gives a
      lazy result fitted chunk by chunk, wherever dask computes (threads, a
      ``distributed`` Client); the model axes (and ``along``) are made one
      chunk; each chunk fits in one thread, without a progress bar.

    The Dataset (xarray-lmfit's layout) has, over the data's other dimensions:
    ``modelfit_coefficients`` and ``modelfit_stderr`` (dimension ``param``:
    the free parameters), ``modelfit_covariance`` (``param``, ``cov_param``),
    ``modelfit_stats`` (``fit_stat``: nfev, nvarys, ndata, nfree, chisqr,
    redchi), ``modelfit_success`` (int8) and ``modelfit_flags``
    (int16 bits, CF ``flag_masks``/``flag_meanings``: :data:`FLAGS`). It keeps
    the data's coordinates along those dimensions and its attributes, the
    axis arrays as coordinates, and ``gir_*`` attributes: the model
    (``gir_model``, JSON of ``Model.to_dict()``; ``gir_graph``, the IR text,
    for a plain executable), ``gir_target``, ``gir_axes``, ``gir_fixed``,
    ``gir_fit_options``. It writes to netCDF as it is.
    """
    if not is_data_array(data):
        raise InputError(f"fit_map takes an xarray.DataArray, got {type(data).__name__}")
    exe = as_executable(exe_or_model, target)
    _check_dims(tuple(exe.grid), data, along)
    start, starts = _starts(exe, theta0)
    fit_kws = {k: v for k, v in (fit_kws or {}).items() if v is not None and _DEFAULTS.get(k, ...) != v}
    fit = MapFit(exe, start, fit_kws, {k: np.asarray(v) for k, v in arrays.items()}, along)
    if _is_dask(data):
        if client is not None:
            raise InputError(
                "data is dask-backed: its chunks run wherever dask computes (an active Client); "
                "leave out client="
            )
        return fit.fit_lazy(data, weights, starts)
    kws = {"progress": progress, "client": client, "workers": workers, "chunksize": chunksize}
    fit = attrs.evolve(fit, batch_kws={k: v for k, v in kws.items() if v is not None})
    return fit.fit_block(data, _computed(weights), _computed(starts))


def _computed(obj: Any) -> Any:
    return obj.compute() if _is_dask(obj) else obj


def _check_dims(grid: tuple[str, ...], data: Any, along: str | None) -> None:
    missing = [g for g in grid if g not in data.dims]
    if missing:
        raise InputError(
            f"data has dimensions {list(data.dims)}, not the model's axes {missing}; "
            f"rename them (data.rename({{'...': {missing[0]!r}}}))"
        )
    others = [d for d in data.dims if d not in grid]
    if along is not None and along not in others:
        raise InputError(f"along={along!r} is not a dimension of the map: {others}")


def _starts(exe: Any, theta0: Any) -> tuple[np.ndarray, Any]:
    """The start vector (the model's, or ``theta0`` as a vector or mapping) and per-spectrum starts
    (a DataArray with a ``param`` dimension, or None)."""
    if isinstance(theta0, str):
        raise InputError(
            f"theta0={theta0!r}: for warm starts from the previous slice give along='<dimension>' "
            "(theta0 then starts the first slice)"
        )
    xr = sys.modules.get("xarray")
    if xr is not None and isinstance(theta0, xr.Dataset):
        coefficients = "modelfit_coefficients"
        theta0 = theta0[coefficients] if coefficients in theta0 else theta0.to_dataarray("param")
    if not is_data_array(theta0):
        return start_and_bounds(exe, exe.param_names, theta0, None)[0], None
    if "param" not in theta0.dims:
        raise InputError(f"theta0 as a DataArray needs a 'param' dimension, got {list(theta0.dims)}")
    names = [str(p) for p in theta0.coords["param"].values]
    base = exe.theta0 if exe.theta0 is not None else np.full(len(exe.param_names), np.nan)
    return _full_rows(exe, names, base, {})[0], theta0


def evaluate_map(
    exe_or_model: Any, params: xarray.Dataset | xarray.DataArray, *, target: str = "auto", **arrays: Any
) -> xarray.DataArray:
    """The model over a map of parameters: a DataArray over ``params``' dimensions and the model's axes.

    ``params`` is a result of :func:`fit_map` (its ``modelfit_coefficients``,
    ``gir_fixed`` and axis coordinates are used) or a DataArray with a
    ``param`` dimension; parameters it lacks take the model's start values.
    Axis arrays by keyword win over ``params``' coordinates. Where a parameter
    is NaN (a spectrum not fitted) the model is NaN. A dask-backed ``params``
    gives a lazy result.
    """
    xr = _xarray()
    exe = as_executable(exe_or_model, target)
    fixed: dict[str, float] = {}
    if isinstance(params, xr.Dataset):
        fixed = json.loads(params.attrs.get("gir_fixed", "{}"))
        coords, params = params.coords, params["modelfit_coefficients"]
    elif is_data_array(params) and "param" in params.dims:
        coords = params.coords
    else:
        raise InputError("evaluate_map takes a fit_map result or a DataArray with a 'param' dimension")
    grid = tuple(exe.grid)
    axes = _axes(grid, arrays, coords)
    names = [str(p) for p in params.coords["param"].values]
    base = exe.theta0 if exe.theta0 is not None else np.full(len(exe.param_names), np.nan)
    rows = _full_rows(exe, names, base, fixed)
    out = xr.apply_ufunc(
        _evaluate_rows,
        params,
        kwargs={"exe": exe, "rows": rows, "axes": axes},
        input_core_dims=[["param"]],
        output_core_dims=[list(grid)],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {g: len(a) for g, a in axes.items()}},
    )
    return out.assign_coords({g: (g, a) for g, a in axes.items()}).rename("best_fit")


def _full_rows(
    exe: Any, names: Sequence[str], base: np.ndarray, fixed: Mapping[str, float]
) -> tuple[np.ndarray, list[int]]:
    """(a full theta vector: ``base`` with ``fixed`` set, the columns of ``names``); refused for unknown
    names and for parameters with no value (NaN in ``base``, not in ``names``)."""
    unknown = [n for n in (*names, *fixed) if n not in exe.param_names]
    if unknown:
        raise InputError(f"unknown parameters {unknown}; parameters are {list(exe.param_names)}")
    base = np.array(base, dtype=np.float64)
    for n, v in fixed.items():
        base[exe.param_names.index(n)] = v
    lacking = [n for i, n in enumerate(exe.param_names) if n not in names and not np.isfinite(base[i])]
    if lacking:
        raise InputError(f"no values for {lacking} (the executable has no start values)")
    return base, [exe.param_names.index(n) for n in names]


def _evaluate_rows(
    values: np.ndarray, *, exe: Any, rows: tuple, axes: Mapping[str, np.ndarray]
) -> np.ndarray:
    """The model at each row of ``values`` (..., n_params), NaN for rows with a NaN: (..., *grid)."""
    base, cols = rows
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])
    full = np.tile(base, (flat.shape[0], 1))
    full[:, cols] = flat
    ok = np.isfinite(full).all(axis=1)
    grid = tuple(len(a) for a in axes.values())
    out = np.full((flat.shape[0], *grid), np.nan)
    if ok.any():
        out[ok] = exe.batch(full[ok], **axes)
    return out.reshape((*lead, *grid))
