"""Per-sample solve time against unknowns, per method, with fitted exponents and a log-log plot.

Darcy (threshold 12/3) on grids that geometric multigrid coarsens (n + 1 = 2^k cells), a few
samples per size through the one solve harness (`ChainSolver`, rtol 1e-8), best of
`--repeats` chains, time per sample after the first (set-up amortised, as in a dataset).
A method is dropped at larger sizes once one solve passes `--budget` seconds.

    .venv/bin/python benchmarks/scale.py [--samples 3] [--repeats 2] [--budget 20]

Writes benchmarks/results/scale.md (.json) and docs/scale.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tables import save

from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from pdegen.specs import CoefficientSpec
from solvers import ChainSolver

THRESHOLD = CoefficientSpec(kind="threshold", alpha=2.0, tau=3.0, high=12.0, low=3.0)
SIZES = {2: (63, 127, 255, 511, 1023), 3: (15, 31, 63, 127)}
METHODS = {
    2: [("cg", "mg"), ("direct", "cholesky"), ("cg", "gamg"), ("cg", "ilu")],
    3: [("cg", "mg"), ("cg", "ilu"), ("cg", "gamg"), ("direct", "cholesky")],
}
#: the largest n run per (dim, method): a 3D factorisation at 64^3 takes minutes per sample
LARGEST = {(3, "direct", "cholesky"): 31}
DOCS = Path(__file__).resolve().parents[1] / "docs"


def per_sample(family: Darcy, method: str, pc: str, samples: int, repeats: int) -> tuple:
    systems = [family.system(family.sample(0, i)) for i in range(samples)]
    best, its = float("inf"), 0.0
    for _ in range(repeats):
        chain = ChainSolver(
            method, pc, rtol=1e-8, grid=family.interior_shape, multigrid=family.multigrid_settings()
        )
        results = [chain.solve(A, b) for A, b in systems]
        if not all(r.converged for r in results):
            return float("nan"), float("nan")
        rest = results[1:] or results
        mean = float(np.mean([r.seconds for r in rest]))
        if mean < best:
            best, its = mean, float(np.mean([r.iterations for r in rest]))
    return best, its


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget", type=float, default=20.0)
    args = parser.parse_args()
    rows, data = [], {}
    for dim, sizes in SIZES.items():
        alive = {m: True for m in METHODS[dim]}
        for n in sizes:
            for method, pc in METHODS[dim]:
                if not alive[(method, pc)] or n > LARGEST.get((dim, method, pc), n):
                    continue
                start = time.perf_counter()
                seconds, its = per_sample(
                    Darcy(n, dim, DarcyProblem(THRESHOLD)), method, pc, args.samples, args.repeats
                )
                if time.perf_counter() - start > args.budget * args.samples * args.repeats:
                    alive[(method, pc)] = False  # the next size would take far too long
                key = f"{dim}D {method}+{pc}"
                data.setdefault(key, []).append((n**dim, seconds, its))
                rows.append((dim, n, method, pc, seconds, its))
                print(
                    f"{dim}D n={n} {method}+{pc}: {seconds * 1e3:.1f} ms ({its:.1f} it)", flush=True
                )
    lines = [
        "| dim | n | unknowns | method | ms per sample | iterations |",
        "|---|---|---|---|---|---|",
    ]
    for dim, n, method, pc, seconds, its in rows:
        lines.append(
            f"| {dim}D | {n} | {n**dim} | {method} + {pc} | {seconds * 1e3:.1f} | {its:.1f} |"
        )
    lines += ["", "| method | fitted exponent (time ~ unknowns^p) | sizes |", "|---|---|---|"]
    fits = {}
    for key, points in data.items():
        pts = [(u, s) for u, s, _ in points if np.isfinite(s) and s > 0]
        if len(pts) >= 2:
            p = np.polyfit(np.log([u for u, _ in pts]), np.log([s for _, s in pts]), 1)[0]
            fits[key] = float(p)
            lines.append(f"| {key} | {p:.2f} | {len(pts)} |")
    save("scale", "\n".join(lines), {"rows": rows, "fits": fits})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, dim in zip(axes, (2, 3), strict=True):
        for key, points in data.items():
            if not key.startswith(f"{dim}D"):
                continue
            pts = [(u, s) for u, s, _ in points if np.isfinite(s)]
            label = f"{key[3:]} (p = {fits.get(key, float('nan')):.2f})"
            ax.loglog([u for u, _ in pts], [s for _, s in pts], "o-", label=label)
        ax.set_xlabel("unknowns")
        ax.set_ylabel("seconds per sample")
        ax.set_title(f"Darcy {dim}D, rtol 1e-8")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(DOCS / "scale.png", dpi=110)


if __name__ == "__main__":
    main()
