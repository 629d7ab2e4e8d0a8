"""How long the O2 pipeline (and NumPy code generation) takes on graphs of 100 to 10,000 nodes.

Two families of graphs: *peaks*, a sum of naively written GLP peaks over E
(duplicated subexpressions, powers, constants: what O2 is for), and
*random*, random DAGs of elementwise ops, reductions and constants over
x[E], t[T] and scalar parameters. Prints the median of several repeats and
the per-pass times of O2 on the 1,000-node graphs.

    python benchmarks/bench_passes.py [--sizes 100,1000,10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ms, stamp, table, timeit, write_section

import gir
from gir.passes import Stats

UNARY = ("neg", "exp", "sin", "tanh", "abs", "sqrt")
BINARY = ("add", "sub", "mul", "div", "maximum")


def peaks(n_nodes: int) -> gir.Graph:
    """A sum of GLP peaks written as a user would, each ((x-x0)/F)**2 spelled twice."""
    b = gir.Builder(("E",))
    x = b.input("x", gir.Type("f64", ("E",)))
    total = None
    k = 0
    while len(b.nodes) < n_nodes:
        A, x0, F, m = (b.input(f"{p}{k}") for p in ("A", "x0", "F", "m"))
        u2 = [b.op("pow", b.op("div", b.op("sub", x, x0), F), b.const(2.0)) for _ in range(2)]
        gauss = b.op("exp", b.op("mul", b.const(-4 * np.log(2)), b.op("sub", b.const(1.0), m), u2[0]))
        lorentz = b.op("add", b.const(1.0), b.op("mul", b.const(4.0), m, u2[1]))
        peak = b.op("div", b.op("mul", A, gauss), lorentz)
        total = peak if total is None else b.op("add", total, peak)
        k += 1
    return b.build(total, name="peaks")


def random_graph(n_nodes: int, seed: int = 0) -> gir.Graph:
    """A random DAG over x[E], t[T] and four parameters; the last few values are its outputs."""
    rng = np.random.default_rng(seed)
    b = gir.Builder(("T", "E"))
    pool = [b.input("x", gir.Type("f64", ("E",))), b.input("t", gir.Type("f64", ("T",)))]
    pool += [b.input(p) for p in "abcd"]
    while len(b.nodes) < n_nodes:
        recent = pool[-40:]
        u, v = recent[rng.integers(len(recent))], pool[rng.integers(len(pool))]
        kind = rng.random()
        if kind < 0.1:
            pool.append(b.const(float(rng.choice([0.0, 1.0, 2.0, 0.5, -1.0]))))
        elif kind < 0.35:
            pool.append(b.op(str(rng.choice(UNARY)), u))
        elif kind < 0.4 and u.type.axes:
            op, axis = str(rng.choice(["sum", "cumsum", "flip"])), str(rng.choice(u.type.axes))
            pool.append(b.op(op, u, axis=axis))
        else:
            pool.append(b.op(str(rng.choice(BINARY)), u, v))
    return b.build(pool[-3:], name="random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write the tables to docs/performance.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    rows = []
    detail: dict[str, Stats] = {}
    for family, make in (("peaks", peaks), ("random", random_graph)):
        for n in sizes:
            g = make(n)
            opt = gir.optimize(g, "O2", verify=False)

            def codegen(opt=opt):
                gir.clear_cache()
                return gir.compile(opt, target="numpy", passes="O0")

            t_opt = timeit(lambda g=g: gir.optimize(g, "O2", verify=False), repeat=args.repeat, min_time=0.02)
            t_gen = timeit(codegen, repeat=args.repeat, min_time=0.02)
            sizes_ = [str(len(g.nodes)), str(len(opt.nodes))]
            per_node = f"{t_opt / len(g.nodes) * 1e6:.1f}"
            rows.append([family, *sizes_, ms(t_opt), ms(t_gen), ms(t_opt + t_gen), per_node])
            if n == 1000 or n == sizes[0]:
                detail[f"{family}, {len(g.nodes)} nodes"] = gir.optimize(g, "O2", verify=False, stats=True)[1]
            print(f"  {family} {n}: done", file=sys.stderr)

    parts = [
        f"### Passes: O2 and NumPy codegen\n\n{stamp()}. Median of repeats; times in ms.",
        table(["graph", "nodes", "after O2", "O2 ms", "numpy codegen ms", "total ms", "O2 us/node"], rows),
    ]
    for name, stats in detail.items():
        parts.append(f"O2 per pass, {name}:")
        parts.append(table(["pass", "ms", "nodes before", "nodes after", "rewrites"],
                           [[s.name, ms(s.seconds), str(s.nodes_before), str(s.nodes_after), str(s.rewrites)]
                            for s in stats]))  # fmt: skip
    report = "\n\n".join(parts)
    print(report)
    if args.write:
        write_section("bench_passes", report)


if __name__ == "__main__":
    main()
