"""Model composition: components, parameters, time dynamics and profiles, as one graph."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from gir.errors import GirError
from gir.frontend import expr as parse_expr
from gir.frontend.trace import trace
from gir.ir.builder import Builder
from gir.ir.graph import Graph, Value
from gir.ir.types import Type
from gir.models.binding import ModelBinding
from gir.models.closed_form import CLOSED_FORMS, edge_masses
from gir.models.component import (
    Component,
    Param,
    Spec,
    checked_spec,
    finalize_params,
    finalize_spec,
    spec_from_json,
    spec_to_json,
)
from gir.models.simulate import simulate

#: IR axis names: energy E, time T, the convolution's source time S; aux axes keep their names.
E, T, S = "E", "T", "S"
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


@attrs.frozen
class Dynamics:
    """p(t) = p + sum of ``terms`` (or per-subcycle terms), convolved with each kernel of ``irf`` in turn."""

    target: str
    terms: tuple[Component, ...] = ()
    subcycles: tuple[tuple[Component, ...], ...] = ()
    frequency: Spec | None = None
    irf: tuple[Component, ...] = ()
    #: "quadrature" (the sum over the time axis) or "analytic" (closed forms, gir.models.closed_form)
    convolution: str = "quadrature"


@attrs.frozen
class Profile:
    """p(z) = p + sum of ``terms`` along the auxiliary axis ``axis``, averaged with ``weights``."""

    target: str
    terms: tuple[Component, ...]
    axis: str
    weights: str = "mean"


class Model:
    """A spectroscopy model: a sum of components on the energy axis, optionally over time.

    Parameters are named ``component.param`` (``p1.A``); dynamics and profile
    terms add ``target.term.param`` (``p1.x0.expFun.tau``). A parameter is a
    fixed number, a :class:`Param` (free unless ``vary=False``) or an
    expression string of other parameters.
    """

    def __init__(self, axes: Sequence[str] = ("energy",)):
        axes = (axes,) if isinstance(axes, str) else tuple(axes)
        if len(axes) not in (1, 2) or len(set(axes)) != len(axes):
            raise GirError(f"a model has axes ('energy',) or ('time', 'energy'), got {axes}")
        self.axes = axes
        self.components: list[Component] = []
        self.dynamics_of: dict[str, Dynamics] = {}
        self.profiles: dict[str, Profile] = {}
        #: Other names of parameters (full name -> alias), in the order their graph inputs take.
        self.aliases: dict[str, str] = {}

    @property
    def energy(self) -> str:
        return self.axes[-1]

    @property
    def time(self) -> str | None:
        return self.axes[0] if len(self.axes) == 2 else None

    @property
    def ir_axes(self) -> dict[str, str]:
        """The model's axis names in grid order, each with the IR axis it is (``{"time": "T", ...}``)."""
        return {self.time: T, self.energy: E} if self.time else {self.energy: E}

    # -- building ---------------------------------------------------------------

    def add(self, component: Component) -> Component:
        """Add a peak or background; names must be unique (unnamed ones use their type)."""
        if not isinstance(component, Component) or component.kind not in ("peak", "background"):
            raise GirError(f"Model.add takes a peak or background component, got {component!r}")
        name = component.name or component.definition.name
        if any(self._name(c) == name for c in self.components):
            raise GirError(f"two components are named {name!r}; give each a unique name")
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise GirError(f"component name {name!r} is not an identifier")
        if name in self.axes:
            raise GirError(f"component name {name!r} is the name of an axis of the model")
        for key, spec in component.params.items():
            _check_syntax(f"{name}.{key}", spec)
        component = finalize_params(component, name)
        self.components.append(component)
        return component

    def dynamics(
        self,
        target: str,
        terms: Sequence[Component] | Sequence[Sequence[Component]],
        *,
        irf: Component | Sequence[Component] | None = None,
        frequency: Spec | None = None,
        global_terms: Sequence[Component] = (),
        convolution: str = "quadrature",
    ) -> None:
        """Make parameter ``target`` time dependent.

        Without ``frequency``, ``terms`` is a list of time functions added to
        the parameter. With ``frequency`` f, ``terms`` is a list of per-subcycle
        lists (N subcycles of length 1/(f N)) evaluated on the local time, and
        ``global_terms`` apply on the raw time axis. ``irf`` (a kernel, or a
        list of kernels applied in order) convolves the resolved trace with an
        instrument response along time: by quadrature on the time axis, or with
        ``convolution="analytic"`` by the exact integrals of
        :mod:`gir.models.closed_form` (one gaussCONV; stepFun, linFun, expFun terms).
        """
        if self.time is None:
            raise GirError(f"dynamics on {target!r} need a model with a time axis")
        self._check_target(target, "dynamics")
        if target in self.dynamics_of:
            raise GirError(f"{target!r} already has dynamics")
        if frequency is not None:
            frequency = checked_spec(frequency, f"{target}.frequency")
        kernels = () if irf is None else (irf,) if isinstance(irf, Component) else tuple(irf)
        kernels = tuple(_kind(kernels, "kernel", target))
        if frequency is None:
            if global_terms:
                raise GirError("global_terms need frequency= (subcycle dynamics)")
            dyn = Dynamics(target, tuple(_kind(terms, "time", target)), irf=kernels, convolution=convolution)
        else:
            if not terms or not all(isinstance(t, list | tuple) for t in terms):
                raise GirError(f"subcycle dynamics of {target!r}: give a list of per-subcycle lists of terms")
            subs = tuple(tuple(_kind(t, "time", target)) for t in terms)
            dyn = Dynamics(
                target, tuple(_kind(global_terms, "time", target)), subs, frequency, kernels, convolution
            )
        _check_convolution(dyn)
        dyn = _finalized(dyn)
        for kname, kernel in _term_names(dyn.irf, target):
            for key, spec in kernel.params.items():
                value = spec.value if isinstance(spec, Param) else spec
                if isinstance(value, str):
                    continue  # an expression: checked from the parameters at call time
                if not (math.isfinite(value) and value > 0):
                    raise GirError(f"kernel width {target}.{kname}.{key} must be positive, got {value}")
        for name, spec in self._dynamics_params(dyn).items():
            _check_syntax(name, spec)
        self.dynamics_of[target] = dyn

    def profile(
        self, target: str, terms: Sequence[Component], *, axis: str = "depth", weights: str = "mean"
    ) -> None:
        """Make ``target`` vary along an auxiliary axis (given at call time) and average over it.

        ``weights`` is ``"mean"`` (uniform) or ``"trapezoid"`` (quadrature on a
        non-uniform axis).
        """
        self._check_target(target, "a profile")
        if target in self.profiles:
            raise GirError(f"{target!r} already has a profile")
        if weights not in ("mean", "trapezoid"):
            raise GirError(f"profile weights must be 'mean' or 'trapezoid', got {weights!r}")
        if axis in self.axes or axis in (E, T, S) or not re.fullmatch(r"[A-Za-z_]\w*", axis):
            raise GirError(f"profile axis name {axis!r} is taken or invalid")
        for other in self.profiles.values():
            if other.axis == axis and other.weights != weights:
                raise GirError(
                    f"profile of {target!r}: axis {axis!r} is averaged with weights={other.weights!r} "
                    f"(profile of {other.target!r}); one axis has one weighting"
                )
        prof = Profile(target, tuple(_kind(terms, "profile", target)), axis, weights)
        for name, c in _term_names(prof.terms, target):
            for key, spec in c.params.items():
                _check_syntax(f"{target}.{name}.{key}", spec)
        final = (finalize_params(c, f"{target}.{n}") for n, c in _term_names(prof.terms, target))
        self.profiles[target] = attrs.evolve(prof, terms=tuple(final))

    def alias(self, name: str, alias: str) -> None:
        """Give parameter ``name`` a second name ``alias`` (an identifier).

        The alias names the parameter's graph input (``exe.param_names``, fit
        results), start values, bounds and ``fixed=`` take either name, and
        expressions may use either. Free parameters with aliases come first in
        ``theta``, in the order the aliases were given.
        """
        name = self.canonical(name)
        if name not in self.parameters():
            raise GirError(f"alias {alias!r} for unknown parameter {name!r}")
        if not isinstance(alias, str) or not re.fullmatch(r"[A-Za-z_]\w*", alias):
            raise GirError(f"alias {alias!r} of {name!r} is not an identifier")
        if name in self.aliases and self.aliases[name] != alias:
            raise GirError(f"{name!r} already has the alias {self.aliases[name]!r}")
        owner = self.canonical(alias)
        if owner != alias and owner != name:
            raise GirError(f"alias {alias!r} of {name!r} already names {owner!r}")
        taken = {*self.axes, *(p.axis for p in self.profiles.values()), *self.parameters()}
        if alias in taken:
            raise GirError(f"alias {alias!r} of {name!r} is the name of an axis or parameter")
        self.aliases[name] = alias

    def canonical(self, name: str) -> str:
        """The full (dotted) name of a parameter given by full name or alias."""
        for full, alias in self.aliases.items():
            if alias == name:
                return full
        return name

    def aliased_parameters(self) -> dict[str, Spec]:
        """:meth:`parameters` by alias where one is given, with expressions written with the aliases."""

        def text(spec: str) -> str:
            return DOTTED.sub(lambda m: self.aliases.get(m.group(), m.group()), spec)

        return {
            self.aliases.get(k, k): text(v) if isinstance(v, str) else v for k, v in self.parameters().items()
        }

    def _check_target(self, target: str, what: str) -> None:
        spec = self.parameters().get(target)
        if spec is None:
            raise GirError(f"{what} on unknown parameter {target!r}")
        if isinstance(spec, str):
            raise GirError(f"{what} on {target!r}, which is an expression ({spec!r}); put it on a parameter")

    # -- parameters ---------------------------------------------------------------

    @staticmethod
    def _name(c: Component) -> str:
        return c.name or c.definition.name

    def _dynamics_params(self, dyn: Dynamics) -> dict[str, Spec]:
        out: dict[str, Spec] = {}
        groups = [("", dyn.terms), *((f"sub{k}.", terms) for k, terms in enumerate(dyn.subcycles, 1))]
        for prefix, terms in groups:
            for name, c in _term_names(terms, dyn.target):
                out.update({f"{dyn.target}.{prefix}{name}.{p}": s for p, s in c.params.items()})
        if dyn.frequency is not None:
            out[f"{dyn.target}.frequency"] = dyn.frequency
        for name, kernel in _term_names(dyn.irf, dyn.target):
            out.update({f"{dyn.target}.{name}.{p}": s for p, s in kernel.params.items()})
        return out

    def parameters(self) -> dict[str, Spec]:
        """Every parameter by full name, in declaration order."""
        out: dict[str, Spec] = {}
        for c in self.components:
            out.update({f"{self._name(c)}.{p}": s for p, s in c.params.items()})
        for dyn in self.dynamics_of.values():
            out.update(self._dynamics_params(dyn))
        for prof in self.profiles.values():
            for name, c in _term_names(prof.terms):
                out.update({f"{prof.target}.{name}.{p}": s for p, s in c.params.items()})
        return out

    def free_parameters(self) -> dict[str, Param]:
        return {k: v for k, v in self.parameters().items() if isinstance(v, Param) and v.vary}

    def kernel_parameters(self) -> list[str]:
        """Free parameters that are instrument-response widths (must stay positive)."""
        free = self.free_parameters()
        return [k for k in self.kernel_widths() if k in free]

    def kernel_widths(self) -> dict[str, Spec]:
        """Every instrument-response width (fixed, free or expression) by full name."""
        return {
            f"{d.target}.{name}.{p}": spec
            for d in self.dynamics_of.values()
            for name, kernel in _term_names(d.irf, d.target)
            for p, spec in kernel.params.items()
        }

    def parameter_values(self, free: Mapping[str, float]) -> dict[str, float]:
        """Every parameter's own value (before time dependence and profiles): the free ones from
        ``free``, fixed numbers as given, expressions evaluated."""
        specs = self.parameters()
        free = {self.canonical(k): v for k, v in free.items()}
        out: dict[str, float] = {}

        def value(name: str) -> float:
            if name not in out:
                spec = specs[name]
                if isinstance(spec, str):
                    g, refs = _parsed(spec)
                    out[name] = _scalar_value(
                        g, {v.name: value(self.canonical(refs.get(v.name, v.name))) for v in g.inputs}
                    )
                elif name in free:
                    out[name] = float(free[name])
                else:
                    out[name] = float(spec.value if isinstance(spec, Param) else spec)
            return out[name]

        for name in specs:
            value(name)
        return out

    def expressions(self) -> dict[str, str]:
        """The parameters given as expressions, by name."""
        return {k: v for k, v in self.parameters().items() if isinstance(v, str)}

    # -- the graph ----------------------------------------------------------------

    def graph(self, components: bool = False) -> Graph:
        """The model as IR: the total, or with ``components=True`` also each component."""
        return _GraphBuilder(self).build(components)

    def to_graph(self) -> Graph:
        return self.graph()

    def __gir_binding__(self, *, passes: Any = "O2", fixed: Mapping[str, float] | None = None):
        """What the executable compiled from this model carries beside the graph (see
        :mod:`gir.runtime.binding`)."""
        return ModelBinding(self, passes=passes, fixed=fixed)

    def simulate(
        self, theta: Any = None, *, noise: Any = 0.0, seed: Any = None, target: str = "numpy", **arrays: Any
    ) -> np.ndarray:
        """The model at ``theta`` on ``arrays`` (default: demo axes) plus Gaussian noise of std ``noise``.

        See :func:`gir.models.simulate.simulate`.
        """
        return simulate(self, theta, noise=noise, seed=seed, target=target, **arrays)

    # -- serialization ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "axes": list(self.axes),
            "components": [c.to_dict() for c in self.components],
            "dynamics": [
                {
                    "target": d.target,
                    "terms": [t.to_dict() for t in d.terms],
                    **({"subcycles": [[t.to_dict() for t in s] for s in d.subcycles]} if d.subcycles else {}),
                    **({"frequency": spec_to_json(d.frequency)} if d.frequency is not None else {}),
                    **({"irf": [k.to_dict() for k in d.irf]} if d.irf else {}),
                    **({"convolution": d.convolution} if d.convolution != "quadrature" else {}),
                }
                for d in self.dynamics_of.values()
            ],
            "profiles": [
                {
                    "target": p.target,
                    "terms": [t.to_dict() for t in p.terms],
                    "axis": p.axis,
                    "weights": p.weights,
                }
                for p in self.profiles.values()
            ],
            **({"aliases": dict(self.aliases)} if self.aliases else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Model:
        load = Component.from_dict
        m = cls(data.get("axes", ("energy",)))
        for c in data.get("components", []):
            m.add(load(c))
        profiles = list(data.get("profiles", []))
        early = [p for p in profiles if p["target"] in m.parameters()]  # dynamics may target their terms
        for p in early:
            m.profile(p["target"], [load(t) for t in p["terms"]], axis=p["axis"], weights=p["weights"])
        for d in data.get("dynamics", []):
            irf = d.get("irf")  # a list of kernels, or one kernel (older files)
            irf = None if irf is None else load(irf) if isinstance(irf, Mapping) else [load(k) for k in irf]
            how = d.get("convolution", "quadrature")
            if "subcycles" in d:
                subs = [[load(t) for t in s] for s in d["subcycles"]]
                freq = spec_from_json(d["frequency"])
                m.dynamics(
                    d["target"], subs, irf=irf, frequency=freq, global_terms=[load(t) for t in d["terms"]],
                    convolution=how,
                )  # fmt: skip
            else:
                m.dynamics(d["target"], [load(t) for t in d["terms"]], irf=irf, convolution=how)
        for p in (p for p in profiles if p not in early):
            m.profile(p["target"], [load(t) for t in p["terms"]], axis=p["axis"], weights=p["weights"])
        for name, alias in data.get("aliases", {}).items():
            m.alias(name, alias)
        return m

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Model:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        return f"<Model {self.axes}: {', '.join(map(self._name, self.components))}>"


def _kind(terms: Iterable[Any], kind: str, target: str) -> list[Component]:
    terms = list(terms)
    for t in terms:
        if not isinstance(t, Component) or t.kind != kind:
            raise GirError(f"{target}: expected {kind} components, got {t!r}")
    return terms


def _check_convolution(dyn: Dynamics) -> None:
    """An analytic convolution needs one kernel and terms with closed forms for it."""
    if dyn.convolution == "quadrature":
        return
    where = f"dynamics of {dyn.target!r}"
    if dyn.convolution != "analytic":
        raise GirError(f"{where}: convolution must be 'quadrature' or 'analytic', got {dyn.convolution!r}")
    kinds = ", ".join(f"{k} ({', '.join(v)})" for k, v in CLOSED_FORMS.items())
    if len(dyn.irf) != 1 or dyn.irf[0].definition.name not in CLOSED_FORMS:
        given = [k.definition.name for k in dyn.irf] or "none"
        raise GirError(f"{where}: convolution='analytic' needs one kernel of {kinds}; irf is {given}")
    forms = CLOSED_FORMS[dyn.irf[0].definition.name]
    if dyn.subcycles:
        raise GirError(f"{where}: convolution='analytic' does not cover subcycle dynamics")
    missing = sorted({c.definition.name for c in dyn.terms} - set(forms))
    if missing:
        raise GirError(f"{where}: no closed form for {missing} with {dyn.irf[0].definition.name}; "
                       f"convolution='analytic' covers {kinds}")  # fmt: skip


def _finalized(dyn: Dynamics) -> Dynamics:
    """``dyn`` with its numbers checked and its start values clipped into their bounds (finalize_spec)."""

    def clip(terms: Sequence[Component], prefix: str = "") -> tuple[Component, ...]:
        named = _term_names(terms, dyn.target)
        return tuple(finalize_params(c, f"{dyn.target}.{prefix}{n}") for n, c in named)

    return attrs.evolve(
        dyn,
        terms=clip(dyn.terms),
        subcycles=tuple(clip(terms, f"sub{k}.") for k, terms in enumerate(dyn.subcycles, 1)),
        frequency=None if dyn.frequency is None else finalize_spec(dyn.frequency, f"{dyn.target}.frequency"),
        irf=clip(dyn.irf),
    )


def _term_names(terms: Sequence[Component], owner: str = "") -> list[tuple[str, Component]]:
    """Names of terms: their type, numbered from the second of a kind on (expFun, expFun_2)."""
    seen: dict[str, int] = {}
    out = []
    for c in terms:
        base = c.name or c.definition.name
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}_{seen[base]}"
        if any(name == n for n, _ in out):
            raise GirError(f"{owner}: two terms are named {name!r}; give each a unique name")
        out.append((name, c))
    return out


