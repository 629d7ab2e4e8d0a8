"""lmfit bridge: gir parameters as lmfit.Parameters, and a residual and Dfun for lmfit.minimize.

::

    params = gir.fit.to_lmfit(exe)                         # values, bounds, vary, expr
    residual, dfun = gir.fit.lmfit_functions(exe, data, energy=E, time=T)
    out = lmfit.minimize(residual, params, method="leastsq", Dfun=dfun)
    out = lmfit.minimize(residual, params, method="least_squares", jac=dfun)
    out = lmfit.minimize(residual, params, method="emcee")  # residual only

lmfit's parameter names are identifiers, so a gir name ``p1.x0.expFun.tau``
becomes ``p1_x0_expFun_tau`` (:func:`lmfit_names` gives the mapping).

Sign and layout: the residual is ``weights * (data - model)`` (lmfit's
convention), so ``dfun`` returns minus the model Jacobian, as an array of
shape (n_residuals, n_varying) (``col_deriv=False``, lmfit's default), with
one column per *varying* lmfit parameter in the order of the Parameters.
A gir parameter the user turned into an lmfit expression is chained in: its
derivative with respect to the varying parameters is taken by central
differences of lmfit's own expression evaluation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from gir.errors import InputError, warn
from gir.fit.dataset import Dataset, start_and_bounds
from gir.fit.grid import as_executable
from gir.fit.problem import build_problem
from gir.frontend import expr
from gir.models.component import Param
from gir.models.model import DOTTED
from gir.runtime.compile import compile
from gir.runtime.executable import Executable

_RENAMED_FUNCTIONS = {"ln": "log", "atan": "arctan"}


def _sanitize(name: str) -> str:
    out = re.sub(r"\W", "_", name)
    return out if re.match(r"[A-Za-z_]", out) else f"p_{out}"


def lmfit_names(names: Iterable[str]) -> dict[str, str]:
    """gir parameter name -> lmfit name (dots become underscores; clashes get a suffix)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = _sanitize(name)
        new, k = base, 1
        while new in taken:
            k += 1
            new = f"{base}_{k}"
        taken.add(new)
        out[name] = new
    return out


def _translate(expr: str, names: Mapping[str, str]) -> str:
    text = DOTTED.sub(lambda m: names.get(m.group(), m.group()), expr)
    return re.sub(r"\b(ln|atan)\s*\(", lambda m: _RENAMED_FUNCTIONS[m.group(1)] + "(", text)


def _specs_and_exe(obj: Any) -> tuple[dict[str, Any] | None, Executable | None]:
    """A model's parameters as declared (None for a plain graph) and the executable (None for a model)."""
    if isinstance(obj, Executable):
        return (None if obj.binding is None else obj.binding.parameters()), obj
    if hasattr(obj, "__gir_binding__"):
        return obj.parameters(), None
    raise InputError(f"cannot make lmfit parameters of {type(obj).__name__}: give a model or an executable")


def to_lmfit(model_or_exe: Any, theta0: Any = None, bounds: Any = None):
    """``lmfit.Parameters`` for a Model, compiled model or Executable.

    For a model: every parameter, with its value, ``vary`` and bounds; fixed
    numbers are ``vary=False``; expression parameters become lmfit ``expr``
    (the relation between base values; an expression on a time-dependent
    parameter relates the base values and varies in time in gir). An
    expression lmfit cannot evaluate becomes a fixed parameter at its start
    value, with a warning and the reason in ``user_data``. Parameters a
    compiled model holds ``fixed`` are ``vary=False``.

    For a plain Executable: its parameters with ``theta0`` (required) and
    ``bounds`` (optional ``(lo, hi)`` vectors or a mapping).
    """
    import lmfit
    import scipy.special

    specs, exe = _specs_and_exe(model_or_exe)
    params = lmfit.Parameters()
    params._asteval.symtable["erf"] = scipy.special.erf
    params._asteval.symtable["erfc"] = scipy.special.erfc
    if specs is None:
        names = tuple(exe.param_names)
        start, (lo, hi) = start_and_bounds(exe, names, theta0, bounds)
        for name, lm in lmfit_names(names).items():
            i = names.index(name)
            params.add(lm, value=start[i], min=lo[i], max=hi[i], vary=True, user_data={"gir": name})
        return params
    names = lmfit_names(specs)
    fixed = {} if exe is None else exe.fixed
    free = set(exe.param_names) if exe is not None else None
    start = {}
    if exe is not None:
        s, (lo, hi) = start_and_bounds(exe, tuple(exe.param_names), theta0, bounds)
        start = {n: (s[i], lo[i], hi[i]) for i, n in enumerate(exe.param_names)}
    deferred = []
    for name, spec in specs.items():
        lm = names[name]
        if isinstance(spec, str):
            deferred.append((name, spec))
            params.add(lm, value=0.0, vary=False, user_data={"gir": name, "gir_expr": spec})
            continue
        if isinstance(spec, Param):
            value, lo, hi, vary = spec.value, spec.bounds[0], spec.bounds[1], spec.vary
        else:
            value, lo, hi, vary = float(spec), -math.inf, math.inf, False
        if name in fixed:
            value, vary = float(fixed[name]), False
        elif free is not None and vary and name not in free:
            vary = False
        if name in start:
            value, lo, hi = start[name]
        params.add(lm, value=value, min=lo, max=hi, vary=vary, user_data={"gir": name})
    for name, text in deferred:  # after every name exists, in declaration order
        lm = names[name]
        try:
            params[lm].expr = _translate(text, names)
            params.update_constraints()
            value = params[lm].value
            if value is None or not np.isfinite(value):
                raise ValueError(f"evaluates to {value}")
        except Exception as e:  # lmfit raises NameError, SyntaxError, ValueError, ...
            params[lm].expr = None
            params[lm].vary = False
            value = _gir_expression_value(name, text, params, names)
            note = f"gir expression {text!r} is not representable in lmfit ({e}); fixed at its start value"
            warn(f"{name}: {note}")
            params[lm].value = value
            params[lm].user_data = {"gir": name, "gir_expr": text, "note": note}
    return params


