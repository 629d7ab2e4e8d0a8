"""Writing your own passes: a rewrite and a graph pass, used by name in a pipeline.

Run: python examples/custom_pass.py   (exits non-zero if the rewrite did not fire)
"""

import sys
from collections import Counter

import numpy as np

import gir


# A rewrite: exp(a) * exp(b) * rest -> exp(a + b) * rest. It only builds new nodes
# and returns the value that replaces the node's result; the driver does the rest.
@gir.rewrite("mul")
def merge_exps(node, b):
    exps = [v for v in node.inputs if (p := b.producer(v)) is not None and p.op == "exp"]
    if len(exps) < 2:
        return None  # no match: leave the node alone
    total = b.op("exp", b.op("add", *(b.producer(v).inputs[0] for v in exps)))
    rest = [v for v in node.inputs if v not in exps]
    return b.op("mul", *rest, total) if rest else total


# A graph pass: graph -> graph, with a keyword option. This one only looks.
OP_COUNTS: list[Counter] = []


@gir.graph_pass("count_ops")
def count_ops(graph, label: str = ""):
    OP_COUNTS.append(Counter(node.op for node in graph.nodes))
    print(f"count_ops{' ' + label if label else ''}: {dict(OP_COUNTS[-1])}")
    return graph


def two_decays(x, A, k1, k2):
    return A * np.exp(-k1 * x) * np.exp(-k2 * x)


def main() -> int:
    graph = gir.trace(two_decays, x="E")
    fired = []
    pipeline = "count_ops{label=before},inline,canonicalize,flatten,merge_exps,cse,dce,count_ops{label=after}"
    optimized = gir.optimize(graph, pipeline, log=fired.append, verify=True)
    print(gir.dump(optimized))
    print("\n".join(fired))

    # The same passes as objects in a list, ahead of gir.compile's own O2.
    exe = gir.compile(graph, target="numpy", passes=["flatten", merge_exps, count_ops, "O2"])
    x = np.linspace(0.0, 2.0, 5)
    theta = np.array([2.0, 0.5, 1.5])
    expected = 2.0 * np.exp(-0.5 * x) * np.exp(-1.5 * x)
    np.testing.assert_allclose(exe(theta, x=x), expected, rtol=1e-12)

    ok = any("merge_exps" in line for line in fired) and OP_COUNTS[1]["exp"] == 1 and OP_COUNTS[2]["exp"] == 1
    print("merge_exps fired" if ok else "merge_exps did NOT fire")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
