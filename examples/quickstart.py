"""Quickstart: trace a NumPy model, read its IR, compile it, evaluate it.

The model is a 1D photoemission-like spectrum: two pseudo-Voigt (GLP) peaks
on a Shirley background (a reverse cumulative sum of the peaks) and an offset.
"""

import numpy as np

import gir


def spectrum(x, A1, x1, A2, x2, F, m, shirley, y0):
    def glp(A, x0):
        u2 = ((x - x0) / F) ** 2
        return A * np.exp(-4 * np.log(2) * (1 - m) * u2) / (1 + 4 * m * u2)

    peaks = glp(A1, x1) + glp(A2, x2)
    background = shirley * np.cumsum(peaks[::-1])[::-1]
    return peaks + background + y0


def main() -> None:
    graph = gir.trace(spectrum, x="E")
    print("Traced IR:\n")
    print(gir.dump(graph))

    exe = gir.compile(graph, target="numpy")  # O2 optimization by default
    print(f"Optimized: {len(graph.nodes)} -> {len(exe.graph.nodes)} nodes")
    print(f"Parameters: {list(exe.param_names)}\n")
    print(gir.dump(exe.graph))

    x = np.linspace(80.0, 92.0, 1131)
    theta = [10.0, 84.0, 5.0, 87.65, 1.0, 0.3, 1e-3, 0.5]
    y = exe(theta, x=x)
    direct = spectrum(x, *theta)
    print("x      :", np.round(x[::226], 3))
    print("y      :", np.round(y[::226], 6))
    print(f"max |gir - numpy| / max |y| = {np.max(np.abs(y - direct)) / np.max(np.abs(direct)):.2e}")


if __name__ == "__main__":
    main()
