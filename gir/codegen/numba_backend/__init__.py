"""The Numba target: fused loop nests, compiled with ``numba.njit`` and cached on disk.

Pipeline: calls are inlined (:mod:`.inline`), the graph is cut into scalar
blocks, fused loop nests and special loops (:mod:`.loops`: every value is
computed at the loop level where it varies, only values other nests or the
caller need get arrays, and a cumulative sum along the innermost axis runs
inside its nest), the stages are written as a readable Python module
(:mod:`.kernel`, per-op expressions from :mod:`.ops`, one line per IR node
with the node as a comment), and the module is written to the cache folder
and imported (:mod:`.cache`) so that Numba's own cache finds the machine
code again in a new process. ``exe.source`` is that module.

Options: ``parallel`` (``prange`` over the outer axis of each nest; the
``numba-parallel`` target sets it; each call runs on :func:`threads_for` threads,
from its grid size and the CPUs the process may use, and a grid too small to
share runs the serial kernel, with no parallel launch) and ``fast_exp`` (default True: exp is
:func:`.fastexp.fast_exp`, a branch-free exp LLVM can vectorize, within 1 ulp
of NumPy's; False uses ``math.exp``, the scalar libm call).

Layout contract (as every backend): ``call(args)`` takes the graph inputs in
order, scalars as numbers or 0-d arrays and arrays in the full-rank layout
(one dimension per graph axis, size 1 where the value does not vary), and
returns a tuple of outputs in that layout (0-d arrays for scalars).
``batch(args)`` takes the scalar inputs as length-B vectors and returns
outputs with a leading B dimension (scalars as (B, 1, ..., 1)); it runs a
``prange`` over B, each iteration the serial kernel on its own output slice
(in both targets: the batch is where the parallelism pays for small models).
``caller()`` wraps ``model`` in an njit function for users' Numba code
(:attr:`gir.Executable.numba_function`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np

from gir.codegen import backend as shared
from gir.codegen.backend import unsupported_ops
from gir.codegen.numba_backend.cache import load_module
from gir.codegen.numba_backend.inline import inline_calls
from gir.codegen.numba_backend.kernel import KernelWriter
from gir.codegen.numba_backend.loops import schedule
from gir.codegen.numba_backend.ops import supported
from gir.errors import GirError
from gir.ir.graph import Graph
from gir.ir.types import Type

_NP = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "bool": np.bool_}
_SCALAR = {"f64": float, "i64": int, "bool": bool, "f32": np.float32}
OPTIONS = {"parallel": False, "fast_exp": True}

#: Grid points one thread of the parallel target gets at least: a parallel launch costs about
#: 15 us, the time of some 10^4 points of an exp-bound model (docs/performance.md, contention).
POINTS_PER_THREAD = 1 << 15


def threads_for(points: int) -> int:
    """Threads for one evaluation over ``points`` grid points in the parallel target.

    One per :data:`POINTS_PER_THREAD` points, at most the CPUs this process may
    use (:func:`gir.codegen.backend.usable_cpus`) and Numba's thread count.
    """
    n = points // POINTS_PER_THREAD
    if n < 2:
        return 1
    return max(1, min(n, shared.usable_cpus(), numba.config.NUMBA_NUM_THREADS))


def unsupported(graph: Graph) -> list[str]:
    """Ops of ``graph`` (and of the graphs it calls) this backend has no emitter for."""
    return unsupported_ops(graph, supported)


def generate(graph: Graph, *, parallel: bool = False, fast_exp: bool = True) -> str:
    """The source of the Numba module for ``graph``."""
    flat = inline_calls(graph)
    header = (
        f'"""gir: Numba kernels for graph @{graph.name} (generated; edit the model, not this file).\n\n'
        f"structural hash {graph.structural_hash[:16]}, parallel={parallel}, fast_exp={fast_exp}\n"
        '"""'
    )
    writer = KernelWriter(schedule(flat), parallel=parallel, fast_exp=fast_exp, header=header)
    return writer.module()


def scratch_types(graph: Graph) -> list[Type]:
    """Types of the scratch arrays ``model`` takes, in its order (as :class:`KernelWriter` names them)."""
    sched = schedule(inline_calls(graph))
    outputs = set(sched.graph.outputs)
    return [v.type for n in sched.graph.nodes for v in n.outputs if v in sched.arrays and v not in outputs]


