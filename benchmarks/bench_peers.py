"""gir per call against what a user would write instead: hand-written ``jax.jit``, NumPy, PyTensor.

Four models like trspecfit's examples, each built with ``gir.models`` and written once more by
hand in ``jax.numpy`` (vectorized, the convolution as a matrix product, the same normalized
convolution with analytic edge masses as gir, so values agree to 1e-9 relative):

* 01: GLP whose position is expFun convolved with a Gaussian IRF (481 x 400 time x energy);
* 02: Offset + Shirley + two GLP, sine on the first position (212 x 1131), also in NumPy;
* 03: 01 with two subcycles (400 x 400);
* 04: 01 with the amplitude profiled over 50 depths (175 x 280 x 50).

Then the dense 2D model (a GLP whose position moves in time: one exp per grid point) traced in
both axis orders against PyTensor (C, Numba and JAX modes), one ``np.exp`` over the grid, and a
hand ``jax.jit``; value + Jacobian against one value call; and the first fit of a two-Voigt
600-point model on jax-cpu in a fresh process with JAX's persistent cache off.

    PYTHONPATH=. python benchmarks/bench_peers.py [--quick] [--skip-pytensor]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import dense
from bench_models import build as build_02
from bench_models import straightforward as numpy_02
from common import ms, stamp, table

import gir
from gir import models as gm

LN2 = np.log(2.0)
TARGETS = ("numba", "numba-parallel", "jax-cpu", "numpy")
RTOL = 1e-9  # gir against the hand-written versions, relative to the largest value


# -- the models in gir -----------------------------------------------------------------------


def _peak(m: gm.Model) -> None:
    m.add(gm.GLP("p1", A=gm.Param(10.0), x0=gm.Param(84.0), F=gm.Param(1.0), m=gm.Param(0.3)))


def _irf() -> gm.Component:
    return gm.gaussCONV(SD=gm.Param(0.2, bounds=(1e-3, 1)))


def build_01(convolution: str = "quadrature") -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    _peak(m)
    terms = [gm.expFun(A=gm.Param(0.5), tau=gm.Param(1.5), t0=0.0)]
    m.dynamics("p1.x0", terms, irf=_irf(), convolution=convolution)
    return m


def build_03() -> gm.Model:
    m = gm.Model(axes=("time", "energy"))
    _peak(m)
    subcycles = [
        [gm.expFun(A=gm.Param(0.5), tau=gm.Param(1.5), t0=0.0)],
        [gm.expFun(A=gm.Param(-0.3), tau=gm.Param(0.8), t0=0.0)],
    ]
    m.dynamics("p1.x0", subcycles, irf=_irf(), frequency=gm.Param(0.2))
    return m


def build_04(convolution: str = "quadrature") -> gm.Model:
    m = build_01(convolution)
    m.profile("p1.A", [gm.pExpDecay(A=gm.Param(5.0), tau=gm.Param(2.0))], axis="depth")
    return m


# -- the same models by hand in jax.numpy ------------------------------------------------------


def _trapezoid(t: np.ndarray) -> np.ndarray:
    gaps = np.diff(t)
    return np.concatenate([[gaps[0] / 2], (gaps[:-1] + gaps[1:]) / 2, [gaps[-1] / 2]])


def _jax_conv(t: np.ndarray) -> Callable:
    """Normalized Gaussian convolution along ``t`` (trapezoid weights, analytic mass past the ends)."""
    import jax.numpy as jnp
    from jax.scipy.special import erfc

    d, w = t[:, None] - t[None, :], _trapezoid(t)
    a, b = t - t[0], t - t[-1]

    def conv(p, sd):
        k = jnp.exp(-0.5 * (d / sd) ** 2) * w
        c = sd * np.sqrt(np.pi / 2)
        above, below = c * erfc(a / (sd * np.sqrt(2))), c * erfc(-b / (sd * np.sqrt(2)))
        return (k @ p + above * p[0] + below * p[-1]) / (k.sum(axis=1) + above + below)

    return conv


def _jax_glp(x, A, x0, F, m):
    import jax.numpy as jnp

    u2 = ((x - x0) / F) ** 2
    return A * jnp.exp(-4 * LN2 * (1 - m) * u2) / (1 + 4 * m * u2)


def _jax_exp(t, A, tau):
    import jax.numpy as jnp

    return jnp.where(t >= 0, A * jnp.exp(-jnp.maximum(t, 0.0) / tau), 0.0)


def hand_01(t: np.ndarray, x: np.ndarray) -> Callable:
    conv = _jax_conv(t)

    def f(p):
        x0 = conv(
            p["p1.x0"] + _jax_exp(t, p["p1.x0.expFun.A"], p["p1.x0.expFun.tau"]), p["p1.x0.gaussCONV.SD"]
        )
        return _jax_glp(x[None, :], p["p1.A"], x0[:, None], p["p1.F"], p["p1.m"])

    return f


def hand_02(t: np.ndarray, x: np.ndarray) -> Callable:
    import jax.numpy as jnp

    def f(p):
        tt = t[:, None]
        sine = p["p1.x0.sinFun.A"] * jnp.sin(2 * np.pi * p["p1.x0.sinFun.f"] * tt + p["p1.x0.sinFun.phi"])
        x1 = p["p1.x0"] + jnp.where(tt >= 0.0, sine, 0.0)
        peaks = _jax_glp(x, p["p1.A"], x1, p["p1.F"], p["p1.m"])
        peaks = peaks + _jax_glp(x, 0.5 * p["p1.A"], x1 + 3.65, p["p1.F"], p["p1.m"])
        shirley = p["Shirley.pShirley"] * jnp.cumsum(peaks[:, ::-1], axis=1)[:, ::-1]
        return p["Offset.y0"] + peaks + shirley

    return f


def hand_03(t: np.ndarray, x: np.ndarray) -> Callable:
    import jax.numpy as jnp

    conv = _jax_conv(t)

    def f(p):
        period = 1.0 / (2.0 * p["p1.x0.frequency"])
        count = jnp.floor(t / period)
        local = jnp.where(t >= 0, t - count * period, 0.0)
        index = jnp.where(t >= 0, jnp.mod(count, 2.0) + 1.0, 0.0)
        s1 = _jax_exp(local, p["p1.x0.sub1.expFun.A"], p["p1.x0.sub1.expFun.tau"])
        s2 = _jax_exp(local, p["p1.x0.sub2.expFun.A"], p["p1.x0.sub2.expFun.tau"])
        trace = p["p1.x0"] + jnp.where(index == 1.0, s1, 0.0) + jnp.where(index == 2.0, s2, 0.0)
        x0 = conv(trace, p["p1.x0.gaussCONV.SD"])
        return _jax_glp(x[None, :], p["p1.A"], x0[:, None], p["p1.F"], p["p1.m"])

    return f


def hand_04(t: np.ndarray, x: np.ndarray, z: np.ndarray) -> Callable:
    import jax.numpy as jnp

    conv = _jax_conv(t)

    def f(p):
        x0 = conv(
            p["p1.x0"] + _jax_exp(t, p["p1.x0.expFun.A"], p["p1.x0.expFun.tau"]), p["p1.x0.gaussCONV.SD"]
        )
        amp = p["p1.A"] + p["p1.A.pExpDecay.A"] * jnp.exp(-z / p["p1.A.pExpDecay.tau"])
        cube = _jax_glp(x[None, :, None], amp[None, None, :], x0[:, None, None], p["p1.F"], p["p1.m"])
        return jnp.mean(cube, axis=-1)

    return f


def hand_jit(f: Callable, names: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """``jax.jit`` of ``f(params by name)`` called like a gir executable: theta in, NumPy out."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jitted = jax.jit(lambda theta: f(dict(zip(names, theta, strict=True))))
    return lambda theta: np.asarray(jitted(theta))


