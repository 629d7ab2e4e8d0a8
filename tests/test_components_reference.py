"""gir.models: component docstrings in help(), the generated reference docs/components.md, the Line
background, and definitions that pickle as references to the registry."""

from __future__ import annotations

import copy
import inspect
import pickle
import pydoc
from pathlib import Path

import numpy as np
import pytest
from available import require_target

import gir
from gir import models as gm
from gir.errors import GirError
from gir.models.component import ComponentDef
from gir.models.reference import COMMAND, library_components, main, parse_doc, reference_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "components.md"


def test_help_shows_the_definition_docstring():
    text = pydoc.render_doc(gm.Voigt, renderer=pydoc.plaintext)
    assert "A Re w(z) / Re w(z0)" in text
    assert "SD: standard deviation of the Gaussian part" in text
    assert "W: full width at half maximum (FWHM) of the Lorentzian part" in text
    assert "Kind: peak" in text and "Default axes: x on E (energy)." in text
    assert "Voigt(name=None, *, A, x0, SD, W)" in text
    assert str(inspect.signature(gm.Shirley)) == "(name=None, *, pShirley, signal=None)"


def test_every_library_component_is_documented():
    defs = library_components()
    assert [d.name for d in defs] == [
        n for n, d in gm.REGISTRY.items() if d.fn.__module__ == gm.library.__name__
    ]
    for d in defs:
        assert isinstance(d, ComponentDef) and type(d) is not ComponentDef
        assert type(d).__name__ == d.name and gm.REGISTRY[d.name] is d
        assert inspect.getdoc(type(d)) == d.help_text() and d.help_text().startswith(d.doc)
        blocks, params = parse_doc(d)  # raises unless every parameter is listed, in order
        assert list(params) == list(d.params) and all(params.values())
        assert any(kind == "formula" for kind, _ in blocks)
    # widths say what kind of width they are
    widths = {(d.name, p): m for d in defs for p, m in parse_doc(d)[1].items() if p in ("SD", "W", "F")}
    for (name, p), meaning in widths.items():
        if p == "SD":
            assert meaning.startswith("standard deviation"), name
        else:
            assert "standard deviation" not in meaning and ("FWHM" in meaning or "HWHM" in meaning), name


def test_parse_doc_names_an_undocumented_parameter():
    d = ComponentDef(
        "flat",
        "background",
        lambda x, c, k: c + k * x,
        ("c", "k"),
        doc="Flat.\n\n    c\n\nParameters:\n    c: level",
    )
    with pytest.raises(GirError, match=r"component flat: .*\['c'\].*\['c', 'k'\]"):
        parse_doc(d)


def test_components_md_is_up_to_date():
    if not DOC.exists() or DOC.read_text() != reference_markdown():
        pytest.fail(f"docs/components.md is stale: regenerate it with `{COMMAND}`")


def test_reference_entry_point(tmp_path, capsys):
    main([])
    assert capsys.readouterr().out == reference_markdown()
    main(["--write", str(tmp_path / "c.md")])
    text = (tmp_path / "c.md").read_text()
    assert text == reference_markdown()
    assert "### Line\n\n`gm.Line(name=None, *, slope, intercept)` · background" in text
    assert "| `SD` | standard deviation (not a FWHM) |" in text


@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_line_background(target):
    require_target(target)
    m = gm.Model()
    m.add(gm.Line(slope=gm.Param(0.5), intercept=gm.Param(-2.0)))
    exe = gir.compile(m, target=target)
    x = np.linspace(80.0, 90.0, 11)
    assert exe.param_names == ("Line.slope", "Line.intercept")
    np.testing.assert_allclose(exe([0.25, 3.0], energy=x), 0.25 * x + 3.0, rtol=1e-15)
    jac = exe.jacobian([0.25, 3.0], energy=x)
    np.testing.assert_allclose(jac, np.stack([x, np.ones_like(x)], axis=-1), rtol=1e-15)


def test_definitions_pickle_as_registry_references():
    assert pickle.loads(pickle.dumps(gm.Voigt)) is gm.Voigt
    assert copy.deepcopy(gm.Voigt) is gm.Voigt
    m = gm.Model()
    m.add(gm.Voigt("v", A=gm.Param(2.0, bounds=(0, 5)), x0=84.0, SD=0.3, W=0.2))
    m.add(gm.Shirley(pShirley=1e-3, signal="v"))
    again = pickle.loads(pickle.dumps(m))
    assert again.to_dict() == m.to_dict()
    assert again.components[0].definition is gm.Voigt
    assert gm.Component.from_dict(m.components[1].to_dict()).definition is gm.Shirley
