"""Value types: a dtype and the named axes a value varies along."""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs
import numpy as np

from gir.errors import GirError

#: Dtypes in promotion order (a binary op takes the later of its operands').
DTYPES = ("bool", "i64", "f32", "f64")
FLOATS = ("f32", "f64")
#: The NumPy dtype of each IR dtype (the one map every backend and the runtime use).
NUMPY_DTYPES: dict[str, type] = {"bool": np.bool_, "i64": np.int64, "f32": np.float32, "f64": np.float64}
AXIS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@attrs.frozen
class Type:
    """``f64`` (a scalar), ``f64[E]``, ``f64[T,E]``: dtype plus the axes a value depends on.

    Axes are kept in the owning graph's axis order, so two types with the same
    axes compare equal however they were built.
    """

    dtype: str = "f64"
    axes: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise GirError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if not all(isinstance(a, str) and AXIS.match(a) for a in self.axes):
            raise GirError(f"axis names must be identifiers, got {self.axes}")
        if len(set(self.axes)) != len(self.axes):
            raise GirError(f"repeated axis in {self.axes}")

    @property
    def is_scalar(self) -> bool:
        return not self.axes

    def with_dtype(self, dtype: str) -> Type:
        return Type(dtype, self.axes)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(self.axes)}]" if self.axes else self.dtype


F64 = Type("f64")
BOOL = Type("bool")


def promote(*dtypes: str) -> str:
    """The dtype of an arithmetic result (i64 with f32 gives f64, as in NumPy)."""
    ranked = max(dtypes, key=DTYPES.index)
    if ranked == "f32" and "i64" in dtypes:
        return "f64"
    return ranked


def as_float(dtype: str) -> str:
    """The dtype of a transcendental result: floats stay, everything else is f64."""
    return dtype if dtype in FLOATS else "f64"


def union_axes(order: tuple[str, ...], axes: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    """All axes of ``axes`` in the graph's ``order``: the axes of a broadcast result."""
    present = set().union(*axes)
    unknown = present.difference(order)
    if unknown:
        raise GirError(f"axes {sorted(unknown)} are not axes of the graph {list(order)}")
    return tuple(a for a in order if a in present)
