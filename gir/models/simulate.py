"""Demo axes and simulated (noisy) data for a model: examples and tests need no measured data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gir.errors import InputError
from gir.runtime.compile import compile

if TYPE_CHECKING:
    from gir.models.model import Model

#: Default ranges: energy around the peaks of the examples (84 eV), time from before time zero on.
ENERGY_RANGE = (78.0, 94.0)
TIME_RANGE = (-1.0, 10.0)
AUX_RANGE = (0.0, 10.0)


def demo_axes(
    model: Model | Sequence[str], *, energy: int = 400, time: int = 120, aux: int = 50
) -> dict[str, np.ndarray]:
    """Axis arrays for ``model`` (or a tuple of axis names), keyed by the model's axis names.

    The last axis is energy (``np.linspace(78, 94, energy)``), the first of two
    is time (``np.linspace(-1, 10, time)``); a model's profile axes get
    ``np.linspace(0, 10, aux)``.
    """
    for what, n in (("energy", energy), ("time", time), ("aux", aux)):
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise InputError(f"demo_axes: {what} must be a positive number of points, got {n!r}")
    if isinstance(model, str):
        names: tuple[str, ...] = (model,)
    elif hasattr(model, "axes") and not isinstance(model, Sequence):
        names = tuple(model.axes)
    else:
        names = tuple(model)
    if (
        len(names) not in (1, 2)
        or len(set(names)) != len(names)
        or not all(isinstance(a, str) for a in names)
    ):
        raise InputError(f"demo_axes: axes are ('energy',) or ('time', 'energy'), got {names!r}")
    out = {names[-1]: np.linspace(*ENERGY_RANGE, energy)}
    if len(names) == 2:
        out = {names[0]: np.linspace(*TIME_RANGE, time), **out}
    for prof in getattr(model, "profiles", {}).values():
        out.setdefault(prof.axis, np.linspace(*AUX_RANGE, aux))
    return out


def parameter_vector(names: Sequence[str], start: np.ndarray, theta: Any) -> np.ndarray:
    """``theta`` as a vector in ``names`` order: None (``start``), a vector, or a mapping of some names."""
    if theta is None:
        return np.array(start, dtype=np.float64)
    if isinstance(theta, Mapping):
        out = np.array(start, dtype=np.float64)
        index = {n: i for i, n in enumerate(names)}
        for name, value in theta.items():
            if name not in index:
                raise InputError(f"theta: {name!r} is not a free parameter of the model, free: {list(names)}")
            try:
                out[index[name]] = float(value)
            except (TypeError, ValueError):
                raise InputError(f"theta: the value of {name!r} must be a number, got {value!r}") from None
        return out
    try:
        vector = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"theta must be a vector or a mapping name -> value, got {theta!r}") from None
    if vector.shape != (len(names),):
        raise InputError(
            f"theta has shape {vector.shape}; the model has {len(names)} free parameters {list(names)}"
        )
    return vector


def simulate(
    model: Model,
    theta: Any = None,
    *,
    noise: Any = 0.0,
    seed: int | np.random.Generator | None = None,
    target: str = "numpy",
    **arrays: Any,
) -> np.ndarray:
    """``model`` at ``theta`` on ``arrays`` (missing axes from :func:`demo_axes`) plus Gaussian noise.

    ``theta`` is None (the start values), a vector in the compiled model's
    ``param_names`` order or a mapping name -> value of some free parameters.
    ``noise`` is the standard deviation, a scalar or an array broadcastable to
    the grid, drawn from ``np.random.default_rng(seed)``.
    """
    exe = compile(model, target)
    vector = parameter_vector(exe.param_names, exe.theta0, theta)
    y = np.array(exe(vector, **{**demo_axes(model), **arrays}), dtype=np.float64)
    try:
        sigma = np.asarray(noise, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"noise must be a number or an array of numbers, got {noise!r}") from None
    try:
        fits = np.broadcast_shapes(sigma.shape, y.shape) == y.shape
    except ValueError:
        fits = False
    if not fits:
        raise InputError(f"noise of shape {sigma.shape} does not broadcast to the grid {y.shape}")
    if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise InputError("noise must be finite and non-negative")
    if np.any(sigma > 0):
        y += sigma * np.random.default_rng(seed).standard_normal(y.shape)
    return y
