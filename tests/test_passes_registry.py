"""The pass registry: names resolve lazily to their modules, groups are declared, names are taken once."""

import importlib
import json
import subprocess
import sys
import textwrap

import pytest

import gir
from gir.passes import GROUPS, PASSES, PRESETS, PassRegistry, RewriteGroup, RewritePass, base, pipeline
from gir.passes.autodiff import jvp
from gir.passes.builtin import BUILTIN, RULES

# Runs in a fresh interpreter: after `import gir`, each pass name runs in a forked child, so that
# no name can lean on a module another name's lookup imported.
FRESH = textwrap.dedent("""\
    import json, os, sys
    import gir
    from gir.passes import PASSES

    def graphs():
        inner = gir.expr("a*exp(b*x)", x="E")
        b = gir.Builder(("E",))
        x, a, c = b.input("x", gir.Type("f64", ("E",))), b.input("a"), b.input("c")
        (y,) = b.call(inner, x, a, c)
        z = b.op("mul", b.op("neg", b.op("neg", y)), b.op("add", b.const(1.0), b.const(0.0)))
        return [inner, b.build(b.op("add", z, b.op("sum", z, axis="E")), name="outer")]

    def run(name):
        for g in graphs():
            out = gir.optimize(g, name, verify=True)
            assert isinstance(out, gir.Graph), type(out)

    names = list(PASSES)
    results = {}
    for name in names:
        if not hasattr(os, "fork"):  # no fork: all names in this process, one after another
            try:
                run(name)
                results[name] = "ok"
            except Exception as e:
                results[name] = f"{type(e).__name__}: {e}"
            continue
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                run(name)
                message = "ok"
            except BaseException as e:
                message = f"{type(e).__name__}: {e}"
            os.write(w, message.encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            results[name] = f.read()
        os.waitpid(pid, 0)
    print(json.dumps(results))
""")


def test_every_pass_name_resolves_and_runs_in_a_fresh_process():
    done = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert set(results) >= {*BUILTIN, *RULES, *GROUPS}
    assert {name: r for name, r in results.items() if r != "ok"} == {}


def test_jvp_by_name_in_a_fresh_process():
    code = "import gir; gir.optimize(gir.expr('a*exp(b*x)', x='E'), 'jvp')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_jvp_and_vjp_take_the_parameters_from_the_pipeline():
    g = gir.expr("a*exp(b*x)", x="E")
    assert len(gir.optimize(g, "jvp").outputs) == 3  # the value and one column per parameter
    assert len(gir.optimize(g, "jvp{wrt=b}").outputs) == 2
    assert gir.dump(gir.optimize(g, "jvp{wrt=b+a}")) == gir.dump(jvp(g, ["b", "a"]))
    assert len(gir.optimize(g, "vjp{wrt=a}").outputs) == 2
    with pytest.raises(gir.GirError, match="cannot differentiate with respect to 'q'"):
        gir.optimize(g, "jvp{wrt=q}")
    with pytest.raises(gir.GirError, match=r"option wrt of pass 'vjp' takes parameter names joined by '\+'"):
        gir.optimize(g, "vjp{wrt=3}")


def test_the_declared_tables_match_the_code():
    for name, spec in {**BUILTIN, **RULES}.items():
        module, _, attr = spec.partition(":")
        assert hasattr(importlib.import_module(module), attr), spec
        assert PASSES[name].owner == (module, attr)
    simplify = PASSES["simplify"]
    assert isinstance(simplify, RewriteGroup)
    assert [rw.name for rw in simplify.rewrites] == list(GROUPS["simplify"])
    assert simplify.options == {"finite_math": False, "max_size": 64}
    for preset in PRESETS.values():
        pipeline.parse_pipeline(preset)
    listed = PASSES.listed()
    assert {"jvp", "vjp", "simplify", "fold"} <= set(listed) and not set(RULES) & set(listed)
    assert listed == sorted(listed)


def test_a_taken_name_needs_replace(monkeypatch):
    with pytest.raises(
        gir.GirError, match=r"a pass named 'cse' is already registered \(gir\.passes\.cse\.cse\)"
    ):

        @gir.graph_pass("cse")
        def my_cse(graph):
            return graph

    with pytest.raises(gir.GirError, match="pass replace=True"):

        @gir.rewrite("neg", name="neg_neg")  # a member of simplify
        def my_neg_neg(node, b):
            return None

    with pytest.raises(gir.GirError, match="'O2' is a preset"):
        gir.graph_pass("O2", replace=True)(lambda graph: graph)
    with pytest.raises(gir.GirError, match="cannot join 'simplify': its rewrites are declared"):

        @gir.rewrite("neg", group="simplify")
        def extra(node, b):
            return None

    assert "extra" not in PASSES  # a refused rewrite leaves no trace
    for taken in ("dce", "mul_zero"):  # a graph pass; a rewrite of its own
        with pytest.raises(gir.GirError, match=f"pass '{taken}' is not a rewrite group made by @rewrite"):
            gir.rewrite("neg", name="extra2", group=taken)(lambda node, b: None)
    assert [rw.name for rw in PASSES["mul_zero"].rewrites] == ["mul_zero"]


