"""The ``gir`` command: ``gir dump``, ``gir opt``, ``gir targets``.

::

    gir dump models.py:glp --arrays x=E          # trace a function, print its IR
    gir dump mypkg.models:shirley --arrays grid=T,E -p O2
    gir opt model.gir -p inline,cse,dce          # IR text in, optimized IR text out
    gir dump models.py:glp --arrays x=E | gir opt -p O2 --print-between-passes
    gir opt model.gir --load mypasses.py -p inline,mypass,dce   # a user's @gir.rewrite passes
    gir targets                                  # what can run here

Errors go to stderr as ``gir: error: <file>:<line>:<col>: message`` (the
location where there is one) with exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import gir
from gir.errors import GirError, ParseError


class CliError(Exception):
    """An error to report as ``gir: error: ...``."""


def _import(module_name: str) -> ModuleType:
    """Import a dotted module (from the current directory too) or a .py file given by its path."""
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise CliError(f"{module_name}: no such file")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules.setdefault(path.stem, module)
            mod_spec.loader.exec_module(module)
            return module
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(module_name)
    except CliError:
        raise
    except Exception as e:  # the user's module failed to import: report it, no traceback
        raise CliError(f"{module_name}: cannot import: {type(e).__name__}: {e}") from None


def _load(spec: str) -> Callable:
    """The function named by ``MODULE:FUNCTION`` (a dotted module or a path to a .py file)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"{spec}: expected MODULE:FUNCTION (a dotted module or a .py file)")
    fn = getattr(_import(module_name), attr, None)
    if not callable(fn):
        raise CliError(f"{module_name}: no function {attr!r}")
    return fn


def _load_passes(files: Sequence[str]) -> None:
    """Import the ``--load`` files (paths or dotted modules), so that the passes they define have names."""
    for name in files:
        _import(name)


def _arrays(specs: Sequence[str]) -> dict[str, str | tuple[str, ...]]:
    """``["x=E", "grid=T,E"]`` -> ``{"x": "E", "grid": ("T", "E")}``."""
    out: dict[str, str | tuple[str, ...]] = {}
    for spec in specs:
        name, sep, axes = spec.partition("=")
        if not sep or not name or not axes:
            raise CliError(f"--arrays {spec}: expected NAME=AXIS or NAME=AXIS,AXIS")
        parts = tuple(a.strip() for a in axes.split(","))
        out[name.strip()] = parts[0] if len(parts) == 1 else parts
    return out


def _fixed(specs: Sequence[str]) -> dict[str, float]:
    out = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise CliError(f"--fixed {spec}: expected NAME=NUMBER") from None
    return out


def _optimize(graph: Any, args: argparse.Namespace) -> Any:
    return gir.optimize(
        graph,
        args.passes,
        fixed=_fixed(args.fixed) or None,
        verify=True,
        dump="after_each" if args.print_between_passes else None,
        file=sys.stderr,
    )


def cmd_dump(args: argparse.Namespace) -> str:
    _load_passes(args.load)
    fn = _load(args.function)
    arrays = _arrays(args.arrays)
    try:
        graph = gir.trace(fn, **arrays)
    except GirError:
        raise
    except Exception as e:  # an error in the user's function
        raise CliError(f"{args.function}: tracing failed: {type(e).__name__}: {e}") from None
    return gir.dump(_optimize(graph, args))


def cmd_opt(args: argparse.Namespace) -> str:
    _load_passes(args.load)
    if args.file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.file).read_text()
        except OSError as e:
            raise CliError(f"{args.file}: {e.strerror or e}") from None
    return gir.dump(_optimize(gir.parse(text), args))


def cmd_targets(args: argparse.Namespace) -> str:
    rows = []
    for t in gir.targets():
        why = t.description if t.available else t.reason
        rows.append(f"{t.name:<16} {'yes' if t.available else 'no':<4} {why}")
    return "\n".join([f"{'target':<16} {'ok':<4} notes", *rows]) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gir", description="Typed graph IR, passes and code generation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def passes(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-p",
            "--passes",
            default="O0",
            metavar="PIPELINE",
            help="a preset (O0, O1, O2) or passes: 'inline,cse,fold{max_size=8}' (default: O0)",
        )
        p.add_argument(
            "--fixed",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="fix a parameter to a constant (repeatable)",
        )
        p.add_argument(
            "--print-between-passes", action="store_true", help="print the IR after each pass to stderr"
        )
        p.add_argument(
            "--load",
            action="append",
            default=[],
            metavar="FILE.py",
            help="import a .py file (or a dotted module) first, so -p can name its passes (repeatable)",
        )

    d = sub.add_parser("dump", help="trace a Python function and print its IR")
    d.add_argument("function", metavar="MODULE:FUNCTION", help="a dotted module or a path to a .py file")
    d.add_argument(
        "--arrays",
        action="append",
        default=[],
        metavar="NAME=AXES",
        help="an array argument and its axes, e.g. x=E or grid=T,E (repeatable)",
    )
    passes(d)
    d.set_defaults(run=cmd_dump, source=lambda a: a.function.rpartition(":")[0])

    o = sub.add_parser("opt", help="optimize IR text (from a file or stdin) and print it")
    o.add_argument("file", nargs="?", default="-", metavar="FILE.gir", help="IR text (default -: stdin)")
    passes(o)
    o.set_defaults(run=cmd_opt, source=lambda a: "<stdin>" if a.file == "-" else a.file)

    t = sub.add_parser("targets", help="list the compilation targets and whether they run here")
    t.set_defaults(run=cmd_targets, source=lambda a: "gir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gir`` command; return its exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse has already reported
        return int(e.code or 0)
    try:
        sys.stdout.write(args.run(args))
        return 0
    except ParseError as e:
        where = f"{args.source(args)}:{e.line}:{e.column}"
        caret = f"\n  {e.source_line}\n  {' ' * (e.column - 1)}^" if e.source_line else ""
        message = f"{where}: {e.message}{caret}"
    except (GirError, CliError) as e:
        message = str(e)
    print(f"gir: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
