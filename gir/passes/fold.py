"""fold: evaluate nodes whose operands are all constants (through the op's NumPy reference)."""

from __future__ import annotations

import numpy as np

from gir.ir.graph import Node, Value
from gir.passes.base import rewrite
from gir.passes.driver import RewriteBuilder

#: The Python type a constant of each dtype holds (f32 has none: const makes f64).
PYTHON_TYPE = {"bool": bool, "i64": int, "f64": float}


@rewrite("*")
def fold(node: Node, b: RewriteBuilder, max_size: int = 64) -> Value | None:
    """``op(c1, c2, ...) -> c``; never folds ``call``, nor results larger than ``max_size`` elements."""
    if not node.inputs or node.op == "call" or len(node.outputs) != 1:
        return None
    args = [b.constant(v) for v in node.inputs]
    kind = PYTHON_TYPE.get(node.outputs[0].type.dtype)
    if None in args or kind is None:
        return None
    dtypes = [np.dtype(PYTHON_TYPE[v.type.dtype]) for v in node.inputs]
    with np.errstate(all="ignore"):
        result = node.opdef.reference(**node.attributes)(*(np.asarray(a, d) for a, d in zip(args, dtypes)))
    if np.size(result) > max_size or np.ndim(result) > 0:  # constants are scalars
        return None
    return b.const(kind(result))
