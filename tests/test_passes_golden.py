"""Golden IR text before and after each pass (parsed with gir.parse, compared with gir.dump),
with the values checked on fixed inputs too."""

import numpy as np
import pytest

import gir
from gir.passes import parse_pipeline
from tests.evaluate import assert_same, evaluate

CASES = {}


def case(name, pipeline, before, after):
    CASES[name] = (pipeline, before, after)


def inputs_for(graph):
    rng = np.random.default_rng(0)
    sizes = {a: 3 + i for i, a in enumerate(graph.axes)}
    out = {}
    for v in graph.inputs:
        shape = tuple(sizes[a] for a in v.type.axes)
        out[v.name] = rng.integers(-3, 4, shape) if v.type.dtype == "i64" else rng.uniform(0.5, 2.0, shape)
    return out


case(
    "inline",
    "inline",
    """\
graph @sq(%p: f64[E]) -> f64[E] {
  %y: f64[E] = mul %p, %p
  return %y
}

graph @quad(%q: f64[E], %s: f64) -> f64[E] {
  %a: f64[E] = call %q {callee=@sq}
  %b: f64[E] = call %a {callee=@sq}
  %c: f64[E] = mul %b, %s
  return %c
}

graph @main(%z: f64[T,E], %k: f64) -> f64[T,E] {
  %r: f64[T,E] = call %z, %k {callee=@quad}
  return %r
}
""",
    """\
graph @main(%z: f64[T,E], %k: f64) -> f64[T,E] {
  %a: f64[T,E] = mul %z, %z
  %b: f64[T,E] = mul %a, %a
  %r: f64[T,E] = mul %b, %k
  return %r
}
""",
)

case(
    "canonicalize",
    "canonicalize",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %two: f64 = const {value=2.0}
  %p: f64[E] = mul %two, %x, %b, %a
  %q: f64 = add %b, %a
  %r: f64[E] = sub %p, %q
  %m: f64[E] = maximum %r, %a
  return %m
}
""",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %two: f64 = const {value=2.0}
  %p: f64[E] = mul %a, %b, %two, %x
  %q: f64 = add %a, %b
  %r: f64[E] = sub %p, %q
  %m: f64[E] = maximum %a, %r
  return %m
}
""",
)

case(
    "fold",
    "fold",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %c1: f64 = const {value=1.5}
  %c2: f64 = const {value=2.5}
  %s: f64 = add %c1, %c2
  %z: f64 = const {value=0.0}
  %e: f64 = exp %z
  %i: i64 = const {value=7}
  %j: i64 = const {value=2}
  %k: i64 = mod %i, %j
  %p: f64[E] = mul %x, %s, %e, %k
  return %p
}
""",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %s: f64 = const {value=4.0}
  %e: f64 = const {value=1.0}
  %k: i64 = const {value=1}
  %p: f64[E] = mul %x, %s, %e, %k
  return %p
}
""",
)

case(
    "fold_never_calls",
    "fold",
    """\
graph @one(%p: f64) -> f64 {
  %y: f64 = exp %p
  return %y
}

graph @main(%x: f64[E]) -> f64[E] {
  %z: f64 = const {value=0.0}
  %c: f64 = call %z {callee=@one}
  %i: i64 = const {value=3}
  %t: bool = const {value=true}
  %w: i64 = where %t, %i, %i
  %f: f64 = const {value=2.0}
  %q: f64 = div %w, %f
  %r: f64[E] = mul %x, %c, %q
  return %r
}
""",
    """\
graph @one(%p: f64) -> f64 {
  %y: f64 = exp %p
  return %y
}

graph @main(%x: f64[E]) -> f64[E] {
  %z: f64 = const {value=0.0}
  %c: f64 = call %z {callee=@one}
  %q: f64 = const {value=1.5}
  %r: f64[E] = mul %x, %c, %q
  return %r
}
""",
)

case(
    "fold_max_size_0",
    "fold{max_size=0}",
    """\
graph @main(%a: f64) -> f64 {
  %c: f64 = const {value=1.0}
  %e: f64 = exp %c
  %r: f64 = mul %a, %e
  return %r
}
""",
    """\
graph @main(%a: f64) -> f64 {
  %c: f64 = const {value=1.0}
  %e: f64 = exp %c
  %r: f64 = mul %a, %e
  return %r
}
""",
)

case(
    "specialize",
    "specialize{b=0.5}",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %p: f64[E] = mul %x, %b
  %q: f64[E] = add %p, %a
  return %q
}
""",
    """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %b: f64 = const {value=0.5}
  %p: f64[E] = mul %x, %b
  %q: f64[E] = add %p, %a
  return %q
}
""",
)

case(
    "cse",
    "cse",
    """\
graph @sq(%p: f64) -> f64 {
  %y: f64 = mul %p, %p
  return %y
}

graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %d1: f64[E] = sub %x, %a
  %d2: f64[E] = sub %x, %a
  %c1: f64 = const {value=2.0}
  %c2: f64 = const {value=2.0}
  %s1: f64 = call %a {callee=@sq}
  %s2: f64 = call %a {callee=@sq}
  %u: f64[E] = mul %d1, %c1, %s1
  %v: f64[E] = mul %d2, %c2, %s2
  %r: f64[E] = add %u, %v
  return %r
}
""",
    """\
graph @sq(%p: f64) -> f64 {
  %y: f64 = mul %p, %p
  return %y
}

graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %d1: f64[E] = sub %x, %a
  %c1: f64 = const {value=2.0}
  %s1: f64 = call %a {callee=@sq}
  %u: f64[E] = mul %d1, %c1, %s1
  %r: f64[E] = add %u, %u
  return %r
}
""",
)

case(
    "flatten",
    "flatten",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %s: f64 = add %a, %b
  %t: f64[E] = add %x, %s
  %u: f64[E] = add %t, %a
  %m: f64[E] = mul %x, %x
  %n: f64[E] = mul %m, %a
  %o: f64[E] = mul %m, %n
  %r: f64[E] = add %u, %o
  return %r
}
""",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %m: f64[E] = mul %x, %x
  %o: f64[E] = mul %a, %m, %m
  %r: f64[E] = add %a, %b, %a, %x, %o
  return %r
}
""",
)

case(
    "flatten_keeps_shared_and_outputs",
    "flatten",
    """\
graph @main(%x: f64[E], %a: f64) -> (f64[E], f64[E]) {
  %s: f64[E] = add %x, %a
  %t: f64[E] = add %s, %a
  %u: f64[E] = add %t, %t
  return %u, %s
}
""",
    """\
graph @main(%x: f64[E], %a: f64) -> (f64[E], f64[E]) {
  %s: f64[E] = add %x, %a
  %t: f64[E] = add %s, %a
  %u: f64[E] = add %t, %t
  return %u, %s
}
""",
)

case(
    "binarize",
    "binarize",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %s: f64[E] = add %a, %b, %x, %a
  %m: f64[E] = mul %s, %x, %b
  return %m
}
""",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %0: f64 = add %a, %b
  %1: f64[E] = add %0, %x
  %s: f64[E] = add %1, %a
  %2: f64[E] = mul %s, %x
  %m: f64[E] = mul %2, %b
  return %m
}
""",
)

case(
    "dce",
    "dce",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %dead: f64 = mul %a, %b
  %d2: f64 = exp %dead
  %s: f64[E] = add %x, %a
  return %s
}
""",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %s: f64[E] = add %x, %a
  return %s
}
""",
)

case(
    "simplify_exact",
    "simplify",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %zero: f64 = const {value=0.0}
  %one: f64 = const {value=1.0}
  %two: f64 = const {value=2.0}
  %three: f64 = const {value=3.0}
  %four: f64 = const {value=4.0}
  %half: f64 = const {value=0.5}
  %m3: f64 = const {value=-3.0}
  %s: f64[E] = add %x, %zero
  %p: f64[E] = mul %s, %one
  %n: f64[E] = neg %p
  %nn: f64[E] = neg %n
  %q: f64[E] = add %two, %nn, %three
  %d: f64[E] = div %q, %four
  %w2: f64[E] = pow %d, %two
  %w3: f64[E] = pow %d, %m3
  %h: f64 = pow %a, %half
  %r: f64[E] = add %w2, %w3, %h
  return %r
}
""",
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %half: f64 = const {value=0.5}
  %0: f64 = const {value=5.0}
  %q: f64[E] = add %x, %0
  %1: f64 = const {value=0.25}
  %d: f64[E] = mul %q, %1
  %w2: f64[E] = mul %d, %d
  %2: f64[E] = mul %d, %d, %d
  %3: f64 = const {value=1.0}
  %w3: f64[E] = div %3, %2
  %h: f64 = pow %a, %half
  %r: f64[E] = add %w2, %w3, %h
  return %r
}
""",
)

FINITE_ONLY = """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  %zero: f64 = const {value=0.0}
  %sa: f64 = sin %a
  %z1: f64 = mul %sa, %zero
  %xx: f64[E] = sub %x, %x
  %zx: f64[E] = mul %x, %zero
  %e: f64[E] = exp %x
  %l: f64[E] = log %e
  %r: f64[E] = add %z1, %xx, %zx, %l
  return %r
}
"""
case("simplify_not_finite", "simplify", FINITE_ONLY, FINITE_ONLY)
case(
    "simplify_finite_math",
    "simplify{finite_math}",
    FINITE_ONLY,
    """\
graph @main(%x: f64[E], %a: f64, %b: f64) -> f64[E] {
  return %x
}
""",
)

case(
    "simplify_provably_finite",
    "simplify",
    """\
graph @main(%x: f64[E], %n: i64, %k: i64) -> f64[E] {
  %zero: f64 = const {value=0.0}
  %s: f64 = sin %n
  %t: f64 = tanh %s
  %z: f64 = mul %t, %zero
  %nn: i64 = sub %n, %n
  %one: i64 = const {value=1}
  %d: i64 = sub %k, %one
  %r: f64[E] = add %x, %z, %nn, %d
  return %r
}
""",
    """\
