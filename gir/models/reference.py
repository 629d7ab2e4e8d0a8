"""The component reference, docs/components.md, generated from the component registry.

::

    python -m gir.models.reference            # print it
    python -m gir.models.reference --write    # write docs/components.md

Each component's docstring in gir/models/library.py has a summary, its formula
as an indented block, notes, and a ``Parameters:`` list (``name: meaning``);
every parameter must be listed, in order.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from gir.errors import GirError
from gir.models import library
from gir.models.component import KIND_DOCS, REGISTRY, ComponentDef, axes_text

#: Where ``--write`` puts the reference: docs/components.md of this source tree.
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "components.md"
COMMAND = "python -m gir.models.reference --write"

SECTIONS = {
    "peak": "Peaks",
    "background": "Backgrounds",
    "time": "Time functions",
    "kernel": "Instrument responses",
    "profile": "Profiles",
}

INTRO = """\
Every component of `gir.models`, from the docstrings of `gir/models/library.py`
(`help(gm.Voigt)` shows the same text). Composing models: [models.md](models.md).

A parameter is given as a number (fixed: any real number, such as an int, a
float or a NumPy scalar, stored as a float; bools, complex and non-finite
numbers are errors), as `gm.Param(value, vary=True, bounds=(lo, hi))` (a start
value outside its bounds is clipped into them, with a warning naming the
parameter), or as an expression string of other parameters.

Axes: E energy, T time, S the source time of a convolution, Z the auxiliary
axis of a profile (named in `Model.profile`). The default axes are those a
component is traced on alone; in a model, time functions of a convolved
parameter are evaluated on S, and profiles on the profile's axis."""


def library_components() -> list[ComponentDef]:
    """The definitions of gir/models/library.py, in the order they are defined."""
    return [d for d in REGISTRY.values() if d.fn.__module__ == library.__name__]


def parse_doc(definition: ComponentDef) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """A component docstring as blocks, ``("text" | "formula", content)``, and its parameter meanings.

    Raises a GirError naming the component when the ``Parameters:`` list does
    not name exactly its parameters, in order.
    """
    blocks: list[tuple[str, str]] = []
    params: dict[str, str] = {}
    for paragraph in re.split(r"\n[ \t]*\n", definition.doc.strip()):
        lines = paragraph.splitlines()
        if lines[0].strip() == "Parameters:":
            last = None
            for line in lines[1:]:
                item = re.fullmatch(r" {4}(\w+): (.+)", line)
                if item:
                    last = item.group(1)
                    params[last] = item.group(2).strip()
                elif last is not None and line.startswith(" " * 8):
                    params[last] += " " + line.strip()
                else:
                    raise GirError(f"component {definition.name}: cannot read parameter line {line!r}")
        elif all(line.startswith("    ") for line in lines):
            blocks.append(("formula", textwrap.dedent(paragraph)))
        else:
            blocks.append(("text", " ".join(line.strip() for line in lines)))
    if list(params) != list(definition.params):
        raise GirError(
            f"component {definition.name}: its docstring lists the parameters {list(params)}, "
            f"its definition has {list(definition.params)}"
        )
    if not any(kind == "formula" for kind, _ in blocks):
        raise GirError(f"component {definition.name}: its docstring has no formula (an indented block)")
    return blocks, params


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def component_markdown(definition: ComponentDef) -> str:
    """One component's section of the reference."""
    blocks, params = parse_doc(definition)
    axes = ", ".join(f"`{a}` on {axes_text(v)}" for a, v in definition.default_axes.items())
    out = [
        f"### {definition.name}",
        "",
        f"`gm.{definition.name}{definition.signature}` · {definition.kind} · default axes: {axes}",
    ]
    for kind, text in blocks:
        out += ["", f"```text\n{text}\n```" if kind == "formula" else text]
    if params:
        out += ["", "| parameter | meaning |", "|---|---|"]
        out += [f"| `{name}` | {_cell(meaning)} |" for name, meaning in params.items()]
    return "\n".join(out)


def reference_markdown(definitions: Sequence[ComponentDef] | None = None) -> str:
    """The component reference in Markdown: by default every component of the library."""
    defs = library_components() if definitions is None else list(definitions)
    out = [
        "# Component reference",
        "",
        f"<!-- Generated from gir/models/library.py by `{COMMAND}`; do not edit. -->",
        "",
        INTRO,
        "",
        "| component | kind | parameters |",
        "|---|---|---|",
    ]
    out += [f"| [{d.name}](#{d.name.lower()}) | {d.kind} | {', '.join(d.params)} |" for d in defs]
    for kind, title in SECTIONS.items():
        members = [d for d in defs if d.kind == kind]
        if not members:
            continue
        out += ["", f"## {title}", "", KIND_DOCS[kind][0].upper() + KIND_DOCS[kind][1:] + "."]
        for d in members:
            out += ["", component_markdown(d)]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gir.models.reference", description="Print or write the component reference."
    )
    parser.add_argument(
        "--write",
        nargs="?",
        const=str(DEFAULT_PATH),
        metavar="PATH",
        help=f"write it to PATH (default {DEFAULT_PATH}) instead of printing it",
    )
    args = parser.parse_args(argv)
    text = reference_markdown()
    if args.write is None:
        sys.stdout.write(text)
    else:
        Path(args.write).write_text(text)


if __name__ == "__main__":
    main()
