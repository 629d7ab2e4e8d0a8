"""The two pass primitives, rewrites and graph passes, and the registry of named passes.

A *rewrite* is a function ``(node, b) -> replacement values | None`` for one
or more ops; the worklist driver applies a set of them to a fixed point. A
*graph pass* is a function ``graph -> graph``. Both become named
:class:`Pass` objects in :data:`PASSES` when decorated, so a pipeline string
can name them. Keyword parameters with defaults are the pass's options.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from gir.errors import GirError
from gir.ir.graph import Graph
from gir.passes.driver import apply_rewrites

#: Every named pass: standard ones, single rewrites, rewrite groups and user passes.
PASSES: dict[str, Pass] = {}


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


def register_pass(p: Pass, owner: Any = None) -> Pass:
    """Add ``p`` to :data:`PASSES` under its name.

    Names are unique; defining the same function or class again (re-running
    a script or cell: same module and qualified name ``owner``) replaces it.
    """
    owner = owner or p
    p.owner = (getattr(owner, "__module__", None), getattr(owner, "__qualname__", repr(owner)))
    old = PASSES.get(p.name)
    if old is not None and old.owner != p.owner:
        raise GirError(f"a pass named {p.name!r} is already registered")
    PASSES[p.name] = p
    return p


def rewrite(*ops: str, name: str | None = None, group: str | None = None) -> Callable[[Callable], Rewrite]:
    """Decorate ``fn(node, b, **options) -> Value | tuple[Value, ...] | None`` as a rewrite of ``ops``.

    ``b`` is a :class:`~gir.passes.driver.RewriteBuilder`: it makes new,
    type-checked nodes and answers ``b.producer(v)``, ``b.users(v)``,
    ``b.constant(v)``. The rewrite becomes a pass named ``name`` (default:
    the function's name); ``group`` also adds it to that rewrite pass.
    """
    if not ops or not all(isinstance(op, str) for op in ops):
        raise GirError("rewrite needs the op names it matches, e.g. @gir.rewrite('mul')")

    def deco(fn: Callable) -> Rewrite:
        rw = Rewrite(fn, ops, name or fn.__name__)
        single = RewritePass(rw.name, [rw])
        single.group = group
        register_pass(single, owner=fn)
        if group is not None:
            grp = PASSES.get(group)
            if grp is None:
                grp = register_pass(RewritePass(group), owner=f"group {group}")
            if not isinstance(grp, RewritePass):
                raise GirError(f"pass {group!r} is not a rewrite group")
            grp.add(rw)
        return rw

    return deco


def graph_pass(name: str) -> Callable[[Any], Any]:
    """Decorate ``fn(graph, **options) -> graph`` (or a class with ``run(graph)``) as a named pass.

    A decorated function becomes a :class:`GraphPass` (callable like the
    function); a decorated class is registered as ``cls(**options).run(graph)``
    and returned unchanged.
    """

    def deco(obj: Any) -> Any:
        if inspect.isclass(obj):

            def run(graph: Graph, **options: Any) -> Graph:
                return obj(**options).run(graph)

            p = GraphPass(name, run)
            init = obj.__init__
            p.options, p.open_options = _options(init, 1) if init is not object.__init__ else ({}, False)
            p.__doc__ = obj.__doc__
            register_pass(p, owner=obj)
            return obj
        return register_pass(GraphPass(name, obj), owner=obj)

    return deco