graph @main(%x: f64[E], %n: i64, %k: i64) -> f64[E] {
  %0: i64 = const {value=-1}
  %d: i64 = add %k, %0
  %r: f64[E] = add %x, %d
  return %r
}
""",
)

SQRT = """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %gt: bool[E] = gt %x, %a
  %w: f64[E] = where %gt, %a, %a
  %z: f64 = const {value=0.0}
  %m: f64[E] = sub %z, %w
  %half: f64 = const {value=-0.5}
  %p: f64[E] = pow %x, %half
  %r: f64[E] = add %m, %p
  return %r
}
"""
case(
    "simplify_narrowing",
    "simplify",
    SQRT,
    """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %m: f64 = neg %a
  %half: f64 = const {value=-0.5}
  %p: f64[E] = pow %x, %half
  %r: f64[E] = add %m, %p
  return %r
}
""",
)
case(
    "simplify_rsqrt",
    "simplify{finite_math}",
    SQRT,
    """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %m: f64 = neg %a
  %0: f64[E] = sqrt %x
  %1: f64 = const {value=1.0}
  %p: f64[E] = div %1, %0
  %r: f64[E] = add %m, %p
  return %r
}
""",
)

case(
    "simplify_axes",
    "simplify",
    """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %f1: f64[E] = flip %x {axis=E}
  %c: f64[E] = cumsum %f1 {axis=E, reverse=false}
  %f2: f64[E] = flip %c {axis=E}
  %g1: f64[E] = flip %f2 {axis=E}
  %g2: f64[E] = flip %g1 {axis=E}
  %t: bool = const {value=true}
  %w: f64[E] = where %t, %g2, %a
  return %w
}
""",
    """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %f2: f64[E] = cumsum %x {axis=E, reverse=true}
  return %f2
}
""",
)

# A replacement may drop axes (x*0 -> 0), but a graph output keeps its declared type.
OUTPUT_ZERO = """\
graph @main(%x: f64[E], %a: f64) -> f64[E] {
  %zero: f64 = const {value=0.0}
  %z: f64[E] = mul %x, %zero
  return %z
}
"""
case("simplify_output_keeps_type", "simplify{finite_math}", OUTPUT_ZERO, OUTPUT_ZERO)

case(
    "O2_naive_glp",
    "O2",
    """\
graph @glp(%x: f64[E], %A: f64, %x0: f64, %F: f64, %m: f64) -> f64[E] {
  %one: f64 = const {value=1.0}
  %c: f64 = const {value=-2.772588722239781}
  %two: f64 = const {value=2.0}
  %four: f64 = const {value=4.0}
  %om: f64 = sub %one, %m
  %k: f64 = mul %c, %om
  %d1: f64[E] = sub %x, %x0
  %u1: f64[E] = div %d1, %F
  %s1: f64[E] = pow %u1, %two
  %g: f64[E] = mul %k, %s1
  %e: f64[E] = exp %g
  %num: f64[E] = mul %A, %e
  %fm: f64 = mul %four, %m
  %d2: f64[E] = sub %x, %x0
  %u2: f64[E] = div %d2, %F
  %s2: f64[E] = pow %u2, %two
  %l: f64[E] = mul %fm, %s2
  %den: f64[E] = add %one, %l
  %y: f64[E] = div %num, %den
  return %y
}
""",
    """\
graph @glp(%x: f64[E], %A: f64, %x0: f64, %F: f64, %m: f64) -> f64[E] {
  %one: f64 = const {value=1.0}
  %c: f64 = const {value=-2.772588722239781}
  %four: f64 = const {value=4.0}
  %om: f64 = sub %one, %m
  %d1: f64[E] = sub %x, %x0
  %0: f64 = div %one, %F
  %u1: f64[E] = mul %0, %d1
  %s1: f64[E] = mul %u1, %u1
  %g: f64[E] = mul %om, %c, %s1
  %e: f64[E] = exp %g
  %num: f64[E] = mul %A, %e
  %l: f64[E] = mul %m, %four, %s1
  %den: f64[E] = add %one, %l
  %y: f64[E] = div %num, %den
  return %y
}
""",
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    pipeline, before, after = CASES[name]
    graph = gir.parse(before)
    assert gir.dump(graph) == before  # the fixture is canonical text
    out = gir.optimize(graph, pipeline, verify=True)
    assert gir.dump(out) == after
    assert gir.parse(after) == out
    inputs = inputs_for(graph)
    for step in parse_pipeline(pipeline):  # fixed parameters take their fixed values
        inputs.update(step.options if step.name == "specialize" else {})
    assert_same(evaluate(graph, inputs), evaluate(out, inputs))
    if not pipeline.startswith("specialize"):  # (fixing a parameter twice is an error)
        assert gir.dump(gir.optimize(out, pipeline, verify=True)) == after  # idempotent
