"""What a compiled Model carries beside its graph: parameter bookkeeping, axis-derived inputs, components.

A :class:`ModelBinding` is the :class:`gir.runtime.binding.Binding` of a
:class:`gir.models.Model` (``model.__gir_binding__()``); ``gir.compile(model)``
gives a :class:`gir.Executable` that owns one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gir.errors import GirError, InputError
from gir.runtime.binding import Binding
from gir.runtime.compile import compile_graph, optimized


def trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """Quadrature weights of the trapezoid rule on a (possibly non-uniform) axis."""
    if x.size < 2:
        return np.ones_like(x)
    gaps = np.diff(x)
    return np.concatenate([[gaps[0] / 2], (gaps[:-1] + gaps[1:]) / 2, [gaps[-1] / 2]])


def derived_time_inputs(t: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Everything the convolution needs that depends only on the time axis (with the weights and edge
    indicators also on T, and the edge distances also on S, for the odd steps of a chain of kernels)."""
    if np.any(np.diff(t) < 0):
        raise InputError(f"{name!r} must be increasing for the instrument response convolution")
    t = t.copy()  # cached: must not alias the caller's array
    first, last = np.zeros_like(t), np.zeros_like(t)
    first[0], last[-1] = 1.0, 1.0
    w, a, b = trapezoid_weights(t), t - t[0], t - t[-1]
    return {
        f"{name}.s": t,
        f"{name}.d": t[:, None] - t[None, :],
        f"{name}.w": w,
        f"{name}.a": a,
        f"{name}.b": b,
        f"{name}.first": first,
        f"{name}.last": last,
        f"{name}.w_t": w,
        f"{name}.a_s": a,
        f"{name}.b_s": b,
        f"{name}.first_t": first,
        f"{name}.last_t": last,
    }


class ModelBinding(Binding):
    """A Model's start values, bounds, axis-derived inputs (computed once per axis array), kernel-width
    checks and components, for the executable compiled from it."""

    #: Derived inputs kept per binding (one entry per distinct axis array).
    KEEP = 64

    def __init__(self, model: Any, *, passes: Any = "O2", fixed: Mapping[str, float] | None = None):
        self.model = model
        self.passes = passes
        self.fixed = dict(fixed or {})
        self.axes = model.ir_axes
        convolved = model.time is not None and any(d.irf for d in model.dynamics_of.values())
        self.coupled = (model.time,) if convolved else ()
        self._kernels = [model.aliases.get(k, k) for k in model.kernel_parameters()]
        self._kernel_expressions = [k for k, v in model.kernel_widths().items() if isinstance(v, str)]
        self.positive = tuple(self._kernels)
        self.checks_expressions = bool(self._kernel_expressions)
        for k in self._kernels:
            if k in self.fixed and not (math.isfinite(self.fixed[k]) and self.fixed[k] > 0):
                raise GirError(f"kernel width {k!r} must be positive, got {self.fixed[k]}")
        self._derived: dict[tuple, dict[str, np.ndarray]] = {}
        self._parts: dict[tuple, Any] = {}

    def __reduce__(self):
        return (_rebuild, (type(self.model), self.model.to_dict(), self.passes, self.fixed))

    def __repr__(self) -> str:
        return f"<ModelBinding {self.model!r}>"

    # -- parameters -------------------------------------------------------------------

    def start(self, names: Sequence[str]) -> np.ndarray:
        free, full = self.model.free_parameters(), self.model.canonical
        return np.array([free[full(n)].value for n in names], dtype=np.float64)

    def bounds(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        free, full = self.model.free_parameters(), self.model.canonical
        return (
            np.array([free[full(n)].bounds[0] for n in names], dtype=np.float64),
            np.array([free[full(n)].bounds[1] for n in names], dtype=np.float64),
        )

    def check(self, names: Sequence[str], theta: np.ndarray) -> None:
        theta = np.asarray(theta)
        for k in self._kernels:
            if k in names and not np.all(theta[..., list(names).index(k)] > 0):
                raise InputError(f"kernel width {k!r} must be positive")
        if self._kernel_expressions:
            rows = theta.reshape(-1, len(names)) if len(names) else np.zeros((1, 0))
            m = self.model
            for row in rows:
                given = {**self.fixed, **dict(zip(names, row, strict=True))}
                values = m.parameter_values({m.canonical(k): v for k, v in given.items()})
                for k in self._kernel_expressions:
                    if not values[k] > 0:
                        name, text = m.aliases.get(k, k), m.parameters()[k]
                        raise InputError(
                            f"kernel width {name!r} = {text!r} must be positive, got {values[k]}"
                        )

    def parameters(self) -> dict[str, Any]:
        return self.model.aliased_parameters()

    def fixed_and_tied(
        self, names: Sequence[str], theta: np.ndarray
    ) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
        m = self.model
        values = m.parameter_values({**self.fixed, **dict(zip(names, theta, strict=True))})
        texts = m.aliased_parameters()
        shown = {k: m.aliases.get(k, k) for k in values}
        fixed = {shown[k]: v for k, v in values.items() if not isinstance(texts[shown[k]], str)}
        return {k: v for k, v in fixed.items() if k not in names}, {
            shown[k]: (texts[shown[k]], values[k]) for k in values if isinstance(texts[shown[k]], str)
        }

    # -- inputs -----------------------------------------------------------------------

    def derived_inputs(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for axis, make in self._derivers().items():
            if axis not in arrays:
                continue
            a = np.asarray(arrays[axis], dtype=np.float64)
            key = (axis, a.shape, hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest())
            made = self._derived.get(key)
            if made is None:
                made = make(a)
                if len(self._derived) >= self.KEEP:
                    self._derived.clear()
                self._derived[key] = made
            out.update(made)
        return out

    def _derivers(self) -> dict[str, Any]:
        m = self.model
        makers: dict[str, Any] = {}
        if self.coupled:
            makers[m.time] = lambda t: derived_time_inputs(t, m.time)
        for prof in m.profiles.values():
            if prof.weights == "trapezoid":
                axis = prof.axis
                makers[axis] = lambda z, axis=axis: {
                    f"{axis}.w": trapezoid_weights(z) / trapezoid_weights(z).sum()
                }
        return makers

    # -- components ---------------------------------------------------------------------

    def components(self, exe: Any, theta: np.ndarray, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        key = (exe.target, tuple(sorted(exe.options.items())))
        if key not in self._parts:
            graph = optimized(self.model.graph(components=True), self.passes, self.fixed)
            self._parts[key] = compile_graph(graph, exe.target, exe.options)
        parts = self._parts[key]
        values = parts(theta, **{k: v for k, v in arrays.items() if k in parts.array_names})[1:]
        names = [self.model._name(c) for c in self.model.components]
        axes = [v.type.axes for v in parts.graph.outputs[1:]]
        return dict(zip(names, zip(values, axes, strict=True), strict=True))


def _rebuild(model_type: type, data: dict, passes: Any, fixed: dict) -> ModelBinding:
    return ModelBinding(model_type.from_dict(data), passes=passes, fixed=fixed)
