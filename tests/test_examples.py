"""The examples run from a fresh install and do what they say."""

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
    out = run(str(EXAMPLES / "quickstart.py"))
    assert "graph @spectrum(" in out and "max |gir - numpy| / max |y|" in out


def test_spectro_2d_fits_and_writes_its_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "fit.png"
    out = run(str(EXAMPLES / "spectro_2d.py"), str(png), "--target", "numpy")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in out
