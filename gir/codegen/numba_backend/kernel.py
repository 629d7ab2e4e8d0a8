"""Writing the Numba module for a schedule: readable loops, one line per IR node.

The module defines (all ``@njit(cache=True, error_model="numpy", nogil=True)``):

- ``model_into(inputs..., outputs..., scratch...)``: one evaluation into
  preallocated output and scratch arrays; ``prange`` over the outer axis of every nest (and
  special loop) over the whole grid in the parallel target. Lower-rank nests (a value per energy
  in a time x energy model) run serially: their work is small, and each parallel loop costs
  compile time.
- ``model_into_serial``: the same body with ``range`` (parallel target only),
  used inside the batch loop, where a nested parallel launch would not pay.
- ``model(inputs..., scratch...)``: allocates the outputs, calls ``model_into``,
  returns them. The caller keeps the scratch arrays between calls, so large
  temporaries are not allocated (and page-faulted) again on every call.
- ``model_serial``: the same around ``model_into_serial`` (parallel target
  only), for grids too small to share among threads.
- ``model_batch(n_batch, n_chunks, inputs..., outputs...)``: scalar inputs
  are length-B vectors, outputs have a leading dimension B (the caller
  allocates them: NumPy maps a large array with huge pages, a fraction of the
  page faults); ``prange`` over ``n_chunks`` contiguous chunks of the batch
  (one a thread), each with one set of scratch arrays, each evaluation
  writing its slice of the outputs.

Inside a kernel, arrays have minimal rank (one dimension per axis of their
type, in graph axis order) and scalars are plain numbers. Every line that
computes a node carries the node's IR text as a comment.
"""

from __future__ import annotations

import contextlib
import re

from gir.codegen.emitter import Emitter
from gir.codegen.numba_backend.loops import Nest, Scalars, Schedule, Special, is_scan
from gir.codegen.numba_backend.ops import HELPERS, scalar_expr
from gir.ir.graph import Node, Value
from gir.ir.printer import format_node, value_names

NP_DTYPE = {"f64": "np.float64", "f32": "np.float32", "i64": "np.int64", "bool": "np.bool_"}
_RESERVED = {name for names in HELPERS.values() for name in names} | {
    "model",
    "model_into",
    "model_into_serial",
    "model_serial",
    "model_batch",
    "n_batch",
    "n_chunks",
    "per",
    "k",
    "b",
}


