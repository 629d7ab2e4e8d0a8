"""The two pass primitives, rewrites and graph passes, and the registry of named passes.

A *rewrite* is a function ``(node, b) -> replacement values | None`` for one
or more ops; the worklist driver applies a set of them to a fixed point. A
*graph pass* is a function ``graph -> graph``. Both become named
:class:`Pass` objects in :data:`PASSES` when decorated, so a pipeline string
can name them. Keyword parameters with defaults are the pass's options.

:data:`PASSES` knows every standard pass by name before its module is
imported (the tables of :mod:`gir.passes.builtin`): looking a name up imports
the module that defines it. A name is taken once; registering another pass
under it needs ``replace=True``.
"""

from __future__ import annotations

import abc
import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from gir.errors import GirError
from gir.ir.graph import Graph
from gir.passes.builtin import BUILTIN, GROUPS, PRESETS, RULES
from gir.passes.driver import apply_rewrites


def _options(fn: Callable, skip: int) -> tuple[dict[str, Any], bool]:
    """The options of ``fn`` (parameters with defaults after the first ``skip``); whether it takes **kw."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    options = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return options, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _fits(value: Any, want: type) -> bool:
    """Whether an option ``value`` suits a default of type ``want`` (an int does for a float)."""
    if isinstance(value, bool) or want is bool:
        return isinstance(value, bool) and want is bool
    return isinstance(value, int | float) if want is float else isinstance(value, want)


class Pass(abc.ABC):
    """A named ``graph -> graph`` step with keyword options (name -> default)."""

    name: str
    options: dict[str, Any]
    open_options: bool = False  # takes any option name (specialize: the parameters to fix)
    group: str | None = None  # a single rewrite's pass: the group that also holds the rewrite
    owner: tuple = ()  # (module, qualified name) of the code that defined it

    @abc.abstractmethod
    def run(self, graph: Graph, **options: Any) -> Graph:
        """The pass applied to ``graph``."""

    def __call__(self, graph: Graph, **options: Any) -> Graph:
        return self.run(graph, **self.check(options))

    def check(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` validated against the pass's options; a GirError names a bad one."""
        for key, value in options.items():
            if key not in self.options:
                if self.open_options:
                    continue
                known = ", ".join(self.options) or "none"
                raise GirError(f"pass {self.name!r} has no option {key!r} (options: {known})")
            default = self.options[key]
            want = type(default)
            if default is not None and not _fits(value, want):
                raise GirError(f"option {key!r} of pass {self.name!r} takes a {want.__name__}, not {value!r}")
        return options

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class GraphPass(Pass):
    """A whole-graph pass made from a function ``(graph, **options) -> graph``."""

    def __init__(self, name: str, fn: Callable[..., Graph]):
        self.name, self.fn = name, fn
        self.options, self.open_options = _options(fn, 1)
        self.__doc__ = fn.__doc__

    def run(self, graph: Graph, **options: Any) -> Graph:
        out = self.fn(graph, **options)
        if not isinstance(out, Graph):
            raise GirError(f"pass {self.name!r} returned {type(out).__name__}, not a Graph")
        return out


class Rewrite:
    """A rewrite of nodes of ``ops`` (``"*"``: any op): ``fn(node, b, **options)``.

    Calling it calls the function; in a pipeline it runs as a single-rewrite pass.
    """

    def __init__(self, fn: Callable, ops: tuple[str, ...], name: str):
        self.fn, self.ops, self.name = fn, ops, name
        self.options, _ = _options(fn, 2)
        self.__doc__ = fn.__doc__

    def __call__(self, node, b, **options: Any):
        return self.fn(node, b, **options)

    def __repr__(self) -> str:
        return f"<Rewrite {self.name} on {','.join(self.ops)}>"


class RewritePass(Pass):
    """A set of rewrites applied together by the worklist driver to a fixed point."""

    def __init__(self, name: str, rewrites: Iterable[Rewrite] = ()):
        self.name = name
        self.rewrites: list[Rewrite] = []
        self.options = {}
        for rw in rewrites:
            self.add(rw)

    def add(self, rw: Rewrite) -> None:
        self.rewrites = [r for r in self.rewrites if r.name != rw.name] + [rw]
        self.options = {k: v for r in self.rewrites for k, v in r.options.items()}

    def run(self, graph: Graph, **options: Any) -> Graph:
        return apply_rewrites(graph, self.rewrites, options, pass_name=self.name)


