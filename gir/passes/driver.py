"""The worklist driver: apply rewrites to a fixed point, then drop dead nodes.

The driver keeps a mutable working copy of the graph (producers, users, an
order key per node) and never rebuilds the whole graph while it works:
replacing a value touches only its users. New nodes are ordered just before
the node whose rewrite made them, so the result keeps the input's order.

Replacement values must keep the dtype and may drop axes (``x*0 -> 0``); the
users of a narrowed value are re-typed, transitively. A replacement that
would change the type of a graph output, or that a user cannot take (a sum
along an axis the value no longer has), is not made: the rewrite does not
apply there and the original nodes stay. Replacement values must be made
from the node's operands (and new nodes), never from its users.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from gir.errors import GirError, warn
from gir.ir.builder import Builder
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import get_op

#: Called as ``hook(pass_name, rewrite_name, node)`` for each applied rewrite (gir.optimize sets it).
ON_REWRITE: ContextVar[Callable[[str, str, Node], None] | None] = ContextVar("gir_on_rewrite", default=None)


class RewriteBuilder(Builder):
    """The builder a rewrite gets: new nodes are type-checked; it also answers questions about the graph."""

    def __init__(self, work: _Work):
        super().__init__(work.axes)
        self._work = work

    def producer(self, v: Value) -> Node | None:
        """The node that defines ``v`` (None for a graph input)."""
        return self._work.producer.get(v)

    def users(self, v: Value) -> list[Node]:
        """The nodes that read ``v``."""
        return list(self._work.users.get(v, ()))

    def single_user(self, v: Value) -> Node | None:
        """The one node that reads ``v``, if exactly one does and ``v`` is not a graph output."""
        users = self._work.users.get(v)
        return next(iter(users)) if users and len(users) == 1 and v not in self._work.outs else None

    def is_output(self, v: Value) -> bool:
        return v in self._work.outs

    def constant(self, v: Value) -> bool | int | float | None:
        """The value of ``v`` if a ``const`` node defines it, else None."""
        return self._work.consts.get(v)

    def take(self) -> list[Node]:
        nodes, self.nodes = self.nodes, []
        return nodes


class _Work:
    """The graph being rewritten: live nodes with order keys, producers and users."""

    def __init__(self, graph: Graph, ops: set[str] | None):
        self.graph, self.axes = graph, graph.axes
        self.outputs = list(graph.outputs)
        self.outs = set(graph.outputs)
        self.seq = 0
        nodes = _live(graph.nodes, self.outs)
        self.keys: dict[Node, tuple] = {node: (i, 1) for i, node in enumerate(nodes)}
        self.producer: dict[Value, Node] = {o: node for node in nodes for o in node.outputs}
        self.consts = {node.outputs[0]: node.attrs[0][1] for node in nodes if node.op == "const"}
        self.users: dict[Value, dict[Node, None]] = {}
        for node in nodes:
            for v in node.inputs:
                self.users.setdefault(v, {})[node] = None
        todo = nodes if ops is None else [node for node in nodes if node.op in ops]
        self.queue: deque[Node] = deque(todo)
        self.queued: set[Node] = set(todo)
        self.doomed: list[Node] = []

    # -- bookkeeping ----------------------------------------------------------

    def push(self, node: Node) -> None:
        if node not in self.queued:
            self.queued.add(node)
            self.queue.append(node)

    def _link(self, node: Node, key: tuple) -> None:
        self.keys[node] = key
        for o in node.outputs:
            self.producer[o] = node
        if node.op == "const":
            self.consts[node.outputs[0]] = node.attrs[0][1]
        for v in node.inputs:
            self.users.setdefault(v, {})[node] = None
        self.push(node)

    def _unlink(self, node: Node) -> None:
        del self.keys[node]
        for v in node.inputs:
            users = self.users[v]
            users.pop(node, None)
            if v in self.outs:
                continue
            if not users:  # the producer may be dead now
                p = self.producer.get(v)
                if p is not None:
                    self.doomed.append(p)
            elif len(users) == 1:  # the last reader may match a single-use pattern now
                self.push(next(iter(users)))

    def insert_before(self, nodes: Sequence[Node], anchor: Node) -> None:
        """Add ``nodes`` (in order) just before ``anchor``."""
        base = self.keys[anchor][:-1]
        for node in nodes:
            self.seq += 1
            self._link(node, (*base, 0, self.seq, 1))

    def dead(self, node: Node) -> bool:
        return not any(self.users.get(o) or o in self.outs for o in node.outputs)

    def sweep(self, *nodes: Node) -> None:
        """Erase ``nodes`` and all the nodes only they kept alive, if nothing reads them."""
        self.doomed += nodes
        while self.doomed:
            node = self.doomed.pop()
            if node in self.keys and self.dead(node):
                self._unlink(node)
                for o in node.outputs:
                    self.producer.pop(o, None)
                    self.users.pop(o, None)

    # -- replacing values -----------------------------------------------------

    def allowed(self, old: Value, new: Value) -> bool:
        """Whether ``old`` can become ``new``: every user re-types (transitively) and no
        graph output changes its type. Only a narrower ``new`` can fail."""
        if new.type == old.type:
            return True
        narrowed = {old: new.type}
        stack = [old]
        while stack:
            v = stack.pop()
            if v in self.outs:
                return False
            for user in self.users.get(v, ()):
                try:
                    types = get_op(user.op).infer(
                        [narrowed.get(x, x.type) for x in user.inputs], user.attributes, self.axes
                    )
                except GirError:  # say, a sum along an axis the value no longer has
                    return False
                for o, t in zip(user.outputs, types):
                    if t != narrowed.get(o, o.type):
                        narrowed[o] = t
                        stack.append(o)
        return True

    def replace(self, old: Value, new: Value) -> None:
        """Make every reader of ``old`` read ``new`` (check :meth:`allowed` first)."""
        stack = [(old, new)]
        while stack:
            old, new = stack.pop()
            if old in self.outs:
                self.outputs = [new if v is old else v for v in self.outputs]
                self.outs = set(self.outputs)
            for user in list(self.users.get(old, ())):
                ins = tuple(new if v is old else v for v in user.inputs)
                outs = user.outputs
                if new.type != old.type:
                    types = get_op(user.op).infer([v.type for v in ins], user.attributes, self.axes)
                    outs = tuple(o if o.type == t else Value(t, o.name) for o, t in zip(outs, types))
                key = self.keys[user]
                self._unlink(user)
                self._link(Node(user.op, ins, outs, user.attrs), key)
                for o, n in zip(user.outputs, outs):
                    if o is n:  # the same result from new operands: its readers may match now
                        for reader in self.users.get(o, ()):
                            self.push(reader)
                    else:
                        stack.append((o, n))
                        self.producer.pop(o, None)

    def build(self) -> Graph:
        """The graph of the live nodes that the outputs need, in key order."""
        g = self.graph
        nodes = _live(sorted(self.keys, key=self.keys.__getitem__), self.outs)
        return Graph(g.inputs, nodes, self.outputs, name=g.name, axes=g.axes)


def _live(nodes: Sequence[Node], outputs: set[Value]) -> list[Node]:
    """The nodes (in order) that ``outputs`` need."""
    need = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in need for o in node.outputs):
            kept.append(node)
            need.update(node.inputs)
    return kept[::-1]


def _replacements(name: str, node: Node, result: Any) -> list[tuple[Value, Value]]:
    """The (old, new) value pairs a rewrite's ``result`` asks for, checked."""
    result = tuple(result) if isinstance(result, tuple | list) else (result,)
    if len(result) != len(node.outputs):
        raise GirError(f"rewrite {name!r} returned {len(result)} values for {len(node.outputs)} results")
    pairs = [(old, new) for old, new in zip(node.outputs, result) if old is not new]
    for old, new in pairs:
        if not isinstance(new, Value):
            raise GirError(f"rewrite {name!r} returned {new!r}, not a Value")
        if new.type.dtype != old.type.dtype or not set(new.type.axes) <= set(old.type.axes):
            raise GirError(
                f"rewrite {name!r} replaced a {old.type} value by a {new.type} one "
                "(the dtype must stay and no axis may be added)"
            )
    return pairs


