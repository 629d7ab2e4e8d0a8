"""Batch fits: many independent data sets with the same model and axes.

On the Numba targets (and JAX from :data:`gir.fit.compiled_lm.JAX_MIN_BATCH` data
sets), plain Levenberg-Marquardt fits (no variable projection, no scipy method)
run entirely in compiled code (:mod:`gir.fit.compiled_lm`):
the same iterations as one :func:`gir.fit.least_squares` at a time, with no
Python per iteration or per spectrum, and results built when asked for.
Otherwise the fits run locally in a thread pool when the target's compiled
code releases the GIL (Numba and JAX), or one after the other (NumPy: the
evaluation holds the GIL between its array operations; use ``client=`` for
processes). With ``client=`` (a dask.distributed Client) they are spread over
the cluster's workers: each task takes the executable (it pickles as its graph
and is compiled once per worker process), the axis arrays and a chunk of
spectra.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from gir.errors import InputError, warn
from gir.fit.dataset import Dataset
from gir.fit.grid import Evaluation, as_executable
from gir.fit.least_squares import solve
from gir.fit.problem import build_problem
from gir.fit.result import AT_BOUND, FitResult, make_result, redchi_is_off
from gir.fit.solver import solver_options

if TYPE_CHECKING:
    from gir.fit.compiled_lm import CompiledFits

_LEAST_SQUARES_KWS = {
    "bounds",
    "method",
    "window",
    "window_after",
    "varpro",
    "fixed",
    "jacobian",
    "ftol",
    "xtol",
    "gtol",
    "max_nfev",
    "x_scale",
    "options",
}


class LazyResults(Sequence[FitResult]):
    """The fits of a compiled batch as :class:`FitResult` objects, each built when first asked for
    (``build(i)``: the data set's statistics and grids at its solution) and kept."""

    def __init__(self, n: int, build: Callable[[int], FitResult]):
        self._n = n
        self._build = build
        self._built: dict[int, FitResult] = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        k = int(i) + self._n if int(i) < 0 else int(i)
        if not 0 <= k < self._n:
            raise IndexError(f"fit {i} of a batch of {self._n}")
        if k not in self._built:
            self._built[k] = self._build(k)
        return self._built[k]

    def __iter__(self) -> Iterator[FitResult]:
        return (self[k] for k in range(self._n))


@attrs.define(eq=False)
class BatchResult:
    """The fits of a batch, in input order; ``x``, ``stderr``, ... stack them (one row per data set).

    ``stacked`` holds the arrays of a compiled batch (:class:`gir.fit.compiled_lm.CompiledFits`);
    its ``results`` are then built one by one when asked for.
    """

    param_names: tuple[str, ...]
    results: Sequence[FitResult]
    wall_time: float
    mode: str  # "sequential", "threads (k)", "dask (k workers)" or "compiled (numba, k threads)"
    stacked: CompiledFits | None = None

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> FitResult:
        return self.results[i]

    def __iter__(self):
        return iter(self.results)

    def _stack(self, field: str) -> np.ndarray:
        if self.stacked is not None:
            return np.asarray(getattr(self.stacked, field))
        return np.array([getattr(r, field) for r in self.results])

    @property
    def x(self) -> np.ndarray:
        return self._stack("x")

    @property
    def stderr(self) -> np.ndarray:
        return self._stack("stderr")

    @property
    def cost(self) -> np.ndarray:
        return self._stack("cost")

    @property
    def redchi(self) -> np.ndarray:
        return self._stack("redchi")

    @property
    def success(self) -> np.ndarray:
        return self._stack("success")

    @property
    def nfev(self) -> np.ndarray:
        return self._stack("nfev")

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Each parameter's fitted values across the batch, by name (as :attr:`FitResult.params`)."""
        x = self.x
        return {n: x[:, j] for j, n in enumerate(self.param_names)}

    @property
    def errors(self) -> dict[str, np.ndarray]:
        """Each parameter's standard errors across the batch, by name."""
        e = self.stderr
        return {n: e[:, j] for j, n in enumerate(self.param_names)}

    def _suspects(self) -> Iterator[tuple[int, FitResult]]:
        """The fits that may raise a diagnostic, with their results (a compiled batch: only those the
        stacked arrays flag, each as a summary without grids)."""
        c = self.stacked
        if c is None:
            yield from enumerate(self.results)
            return
        lo, hi = c.bounds
        x = c.x
        near = np.zeros(x.shape, bool)
        for bound in (lo, hi):
            fin = np.isfinite(bound)
            near |= fin & (np.abs(x - np.where(fin, bound, 0.0)) <= AT_BOUND * np.maximum(1.0, np.abs(bound)))
        flagged = ~c.success | c.deficient | near.any(axis=1) | ~np.isfinite(c.stderr).all(axis=1)
        if c.weighted:
            dof = c.ndata - len(self.param_names)
            flagged |= np.array([redchi_is_off(r, int(d)) for r, d in zip(c.redchi, dof, strict=True)], bool)
        for i in np.flatnonzero(flagged):
            yield int(i), c.summary(int(i))

    def diagnostics(self) -> dict[str, list[int]]:
        """Which fits (indices) raised each kind of diagnostic message, by message."""
        found: dict[str, list[int]] = {}
        for i, r in self._suspects():
            for d in r.diagnostics:
                key = d.message if d.kind in ("at_bound", "undetermined") else d.kind
                found.setdefault(_LABELS.get(key, key), []).append(i)
        return found

    def warnings(self) -> list[str]:
        """One line per kind of problem: ``3 of 100 fits: at a bound: p1.A: [12, 40, 77]``."""
        n = len(self)
        return [
            f"{len(idx)} of {n} fits: {what}: {_indices(idx)}" for what, idx in self.diagnostics().items()
        ]

    def to_dataframe(self):
        """One row per fit: each parameter and its standard error, reduced chi-square, success, nfev
        (pandas)."""
        import pandas as pd

        columns: dict[str, Any] = {}
        for n in self.param_names:
            columns[n] = self.params[n]
            columns[f"{n}_stderr"] = self.errors[n]
        columns.update(redchi=self.redchi, success=self.success, nfev=self.nfev)
        return pd.DataFrame(columns)

    def report(self) -> str:
        n = len(self)
        lines = [
            f"[[Batch]] {n} fits, {int(self.success.sum())} succeeded, {self.wall_time:.3f} s ({self.mode}); "
            f"nfev median {int(np.median(self.nfev)) if n else 0}",
        ]
        found = self.warnings()
        if found:
            lines.append("[[Warnings]]")
            lines += [f"    {w}" for w in found]
        lines.append(f"    {'name':<24} {'mean':>14} {'std':>12} {'median stderr':>14}")
        x, e = self.x, self.stderr
        for j, name in enumerate(self.param_names):
            lines.append(
                f"    {name:<24} {x[:, j].mean():>14.8g} {x[:, j].std():>12.4g} {np.median(e[:, j]):>14.4g}"
            )
        return "\n".join(lines)


#: How a batch names each kind of diagnostic.
_LABELS = {
    "failed": "did not converge",
    "max_nfev": "stopped on max_nfev",
    "rank_deficient": "rank-deficient Jacobian",
    "redchi": "reduced chi-square far from 1",
}


def _indices(idx: list[int], shown: int = 20) -> str:
    more = f", ... ({len(idx) - shown} more)" if len(idx) > shown else ""
    return f"[{', '.join(map(str, idx[:shown]))}{more}]"


def _fit(
    exe: Any,
    data: np.ndarray,
    theta0: Any,
    weights: Any,
    arrays: Mapping[str, Any],
    kws: Mapping[str, Any],
    quiet: bool = False,
) -> FitResult:
    """One fit of a batch (also run on dask workers): a least_squares without the Jacobian kept;
    ``quiet`` where no user code is on the stack (worker threads and processes) to point a warning at."""
    kws = dict(kws)
    scipy_kw = solver_options(
        kws.pop("ftol", None),
        kws.pop("xtol", None),
        kws.pop("gtol", None),
        kws.pop("max_nfev", None),
        kws.pop("x_scale", None),
        kws.pop("options", None),
    )
    t0 = time.perf_counter()
    ds = Dataset(
        exe,
        data,
        arrays=arrays,
        theta0=theta0,
        bounds=kws.get("bounds"),
        weights=weights,
        window=kws.get("window"),
        window_after=kws.get("window_after"),
    )
    problem = build_problem([ds.prepare()], fixed=kws.get("fixed"))
    return solve(
        problem,
        method=kws.get("method", "levmar"),
        varpro=kws.get("varpro", False),
        jacobian=kws.get("jacobian", "eager"),
        scipy_options=scipy_kw,
        setup_time=time.perf_counter() - t0,
        explicit_bounds=kws.get("bounds") is not None,
        keep_jac=False,
        quiet=quiet,
    )


def _fit_chunk(exe, items, arrays, kws) -> list[FitResult]:
    return [_fit(exe, d, t, w, arrays, kws, quiet=True) for d, t, w in items]


def releases_gil(exe: Any) -> bool:
    """Whether the executable's compiled code runs without holding the GIL (threads then overlap)."""
    return exe.releases_gil


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc)