def test_replace_takes_the_name_everywhere(monkeypatch):
    dict(PASSES)  # load every standard pass, so the copy below holds them all
    monkeypatch.setattr(PASSES, "_passes", dict(PASSES._passes))
    neg = gir.parse("graph @f(%a: f64) -> f64 {\n  %b: f64 = neg %a\n  %c: f64 = neg %b\n  return %c\n}\n")
    assert len(gir.optimize(neg, "simplify").nodes) == 0

    @gir.rewrite("neg", name="neg_neg", replace=True)
    def keep_neg_neg(node, b):
        return None

    assert PASSES["neg_neg"].rewrites[0].fn is keep_neg_neg.fn
    assert len(gir.optimize(neg, "simplify").nodes) == 2  # the group runs the replacement

    @gir.graph_pass("dce", replace=True)
    def no_dce(graph):
        return graph

    assert PASSES["dce"].fn is no_dce.fn
    assert gir.optimize(neg, "O1") is not None  # O1 ends in the replacement


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A fresh registry whose names load from a module written to ``tmp_path``; returns a maker."""
    counter = iter(range(1000))

    def make(source: str, loaders: dict[str, str], groups: dict | None = None) -> tuple[PassRegistry, str]:
        module = f"gir_registry_case_{tmp_path.name}_{next(counter)}".replace("-", "_")
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        reg = PassRegistry({n: f"{module}:{a}" for n, a in loaders.items()}, groups or {})
        monkeypatch.setattr(base, "PASSES", reg)
        monkeypatch.setattr(pipeline, "PASSES", reg)
        return reg, module

    monkeypatch.syspath_prepend(str(tmp_path))
    return make


SOURCE = """\
    import gir

    @gir.graph_pass("lazy")
    def lazy(graph, name: str = "renamed"):
        return gir.Graph(graph.inputs, graph.nodes, graph.outputs, name=name, axes=graph.axes)

    @gir.rewrite("neg")
    def drop_neg(node, b):
        return None

    @gir.graph_pass("other")
    def other(graph):
        return graph
"""


def test_a_declared_name_loads_its_module_on_first_lookup(registry):
    reg, module = registry(
        SOURCE, {"lazy": "lazy", "drop_neg": "drop_neg", "other": "other"}, {"grp": ["drop_neg"]}
    )
    assert "lazy" in reg and "grp" in reg and module not in sys.modules  # membership does not load
    assert sorted(reg) == ["drop_neg", "grp", "lazy", "other"] and len(reg) == 4
    g = gir.expr("a*x", x="E")
    assert gir.optimize(g, "lazy{name=late}").name == "late"
    assert module in sys.modules and reg["drop_neg"].owner == (module, "drop_neg")
    assert isinstance(reg["grp"], RewriteGroup) and isinstance(reg["drop_neg"], RewritePass)
    with pytest.raises(gir.GirError, match=r"unknown pass 'nosuch'; known passes: O0, O1, O2, drop_neg, grp"):
        gir.optimize(g, "nosuch")


def test_a_declared_name_is_taken_before_it_loads_and_a_replacement_stays(registry):
    reg, module = registry(SOURCE, {"lazy": "lazy", "other": "other"})
    with pytest.raises(gir.GirError, match=rf"a pass named 'lazy' is already registered \({module}\.lazy\)"):
        gir.graph_pass("lazy")(lambda graph: graph)
    assert module not in sys.modules

    @gir.graph_pass("lazy", replace=True)
    def mine(graph):
        return graph

    reg["other"]  # imports the module, whose own "lazy" must not undo the replacement
    assert module in sys.modules and reg["lazy"].fn is mine.fn


def test_bad_declarations_are_reported(registry):
    reg, _ = registry(SOURCE, {"lazy": "lazy", "ghost": "ghost"})
    with pytest.raises(
        gir.GirError, match=r"pass 'ghost' is declared as .*:ghost, but .* does not define it"
    ):
        reg["ghost"]
    reg, _ = registry("import gir_no_such_module_anywhere\n", {"broken": "broken"})
    with pytest.raises(gir.GirError, match=r"pass 'broken' cannot load: importing \S+ failed"):
        gir.optimize(gir.expr("a*x", x="E"), "broken")
    with pytest.raises(gir.GirError, match="group 'g' names undeclared passes: nope"):
        PassRegistry({}, {"g": ["nope"]})


def test_looking_names_up_while_iterating(registry):
    reg, _ = registry(SOURCE, {"lazy": "lazy", "other": "other"})
    gir.graph_pass("first")(lambda graph: graph)  # a name registered before the declared ones load
    assert {name: reg[name].name for name in reg} == {"first": "first", "lazy": "lazy", "other": "other"}
    assert "drop_neg" in reg and len(reg) == 4  # the module's undeclared rewrite registered as it loaded
