"""Geometric multigrid's smoother and cycle, measured: CG + `pc: mg` on Darcy 12 / 3.

Darcy with the neural-operator benchmark's thresholded coefficient (12 / 3, alpha = 2,
tau = 3) on FNO's 421 x 421 node grid (n = 419: four levels down to 52^2; to 34^2 by 3 when
the record was taken) and on the 64^3-cell cube (n = 63: six levels down to one unknown),
CG to rtol 1e-8, every smoother and cycle of `solvers.multigrid` side by side in one run.
Each cell: the mean per-sample seconds over the samples after the first (the chain's steady
state: numeric PtAP, smoother set-up, iterations), best of `--repeats` fresh chains, and the
mean CG iterations; the first sample (symbolic set-up too) is in the JSON. Prints a
markdown table and writes benchmarks/results/mg_smoothers.md.

    python benchmarks/mg_smoothers.py [--samples 4] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
from tables import save

from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from pdegen.specs import CoefficientSpec
from solvers import ChainSolver
from solvers.multigrid import MGSettings

CASES = {"2D n=419 (421^2 nodes)": (419, 2), "3D n=63 (64^3 cells)": (63, 3)}
SETTINGS = {
    "Chebyshev(2)/Jacobi": ("chebyshev", 2),
    "SSOR x1": ("sor", 1),
    "GS forward down, backward up x1": ("gs", 1),
    "SSOR x2": ("sor", 2),
    "Chebyshev(2)/SSOR": ("chebyshev-sor", 2),
}
COEFFICIENT = CoefficientSpec(kind="threshold", alpha=2.0, tau=3.0, high=12.0, low=3.0)


def run(systems, shape, settings: MGSettings, repeats: int, pc: str = "mg") -> dict:
    """CG + `pc` on the chain `systems`: per-sample seconds after the first, best of
    `repeats` fresh chains; the first sample's; the mean iterations."""
    best, first, its = np.inf, np.inf, []
    for _ in range(repeats):
        chain = ChainSolver("cg", pc, rtol=1e-8, grid=shape, multigrid=settings)
        results = [chain.solve(A, b) for A, b in systems]
        assert all(r.converged for r in results) and chain.note is None and chain.pc == pc
        best = min(best, float(np.mean([r.seconds for r in results[1:]])))
        first = min(first, results[0].seconds)
        its = [r.iterations for r in results]
    return {"seconds": best, "first": first, "iterations": float(np.mean(its))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, dict[str, dict]] = {}
    for case, (n, dim) in CASES.items():
        family = Darcy(n, dim, DarcyProblem(COEFFICIENT))
        systems = [family.system(family.sample(0, i)) for i in range(args.samples)]
        for label, (smoother, sweeps) in SETTINGS.items():
            for cycle in ("v", "w"):
                settings = MGSettings(smoother=smoother, sweeps=sweeps, cycle=cycle)
                key = f"{label}, {cycle.upper()}"
                rows.setdefault(key, {})[case] = run(
                    systems, family.interior_shape, settings, args.repeats
                )
    head = "| smoother, cycle | " + " | ".join(CASES) + " |"
    lines = [head, "|---" * (len(CASES) + 1) + "|"]
    for key, cells in rows.items():
        text = [f"{c['seconds'] * 1e3:.0f} ms ({c['iterations']:.1f} it)" for c in cells.values()]
        lines.append(f"| {key} | " + " | ".join(text) + " |")
    note = (
        f"CG + mg, rtol 1e-8, {args.samples} samples; per-sample seconds after the first, "
        f"best of {args.repeats} chains (mean CG iterations)."
    )
    save("mg_smoothers", note + "\n\n" + "\n".join(lines), rows)


if __name__ == "__main__":
    main()
