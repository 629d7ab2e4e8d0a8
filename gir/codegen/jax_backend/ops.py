"""The ops whose JAX source differs from their NumPy template.

Every other op is its registry template evaluated with ``np`` bound to
``jax.numpy`` and ``sp`` to ``jax.scipy.special`` (see ``NAMESPACE``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import jax.scipy.special
import numpy

from gir.codegen.jax_backend.cumsum import cumsum
from gir.codegen.jax_backend.faddeeva import wofz

#: Names the generated source refers to.
NAMESPACE: dict[str, Any] = {
    "np": jnp,
    "sp": jax.scipy.special,
    "jnp": jnp,
    "float64": numpy.float64,
    "_cumsum": cumsum,
    "_wofz": wofz,
}


def const(args: Sequence[str], attrs: Mapping[str, Any]) -> str:
    """A host NumPy scalar: no JAX array at import, float64 whatever the x64 flag.

    ``numpy.float64`` keeps the IR's typing (a float constant is f64, so f32
    operands promote, as with the NumPy target); a Python float would be weakly
    typed and leave f32 arithmetic in f32.
    """
    value = attrs["value"]
    if isinstance(value, bool | int):
        return repr(value)
    if math.isnan(value):
        return "float64('nan')"
    if math.isinf(value):
        return f"float64('{'-' if value < 0 else ''}inf')"
    return f"float64({value!r})"


def _cumsum(args: Sequence[str], attrs: Mapping[str, Any]) -> str:
    return f"_cumsum({args[0]}, {attrs['axis']}, reverse={attrs['reverse']})"


def _wofz_part(index: int) -> Callable[[Sequence[str], Mapping[str, Any]], str]:
    # both parts call the same function on the same operands: XLA's CSE keeps one
    return lambda args, attrs: f"_wofz({args[0]}, {args[1]})[{index}]"


OVERRIDES: dict[str, Callable[[Sequence[str], Mapping[str, Any]], str]] = {
    "const": const,
    "cumsum": _cumsum,
    "wofz_re": _wofz_part(0),
    "wofz_im": _wofz_part(1),
}