def _placeholder(name: str) -> str:
    return name.replace(".", "_")


def _encode(text: str) -> tuple[str, dict[str, str]]:
    """``text`` with each dotted name replaced by an identifier (placeholder -> name).

    The identifier is the name with dots as underscores (columns in error
    messages stay right), numbered on where that meets another name of the text
    (``a.b_c`` and ``a_b.c``, or ``p1.A`` and ``p1_A``).
    """
    dotted = list(dict.fromkeys(DOTTED.findall(text)))
    taken = set(re.findall(r"[A-Za-z_]\w*", DOTTED.sub(" ", text)))
    ids: dict[str, str] = {}
    for ref in dotted:
        ident, k = _placeholder(ref), 1
        while ident in taken:
            ident, k = f"{_placeholder(ref)}_{k}", k + 1
        taken.add(ident)
        ids[ref] = ident
    return DOTTED.sub(lambda m: ids[m.group()], text), {i: r for r, i in ids.items()}


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[Graph, dict[str, str]]:
    """An expression's graph and its placeholders (cached: reports evaluate the same texts per fit)."""
    source, refs = _encode(text)
    return parse_expr(source), refs


def _scalar_value(g: Graph, inputs: Mapping[str, float]) -> float:
    """A scalar expression graph evaluated through each op's NumPy reference."""
    env: dict[Value, Any] = {v: np.float64(inputs[v.name]) for v in g.inputs}
    for node in g.nodes:
        with np.errstate(all="ignore"):
            env[node.outputs[0]] = node.opdef.reference(**node.attributes)(*(env[v] for v in node.inputs))
    return float(env[g.outputs[0]])


