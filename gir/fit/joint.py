"""Joint fits: several data sets, one residual, one Jacobian, parameters shared, local or fixed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gir.errors import InputError
from gir.fit.dataset import Dataset
from gir.fit.least_squares import fit_datasets
from gir.fit.result import FitResult
from gir.fit.solver import solver_options


def _as_dataset(item: Any, k: int) -> Dataset:
    if isinstance(item, Dataset):
        return item
    if isinstance(item, Mapping):
        item = dict(item)
        try:
            exe, data = item.pop("exe"), item.pop("data")
        except KeyError as e:
            raise InputError(
                f"data set {k}: a mapping needs 'exe' and 'data' (missing {e.args[0]!r})"
            ) from None
        return Dataset(exe, data, **item)
    if isinstance(item, tuple | list) and len(item) in (2, 3):
        exe, data, *rest = item
        return Dataset(exe, data, arrays=rest[0] if rest else None)
    raise InputError(
        f"data set {k}: give gir.fit.Dataset(exe, data, energy=..., ...), a mapping with 'exe' and 'data' "
        "(and arrays), or a tuple (exe, data, arrays)"
    )


def joint(
    datasets: Sequence[Any],
    *,
    shared: Iterable[str] | None = None,
    local: Iterable[str] = (),
    fixed: Mapping[str, float] | None = None,
    theta0: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    method: str = "levmar",
    varpro: bool | Iterable[str] = False,
    jacobian: str = "eager",
    ftol: float | None = None,
    xtol: float | None = None,
    gtol: float | None = None,
    max_nfev: int | None = None,
    x_scale: Any = None,
    options: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit several data sets at once: stacked residuals, one Jacobian, one parameter vector.

    Each data set is a :class:`gir.fit.Dataset` (``Dataset(exe_or_model, data,
    label="run1", energy=E, time=T, window=..., weights=..., theta0=...)``), a
    mapping with ``exe``, ``data`` and the Dataset's keywords, or a tuple
    ``(exe, data, arrays)``. Data sets may use different executables and grids.

    Parameters with the same name are one parameter, **shared** by every data
    set that has it, unless listed in ``local``: then each data set fits its
    own, named ``label:name`` (labels default to ``d0``, ``d1``, ...). With
    ``shared`` given, only those names are shared and every other one is
    local. ``fixed`` holds parameters at values: a name (in every data set)
    or ``label:name`` (in one). ``theta0`` and ``bounds`` override the start
    values and bounds of global parameters by their global name; otherwise a
    shared parameter starts from the first data set that has it and its
    bounds are the intersection of the data sets' bounds.

    The global vector maps into each data set's theta by an index map, and
    the Jacobian of each block has the columns of its own parameters. The
    result is a :class:`FitResult` over the global parameters; ``datasets``
    holds each data set's theta, data and best fit (``result.plot("run1")``).
    """
    if not datasets:
        raise InputError("joint needs at least one data set")
    specs = [_as_dataset(item, k) for k, item in enumerate(datasets)]
    scipy_kw = solver_options(ftol, xtol, gtol, max_nfev, x_scale, options)
    return fit_datasets(
        specs, method, varpro, jacobian, scipy_kw, bounds is not None,
        shared=shared, local=local, fixed=fixed, theta0=theta0, bounds=bounds,
    )  # fmt: skip
