"""gir.compile, the NumPy target, executables, targets and caches."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

import gir
from gir.ir.types import Type
from gir.runtime import target as targets_mod

E, T = Type("f64", ("E",)), Type("f64", ("T",))
X = np.linspace(-2.0, 3.0, 7)
TT = np.linspace(0.0, 1.0, 4)


def model():
    """y = a exp(-(x-x0)^2) t,  s = reverse cumsum of y along E,  m = sum of y over T,  c = 2a."""
    b = gir.Builder(("T", "E"))
    x, t = b.input("x", E), b.input("t", T)
    a, x0 = b.input("a"), b.input("x0")
    d = b.op("sub", x, x0)
    y = b.op("mul", b.op("exp", b.op("neg", b.op("mul", d, d))), t, a, hint="y")
    s = b.op("cumsum", y, axis="E", reverse=True)
    m = b.op("sum", y, axis="T")
    c = b.op("mul", a, b.const(2.0))
    return b.build([y, s, m, c], "model")


def reference(a, x0, x=X, t=TT):
    y = a * np.exp(-((x - x0) ** 2))[None, :] * t[:, None]
    return y, np.cumsum(y[:, ::-1], axis=1)[:, ::-1], y.sum(axis=0), 2 * a


@pytest.fixture(scope="module")
def exe():
    return gir.compile(model(), "numpy", passes="O0")


def test_theta_and_named_calls_agree_with_numpy(exe):
    assert exe.param_names == ("a", "x0") and exe.array_names == ("x", "t")
    by_theta = exe([1.5, 0.2], x=X, t=TT)
    by_name = exe(a=1.5, x0=0.2, x=X, t=TT)
    for got, named, want in zip(by_theta, by_name, reference(1.5, 0.2), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_array_equal(got, named)
    assert [np.shape(o) for o in by_theta] == [(4, 7), (4, 7), (7,), ()]
    assert isinstance(by_theta[3], float)


def test_source_has_one_line_per_node_with_ir_comment(exe):
    src = exe.source
    assert "np.exp(" in src and "# %y: f64[T,E] = mul" in src
    assert src.count(" = ") >= len(exe.graph.nodes)


def test_batch_broadcasts_parameter_vectors(exe):
    thetas = np.array([[1.5, 0.2], [0.5, -1.0], [2.0, 0.0]])
    outs = exe.batch(thetas, x=X, t=TT)
    assert [o.shape for o in outs] == [(3, 4, 7), (3, 4, 7), (3, 7), (3,)]
    for i, theta in enumerate(thetas):
        for got, want in zip(outs, exe(theta, x=X, t=TT), strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-14)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: e([1.0], x=X, t=TT), "theta must be a vector of 2"),
        (lambda e: e([1.0, np.nan], x=X, t=TT), "parameter 'x0' is not finite"),
        (lambda e: e(a=1.0, x0=np.inf, x=X, t=TT), "parameter 'x0' is not finite"),
        (lambda e: e([1.0, 2.0], x=X, t=TT[:, None]), "input 't' has axes \\['T'\\]"),
        (lambda e: e([1.0, 2.0], x=X), "missing input 't'"),
        (lambda e: e([1.0, 2.0], x=X, t=TT, z=1), "unknown input 'z'"),
        (lambda e: e([1.0, 2.0], a=1.0, x=X, t=TT), "'a' is given both"),
        (lambda e: e([1.0, 2.0], x=X, t=TT + 0j), "input 't' must be f64"),
        (lambda e: e([1.0, 2.0], x=X.astype(str), t=TT), "input 'x' must be f64"),
        (lambda e: e(a=[1.0, 2.0], x0=1.0, x=X, t=TT), "parameter 'a' must be a scalar"),
        (lambda e: e.batch(np.ones(2), x=X, t=TT), "thetas must have shape"),
    ],
)
def test_bad_inputs_name_the_input(exe, call, message):
    with pytest.raises(gir.InputError, match=message):
        call(exe)


def test_inconsistent_axis_lengths():
    b = gir.Builder()
    x, w = b.input("x", E), b.input("w", E)
    exe = gir.compile(b.build(b.op("mul", x, w)), "numpy", passes="O0")
    with pytest.raises(gir.InputError, match="axis E has length 3, but another input has 7"):
        exe(x=X, w=np.ones(3))


def test_integer_arrays_are_accepted_as_f64(exe):
    np.testing.assert_allclose(
        exe([1.0, 0.0], x=np.arange(7), t=TT)[0], reference(1.0, 0.0, x=np.arange(7.0))[0]
    )


def test_targets_and_errors():
    names = [t.name for t in gir.targets()]
    assert names[:1] == ["numpy"] and {"numba", "numba-parallel", "jax", "jax-cpu", "jax-gpu"} <= set(names)
    for info in gir.targets():
        assert info.available or info.reason
    with pytest.raises(gir.TargetError, match="unknown target 'cuda'; known targets: auto, numpy"):
        gir.compile(model(), "cuda", passes="O0")
    exe = gir.compile(model(), "auto", passes="O0")
    assert exe.target in names


def test_unavailable_target_says_what_to_install(monkeypatch):
    fake = targets_mod.Target("fake", "gir.codegen.numpy_backend", requires="no_such_package_xyz")
    monkeypatch.setitem(targets_mod.TARGETS, "fake", fake)
    with pytest.raises(gir.TargetError, match=r"no_such_package_xyz is not installed .*pip install"):
        gir.compile(model(), "fake", passes="O0")
    assert not {t.name: t for t in gir.targets()}["fake"].available


def test_compile_rejects_what_it_cannot_compile():
    with pytest.raises(gir.GirError, match="cannot compile int"):
        gir.compile(3, "numpy")


def test_artifact_cache_hits_on_equal_graphs():
    gir.clear_cache()
    gir.compile(model(), "numpy", passes="O0")
    gir.compile(model(), "numpy", passes="O0")  # a different but equal graph
    info = gir.cache_info()["artifacts"]
    assert info == {"size": 1, "hits": 1, "misses": 1}
    gir.clear_cache()
    assert gir.cache_info()["artifacts"]["size"] == 0


def test_executables_pickle_into_another_process(exe, tmp_path):
    path = tmp_path / "exe.pkl"
    path.write_bytes(pickle.dumps(exe))
    code = (
        "import pickle, sys, numpy as np; exe = pickle.load(open(sys.argv[1], 'rb'));"
        "print(repr(exe(np.array([1.5, 0.2]), x=np.linspace(-2.0, 3.0, 7), t=np.linspace(0.0, 1.0, 4))[3]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert float(out.stdout) == 3.0


def test_auto_rule_follows_device_and_size(monkeypatch):
    from gir.runtime.target import GPU_MIN_POINTS, choose_auto

    g = model()
    cpu = choose_auto(g)
    assert cpu in ("numba-parallel", "numba", "jax-cpu", "numpy")
    assert gir.compile(g, "auto", passes="O0").target == cpu
    fake_gpu = targets_mod.Target("jax-gpu", "gir.codegen.jax_backend", {"device": "gpu"})
    monkeypatch.setitem(targets_mod.TARGETS, "jax-gpu", fake_gpu)
    assert choose_auto(g) == "jax-gpu"  # no sizes: the GPU
    assert choose_auto(g, {"T": 2048, "E": 4096}) == "jax-gpu"
    assert choose_auto(g, {"T": 4, "E": GPU_MIN_POINTS // 8}) == cpu
    assert choose_auto(g, {"T": 212, "E": 1131}) == cpu  # a typical fit grid stays on the CPU
    fake_numba = targets_mod.Target("numba", "gir.codegen.numba_backend", requires="no_such_package_xyz")
    monkeypatch.setitem(targets_mod.TARGETS, "numba", fake_numba)
    monkeypatch.setitem(
        targets_mod.TARGETS, "jax-gpu", targets_mod.Target("jax-gpu", "x", requires="no_such_xyz")
    )
    assert choose_auto(g) in ("jax-cpu", "numpy")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
@pytest.mark.parametrize("setting, kept", [(None, "True"), ("0", "False")])
def test_compiling_keeps_freed_memory_unless_told_not_to(setting, kept):
    import os

    code = (
        "import gir\nfrom gir.runtime.memory import keep_freed_memory\n"
        "gir.compile(gir.expr('a * x', x='E'), target='numpy')\n"
        "print(keep_freed_memory())"
    )
    env = {k: v for k, v in os.environ.items() if k != "GIR_KEEP_FREED_MEMORY"}
    if setting is not None:
        env["GIR_KEEP_FREED_MEMORY"] = setting
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [kept]


def test_clear_cache_on_disk(tmp_path, monkeypatch):
    from available import require_target

    require_target("numba")
    monkeypatch.setenv("GIR_CACHE_DIR", str(tmp_path))
    g = gir.expr("a * x + 0.25", x="E")
    gir.clear_cache()
    gir.compile(g, target="numba")
    assert any((tmp_path / "numba").iterdir())
    gir.clear_cache(disk=True)
    assert not (tmp_path / "numba").exists()
    assert gir.cache_info()["artifacts"]["size"] == 0
    np.testing.assert_allclose(gir.compile(g, target="numba")([2.0], x=np.ones(3)), 2.25)