def _check_syntax(name: str, spec: Spec) -> None:
    if isinstance(spec, str):
        try:
            parse_expr(_encode(spec)[0])
        except GirError as e:
            raise GirError(f"parameter {name!r}: {e}") from None


class _GraphBuilder:
    """Lowers a Model to IR: resolves parameters (with dynamics and profiles), then components."""

    def __init__(self, model: Model):
        self.m = model
        self.specs = model.parameters()
        axes = [T, S] if model.time else []
        aux = list(dict.fromkeys(p.axis for p in model.profiles.values()))
        self.b = Builder((*axes, *aux, E))
        self.memo: dict[tuple[str, str], Value] = {}
        self.resolving: list[str] = []

    def build(self, with_components: bool) -> Graph:
        m, b = self.m, self.b
        self.x = b.input(m.energy, Type("f64", (E,)))
        if m.time:
            self.t = {T: b.input(m.time, Type("f64", (T,)))}
            if any(d.irf for d in m.dynamics_of.values()):
                self.t[S] = b.input(f"{m.time}.s", Type("f64", (S,)))
                self.conv = {
                    key: b.input(f"{m.time}.{key}", Type("f64", axes))
                    for key, axes in [("d", (T, S)), ("w", (S,)), ("a", (T,)), ("b", (T,)),
                                      ("first", (S,)), ("last", (S,))]
                }  # fmt: skip
        self.z = {}
        for prof in m.profiles.values():
            if prof.axis not in self.z:
                self.z[prof.axis] = b.input(prof.axis, Type("f64", (prof.axis,)))
        for prof in m.profiles.values():
            key = f"{prof.axis}.w"
            if prof.weights == "trapezoid" and key not in self.z:
                self.z[key] = b.input(key, Type("f64", (prof.axis,)))
        free = m.free_parameters()
        order = [n for n in m.aliases if n in free] + [n for n in free if n not in m.aliases]
        self.inputs = {name: b.input(m.aliases.get(name, name)) for name in order}
        peaks = {m._name(c): self.component(c) for c in m.components if c.kind == "peak"}
        values = {}
        for c in m.components:
            name = m._name(c)
            values[name] = peaks[name] if name in peaks else self.component(c, peaks)
        if not values:
            raise GirError("the model has no components")
        total = (
            values[next(iter(values))] if len(values) == 1 else b.op("add", *values.values(), hint="model")
        )
        outputs = [total, *values.values()] if with_components else [total]
        return b.build(outputs, name="model")

    # -- components ---------------------------------------------------------------

    def component(self, c: Component, peaks: Mapping[str, Value] | None = None) -> Value:
        name = self.m._name(c)
        args = [self.x]
        if c.definition.signal:
            chosen = list(peaks) if c.signal is None else list(c.signal)
            for s in chosen:
                if s not in peaks:
                    raise GirError(f"{name}: signal component {s!r} is not a peak of the model")
            if not chosen:
                raise GirError(f"{name}: the signal is empty (the model has no peaks)")
            args.append(
                peaks[chosen[0]] if len(chosen) == 1 else self.b.op("add", *(peaks[s] for s in chosen))
            )
        args += [self.param(f"{name}.{p}", T) for p in c.definition.params]
        (value,) = self.b.call(c.definition.graph(), *args, hint=name)
        return self.average(value)

    def average(self, value: Value) -> Value:
        """Average a value over every auxiliary axis it varies along."""
        for axis in self.z:
            if axis in value.type.axes:
                w = self.z.get(f"{axis}.w")
                if w is None:
                    value = self.b.op("mean", value, axis=axis)
                else:
                    value = self.b.op("sum", self.b.op("mul", value, w), axis=axis)
        return value

    # -- parameters ---------------------------------------------------------------

    def param(self, name: str, on: str) -> Value:
        """The value of parameter ``name``, with time dependence evaluated on axis ``on`` (T or S)."""
        key = (name, on)
        if key not in self.memo:
            if name in self.resolving:
                cycle = " -> ".join([*self.resolving[self.resolving.index(name) :], name])
                raise GirError(f"cyclic parameter expressions: {cycle}")
            self.resolving.append(name)
            try:
                self.memo[key] = self._resolve(name, on)
            finally:
                self.resolving.pop()
        return self.memo[key]

    def _resolve(self, name: str, on: str) -> Value:
        spec = self.specs[name]
        b = self.b
        if isinstance(spec, str):
            return self.expression(name, spec, on)
        value = (
            self.inputs[name]
            if name in self.inputs
            else b.const(spec.value if isinstance(spec, Param) else spec)
        )
        dyn = self.m.dynamics_of.get(name)
        if dyn is not None:
            if dyn.irf:
                if on == S:
                    raise GirError(f"{name!r} is convolved and cannot be used in another convolved trace")
                if dyn.convolution == "analytic":
                    value = self.convolve_analytic(dyn, value)
                else:  # each convolution moves the trace between S and T; the last one ends on T
                    value = self.convolve(dyn, self.trace(dyn, value, S if len(dyn.irf) % 2 else T))
            else:
                value = self.trace(dyn, value, on)
        prof = self.m.profiles.get(name)
        if prof is not None:
            terms = [self.term(prof.target, n, c, self.z[prof.axis], on) for n, c in _term_names(prof.terms)]
            value = b.op("add", value, *terms, hint=name)
        return value

    def expression(self, name: str, text: str, on: str) -> Value:
        source, refs = _encode(text)
        for ref in refs.values():
            if ref not in self.specs:
                raise GirError(f"parameter {name!r}: unknown parameter {ref!r} in {text!r}")
        g = parse_expr(source, name=_placeholder(name))
        args = []
        for v in g.inputs:
            ref = self.m.canonical(refs.get(v.name, v.name))
            if ref not in self.specs:
                raise GirError(f"parameter {name!r}: unknown parameter {ref!r} in {text!r}")
            args.append(self.param(ref, on))
        (value,) = self.b.call(g, *args, hint=name)
        return value

    def term(self, target: str, term_name: str, c: Component, axis_value: Value, on: str) -> Value:
        args = [self.param(f"{target}.{term_name}.{p}", on) for p in c.definition.params]
        graph = c.definition.graph(**{c.definition.arg_names[0]: axis_value.type.axes})
        (value,) = self.b.call(graph, axis_value, *args, hint=f"{target}.{term_name}")
        return value

    def trace(self, dyn: Dynamics, base: Value, on: str) -> Value:
        """base + terms on the time axis ``on`` (raw, or per subcycle on the local time)."""
        b, t = self.b, self.t[on]
        parts = [self.term(dyn.target, n, c, t, on) for n, c in _term_names(dyn.terms)]
        if dyn.subcycles:
            n_sub = len(dyn.subcycles)
            period = b.op(
                "div",
                b.const(1.0),
                b.op("mul", self.param(f"{dyn.target}.frequency", on), b.const(float(n_sub))),
            )
            started = b.op("ge", t, b.const(0.0))
            count = b.op("floor", b.op("div", t, period))
            local = b.op(
                "where", started, b.op("sub", t, b.op("mul", count, period)), b.const(0.0), hint="local_time"
            )
            index = b.op(
                "where",
                started,
                b.op("add", b.op("mod", count, b.const(float(n_sub))), b.const(1.0)),
                b.const(0.0),
            )
            for k, terms in enumerate(dyn.subcycles, 1):
                sub = [self.term(dyn.target, f"sub{k}.{n}", c, local, on) for n, c in _term_names(terms)]
                if not sub:
                    continue  # a subcycle without terms adds nothing
                total = sub[0] if len(sub) == 1 else b.op("add", *sub)
                parts.append(b.op("where", b.op("eq", index, b.const(float(k))), total, b.const(0.0)))
        return b.op("add", base, *parts, hint=dyn.target) if parts else base

    def kernel_widths(self, dyn: Dynamics, name: str, kernel: Component) -> list[Value]:
        """A kernel's width parameters (scalars) for the convolution of ``dyn``."""
        args = []
        for key in kernel.definition.params:
            width = self.param(f"{dyn.target}.{name}.{key}", T)
            if width.type.axes:
                raise GirError(
                    f"kernel width {dyn.target}.{name}.{key} varies along {width.type.axes}; "
                    "it must be a scalar"
                )
            args.append(width)
        return args

    def convolve_analytic(self, dyn: Dynamics, base: Value) -> Value:
        """base + each term's exact convolution share + the edge values' shares (closed_form), on T."""
        b, c, t = self.b, self.conv, self.t[T]
        ((kname, kernel),) = _term_names(dyn.irf, dyn.target)
        widths = self.kernel_widths(dyn, kname, kernel)
        forms = CLOSED_FORMS[kernel.definition.name]
        parts = []
        for name, term in _term_names(dyn.terms):
            params = [self.param(f"{dyn.target}.{name}.{p}", T) for p in term.definition.params]
            (share,) = b.call(_traced_form(forms[term.definition.name]), t, c["a"], c["b"], *widths, *params,
                              hint=f"{dyn.target}.{name}.convolved")  # fmt: skip
            parts.append(share)
        # outside the window the trace is its edge value: those masses carry p(s0) - base and p(sN) - base
        p = self.trace(dyn, base, S)
        edge_low, edge_high = b.call(_traced_form(edge_masses, t=None), c["a"], c["b"], *widths)
        for mass, indicator in [(edge_low, c["first"]), (edge_high, c["last"])]:
            value = b.op("sub", b.op("sum", b.op("mul", indicator, p), axis=S), base)
            parts.append(b.op("mul", mass, value))
        return b.op("add", base, *parts, hint=f"{dyn.target}.convolved")

    def convolve(self, dyn: Dynamics, p: Value) -> Value:
        """Normalized convolutions with each kernel in turn, exact on non-uniform time axes.

        ``p`` lies on S (an odd number of kernels) or T; each convolution sums
        over the axis its input lies on, so the result of the last is on T.
        """
        b, c = self.b, self.conv
        kernels = _term_names(dyn.irf, dyn.target)
        for i, (name, kernel) in enumerate(kernels):
            args = self.kernel_widths(dyn, name, kernel)
            src = S if (len(kernels) - i) % 2 else T
            if src == S:  # output on T: k(t_i - s_j), weights and edge values on S
                d, on, w, first, last = c["d"], T, c["w"], c["first"], c["last"]
            else:  # output on S: k(s_j - t_i), weights and edge values on T
                if "w_t" not in c:
                    for key, axis in [("w_t", T), ("first_t", T), ("last_t", T), ("a_s", S), ("b_s", S)]:
                        c[key] = b.input(f"{self.m.time}.{key}", Type("f64", (axis,)))
                    c["d_s"] = b.op("neg", c["d"])
                d, on, w, first, last = c["d_s"], S, c["w_t"], c["first_t"], c["last_t"]
            a, z = (c["a"], c["b"]) if on == T else (c["a_s"], c["b_s"])
            graph = kernel.definition.graph(d=(T, S), a=on, b=on)
            k, above, below = b.call(graph, d, a, z, *args, hint=f"{dyn.target}.{name}")
            kw = b.op("mul", k, w)
            num = b.op(
                "add",
                b.op("sum", b.op("mul", kw, p), axis=src),
                b.op("mul", above, b.op("sum", b.op("mul", first, p), axis=src)),
                b.op("mul", below, b.op("sum", b.op("mul", last, p), axis=src)),
            )
            den = b.op("add", b.op("sum", kw, axis=src), above, below)
            p = b.op("div", num, den, hint=f"{dyn.target}.convolved")
        return p


@functools.cache
def _traced_form(fn: Any, t: str | None = T) -> Graph:
    """A closed-form function of :mod:`gir.models.closed_form` traced with its time arrays on T."""
    return trace(fn, **({"t": t} if t else {}), a=T, b=T)