def _gir_expression_value(name, text, params, names) -> float:
    """The start value of an expression parameter, evaluated by gir (numpy target)."""
    refs = {r.replace(".", "_"): r for r in DOTTED.findall(text)}
    g = expr(DOTTED.sub(lambda m: m.group().replace(".", "_"), text))
    values = {}
    for v in g.inputs:
        ref = refs.get(v.name, v.name)
        lm = names.get(ref)
        if lm is None or lm not in params:
            return math.nan
        values[v.name] = params[lm].value
    return float(compile(g, target="numpy")(**values))


class _Bridge:
    def __init__(self, problem, names: tuple[str, ...], lm: dict[str, str], jacobian: str):
        self.problem = problem
        self.names = names  # the executable's parameters (global = local names)
        self.lm = lm
        self.reverse = {v: k for k, v in lm.items()}
        self.eager = jacobian == "eager"
        self.auto = jacobian == "auto"

    def theta(self, params) -> np.ndarray:
        try:
            return np.array([float(params[self.lm[n]].value) for n in self.names])
        except KeyError as e:
            raise InputError(f"the lmfit Parameters lack {e.args[0]!r} (use gir.fit.to_lmfit)") from None

    def residual(self, params, *args, **kwargs) -> np.ndarray:
        theta = self.theta(params)
        if self.eager:
            y, _ = self.problem.model_and_jacobian(theta)
        else:
            y = self.problem.model(theta)
        return self.problem.wdata - y

    def dfun(self, params, *args, **kwargs) -> np.ndarray:
        if self.auto:
            self.eager = True  # a gradient method: evaluate value and Jacobian together from now on
        theta = self.theta(params)
        _, jac = self.problem.model_and_jacobian(theta)
        varying = [n for n, p in params.items() if p.vary]
        out = np.zeros((jac.shape[0], len(varying)))
        exprs = [i for i, n in enumerate(self.names) if params[self.lm[n]].expr is not None]
        for j, lmname in enumerate(varying):
            gname = self.reverse.get(lmname)
            if gname in self.names:
                out[:, j] = -jac[:, self.names.index(gname)]
            elif not exprs:
                raise InputError(
                    f"lmfit parameter {lmname!r} varies but is not a parameter of the compiled model "
                    f"(a constant there: recompile with it free)"
                )
        if exprs:
            chain = self._chain(params, varying, exprs)
            out -= jac[:, exprs] @ chain
        return out

    def _chain(self, params, varying: list[str], exprs: list[int]) -> np.ndarray:
        """d theta[exprs] / d varying by central differences of lmfit's expression evaluation."""
        p = params.copy()
        chain = np.zeros((len(exprs), len(varying)))
        for j, name in enumerate(varying):
            v = p[name].value
            h = 1e-6 * max(1.0, abs(v))
            vals = []
            for step in (h, -h):
                p[name].value = v + step
                p.update_constraints()
                vals.append(np.array([p[self.lm[self.names[i]]].value for i in exprs], dtype=float))
            p[name].value = v
            chain[:, j] = (vals[0] - vals[1]) / (2 * h)
        p.update_constraints()
        return chain


def lmfit_functions(
    exe: Any,
    data: Any,
    *,
    weights: Any = None,
    window: Mapping[str, Any] | None = None,
    window_after: Iterable[str] | None = None,
    jacobian: str = "auto",
    target: str = "auto",
    **arrays: Any,
):
    """``(residual, dfun)`` for ``lmfit.minimize(residual, params, ...)`` with ``params = to_lmfit(exe)``.

    ``residual(params)`` is ``weights * (data - model)`` (flat, non-finite
    data left out); ``dfun(params)`` is its Jacobian, minus the model's, of
    shape (n_residuals, n_varying) with the varying Parameters in order. Use
    ``Dfun=dfun`` with ``method="leastsq"`` and ``jac=dfun`` with
    ``method="least_squares"``; other methods (``emcee``, ``nelder``) use the
    residual alone. ``jacobian``: ``"auto"`` evaluates the value alone until
    ``dfun`` is first called, then value and Jacobian together (each point
    evaluated once for both); ``"eager"`` or ``"lazy"`` fix the policy.
    ``window`` as in :func:`gir.fit.least_squares`.
    """
    if jacobian not in ("auto", "eager", "lazy"):
        raise InputError(f"jacobian must be 'auto', 'eager' or 'lazy', got {jacobian!r}")
    exe = as_executable(exe, target)
    names = tuple(exe.param_names)
    theta0 = exe.theta0
    ds = Dataset(
        exe,
        data,
        arrays=arrays,
        theta0=np.zeros(len(names)) if theta0 is None else theta0,
        bounds=(-np.inf, np.inf),
        weights=weights,
        window=window,
        window_after=window_after,
    )
    problem = build_problem([ds.prepare()])
    bridge = _Bridge(problem, names, lmfit_names(_all_names(exe)), jacobian)
    return bridge.residual, bridge.dfun


def _all_names(exe: Executable) -> list[str]:
    return list(exe.param_names if exe.binding is None else exe.binding.parameters())