class Compiled:
    """A compiled Numba model; see the module docstring for the calling convention.

    Scratch arrays are kept per thread and per grid size, so a fit's repeated
    calls reuse them (a fresh large array costs a page fault per page).
    """

    releases_gil = True  # every function is compiled with nogil=True
    writes_into = True  # call_into writes the outputs in place

    def __init__(self, graph: Graph, source: str, parallel: bool = False):
        self.source = source
        self.parallel = parallel
        self._name = graph.name
        self._target = "numba-parallel" if parallel else "numba"
        self._called: set[str] = set()  # kernels called once (compiled or loaded from the disk cache)
        self._module = load_module(source)
        self._scratch = scratch_types(graph)
        self._local = threading.local()
        self._axis_of = {
            a: next(((i, v.type.axes.index(a)) for i, v in enumerate(graph.inputs) if a in v.type.axes), None)
            for a in graph.axes
        }
        ndim = len(graph.axes)
        self._convert = [_converter(v.type.dtype, v.type.axes, graph.axes) for v in graph.inputs]
        self._batch_convert = [
            _converter(v.type.dtype, v.type.axes, graph.axes) if v.type.axes else _vector(v.type.dtype)
            for v in graph.inputs
        ]
        self._scalar_inputs = [i for i, v in enumerate(graph.inputs) if not v.type.axes]
        outputs = inline_calls(graph).outputs  # as the kernels return them: equal values once
        unique = list(dict.fromkeys(outputs))
        self._out_index = [unique.index(v) for v in outputs]
        self._out_types = [v.type for v in unique]
        positions = {v: tuple(graph.axes.index(a) for a in v.type.axes) for v in unique}
        self._layout = [_layout(positions[v], ndim) for v in outputs]
        self._caller: Any = None

    def _sizes(self, inputs: list[Any]) -> dict[str, int]:
        return {a: 1 if at is None else np.shape(inputs[at[0]])[at[1]] for a, at in self._axis_of.items()}

    def _scratch_for(self, inputs: list[Any]) -> list[np.ndarray]:
        if not self._scratch:
            return []
        sizes = self._sizes(inputs)
        key = tuple(sizes.values())
        cached = getattr(self._local, "scratch", None)
        if cached is None or cached[0] != key:
            arrays = [np.empty(tuple(sizes[a] for a in t.axes), _NP[t.dtype]) for t in self._scratch]
            cached = self._local.scratch = (key, arrays)
        return cached[1]

    def _threads(self, inputs: list[Any]) -> int:
        """Threads for one evaluation (1 in the serial target)."""
        return threads_for(math.prod(self._sizes(inputs).values())) if self.parallel else 1

    def _run(self, name: str, threads: int, *args: Any) -> Any:
        """Call kernel ``name`` on ``threads`` threads; log its first call if compiling made it slow."""
        fn = getattr(self._module, name)
        previous = numba.get_num_threads() if threads > 1 else 0
        if previous:
            numba.set_num_threads(threads)  # for parallel regions this thread launches
        try:
            if name in self._called:
                return fn(*args)
            start = time.perf_counter()
            out = fn(*args)
            self._called.add(name)
            shared.log_compile(self._name, self._target, time.perf_counter() - start, f"Numba kernel {name}")
            return out
        finally:
            if previous:
                numba.set_num_threads(previous)

    def call(self, args: Sequence[Any]) -> tuple:
        inputs = [c(a) for c, a in zip(self._convert, args, strict=True)]
        threads = self._threads(inputs)
        name = "model_serial" if self.parallel and threads == 1 else "model"
        outs = self._run(name, threads, *inputs, *self._scratch_for(inputs))
        return tuple(f(outs[i]) for f, i in zip(self._layout, self._out_index))

    def call_into(self, args: Sequence[Any], outs: Sequence[np.ndarray]) -> None:
        """Evaluate into ``outs``, one C-contiguous array per output shaped by its axes (scalars (1,))."""
        inputs = [c(a) for c, a in zip(self._convert, args, strict=True)]
        first = {i: k for k, i in reversed(list(enumerate(self._out_index)))}
        unique = [outs[first[i]] for i in range(len(first))]
        threads = self._threads(inputs)
        name = "model_into_serial" if self.parallel and threads == 1 else "model_into"
        self._run(name, threads, *inputs, *unique, *self._scratch_for(inputs))
        for k, i in enumerate(self._out_index):
            if first[i] != k:
                outs[k][...] = outs[first[i]]

    def caller(self) -> Any:
        """The kernel as an njit function for Numba code: ``f(theta, *arrays)``.

        ``theta`` holds the scalar inputs in order (a float64 vector); ``arrays`` are
        the array inputs in order, each C-contiguous over its own axes. Returns the
        output over its own axes (a tuple for several; a scalar as a 1-element array).
        Scratch arrays are allocated per call. Compiled on first use.
        """
        if self._caller is None:
            source = caller_source(len(self._convert), self._scalar_inputs, self._axis_of, self._scratch,
                                   self._out_index)  # fmt: skip
            namespace = {"model": self._module.model, "np": np}
            exec(compile(source, f"<gir caller @{self._name}>", "exec"), namespace)
            self._caller = numba.njit(nogil=True)(namespace["call"])
        return self._caller

    def batch(self, args: Sequence[Any]) -> tuple:
        conv = [c(a) for c, a in zip(self._batch_convert, args, strict=True)]
        n = len(conv[self._scalar_inputs[0]]) if self._scalar_inputs else 1
        sizes = self._sizes(conv)
        shapes = [tuple(sizes[a] for a in t.axes) or (1,) for t in self._out_types]
        outs = [np.empty((n, *shape), _NP[t.dtype]) for shape, t in zip(shapes, self._out_types, strict=True)]
        threads = max(1, min(n, numba.get_num_threads(), shared.usable_cpus()))
        self._run("model_batch", 0, n, threads, *conv, *outs)
        return tuple(f(outs[i], n) for f, i in zip(self._layout, self._out_index))