class RewriteGroup(Pass):
    """A declared rewrite group: the rewrites of its member passes, looked up by name when it runs."""

    def __init__(self, name: str, members: Sequence[str], registry: PassRegistry):
        self.name, self.members, self._registry = name, tuple(members), registry

    @property
    def rewrites(self) -> list[Rewrite]:
        out: list[Rewrite] = []
        for member in self.members:
            p = self._registry[member]
            if not isinstance(p, RewritePass | RewriteGroup):
                raise GirError(f"group {self.name!r} runs the rewrite {member!r}, but that pass is {p!r}")
            out += p.rewrites
        return out

    @property
    def options(self) -> dict[str, Any]:
        return {k: v for r in self.rewrites for k, v in r.options.items()}

    def run(self, graph: Graph, **options: Any) -> Graph:
        return apply_rewrites(graph, self.rewrites, options, pass_name=self.name)


Owner = tuple[str | None, str]


def _owner(obj: Any) -> Owner:
    """(module, qualified name) of the code that defines a pass."""
    return getattr(obj, "__module__", None), getattr(obj, "__qualname__", repr(obj))


class PassRegistry(Mapping[str, Pass]):
    """Pass names -> passes; declared names resolve on first lookup.

    ``loaders``: name -> ``"module:attribute"``; looking the name up imports the
    module, whose decorator registers the pass. ``groups``: name -> member names
    (a :class:`RewriteGroup`). ``hidden``: names not listed by :meth:`listed`.
    ``presets``: pipeline names no pass may take.
    """

    def __init__(
        self,
        loaders: Mapping[str, str],
        groups: Mapping[str, Sequence[str]],
        hidden: Iterable[str] = (),
        presets: Iterable[str] = (),
    ):
        self._passes: dict[str, Pass] = {}
        self._loaders = dict(loaders)
        self._groups = {name: tuple(members) for name, members in groups.items()}
        self._hidden = set(hidden)
        self._presets = set(presets)
        for name, members in self._groups.items():
            unknown = [m for m in members if m not in self._loaders]
            if unknown:
                raise GirError(f"group {name!r} names undeclared passes: {', '.join(unknown)}")

    def declared(self, name: str) -> Owner | None:
        """The owner a declared name's pass must have (None: the name is not declared)."""
        if name in self._groups:
            return None, "a declared rewrite group"
        module, _, attr = self._loaders.get(name, "").partition(":")
        return (module, attr) if module else None

    def is_group(self, name: str) -> bool:
        """Whether ``name`` is a declared rewrite group."""
        return name in self._groups

    def __getitem__(self, name: str) -> Pass:
        p = self._passes.get(name)
        if p is not None:
            return p
        if name in self._groups:
            p = RewriteGroup(name, self._groups[name], self)
            p.owner = self.declared(name)
            self._passes[name] = p
            return p
        if name not in self._loaders:
            raise KeyError(name)
        module = self._loaders[name].partition(":")[0]
        try:  # the lazy load itself: importing the module registers the pass
            importlib.import_module(module)
        except ImportError as e:
            raise GirError(f"pass {name!r} cannot load: importing {module} failed: {e}") from e
        p = self._passes.get(name)
        if p is None:
            raise GirError(
                f"pass {name!r} is declared as {self._loaders[name]}, but {module} does not define it"
            )
        return p

    def __iter__(self) -> Iterator[str]:  # a snapshot: looking names up while iterating loads passes
        names = list(self._passes)
        return iter(names + [n for n in (*self._loaders, *self._groups) if n not in self._passes])

    def __len__(self) -> int:
        return len(self._passes.keys() | self._loaders.keys() | self._groups.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._passes or name in self._loaders or name in self._groups

    def listed(self) -> list[str]:
        """The names to show a user, sorted: passes and groups, not the members of groups."""
        names = {n for n, p in self._passes.items() if p.group is None}
        return sorted((names | self._loaders.keys() | self._groups.keys()) - self._hidden)

    def register(self, p: Pass, *, replace: bool = False) -> Pass:
        """Add ``p`` (its ``owner`` set) under its name; a taken name needs ``replace=True``.

        The pass of the same owner replaces silently (a script or cell run again);
        a declared pass loading after it was replaced leaves the replacement.
        """
        name, declared = p.name, self.declared(p.name)
        if name in self._presets:
            raise GirError(f"{name!r} is a preset pipeline; a pass cannot take its name")
        old = self._passes.get(name)
        if declared is not None and p.owner == declared:
            if old is None or old.owner == declared:
                self._passes[name] = p
            return p
        holder = old.owner if old is not None else declared
        if holder is not None and holder != p.owner and not replace:
            where = ".".join(part for part in holder if part)
            raise GirError(
                f"a pass named {name!r} is already registered ({where}); "
                "choose another name, or pass replace=True to replace it"
            )
        self._passes[name] = p
        return p


#: The owner of a group that ``@rewrite(group=...)`` makes: any module's rewrites may join it.
_USER_GROUP: Owner = (None, "a rewrite group")

#: Every named pass: standard ones (loaded on first lookup), single rewrites, rewrite groups and user passes.
PASSES = PassRegistry({**BUILTIN, **RULES}, GROUPS, hidden=RULES, presets=PRESETS)


def register_pass(p: Pass, owner: Any = None, *, replace: bool = False) -> Pass:
    """Add ``p`` to :data:`PASSES` under its name.

    Names are unique: a taken name raises a GirError unless ``replace=True``,
    which replaces the pass wherever the name is used (pipelines, presets,
    groups). Defining the same function or class again (re-running a script or
    cell: same module and qualified name ``owner``) replaces it.
    """
    p.owner = owner if isinstance(owner, tuple) else _owner(owner or p)
    return PASSES.register(p, replace=replace)


def rewrite(
    *ops: str, name: str | None = None, group: str | None = None, replace: bool = False
) -> Callable[[Callable], Rewrite]:
    """Decorate ``fn(node, b, **options) -> Value | tuple[Value, ...] | None`` as a rewrite of ``ops``.

    ``b`` is a :class:`~gir.passes.driver.RewriteBuilder`: it makes new,
    type-checked nodes and answers ``b.producer(v)``, ``b.users(v)``,
    ``b.constant(v)``. The rewrite becomes a pass named ``name`` (default:
    the function's name); ``group`` also adds it to that rewrite pass (a group
    of user rewrites; the declared groups such as ``simplify`` take none).
    ``replace=True`` replaces a pass that already has the name.
    """
    if not ops or not all(isinstance(op, str) for op in ops):
        raise GirError("rewrite needs the op names it matches, e.g. @gir.rewrite('mul')")

    def deco(fn: Callable) -> Rewrite:
        rw = Rewrite(fn, ops, name or fn.__name__)
        if group is not None:
            if PASSES.is_group(group):
                raise GirError(
                    f"rewrite {rw.name!r} cannot join {group!r}: its rewrites are declared in "
                    f"gir.passes.builtin; use a group of your own, or run '{group},{rw.name}'"
                )
            if group in PASSES and PASSES[group].owner != _USER_GROUP:
                raise GirError(f"pass {group!r} is not a rewrite group made by @rewrite(group=...)")
        single = RewritePass(rw.name, [rw])
        single.group = group
        register_pass(single, owner=fn, replace=replace)
        if group is not None:
            grp = PASSES.get(group)
            if grp is None:
                grp = register_pass(RewritePass(group), owner=_USER_GROUP)
            grp.add(rw)
        return rw

    return deco


def graph_pass(name: str, *, replace: bool = False) -> Callable[[Any], Any]:
    """Decorate ``fn(graph, **options) -> graph`` (or a class with ``run(graph)``) as a named pass.

    A decorated function becomes a :class:`GraphPass` (callable like the
    function); a decorated class is registered as ``cls(**options).run(graph)``
    and returned unchanged. ``replace=True`` replaces a pass that already has the name.
    """

    def deco(obj: Any) -> Any:
        if inspect.isclass(obj):

            def run(graph: Graph, **options: Any) -> Graph:
                return obj(**options).run(graph)

            p = GraphPass(name, run)
            init = obj.__init__
            p.options, p.open_options = _options(init, 1) if init is not object.__init__ else ({}, False)
            p.__doc__ = obj.__doc__
            register_pass(p, owner=obj, replace=replace)
            return obj
        return register_pass(GraphPass(name, obj), owner=obj, replace=replace)

    return deco