def batch(
    exe_or_model: Any,
    datas: Any,
    theta0: Any = None,
    *,
    progress: bool = True,
    client: Any = None,
    workers: int | None = None,
    chunksize: int | None = None,
    weights: Any = None,
    target: str = "auto",
    fit_kws: Mapping[str, Any] | None = None,
    compiled: bool | None = None,
    **arrays: Any,
) -> BatchResult:
    """Fit many independent data sets (same model and axes) with :func:`gir.fit.least_squares`.

    ``datas`` is an array with one data set per leading index (or a sequence
    of arrays); ``theta0`` one start vector (or mapping) for all, or one row
    per data set; ``weights`` one array for all or one per data set.
    ``fit_kws`` are least_squares keywords (``bounds``, ``method``,
    ``window``, ``varpro``, ``fixed``, ``ftol``, ...). ``progress`` shows a
    tqdm bar when tqdm is installed.

    ``compiled``: fit in compiled code (:mod:`gir.fit.compiled_lm`; the
    default where the target and options allow it: a Numba target, or a JAX
    target for at least 1,000 data sets, method ``levmar`` without varpro or
    scipy options, no ``client``), on ``workers`` threads (Numba; default: as
    many as cores), ``chunksize`` spectra per call (default 256); ``True``
    raises an InputError naming what prevents it, ``False`` fits one data
    set at a time as below. ``mode`` of the result says which path ran.

    Local runs: ``workers`` threads (default: as many as cores when the
    target releases the GIL, see :func:`releases_gil`; else one, sequential).
    ``client``: a dask.distributed Client; ``chunksize`` spectra per task
    (default: about four tasks per worker).
    """
    fit_kws = dict(fit_kws or {})
    unknown = sorted(set(fit_kws) - _LEAST_SQUARES_KWS)
    if unknown:
        raise InputError(f"fit_kws: unknown keyword {unknown[0]!r}; known: {sorted(_LEAST_SQUARES_KWS)}")
    exe = as_executable(exe_or_model, target)
    datas = _data_sets(exe, datas, arrays, fit_kws)
    n = len(datas)
    thetas = _per_item(theta0, n, "theta0", vector=True)
    ws = _per_item(weights, n, "weights", like=datas[0])
    use_compiled = _use_compiled(exe, fit_kws, client, compiled, n)
    t0 = time.perf_counter()
    bar = _progress(n, progress, "gir.fit.batch")
    stacked = None
    try:
        if use_compiled:
            results, mode, stacked = _compiled(
                exe, datas, thetas, ws, arrays, fit_kws, workers, chunksize, bar
            )
        elif client is not None:
            items = list(zip(datas, thetas, ws, strict=True))
            results, mode = _dask(client, exe, items, arrays, fit_kws, chunksize, bar)
        else:
            items = list(zip(datas, thetas, ws, strict=True))
            results, mode = _local(exe, items, arrays, fit_kws, workers, bar)
    finally:
        if bar is not None:
            bar.close()
    names = stacked.param_names if stacked is not None else results[0].param_names
    out = BatchResult(names, results, time.perf_counter() - t0, mode, stacked)
    found = out.warnings()
    if found:
        warn("gir.fit.batch: " + "; ".join(found))
    return out


