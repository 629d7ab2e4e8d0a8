"""A runtime that recovers: damaged disk caches, bad inputs, non-finite and empty grids on every
target, linear-time IR text, bounded compile caches."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from available import require_target

import gir
from gir.ir.types import Type
from gir.models import Gauss, Model, Param
from gir.runtime import cache as cache_mod

TARGETS = ["numpy", "numba", "numba-parallel", "jax-cpu"]
ROOT = Path(__file__).resolve().parent.parent

# -- 1. a damaged disk cache is evicted with one warning and rebuilt ----------------------------

CALL = """
import numpy as np, gir
exe = gir.compile(gir.expr("a * x + 0.25", x="E"), target="numba")
print(exe([2.0], x=np.arange(3.0)).tolist())
"""
WANT = "[0.25, 2.25, 4.25]"


def _run(cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIR_CACHE_DIR": str(cache), "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-c", CALL], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory) -> Path:
    """A disk cache holding the kernel module of CALL and Numba's index and data files for it."""
    require_target("numba")
    cache = tmp_path_factory.mktemp("filled")
    out = _run(cache)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == WANT and "CacheWarning" not in out.stderr
    return cache


def _damage(path: Path, how: str) -> bytes:
    data = path.read_bytes()
    bad = {
        "truncated": data[: len(data) // 3],
        "zeroed": bytes(len(data)),
        "garbage": bytes((i * 151 + 0x80) % 256 for i in range(len(data))),
    }[how]
    path.write_bytes(bad)
    return bad


@pytest.mark.parametrize("how", ["truncated", "zeroed", "garbage"])
@pytest.mark.parametrize(
    "pattern", ["gir_*.py", "__pycache__/gir_*.model-*.nbi", "__pycache__/gir_*.model-*.nbc"]
)
def test_damaged_disk_cache_entry_is_rebuilt_with_one_warning(filled_cache, tmp_path, pattern, how):
    cache = tmp_path / "cache"
    shutil.copytree(filled_cache, cache)  # copy2 keeps the modification times Numba's index checks
    (path,) = (cache / "numba").glob(pattern)
    bad = _damage(path, how)
    out = _run(cache)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == WANT
    assert out.stderr.count("CacheWarning") == 1, out.stderr
    assert "Traceback" not in out.stderr
    rebuilt = list((cache / "numba").glob(pattern))  # the entry was written again, whole
    assert len(rebuilt) == 1 and rebuilt[0].read_bytes() != bad
    assert not list((cache / "numba").glob("**/*.tmp"))


def test_module_files_are_written_atomically(tmp_path, monkeypatch):
    require_target("numba")
    from gir.codegen.numba_backend import cache as numba_cache

    replaced = []
    real = os.replace
    monkeypatch.setattr(numba_cache.os, "replace", lambda a, b: (replaced.append((a, b)), real(a, b)))
    path = numba_cache._write(tmp_path, "k" * 32, "x = 1\n")
    assert path.read_text() == "x = 1\n" and replaced and Path(replaced[0][0]).parent == tmp_path
    assert numba_cache._write(tmp_path, "k" * 32, "x = 1\n") == path and len(replaced) == 1  # kept
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# -- 2. bad inputs name what is wrong -------------------------------------------------------------


@pytest.fixture(scope="module")
def linear():
    return gir.compile(gir.expr("a * x + b", x="E"), target="numpy")


X = np.arange(3.0)
BAD_THETAS = [
    ([1 + 2j, 0.0], "'a'", "complex"),
    (np.array([1.0, 2.0 + 0.5j]), "'a'", "complex"),
    (["abc", 0.0], "'a'", "string"),
    ([1.0, "x"], "'b'", "string"),
    ([1.0, None], "'b'", "NoneType"),
    ({"a": 1.0, "b": "z"}, "'b'", "string"),
    ({"a": 1.0, "c": 2.0}, "'c'", "unknown parameter"),
    ({"a": 1.0}, "'b'", "missing parameter"),
]


@pytest.mark.parametrize(("theta", "name", "what"), BAD_THETAS)
@pytest.mark.parametrize("call", ["call", "jacobian-forward", "jacobian-reverse", "vjp", "call_into"])
def test_complex_and_non_numeric_thetas_name_the_parameter(linear, theta, name, what, call):
    run = {
        "call": lambda: linear(theta, x=X),
        "jacobian-forward": lambda: linear.value_and_jacobian(theta, x=X, mode="forward"),
        "jacobian-reverse": lambda: linear.value_and_jacobian(theta, x=X, mode="reverse"),
        "vjp": lambda: linear.vjp(theta, np.ones(3), x=X),
        "call_into": lambda: linear.call_into([np.empty(3)], theta, x=X),
    }[call]
    with pytest.raises(gir.InputError, match=what) as info:
        run()
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("thetas", "name"),
    [([[1.0, 0.0], [1j, 0.0]], "'a'"), ([[1.0, "q"]], "'b'"), ({"a": [1.0, 2.0], "b": [0.0, "q"]}, "'b'")],
)
def test_batch_thetas_are_checked_alike(linear, thetas, name):
    with pytest.raises(gir.InputError, match="must be a real number") as info:
        linear.batch(thetas, x=X)
    assert name in str(info.value)


