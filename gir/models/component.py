"""Component definitions, component instances and parameters."""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from gir.errors import GirError, warn
from gir.frontend import trace
from gir.ir.graph import Graph

#: The axis arguments each kind of component takes, before its parameters.
KINDS: dict[str, tuple[str, ...]] = {
    "peak": ("x",),
    "background": ("x",),
    "time": ("t",),
    "kernel": ("d", "a", "b"),
    "profile": ("z",),
}

#: What each kind of component is, in a sentence.
KIND_DOCS: dict[str, str] = {
    "peak": "a peak on the energy axis; the peaks of a model make up Shirley's default signal",
    "background": "a background on the energy axis",
    "time": "a term g(t) of a time-dependent parameter p(t) = p + sum g(t) (Model.dynamics)",
    "kernel": "an instrument response k(d) along time (Model.dynamics(irf=...)); it returns k(d) "
    "and the masses of k over [a, inf) and (-inf, b], the parts of the kernel beyond the time window",
    "profile": "a term of a parameter profile p(z) = p + sum profile(z) along an auxiliary axis "
    "(Model.profile)",
}

REGISTRY: dict[str, ComponentDef] = {}


def real_number(value: Any, where: str) -> float:
    """``value`` as a float: an int, float, NumPy integer or floating scalar, or 0-d array.

    Bools, complex numbers, strings and arrays with elements are GirErrors naming ``where``.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bool | np.bool_):
        raise GirError(f"{where}: {value!r} is a bool, not a number; give a float such as 1.0")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, numbers.Complex):
        raise GirError(f"{where}: {value!r} is complex; give a real number")
    if isinstance(value, np.ndarray):
        raise GirError(f"{where}: give one number, not an array of shape {value.shape}")
    raise GirError(f"{where}: {value!r} is not a number")


def checked_spec(spec: Any, where: str) -> Spec:
    """A parameter as given by a user, with numbers as floats: a number, a Param or an expression string.

    ``where`` names the parameter in errors. Whether numbers are finite is
    checked by :func:`finalize_spec`, where the parameter's full name is known.
    """
    if isinstance(spec, str | Param):
        return spec
    try:
        return real_number(spec, where)
    except GirError as e:
        raise GirError(f"{e}; give a number, gm.Param(...) or an expression string") from None


def _param_value(value: Any) -> float:
    return real_number(value, "Param value")


def _bounds(value: Any) -> tuple[float, float]:
    if value is None:
        return -math.inf, math.inf
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise GirError(f"Param bounds must be a pair (lo, hi), got {value!r}") from None
    lo = -math.inf if lo is None else real_number(lo, "Param lower bound")
    hi = math.inf if hi is None else real_number(hi, "Param upper bound")
    if math.isnan(lo) or math.isnan(hi) or lo > hi or lo == math.inf or hi == -math.inf:
        raise GirError(f"Param bounds ({lo}, {hi}) are empty: no finite value lies in them")
    return lo, hi


@attrs.frozen
class Param:
    """A parameter with a start value; it varies in fits unless ``vary=False``.

    Numbers of any real type are stored as floats. A start value outside the
    bounds is clipped into them, with a warning, and a non-finite one is an
    error, when the parameter enters a model (where its name is known).
    """

    value: float = attrs.field(converter=_param_value)
    vary: bool = True
    bounds: tuple[float, float] = attrs.field(default=None, converter=_bounds)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "vary": self.vary, "bounds": [_json_float(b) for b in self.bounds]}


def finalize_spec(spec: Spec, name: str) -> Spec:
    """``spec`` as it enters a model as parameter ``name``.

    Numbers become floats; a fixed value or start value that is not finite
    raises a GirError; a start value outside its bounds is clipped into them,
    with one warning.
    """
    spec = checked_spec(spec, repr(name))
    if isinstance(spec, str):
        return spec
    value = spec.value if isinstance(spec, Param) else spec
    if not math.isfinite(value):
        what = "start value" if isinstance(spec, Param) else "fixed value"
        raise GirError(f"parameter {name!r}: the {what} {value} is not finite")
    if not isinstance(spec, Param):
        return spec
    lo, hi = spec.bounds
    if lo <= value <= hi:
        return spec
    clipped = min(max(value, lo), hi)
    bounds = f"({lo:g}, {hi:g})"
    warn(f"the start value {value:g} of {name!r} is outside its bounds {bounds}; clipped to {clipped:g}")
    return attrs.evolve(spec, value=clipped)


def finalize_params(component: Component, prefix: str) -> Component:
    """``component`` as it enters a model: :func:`finalize_spec` on each parameter ``prefix.param``.

    The component itself is returned when nothing changes, a copy otherwise.
    """
    params = {k: finalize_spec(v, f"{prefix}.{k}") for k, v in component.params.items()}
    if all(params[k] is v for k, v in component.params.items()):
        return component
    return attrs.evolve(component, params=params)


def _json_float(x: float) -> float | None:
    return None if math.isinf(x) else x


#: What a parameter may be given as: a fixed number, a Param, or an expression string.
Spec = float | int | Param | str


def spec_to_json(spec: Spec) -> Any:
    return spec.to_dict() if isinstance(spec, Param) else spec


def spec_from_json(data: Any, name: str = "parameter") -> Spec:
    """A parameter from its JSON form: a number, an expression string, or ``{"value": number,
    "vary": true|false, "bounds": [low, high]}`` (null: unbounded); a GirError names ``name``."""
    if not isinstance(data, Mapping):
        return data

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    if "value" not in data:
        raise GirError(f"{name}: a parameter object needs a 'value', got {dict(data)!r}")
    value, vary, bounds = data["value"], data.get("vary", True), data.get("bounds")
    if not number(value):
        raise GirError(f"{name}: 'value' must be a number, got {value!r}")
    if not isinstance(vary, bool):
        raise GirError(f"{name}: 'vary' must be true or false, got {vary!r}")
    if bounds is not None and (
        not isinstance(bounds, list | tuple)
        or len(bounds) != 2
        or not all(b is None or number(b) for b in bounds)
    ):
        raise GirError(f"{name}: 'bounds' must be [low, high] (numbers, or null for none), got {bounds!r}")
    try:
        return Param(value, vary, bounds)
    except GirError as e:
        raise GirError(f"{name}: {e}") from None


@attrs.frozen(eq=False)
class ComponentDef:
    """One component formula: a NumPy function and the kind of component it is.

    Each definition made with a decorator (``@peak``, ...) is the one instance
    of a subclass named after it, whose docstring is :meth:`help_text`, so that
    ``help(gm.Voigt)`` shows the formula; it pickles as a reference to its
    entry in ``REGISTRY``.
    """

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

    @property
    def default_axes(self) -> dict[str, str | tuple[str, ...]]:
        """The axis each axis argument lies on when the component is traced alone (see :meth:`graph`)."""
        return {a: _DEFAULT_AXES[a] for a in self.arg_names}

    @property
    def signature(self) -> inspect.Signature:
        """How the definition is called: ``Voigt(name=None, *, A, x0, SD, W)``."""
        P = inspect.Parameter
        params = [P("name", P.POSITIONAL_OR_KEYWORD, default=None)]
        params += [P(p, P.KEYWORD_ONLY) for p in self.params]
        if self.signal:
            params.append(P("signal", P.KEYWORD_ONLY, default=None))
        return inspect.Signature(params)

    def help_text(self) -> str:
        """The definition's docstring followed by its kind and default axes (what ``help()`` shows)."""
        axes = ", ".join(f"{a} on {axes_text(v)}" for a, v in self.default_axes.items())
        footer = f"Kind: {self.kind}, {KIND_DOCS[self.kind]}.\nDefault axes: {axes}."
        return f"{self.doc}\n\n{footer}" if self.doc else footer

    def __call__(self, name: str | None = None, *, signal: Any = None, **params: Any) -> Component:
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
        of = f" of {name!r}" if name else ""
        specs = {p: checked_spec(params[p], f"{self.name}.{p}{of}") for p in self.params}
        if signal is not None and not self.signal:
            raise GirError(f"{self.name} takes no signal")
        sig = None if signal is None else tuple([signal] if isinstance(signal, str) else signal)
        return Component(self, name, specs, sig)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # a library definition pickles as a reference to its registry entry
        if REGISTRY.get(self.name) is self:
            return _registered, (self.fn.__module__, self.name)
        return super().__reduce_ex__(protocol)

    def __repr__(self) -> str:
        return f"<component {self.name} ({self.kind}): {', '.join(self.params)}>"


def _registered(module: str, name: str) -> ComponentDef:
    importlib.import_module(module)
    return REGISTRY[name]


_AXIS_NAMES = {"E": "energy", "T": "time", "S": "source time of the convolution", "Z": "auxiliary axis"}


def axes_text(axes: str | tuple[str, ...]) -> str:
    if isinstance(axes, str):
        return f"{axes} ({_AXIS_NAMES.get(axes, axes)})"
    return f"({', '.join(axes)})"


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
        params = {k: spec_from_json(v, f"{kind}.{k}") for k, v in data.get("params", {}).items()}
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
        args = (fn.__name__, kind, fn, tuple(names[len(axes) :]), signal, inspect.getdoc(fn) or "")
        plain = ComponentDef(*args)
        # a class of its own per definition, so that help() and pydoc show the definition's text
        cls = type(
            fn.__name__,
            (ComponentDef,),
            {
                "__slots__": (),
                "__doc__": plain.help_text(),
                "__module__": fn.__module__,
                "__qualname__": fn.__name__,
                "__signature__": plain.signature,
            },
        )
        d = cls(*args)
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