def _use_compiled(exe: Any, kws: Mapping[str, Any], client: Any, compiled: bool | None, n: int) -> bool:
    """Whether the batch of ``n`` data sets runs in compiled code; ``compiled=True`` where it cannot
    raises why. By default a JAX target needs :data:`gir.fit.compiled_lm.JAX_MIN_BATCH` data sets:
    XLA compiles the solver's loop anew in each process (some 20 s on a CPU)."""
    from gir.fit.compiled_lm import JAX_MIN_BATCH, JAX_TARGETS, unsupported

    if compiled is False:
        return False
    why = "a dask client" if client is not None else unsupported(exe, kws)
    if why is not None and compiled:
        raise InputError(f"batch: compiled=True cannot fit with {why}")
    if compiled is None and exe.target in JAX_TARGETS and n < JAX_MIN_BATCH:
        return False
    return why is None


def _compiled(
    exe: Any,
    datas: list[np.ndarray],
    thetas: list,
    ws: list,
    arrays: Mapping[str, Any],
    kws: Mapping[str, Any],
    workers: int | None,
    chunksize: int | None,
    bar: Any,
) -> tuple[LazyResults, str, CompiledFits]:
    """The batch fitted by :func:`gir.fit.compiled_lm.fit_spectra`: its results (FitResults built when
    asked for), mode and stacked arrays."""
    from gir.codegen.backend import usable_cpus
    from gir.fit.compiled_lm import CHUNK, SpectraProblem, fit_spectra

    sp = SpectraProblem(exe, datas, thetas, ws, arrays, kws)
    threads = usable_cpus() if workers is None else max(1, int(workers))
    fits = fit_spectra(sp, threads, None if bar is None else bar.update, chunksize or CHUNK)

    def build(i: int) -> FitResult:
        ds = Dataset(exe, datas[i], arrays=arrays, theta0=thetas[i], bounds=kws.get("bounds"), weights=ws[i],
                     window=kws.get("window"), window_after=kws.get("window_after"))  # fmt: skip
        problem = build_problem([ds.prepare()], fixed=kws.get("fixed"))
        s = fits.summary(i)
        return make_result(problem, fits.x[i], method="levmar", nfev=s.nfev, njev=s.njev, success=s.success,
                           message=s.message, status=s.status, wall_time=s.wall_time, setup_time=0.0,
                           keep_jac=False)  # fmt: skip

    mode = f"compiled ({exe.target}, {threads} thread{'s' if threads > 1 else ''})"
    if exe.target.startswith("jax"):
        mode = f"compiled ({exe.target}, vmap)"
    return LazyResults(len(datas), build), mode, fits