def caller_source(
    n_inputs: int,
    scalars: Sequence[int],
    axis_of: dict[str, tuple[int, int] | None],
    scratch: Sequence[Type],
    out_index: Sequence[int],
) -> str:
    """Source of ``call(theta, a0, a1, ...)``: the ``model`` kernel with the scalar inputs taken from
    ``theta`` and fresh scratch arrays (see :meth:`Compiled.caller`)."""
    arrays = [i for i in range(n_inputs) if i not in scalars]
    names = {i: f"a{k}" for k, i in enumerate(arrays)} | {i: f"theta[{k}]" for k, i in enumerate(scalars)}
    size = {a: "1" if at is None else f"{names[at[0]]}.shape[{at[1]}]" for a, at in axis_of.items()}
    buffers = [
        f"np.empty(({''.join(size[a] + ', ' for a in t.axes)}), np.{_NP[t.dtype].__name__})" for t in scratch
    ]
    args = ", ".join([names[i] for i in range(n_inputs)] + buffers)
    result = (
        f"outs[{out_index[0]}]" if len(out_index) == 1 else f"({''.join(f'outs[{i}], ' for i in out_index)})"
    )
    return "\n".join(
        [
            f"def call({', '.join(['theta'] + [names[i] for i in arrays])}):",
            f"    outs = model({args})",
            f"    return {result}",
            "",
        ]
    )


def _converter(dtype: str, axes: tuple[str, ...], order: tuple[str, ...]) -> Callable[[Any], Any]:
    """Full-rank layout -> the minimal-rank contiguous array (or number) the kernel takes."""
    if not axes:  # a number, 0-d array or 1-element array (the Executable passes named ones so)
        to = _SCALAR[dtype]
        return lambda a: to(a) if isinstance(a, float) else to(np.asarray(a).item())
    np_dtype = _NP[dtype]
    positions = tuple(order.index(a) for a in axes)

    def convert(a):
        a = np.asarray(a)
        shape = tuple(a.shape[p] for p in positions)
        return np.ascontiguousarray(a.reshape(shape), dtype=np_dtype)

    return convert


def _vector(dtype: str) -> Callable[[Any], np.ndarray]:
    np_dtype = _NP[dtype]
    return lambda a: np.ascontiguousarray(np.asarray(a).reshape(-1), dtype=np_dtype)


def _layout(positions: tuple[int, ...], ndim: int):
    """Minimal-rank kernel output -> full-rank layout (with a leading batch size if given)."""

    def reshape(out: np.ndarray, batch: int | None = None) -> np.ndarray:
        lead = () if batch is None else (batch,)
        if not positions:  # a scalar: 0-d, or (B, 1, ..., 1) in a batch
            return out.reshape(lead + (1,) * (ndim if lead else 0))
        core = out.shape[len(lead) :]
        shape = [1] * ndim
        for p, n in zip(positions, core):
            shape[p] = n
        return out.reshape(lead + tuple(shape))

    return reshape


def build(graph: Graph, filename: str, **options: Any) -> Compiled:
    """Generate, write, import (and on first call compile or load from cache) the kernels for ``graph``."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise GirError(f"the numba target has no option {unknown[0]!r}; its options are {sorted(OPTIONS)}")
    opts = {**OPTIONS, **options}
    parallel = bool(opts["parallel"])
    return Compiled(graph, generate(graph, parallel=parallel, fast_exp=bool(opts["fast_exp"])), parallel)