# -- cases --------------------------------------------------------------------------------------


def cases(quick: bool) -> list[dict]:
    scale = 2 if quick else 1
    t01, e01 = np.linspace(-2, 10, 481 // scale), np.linspace(80, 90, 400 // scale)
    t02, e02 = np.linspace(-1.0, 10.0, 212 // scale), np.linspace(78.0, 94.0, 1131 // scale)
    t03, e03 = np.linspace(-2, 10, 400 // scale), np.linspace(80, 90, 400 // scale)
    t04, e04, z04 = (
        np.linspace(-2, 10, 175 // scale),
        np.linspace(80, 90, 280 // scale),
        np.linspace(0, 6, 50),
    )
    return [
        {"name": "01 GLP, x0 <- gaussCONV * expFun", "model": build_01(), "hand": hand_01(t01, e01),
         "arrays": {"time": t01, "energy": e01}},
        {"name": "02 2 GLP + Shirley, sine on x0", "model": build_02(), "hand": hand_02(t02, e02),
         "arrays": {"time": t02, "energy": e02}},
        {"name": "03 01 with two subcycles", "model": build_03(), "hand": hand_03(t03, e03),
         "arrays": {"time": t03, "energy": e03}},
        {"name": "04 profile over 50 depths, IRF", "model": build_04(), "hand": hand_04(t04, e04, z04),
         "arrays": {"time": t04, "energy": e04, "depth": z04}},
    ]  # fmt: skip


def shape_of(arrays: dict[str, np.ndarray]) -> str:
    return " x ".join(str(a.size) for a in arrays.values())


def check(name: str, got: np.ndarray, want: np.ndarray) -> float:
    """The largest difference relative to the largest value; raises past :data:`RTOL`."""
    err = float(np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want)))
    if err > RTOL:
        raise AssertionError(f"{name}: relative difference {err:.2e} > {RTOL:.0e}")
    return err


def interleaved(fns: dict[str, Callable[[], object]], rounds: int = 15, min_time: float = 0.02) -> dict:
    """Median seconds per call of each function, measured in alternating rounds.

    On a shared machine the load drifts; rounds that alternate between the
    functions expose each to the same drift, so their ratios hold.
    """
    number = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        number[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / number[name])
    return {name: statistics.median(v) for name, v in samples.items()}


def bench_case(case: dict, targets: list[str]) -> tuple[list[list[str]], list[list[str]], dict]:
    """Per-call rows (target, ms, hand jax / target) and value + Jacobian rows for one model."""
    arrays = case["arrays"]
    exes = {t: gir.compile(case["model"], target=t) for t in targets}
    first = next(iter(exes.values()))
    theta = first.theta0
    hand = hand_jit(case["hand"], first.param_names)
    want = hand(theta)
    errs = {t: check(f"{case['name']} {t}", exe(theta, **arrays), want) for t, exe in exes.items()}
    fns = {"hand": lambda: hand(theta)}
    for t, exe in exes.items():
        fns[t] = lambda exe=exe: exe(theta, **arrays)
        fns[f"{t} jac"] = lambda exe=exe: exe.value_and_jacobian(theta, **arrays)
    timed = interleaved(fns)
    rows = [[case["name"], shape_of(arrays), "hand jax.jit", ms(timed["hand"]), "1.00", "0"]]
    jac_rows = []
    for t in exes:
        sec, jac = timed[t], timed[f"{t} jac"]
        rows.append(
            [case["name"], shape_of(arrays), t, ms(sec), f"{timed['hand'] / sec:.2f}", f"{errs[t]:.0e}"]
        )
        jac_rows.append([case["name"], t, str(len(theta)), ms(sec), ms(jac), f"{jac / sec:.2f}"])
        print(f"{case['name'][:2]} {t:15s} {ms(sec)} ms, value+jac {ms(jac)} ms", file=sys.stderr)
    return rows, jac_rows, {"hand": timed["hand"], **{t: timed[t] for t in exes}}


def bench_analytic(case: dict, build: Callable[[str], gm.Model], targets: list[str]) -> list[list[str]]:
    """Model ``case`` with ``convolution="analytic"`` (closed forms, O(T)) against the hand-written
    quadrature: per-call times, value + Jacobian, and how far the exact convolution is from the sum."""
    arrays = case["arrays"]
    exes = {t: gir.compile(build("analytic"), target=t) for t in targets if t in ("numba", "jax-cpu")}
    theta = next(iter(exes.values())).theta0
    hand = hand_jit(case["hand"], next(iter(exes.values())).param_names)
    want = hand(theta)
    fns = {"hand": lambda: hand(theta)}
    for t, exe in exes.items():
        fns[t] = lambda exe=exe: exe(theta, **arrays)
        fns[f"{t} jac"] = lambda exe=exe: exe.value_and_jacobian(theta, **arrays)
    timed = interleaved(fns)
    rows = []
    for t, exe in exes.items():
        diff = float(np.max(np.abs(exe(theta, **arrays) - want)) / np.max(np.abs(want)))
        sec, jac = timed[t], timed[f"{t} jac"]
        speed = f"{timed['hand'] / sec:.2f}"
        rows.append([f"{case['name'][:2]} analytic", t, ms(timed["hand"]), ms(sec), speed, f"{jac / sec:.2f}",
                     f"{diff:.1e}"])  # fmt: skip
    return rows


# -- the dense 2D model ------------------------------------------------------------------------

DENSE_THETA = np.array([10.0, 84.0, 1.0, 0.3, 0.5, 1.2])


def pytensor_dense(outer: str) -> dict[str, Callable]:
    """PyTensor's compiled dense model per mode (C, NUMBA, JAX), arrays laid out time- or energy-outer."""
    import pytensor
    import pytensor.tensor as pt

    x, t = pt.dvector("x"), pt.dvector("t")
    A, x0, F, m, a, tau = (pt.dscalar(n) for n in ("A", "x0", "F", "m", "a", "tau"))
    xs, ts = (x[None, :], t[:, None]) if outer == "time" else (x[:, None], t[None, :])
    pos = x0 + a * pt.switch(ts >= 0, pt.exp(-pt.maximum(ts, 0.0) / tau), 0.0)
    u = ((xs - pos) / F) ** 2
    y = A * pt.exp(-4 * LN2 * (1 - m) * u) / (1 + 4 * m * u)
    out = {}
    for mode in ("FAST_RUN", "NUMBA", "JAX"):
        try:
            fn = pytensor.function([x, t, A, x0, F, m, a, tau], y, mode=mode)
        except Exception as e:  # a mode whose backend is missing is reported, not fatal
            print(f"PyTensor mode {mode} unavailable: {e}", file=sys.stderr)
            continue
        out[{"FAST_RUN": "C"}.get(mode, mode.lower())] = fn
    return out


def hand_dense(outer: str) -> Callable:
    import jax.numpy as jnp

    def f(x, t, A, x0, F, m, a, tau):
        xs, ts = (x[None, :], t[:, None]) if outer == "time" else (x[:, None], t[None, :])
        pos = x0 + a * jnp.where(ts >= 0, jnp.exp(-jnp.maximum(ts, 0.0) / tau), 0.0)
        u = ((xs - pos) / F) ** 2
        return A * jnp.exp(-4 * LN2 * (1 - m) * u) / (1 + 4 * m * u)

    return f


def bench_dense(targets: list[str], with_pytensor: bool, nt: int, ne: int) -> tuple[list[list[str]], dict]:
    import jax

    jax.config.update("jax_enable_x64", True)
    t, x = np.linspace(-1.0, 10.0, nt), np.linspace(80.0, 92.0, ne)
    exponent = -np.abs(x[None, :] - 86.0) * (1 + t[:, None] ** 2)
    rows, out = [], {}
    for outer, axes in (("time", ("T", "E")), ("energy", ("E", "T"))):
        want = dense(
            *((x[None, :], t[:, None]) if outer == "time" else (x[:, None], t[None, :])), *DENSE_THETA
        )
        fns: dict[str, Callable[[], object]] = {"np.exp floor": lambda: np.exp(exponent)}
        jitted = jax.jit(hand_dense(outer))
        check(f"dense {outer} hand jax", jitted(x, t, *DENSE_THETA), want)
        fns["hand jax.jit"] = lambda jitted=jitted: np.asarray(jitted(x, t, *DENSE_THETA))
        if with_pytensor:
            for mode, fn in pytensor_dense(outer).items():
                check(f"dense {outer} pytensor {mode}", fn(x, t, *DENSE_THETA), want)
                fns[f"PyTensor {mode}"] = lambda fn=fn: np.asarray(fn(x, t, *DENSE_THETA))  # waits for JAX
        graph = gir.trace(dense, x="E", t="T", axes=axes)
        for target in targets:
            exe = gir.compile(graph, target=target)
            check(f"dense {outer} {target}", exe(DENSE_THETA, x=x, t=t), want)
            fns[target] = lambda exe=exe: exe(DENSE_THETA, x=x, t=t)
        timed = interleaved(fns)
        floor = timed["np.exp floor"]
        for name, sec in timed.items():
            rows.append(
                [f"{outer} outer", name, ms(sec), f"{timed['hand jax.jit'] / sec:.2f}", f"{sec / floor:.2f}"]
            )
        out[outer] = timed
        out.setdefault("floor", {})[outer] = floor
        print(f"dense {outer} outer: " + ", ".join(f"{k} {ms(v)}" for k, v in timed.items()), file=sys.stderr)
    return rows, out


# -- NumPy target against hand NumPy ---------------------------------------------------------


def bench_numpy() -> tuple[list[list[str]], list[float]]:
    """gir's numpy target against the straightforward NumPy versions of model 02 and the dense model."""
    t, x = np.linspace(-1.0, 10.0, 212), np.linspace(78.0, 94.0, 1131)
    exe = gir.compile(build_02(), target="numpy")
    order = ["Offset.y0", "p1.A", "p1.x0", "p1.F", "p1.m", "Shirley.pShirley",
             "p1.x0.sinFun.A", "p1.x0.sinFun.f", "p1.x0.sinFun.phi"]  # fmt: skip
    plain = exe.theta0[[exe.param_names.index(n) for n in order]]
    dense_exe = gir.compile(gir.trace(dense, x="E", t="T", axes=("T", "E")), target="numpy")
    pairs = [
        ("02 2 GLP + Shirley", lambda: numpy_02(plain, x, t), lambda: exe(exe.theta0, energy=x, time=t)),
        ("dense 2D", lambda: dense(x[None, :], t[:, None], *DENSE_THETA),
         lambda: dense_exe(DENSE_THETA, x=x, t=t)),
    ]  # fmt: skip
    rows, ratios = [], []
    for name, mine, theirs in pairs:
        check(f"numpy {name}", theirs(), mine())
        timed = interleaved({"hand": mine, "gir": theirs}, rounds=25)
        hand, target = timed["hand"], timed["gir"]
        rows.append([name, ms(hand), ms(target), f"{hand / target:.2f}"])
        ratios.append(hand / target)
    return rows, ratios


# -- first fit on jax-cpu in a fresh process --------------------------------------------------


def first_fit_probe() -> None:
    """Run in a fresh process: seconds from compile to the end of the first fit, as JSON."""
    m = gm.Model(axes=("energy",))
    m.add(
        gm.Voigt(
            "v1", A=gm.Param(10.0), x0=gm.Param(84.0), SD=gm.Param(0.4, bounds=(0.01, 5)), W=gm.Param(0.3)
        )
    )
    m.add(
        gm.Voigt(
            "v2", A=gm.Param(6.0), x0=gm.Param(87.0), SD=gm.Param(0.5, bounds=(0.01, 5)), W=gm.Param(0.2)
        )
    )
    x = np.linspace(78.0, 94.0, 600)
    start = time.perf_counter()
    exe = gir.compile(m, target="jax-cpu")
    data = exe(exe.theta0, energy=x)
    compiled = time.perf_counter() - start
    gir.fit.least_squares(exe, data, theta0=exe.theta0 * 1.03, energy=x)
    print(json.dumps({"compile": compiled, "first_fit": time.perf_counter() - start}))


def first_fit() -> dict[str, float]:
    env = {**os.environ, "GIR_JAX_CACHE": "0"}
    cmd = [sys.executable, __file__, "--probe-first-fit"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------


def goal(text: str, ok: bool, value: str) -> list[str]:
    return [text, value, "met" if ok else "not met"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="half-size grids (a smoke run)")
    ap.add_argument("--skip-pytensor", action="store_true")
    ap.add_argument("--probe-first-fit", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe_first_fit:
        return first_fit_probe()
    warnings.simplefilter("ignore")
    available = {t.name for t in gir.targets() if t.available}
    targets = [t for t in TARGETS if t in available]
    goals = []

    per_call, jac_rows, worst_numba, worst_best, worst_jac = [], [], np.inf, np.inf, 0.0
    for case in cases(args.quick):
        rows, jrows, timed = bench_case(case, targets)
        per_call += rows
        jac_rows += jrows
        worst_numba = min(worst_numba, timed["hand"] / timed["numba"])
        worst_best = min(worst_best, timed["hand"] / min(v for k, v in timed.items() if k != "hand"))
        worst_jac = max(worst_jac, max(float(r[-1]) for r in jrows))
    builders = {"01": build_01, "04": build_04}
    analytic = [row for case in cases(args.quick) if case["name"][:2] in builders
                for row in bench_analytic(case, builders[case["name"][:2]], targets)]  # fmt: skip
    goals.append(
        goal(
            "gir numba (1 thread) >= 1.5x hand jax.jit, every model",
            worst_numba >= 1.5,
            f"{worst_numba:.2f}x (worst)",
        )
    )
    goals.append(
        goal(
            "gir's best target >= 3x hand jax.jit, every model", worst_best >= 3, f"{worst_best:.2f}x (worst)"
        )
    )
    goals.append(
        goal(
            "value + Jacobian <= 3x one value call, every target", worst_jac <= 3, f"{worst_jac:.2f}x (worst)"
        )
    )

    nt, ne = (106, 565) if args.quick else (212, 1131)
    dense_rows, d = bench_dense(targets, not args.skip_pytensor, nt, ne)
    for outer in ("time", "energy"):
        timed = d[outer]
        ours = min(timed[t] for t in targets)
        theirs = [v for k, v in timed.items() if k.startswith("PyTensor")]
        if theirs:
            goals.append(
                goal(
                    f"dense, {outer} outer: best gir >= 1.5x PyTensor's best",
                    min(theirs) / ours >= 1.5,
                    f"{min(theirs) / ours:.2f}x",
                )
            )
        goals.append(
            goal(
                f"dense, {outer} outer: numba within 2x of the np.exp floor",
                timed["numba"] / d["floor"][outer] <= 2,
                f"{timed['numba'] / d['floor'][outer]:.2f}x floor",
            )
        )
        if "jax-cpu" in timed:
            r = timed["jax-cpu"] / timed["hand jax.jit"]
            goals.append(
                goal(f"dense, {outer} outer: jax-cpu within 1.2x of hand jax.jit", r <= 1.2, f"{r:.2f}x")
            )

    numpy_rows, ratios = bench_numpy()
    goals.append(
        goal("numpy target >= 1.3x straightforward NumPy", min(ratios) >= 1.3, f"{min(ratios):.2f}x (worst)")
    )
    fit = first_fit()
    spent = f"{fit['first_fit']:.2f} s (compile + first call {fit['compile']:.2f} s)"
    goals.append(
        goal("jax-cpu first fit, fresh process, no persistent cache < 2 s", fit["first_fit"] < 2, spent)
    )

    print(f"\n{stamp()}. Medians of repeated runs; ratios from the same run.\n")
    print(table(["model", "grid", "implementation", "ms/call", "hand jax / this", "max rel. diff"], per_call))
    print("\nValue + Jacobian (forward mode, all free parameters) against one value call:\n")
    print(table(["model", "target", "P", "value ms", "value + Jacobian ms", "ratio"], jac_rows))
    print('\nModels 01 and 04 with convolution="analytic" (exact, O(T)) against the hand quadrature:\n')
    print(table(["model", "target", "hand jax ms", "gir ms", "hand jax / gir", "value + Jacobian / value",
                 "rel. diff from the quadrature"], analytic))  # fmt: skip
    print(f"\nDense 2D model, {nt} x {ne}, in both declared axis orders:\n")
    print(table(["order", "implementation", "ms/call", "hand jax / this", "x floor"], dense_rows))
    print("\ngir's numpy target against a straightforward NumPy version (212 x 1131):\n")
    print(table(["model", "hand NumPy ms", "gir numpy ms", "speed-up"], numpy_rows))
    print("\nGoals:\n")
    print(table(["goal", "measured", "status"], goals))


if __name__ == "__main__":
    main()
