"""The executable: one callable over a compiled graph, with input checking; compiling a graph into one."""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gir.errors import InputError, TargetError
from gir.ir.graph import Graph, Value
from gir.ir.types import NUMPY_DTYPES
from gir.passes import optimize
from gir.passes.autodiff import jvp, vjp
from gir.runtime.binding import Binding
from gir.runtime.cache import ARTIFACTS, DERIVATIVES
from gir.runtime.memory import keep_freed_memory
from gir.runtime.target import resolve


class Executable:
    """A compiled model: ``exe(**inputs)`` or ``exe(theta, **arrays)``.

    ``theta`` is a vector of the scalar parameters in :attr:`param_names`
    order (or a mapping name -> value); arrays are passed by name, each with
    one dimension per axis of its type. Results have one dimension per axis of
    their type (a scalar result is a float); several outputs come back as a
    tuple.

    An executable compiled from a model (``gir.compile(model)``) owns the
    model's :class:`~gir.runtime.binding.Binding`: it then takes the model's
    axis arrays by name (``energy=E, time=T``), starts from :attr:`theta0`
    when ``theta`` is None, computes the inputs derived from the axes, checks
    parameter values, returns every result on the model's whole grid and
    offers :meth:`components`, :attr:`theta0` and :attr:`bounds`.

    Inside other programs: an executable of a JAX target given JAX tracers
    (under ``jax.jit``, ``jax.grad``, ``jax.vmap``) runs as :attr:`jax_function`,
    differentiated by gir's derivative graphs; one of a Numba target offers
    :attr:`numba_function` to Numba code (docs/interop.md).
    """

    def __init__(
        self,
        graph: Graph,
        target: str,
        artifact: Any,
        options: Mapping[str, Any] | None = None,
        binding: Binding | None = None,
        fixed: Mapping[str, float] | None = None,
    ):
        self.graph = graph
        self.target = target
        self.options = dict(options or {})
        self.binding = binding
        #: Parameters compiled in as constants (``gir.compile(..., fixed=...)``).
        self.fixed: dict[str, float] = dict(fixed or {})
        self._artifact = artifact
        self.param_names: tuple[str, ...] = tuple(v.name for v in graph.params)
        self.array_names: tuple[str, ...] = tuple(v.name for v in graph.arrays)
        # the model's values as compiled (read once: a call with theta=None starts from them)
        self._start = None if binding is None else binding.start(self.param_names)
        self._bounds = None if binding is None else binding.bounds(self.param_names)
        self._derivatives: dict[tuple, Executable] = {}

    @property
    def source(self) -> str:
        """The generated source code."""
        return self._artifact.source

    @property
    def releases_gil(self) -> bool:
        """Whether the compiled code runs without holding the GIL (calls in threads then overlap)."""
        return bool(self._artifact.releases_gil)

    @property
    def theta0(self) -> np.ndarray | None:
        """The model's start values in :attr:`param_names` order (None for a plain graph; a copy)."""
        return None if self._start is None else self._start.copy()

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The model's parameter bounds ``(lo, hi)`` in :attr:`param_names` order (None for a plain graph;
        copies)."""
        return None if self._bounds is None else (self._bounds[0].copy(), self._bounds[1].copy())

    @property
    def grid(self) -> dict[str, str]:
        """The axes results are given on: array name -> IR axis, in order (the model's axes, or the
        single output's axes named by the arrays that carry them)."""
        if self.binding is not None:
            return dict(self.binding.axes)
        out = self.graph.outputs[0].type.axes if len(self.graph.outputs) == 1 else ()
        named = {v.type.axes[0]: v.name for v in self.graph.arrays if len(v.type.axes) == 1}
        return {named.get(a, a): a for a in out}

    def __repr__(self) -> str:
        return f"<Executable @{self.graph.name} target={self.target} params={list(self.param_names)}>"

    def __reduce__(self):
        return (_rebuild, (self.graph, self.target, self.options, self.binding, self.fixed))

    def unbound(self) -> Executable:
        """This executable without its binding: the compiled graph over its own inputs (derived ones
        included), results on the output's own axes. For callers that prepare inputs once and call often."""
        if self.binding is None:
            return self
        plain = self.__dict__.get("_unbound")
        if plain is None:
            plain = self.__dict__["_unbound"] = Executable(
                self.graph, self.target, self._artifact, self.options, fixed=self.fixed
            )
        return plain

    # -- a model's inputs -----------------------------------------------------

    def graph_inputs(self, arrays: Mapping[str, Any]) -> dict[str, Any]:
        """``arrays`` with the inputs the graph derives from axes added (a model's; cached per axis)."""
        if self.binding is None:
            return dict(arrays)
        derived = self.binding.derived_inputs(arrays)
        return {**{k: v for k, v in derived.items() if k in self.array_names}, **arrays}

    def check(self, theta: Any) -> None:
        """Raise an InputError for parameter values the model is undefined at (a kernel width <= 0)."""
        if self.binding is not None:
            self.binding.check(self.param_names, np.asarray(theta))

    def _bind(self, theta: Any, inputs: Mapping[str, Any], batch: bool = False) -> tuple[Any, dict[str, Any]]:
        """Theta (the model's start values when None) checked, and the graph's inputs."""
        if self.binding is None:
            return theta, dict(inputs)
        theta = self.theta0 if theta is None else self._theta(theta, batch)
        self.check(theta)
        return theta, self.graph_inputs(inputs)

    def _on_grid(self, value: Any, axes: tuple[str, ...], sizes: dict[str, int], lead: int | None = None,
                 trail: int | None = None) -> Any:  # fmt: skip
        """A bound executable's result over ``axes`` broadcast to the model's grid (a copy when it
        does not cover it), with an optional leading batch and trailing parameter dimension."""
        if self.binding is None:
            return value
        grid = tuple(self.binding.axes.values())
        extra_in = (("#b",) if lead is not None else ()) + axes + (("#p",) if trail is not None else ())
        extra_to = (("#b",) if lead is not None else ()) + grid + (("#p",) if trail is not None else ())
        shape = ((lead,) if lead is not None else ()) + tuple(sizes[a] for a in grid)
        shape += (trail,) if trail is not None else ()
        value = np.asarray(value)
        if value.shape == shape and extra_in == extra_to:
            return value
        return np.array(on_axes(value, extra_in, extra_to, shape))

    def fixed_and_tied(self, theta: Any = None) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
        """The parameters held constant (name -> value) and, for a model, those given as expressions
        (name -> (text, value)) at ``theta`` (default: the start values)."""
        if self.binding is None:
            return dict(self.fixed), {}
        theta = self.theta0 if theta is None else self._theta(theta, batch=False)
        return self.binding.fixed_and_tied(self.param_names, theta)

    def components(self, theta: Any = None, /, **arrays: Any) -> dict[str, np.ndarray]:
        """Each component of a compiled model on its grid, by name (for plots and reports)."""
        if self.binding is None:
            raise InputError(f"@{self.graph.name} is a plain graph: components need an executable of a model")
        theta, inputs = self._bind(theta, arrays)
        sizes = self._arguments(theta, inputs, batch=False)[1]
        parts = self.binding.components(self, theta, inputs)
        return {n: self._on_grid(v, axes, sizes) for n, (v, axes) in parts.items()}

    # -- calling --------------------------------------------------------------

    def __call__(self, theta: Sequence[float] | np.ndarray | None = None, /, **inputs: Any):
        if _traced(theta, inputs):  # inside jax.jit, grad or vmap
            self._require_jax("a JAX tracer")
            return self.jax_function(theta, **inputs)
        theta, inputs = self._bind(theta, inputs)
        args, sizes = self._arguments(theta, inputs, batch=False)
        return self._grid_results(self._results(self._artifact.call(args), sizes, None), sizes)

    def _grid_results(self, results: Any, sizes: dict[str, int], lead: int | None = None) -> Any:
        if self.binding is None:
            return results
        many = isinstance(results, tuple)
        out = [
            self._on_grid(r, v.type.axes, sizes, lead)
            for r, v in zip(results if many else (results,), self.graph.outputs, strict=True)
        ]
        return tuple(out) if many else out[0]

    def call_into(self, outs: Sequence[np.ndarray], theta: Any = None, /, **inputs: Any) -> None:
        """Evaluate into preallocated arrays: ``outs[i]`` has output i's shape (its axes' lengths).

        The Numba targets write into C-contiguous float arrays of the output's
        dtype directly (no copy, no allocation); otherwise the results are copied.
        """
        theta, inputs = self._bind(theta, inputs)
        self._into(outs, *self._arguments(theta, inputs, batch=False))

    def _into(self, outs: Sequence[np.ndarray], args: list, sizes: dict[str, int]) -> None:
        if len(outs) != len(self.graph.outputs):
            raise InputError(f"call_into: {len(self.graph.outputs)} output arrays needed, got {len(outs)}")
        direct = []
        for v, out in zip(self.graph.outputs, outs, strict=True):
            shape, dtype = tuple(sizes[a] for a in v.type.axes), NUMPY_DTYPES[v.type.dtype]
            if not isinstance(out, np.ndarray) or out.shape != shape:
                raise InputError(f"call_into: output {v.name!r} needs an array of shape {shape}")
            if not out.flags.writeable or not np.can_cast(dtype, out.dtype, "same_kind"):
                raise InputError(
                    f"call_into: output {v.name!r} needs a writeable array taking {dtype.__name__}"
                )
            if out.dtype == dtype and out.flags.c_contiguous:
                direct.append(out.reshape(shape or (1,)))
        if self._artifact.writes_into and len(direct) == len(outs):
            self._artifact.call_into(args, direct)
            return
        results = self._results(self._artifact.call(args), sizes, None)
        for out, value in zip(outs, results if isinstance(results, tuple) else (results,), strict=True):
            np.copyto(out, value)

    def batch(self, thetas: np.ndarray, /, **arrays: Any):
        """Evaluate many parameter vectors at once: ``thetas`` has shape (B, P).

        Each result gets a leading dimension of length B.
        """
        thetas = self._theta(thetas, batch=True)
        thetas, arrays = self._bind(thetas, arrays, batch=True)
        args, sizes = self._arguments(thetas, arrays, batch=True)
        return self._grid_results(self._results(self._artifact.batch(args), sizes, thetas.shape[0]), sizes,
                                  thetas.shape[0])  # fmt: skip

    # -- derivatives ------------------------------------------------------------

    def derivative(self, wrt: Sequence[str] | None = None) -> Executable:
        """The forward-mode executable: outputs ``(y_0, ..., dy_0/dwrt_0, dy_0/dwrt_1, ..., dy_1/dwrt_0,
        ...)`` (see :func:`gir.passes.autodiff.jvp`), taking this executable's graph inputs.

        ``wrt`` (default: every parameter) names the columns. Compiled once for this target and
        shared by every executable of an equal graph (the derivative cache).
        """
        wrt = self.param_names if wrt is None else tuple(wrt)
        unknown = sorted(set(wrt) - set(self.param_names))
        if unknown:
            raise InputError(
                f"derivative: unknown parameter {unknown[0]!r}; parameters are {list(self.param_names)}"
            )
        return self._derivative("forward", wrt)

    def _derivative(self, mode: str, wrt: tuple[str, ...] | None = None) -> Executable:
        """The executable of the forward (JVP) or reverse (VJP) graph, compiled once."""
        wrt = self.param_names if wrt is None else wrt
        mine = self._derivatives.get((mode, wrt))  # a fit asks for the same columns at every step
        if mine is None:
            key = (self.graph.structural_hash, self.target, repr(sorted(self.options.items())), mode, wrt)
            mine = self._derivatives[mode, wrt] = DERIVATIVES.get(
                key, lambda: self._compile_derivative(mode, wrt)
            )
        return mine

    def _compile_derivative(self, mode: str, wrt: tuple[str, ...]) -> Executable:
        graph = jvp(self.graph, wrt) if mode == "forward" else vjp(self.graph)
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
        theta, arrays = self._bind(theta, arrays)
        if mode == "forward":
            values, jacs, sizes = self._forward_jacobian(theta, arrays)
        else:
            values, jacs, sizes = self._reverse_jacobian(theta, arrays)
        if self.binding is not None:
            p = len(self.param_names)
            axes = [v.type.axes for v in self.graph.outputs]
            values = [self._on_grid(y, a, sizes) for y, a in zip(values, axes, strict=True)]
            jacs = [self._on_grid(j, a, sizes, trail=p) for j, a in zip(jacs, axes, strict=True)]
        if len(values) == 1:
            return values[0], jacs[0]
        return tuple(values), tuple(jacs)

    def jacobian(self, theta=None, /, *, mode: str = "auto", **arrays: Any):
        """d output / d theta, of shape ``output.shape + (P,)`` (a tuple for several outputs)."""
        return self.value_and_jacobian(theta, mode=mode, **arrays)[1]

    def vjp(self, theta, cotangents, /, **arrays: Any) -> np.ndarray:
        """The gradient of sum(cotangent * output) with respect to theta (one reverse sweep).

        ``cotangents`` has one array per output (a single array for one output), shaped like the
        output as ``exe(...)`` returns it (a model's whole grid for a compiled model).
        """
        theta, arrays = self._bind(theta, arrays)
        if self.binding is not None:  # from the grid to each output's own axes: sum where it is constant
            grid = tuple(self.binding.axes.values())
            many = len(self.graph.outputs) > 1
            seeds = list(cotangents) if many else [cotangents]
            seeds = [
                np.sum(
                    np.asarray(c, dtype=np.float64),
                    axis=tuple(i for i, a in enumerate(grid) if a not in v.type.axes),
                )
                for c, v in zip(seeds, self.graph.outputs, strict=True)
            ]
            cotangents = seeds if many else seeds[0]
        return self._vjp(theta, cotangents, arrays)

    def _vjp(self, theta: Any, cotangents: Any, arrays: Mapping[str, Any]) -> np.ndarray:
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
        values = [np.empty(tuple(sizes[a] for a in v.type.axes), NUMPY_DTYPES[v.type.dtype]) for v in outputs]
        blocks = [np.empty((p, *np.shape(y))) for y in values]
        targets = values + [blocks[j][k, ...] for j in range(n) for k in range(p)]
        outs, spread = [], []
        for i, (w, target) in enumerate(zip(fwd.graph.outputs, targets, strict=True)):
            axes = outputs[i if i < n else (i - n) // p].type.axes
            if w.type.axes == axes:
                outs.append(target)
            else:  # a column constant along some axes: evaluated on its own, then broadcast
                outs.append(np.empty(tuple(sizes[a] for a in w.type.axes), NUMPY_DTYPES[w.type.dtype]))
                spread.append((outs[-1], w.type.axes, axes, target))
        fwd._into(outs, args, sizes)
        for out, axes, to, target in spread:
            target[...] = on_axes(out, axes, to, target.shape)
        values = [y if y.ndim else y.item() for y in values]
        return values, [np.moveaxis(block, 0, -1) for block in blocks], sizes

    def _reverse_jacobian(self, theta, arrays):
        args, sizes = self._arguments(theta, arrays, batch=False)
        values = self._results(self._artifact.call(args), sizes, None)
        values = list(values) if isinstance(values, tuple) else [values]
        jacs = []
        for j, y in enumerate(values):
            jac = np.zeros((*np.shape(y), len(self.param_names)))
            for index in np.ndindex(np.shape(y)):
                seeds = [np.zeros(np.shape(v)) for v in values]
                seeds[j][index] = 1.0
                jac[index] = self._vjp(theta, seeds if len(values) > 1 else seeds[0], arrays)
            jacs.append(jac)
        return values, jacs, sizes

    # -- inside JAX programs ---------------------------------------------------

    @property
    def jax_function(self) -> Callable[..., Any]:
        """This executable as a pure JAX function ``f(theta, **arrays)`` (JAX targets only).

        It takes what ``exe(...)`` takes (``theta`` a vector or a mapping, the
        model's start values when None; arrays by name; a plain graph's
        parameters may be given by name instead) and returns what it returns, as
        JAX arrays: a bound executable's results on the model's grid. It works
        under ``jax.jit``, ``jax.vmap``, ``jax.grad``, ``jax.jvp``,
        ``jax.jacfwd`` and ``jax.jacrev``; its derivatives with respect to
        ``theta`` are gir's own (forward mode: the forward-mode derivative
        graph; reverse mode: the reverse-mode graph), not JAX's differentiation
        of the generated code. ``exe(theta, ...)`` given tracers calls it.

        What must be concrete: the axis arrays a model derives inputs from
        (the time axis of a model with an instrument response, an axis with
        trapezoid weights) must be NumPy arrays or concrete JAX arrays, not
        traced; parameter values are checked (a width <= 0) only where
        ``theta`` is concrete. Arrays are constants for differentiation (a
        tangent on one raises a GirError), and second derivatives are not
        available. It computes in JAX's precision: enable float64 with
        ``jax.config.update("jax_enable_x64", True)`` or the scoped
        ``jax.enable_x64(True)``.
        """
        fn = self.__dict__.get("_jax_function")
        if fn is None:
            self._require_jax("a call of jax_function")
            from gir.codegen.jax_backend.interop import Derivatives, traceable

            fwd, rev = self._derivative("forward"), self._derivative("reverse")
            derivatives = Derivatives(
                self.graph, (fwd.graph, fwd._artifact.function), (rev.graph, rev._artifact.function)
            )
            core = traceable(self.graph, self._artifact.function, derivatives)

            def fn(theta: Any = None, /, **arrays: Any) -> Any:
                return self._jax_call(core, theta, arrays)

            self.__dict__["_jax_function"] = fn
        return fn

    def _require_jax(self, what: str) -> None:
        """A TargetError naming ``what`` for a target that does not run in JAX."""
        if not self.target.startswith("jax"):
            raise TargetError(
                f"@{self.graph.name} got {what}, but its target {self.target!r} runs compiled code outside "
                "JAX: compile with target='jax-cpu' (or 'jax') to use it inside jax.jit, jax.grad or jax.vmap"
            )

    def _jax_call(self, core: Callable, theta: Any, arrays: dict[str, Any]) -> Any:
        """:attr:`jax_function`: theta and the graph's inputs as JAX arrays, the results on the grid."""
        import jax
        import jax.numpy as jnp

        from gir.codegen.jax_backend.interop import spread

        theta, arrays = self._jax_theta(theta, dict(arrays)), dict(arrays)
        if not isinstance(theta, jax.core.Tracer):
            self.check(np.asarray(theta))
        for name in self.param_names:
            arrays.pop(name, None)
        concrete = {k: v for k, v in arrays.items() if not isinstance(v, jax.core.Tracer)}
        given = {**self.graph_inputs(concrete), **arrays}
        unknown = sorted(set(given) - set(self.array_names))
        if unknown:
            raise InputError(f"unknown input {unknown[0]!r}; arrays are {sorted(self.array_names)}")
        missing = [n for n in self.array_names if n not in given]
        if missing:
            raise InputError(
                f"missing input {missing[0]!r}: pass it by name (a model derives it from an axis array, "
                "which must then be concrete, not traced)"
            )
        sizes: dict[str, int] = {}
        inputs = {}
        for v in self.graph.arrays:
            inputs[v.name] = jnp.asarray(given[v.name])
            record_sizes(v, inputs[v.name].shape, sizes)
        outs = core(theta, inputs)
        if self.binding is not None:
            grid = tuple(self.binding.axes.values())
            outs = [
                spread(o, v.type.axes, grid, sizes) for o, v in zip(outs, self.graph.outputs, strict=True)
            ]
        return tuple(outs) if len(outs) > 1 else outs[0]

    def _jax_theta(self, theta: Any, arrays: Mapping[str, Any]) -> Any:
        """``theta`` as a JAX vector in :attr:`param_names` order (from a mapping, from the
        parameters given by name, or the start values)."""
        import jax.numpy as jnp

        names = self.param_names
        named = [n for n in names if n in arrays]
        if theta is not None and named:
            raise InputError(f"parameter {named[0]!r} is given both in theta and by name")
        if theta is None and self._start is not None and not named:
            theta = self._start
        elif theta is None or isinstance(theta, Mapping):
            given = arrays if theta is None else theta
            unknown = sorted(set(given) - set(names)) if theta is not None else []
            missing = [n for n in names if n not in given]
            if unknown or missing:
                what = f"unknown parameter {unknown[0]!r}" if unknown else f"missing parameter {missing[0]!r}"
                raise InputError(f"theta: {what}; parameters are {list(names)}")
            theta = jnp.stack([jnp.asarray(given[n]) for n in names]) if names else jnp.zeros((0,))
        theta = jnp.asarray(theta)
        if theta.ndim != 1 or theta.shape[0] != len(names):
            raise InputError(
                f"theta must be a vector of {len(names)} parameters {list(names)}, got shape {theta.shape}"
            )
        return theta if jnp.issubdtype(theta.dtype, jnp.floating) else theta.astype(float)

    # -- inside Numba code -----------------------------------------------------

    @property
    def numba_function(self) -> Any:
        """The compiled kernel as an njit function ``f(theta, *arrays)`` for Numba code (Numba targets).

        ``theta`` is a float64 vector in :attr:`param_names` order; ``arrays`` are
        :meth:`numba_inputs`' arrays, in that order. It returns the output over its
        own axes (``graph.outputs[0].type.axes``: a model's grid; a tuple for
        several outputs, a scalar as a 1-element array), a new array each call.
        Nothing is checked inside Numba code: check theta with :meth:`check`.
        """
        if not self.target.startswith("numba"):
            raise TargetError(
                f"numba_function: @{self.graph.name} has target {self.target!r}; compile with "
                "target='numba' (or 'numba-parallel') to call it from Numba code"
            )
        return self._artifact.caller()

    def numba_inputs(self, **arrays: Any) -> tuple[np.ndarray, ...]:
        """The arrays :attr:`numba_function` takes after theta: the graph's array inputs in
        :attr:`array_names` order (a model's axes and the inputs derived from them), checked, each
        C-contiguous over its own axes."""
        given = self.graph_inputs(arrays)
        unknown = sorted(set(given) - set(self.array_names))
        if unknown:
            raise InputError(f"unknown input {unknown[0]!r}; arrays are {sorted(self.array_names)}")
        missing = [n for n in self.array_names if n not in given]
        if missing:
            raise InputError(f"missing input {missing[0]!r} (missing: {missing})")
        sizes: dict[str, int] = {}
        laid = [self._argument(v, given[v.name], sizes, from_theta=False) for v in self.graph.arrays]
        return tuple(
            np.ascontiguousarray(a.reshape(tuple(sizes[x] for x in v.type.axes)))
            for a, v in zip(laid, self.graph.arrays, strict=True)
        )

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
            shapes = {np.shape(t) for t in theta}
            if len(shapes) > 1:
                first = next(
                    n for n, t in zip(names, theta, strict=True) if np.shape(t) != np.shape(theta[0])
                )
                raise InputError(
                    f"theta: parameter {first!r} has shape {np.shape(theta[names.index(first)])}, "
                    f"{names[0]!r} has {np.shape(theta[0])}: give every parameter the same shape"
                )
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
        dtype = NUMPY_DTYPES[v.type.dtype]
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
        record_sizes(v, arr.shape, sizes)
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


def record_sizes(v: Value, shape: tuple[int, ...], sizes: dict[str, int]) -> None:
    """Record the axis lengths of array input ``v`` given with ``shape`` in ``sizes``; an InputError
    for a wrong number of dimensions or a length another input contradicts."""
    if len(shape) != len(v.type.axes):
        raise InputError(
            f"input {v.name!r} has axes {list(v.type.axes)} and needs {len(v.type.axes)} "
            f"dimension(s), got shape {shape}"
        )
    for axis, n in zip(v.type.axes, shape, strict=True):
        if sizes.setdefault(axis, n) != n:
            raise InputError(
                f"input {v.name!r}: axis {axis} has length {n}, but another input has {sizes[axis]}"
            )


def _traced(theta: Any, inputs: Mapping[str, Any]) -> bool:
    """Whether ``theta`` (a vector, sequence or mapping) or an input is a JAX tracer (JAX is imported
    wherever one exists)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    tracer = jax.core.Tracer
    values = list(inputs.values())
    values += list(theta.values()) if isinstance(theta, Mapping) else [theta]
    values += list(theta) if isinstance(theta, (list, tuple)) else []
    return any(isinstance(x, tracer) for x in values)


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


def compile_graph(
    graph: Graph,
    target: str,
    options: Mapping[str, Any] | None = None,
    sizes: Mapping[str, int] | None = None,
    *,
    binding: Binding | None = None,
    fixed: Mapping[str, float] | None = None,
) -> Executable:
    """Compile an already optimized ``graph`` for ``target`` (the artifact cached by structure); the
    executable owns ``binding`` and records ``fixed`` (see :func:`gir.compile`)."""
    keep_freed_memory()
    t = resolve(target, graph, dict(sizes or {}))
    backend = t.load()
    missing = backend.unsupported(graph)
    if missing:
        raise TargetError(f"target {t.name!r} cannot compile the ops {missing}")
    opts = {**t.options, **(options or {})}
    key = (graph.structural_hash, t.name, tuple(sorted(opts.items())))
    filename = f"<gir @{graph.name} {t.name} {graph.structural_hash[:12]}>"
    artifact = ARTIFACTS.get(key, lambda: backend.build(graph, filename, **opts))
    return Executable(graph, t.name, artifact, options, binding, fixed)


def on_axes(value: Any, axes: tuple[str, ...], to: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A result over ``axes`` (a subset of ``to``, in any order) broadcast to ``shape``, over ``to``."""
    value = np.asarray(value)
    order = [a for a in to if a in axes]
    if list(axes) != order:
        value = np.transpose(value, [axes.index(a) for a in order])
    value = np.reshape(value, [n if a in axes else 1 for a, n in zip(to, shape, strict=True)])
    return np.broadcast_to(value, shape)


def _rebuild(
    graph: Graph, target: str, options: dict[str, Any], binding: Binding | None, fixed: dict[str, float]
) -> Executable:
    return compile_graph(graph, target, options, binding=binding, fixed=fixed)