def test_mapping_thetas_give_parameters_by_name(linear):
    np.testing.assert_array_equal(linear({"b": 1.0, "a": 2.0}, x=X), 2 * X + 1)
    _, jac = linear.value_and_jacobian({"a": 2.0, "b": 1.0}, x=X)
    np.testing.assert_array_equal(jac, np.stack([X, np.ones(3)], axis=-1))
    np.testing.assert_array_equal(linear.batch({"a": [1.0, 2.0], "b": [0.0, 1.0]}, x=X), [X, 2 * X + 1])


@pytest.mark.parametrize("value", [X + 1j, np.array(["1", "2", "3"]), [1.0, "a", None], [[1.0], [1.0, 2.0]]])
def test_complex_and_non_numeric_arrays_name_the_array(linear, value):
    with pytest.raises(gir.InputError, match="'x'"):
        linear([1.0, 0.0], x=value)


def _model_json() -> dict:
    m = Model()
    m.add(Gauss("g1", A=Param(1.0, bounds=(0, 5)), x0=0.0, SD=1.0))
    return m.to_dict()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"value": "abc"}, "'value' must be a number"),
        ({"value": None}, "'value' must be a number"),
        ({"value": 1.0, "bounds": ["x", 5]}, "'bounds' must be"),
        ({"value": 1.0, "bounds": "ab"}, "'bounds' must be"),
        ({"value": 1.0, "bounds": 5}, "'bounds' must be"),
        ({"value": 1.0, "vary": "no"}, "'vary' must be"),
        ({"vary": True}, "needs a 'value'"),
    ],
)
def test_bad_json_parameter_values_name_the_parameter(spec, message):
    data = copy.deepcopy(_model_json())
    data["components"][0]["params"]["A"] = spec
    with pytest.raises(gir.GirError, match=message) as info:
        Model.from_dict(data)
    assert "Gauss.A" in str(info.value)


GRAPH_G = "graph @g(%x: f64[E]) -> f64[E] {\n  %y: f64[E] = neg %x\n  return %y\n}\n"


@pytest.mark.parametrize("value", ['"g"', "g", "3", "true", "[@g]", "nan"])
def test_callee_of_the_wrong_kind_is_a_parse_error_at_the_value(value):
    line = "  %y: f64[E] = call %x {callee=" + value + "}"
    text = GRAPH_G + "graph @main(%x: f64[E]) -> f64[E] {\n" + line + "\n  return %y\n}\n"
    with pytest.raises(gir.ParseError, match="must be a graph like @f") as info:
        gir.parse(text)
    assert (info.value.line, info.value.column) == (6, line.index("callee=") + 8)


def test_lone_surrogates_in_strings_are_parse_errors():
    text = 'graph @main(%x: f64[E]) -> f64[E] {\n  %y: f64[E] = cumsum %x {axis="\\ud800"}\n  return %y\n}\n'
    with pytest.raises(gir.ParseError, match="surrogate") as info:
        gir.parse(text)
    assert (info.value.line, info.value.column) == (2, 32)


# -- 3, 4. non-finite values and empty axes behave as in NumPy on every target ------------------


def _scan_model() -> gir.Graph:
    """Reversed and forward cumulative sums along E of a [T,E] array, and a scalar of them."""
    b = gir.Builder(("T", "E"))
    d = b.input("d", Type("f64", ("T", "E")))
    a, k = b.input("a"), b.input("k")
    y = b.op("mul", b.op("exp", b.op("mul", d, k)), a)
    rev = b.op("cumsum", y, axis="E", reverse=True)
    fwd = b.op("cumsum", b.op("mul", y, d), axis="E")
    return b.build([rev, fwd], "scans")


def _scalar_model() -> gir.Graph:
    b = gir.Builder(("T", "E"))
    d = b.input("d", Type("f64", ("T", "E")))
    a, k = b.input("a"), b.input("k")
    y = b.op("mul", b.op("exp", b.op("mul", d, k)), a)
    s = b.op("mul", b.op("cumsum", y, axis="E", reverse=True), d)
    return b.build([b.op("sum", b.op("sum", s, axis="E"), axis="T")], "total")


def _results(exe, d: np.ndarray) -> list:
    """Values, a batch, and Jacobians (reverse mode, one sweep an output element, for scalars only)."""
    theta = [1.5, -0.25]
    out = [exe(theta, d=d), exe.batch(np.array([theta, [0.5, 0.1]]), d=d)]
    scalar = all(v.type.is_scalar for v in exe.graph.outputs)
    for mode in ("forward", "reverse") if scalar else ("forward",):
        value, jac = exe.value_and_jacobian(theta, d=d, mode=mode)
        out += [value, jac]
    return out


