"""gir: a compiler toolkit for numerical model functions.

Trace a NumPy-style function (or write IR text), optimize the typed graph,
and compile it for NumPy, Numba or JAX::

    import gir
    g = gir.trace(model, x="E")
    print(gir.dump(g))
    exe = gir.compile(g, target="numpy")
    y = exe(theta, x=x)
"""

from gir import fit, models
from gir.errors import GirError, InputError, ParseError, TargetError, VerifyError
from gir.frontend import component, expr, trace
from gir.ir import OPS, Builder, Graph, Node, Type, Value, dump, parse, verify
from gir.ir.ops import OpDef
from gir.ir.ops import register as register_op
from gir.ir.ops import unregister as unregister_op
from gir.passes import graph_pass, optimize, rewrite
from gir.runtime import Executable, cache_info, clear_cache, compile, targets

__version__ = "0.1.0"

__all__ = [
    "OPS", "Builder", "Executable", "GirError", "Graph", "InputError", "Node", "OpDef", "ParseError",
    "TargetError", "Type", "Value", "VerifyError", "cache_info", "clear_cache", "compile",
    "component", "dump", "expr", "fit", "graph_pass", "models", "optimize", "parse", "register_op",
    "rewrite", "targets", "trace", "unregister_op", "verify",
]  # fmt: skip
