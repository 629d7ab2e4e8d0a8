"""Models from trspecfit's YAML model files, with trspecfit's flat parameter names.

::

    m = gm.from_trspecfit(
        "models_energy.yaml", model="2D",
        time_dependence=[{"target_parameter": "GLP_01_x0", "dynamics_yaml": "models_time.yaml",
                          "dynamics_model": ["IRF", "MonoExp"], "frequency": 10.0}],
    )
    exe = gir.compile(m)  # exe.param_names: ('GLP_01_x0', 'GLP_01_x0_expFun_01_A', ...)

Each parameter keeps its gir name (``GLP_01.x0``) and gets trspecfit's name
(``GLP_01_x0``) as its alias (:meth:`gir.models.Model.alias`). See docs/trspecfit.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gir.errors import GirError
from gir.frontend import expr as parse_expr
from gir.frontend.expr import FUNCTIONS
from gir.models.component import REGISTRY, Component, Param
from gir.models.model import Model

#: trspecfit's function libraries, by the kind of model that may use them.
ENERGY_FUNCTIONS = (
    "Offset",
    "Shirley",
    "LinBack",
    "Gauss",
    "GaussAsym",
    "Lorentz",
    "Voigt",
    "GLS",
    "GLP",
    "DS",
)
TIME_FUNCTIONS = ("none", "stepFun", "linFun", "expFun", "sinFun", "sinDivX", "erfFun", "sqrtFun")
KERNELS = ("gaussCONV", "expSymCONV", "expDecayCONV", "expRiseCONV", "boxCONV")
PROFILE_FUNCTIONS = ("pExpDecay", "pLinear", "pGauss")
ALL_FUNCTIONS = ENERGY_FUNCTIONS + TIME_FUNCTIONS + KERNELS + PROFILE_FUNCTIONS
#: Functions trspecfit does not number (backgrounds and convolution kernels).
UNNUMBERED = ("Offset", "Shirley", "LinBack", *KERNELS)
VARY_LEVELS = {True: True, False: False, "file": True, "project": True, "static": False}
#: trspecfit's level of each vary value: shared by the files of a project, fitted per file, or fixed.
LEVELS = {True: "file", False: "static", "file": "file", "project": "project", "static": "static"}
DYNAMICS_KEYS = ("target_model", "target_parameter", "dynamics_yaml", "dynamics_model", "frequency")
PROFILE_KEYS = ("target_model", "target_parameter", "profile_yaml", "profile_model")
#: A numbered parameter reference in a dynamics expression: function, then _NN_param.
RELATIVE = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*?)(_\d{2,}_[A-Za-z_][A-Za-z0-9_]*)\b")
IDENT = re.compile(r"[A-Za-z_]\w*")


class _Pairs(list):
    """A YAML mapping as its (key, value) pairs in file order, repeated keys kept."""


def _loader() -> type:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency of the fit extra
        raise GirError("reading trspecfit model files needs pyyaml: pip install 'gir[fit]'") from None

    class Loader(yaml.SafeLoader):
        """YAML 1.2 core scalars (as trspecfit's reader), mappings as pairs."""

    tags = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float")}
    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag not in tags]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )

    def pairs(loader: Any, node: Any) -> _Pairs:
        loader.flatten_mapping(node)
        return _Pairs(
            (loader.construct_object(k, deep=True), loader.construct_object(v, deep=True))
            for k, v in node.value
        )

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, pairs)
    return Loader


