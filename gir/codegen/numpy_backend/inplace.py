"""NumPy source that reuses buffers: ufuncs write into operands that die, and into the caller's outputs.

A straightforward NumPy expression allocates a new array for every
operation. Here an elementwise op whose operand dies at that op (its last
use, not a graph input or output, not a constant, made by this function as a
fresh array, and no view of it taken) writes its result into that operand with ``out=``; a
graph output can be written straight into an array the caller supplies. The
arithmetic is the op's template's, operation by operation and in the same
order (an n-ary ``add`` or ``mul`` folds left like ``a + b + c``), so results
are bitwise those of the templates.

Batches: scalar inputs become length-B vectors along a leading dimension, so
a value is B times larger exactly when it depends on a scalar input. An
operand takes the result only if it is batched whenever the result is; one
function then serves single calls and batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from gir.codegen.emitter import Emitter, resolved_attrs
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import get_op
from gir.ir.printer import format_node, value_names

#: Elementwise ops whose template is this ufunc (it takes ``out=``), by op name.
UFUNCS: dict[str, str] = {
    "add": "np.add", "sub": "np.subtract", "mul": "np.multiply", "div": "np.divide",
    "neg": "np.negative", "abs": "np.abs", "exp": "np.exp", "expm1": "np.expm1", "log": "np.log",
    "log1p": "np.log1p", "sqrt": "np.sqrt", "sin": "np.sin", "cos": "np.cos", "tan": "np.tan",
    "tanh": "np.tanh", "arctan": "np.arctan", "arctan2": "np.arctan2", "floor": "np.floor",
    "maximum": "np.maximum", "minimum": "np.minimum", "pow": "np.power", "mod": "np.mod",
    "erf": "sp.erf", "erfc": "sp.erfc", "erfcx": "sp.erfcx",
}  # fmt: skip

#: Ops that always return a new array of their own (never a view of an operand or a constant).
FRESH = frozenset(UFUNCS) | {"where", "sum", "mean", "cumsum"}


@attrs.frozen
class Plan:
    """Where one node's result goes: into a dying operand, into an output array, or a new array."""

    into: Value | None = None  # the dying operand that takes the result
    out: str | None = None  # the parameter naming the caller's array for it


def batched(graph: Graph) -> set[Value]:
    """The values that depend on a scalar input (they carry the batch dimension in a batch call)."""
    out = {v for v in graph.inputs if v.type.is_scalar}
    for node in graph.nodes:
        if any(v in out for v in node.inputs):
            out.update(node.outputs)
    return out


