"""What a model adds to the graph it compiles to: the contract between models and the runtime.

``gir.compile(obj)`` compiles ``obj.to_graph()``. An object that also has
``__gir_binding__(passes=..., fixed=...)`` (a :class:`gir.models.Model`) gives a
:class:`Binding`, which the :class:`gir.Executable` owns: the executable then
takes the model's axis arrays by the model's names, starts from the model's
values, adds the inputs derived from axes, checks parameter values, and returns
results on the model's whole grid. Nothing in the runtime or in gir.fit knows
what a model is beyond this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class Binding(abc.ABC):
    """Model knowledge carried by an executable beside its graph."""

    #: The model's axis names in grid order, each with the IR axis it is (``{"time": "T", "energy": "E"}``).
    axes: Mapping[str, str]
    #: Model axes the graph couples (a convolution along time): a fit window cuts them after evaluation.
    coupled: tuple[str, ...] = ()
    #: Parameters :meth:`check` requires to be positive (kernel widths), for solvers that check in
    #: compiled code; ``checks_expressions``: check() also evaluates expressions of parameters.
    positive: tuple[str, ...] = ()
    checks_expressions: bool = False

    @abc.abstractmethod
    def start(self, names: Sequence[str]) -> np.ndarray:
        """Start values of the parameters ``names``."""

    @abc.abstractmethod
    def bounds(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the parameters ``names``."""

    def ir_sizes(self, sizes: Mapping[str, int]) -> dict[str, int]:
        """Axis lengths by the model's names (``sizes=`` of compile) as lengths by IR axis."""
        return {self.axes.get(k, k): n for k, n in sizes.items()}

    def derived_inputs(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Graph inputs computed from the axis arrays (convolution differences, quadrature weights)."""
        return {}

    def check(self, names: Sequence[str], theta: np.ndarray) -> None:
        """Raise an InputError for parameter values (rows of ``theta``) the model is undefined at."""
        return None  # a model without such values

    @abc.abstractmethod
    def components(
        self, exe: Any, theta: np.ndarray, arrays: Mapping[str, Any]
    ) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        """Each component of the model (by name) at ``theta`` for the graph inputs ``arrays``: its values
        and their IR axes."""

    @abc.abstractmethod
    def fixed_and_tied(
        self, names: Sequence[str], theta: np.ndarray
    ) -> tuple[dict[str, float], dict[str, tuple[str, float]]]:
        """The parameters held constant (name -> value) and given as expressions (name -> (text,
        value)) at ``theta``."""

    @abc.abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Every parameter of the model by name, as the model declares it (number, Param or expression)."""
