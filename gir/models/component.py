"""Component definitions, component instances and parameters."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from gir.errors import GirError
from gir.ir.graph import Graph

#: The axis arguments each kind of component takes, before its parameters.
KINDS: dict[str, tuple[str, ...]] = {
    "peak": ("x",),
    "background": ("x",),
    "time": ("t",),
    "kernel": ("d", "a", "b"),
    "profile": ("z",),
}

REGISTRY: dict[str, ComponentDef] = {}


def _bounds(value: Any) -> tuple[float, float]:
    lo, hi = (-math.inf, math.inf) if value is None else value
    return float(-math.inf if lo is None else lo), float(math.inf if hi is None else hi)


@attrs.frozen
class Param:
    """A parameter with a start value; it varies in fits unless ``vary=False``."""

    value: float = attrs.field(converter=float)
    vary: bool = True
    bounds: tuple[float, float] = attrs.field(default=None, converter=_bounds)

    def __attrs_post_init__(self) -> None:
        lo, hi = self.bounds
        if not lo <= self.value <= hi:
            raise GirError(f"start value {self.value} is outside the bounds {self.bounds}")

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "vary": self.vary, "bounds": [_json_float(b) for b in self.bounds]}


def _json_float(x: float) -> float | None:
    return None if math.isinf(x) else x


#: What a parameter may be given as: a fixed number, a Param, or an expression string.
Spec = float | int | Param | str


def spec_to_json(spec: Spec) -> Any:
    return spec.to_dict() if isinstance(spec, Param) else spec


def spec_from_json(data: Any) -> Spec:
    if isinstance(data, Mapping):
        return Param(data["value"], data.get("vary", True), data.get("bounds"))
    return data


@attrs.frozen(eq=False)
class ComponentDef:
    """One component formula: a NumPy function and the kind of component it is."""

    name: str
    kind: str
    fn: Callable[..., Any]
    params: tuple[str, ...]
    signal: bool = False  # takes the model's signal (the sum of its peaks) as argument S
    doc: str = ""

    def graph(self, **axes: str | tuple[str, ...]) -> Graph:
        """The component traced with its axis arguments on the given axes (once per naming).

        Defaults: ``x`` and ``S`` on E, ``t`` on T, kernels ``d`` on (T, S) with
        ``a`` and ``b`` on T, profiles ``z`` on Z. A graph on other axes is
        named after them too (``@expFun_S``), so one text can hold both.
        """
        arrays = {a: _DEFAULT_AXES[a] for a in self.arg_names}
        arrays.update(axes)
        return _traced(self, tuple(arrays.items()))

    @property
    def arg_names(self) -> tuple[str, ...]:
        return KINDS[self.kind] + (("S",) if self.signal else ())

    def __call__(self, name: str | None = None, *, signal: Any = None, **params: Spec) -> Component:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise GirError(
                f"{self.name} has no parameter {unknown[0]!r}; its parameters are {list(self.params)}"
            )
        missing = [p for p in self.params if p not in params]
        if missing:
            raise GirError(
                f"{self.name}{f' {name!r}' if name else ''}: parameter {missing[0]!r} is not given"
            )
        for key, spec in params.items():
            if not isinstance(spec, int | float | Param | str) or isinstance(spec, bool):
                raise GirError(f"{self.name}.{key}: give a number, gm.Param(...) or an expression string")
        if signal is not None and not self.signal:
            raise GirError(f"{self.name} takes no signal")
        sig = None if signal is None else tuple([signal] if isinstance(signal, str) else signal)
        return Component(self, name, {p: params[p] for p in self.params}, sig)

    def __repr__(self) -> str:
        return f"<component {self.name} ({self.kind}): {', '.join(self.params)}>"


_DEFAULT_AXES: dict[str, str | tuple[str, ...]] = {
    "x": "E",
    "S": "E",
    "t": "T",
    "d": ("T", "S"),
    "a": "T",
    "b": "T",
    "z": "Z",
}


@functools.cache
def _traced(definition: ComponentDef, arrays: tuple[tuple[str, Any], ...]) -> Graph:
    from gir.frontend import trace

    g = trace(definition.fn, **dict(arrays))
    if any(_DEFAULT_AXES[k] != v for k, v in arrays):
        suffix = "_".join("".join(v) if isinstance(v, tuple) else v for _, v in arrays)
        g = attrs.evolve(g, name=f"{definition.name}_{suffix}")
    return g


@attrs.define(eq=False)
class Component:
    """A component in a model: a definition, an optional name, and its parameters."""

    definition: ComponentDef
    name: str | None
    params: dict[str, Spec]
    signal: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        return self.definition.kind

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.definition.name}
        if self.name is not None:
            out["name"] = self.name
        out["params"] = {k: spec_to_json(v) for k, v in self.params.items()}
        if self.signal is not None:
            out["signal"] = list(self.signal)
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Component:
        kind = data.get("type")
        if kind not in REGISTRY:
            raise GirError(f"unknown component type {kind!r}")
        params = {k: spec_from_json(v) for k, v in data.get("params", {}).items()}
        return REGISTRY[kind](data.get("name"), signal=data.get("signal"), **params)

    def __repr__(self) -> str:
        return f"{self.definition.name}({self.name or ''})"


def _define(kind: str, signal: bool = False) -> Callable[[Callable[..., Any]], ComponentDef]:
    def wrap(fn: Callable[..., Any]) -> ComponentDef:
        names = list(inspect.signature(fn).parameters)
        axes = list(KINDS[kind]) + (["S"] if signal else [])
        if names[: len(axes)] != axes:
            raise GirError(f"component {fn.__name__}: the first arguments must be {axes}")
        if fn.__name__ in REGISTRY:
            raise GirError(f"component {fn.__name__} is defined twice")
        d = ComponentDef(fn.__name__, kind, fn, tuple(names[len(axes) :]), signal, inspect.getdoc(fn) or "")
        REGISTRY[d.name] = d
        return d

    return wrap


def peak(fn: Callable[..., Any]) -> ComponentDef:
    """A peak on the energy axis ``x``; peaks make up the signal of a Shirley background."""
    return _define("peak")(fn)


def background(fn: Callable[..., Any] | None = None, *, signal: bool = False):
    """A background on the energy axis ``x``; ``signal=True`` adds the argument ``S``."""
    return _define("background", signal) if fn is None else _define("background")(fn)


def time_function(fn: Callable[..., Any]) -> ComponentDef:
    """A term g(t) of a time-dependent parameter p(t) = p + sum g(t)."""
    return _define("time")(fn)


def kernel(fn: Callable[..., Any]) -> ComponentDef:
    """An instrument response k(d), with its masses over [a, inf) and (-inf, b]."""
    return _define("kernel")(fn)


def profile(fn: Callable[..., Any]) -> ComponentDef:
    """A term of a parameter profile p(z) = p + sum profile(z) along an auxiliary axis."""
    return _define("profile")(fn)