def _read(path: Path) -> dict[str, list[tuple[str, Any]]]:
    """The models of a trspecfit YAML file: model name -> [(numbered component name, parameters)]."""
    loader = _loader()  # first: a GirError if pyyaml is missing
    import yaml

    try:
        data = yaml.load(path.read_text(), Loader=loader)
    except FileNotFoundError:
        raise GirError(f"trspecfit model file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise GirError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, _Pairs):
        raise GirError(f"{path}: expected a mapping of model names to components")
    models: dict[str, list[tuple[str, Any]]] = {}
    for name, comps in data:
        if name in models:
            raise GirError(f"{path}: the model {name!r} is defined twice")
        if not isinstance(comps, _Pairs):
            raise GirError(f"{path}, model {name!r}: expected a mapping of components")
        counts: dict[str, int] = {}
        numbered = []
        for key, params in comps:
            if key in ALL_FUNCTIONS and key not in UNNUMBERED:
                counts[key] = counts.get(key, 0) + 1
                key = f"{key}_{counts[key]:02d}"
            numbered.append((key, params))
        models[str(name)] = numbered
    return models


def _pick(path: Path, models: Mapping[str, list[tuple[str, Any]]], name: str) -> list[tuple[str, Any]]:
    """The components of model ``name``, checked as trspecfit checks the models it loads."""
    if name not in models:
        raise GirError(f"{path}: no model {name!r} (models: {', '.join(models)})")
    seen = set()
    for key, _ in models[name]:
        if _base(key) not in ALL_FUNCTIONS:
            raise GirError(f"{path}, model {name!r}: unknown component {key!r}")
        if key in seen:
            raise GirError(
                f"{path}, model {name!r}: {key!r} appears twice (trspecfit keeps only the last one)"
            )
        seen.add(key)
    return models[name]


def _base(name: str) -> str:
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


def _renumber(parts: list[list[tuple[str, Any]]]) -> list[list[tuple[str, Any]]]:
    """trspecfit's numbering of a dynamics model's components, unique across its submodels."""
    used: dict[str, int] = {}
    for part in parts:
        for key, _ in part:
            base = _base(key)
            if base not in UNNUMBERED:
                used[base] = max(used.get(base, 1), int(key.rpartition("_")[2]) + 1)
    assigned: dict[str, set[int]] = {}
    out = []
    for part in parts:
        renamed = []
        for key, params in part:
            base = _base(key)
            if base not in UNNUMBERED:
                number = int(key.rpartition("_")[2])
                taken = assigned.setdefault(base, set())
                if number in taken:
                    while used[base] in taken:
                        used[base] += 1
                    number, used[base] = used[base], used[base] + 1
                taken.add(number)
                key = f"{base}_{number:02d}"
            renamed.append((key, params))
        out.append(renamed)
    return out


class _Importer:
    def __init__(self, path: Path, model: str, time: bool):
        self.folder = path.parent
        self.m = Model(("time", "energy") if time else ("energy",))
        self.flat: dict[str, str] = {}  # trspecfit name -> gir name
        self.where: dict[str, str] = {}  # trspecfit name -> "file, model, entry" for errors
        self.kind: dict[str, str] = {}  # trspecfit name -> energy, dynamics or profile
        self.levels: dict[str, str] = {}  # trspecfit name -> "project", "file" or "static"
        self.order: dict[str, list[str]] = {}  # a parameter -> the parameters trspecfit lists after it
        self.dynamics: set[str] = set()
        self.profiled: set[str] = set()
        self.path, self.model = path, model

    # -- parameters ---------------------------------------------------------------

    def spec(self, where: str, value: Any, prefix: str = "") -> Param | str:
        """A trspecfit parameter list as a gir parameter."""
        if not isinstance(value, list):
            raise GirError(
                f"{where}: expected [value, vary, min, max], [value, vary] or ['expression'], got {value!r}"
            )
        if len(value) == 1:
            if not isinstance(value[0], str):
                raise GirError(f"{where}: a one-element list holds an expression string, got {value[0]!r}")
            text = value[0]
            if prefix:  # trspecfit's relative names in a dynamics model
                time_like = {*TIME_FUNCTIONS, *KERNELS}

                def absolute(match: re.Match[str]) -> str:
                    whole = match.group(0)
                    if whole.startswith(prefix + "_") or match.group(1) not in time_like:
                        return whole
                    return f"{prefix}_{whole}"

                text = RELATIVE.sub(absolute, text)
            try:
                parse_expr(text)
            except GirError as e:
                raise GirError(f"{where}: expression {text!r}: {e}") from None
            return text
        if len(value) not in (2, 4):
            raise GirError(
                f"{where}: expected [value, vary, min, max], [value, vary] or ['expression'], got {value!r}"
            )
        start, vary = value[0], value[1]
        if isinstance(start, bool) or not isinstance(start, int | float):
            raise GirError(f"{where}: the value {start!r} is not a number")
        if not isinstance(vary, bool | str) or vary not in VARY_LEVELS:
            raise GirError(f"{where}: vary must be True, False, 'file', 'project' or 'static', got {vary!r}")
        lo, hi = (-float("inf"), float("inf")) if len(value) == 2 else value[2:]
        for bound in (lo, hi):
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise GirError(f"{where}: the bound {bound!r} is not a number")
        if lo > hi:
            raise GirError(f"{where}: min {lo} is greater than max {hi}")
        if not lo <= start <= hi:
            raise GirError(f"{where}: value {start} is outside its bounds [{lo}, {hi}]")
        return Param(float(start), vary=VARY_LEVELS[vary], bounds=(float(lo), float(hi)))

    def component(
        self,
        where: str,
        key: str,
        params: Any,
        allowed: Sequence[str],
        prefix: str = "",
        relative: bool = False,
    ) -> tuple[Component, list[tuple[str, str]]]:
        """The gir component of a trspecfit entry, with (trspecfit name, parameter) pairs in file order."""
        base = _base(key)
        if base not in allowed:
            raise GirError(f"{where}: {base!r} cannot be used here (allowed: {', '.join(allowed)})")
        definition = REGISTRY[base]
        if not isinstance(params, _Pairs):
            raise GirError(f"{where}: expected a mapping of parameters, got {params!r}")
        keys = [k for k, _ in params]
        if sorted(keys) != sorted(definition.params):
            raise GirError(f"{where}: {base} takes the parameters {list(definition.params)}, got {keys}")
        flat_prefix = f"{prefix}_{key}" if prefix else key
        specs = {k: self.spec(f"{where}, parameter {k!r}", v, prefix if relative else "") for k, v in params}
        names = [(f"{flat_prefix}_{k}", k) for k in keys]
        for k, v in params:
            if not isinstance(specs[k], str):
                self.levels[f"{flat_prefix}_{k}"] = LEVELS[v[1]]
        return definition(key, **specs), names

    def register(self, names: list[tuple[str, str]], gir_prefix: str, where: str, kind: str) -> list[str]:
        out = []
        for flat, p in names:
            if flat in self.flat:
                raise GirError(f"{where}: the parameter name {flat!r} is taken")
            self.flat[flat] = f"{gir_prefix}.{p}"
            self.where[flat] = f"{where}, parameter {p!r}"
            self.kind[flat] = kind
            out.append(flat)
        return out

    # -- the energy model ---------------------------------------------------------------

    def energy(self) -> None:
        comps = _pick(self.path, _read(self.path), self.model)
        if not comps:
            raise GirError(f"{self.path}, model {self.model!r}: no components")
        kinds = [REGISTRY[_base(k)].kind if _base(k) in REGISTRY else "" for k, _ in comps]
        for i, (key, params) in enumerate(comps):
            where = f"{self.path}, model {self.model!r}, {key}"
            c, names = self.component(where, key, params, ENERGY_FUNCTIONS)
            if c.definition.signal:
                later = kinds[i + 1 :]
                if "background" in later:
                    raise GirError(
                        f"{where}: a background listed after {key} is part of its input spectrum in "
                        "trspecfit; gir's signal is a sum of peaks: list the backgrounds before it"
                    )
                peaks = [k for k, _ in comps[i + 1 :]]
                if not peaks:
                    raise GirError(f"{where}: no peaks are listed after {key} (its input spectrum)")
                c = c.definition(key, signal=peaks, **c.params)
            self.m.add(c)
            for flat in self.register(names, key, where, "energy"):
                self.order[flat] = []

    # -- dynamics and profiles ---------------------------------------------------------

    def _call(self, call: Mapping[str, Any], keys: tuple[str, ...], what: str) -> dict[str, Any]:
        if not isinstance(call, Mapping):
            raise GirError(f"{what}: give a dict of the keyword arguments, got {call!r}")
        unknown = sorted(set(call) - set(keys))
        if unknown:
            raise GirError(f"{what}: unknown argument {unknown[0]!r} (arguments: {', '.join(keys)})")
        missing = [k for k in keys[1:] if k not in call and k != "frequency"]
        if missing:
            raise GirError(f"{what}: missing argument {missing[0]!r}")
        target_model = call.get("target_model", self.model)
        if target_model != self.model:
            raise GirError(f"{what}: target_model {target_model!r} is not the imported model {self.model!r}")
        target = call["target_parameter"]
        if target not in self.flat or self.kind[target] == "dynamics":
            raise GirError(f"{what}: unknown parameter {target!r} in model {self.model!r}")
        return dict(call)

    def _submodels(
        self, call: Mapping[str, Any], file_key: str, model_key: str, what: str
    ) -> tuple[Path, list]:
        path = self.folder / Path(call[file_key])
        names = call[model_key]
        names = [names] if isinstance(names, str) else list(names)
        if not names or not all(isinstance(n, str) for n in names):
            raise GirError(
                f"{what}: {model_key} must be a model name or a list of names, got {call[model_key]!r}"
            )
        if len(set(names)) != len(names):
            raise GirError(f"{what}: {model_key} names a model twice: {names}")
        models = _read(path)
        return path, [(n, _pick(path, models, n)) for n in names]

    def profile(self, call: Mapping[str, Any]) -> None:
        what = "par_profiles entry"
        call = self._call(call, PROFILE_KEYS, what)
        target = call["target_parameter"]
        path, models = self._submodels(call, "profile_yaml", "profile_model", what)
        if len(models) != 1:
            raise GirError(f"{what} for {target!r}: a profile takes one model, got {[n for n, _ in models]}")
        if self.kind[target] != "energy" or isinstance(self.m.parameters()[self.flat[target]], str):
            raise GirError(f"{what}: {target!r} is not a parameter (number) of the energy model")
        if target in self.profiled:
            raise GirError(f"{what}: {target!r} already has a profile")
        name, comps = models[0]
        gir_target = self.flat[target]
        terms, added = [], []
        for key, params in comps:
            where = f"{path}, model {name!r}, {key}"
            c, names = self.component(where, key, params, PROFILE_FUNCTIONS, prefix=target)
            terms.append(c)
            added += self.register(names, f"{gir_target}.{key}", where, "profile")
        if not terms:
            raise GirError(f"{path}, model {name!r}: no components")
        self.m.profile(gir_target, terms, axis="aux", weights="mean")
        self.order[target] += added
        for flat in added:
            self.order[flat] = []
        self.profiled.add(target)

    def time_dependence(self, call: Mapping[str, Any]) -> None:
        what = "time_dependence entry"
        call = self._call(call, DYNAMICS_KEYS, what)
        target = call["target_parameter"]
        frequency = call.get("frequency", -1)
        if isinstance(frequency, bool) or not isinstance(frequency, int | float):
            raise GirError(f"{what} for {target!r}: frequency must be a number, got {frequency!r}")
        path, models = self._submodels(call, "dynamics_yaml", "dynamics_model", what)
        if target in self.dynamics:
            raise GirError(f"{what}: {target!r} already has time dependence")
        if target in self.profiled:
            raise GirError(
                f"{what}: {target!r} has a profile; trspecfit puts dynamics on a profile parameter"
            )
        if isinstance(self.m.parameters()[self.flat[target]], str):
            raise GirError(f"{what}: {target!r} is an expression; put the dynamics on the parameter it uses")
        if len(models) == 1 and frequency != -1:
            raise GirError(f"{what} for {target!r}: frequency needs subcycles (two or more dynamics models)")
        if len(models) > 1 and not frequency > 0:
            raise GirError(f"{what} for {target!r}: several dynamics models (subcycles) need a frequency > 0")
        gir_target = self.flat[target]
        parts = _renumber([comps for _, comps in models])
        groups: list[list[Component]] = []
        kernels: list[Component] = []
        added: list[str] = []
        for k, ((name, _), comps) in enumerate(zip(models, parts, strict=True)):
            terms = []
            for key, params in comps:
                where = f"{path}, model {name!r}, {key}"
                allowed = TIME_FUNCTIONS + KERNELS if k == 0 else TIME_FUNCTIONS
                if _base(key) == "none":
                    if params not in (None, _Pairs()):
                        raise GirError(f"{where}: 'none' takes no parameters")
                    continue
                if _base(key) not in allowed:
                    raise GirError(
                        f"{where}: {_base(key)!r} in a subcycle; gir convolves the whole trace: put the "
                        "instrument response in the first (global) model"
                    )
                c, names = self.component(where, key, params, allowed, prefix=target, relative=True)
                if c.kind == "kernel":
                    if terms:
                        raise GirError(
                            f"{where}: time functions listed before {key} are not convolved in trspecfit; "
                            "gir convolves the whole trace: list the instrument response first"
                        )
                    kernels.append(c)
                    gir_prefix = f"{gir_target}.{key}"
                else:
                    terms.append(c)
                    sub = f"sub{k}." if len(models) > 1 and k > 0 else ""
                    gir_prefix = f"{gir_target}.{sub}{key}"
                added += self.register(names, gir_prefix, where, "dynamics")
            groups.append(terms)
        if not any(groups):
            raise GirError(f"{what} for {target!r}: the dynamics models hold no time functions")
        kernels.reverse()  # trspecfit convolves with the last-listed kernel first
        if len(kernels) > 1 and not _chains():
            raise GirError(f"{what} for {target!r}: a chain of instrument responses is not supported")
        irf: Any = None if not kernels else kernels[0] if len(kernels) == 1 else kernels
        try:
            if len(models) == 1:
                self.m.dynamics(gir_target, groups[0], irf=irf)
            else:
                self.m.dynamics(
                    gir_target, groups[1:], irf=irf, frequency=float(frequency), global_terms=groups[0]
                )
        except GirError as e:
            raise GirError(f"{what} for {target!r} ({path}): {e}") from None
        owner = next((p for p, after in self.order.items() if target in after), None)
        self.order[owner or target] += added
        self.dynamics.add(target)

    # -- names --------------------------------------------------------------------------

    def finish(self) -> Model:
        known = set(self.flat)
        for flat, full in self.flat.items():
            spec = self.m.parameters()[full]
            if isinstance(spec, str):
                for ref in IDENT.finditer(spec):
                    if spec[ref.end() :].lstrip().startswith("(") or ref.group() in ("pi", "e"):
                        continue
                    if ref.group() in FUNCTIONS:
                        continue
                    if ref.group() not in known:
                        raise GirError(f"{self.where[flat]}: unknown parameter {ref.group()!r} in {spec!r}")
        ordered: list[str] = []

        def walk(name: str) -> None:
            ordered.append(name)
            for after in self.order.get(name, []):
                if after not in ordered:
                    walk(after)

        for flat, kind in self.kind.items():
            if kind == "energy":
                walk(flat)
        for flat in ordered:
            self.m.alias(self.flat[flat], flat)
        levels = {flat: self.levels[flat] for flat in ordered if flat in self.levels}
        self.m.trspecfit_vary = levels  # type: ignore[attr-defined]
        return self.m


def _chains() -> bool:
    """Whether Model.dynamics takes a list of kernels (a chain of instrument responses)."""
    import inspect

    return "Sequence" in str(inspect.signature(Model.dynamics).parameters["irf"].annotation)


def from_trspecfit(
    energy_yaml: str | Path,
    model: str,
    *,
    time_dependence: Sequence[Mapping[str, Any]] = (),
    par_profiles: Sequence[Mapping[str, Any]] = (),
) -> Model:
    """A :class:`Model` from trspecfit's YAML model files, with trspecfit's parameter names as aliases.

    ``model`` names the energy model in ``energy_yaml``. Each dict of
    ``par_profiles`` and ``time_dependence`` holds the keyword arguments of
    trspecfit's ``add_par_profile`` / ``add_time_dependence``
    (``target_model`` optional); file names are relative to the folder of
    ``energy_yaml``. Profiles are added first (dynamics may target a profile
    parameter), each list in order. The axes are ``time`` and ``energy``, and
    ``aux`` for profiles. What gir cannot express is a GirError naming the file,
    model and entry. The model's ``trspecfit_vary`` maps each trspecfit name of a
    number parameter to its vary level, ``"project"``, ``"file"`` (also ``True``)
    or ``"static"`` (also ``False``); see :func:`project_shared`.
    """
    path = Path(energy_yaml)
    imp = _Importer(path, model, bool(time_dependence))
    imp.energy()
    for call in par_profiles:
        imp.profile(call)
    for call in time_dependence:
        imp.time_dependence(call)
    return imp.finish()


def project_shared(models: Sequence[Model]) -> tuple[str, ...]:
    """The parameters a joint fit of a trspecfit project's files shares: those at vary level ``"project"``.

    ``models`` are the files' imports (:func:`from_trspecfit`). Pass the result
    as ``gir.fit.joint(datasets, shared=...)``: then ``"file"`` parameters are
    local (``label:name``) and ``"static"`` ones stay fixed at each file's value,
    as in trspecfit's project fit. A parameter at level ``"project"`` in one file
    and another level in another, or with other bounds, is a GirError.
    """
    levels: list[dict[str, str]] = []
    for k, m in enumerate(models):
        vary = getattr(m, "trspecfit_vary", None)
        if not isinstance(m, Model) or vary is None:
            raise GirError(f"project_shared: model {k} is not an import of gm.from_trspecfit")
        levels.append(vary)
    shared: dict[str, tuple[int, tuple[float, float]]] = {}
    for k, (m, vary) in enumerate(zip(models, levels, strict=True)):
        params = m.parameters()
        for name, level in vary.items():
            if level != "project":
                continue
            bounds = params[m.canonical(name)].bounds
            first = shared.setdefault(name, (k, bounds))
            if first[1] != bounds:
                raise GirError(
                    f"project parameter {name!r} has the bounds {list(first[1])} in model {first[0]} and "
                    f"{list(bounds)} in model {k}; a shared parameter has the same bounds in every file"
                )
    for k, vary in enumerate(levels):
        for name in shared:
            if vary.get(name, "project") != "project":
                raise GirError(
                    f"{name!r} is at vary level 'project' in model {shared[name][0]} and {vary[name]!r} "
                    f"in model {k}; give it one level in every file"
                )
    return tuple(shared)
