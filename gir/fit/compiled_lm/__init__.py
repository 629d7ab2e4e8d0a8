"""Batched Levenberg-Marquardt in compiled code: many spectra, one model, no Python per iteration.

:func:`fit_spectra` fits each of N data sets on one grid with the algorithm of
:func:`gir.fit.levmar.levmar` (the same scaling, damping, bounds, back-off,
``ftol``/``xtol``/``gtol`` and ``max_nfev`` rules) and returns the stacked
results (:class:`CompiledFits`): parameters, covariances scaled by the reduced
chi-square as :func:`gir.fit.result.make_result` does, costs, counts and
levmar's status codes.

- Numba targets: the driver :func:`.kernel.fit_chunk` (compiled once per
  machine) fits each chunk of spectra, each fit to the end in compiled code
  without the GIL; the model is a generated, cached callback
  (:mod:`.numba_driver`; seconds to compile per model and grid). Chunks run
  in a thread pool.
- JAX targets (:mod:`.jax_solver`): a ``jax.vmap`` of a
  ``jax.lax.while_loop`` per chunk (the GPU path), compiled by XLA once per
  process, model and chunk size.

Supported (:func:`unsupported` says why not otherwise): an executable of a
Numba or JAX target with one float64 output and float64 inputs, method
``levmar`` without variable projection or scipy options, any ``fixed``,
``bounds``, ``window``, ``x_scale``, weights (one array for all or one per
data set) and starts (one or one per data set). Non-finite data points are
left out (weight 0; ``ndata`` counts the others). Status codes beyond
levmar's (:data:`MESSAGES`): -2 where the start residual is not finite or the
model is undefined at the start, -3 where the Jacobian is not finite (a
single fit raises an InputError for both).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import numpy as np

from gir.errors import InputError, warn
from gir.fit.dataset import Dataset, PreparedDataset
from gir.fit.levmar import MESSAGES as LEVMAR_MESSAGES
from gir.fit.levmar import _per_parameter
from gir.fit.problem import build_problem
from gir.fit.result import FitResult
from gir.fit.solver import solver_options
from gir.runtime.executable import on_axes

#: Targets whose batches run in compiled code.
NUMBA_TARGETS = ("numba", "numba-parallel")
JAX_TARGETS = ("jax", "jax-cpu", "jax-gpu")
TARGETS = NUMBA_TARGETS + JAX_TARGETS
#: The start of the damping: levmar's default (the tests compare every fit with levmar's).
START_DAMPING = 0.3
#: Data sets from which gir.fit.batch fits on a JAX target in compiled code by default (XLA compiles the
#: solver's loop in each process, some 20 s on a CPU: worth it for maps, not for a few spectra).
JAX_MIN_BATCH = 1000
#: Spectra per compiled call (a progress bar advances per chunk).
CHUNK = 256
#: Spectra of the first call of the Numba driver, alone in the calling thread while it compiles.
FIRST_CHUNK = 8
#: The status codes of a compiled fit and their messages (levmar's, and those a single fit raises for).
MESSAGES = {
    **LEVMAR_MESSAGES,
    -1: "no step reduces the cost (the damping exceeds 1e300)",
    -2: "the residual at the start point is not finite",
    -3: "the Jacobian is not finite",
}
_SUPPORTED_KWS = {"bounds", "method", "window", "window_after", "fixed", "jacobian", "ftol", "xtol", "gtol",
                  "max_nfev", "x_scale", "varpro", "options"}  # fmt: skip


@attrs.define(eq=False)
class CompiledFits:
    """The stacked results of :func:`fit_spectra`, one row per data set (columns: ``param_names``)."""

    param_names: tuple[str, ...]
    x: np.ndarray  # (N, P)
    init: np.ndarray  # (N, P): the starts (clipped into the bounds)
    bounds: tuple[np.ndarray, np.ndarray]
    covar: np.ndarray  # (N, P, P), scaled by the reduced chi-square
    cost: np.ndarray  # (N,)
    ndata: np.ndarray  # (N,) fitted points
    nfev: np.ndarray
    njev: np.ndarray
    status: np.ndarray  # levmar's codes, and those of MESSAGES
    deficient: np.ndarray  # (N,) bool: rank-deficient Jacobian at the solution
    weighted: bool
    wall_time: float  # the whole run
    first_chunk_time: float  # the first chunk, run alone (with compiling or loading the driver)
    threads: int

    @property
    def stderr(self) -> np.ndarray:
        return np.sqrt(np.abs(np.diagonal(self.covar, axis1=1, axis2=2)))

    @property
    def chisqr(self) -> np.ndarray:
        return 2.0 * self.cost

    @property
    def redchi(self) -> np.ndarray:
        dof = self.ndata - len(self.param_names)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(dof > 0, self.chisqr / np.maximum(dof, 1), np.nan)

    @property
    def success(self) -> np.ndarray:
        return self.status > 0

    def message(self, i: int) -> str:
        return MESSAGES[int(self.status[i])]

    def levmar_status(self, i: int) -> int:
        """The status a single levmar fit reports (0 where the damping ran away)."""
        s = int(self.status[i])
        return 0 if s == -1 else s

    def summary(self, i: int) -> FitResult:
        """Fit ``i`` as a FitResult without its residual and grids: statistics, uncertainties and
        diagnostics."""
        return FitResult(
            param_names=self.param_names,
            x=self.x[i],
            init=self.init[i],
            bounds=self.bounds,
            stderr=self.stderr[i],
            covar=self.covar[i],
            residual=np.empty(0),
            cost=float(self.cost[i]),
            chisqr=float(self.chisqr[i]),
            redchi=float(self.redchi[i]),
            ndata=int(self.ndata[i]),
            nfev=int(self.nfev[i]),
            njev=int(self.njev[i]),
            success=bool(self.success[i]),
            message=self.message(i),
            method="levmar",
            wall_time=self.wall_time / len(self.x),
            status=self.levmar_status(i),
            covar_deficient=bool(self.deficient[i]),
            weighted=self.weighted,
        )


def unsupported(exe: Any, kws: Mapping[str, Any]) -> str | None:
    """Why the batch of ``exe`` with least_squares keywords ``kws`` cannot run compiled (None if it can)."""
    if exe.target not in TARGETS:
        return f"target {exe.target!r}"
    extra = sorted(set(kws) - _SUPPORTED_KWS)
    if extra:
        return f"option {extra[0]!r}"
    if kws.get("method", "levmar") != "levmar":
        return f"method {kws['method']!r}"
    if kws.get("varpro", False) is not False:
        return "varpro"
    if kws.get("options"):
        return "options"
    if exe.binding is not None and exe.binding.checks_expressions:
        return "kernel widths given as expressions"
    if len(exe.graph.outputs) != 1:
        return "several outputs"
    if exe.graph.outputs[0].type.dtype != "f64":
        return f"a {exe.graph.outputs[0].type.dtype} output"
    odd = [v.name for v in exe.graph.inputs if v.type.dtype != "f64"]
    if odd:
        return f"the {odd[0]!r} input is not float64"
    return None


class SpectraProblem:
    """N data sets on one grid, as the compiled solvers take them: flat weighted data, weights,
    starts and bounds of the free parameters, the evaluation and its derivative executable."""

    def __init__(
        self,
        exe: Any,
        datas: Sequence[np.ndarray],
        thetas: Sequence[Any],
        weights: Sequence[Any],
        arrays: Mapping[str, Any],
        kws: Mapping[str, Any],
    ):
        first = Dataset(exe, datas[0], arrays=arrays, theta0=thetas[0], bounds=kws.get("bounds"),
                        window=kws.get("window"), window_after=kws.get("window_after"))  # fmt: skip
        self.prepared = PreparedDataset(first)
        self.problem = build_problem([self.prepared], fixed=kws.get("fixed"))
        if not self.problem.nfree:
            raise InputError("a compiled batch needs at least one free parameter")
        self.ev = self.prepared.ev
        self.exe = first.exe
        li, gi = self.problem.maps[0]
        self.free = np.asarray(li[np.argsort(gi)], dtype=np.int64)  # theta positions of the free vector
        self.base = self.problem.base[0]
        self.names = self.problem.names
        self.lo, self.hi = self.problem.bounds
        self.x0 = self._starts(thetas)
        self._set_data(datas, weights)
        self.options = self._options(kws)
        kernels = set(() if self.exe.binding is None else self.exe.binding.positive)
        self.positive = np.array([n in kernels for n in self.names], dtype=np.bool_)

    def _set_data(self, datas: Sequence[np.ndarray], weights: Sequence[Any]) -> None:
        """The weighted data (N, m) and weights (1 or N, m), non-finite points weighted 0, and the
        number of points each fit counts (``ndata``)."""
        if self.windowed:
            data = np.stack([self.ev.cut(d, "data").ravel() for d in datas])
        else:
            data = np.asarray(datas, dtype=np.float64).reshape(len(datas), -1)
        w = self._weights(weights)
        finite = np.isfinite(data) & (np.isfinite(w) if w is not None else True)
        self.ndata = finite.sum(axis=1)
        if np.any(self.ndata == 0):
            raise InputError(f"data set {int(np.argmax(self.ndata == 0))} has no finite point in the window")
        self.weighted = w is not None
        if w is None:
            w = np.ones((1, data.shape[1]))
        if not finite.all():
            w = np.where(finite, np.broadcast_to(w, data.shape), 0.0)
        self.weights = np.ascontiguousarray(w)
        with np.errstate(invalid="ignore"):
            self.wdata = np.ascontiguousarray(np.where(finite, self.weights * data, 0.0))

    @property
    def windowed(self) -> bool:
        return any(k is not None for k in self.ev.index)

    def _starts(self, thetas: list) -> np.ndarray:
        """The free parameters' starts, one row per data set, clipped into the bounds (with a warning)."""
        li, gi = self.problem.maps[0]
        rows = []
        for t in thetas:
            if t is None or isinstance(t, Mapping):
                rows.append(self.problem.x0)
                continue
            full = self.base.copy()
            full[li] = np.asarray(t, dtype=np.float64).reshape(-1)[li]
            x = np.empty(len(gi))
            x[gi] = full[li]
            rows.append(x)
        x0 = np.array(rows, dtype=np.float64)
        outside = (x0 < self.lo) | (x0 > self.hi)
        if outside.any():
            names = [n for n, o in zip(self.names, outside.any(axis=0), strict=True) if o]
            warn(f"start values outside their bounds are clipped: {names}")
            x0 = np.clip(x0, self.lo, self.hi)
        return x0

    def _weights(self, weights: Sequence[Any]) -> np.ndarray | None:
        """One row of weights for all data sets, or one per data set (None: unweighted)."""
        if weights[0] is None:
            return None
        if all(w is weights[0] for w in weights):
            return self.ev.cut(weights[0], "weights").reshape(1, -1)
        return np.stack([self.ev.cut(w, "weights").ravel() for w in weights])

    def _options(self, kws: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """levmar's options as the kernel takes them: (ftol, xtol, gtol, damping, max_nfev, fixed scale)
        and the x_scale vector."""
        o = solver_options(kws.get("ftol"), kws.get("xtol"), kws.get("gtol"), kws.get("max_nfev"),
                           kws.get("x_scale"))  # fmt: skip
        p = len(self.names)
        max_nfev = 100 * p if o.get("max_nfev") is None else int(o["max_nfev"])
        fixed = not (isinstance(o["x_scale"], str) and o["x_scale"] == "jac")
        scale = np.ones(p)
        if fixed:
            scale = np.array(_per_parameter(o["x_scale"], p, "x_scale"))
            if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
                raise InputError("x_scale must be 'jac' or positive finite numbers")
        opts = np.array(
            [o["ftol"], o["xtol"], o["gtol"], START_DAMPING, max_nfev, float(fixed)], dtype=np.float64
        )
        return opts, scale

    def index_maps(self, fwd: Any, sizes: Mapping[str, int]) -> tuple[tuple[str, ...], list[np.ndarray]]:
        """For each kernel output of ``fwd``: how it reaches the fitted points (``"direct"``: its flat
        values are them, ``"scalar"``: one value for all, ``"gather"``: through an index map) and the
        flat position in it of each fitted point."""
        from gir.fit.compiled_lm.numba_driver import output_axes

        ev = self.ev
        kinds, maps = [], []
        for axes in output_axes(fwd):
            missing = [a for a in axes if a not in ev.grid_axes]
            if missing:
                raise InputError(f"a compiled batch needs outputs over the data's grid; axis {missing[0]!r}")
            shape = tuple(sizes[a] for a in axes)
            flat = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
            idx = np.ascontiguousarray(on_axes(flat, axes, ev.grid_axes, ev.eval_shape)).ravel()
            maps.append(idx if ev.select is None else np.ascontiguousarray(idx[ev.select]))
            direct = axes == tuple(ev.grid_axes) and ev.select is None
            kinds.append("scalar" if not axes else "direct" if direct else "gather")
        return tuple(kinds), maps


def fit_spectra(
    sp: SpectraProblem,
    threads: int,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> CompiledFits:
    """Fit every data set of ``sp`` in compiled code, ``chunk`` spectra per call of the driver, the
    calls on ``threads`` threads (the first alone: it compiles; JAX: one call at a time, XLA spreads
    each over the device); ``progress(k)`` is called after each chunk with its size."""
    if sp.exe.target in JAX_TARGETS:
        return _fit_jax(sp, progress, chunk)
    from gir.fit.compiled_lm import codes
    from gir.fit.compiled_lm.kernel import fit_chunk
    from gir.fit.compiled_lm.numba_driver import callback, fixed_inputs

    wrt = tuple(sp.ev.param_names[i] for i in sp.free)
    fwd = sp.exe.derivative(wrt)
    fixed, sizes = fixed_inputs(fwd, sp.base, sp.ev.inputs)
    kinds, maps = sp.index_maps(fwd, sizes)
    index = np.concatenate(
        [*(mp for mp, k in zip(maps, kinds, strict=True) if k == "gather"), np.zeros(1, np.int64)]
    )
    evaluate = callback(fwd, kinds, sizes, sp.wdata.shape[1])
    n, p = sp.x0.shape
    x = np.empty((n, p))
    cov = np.empty((n, p, p))
    floats = np.empty((n, codes.N_OUT_FLOATS))
    ints = np.empty((n, codes.N_OUT_INTS), np.int64)
    opts, scale = sp.options
    ndata = sp.ndata.astype(np.int64)

    def run(rows: slice) -> int:
        weights = sp.weights[rows] if sp.weights.shape[0] > 1 else sp.weights
        fit_chunk(evaluate, fixed, index, sp.wdata[rows], weights, sp.weighted, sp.x0[rows], sp.lo, sp.hi,
                    sp.base, sp.free, sp.positive, opts, scale, ndata[rows], x[rows], cov[rows], floats[rows],
                    ints[rows])  # fmt: skip
        return rows.stop - rows.start

    first = min(n, FIRST_CHUNK)
    chunks = [slice(0, first)] + [slice(s, min(n, s + chunk)) for s in range(first, n, chunk)]
    t0 = time.perf_counter()
    run(chunks[0])  # compiles (or loads from the disk cache) in this thread, on a few spectra
    compile_time = time.perf_counter() - t0
    if progress is not None:
        progress(chunks[0].stop)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done in pool.map(run, chunks[1:]):
            if progress is not None:
                progress(done)
    counts = (ints[:, codes.OUT_NFEV], ints[:, codes.OUT_NJEV], ints[:, codes.OUT_STATUS])
    return _stacked(sp, x, cov, floats[:, codes.OUT_COST], *counts, ints[:, codes.OUT_DEFICIENT],
                    time.perf_counter() - t0, compile_time, threads)  # fmt: skip


def _stacked(sp: SpectraProblem, x, cov, cost, nfev, njev, status, deficient, wall: float, first: float,
             threads: int) -> CompiledFits:  # fmt: skip
    """The solvers' per-spectrum outputs as :class:`CompiledFits`."""
    return CompiledFits(
        param_names=sp.names,
        x=x,
        init=sp.x0,
        bounds=(sp.lo.copy(), sp.hi.copy()),
        covar=cov,
        cost=cost,
        ndata=sp.ndata,
        nfev=np.asarray(nfev, np.int64),
        njev=np.asarray(njev, np.int64),
        status=np.asarray(status, np.int64),
        deficient=np.asarray(deficient).astype(bool),
        weighted=sp.weighted,
        wall_time=wall,
        first_chunk_time=first,
        threads=threads,
    )


def _fit_jax(sp: SpectraProblem, progress: Callable[[int], None] | None, chunk: int) -> CompiledFits:
    """:func:`fit_spectra` on a JAX target: the vmapped while loop of :mod:`.jax_solver` per chunk (the
    last padded by repeating its last row, so one shape compiles)."""
    import jax.numpy as jnp

    from gir.codegen.jax_backend import x64
    from gir.fit.compiled_lm import jax_solver

    n, p = sp.x0.shape
    per_spectrum = sp.weights.shape[0] > 1
    opts, scale = sp.options
    ev = sp.ev
    fwd = sp.exe.derivative(tuple(ev.param_names[i] for i in sp.free))
    parts: list[tuple] = []
    t0 = time.perf_counter()
    first = 0.0
    with x64():
        lay = jax_solver.layout(fwd, tuple(ev.grid_axes), ev.eval_shape, ev.select)
        run = jax_solver.solver(fwd, lay, p, per_spectrum)
        size = min(chunk, n)
        shared = [jnp.asarray(v) for v in (sp.lo, sp.hi, sp.positive, opts, scale)]
        consts = tuple(jnp.asarray(a) for a in jax_solver.fixed_inputs(fwd, sp.base, ev.inputs))
        select = jnp.asarray(ev.select if ev.select is not None else np.zeros(1, np.int64))
        model = (jnp.asarray(sp.base), jnp.asarray(sp.free), consts, select)
        for start in range(0, n, size):
            idx = np.minimum(np.arange(start, start + size), n - 1)
            weights = sp.weights[idx] if per_spectrum else sp.weights[0]
            out = run(sp.wdata[idx], weights, sp.x0[idx], *shared, sp.ndata[idx], *model)
            count = min(n, start + size) - start
            parts.append(tuple(np.asarray(o)[:count] for o in out))
            if not first:
                first = time.perf_counter() - t0
            if progress is not None:
                progress(count)
    outputs = (np.concatenate(c) for c in zip(*parts, strict=True))  # x, cov, cost, nfev, ..., deficient
    return _stacked(sp, *outputs, time.perf_counter() - t0, first, 1)
