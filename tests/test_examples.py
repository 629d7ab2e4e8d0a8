"""The examples run from a fresh install and do what they say."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_quickstart():
    """It prints the IR and the compiled model's largest deviation from the NumPy function: rounding."""
    out = run(str(EXAMPLES / "quickstart.py"))
    assert "graph @spectrum(" in out
    deviation = re.search(r"max \|gir - numpy\| / max \|y\| = (\S+)", out)
    assert deviation is not None and float(deviation.group(1)) < 1e-12, out[-300:]


def test_spectro_2d_fit_is_right_and_writes_its_plot(tmp_path):
    """The script exits non-zero unless every parameter is within 3 standard errors of the truth,
    the reduced chi-square within 20 % of 1 and no parameter at a bound."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "fit.png"
    out = run(str(EXAMPLES / "spectro_2d.py"), str(png), "--target", "numpy")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "the fit recovers the truth" in out


def test_from_trspecfit_fit_is_right_and_writes_its_plot(tmp_path):
    """The trspecfit workflow (model files, baseline, 2D fit, slice by slice) exits non-zero unless
    the baseline and the 2D fit recover the truth within 3 standard errors, with a reduced chi-square
    within 20 % of 1 and no diagnostics."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("yaml")
    png = tmp_path / "fit.png"
    out = run(str(EXAMPLES / "from_trspecfit.py"), str(png), "--target", "numpy")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "GLP_01_A_expFun_01_tau" in out and "[[Batch]] 60 fits" in out
    assert "the fit recovers the truth" in out


def test_spectro_2d_check_finds_a_wrong_fit():
    """The example's own check is not vacuous: a result moved off the truth fails it."""
    spec = importlib.util.spec_from_file_location("spectro_2d", EXAMPLES / "spectro_2d.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result, truth = example.fit("numpy")
    assert example.check(result, truth) == []
    wrong = result.x.copy()
    wrong[list(result.param_names).index("p1.A")] *= 1.1
    result.x = wrong
    assert any(p.startswith("p1.A") for p in example.check(result, truth))
