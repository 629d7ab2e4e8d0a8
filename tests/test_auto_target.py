"""The ``auto`` rule, numba-parallel's thread count, and compile-latency reporting."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from available import require_target

import gir
from gir.codegen import backend
from gir.runtime import target as targets_mod
from gir.runtime.target import PARALLEL_MIN_CPUS, PARALLEL_MIN_POINTS, choose_auto


def graph2d():
    return gir.expr("A * exp(-((x - x0) / F) ** 2) * (1 + t)", x="E", t="T", axes=("T", "E"))


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setitem(
        targets_mod.TARGETS, "jax-gpu", targets_mod.Target("jax-gpu", "x", requires="no_such_package_xyz")
    )


def cpus(monkeypatch, n: int) -> None:
    monkeypatch.setattr(backend, "usable_cpus", lambda: n)


@pytest.mark.parametrize(
    "n_cpus, sizes, want",
    [
        (1, None, "numba"),
        (2, None, "numba"),
        (64, None, "numba"),  # unknown work: one thread
        (2, {"T": 212, "E": 1131}, "numba"),
        (2, {"T": 4096, "E": 4096}, "numba"),  # two CPUs: a busy machine takes one of them
        (PARALLEL_MIN_CPUS, {"T": 212, "E": 1131}, "numba"),  # small work
        (PARALLEL_MIN_CPUS, {"T": 4096, "E": 4096}, "numba-parallel"),
        (16, {"T": 1, "E": PARALLEL_MIN_POINTS}, "numba-parallel"),
        (16, {"T": 1, "E": PARALLEL_MIN_POINTS - 1}, "numba"),
        (16, {"E": PARALLEL_MIN_POINTS}, "numba-parallel"),  # a missing axis counts as length 1
    ],
)
def test_auto_rule_from_size_and_cpus(monkeypatch, no_gpu, n_cpus, sizes, want):
    require_target("numba")
    cpus(monkeypatch, n_cpus)
    assert choose_auto(graph2d(), sizes) == want


def test_auto_without_numba_ignores_cpus(monkeypatch, no_gpu):
    monkeypatch.setitem(
        targets_mod.TARGETS, "numba", targets_mod.Target("numba", "x", requires="no_such_package_xyz")
    )
    cpus(monkeypatch, 64)
    assert choose_auto(graph2d(), {"T": 4096, "E": 4096}) in ("jax-cpu", "numpy")


def test_usable_cpus_follows_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert backend.usable_cpus() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert backend.usable_cpus() == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert backend.usable_cpus() == 1


def test_threads_from_work_and_cpus(monkeypatch):
    require_target("numba")
    import numba

    from gir.codegen.numba_backend import POINTS_PER_THREAD, threads_for

    cpus(monkeypatch, 64)
    assert threads_for(100) == 1
    assert threads_for(2 * POINTS_PER_THREAD - 1) == 1
    assert threads_for(2 * POINTS_PER_THREAD) == min(2, numba.config.NUMBA_NUM_THREADS)
    assert threads_for(1 << 40) == numba.config.NUMBA_NUM_THREADS  # never more than Numba has
    cpus(monkeypatch, 1)
    assert threads_for(1 << 40) == 1  # never more than the CPUs allowed


def test_parallel_target_runs_small_grids_serially(monkeypatch):
    require_target("numba")
    import numba

    from gir.codegen.numba_backend import POINTS_PER_THREAD

    g = graph2d()
    par = gir.compile(g, target="numba-parallel")
    ser = gir.compile(g, target="numba")
    theta = np.array([2.0, 0.5, 1.5])
    before = numba.get_num_threads()
    x, t = np.linspace(-2, 2, 50), np.linspace(0, 1, 4)
    np.testing.assert_array_equal(par(theta, x=x, t=t), ser(theta, x=x, t=t))
    assert par._artifact._called == {"model_serial"}  # no parallel kernel compiled or launched
    cpus(monkeypatch, 2)
    x = np.linspace(-2, 2, POINTS_PER_THREAD)
    out = np.empty((4, x.size))
    par.call_into([out], theta, x=x, t=t)
    np.testing.assert_array_equal(out, ser(theta, x=x, t=t))
    assert par._artifact._called == {"model_serial", "model_into"}
    assert numba.get_num_threads() == before  # restored after the call


def test_slow_compile_is_logged_once(monkeypatch, caplog):
    require_target("numba")
    monkeypatch.setattr(backend, "COMPILE_LOG_SECONDS", 0.0)
    g = gir.expr("a * x + 0.125", x="E")
    exe = gir.compile(g, target="numba")
    exe._artifact._called.clear()  # as if new: the first call compiles or loads the kernel
    with caplog.at_level(logging.INFO, logger="gir"):
        exe([2.0], x=np.ones(3))
        exe([2.0], x=np.ones(3))
    records = [r for r in caplog.records if r.name == "gir"]
    assert len(records) == 1
    assert "for numba took" in records[0].getMessage() and "model" in records[0].getMessage()


def test_jax_compile_is_logged_per_new_shape(monkeypatch, caplog):
    require_target("jax-cpu")
    monkeypatch.setattr(backend, "COMPILE_LOG_SECONDS", 0.0)
    exe = gir.compile(gir.expr("a * x + 0.375", x="E"), target="jax-cpu")
    with caplog.at_level(logging.INFO, logger="gir"):
        exe([2.0], x=np.ones(3))
        exe([2.0], x=np.ones(3))
        exe([2.0], x=np.ones(5))
    msgs = [r.getMessage() for r in caplog.records if r.name == "gir"]
    assert len(msgs) == 2 and all("for jax-cpu took" in m for m in msgs)


def test_compile_log_is_silent_without_logging_configured(tmp_path):
    require_target("numba")
    code = (
        "import numpy as np, gir\nfrom gir.runtime import target\ntarget.COMPILE_LOG_SECONDS = 0.0\n"
        "exe = gir.compile(gir.expr('a * x + 0.0625', x='E'), target='numba')\n"
        "print(exe([2.0], x=np.ones(2)).tolist())"
    )
    env = {**os.environ, "GIR_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["[2.0625,", "2.0625]"]
    assert "compiling" not in out.stderr


def test_jax_persistent_cache_folder(monkeypatch, tmp_path):
    require_target("jax-cpu")
    import jax

    from gir.codegen.jax_backend import persistent_cache_dir

    monkeypatch.setenv("GIR_CACHE_DIR", str(tmp_path))
    saved = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert persistent_cache_dir() == tmp_path / "jax"
        monkeypatch.setenv("GIR_JAX_CACHE", "0")
        assert persistent_cache_dir() is None
        monkeypatch.delenv("GIR_JAX_CACHE")
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
        assert persistent_cache_dir() is None  # the user's choice stands
    finally:
        jax.config.update("jax_compilation_cache_dir", saved)