class InplaceEmitter:
    """Emits one graph as a function with buffer reuse (see the module docstring).

    ``into=True`` gives the function one extra parameter per output: a
    writeable float array in the output's full-rank layout that the result is
    written to (and returned). ``reuse=False`` emits the plain templates: a
    called graph's arguments may carry axes (and the batch dimension) its own
    types do not show, so its values' shapes are not known from its types.
    """

    def __init__(self, em: Emitter, graph: Graph, into: bool, callees: dict[int, str], reuse: bool = True):
        self.em, self.graph, self.into, self.callees, self.reuse = em, graph, into, callees, reuse
        self.names = value_names(graph)
        self.local: dict[Value, str] = {}
        self.batched = batched(graph)
        self.fresh: set[Value] = set()
        self.last_use = {v: i for i, node in enumerate(graph.nodes) for v in node.inputs}
        self.keep = set(graph.inputs) | set(graph.outputs)
        self.out_params: dict[Value, str] = {}
        self.written: set[Value] = set()  # outputs computed straight into their parameter
        self.body: list[tuple[str, str | None]] = []

    def emit(self, name: str | None = None) -> str:
        """Emit the function; return its name."""
        g, em = self.graph, self.em
        fname = name or em.fresh(f"g_{g.name}")
        for v in g.inputs:
            self.local[v] = em.fresh(v.name)
        outs = []
        if self.into:
            for i, v in enumerate(g.outputs):
                outs.append(em.fresh(f"out{i}"))
                if v.type.axes and v not in self.out_params and v not in g.inputs:
                    self.out_params[v] = outs[-1]
        for i, node in enumerate(g.nodes):
            self.node(i, node)
        params = [self.local[v] for v in g.inputs] + outs
        with em.block(f"def {fname}({', '.join(params)}):"):
            em.line(f'"""IR graph @{g.name}."""')
            for text, comment in self.body:
                em.line(text, comment)
            for v, out in zip(g.outputs, outs if self.into else (), strict=False):  # not written above
                if v not in self.written or self.out_params[v] != out:
                    em.line(f"{out}[...] = {self.local[v]}")
            result = outs if self.into else [self.local[v] for v in g.outputs]
            em.line("return " + ", ".join(result) + ("," if len(result) == 1 else ""))
        em.line()
        return fname

    def node(self, i: int, node: Node) -> None:
        comment = format_node(node, self.names)
        em = self.em
        if node.op == "const":  # module level, evaluated once
            self.local[node.output] = em.fresh(self.names[node.output], "k")
            em.line(f"{self.local[node.output]} = {get_op('const').source((), node.attributes)}", comment)
            return
        inputs = list(node.inputs)
        if node.opdef.arity is None and node.opdef.commutative:  # as the shared emitter orders them
            inputs = sorted(inputs, key=lambda v: len(v.type.axes))
        args = [self.local[v] for v in inputs]
        outs = [em.fresh(self.names[v]) for v in node.outputs]
        self.local.update(zip(node.outputs, outs, strict=True))
        plan = self.plan(i, node, inputs)
        if node.op == "call":
            callee = node.attr("callee")
            if id(callee) not in self.callees:
                self.callees[id(callee)] = InplaceEmitter(em, callee, False, self.callees, reuse=False).emit()
            target = ", ".join(outs) + ("," if len(outs) == 1 else "")
            self.body.append((f"{target} = {self.callees[id(callee)]}({', '.join(args)})", comment))
        elif plan.into is None and plan.out is None:
            source = get_op(node.op).source(args, resolved_attrs(node, self.graph.axes))
            self.body.append((f"{outs[0]} = {source}", comment))
        else:
            self.write(node, inputs, args, outs[0], plan, comment)
        if node.op in FRESH:
            self.fresh.update(node.outputs)
        else:  # the result may be a view of an operand (flip, bcast, call): that buffer is never reused
            self.fresh.difference_update(node.inputs)
        dead = [
            self.local[v]
            for v in dict.fromkeys(node.inputs)
            if self.last_use[v] == i and v not in self.keep and v.type.axes
        ]
        if dead:
            self.body.append((f"del {', '.join(dead)}", None))

    def plan(self, i: int, node: Node, inputs: Sequence[Value]) -> Plan:
        """Where the result of ``node`` (the ``i``-th) is written."""
        if not self.reuse or (node.op not in UFUNCS and not (node.op == "cumsum" and node.attr("reverse"))):
            return Plan()
        (result,) = node.outputs
        if result.type.dtype not in ("f32", "f64") or not result.type.axes:
            return Plan()
        if result in self.out_params:
            self.written.add(result)
            return Plan(out=self.out_params[result])
        for v in inputs:
            if (inputs.count(v) == 1 or len(inputs) <= 2) and (
                v in self.fresh
                and self.last_use[v] == i
                and v not in self.keep
                and v.type == result.type
                and (v in self.batched or result not in self.batched)
            ):
                return Plan(into=v)
        return Plan()

    def write(
        self, node: Node, inputs: Sequence[Value], args: list[str], name: str, plan: Plan, comment: str
    ):
        """Lines that compute ``node`` into its planned buffer, bound to ``name``."""
        buf = self.local[plan.into] if plan.into is not None else plan.out
        lines: list[str] = []
        if node.op == "cumsum":  # reversed: the sum runs on reversed views of the buffer, in place
            axis = resolved_attrs(node, self.graph.axes)["axis"]
            if plan.into is None:
                lines.append(f"{buf}[...] = {args[0]}")
            lines.append(f"np.cumsum(np.flip({buf}, {axis}), {axis}, out=np.flip({buf}, {axis}))")
        elif node.opdef.arity is None:  # n-ary: fold left from the first operand, as a + b + c does
            lines += self._fold(UFUNCS[node.op], inputs, args, buf, plan.into)
        else:
            lines.append(f"{UFUNCS[node.op]}({', '.join(args)}, out={buf})")
        lines.append(f"{name} = {buf}")
        self.body.append((lines[0], comment))
        self.body += [(line, None) for line in lines[1:]]

    @staticmethod
    def _fold(
        ufunc: str, inputs: Sequence[Value], args: list[str], buf: str, into: Value | None
    ) -> list[str]:
        """``args[0] op args[1] op ...`` folded left into ``buf`` (which may be one of the operands)."""
        j = 1 if into is None else max(1, inputs.index(into))  # the step that first writes buf
        head = args[0] if j == 1 else "(" + f" {_SYMBOL[ufunc]} ".join(args[:j]) + ")"
        lines = [f"{ufunc}({head}, {args[j]}, out={buf})"]
        lines += [f"{ufunc}({buf}, {a}, out={buf})" for a in args[j + 1 :]]
        return lines


#: The operator of the n-ary ops' templates (``(a + b + c)``).
_SYMBOL = {"np.add": "+", "np.multiply": "*"}