def _data_sets(exe: Any, datas: Any, arrays: Mapping[str, Any], kws: Mapping[str, Any]) -> list[np.ndarray]:
    """``datas`` as a list of arrays on the executable's grid, refused unless shaped (N, *grid)."""
    if isinstance(datas, np.ndarray) or not isinstance(datas, list | tuple):
        datas = np.asarray(datas, dtype=np.float64)
        if datas.ndim == 0:
            raise InputError("batch data must be an array of shape (N, *grid), got a scalar")
        datas = list(datas)
    datas = [np.asarray(d, dtype=np.float64) for d in datas]
    if not datas:
        raise InputError("batch needs at least one data set")
    ev = Evaluation(exe, arrays, datas[0].shape or None, kws.get("window"), kws.get("window_after"))
    grid = ev.full_shape
    for k, d in enumerate(datas):
        if d.shape not in (grid, ev.shape):
            raise InputError(
                f"batch data must have shape (N, *grid) = (N, {', '.join(map(str, grid))}); data set {k} has "
                f"shape {d.shape}" + (" (one spectrum? use gir.fit.least_squares)" if d.ndim == 0 else "")
            )
    return datas


def _per_item(value: Any, n: int, what: str, vector: bool = False, like: np.ndarray | None = None) -> list:
    if value is None or isinstance(value, Mapping):
        return [value] * n
    arr = np.asarray(value, dtype=np.float64)
    if vector:
        if arr.ndim == 1:
            return [arr] * n
        if arr.ndim == 2 and arr.shape[0] == n:
            return list(arr)
        raise InputError(f"{what}: give one vector, or one row per data set ({n}), got shape {arr.shape}")
    if like is not None and arr.shape == (n, *like.shape):
        return list(arr)
    return [arr] * n


def _local(exe, items, arrays, kws, workers, bar) -> tuple[list[FitResult], str]:
    results: list[FitResult | None] = [None] * len(items)
    d, t, w = items[0]
    results[0] = _fit(exe, d, t, w, arrays, kws)  # compiles once, in this thread
    if bar is not None:
        bar.update(1)
    if workers is None:
        workers = (os.cpu_count() or 1) if releases_gil(exe) else 1
    rest = range(1, len(items))
    if workers <= 1 or len(items) <= 2:
        for i in rest:
            d, t, w = items[i]
            results[i] = _fit(exe, d, t, w, arrays, kws)
            if bar is not None:
                bar.update(1)
        return results, "sequential"
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_fit, exe, *items[i], arrays, kws, True): i for i in rest}
        for f in as_completed(futures):
            results[futures[f]] = f.result()
            if bar is not None:
                bar.update(1)
    return results, f"threads ({workers})"


def _dask(client, exe, items, arrays, kws, chunksize, bar) -> tuple[list[FitResult], str]:
    from distributed import as_completed

    nworkers = max(1, len(client.scheduler_info().get("workers", {})))
    if chunksize is None:
        chunksize = max(1, -(-len(items) // (4 * nworkers)))
    # The executable and the axis arrays go with each task (a graph and a few axes: small), not
    # scattered once: a scattered value is lost with a worker that restarts, and so is every task using it.
    chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
    futures = [client.submit(_fit_chunk, exe, chunk, dict(arrays), kws, pure=False) for chunk in chunks]
    index = {f.key: k for k, f in enumerate(futures)}
    out: list[list[FitResult] | None] = [None] * len(chunks)
    for f in as_completed(futures):
        out[index[f.key]] = f.result()
        if bar is not None:
            bar.update(len(out[index[f.key]]))
    return [r for chunk in out for r in chunk], f"dask ({nworkers} workers)"
