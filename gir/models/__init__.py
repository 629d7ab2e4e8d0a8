"""Spectroscopy models: a component library and Model composition (1D and 2D).

::

    from gir import models as gm
    m = gm.Model(axes=("time", "energy"))
    m.add(gm.GLP("p1", A=gm.Param(10, bounds=(0, 100)), x0=gm.Param(84.0), F=1.0, m=0.3))
    exe = gir.compile(m, target="numba")
"""

from gir.models import library
from gir.models.binding import ModelBinding
from gir.models.component import REGISTRY, Component, ComponentDef, Param
from gir.models.model import Model
from gir.models.simulate import demo_axes, simulate
from gir.models.trspecfit import from_trspecfit, project_shared

globals().update(REGISTRY)  # every library component: gm.GLP, gm.Shirley, gm.expFun, ...

__all__ = [
    "REGISTRY", "Component", "ComponentDef", "Model", "ModelBinding", "Param", "demo_axes",
    "from_trspecfit", "library", "project_shared", "simulate", *REGISTRY,
]  # fmt: skip