class KernelWriter:
    """Names every value of a schedule, then writes the module source."""

    def __init__(self, sched: Schedule, *, parallel: bool, fast_exp: bool, header: str):
        self.sched = sched
        self.graph = sched.graph
        self.parallel = parallel
        self.fast_exp = fast_exp
        self.em = Emitter({name: None for name in _RESERVED})
        self.ir_names = value_names(self.graph)
        g = self.graph
        fresh = self.em.fresh
        self.size = {a: fresh(f"n_{a}") for a in g.axes}
        self.index = {a: fresh(f"i_{a}") for a in g.axes}
        self.params = {v: fresh(v.name) for v in g.inputs}
        self.outputs: list[Value] = list(dict.fromkeys(g.outputs))  # unique, in order
        self.out_param = {v: fresh(f"out_{self.ir_names[v]}") for v in self.outputs}
        self.array: dict[Value, str] = {}
        for v in g.inputs:
            if v.type.axes:
                self.array[v] = self.params[v]
        self.temps: list[Value] = []  # materialized values that are not outputs
        for node in g.nodes:
            for v in node.outputs:
                if v in sched.arrays:
                    if v in self.out_param:
                        self.array[v] = self.out_param[v]
                    else:
                        self.array[v] = fresh(f"buf_{self.ir_names[v]}")
                        self.temps.append(v)
        roots = {r for st in sched.stages if isinstance(st, Nest) for r in st.roots}
        self.local: dict[Value, str] = {v: self.params[v] for v in g.inputs if not v.type.axes}
        for node in g.nodes:
            for v in node.outputs:
                if v not in self.array or v in roots:
                    self.local[v] = fresh(self.ir_names[v])
        self.acc = {id(st.node): fresh("acc") for st in sched.stages if isinstance(st, Special)}
        self.header = header

    # -- the module ------------------------------------------------------------

    def module(self) -> str:
        em = self.em
        for text in self.header.splitlines():
            em.line(text)
        em.line("import math")
        em.line()
        em.line("import numpy as np")
        em.line("from numba import njit, prange")
        em.line("__IMPORTS__")
        em.line()
        self._into("model_into", self.parallel)
        if self.parallel:
            self._into("model_into_serial", False)
        self._entry("model", "model_into")
        if self.parallel:
            self._entry("model_serial", "model_into_serial")
        self._batch()
        source = em.source
        imports = ""
        for mod, names in HELPERS.items():
            used = [n for n in names if re.search(rf"\b{n}\(", source)]
            if used:
                imports += f"from {mod} import {', '.join(used)}\n"
        return source.replace("__IMPORTS__\n", imports)

    def _has_loops(self) -> bool:
        """Whether a kernel has a loop to run in parallel (Numba warns about parallel=True without one)."""
        producer = self.graph.producers()
        return any(
            (isinstance(st, Nest) and self._full(st.axes) and (len(st.axes) > 1 or st.reverse is None))
            or (isinstance(st, Special) and len(st.node.inputs[0].type.axes) > 1)
            for st in self.sched.stages
        ) or any(v.type.axes and v not in producer for v in self.outputs)

    def _full(self, axes: tuple[str, ...]) -> bool:
        """Whether a loop nest over ``axes`` covers the whole grid (the only nests run in parallel)."""
        return len(axes) == len(self.graph.axes)

    def _decorator(self, parallel: bool) -> str:
        return f'@njit(cache=True, error_model="numpy", nogil=True{", parallel=True" if parallel else ""})'

    def _signature(self) -> list[str]:
        return [self.params[v] for v in self.graph.inputs]

    def _sizes(self) -> None:
        for axis in self.graph.axes:
            for v in self.graph.inputs:
                if axis in v.type.axes:
                    self.em.line(f"{self.size[axis]} = {self.params[v]}.shape[{v.type.axes.index(axis)}]")
                    break
            else:
                self.em.line(f"{self.size[axis]} = 1")

    def _shape(self, v: Value, lead: str = "") -> str:
        dims = ([lead] if lead else []) + [self.size[a] for a in v.type.axes]
        if not v.type.axes:
            dims.append("1")
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def _into(self, name: str, parallel: bool) -> None:
        em = self.em
        em.line(self._decorator(parallel and self._has_loops()))
        outs = [self.out_param[v] for v in self.outputs] + [self.array[v] for v in self.temps]
        with em.block(f"def {name}({', '.join(self._signature() + outs)}):"):
            em.line(f'"""One evaluation of @{self.graph.name} into preallocated arrays."""')
            self._sizes()
            for stage in self.sched.stages:
                if isinstance(stage, Scalars):
                    for node in stage.nodes:
                        self._assign(node, {})
                elif isinstance(stage, Nest):
                    self._nest(stage, parallel)
                else:
                    self._special(stage, parallel)
            self._store_outputs(parallel)
        em.line()
        em.line()

    def _entry(self, name: str, into: str) -> None:
        em = self.em
        em.line(self._decorator(False))
        scratch = [self.array[v] for v in self.temps]
        with em.block(f"def {name}({', '.join(self._signature() + scratch)}):"):
            em.line(f'"""Evaluate @{self.graph.name}; returns the outputs (scalars as 1-element arrays)."""')
            self._sizes()
            for v in self.outputs:
                em.line(f"{self.out_param[v]} = np.empty({self._shape(v)}, {NP_DTYPE[v.type.dtype]})")
            outs = [self.out_param[v] for v in self.outputs]
            em.line(f"{into}({', '.join(self._signature() + outs + scratch)})")
            em.line(f"return ({', '.join(outs)},)")
        em.line()
        em.line()

    def _batch(self) -> None:
        em = self.em
        em.line(self._decorator(True))
        outs = [self.out_param[v] for v in self.outputs]
        with em.block(f"def model_batch(n_batch, n_chunks, {', '.join(self._signature() + outs)}):"):
            em.line('"""n_batch parameter sets (scalar inputs are vectors), in n_chunks in parallel."""')
            self._sizes()
            for v in self.temps:  # scratch arrays: one set per chunk
                shape, dtype = self._shape(v, "n_chunks"), NP_DTYPE[v.type.dtype]
                em.line(f"{self.array[v]} = np.empty({shape}, {dtype})")
            into = "model_into_serial" if self.parallel else "model_into"
            args = [self.params[v] + ("" if v.type.axes else "[b]") for v in self.graph.inputs]
            args += [f"{self.out_param[v]}[b]" for v in self.outputs]
            args += [f"{self.array[v]}[k]" for v in self.temps]
            em.line("per = (n_batch + n_chunks - 1) // n_chunks")
            with em.block("for k in prange(n_chunks):"):
                with em.block("for b in range(k * per, min(n_batch, (k + 1) * per)):"):
                    em.line(f"{into}({', '.join(args)})")
        em.line()

    # -- pieces ----------------------------------------------------------------

    def _read(self, v: Value, computed: dict[Value, str]) -> str:
        if v in computed:
            return computed[v]
        return self._read_array(v) if v in self.array else self.local[v]

    def _assign(self, node: Node, computed: dict[Value, str]) -> None:
        if is_scan(node):  # a running sum, set to zero before the loop
            out = node.output
            src = self._read(node.inputs[0], computed)
            self.em.line(f"{self.local[out]} += {src}", format_node(node, self.ir_names))
            computed[out] = self.local[out]
            return
        inputs = node.inputs
        if node.opdef.arity is None and node.opdef.commutative:  # the NumPy target's order (add, mul):
            # operands with fewer axes combine first
            inputs = sorted(inputs, key=lambda v: len(v.type.axes))
        args = [self._read(v, computed) for v in inputs]
        expr = scalar_expr(node.op, args, node.attributes, [v.type.dtype for v in inputs], self.fast_exp)
        out = node.output
        self.em.line(f"{self.local[out]} = {expr}", format_node(node, self.ir_names))
        computed[out] = self.local[out]

    def _loop(self, axis: str, kind: str, reverse: bool = False) -> str:
        n, i = self.size[axis], self.index[axis]
        rng = f"{kind}({n} - 1, -1, -1)" if reverse else f"{kind}({n})"
        return f"for {i} in {rng}:"

    def _nest(self, nest: Nest, parallel: bool) -> None:
        em = self.em
        names = ", ".join(self.ir_names[r] for r in nest.roots)
        em.line(f"# nest over [{', '.join(nest.axes)}]: {names}")
        computed: dict[Value, str] = {}
        by_level: dict[int, list[Node]] = {}
        for node in nest.nodes:
            by_level.setdefault(nest.level(node.output), []).append(node)
        scans = [n for n in nest.nodes if is_scan(n)]
        with contextlib.ExitStack() as loops:
            for level, axis in enumerate(nest.axes, start=1):
                innermost = level == len(nest.axes)
                if innermost:
                    for node in scans:  # running sums start before the loop they run along
                        em.line(f"{self.local[node.output]} = {'0.0' if self._float(node) else '0'}")
                # the scan axis runs in order: never in parallel
                kind = "range"
                if parallel and level == 1 and self._full(nest.axes) and not (innermost and scans):
                    kind = "prange"
                header = self._loop(axis, kind, reverse=innermost and bool(nest.reverse))
                loops.enter_context(em.block(header))
                for node in by_level.get(level, []):
                    self._assign(node, computed)
            for root in nest.roots:
                em.line(f"{self._read_array(root)} = {computed[root]}")

    @staticmethod
    def _float(node: Node) -> bool:
        return node.inputs[0].type.dtype in ("f32", "f64")

    def _read_array(self, v: Value) -> str:
        return f"{self.array[v]}[{', '.join(self.index[a] for a in v.type.axes)}]"

    def _special(self, st: Special, parallel: bool) -> None:
        em = self.em
        node = st.node
        (x,) = node.inputs
        out = node.output
        axis = node.attr("axis")
        em.line(f"# {node.op} along {axis}", format_node(node, self.ir_names))
        others = [a for a in x.type.axes if a != axis]
        loops = contextlib.ExitStack()
        for level, a in enumerate(others):
            loops.enter_context(em.block(self._loop(a, "prange" if parallel and level == 0 else "range")))
        src = f"{self.array[x]}[{', '.join(self.index[a] for a in x.type.axes)}]"
        zero = "0.0" if x.type.dtype in ("f32", "f64") else "0"
        target = self._read_array(out) if out in self.array else self.local[out]
        acc = self.acc[id(node)]
        if node.op in ("sum", "mean"):
            scale = f" / {self.size[axis]}" if node.op == "mean" else ""
            if x.type.axes[-1] == axis and x.type.dtype in ("f32", "f64"):  # NumPy: pairwise along contiguous
                row = ", ".join(":" if a == axis else self.index[a] for a in x.type.axes)
                em.line(f"{target} = pairwise_sum({self.array[x]}[{row}]){scale}")
            else:  # NumPy accumulates along other axes one slice at a time: in order
                em.line(f"{acc} = {zero}")
                with em.block(self._loop(axis, "range")):
                    em.line(f"{acc} += {src}")
                em.line(f"{target} = {acc}{scale}")
        elif node.op == "cumsum":
            em.line(f"{acc} = {zero}")
            with em.block(self._loop(axis, "range", reverse=node.attr("reverse"))):
                em.line(f"{acc} += {src}")
                em.line(f"{target} = {acc}")
        elif node.op == "flip":
            with em.block(self._loop(axis, "range")):
                flipped = ", ".join(
                    f"{self.size[a]} - 1 - {self.index[a]}" if a == axis else self.index[a]
                    for a in x.type.axes
                )
                em.line(f"{target} = {self.array[x]}[{flipped}]")
        else:  # pragma: no cover - unsupported() rejects these first
            raise AssertionError(node.op)
        loops.close()

    def _store_outputs(self, parallel: bool) -> None:
        em = self.em
        producer = self.graph.producers()
        for v in self.outputs:
            out = self.out_param[v]
            if not v.type.axes:
                em.line(f"{out}[0] = {self.local[v]}")
            elif v not in producer:  # a graph input returned as is
                with contextlib.ExitStack() as loops:
                    for level, a in enumerate(v.type.axes):
                        kind = "prange" if parallel and level == 0 else "range"
                        loops.enter_context(em.block(self._loop(a, kind)))
                    idx = ", ".join(self.index[a] for a in v.type.axes)
                    em.line(f"{out}[{idx}] = {self.params[v]}[{idx}]")