def _keep_names(pairs: list[tuple[Value, Value]], new_nodes: list[Node]) -> list[tuple[Value, Value]]:
    """Give unnamed new values the names of the values they replace (edits ``new_nodes``)."""
    made = {o for n in new_nodes for o in n.outputs}
    rename = {
        new: Value(new.type, old.name) for old, new in pairs if new in made and old.name and not new.name
    }
    if rename:
        new_nodes[:] = [
            Node(n.op, [rename.get(v, v) for v in n.inputs], [rename.get(v, v) for v in n.outputs], n.attrs)
            for n in new_nodes
        ]
    return [(old, rename.get(new, new)) for old, new in pairs]


def apply_rewrites(
    graph: Graph,
    rewrites: Sequence[Any],
    options: Mapping[str, Any] | None = None,
    *,
    pass_name: str = "rewrite",
    max_rewrites: int | None = None,
) -> Graph:
    """Apply ``rewrites`` to ``graph`` until none applies (or the cap), then drop dead nodes.

    ``options`` go to the rewrites that take them. The cap on applied
    rewrites defaults to ten per node (plus 100); reaching it warns.
    """
    options = dict(options or {})
    by_op: dict[str, list[tuple[str, Callable]]] = {}
    anyop: list[tuple[str, Callable]] = []
    for rw in rewrites:
        opts = {k: options[k] for k in rw.options if k in options}
        fn = functools.partial(rw.fn, **opts) if opts else rw.fn
        for op in rw.ops:
            (anyop if op == "*" else by_op.setdefault(op, [])).append((rw.name, fn))
    work = _Work(graph, None if anyop else set(by_op))
    b = RewriteBuilder(work)
    cap = max_rewrites if max_rewrites is not None else 10 * len(graph.nodes) + 100
    applied = 0
    hook = ON_REWRITE.get()
    rules: dict[str, list[tuple[str, Callable]]] = {}
    while work.queue and applied < cap:
        node = work.queue.popleft()
        work.queued.discard(node)
        if node not in work.keys:
            continue
        if work.dead(node):  # a node a rewrite made but did not use
            work.sweep(node)
            continue
        if node.op not in rules:
            rules[node.op] = by_op.get(node.op, []) + anyop
        for name, fn in rules[node.op]:
            result = fn(node, b)
            new_nodes = b.take() if b.nodes else []
            if result is None:
                continue
            pairs = _replacements(name, node, result)
            if not pairs or not all(work.allowed(old, new) for old, new in pairs):
                continue
            pairs = _keep_names(pairs, new_nodes)
            work.insert_before(new_nodes, node)
            for old, new in pairs:
                work.replace(old, new)
            work.sweep(node)  # nothing reads it any more
            applied += 1
            if hook is not None:
                hook(pass_name, name, node)
            break
    if applied >= cap and work.queue:
        warn(f"pass {pass_name!r} stopped after {applied} rewrites without reaching a fixed point")
    return work.build()
