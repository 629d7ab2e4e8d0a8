"""The executable: one callable over a compiled graph, with input checking."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gir.errors import InputError
from gir.ir.graph import Graph, Value

_NP_DTYPES = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "bool": np.bool_}


class Executable:
    """A compiled model: ``exe(**inputs)`` or ``exe(theta, **arrays)``.

    ``theta`` is a vector of the scalar parameters in :attr:`param_names`
    order; arrays are passed by name, each with one dimension per axis of its
    type. Results have one dimension per axis of their type (a scalar result
    is a float); several outputs come back as a tuple.
    """

    def __init__(self, graph: Graph, target: str, artifact: Any, options: Mapping[str, Any] | None = None):
        self.graph = graph
        self.target = target
        self.options = dict(options or {})
        self._artifact = artifact
        self.param_names: tuple[str, ...] = tuple(v.name for v in graph.params)
        self.array_names: tuple[str, ...] = tuple(v.name for v in graph.arrays)

    @property
    def source(self) -> str:
        """The generated source code."""
        return self._artifact.source

    def __repr__(self) -> str:
        return f"<Executable @{self.graph.name} target={self.target} params={list(self.param_names)}>"

    def __reduce__(self):
        return (_rebuild, (self.graph, self.target, self.options))

    # -- calling --------------------------------------------------------------

    def __call__(self, theta: Sequence[float] | np.ndarray | None = None, /, **inputs: Any):
        args, sizes = self._arguments(theta, inputs, batch=False)
        return self._results(self._artifact.call(args), sizes, None)

    def call_into(self, outs: Sequence[np.ndarray], theta: Any = None, /, **inputs: Any) -> None:
        """Evaluate into preallocated arrays: ``outs[i]`` has output i's shape (its axes' lengths).

        The Numba targets write into C-contiguous float arrays of the output's
        dtype directly (no copy, no allocation); otherwise the results are copied.
        """
        self._into(outs, *self._arguments(theta, inputs, batch=False))

    def _into(self, outs: Sequence[np.ndarray], args: list, sizes: dict[str, int]) -> None:
        if len(outs) != len(self.graph.outputs):
            raise InputError(f"call_into: {len(self.graph.outputs)} output arrays needed, got {len(outs)}")
        direct = []
        for v, out in zip(self.graph.outputs, outs, strict=True):
            shape, dtype = tuple(sizes[a] for a in v.type.axes), _NP_DTYPES[v.type.dtype]
            if not isinstance(out, np.ndarray) or out.shape != shape:
                raise InputError(f"call_into: output {v.name!r} needs an array of shape {shape}")
            if not out.flags.writeable or not np.can_cast(dtype, out.dtype, "same_kind"):
                raise InputError(
                    f"call_into: output {v.name!r} needs a writeable array taking {dtype.__name__}"
                )
            if out.dtype == dtype and out.flags.c_contiguous:
                direct.append(out.reshape(shape or (1,)))
        into = getattr(self._artifact, "call_into", None)
        if into is not None and len(direct) == len(outs):
            into(args, direct)
            return
        results = self._results(self._artifact.call(args), sizes, None)
        for out, value in zip(outs, results if isinstance(results, tuple) else (results,), strict=True):
            np.copyto(out, value)

    def batch(self, thetas: np.ndarray, /, **arrays: Any):
        """Evaluate many parameter vectors at once: ``thetas`` has shape (B, P).

        Each result gets a leading dimension of length B.
        """
        thetas = self._theta(thetas, batch=True)
        args, sizes = self._arguments(thetas, arrays, batch=True)
        return self._results(self._artifact.batch(args), sizes, thetas.shape[0])

    # -- derivatives ------------------------------------------------------------

    def _derivative(self, mode: str) -> Executable:
        """The executable of the forward (JVP) or reverse (VJP) graph, compiled once.

        Shared through the derivative cache by every executable of an equal graph, target and options.
        """
        mine = self.__dict__.setdefault("_derivatives", {})
        if mode not in mine:
            from gir.runtime.cache import DERIVATIVES

            key = (self.graph.structural_hash, self.target, repr(sorted(self.options.items())), mode)
            mine[mode] = DERIVATIVES.get(key, lambda: self._compile_derivative(mode))
        return mine[mode]

    def _compile_derivative(self, mode: str) -> Executable:
        from gir.passes import optimize
        from gir.passes.autodiff import jvp, vjp
        from gir.runtime.compile import compile_graph

        graph = (jvp if mode == "forward" else vjp)(self.graph)
        return compile_graph(optimize(graph, "O2"), self.target, self.options)

    def _mode(self, mode: str) -> str:
        """``auto``: reverse mode when every output is a scalar and there are more parameters than outputs."""
        if mode not in ("auto", "forward", "reverse"):
            raise InputError(f"mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
        if mode != "auto":
            return mode
        scalar = all(v.type.is_scalar for v in self.graph.outputs)
        return "reverse" if scalar and len(self.param_names) > len(self.graph.outputs) else "forward"

    def value_and_jacobian(self, theta=None, /, *, mode: str = "auto", **arrays: Any):
        """Values and Jacobians d output / d theta: each Jacobian has shape ``output.shape + (P,)``.

        ``mode`` is ``"forward"`` (one evaluation of value and all columns),
        ``"reverse"`` (one evaluation per output element) or ``"auto"``.
        """
        mode = self._mode(mode)
        if mode == "forward":
            values, jacs = self._forward_jacobian(theta, arrays)
        else:
            values, jacs = self._reverse_jacobian(theta, arrays)
        if len(values) == 1:
            return values[0], jacs[0]
        return tuple(values), tuple(jacs)

    def jacobian(self, theta=None, /, *, mode: str = "auto", **arrays: Any):
        """d output / d theta, of shape ``output.shape + (P,)`` (a tuple for several outputs)."""
        return self.value_and_jacobian(theta, mode=mode, **arrays)[1]

    def vjp(self, theta, cotangents, /, **arrays: Any) -> np.ndarray:
        """The gradient of sum(cotangent * output) with respect to theta (one reverse sweep).

        ``cotangents`` has one array per output (a single array for one output).
        """
        seeds = [cotangents] if len(self.graph.outputs) == 1 else list(cotangents)
        rev = self._derivative("reverse")
        names = [v.name for v in rev.graph.inputs[len(self.graph.inputs) :]]
        named = dict(arrays)
        if theta is not None:
            named.update(zip(self.param_names, self._theta(theta, batch=False), strict=True))
        outs = rev(**named, **dict(zip(names, seeds, strict=True)))
        outs = outs if isinstance(outs, tuple) else (outs,)
        return np.array(outs[len(self.graph.outputs) :], dtype=np.float64)

    def _forward_jacobian(self, theta, arrays):
        """One call of the forward-mode executable, written into a (P, *shape) block per output.

        Each Jacobian is that block with P moved last (a view): every column is
        contiguous, and the kernel writes it in place.
        """
        fwd = self._derivative("forward")
        args, sizes = fwd._arguments(theta, arrays, batch=False)
        n, p = len(self.graph.outputs), len(self.param_names)
        outputs = self.graph.outputs
        values = [np.empty(tuple(sizes[a] for a in v.type.axes), _NP_DTYPES[v.type.dtype]) for v in outputs]
        blocks = [np.empty((p, *np.shape(y))) for y in values]
        targets = values + [blocks[j][k, ...] for j in range(n) for k in range(p)]
        outs, spread = [], []
        for i, (w, target) in enumerate(zip(fwd.graph.outputs, targets, strict=True)):
            axes = outputs[i if i < n else (i - n) // p].type.axes
            if w.type.axes == axes:
                outs.append(target)
            else:  # a column constant along some axes: evaluated on its own, then broadcast
                outs.append(np.empty(tuple(sizes[a] for a in w.type.axes), _NP_DTYPES[w.type.dtype]))
                spread.append((outs[-1], w.type.axes, axes, target))
        fwd._into(outs, args, sizes)
        for out, axes, to, target in spread:
            target[...] = on_axes(out, axes, to, target.shape)
        values = [y if y.ndim else y.item() for y in values]
        return values, [np.moveaxis(block, 0, -1) for block in blocks]

    def _reverse_jacobian(self, theta, arrays):
        values = self(theta, **arrays)
        values = list(values) if isinstance(values, tuple) else [values]
        jacs = []
        for j, y in enumerate(values):
            jac = np.zeros((*np.shape(y), len(self.param_names)))
            for index in np.ndindex(np.shape(y)):
                seeds = [np.zeros(np.shape(v)) for v in values]
                seeds[j][index] = 1.0
                jac[index] = self.vjp(theta, seeds if len(values) > 1 else seeds[0], **arrays)
            jacs.append(jac)
        return values, jacs

    def _theta(self, theta: Any, batch: bool) -> np.ndarray:
        """``theta`` as float64: a vector of P real numbers, or (B, P) for a batch.

        A mapping gives the parameters by name (vectors of length B for a batch).
        Complex, non-numeric and ragged values raise an InputError naming the parameter.
        """
        names = self.param_names
        if isinstance(theta, Mapping):
            unknown = sorted(set(theta) - set(names))
            if unknown:
                raise InputError(f"theta: unknown parameter {unknown[0]!r}; parameters are {list(names)}")
            missing = [n for n in names if n not in theta]
            if missing:
                raise InputError(f"theta: missing parameter {missing[0]!r} (missing: {missing})")
            theta = [_real(theta[n], f"parameter {n!r}") for n in names]
            theta = np.stack(theta, axis=-1) if theta else np.zeros((0,))
        what = "thetas" if batch else "theta"
        try:
            arr = np.asarray(theta)
        except (ValueError, TypeError) as e:  # ragged nesting
            raise InputError(f"{what} must be an array of real numbers: {e}") from None
        want = (2, f"shape (B, {len(names)})") if batch else (1, f"a vector of {len(names)} parameters")
        if arr.ndim != want[0] or arr.shape[-1] != len(names):
            if batch:
                raise InputError(f"thetas must have {want[1]}, got {arr.shape}")
            raise InputError(f"theta must be {want[1]} {list(names)}, got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":  # each element as given, so the first bad one is named
            items = np.asarray(theta, dtype=object)
            for j, name in enumerate(names):
                _real(items[..., j], f"parameter {name!r}")
        return arr.astype(np.float64, copy=False)

    def _arguments(self, theta, inputs: dict[str, Any], batch: bool) -> tuple[list, dict[str, int]]:
        params: dict[str, Any] = {}
        if theta is not None:
            theta = self._theta(theta, batch)
            columns = theta.T if batch else theta[:, None]
            params = dict(zip(self.param_names, columns, strict=True))
            for name in inputs:
                if name in params:
                    raise InputError(f"parameter {name!r} is given both in theta and by name")
        given = {**params, **inputs}
        names = {v.name for v in self.graph.inputs}
        unknown = sorted(set(given) - names)
        if unknown:
            raise InputError(f"unknown input {unknown[0]!r}; inputs are {sorted(names)}")
        missing = [n for n in (v.name for v in self.graph.inputs) if n not in given]
        if missing:
            raise InputError(f"missing input {missing[0]!r} (missing: {missing})")
        sizes: dict[str, int] = {}
        args = [
            self._argument(v, given[v.name], sizes, from_theta=v.name in params) for v in self.graph.inputs
        ]
        if not batch:
            args = [a[0] if v.type.is_scalar else a for a, v in zip(args, self.graph.inputs, strict=True)]
        return args, sizes

    def _argument(self, v: Value, value: Any, sizes: dict[str, int], from_theta: bool) -> np.ndarray:
        dtype = _NP_DTYPES[v.type.dtype]
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:  # ragged nesting
            raise InputError(f"input {v.name!r} must be an array of {v.type.dtype}: {e}") from None
        if not np.can_cast(arr.dtype, dtype, "same_kind") or arr.dtype.kind not in "biuf":
            raise InputError(f"input {v.name!r} must be {v.type.dtype}, got dtype {arr.dtype}")
        arr = arr.astype(dtype, copy=False)
        if v.type.is_scalar:
            if not from_theta and arr.ndim != 0:
                raise InputError(f"parameter {v.name!r} must be a scalar, got shape {arr.shape}")
            bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
            if bad.any():
                raise InputError(f"parameter {v.name!r} is not finite: {arr[bad].ravel()[0]}")
            return arr.reshape(-1)
        if arr.ndim != len(v.type.axes):
            raise InputError(
                f"input {v.name!r} has axes {list(v.type.axes)} and needs {len(v.type.axes)} "
                f"dimension(s), got shape {arr.shape}"
            )
        for axis, n in zip(v.type.axes, arr.shape, strict=True):
            if sizes.setdefault(axis, n) != n:
                raise InputError(
                    f"input {v.name!r}: axis {axis} has length {n}, but another input has {sizes[axis]}"
                )
        return arr.reshape(self._layout(v.type.axes, sizes))

    def _layout(self, axes: tuple[str, ...], sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(sizes[a] if a in axes else 1 for a in self.graph.axes)

    def _results(self, outs: tuple, sizes: dict[str, int], batch: int | None):
        results = []
        for v, out in zip(self.graph.outputs, outs, strict=True):
            shape = tuple(sizes[a] for a in v.type.axes)
            out = np.asarray(out)
            if batch is None:
                out = out.reshape(shape) if shape else out.reshape(()).item()
            else:
                layout = (batch, *self._layout(v.type.axes, sizes))
                out = np.broadcast_to(out, layout).reshape((batch, *shape))
            results.append(out)
        return results[0] if len(results) == 1 else tuple(results)


def _real(value: Any, what: str) -> np.ndarray:
    """``value`` as an array of real numbers, or an InputError naming ``what`` and the first bad element."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise InputError(f"{what} must be a real number: {e}") from None
    if arr.dtype.kind in "biuf":
        return arr
    for x in arr.ravel().tolist():  # Python objects: the first that is not a real number is named
        if not isinstance(x, numbers.Real):
            kind = {complex: "complex", str: "a string"}.get(type(x), type(x).__name__)
            raise InputError(f"{what} must be a real number, got {x!r} ({kind})")
    return arr.astype(np.float64)


def on_axes(value: Any, axes: tuple[str, ...], to: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A result over ``axes`` (a subset of ``to``, in any order) broadcast to ``shape``, over ``to``."""
    value = np.asarray(value)
    order = [a for a in to if a in axes]
    if list(axes) != order:
        value = np.transpose(value, [axes.index(a) for a in order])
    value = np.reshape(value, [n if a in axes else 1 for a, n in zip(to, shape, strict=True)])
    return np.broadcast_to(value, shape)


def _rebuild(graph: Graph, target: str, options: dict[str, Any]) -> Executable:
    from gir.runtime.compile import compile_graph

    return compile_graph(graph, target, options)
