"""Every pass and pipeline on random graphs: values kept, graph verifies, idempotent."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gir
from gir.passes import PRESETS
from tests.evaluate import assert_same, evaluate
from tests.strategies import random_graphs, random_inputs

PASSES = [
    "inline",
    "canonicalize",
    "fold",
    "specialize",
    "cse",
    "share",
    "flatten",
    "binarize",
    "simplify",
    "simplify{finite_math}",
    "dce",
]
EXAMPLES = int(os.environ.get("GIR_PASS_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_pass(graph, inputs, pipeline, **kw):
    """``pipeline`` keeps the values of ``graph``, verifies, and a second run changes nothing."""
    before, values = evaluate(graph, inputs, values=True)
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in values.values() if v.dtype.kind == "f"])
    out = gir.optimize(graph, pipeline, verify=True, **kw)
    assert [v.type for v in out.outputs] == [v.type for v in graph.outputs]
    assert_same(before, evaluate(out, inputs), atol=1e-12 * scale)
    again = gir.optimize(out, pipeline, verify=True, **kw)
    assert gir.dump(again) == gir.dump(out)
    return out


@pytest.mark.parametrize("pipeline", PASSES)
@SETTINGS
@given(data=st.data())
def test_pass_keeps_values_and_is_idempotent(pipeline, data):
    graph = data.draw(random_graphs(14, calls=1 if pipeline == "inline" else 0))
    check_pass(graph, data.draw(random_inputs(graph)), pipeline)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@SETTINGS
@given(data=st.data())
def test_presets_keep_values_and_reach_a_fixed_point(preset, data):
    graph = data.draw(random_graphs(20, calls=1, max_outputs=3))
    out = check_pass(graph, data.draw(random_inputs(graph)), preset)
    if preset != "O0":
        assert not any(n.op == "call" for n in out.nodes)


@SETTINGS
@given(data=st.data())
def test_specialize_with_fixed_parameters(data):
    graph = data.draw(random_graphs(14))
    inputs = data.draw(random_inputs(graph))
    fixed = {v.name: inputs[v.name] for v in graph.params[:2]}
    out = gir.optimize(graph, "O2", fixed=fixed, verify=True)
    assert not set(fixed) & {v.name for v in out.inputs}
    rest = {k: v for k, v in inputs.items() if k not in fixed}
    before, values = evaluate(graph, inputs, values=True)
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in values.values() if v.dtype.kind == "f"])
    assert_same(before, evaluate(out, rest), atol=1e-12 * scale)
