"""Optimization passes: rewrites, graph passes, pipelines and the standard passes.

::

    @gir.rewrite("mul")
    def mul_one(node, b):
        ...

    g2 = gir.optimize(g, "inline,canonicalize,fold,cse,dce")
"""

from gir.passes import canonicalize, cse, dce, flatten, fold, inline, simplify, specialize  # noqa: F401  (register)
from gir.passes.base import PASSES, GraphPass, Pass, Rewrite, RewritePass, graph_pass, register_pass, rewrite
from gir.passes.driver import RewriteBuilder, apply_rewrites
from gir.passes.pipeline import PRESETS, PassStats, Stats, optimize, parse_pipeline

__all__ = [
    "PASSES",
    "PRESETS",
    "GraphPass",
    "Pass",
    "PassStats",
    "Rewrite",
    "RewriteBuilder",
    "RewritePass",
    "Stats",
    "apply_rewrites",
    "graph_pass",
    "optimize",
    "parse_pipeline",
    "register_pass",
    "rewrite",
]
