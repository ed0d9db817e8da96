"""Cavity flow: recycling across the Oseen momentum steps against the same methods without it.

    python benchmarks/cavity.py          # n = 63 and 127, dt = 0.02 and 0.1; about 6 minutes

Every step of `Cavity` solves a nonsymmetric momentum system whose convection part changes
with the last step's velocity; this compares, on the same chains of steps and samples,
GCRO-DR (its recycled space carried across steps and samples) with GMRES (restarted every
step) under the same preconditioner, and a sparse LU refactorised at every step (the matrix
changes). GAMG is left out: on this nonsymmetric operator it left 16 of 20 steps unconverged
at 5000 iterations (n = 127, dt = 0.02). Every solve warm-starts from the last step's
velocity (the family's first guess, the same for every method) and converges to rtol 1e-8 on
the true residual. Cells: CPU seconds per
sample for the whole march (assembly and the pressure solves included, the same for every
row), per momentum step, and mean iterations per momentum step. Writes
benchmarks/results/cavity.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tables import save

from pdegen.families.cavity import Cavity, CavityProblem
from pdegen.specs import RangeSpec
from solvers import ChainSolver

SOLVERS = [
    ("gmres", "ilu", {}),
    ("gcrodr", "ilu", {"recycle": 10}),
    ("gcrodr", "ilu", {"recycle": 20}),
    ("gmres", "asm", {}),
    ("gcrodr", "asm", {"recycle": 10}),
    ("direct", "lu", {}),
]
#: (n, dt, t_end): the recipe's step on its grid and on Ghia's, and the large step that
#: marches to a steady state (tests/test_cavity.py)
CASES = [(63, 0.02, 2.0), (127, 0.02, 2.0), (127, 0.1, 5.0)]


def march(family, samples, method, pc, extra) -> dict:
    chain = ChainSolver(method, pc, rtol=1e-8, max_iterations=5000, **extra)
    pressure = ChainSolver("direct", "cholesky", rtol=1e-12)
    cpu = time.process_time()
    momentum = []
    for sample in samples:
        _, results = family.trajectory(sample, chain.solve, lambda L, b: pressure.solve(L, b))
        momentum += results[0::2]
    cpu = time.process_time() - cpu
    return {
        "per_sample": cpu / len(samples),
        "per_step": cpu / len(momentum),
        "iterations": float(np.mean([r.iterations for r in momentum])),
        "unconverged": sum(not r.converged for r in momentum),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    lines = []
    data = {}
    for n, dt, t_end in CASES:
        problem = CavityProblem(reynolds=RangeSpec(100.0, 1000.0), t_end=t_end, frames=4, dt=dt)
        family = Cavity(n, 2, problem)
        samples = [family.sample(0, i) for i in range(args.samples)]
        march(family, samples[:1], "gmres", "ilu", {})  # warm-up: imports, caches, first set-ups
        lines += [
            f"n = {n} ({family.velocity_unknowns} velocity unknowns), dt = {dt:g}, "
            f"{family.time_stepping.steps} steps per sample, {args.samples} samples, "
            "Re in [100, 1000]",
            "",
            "| momentum solver | CPU per sample | per step | iterations per step |",
            "|---|---|---|---|",
        ]
        for method, pc, extra in SOLVERS:
            label = f"{method} + {pc}" + (f" (k = {extra['recycle']})" if extra else "")
            cell = march(family, samples, method, pc, extra)
            data[f"n={n} dt={dt:g} {label}"] = cell
            flag = f" !{cell['unconverged']} unconverged" if cell["unconverged"] else ""
            lines.append(
                f"| {label} | {cell['per_sample']:.2f} s | {cell['per_step'] * 1e3:.1f} ms | "
                f"{cell['iterations']:.1f}{flag} |"
            )
        lines.append("")
    save("cavity", "\n".join(lines), data)


if __name__ == "__main__":
    main()
