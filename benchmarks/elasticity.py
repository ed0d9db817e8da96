"""Elasticity: every solver that can take the operator, side by side, and GAMG with and
without the rigid-body modes.

Each row solves the same samples of one `Elasticity` family (the recipes' problems:
cantilever clamped at x = 0, traction-free elsewhere) through `solvers.ChainSolver`, with
rtol 1e-8 on ||b - A x|| <= rtol ||b|| and a zero initial guess, except the rows named
"warm" (previous solution as the guess). Rows whose result depends on the order (recycling
CG, warm starts) solve the greedily sorted chain, and their time includes the sorting time;
the others run in generation order. Time per sample covers preconditioner set-up (GAMG's
coarse spaces, the numeric factorisation), recycle refresh and iterations; assembly and the
copy into PETSc are excluded for every row alike. A row with any unconverged sample is marked
`!k/N`. The GAMG rows differ only in what GAMG is told about the near-null space:

- `modes`: block size d and the d (d + 1) / 2 rigid-body modes (translations and rotations,
  `MatNullSpaceCreateRigidBody`), what pdegen runs;
- `translations`: block size d only, so GAMG's default near-null space, the d constant
  vectors of one component each (no rotations);
- `scalar`: block size 1, one constant vector over all components (what a scalar problem's
  matrix gets).

    python benchmarks/elasticity.py 2d        # 63^2 nodes, 8320 unknowns, 20 samples
    python benchmarks/elasticity.py 2d-255    # 255^2 nodes, 131584 unknowns, 6 samples
    python benchmarks/elasticity.py 3d-15     # 15^3 nodes, 13872 unknowns, 6 samples
    python benchmarks/elasticity.py 3d        # 31^3 nodes, 104544 unknowns, 6 samples
    python benchmarks/elasticity.py 3d-47 --rows "cg gamg, modes" "cg gamg, translations" "cg icc"

The rows run interleaved, sample by sample (each with its own chain), so that on a shared
machine every row sees the same background load. Writes
benchmarks/results/elasticity-<case>.{md,json} and prints the table.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass

import numpy as np
from tables import save

from pdegen.families import Elasticity
from pdegen.families.elasticity import ElasticityProblem
from pdegen.specs import CoefficientSpec
from solvers import ChainSolver, order_systems


@dataclass(frozen=True)
class Case:
    n: int
    dim: int
    samples: int
    direct: bool  # run the Cholesky row (minutes per sample in 3D beyond n = 15)


CASES = {
    "2d": Case(63, 2, 20, True),
    "2d-255": Case(255, 2, 6, True),
    "3d-15": Case(15, 3, 6, True),
    "3d": Case(31, 3, 6, False),
    "3d-47": Case(47, 3, 3, False),  # with --rows: where GAMG's constant iterations pay off
}

#: (label, method, pc, near-null space: "modes" | "translations" | "scalar", sorted, warm)
ROWS = [
    ("direct cholesky", "direct", "cholesky", "scalar", False, False),
    ("cg gamg, modes", "cg", "gamg", "modes", False, False),
    ("cg gamg, translations", "cg", "gamg", "translations", False, False),
    ("cg gamg, scalar", "cg", "gamg", "scalar", False, False),
    ("cg icc", "cg", "icc", "scalar", False, False),
    ("cg jacobi", "cg", "jacobi", "scalar", False, False),
    ("rcg gamg, modes", "rcg", "gamg", "modes", True, False),
    ("cg gamg, modes, warm", "cg", "gamg", "modes", True, True),
    ("rcg gamg, modes, warm", "rcg", "gamg", "modes", True, True),
]


def family_for(case: Case) -> Elasticity:
    """The recipes' problem: 2D a lognormal modulus under gravity, 3D a thresholded one
    under a random force (recipes/elasticity.yaml, recipes/elasticity3d.yaml)."""
    if case.dim == 2:
        problem = ElasticityProblem(youngs_modulus=CoefficientSpec(kind="lognormal"), clamped="x0")
    else:
        problem = ElasticityProblem(
            youngs_modulus=CoefficientSpec(kind="threshold"), clamped="x0", body_force="random"
        )
    return Elasticity(case.n, case.dim, problem)


def make_chain(family: Elasticity, row) -> ChainSolver:
    _, method, pc, space, _, warm = row
    kwargs = {
        "modes": {"rigid_body_coordinates": family.rigid_body_coordinates()},
        "translations": {"block_size": family.dim},
        "scalar": {},
    }[space]
    return ChainSolver(method, pc, rtol=1e-8, recycle=10, warm_start=warm, **kwargs)


def run_rows(family: Elasticity, systems, order, rows) -> list[dict]:
    """Every row's chain, advanced one sample at a time in turn: on a shared, noisy machine
    every row then sees the same background load (the rows run interleaved, not one after
    the other). Each row keeps its own chain: its recycled space, previous solution and
    preconditioner, exactly as if it ran alone."""
    chains = [make_chain(family, row) for row in rows]
    out = [{"row": row[0], "seconds": 0.0, "its": [], "converged": 0} for row in rows]
    for k in range(len(systems)):
        for row, chain, record in zip(rows, chains, out, strict=True):
            A, b = systems[order[k] if row[4] else k]
            result = chain.solve(A, b)
            record["seconds"] += result.seconds
            record["its"].append(result.iterations)
            record["converged"] += result.converged
    for record in out:
        record["iterations"] = float(np.mean(record.pop("its")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--rows", nargs="+", choices=[r[0] for r in ROWS], help="a subset")
    args = parser.parse_args()
    case = CASES[args.case]
    count = args.samples or case.samples
    family = family_for(case)
    samples = [family.sample(1, i) for i in range(count)]
    start = time.perf_counter()
    features = np.stack([family.features(s) for s in samples])
    order = order_systems(features, method="greedy")
    sorting = time.perf_counter() - start
    systems = [family.system(s) for s in samples]  # assembled once, outside the timing
    wanted = {"cg gamg, modes", *(args.rows or (r[0] for r in ROWS))}  # the reference row too
    rows = [r for r in ROWS if (case.direct or r[1] != "direct") and r[0] in wanted]
    results = run_rows(family, systems, order, rows)
    for row, result in zip(rows, results, strict=True):
        if row[4]:
            result["seconds"] += sorting
    rows = results
    reference = next(r for r in rows if r["row"] == "cg gamg, modes")["seconds"]
    lines = [
        f"### elasticity {args.case}: {case.dim}D, n = {case.n}, {family.unknowns} unknowns, "
        f"{count} samples",
        "",
        f"Sorting (greedy): {sorting:.3f} s, counted in the sorted rows (rcg, warm). "
        f"Machine: {platform.node()}, {platform.processor() or platform.machine()}.",
        "",
        "| solver | s per sample | iterations | total s | CG+GAMG (modes) time / this |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "" if r["converged"] == count else f" !{r['converged']}/{count}"
        lines.append(
            f"| {r['row']}{mark} | {r['seconds'] / count:.3f} | {r['iterations']:.1f} | "
            f"{r['seconds']:.2f} | {reference / r['seconds']:.2f}x |"
        )
    data = {"case": args.case, "unknowns": family.unknowns, "sorting": sorting, "rows": rows}
    save(f"elasticity-{args.case}", "\n".join(lines), data)


if __name__ == "__main__":
    main()
