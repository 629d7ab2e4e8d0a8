"""A compiled Model: parameter bookkeeping, axis-derived inputs, per-component values."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from gir.errors import GirError, InputError
from gir.models.model import E, T
from gir.runtime.compile import compile as compile_graph


def trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """Quadrature weights of the trapezoid rule on a (possibly non-uniform) axis."""
    if x.size < 2:
        return np.ones_like(x)
    gaps = np.diff(x)
    return np.concatenate([[gaps[0] / 2], (gaps[:-1] + gaps[1:]) / 2, [gaps[-1] / 2]])


def derived_time_inputs(t: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Everything the convolution needs that depends only on the time axis."""
    if np.any(np.diff(t) < 0):
        raise InputError(f"{name!r} must be increasing for the instrument response convolution")
    t = t.copy()  # cached: must not alias the caller's array
    first, last = np.zeros_like(t), np.zeros_like(t)
    first[0], last[-1] = 1.0, 1.0
    return {
        f"{name}.s": t,
        f"{name}.d": t[:, None] - t[None, :],
        f"{name}.w": trapezoid_weights(t),
        f"{name}.a": t - t[0],
        f"{name}.b": t - t[-1],
        f"{name}.first": first,
        f"{name}.last": last,
    }


class ModelExecutable:
    """``exe(theta, energy=E, time=T)``: the model on a grid, theta in :attr:`param_names` order.

    Axis-only quantities (convolution differences and weights, profile
    weights) are computed once per axis array and reused across calls.
    """

    def __init__(self, model, target: str = "auto", **kwargs: Any):
        self.model = model
        if kwargs.get("sizes"):  # axis lengths by the model's axis names -> the IR's
            ir = {model.energy: "E", **({model.time: "T"} if model.time else {})}
            kwargs["sizes"] = {ir.get(k, k): n for k, n in kwargs["sizes"].items()}
        self._kwargs = dict(kwargs)
        fixed = kwargs.get("fixed") or {}
        for k in model.kernel_parameters():
            if k in fixed and not (math.isfinite(fixed[k]) and fixed[k] > 0):
                raise GirError(f"kernel width {k!r} must be positive, got {fixed[k]}")
        self._exe = compile_graph(model.graph(), target, **kwargs)
        self._parts = None
        self.target = self._exe.target
        self.param_names = self._exe.param_names
        free = model.free_parameters()
        self.theta0 = np.array([free[n].value for n in self.param_names])
        self.bounds = (
            np.array([free[n].bounds[0] for n in self.param_names]),
            np.array([free[n].bounds[1] for n in self.param_names]),
        )
        self._positive = [
            self.param_names.index(k) for k in model.kernel_parameters() if k in self.param_names
        ]
        self._derived: dict[tuple, dict[str, np.ndarray]] = {}

    @property
    def executable(self):
        """The compiled graph underneath (a :class:`gir.Executable` over the graph's own inputs)."""
        return self._exe

    @property
    def graph(self):
        return self._exe.graph

    @property
    def source(self) -> str:
        return self._exe.source

    def __repr__(self) -> str:
        return f"<ModelExecutable {self.model!r} target={self.target} params={list(self.param_names)}>"

    def __reduce__(self):
        from gir.models.model import Model

        return (_rebuild, (Model, self.model.to_dict(), self.target, self._kwargs))

    # -- inputs ---------------------------------------------------------------------

    def graph_inputs(self, arrays: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
        """The user's arrays plus the axis-derived inputs the graph takes (cached per axis array)."""
        out = dict(arrays)
        for axis, make in self._derivers().items():
            if axis not in arrays:
                continue
            a = np.asarray(arrays[axis], dtype=np.float64)
            key = (axis, a.shape, hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).digest())
            if key not in self._derived:
                if len(self._derived) > 64:
                    self._derived.clear()
                self._derived[key] = make(a)
            out.update({k: v for k, v in self._derived[key].items() if k in names})
        return out

    def _derivers(self) -> dict[str, Any]:
        m = self.model
        makers: dict[str, Any] = {}
        if m.time and any(d.irf is not None for d in m.dynamics_of.values()):
            makers[m.time] = lambda t: derived_time_inputs(t, m.time)
        for prof in m.profiles.values():
            if prof.weights == "trapezoid":
                axis = prof.axis
                makers[axis] = lambda z, axis=axis: {
                    f"{axis}.w": trapezoid_weights(z) / trapezoid_weights(z).sum()
                }
        return makers

    def check(self, theta: np.ndarray) -> None:
        """Raise an InputError for parameter values the model is undefined at (a kernel width <= 0)."""
        for i in self._positive:
            bad = np.asarray(theta)[..., i] <= 0
            if np.any(bad):
                raise InputError(f"kernel width {self.param_names[i]!r} must be positive")

    def fixed_and_tied(self, theta: Any = None) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
        """The model's fixed parameters (name -> value) and expressions (name -> (text, value)) at
        ``theta``."""
        theta = self.theta0 if theta is None else np.asarray(theta, dtype=np.float64)
        free = {**(self._kwargs.get("fixed") or {}), **dict(zip(self.param_names, theta, strict=True))}
        values = self.model.parameter_values(free)
        texts = self.model.expressions()
        fixed = {k: v for k, v in values.items() if k not in texts and k not in self.param_names}
        return fixed, {k: (t, values[k]) for k, t in texts.items()}

    def _shape(self, arrays: dict[str, np.ndarray]) -> tuple[int, ...]:
        return tuple(np.shape(arrays[a])[0] for a in self.model.axes)

    # -- evaluation -----------------------------------------------------------------

    def __call__(self, theta: Any = None, /, **arrays: Any) -> np.ndarray:
        theta = self.theta0 if theta is None else np.asarray(theta, dtype=np.float64)
        self.check(theta)
        inputs = self.graph_inputs(arrays, self._exe.array_names)
        return _full(self._exe(theta, **inputs), self._shape(inputs))

    def batch(self, thetas: Any, /, **arrays: Any) -> np.ndarray:
        thetas = np.asarray(thetas, dtype=np.float64)
        self.check(thetas)
        inputs = self.graph_inputs(arrays, self._exe.array_names)
        out = self._exe.batch(thetas, **inputs)
        shape = self._shape(inputs)
        # the result lacks the axes it does not vary along (time, for a model without dynamics)
        axes = self._exe.graph.outputs[0].type.axes
        grid = (T, E) if self.model.time else (E,)
        out = out.reshape(
            (thetas.shape[0], *(n if a in axes else 1 for a, n in zip(grid, shape, strict=True)))
        )
        return _full(out, (thetas.shape[0], *shape))

    def value_and_jacobian(self, theta: Any = None, /, *, mode: str = "auto", **arrays: Any):
        """The model and its Jacobian, of shape ``grid + (P,)`` (see Executable.value_and_jacobian)."""
        theta = self.theta0 if theta is None else np.asarray(theta, dtype=np.float64)
        self.check(theta)
        inputs = self.graph_inputs(arrays, self._exe.array_names)
        shape = self._shape(inputs)
        y, jac = self._exe.value_and_jacobian(theta, mode=mode, **inputs)
        return _full(y, shape), _full(jac, (*shape, len(self.param_names)))

    def jacobian(self, theta: Any = None, /, *, mode: str = "auto", **arrays: Any) -> np.ndarray:
        return self.value_and_jacobian(theta, mode=mode, **arrays)[1]

    def components(self, theta: Any = None, /, **arrays: Any) -> dict[str, np.ndarray]:
        """Each component's values on the grid, by component name (for plots)."""
        if self._parts is None:
            self._parts = compile_graph(self.model.graph(components=True), self.target, **self._kwargs)
        theta = self.theta0 if theta is None else np.asarray(theta, dtype=np.float64)
        self.check(theta)
        inputs = self.graph_inputs(arrays, self._parts.array_names)
        shape = self._shape(inputs)
        values = self._parts(theta, **inputs)[1:]
        names = [self.model._name(c) for c in self.model.components]
        return {n: _full(v, shape) for n, v in zip(names, values, strict=True)}


def _full(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` on the whole grid: as it is when it already covers it, else a broadcast copy."""
    value = np.asarray(value)
    return value if value.shape == shape else np.broadcast_to(value, shape).copy()


def _rebuild(model_cls, data: dict, target: str, kwargs: dict) -> ModelExecutable:
    return ModelExecutable(model_cls.from_dict(data), target, **kwargs)
