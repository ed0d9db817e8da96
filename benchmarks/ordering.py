"""Ordering cost and quality: greedy (the published chain) against the fast method.

Features are real Darcy coefficient fields on a 64 x 64 node grid (thresholded GRF, the
neural-operator benchmark's law). Prints a markdown table and writes
benchmarks/results/ordering.md.

    python benchmarks/ordering.py [--large 100000] [--small 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tables import save

from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from pdegen.specs import CoefficientSpec
from solvers import chain_length, order_systems


def features(count: int, kind: str) -> np.ndarray:
    family = Darcy(62, 2, DarcyProblem(CoefficientSpec(kind=kind)))
    out = np.empty((count, 64 * 64))
    for i in range(count):
        out[i] = family.sample(0, i).inputs["coefficient"].ravel()
    return out


def timed(f, method):
    start = time.perf_counter()
    order = order_systems(f, method)
    return order, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=2000)
    args = parser.parse_args()
    lines = [
        "| features | N | method | seconds | chain length | vs greedy |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("threshold", "lognormal"):
        f = features(args.small, kind)
        ref = None
        for method in ("none", "greedy", "fast"):
            order, seconds = timed(f, method)
            length = chain_length(f, order)
            ref = length if method == "greedy" else ref
            ratio = f"{length / ref:.3f}" if ref else ""
            cells = [f"{kind} 64x64", args.small, method, f"{seconds:.2f}", f"{length:.4g}", ratio]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
            print(lines[-1], flush=True)
    f = features(args.large, "threshold")
    order, seconds = timed(f, "fast")
    assert sorted(order.tolist()) == list(range(args.large))
    length = chain_length(f, order)
    cells = ["threshold 64x64", args.large, "fast", f"{seconds:.2f}", f"{length:.4g}"]
    lines.append("| " + " | ".join(map(str, cells)) + " | |")
    print(lines[-1], flush=True)
    text = "\n".join(lines)
    save("ordering", text)


if __name__ == "__main__":
    main()
