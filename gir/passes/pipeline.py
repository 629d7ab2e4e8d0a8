"""Pipelines: parse ``"inline,fold{max_size=64},cse"``, run the passes, verify, dump, log, time."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import attrs

from gir.errors import GirError, VerifyError
from gir.ir.graph import Graph, Node
from gir.ir.printer import dump as dump_ir
from gir.ir.verify import verify as verify_graph
from gir.passes.base import PASSES, Pass, Rewrite, RewritePass
from gir.passes.builtin import PRESETS
from gir.passes.driver import ON_REWRITE


@attrs.frozen
class Step:
    """One pass of a pipeline with its options."""

    name: str
    run: Callable[..., Graph] = attrs.field(repr=False)
    options: Mapping[str, Any] = attrs.field(factory=dict)

    def __str__(self) -> str:
        opts = " ".join(f"{k}={_format(v)}" for k, v in self.options.items())
        return f"{self.name}{{{opts}}}" if opts else self.name


@attrs.frozen
class PassStats:
    """What one pass did: wall time, node counts, applied rewrites."""

    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    rewrites: int


class Stats(list):
    """Per-pass statistics of an :func:`optimize` run; ``str`` is a table."""

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self)

    def __str__(self) -> str:
        rows = [f"{'pass':<28} {'ms':>8} {'nodes':>13} {'rewrites':>8}"]
        for s in self:
            nodes = f"{s.nodes_before:>6}->{s.nodes_after:<6}"
            rows.append(f"{s.name:<28} {s.seconds * 1e3:8.3f} {nodes} {s.rewrites:>8}")
        rows.append(f"{'total':<28} {self.seconds * 1e3:8.3f}")
        return "\n".join(rows)


# -- parsing ----------------------------------------------------------------------

_ITEM = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*(?:\{([^{}]*)\})?\s*(?:,|$)")


def _format(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _literal(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _options(text: str) -> dict[str, Any]:
    """``"finite_math max_size=64"`` (spaces or commas) -> ``{"finite_math": True, "max_size": 64}``."""
    out = {}
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not key.isidentifier() or (eq and not value):
            raise GirError(f"bad pass option {item!r} (write name=value or a bare flag name)")
        out[key] = _literal(value) if eq else True
    return out


def known_passes() -> str:
    """The presets and the listed pass names, for error messages."""
    return ", ".join([*PRESETS, *PASSES.listed()])


def lookup(name: str) -> Pass:
    """The pass ``name`` (a standard one is loaded on first use); a GirError lists the known ones."""
    try:
        return PASSES[name]
    except KeyError:
        raise GirError(f"unknown pass {name!r}; known passes: {known_passes()}") from None


def _step(p: Pass, options: Mapping[str, Any]) -> Step:
    return Step(p.name, p.run, p.check(dict(options)))


def parse_pipeline(pipeline: str | Sequence[Any]) -> list[Step]:
    """The steps of a pipeline: a preset, a comma string with ``{options}``, or a list of
    names, :class:`Pass`/:class:`Rewrite` objects and objects with ``name`` and ``run(graph)``."""
    if isinstance(pipeline, str):
        text, steps, pos = pipeline.strip(), [], 0
        while pos < len(text):
            m = _ITEM.match(text, pos)
            if m is None or m.end() == pos:
                raise GirError(f"cannot parse pass pipeline {pipeline!r} at column {pos + 1}")
            name, opts = m.group(1), _options(m.group(2) or "")
            if name in PRESETS:
                if opts:
                    raise GirError(f"preset {name!r} takes no options")
                steps += parse_pipeline(PRESETS[name])
            else:
                steps.append(_step(lookup(name), opts))
            pos = m.end()
        return steps
    steps = []
    for item in pipeline:
        if isinstance(item, str):
            steps += parse_pipeline(item)
        elif isinstance(item, Rewrite):
            steps.append(_step(RewritePass(item.name, [item]), {}))
        elif isinstance(item, Pass):
            steps.append(_step(item, {}))
        elif callable(getattr(item, "run", None)) and isinstance(getattr(item, "name", None), str):
            steps.append(Step(item.name, item.run))
        else:
            raise GirError(
                f"cannot use {item!r} as a pass: give a pass name, a rewrite, "
                "or an object with a name and run(graph)"
            )
    return steps


# -- running ----------------------------------------------------------------------


def _sink(target: Any, file: TextIO | None) -> Callable[[str], None] | None:
    if target is None or target is False:
        return None
    if target is True:
        return lambda line: print(line, file=file or sys.stderr)
    if callable(target):
        return target
    if callable(getattr(target, "write", None)):
        return lambda line: target.write(line + "\n")
    raise GirError(f"log must be True, a callable or a stream, not {target!r}")


def optimize(
    graph: Graph,
    pipeline: str | Sequence[Any] = "O2",
    *,
    fixed: Mapping[str, Any] | None = None,
    verify: bool | None = None,
    dump: str | None = None,
    log: Any = None,
    stats: bool = False,
    file: TextIO | None = None,
) -> Graph | tuple[Graph, Stats]:
    """Run ``pipeline`` over ``graph`` and return the new graph (``(graph, Stats)`` with ``stats=True``).

    ``pipeline``: a preset (``"O0"``, ``"O1"``, ``"O2"``), a string such as
    ``"inline,fold{max_size=64},cse"`` or a list of names and pass objects.
    ``fixed``: parameter values that become constants (the ``specialize``
    step gets them; one runs first if the pipeline has none).
    ``verify``: check the graph before and after every pass (default: on when
    the environment sets ``GIR_VERIFY=1``). ``dump="after_each"`` prints the
    IR after each pass, ``log`` gets one line per applied rewrite (``True``:
    print; or a callable, or a stream); both write to ``file`` (default stderr).
    """
    steps = parse_pipeline(pipeline)
    if fixed:
        fixed = dict(fixed)
        if not any(s.name == "specialize" for s in steps):
            steps.insert(0, _step(lookup("specialize"), {}))
        steps = [
            attrs.evolve(s, options={**s.options, **fixed}) if s.name == "specialize" else s for s in steps
        ]
    if verify is None:
        verify = os.environ.get("GIR_VERIFY", "") == "1"
    if dump not in (None, False, "after_each"):
        raise GirError(f"dump must be None or 'after_each', not {dump!r}")
    say = _sink(log, file)
    out = sys.stderr if file is None else file
    if verify:
        verify_graph(graph)
    table = Stats()
    for step in steps:
        count = [0]

        def hook(pass_name: str, rewrite: str, node: Node, _count=count) -> None:
            _count[0] += 1
            if say is not None:
                say(f"{pass_name}: {rewrite} on {node.op}")

        before = len(graph.nodes)
        token = ON_REWRITE.set(hook)
        start = time.perf_counter()
        try:
            graph = step.run(graph, **step.options)
        finally:
            ON_REWRITE.reset(token)
        seconds = time.perf_counter() - start
        if not isinstance(graph, Graph):
            raise GirError(f"pass {step.name!r} returned {type(graph).__name__}, not a Graph")
        if verify:
            try:
                verify_graph(graph)
            except VerifyError as e:
                raise VerifyError(f"after pass {step}: {e}") from None
        table.append(PassStats(str(step), seconds, before, len(graph.nodes), count[0]))
        if dump:
            print(f"// -----// IR after {step} //----- //\n{dump_ir(graph)}", file=out)
    return (graph, table) if stats else graph
