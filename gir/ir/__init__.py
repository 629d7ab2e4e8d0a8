"""The graph IR: types, the op registry, graphs, building, printing, parsing, verifying."""

from gir.ir.builder import Builder
from gir.ir.graph import Graph, Node, Value
from gir.ir.ops import OPS, OpDef, get_op, register, unregister
from gir.ir.parser import parse
from gir.ir.printer import dump
from gir.ir.types import Type
from gir.ir.verify import verify

__all__ = [
    "OPS",
    "Builder",
    "Graph",
    "Node",
    "OpDef",
    "Type",
    "Value",
    "dump",
    "get_op",
    "parse",
    "register",
    "unregister",
    "verify",
]