def _assert_same(got: list, want: list) -> None:
    for g, w in zip(got, want, strict=True):
        for gi, wi in zip(g if isinstance(g, tuple) else (g,), w if isinstance(w, tuple) else (w,)):
            assert np.shape(gi) == np.shape(wi)
            np.testing.assert_array_equal(np.isnan(gi), np.isnan(wi))
            np.testing.assert_allclose(gi, wi, rtol=1e-12, atol=1e-300, equal_nan=True)


def _non_finite_grid() -> np.ndarray:
    d = np.linspace(0.0, 1.0, 212 * 300).reshape(212, 300)
    d[3, 40], d[10, 299], d[50, 0] = np.nan, np.inf, -np.inf
    d[60, 100], d[60, 200] = np.inf, -np.inf
    return d


@pytest.mark.parametrize("target", TARGETS)
def test_non_finite_arrays_follow_numpy_through_reversed_cumsums(target):
    require_target(target)
    d = _non_finite_grid()
    with np.errstate(all="ignore"):
        for graph in (_scan_model(), _scalar_model()):
            want = _results(gir.compile(graph, "numpy"), d)
            _assert_same(_results(gir.compile(graph, target), d), want)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", [(0, 100), (0, 5), (0, 0), (3, 0), (1, 100), (100, 1)])
def test_zero_length_axes_follow_numpy(target, shape):
    require_target(target)
    d = np.linspace(0.0, 1.0, shape[0] * shape[1]).reshape(shape)
    for graph in (_scan_model(), _scalar_model()):
        _assert_same(_results(gir.compile(graph, target), d), _results(gir.compile(graph, "numpy"), d))


# -- 5. IR text, printing and verifying take time linear in the graph ---------------------------


def _chain(n: int) -> gir.Graph:
    """A chain of n nodes, every one with the same name hint (the printer numbers them)."""
    b = gir.Builder(("E",))
    v, a = b.input("x", Type("f64", ("E",))), b.input("a")
    for i in range(n):
        v = b.op("add" if i % 2 else "mul", v, a, hint="y")
    return b.build([v], "main")


def _best(step, arg, repeat: int) -> float:
    """The shortest of ``repeat`` timings of ``step(arg)`` (the least disturbed by other work)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step(arg)
        times.append(time.perf_counter() - start)
    return min(times)


def test_parse_dump_and_verify_scale_linearly():
    small, large = _chain(2_000), _chain(20_000)
    texts = {g: gir.dump(g) for g in (small, large)}
    assert texts[large].count("\n") > 20_000 and "%y_19999: f64[E]" in texts[large]
    assert gir.dump(gir.parse(texts[small])) == texts[small]
    for step in (gir.parse, gir.dump, gir.verify):
        arg = texts if step is gir.parse else {g: g for g in texts}
        ratio = _best(step, arg[large], 2) / _best(step, arg[small], 5)
        assert ratio < 20, f"{step.__name__}: 10x the nodes took {ratio:.1f}x the time"


# -- 6. bounded compile caches ------------------------------------------------------------------


def test_compile_caches_keep_the_most_recently_used(monkeypatch):
    monkeypatch.setenv("GIR_CACHE_SIZE", "2")
    gir.clear_cache()
    graphs = [gir.expr(f"a * x + {c}", x="E") for c in (1.0, 2.0, 3.0)]
    first = gir.compile(graphs[0], "numpy")
    gir.compile(graphs[1], "numpy")
    gir.compile(graphs[0], "numpy")  # a hit: now the most recent
    gir.compile(graphs[2], "numpy")  # evicts graphs[1]
    info = gir.cache_info()
    assert info["graphs"]["size"] == info["artifacts"]["size"] == 2
    misses = info["artifacts"]["misses"]
    gir.compile(graphs[0], "numpy")
    assert gir.cache_info()["artifacts"]["misses"] == misses
    gir.compile(graphs[1], "numpy")
    assert gir.cache_info()["artifacts"]["misses"] == misses + 1

    for g in graphs:
        gir.compile(g, "numpy").value_and_jacobian([1.0], x=X, mode="forward")
    assert gir.cache_info()["derivatives"]["size"] == 2
    hits = gir.cache_info()["derivatives"]["hits"]
    again = gir.compile(graphs[2], "numpy", passes="O2")
    again.value_and_jacobian([1.0], x=X, mode="forward")  # an equal executable shares the derivative
    assert gir.cache_info()["derivatives"]["hits"] == hits + 1
    np.testing.assert_array_equal(first.value_and_jacobian([2.0], x=X)[1], X[:, None])
    gir.clear_cache()
    assert all(c["size"] == 0 for c in gir.cache_info().values())


@pytest.mark.parametrize("setting", ["-1", "many", "2.5"])
def test_bad_cache_size_names_the_variable(monkeypatch, setting):
    monkeypatch.setenv("GIR_CACHE_SIZE", setting)
    with pytest.raises(gir.GirError, match="GIR_CACHE_SIZE"):
        cache_mod.cache_size()
    monkeypatch.setenv("GIR_CACHE_SIZE", "0")
    gir.clear_cache()
    gir.compile(gir.expr("a * x + 7.5", x="E"), "numpy")
    assert gir.cache_info()["artifacts"]["size"] == 0
