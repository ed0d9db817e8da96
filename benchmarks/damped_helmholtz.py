"""Helmholtz in an attenuating medium: the complex-shifted Laplacian's V-cycle against the
real shift, ILU and a sparse LU, at wavenumbers where the real shift stalls.

    cd benchmarks && ../.venv/bin/python damped_helmholtz.py      # 2D and 3D; ~30 min
    cd benchmarks && ../.venv/bin/python damped_helmholtz.py --rows 2 3   # the 3D rows
    cd benchmarks && ../.venv/bin/python damped_helmholtz.py --quick   # one row per dimension

-div(a grad u) - k^2 (1 + i gamma) u = f (`problem.damping` gamma) is solved in real 2 x 2
block form (`solvers.real_equivalent`) through pdegen's own path (`Helmholtz.solve_sample`,
a `ChainSolver` per cell, samples in pdegen's greedy order). Every iterative cell is
GCRO-DR(40, 20) at rtol 1e-8 on the true residual of the block system, preconditioned by:
- `real shift`: the lossless recipes' V-cycle, on -div(a grad) + beta k^2 I (every level);
- `ILU`: ILU(0) of the block form;
- `complex shift`: what `pc: mg` runs with damping, a V-cycle on the block form of
  -div(a grad) - (1 + 0.5i) k^2 with as many levels as `Helmholtz.csl_levels` gives (and,
  in the `levels` columns, one level more and one less, to show where the rule sits).
`direct` is PETSc's LU of the block form (nested dissection), one factorisation per sample
(in 3D on the first sample only: it takes minutes).
Cells: CPU per sample over the chain, assembly included, and mean iterations; "!c/s" marks
cells where only c of s samples converged within 3000 iterations. Writes
benchmarks/results/damped_helmholtz.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from complex_shift import cell
from multigrid import sorted_samples, text
from tables import save

from pdegen.families import Helmholtz
from pdegen.families.helmholtz import HelmholtzProblem
from pdegen.specs import RangeSpec
from solvers import ChainSolver

MAX_ITERATIONS = 3000
#: label -> (dim, n, k_min, k_max, damping, samples)
CASES = {
    "2D 127², k in [40, 60]": (2, 127, 40.0, 60.0, 0.05, 6),
    "2D 255², k in [80, 120]": (2, 255, 80.0, 120.0, 0.05, 4),
    "3D 47³, k in [9, 14]": (3, 47, 9.0, 14.0, 0.05, 4),
    "3D 47³, k in [18, 25]": (3, 47, 18.0, 25.0, 0.05, 3),
}
QUICK = ("2D 127², k in [40, 60]", "3D 47³, k in [9, 14]")
COLUMNS = (
    "direct",
    "ILU",
    "real shift",
    "complex shift",
    "complex shift, one level more",
    "complex shift, one level less",
)


def chain(family: Helmholtz, method: str, pc: str, levels: int | None = None) -> ChainSolver:
    settings = family.multigrid_settings()
    if levels is not None:
        settings = dataclasses.replace(settings, max_levels=levels)
    return ChainSolver(
        method,
        pc,
        rtol=1e-8,
        max_iterations=MAX_ITERATIONS,
        grid=family.interior_shape,
        multigrid=settings,
        **family.vector_layout(),
    )


def pdegen_path(family: Helmholtz, samples, solver: ChainSolver) -> dict:
    cpu = time.process_time()
    results = [family.solve_sample(s, solver)[1][0] for s in samples]
    return cell(results, cpu)


def real_shift(family: Helmholtz, samples) -> dict:
    """GCRO-DR on the damped block system, preconditioned by the lossless family's V-cycle
    on the real shift, applied to both parts alike (its block form is kron(P, I2))."""
    lossless = Helmholtz(family.n, family.dim, dataclasses.replace(family.problem, damping=0.0))
    solver = ChainSolver(
        "gcrodr",
        "mg",
        rtol=1e-8,
        max_iterations=MAX_ITERATIONS,
        grid=family.interior_shape,
        multigrid=lossless.multigrid_settings(),
        block_size=2,
    )
    cpu = time.process_time()
    results = []
    for sample in samples:
        K, b = family.system(sample)
        A, _ = family.system_real(sample)
        P = family._forms.real_operator(lossless.preconditioner_operator(sample, A))
        results.append(solver.solve(K, b, P=P))
    return cell(results, cpu)


def measure(label: str) -> tuple[dict, int]:
    dim, n, k_min, k_max, damping, count = CASES[label]
    problem = HelmholtzProblem(
        wavenumber=RangeSpec(k_min, k_max), damping=damping, min_points_per_wavelength=4.0
    )
    family = Helmholtz(n, dim, problem)
    samples = sorted_samples(family, count)
    levels = family.csl_levels()
    # a 3D LU of the block form takes minutes per sample: one sample measures it
    direct_samples = samples[:1] if dim == 3 else samples
    cells = {
        "direct": pdegen_path(family, direct_samples, chain(family, "direct", "lu")),
        "ILU": pdegen_path(family, samples, chain(family, "gcrodr", "ilu")),
        "real shift": real_shift(family, samples),
        "complex shift": pdegen_path(family, samples, chain(family, "gcrodr", "mg")),
        "complex shift, one level more": pdegen_path(
            family, samples, chain(family, "gcrodr", "mg", levels + 1)
        ),
        "complex shift, one level less": (
            pdegen_path(family, samples, chain(family, "gcrodr", "mg", levels - 1))
            if levels > 2
            else None
        ),
    }
    return cells, levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one row per dimension")
    parser.add_argument("--rows", nargs="+", type=int, help="only these rows (0-based)")
    args = parser.parse_args()
    labels = QUICK if args.quick else tuple(CASES)
    if args.rows:
        labels = tuple(labels[i] for i in args.rows)
    lines = [
        "| damping 0.05, GCRO-DR(40, 20) | levels | " + " | ".join(COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    data = {}
    for label in labels:
        cells, levels = measure(label)
        data[label] = {"levels": levels, **cells}
        row = ["—" if cells[c] is None else text(cells[c], "cpu_per_sample") for c in COLUMNS]
        head = f"| {label} ({CASES[label][-1]} samples) | {levels} | "
        lines.append(head + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    save("damped_helmholtz", "\n".join(lines), data)


if __name__ == "__main__":
    main()
