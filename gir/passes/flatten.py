"""flatten: nested add/mul chains into one n-ary node; binarize: the reverse."""

from __future__ import annotations

from gir.ir.graph import Node, Value
from gir.passes.base import rewrite
from gir.passes.driver import RewriteBuilder


@rewrite("add", "mul")
def flatten(node: Node, b: RewriteBuilder) -> Value | None:
    """``a + (b + (c + d)) -> a + b + c + d``, splicing inner sums read once, by their outer sum alone.

    The outermost sum of a chain splices the whole chain at once (the inner
    links wait for it), and operands with fewer axes go first (a stable sort),
    so the scalar part of a mixed chain is still computed once.
    """

    def inner(v: Value, reader: Node) -> Node | None:
        p = b.producer(v)
        return (
            p
            if p is not None
            and p.op == node.op
            and b.single_user(v) is reader
            and reader.inputs.count(v) == 1
            else None
        )

    user = b.single_user(node.output)
    if user is not None and user.op == node.op and user.inputs.count(node.output) == 1:
        return None  # an inner link: the chain's outermost node flattens it
    inputs: list[Value] = []
    stack = [(node, iter(node.inputs))]
    while stack:  # depth first, keeping operand order
        reader, it = stack[-1]
        v = next(it, None)
        if v is None:
            stack.pop()
        elif (p := inner(v, reader)) is not None:
            stack.append((p, iter(p.inputs)))
        else:
            inputs.append(v)
    if len(inputs) == len(node.inputs):
        return None
    inputs.sort(key=lambda v: len(v.type.axes))
    return b.op(node.op, *inputs)


@rewrite("add", "mul")
def binarize(node: Node, b: RewriteBuilder) -> Value | None:
    """``a + b + c -> (a + b) + c``, for backends that want binary ops (same evaluation order)."""
    if len(node.inputs) <= 2:
        return None
    acc = node.inputs[0]
    for v in node.inputs[1:-1]:
        acc = b.op(node.op, acc, v)
    return b.op(node.op, acc, node.inputs[-1])
