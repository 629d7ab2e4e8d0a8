"""The ``gir`` command: dump, opt, targets, and its error reports."""

import subprocess
import sys
import textwrap

import pytest

import gir
from gir.cli import main

MODEL = textwrap.dedent("""\
    import numpy as np

    def glp(x, A, x0, F, m):
        return A * np.exp(-4 * np.log(2) * (1 - m) * ((x - x0) / F) ** 2) / (1 + 4 * m * ((x - x0) / F) ** 2)

    def grid_model(grid, a):
        return a * grid

    def broken(x):
        return undefined_name * x
""")


@pytest.fixture
def model(tmp_path, monkeypatch):
    path = tmp_path / "mymodels.py"
    path.write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    return path


def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_dump_a_file_and_a_dotted_module(model, capsys):
    code, out, _ = run(capsys, "dump", f"{model}:glp", "--arrays", "x=E")
    assert code == 0 and out.startswith("graph @glp(%x: f64[E], %A: f64, %x0: f64, %F: f64, %m: f64) ->")
    assert gir.parse(out) == gir.trace(__import__("mymodels").glp, x="E")
    code, out2, _ = run(capsys, "dump", "mymodels:glp", "--arrays", "x=E")
    assert code == 0 and out2 == out
    code, out, _ = run(capsys, "dump", "mymodels:grid_model", "--arrays", "grid=T,E")
    assert code == 0 and "%grid: f64[T,E]" in out


def test_dump_with_passes(model, capsys):
    code, out, _ = run(capsys, "dump", "mymodels:glp", "--arrays", "x=E", "-p", "O2", "--fixed", "m=0")
    g = gir.parse(out)
    assert code == 0 and [v.name for v in g.inputs] == ["x", "A", "x0", "F"]
    assert [n.op for n in g.nodes].count("div") == 1  # (x - x0) / F; the Lorentzian factor is gone


def test_opt_reads_a_file_or_stdin_and_round_trips(model, tmp_path, capsys, monkeypatch):
    _, text, _ = run(capsys, "dump", "mymodels:glp", "--arrays", "x=E")
    path = tmp_path / "glp.gir"
    path.write_text(text)
    code, same, _ = run(capsys, "opt", str(path), "-p", "O0")
    assert code == 0 and same == text
    code, opt, _ = run(capsys, "opt", str(path), "-p", "cse,fold")
    assert code == 0 and opt == gir.dump(gir.optimize(gir.parse(text), "cse,fold"))
    code, again, _ = run(capsys, "opt", "-", "-p", "O0", stdin=opt, monkeypatch=monkeypatch)
    assert code == 0 and again == opt
    code, o2, _ = run(capsys, "opt", "-p", "O2", stdin=text, monkeypatch=monkeypatch)
    code, o2o2, _ = run(capsys, "opt", "-p", "O2", stdin=o2, monkeypatch=monkeypatch)
    assert code == 0 and o2o2 == o2


def test_print_between_passes(capsys, monkeypatch):
    text = "graph @f(%a: f64) -> f64 {\n  %b: f64 = neg %a\n  %c: f64 = neg %b\n  return %c\n}\n"
    code, out, err = run(
        capsys, "opt", "-p", "simplify,dce", "--print-between-passes", stdin=text, monkeypatch=monkeypatch
    )
    assert code == 0 and out == "graph @f(%a: f64) -> f64 {\n  return %a\n}\n"
    assert "// -----// IR after simplify //----- //" in err and "IR after dce" in err


def test_targets(capsys):
    code, out, _ = run(capsys, "targets")
    assert code == 0 and out.splitlines()[0].split() == ["target", "ok", "notes"]
    assert any(line.split()[:2] == ["numpy", "yes"] for line in out.splitlines())


