"""Optimization passes: rewrites, graph passes, pipelines and the standard passes.

::

    @gir.rewrite("mul")
    def mul_one(node, b):
        ...

    g2 = gir.optimize(g, "inline,canonicalize,fold,cse,dce")

Pass names resolve through :data:`PASSES`: a standard pass's module is imported
the first time its name is looked up (see :mod:`gir.passes.builtin`).
"""

from gir.passes.base import (
    PASSES,
    GraphPass,
    Pass,
    PassRegistry,
    Rewrite,
    RewriteGroup,
    RewritePass,
    graph_pass,
    register_pass,
    rewrite,
)
from gir.passes.builtin import GROUPS, PRESETS
from gir.passes.driver import RewriteBuilder, apply_rewrites
from gir.passes.pipeline import PassStats, Stats, optimize, parse_pipeline

__all__ = [
    "GROUPS",
    "PASSES",
    "PRESETS",
    "GraphPass",
    "Pass",
    "PassRegistry",
    "PassStats",
    "Rewrite",
    "RewriteBuilder",
    "RewriteGroup",
    "RewritePass",
    "Stats",
    "apply_rewrites",
    "graph_pass",
    "optimize",
    "parse_pipeline",
    "register_pass",
    "rewrite",
]
