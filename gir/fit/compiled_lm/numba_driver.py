"""The Numba evaluation callback of the batched fit: one generated, cached module per model and grid.

The LM driver (:func:`gir.fit.compiled_lm.kernel.fit_chunk`) is compiled
once per machine and takes the model as a C callback (a Numba ``cfunc``
passed as a first-class function): ``evaluate(theta, fixed, index, y,
jac)`` over raw pointers writes the model at the full parameter vector
``theta`` into ``y`` (m,) and its derivative columns into ``jac`` (P, m,
row-major), from the fixed inputs packed in ``fixed`` and the index maps in
``index``. The generated module imports the derivative executable's serial
``model_into`` kernel and writes every output over the data's grid straight
into ``y`` or a row of ``jac``; a constant column is filled, and an output
cut after evaluation (``window_after``) or over other axes is gathered
through its index map. Grid sizes are constants of the source. The module is
written to gir's Numba cache folder like the model kernels
(:func:`gir.codegen.numba_backend.cache.load_module`), so a new process loads
the callback's machine code from Numba's cache. (A driver generated per model
instead, with the iteration linked in, took 15 to 60 s to compile on a busy
2-core machine; the callback takes seconds.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from gir.runtime.executable import Executable

_NP_NAMES = {"f64": "np.float64", "f32": "np.float32", "i64": "np.int64", "bool": "np.bool_"}


def _shape(axes: tuple[str, ...], sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(sizes[a] for a in axes) or (1,)


def driver_source(fwd: Executable, kinds: tuple[str, ...], sizes: Mapping[str, int], m: int) -> str:
    """The source of the callback module for the forward-mode executable ``fwd`` (outputs: the model,
    then one derivative column per free parameter) at axis ``sizes``, for ``m`` fitted points.
    ``kinds`` says for each unique kernel output how its values reach the fitted points
    (``"direct"``, ``"scalar"`` or ``"gather"``; :meth:`SpectraProblem.index_maps`)."""
    art = fwd._artifact
    module = art._module
    entry = "model_into_serial" if hasattr(module, "model_into_serial") else "model_into"
    graph = fwd.graph
    params = {name: j for j, name in enumerate(fwd.param_names)}
    columns = art._out_index  # output k (0: the model, 1 + j: column j) -> its unique kernel output
    p = len(columns) - 1
    targets = ["y", *(f"jac[{j}]" for j in range(p))]  # where output k's values go
    body, inputs, offset = [], [], 0
    for i, v in enumerate(graph.inputs):
        if v.name in params:
            inputs.append(f"theta[{params[v.name]}]")
            continue
        shape = tuple(sizes[a] for a in v.type.axes)
        size = math.prod(shape)
        if not shape:
            inputs.append(f"fixed[{offset}]")
        else:
            view = f"fixed[{offset}:{offset + size}]"
            body.append(f"    a{i} = {view}" + (f".reshape({shape})" if len(shape) > 1 else ""))
            inputs.append(f"a{i}")
        offset += size
    buffers, fills, index = [], [], 0
    for u, (kind, t) in enumerate(zip(kinds, art._out_types, strict=True)):
        users = [k for k, c in enumerate(columns) if c == u]
        shape = _shape(t.axes, sizes)
        if kind == "direct":
            first = targets[users[0]]
            buffers.append(first if len(shape) < 2 else f"{first}.reshape({shape})")
            fills += [f"    {targets[k]}[:] = {first}" for k in users[1:]]
            continue
        body.append(f"    o{u} = np.empty({shape}, np.float64)")
        buffers.append(f"o{u}")
        if kind == "scalar":
            fills += [f"    {targets[k]}[:] = o{u}[0]" for k in users]
        else:
            body += [
                f"    f{u} = o{u}.reshape({math.prod(shape)})",
                f"    ix{u} = index[{index}:{index + m}]",
            ]
            fills += [f"    for i in range({m}):\n        {targets[k]}[i] = f{u}[ix{u}[i]]" for k in users]
            index += m
    scratch = [f"s{k}" for k in range(len(art._scratch))]
    body += [
        f"    {name} = np.empty({_shape(t.axes, sizes)}, {_NP_NAMES[t.dtype]})"
        for name, t in zip(scratch, art._scratch, strict=True)
    ]
    body.append(f"    _model({', '.join(inputs + buffers + scratch)})")
    header = [
        f'"""gir: the evaluation callback of the batched fit over @{graph.name} (generated; edit the model,',
        'not this file)."""',
        "import numpy as np",
        "from numba import carray, cfunc",
        "",
        "from gir.fit.compiled_lm.kernel import EVALUATE",
        f"from {module.__name__} import {entry} as _model",
        "",
        "",
        '@cfunc(EVALUATE, cache=True, nopython=True, error_model="numpy")',
        "def evaluate(theta_p, fixed_p, index_p, y_p, jac_p):",
        f'    """The model and its {p} derivative columns at theta, on {m} points."""',
        f"    theta = carray(theta_p, ({len(fwd.param_names)},))",
        f"    fixed = carray(fixed_p, ({max(1, offset)},))",
        f"    index = carray(index_p, ({max(1, index)},))",
        f"    y = carray(y_p, ({m},))",
        f"    jac = carray(jac_p, ({p}, {m}))",
    ]
    return "\n".join(header + body + fills) + "\n"


@functools.cache
def _load(source: str) -> ModuleType:
    from gir.codegen.numba_backend.cache import load_module

    return load_module(source)


def callback(fwd: Executable, kinds: tuple[str, ...], sizes: Mapping[str, int], m: int) -> Any:
    """The evaluation callback of ``fwd`` (a Numba cfunc; generated and imported once per process)."""
    return _load(driver_source(fwd, kinds, sizes, m)).evaluate


def fixed_inputs(
    fwd: Executable, theta: np.ndarray, inputs: dict[str, Any]
) -> tuple[np.ndarray, dict[str, int]]:
    """The non-parameter inputs of ``fwd``'s kernel (converted as its artifact converts them) packed
    into one float64 vector, in input order, and the axis sizes, for the graph inputs ``inputs``."""
    args, sizes = fwd._arguments(theta, inputs, batch=False)
    art = fwd._artifact
    params = set(fwd.param_names)
    parts = [
        np.asarray(convert(a), dtype=np.float64).ravel()
        for convert, a, v in zip(art._convert, args, fwd.graph.inputs, strict=True)
        if v.name not in params
    ]
    return np.concatenate([*parts, np.zeros(1)]), sizes


def output_axes(fwd: Executable) -> list[tuple[str, ...]]:
    """The axes of each unique kernel output of ``fwd``, in the kernel's order."""
    return [t.axes for t in fwd._artifact._out_types]