@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (
            ["opt"],
            "graph @m(%x: f64) -> f64 {\n  %y: f64 = foo %x\n  return %y\n}\n",
            "gir: error: <stdin>:2:13: unknown op 'foo'\n    %y: f64 = foo %x\n              ^",
        ),
        (
            ["opt", "-p", "cse,nosuch"],
            "graph @m(%x: f64) -> f64 {\n  return %x\n}\n",
            "gir: error: unknown pass 'nosuch'; known passes: O0, O1, O2,",
        ),
        (
            ["opt", "-p", "fold{bad=1}"],
            "graph @m(%x: f64) -> f64 {\n  return %x\n}\n",
            "gir: error: pass 'fold' has no option 'bad' (options: max_size)",
        ),
        (
            ["opt", "--fixed", "m=zero"],
            "graph @m(%x: f64) -> f64 {\n  return %x\n}\n",
            "gir: error: --fixed m=zero: expected NAME=NUMBER",
        ),
        (
            ["opt", "--fixed", "q=1"],
            "graph @m(%x: f64) -> f64 {\n  return %x\n}\n",
            "gir: error: cannot fix 'q': graph @m has no parameter 'q' (parameters: x)",
        ),
        (["opt", "/no/such/file.gir"], None, "gir: error: /no/such/file.gir: No such file or directory"),
        (
            ["dump", "mymodels:broken", "--arrays", "x=E"],
            None,
            "gir: error: mymodels:broken: tracing failed: NameError: name 'undefined_name' is not defined",
        ),
        (["dump", "mymodels:nothing"], None, "gir: error: mymodels: no function 'nothing'"),
        (
            ["dump", "no_such_module_xyz:f"],
            None,
            "gir: error: no_such_module_xyz: cannot import: ModuleNotFound",
        ),
        (["dump", "nocolon"], None, "gir: error: nocolon: expected MODULE:FUNCTION"),
        (["dump", "./missing.py:f"], None, "gir: error: ./missing.py: no such file"),
        (["dump", "mymodels:glp", "--arrays", "x"], None, "gir: error: --arrays x: expected NAME=AXIS"),
        (["dump", "mymodels:glp", "--arrays", "y=E"], None, "gir: error: "),
    ],
)
def test_errors_are_one_line_reports(model, capsys, monkeypatch, argv, stdin, message):
    code, out, err = run(capsys, *argv, stdin=stdin, monkeypatch=monkeypatch)
    assert code == 1 and out == ""
    assert err.startswith(message)


def test_usage_errors_and_help(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "gir: error:" in err
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "dump" in out and "opt" in out


def test_the_installed_entry_point(tmp_path):
    text = "graph @f(%a: f64) -> f64 {\n  %b: f64 = neg %a\n  %c: f64 = neg %b\n  return %c\n}\n"
    cmd = [sys.executable, "-c", "import sys, gir.cli; sys.exit(gir.cli.main())"]
    done = subprocess.run([*cmd, "opt", "-p", "O0"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == text
    done = subprocess.run([*cmd, "opt"], input=text[:-3], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("gir: error: <stdin>:")
    assert "Traceback" not in done.stderr


MYPASS = textwrap.dedent("""\
    import gir

    @gir.rewrite("neg")
    def mypass(node, b):
        \"\"\"-(-x) -> x.\"\"\"
        p = b.producer(node.inputs[0])
        return p.inputs[0] if p is not None and p.op == "neg" else None
""")
NEG_NEG = "graph @f(%a: f64) -> f64 {\n  %b: f64 = neg %a\n  %c: f64 = neg %b\n  return %c\n}\n"


def test_load_makes_a_user_pass_usable_by_name(tmp_path, capsys, monkeypatch):
    plugin = tmp_path / "mypass.py"
    plugin.write_text(MYPASS)
    source = tmp_path / "f.gir"
    source.write_text(NEG_NEG)
    code, out, _ = run(capsys, "opt", str(source), "--load", str(plugin), "-p", "mypass,dce")
    assert code == 0 and out == "graph @f(%a: f64) -> f64 {\n  return %a\n}\n"
    model = tmp_path / "negneg.py"
    model.write_text("def f(a):\n    return -(-a)\n")
    code, out, _ = run(capsys, "dump", f"{model}:f", "--load", str(plugin), "-p", "mypass")
    assert code == 0 and "neg" not in out
    monkeypatch.chdir(tmp_path)  # a dotted module from the current directory works too
    code, out, _ = run(
        capsys, "opt", "--load", "mypass", "-p", "mypass", stdin=NEG_NEG, monkeypatch=monkeypatch
    )
    assert code == 0 and "neg" not in out


def test_load_from_the_command_line_in_a_fresh_process(tmp_path):
    (tmp_path / "mypass.py").write_text(MYPASS)
    (tmp_path / "f.gir").write_text(NEG_NEG)
    argv = [sys.executable, "-m", "gir.cli", "opt", "f.gir", "--load", "mypass.py", "-p", "mypass"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "graph @f(%a: f64) -> f64 {\n  return %a\n}\n"


@pytest.mark.parametrize(
    "source, message",
    [
        (None, "gir: error: {path}: no such file"),
        ("def broken(:\n", "gir: error: {path}: cannot import: SyntaxError: "),
        ("raise RuntimeError('no')\n", "gir: error: {path}: cannot import: RuntimeError: no"),
        (
            "import gir\n\n@gir.graph_pass('cse')\ndef cse(graph):\n    return graph\n",
            "gir: error: {path}: cannot import: GirError: a pass named 'cse' is already registered",
        ),
    ],
)
def test_load_errors_are_one_line_reports(tmp_path, capsys, monkeypatch, source, message):
    path = tmp_path / "badpass.py"
    if source is not None:
        path.write_text(source)
    code, out, err = run(
        capsys, "opt", "--load", str(path), "-p", "O0", stdin=NEG_NEG, monkeypatch=monkeypatch
    )
    assert code == 1 and out == ""
    assert err.startswith(message.format(path=path)) and len(err.strip().splitlines()) == 1
