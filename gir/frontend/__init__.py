"""Front ends: NumPy-style Python functions (:func:`trace`, :func:`component`) and
expression strings (:func:`expr`) to typed graphs, through one set of tracers."""

from gir.frontend.expr import expr
from gir.frontend.trace import Component, component, trace
from gir.frontend.tracer import ComplexTracer, Tracer

__all__ = ["ComplexTracer", "Component", "Tracer", "component", "expr", "trace"]
