"""Run under `mpirun -n P`: one system solved by all ranks together through `ChainSolver`
(`solvers.distributed`: each rank's slab of rows, PCMG on the slab hierarchy), for several
methods, preconditioners and grids (uniform and unevenly halved). Every rank assembles only
its rows (`diffusion_rows`); rank 0 writes each gathered solution, with its iterations and
the note, as JSON to the path given. Two systems per chain: the second reuses the first's
Mat (refilled in place) and hierarchy."""

import json
import sys

from petsc4py import PETSc

from pdegen.discretisation.operators import diffusion_rows
from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from pdegen.specs import CoefficientSpec
from solvers.distributed import SlabLayout, gather_natural
from solvers.sequence import ChainSolver

CASES = [  # (dim, n, method, pc)
    (3, 23, "cg", "mg"),  # 24 cells: halved 23 -> 11 -> 5
    (3, 24, "cg", "mg"),  # 25 cells: halved unevenly
    (2, 126, "cg", "mg"),  # 127 cells (128 points per axis): unevenly
    (3, 23, "gmres", "ilu"),  # block Jacobi with ILU blocks
    (3, 23, "gcrodr", "mg"),  # our recycling methods, reductions over the ranks
    (3, 23, "rcg", "mg"),
    (2, 40, "cg", "mg"),  # 41 cells: coarsens too little, runs gamg
]


def main(out: str) -> None:
    comm = PETSc.COMM_WORLD
    rank = comm.getRank()
    report = []
    for dim, n, method, pc in CASES:
        family = Darcy(n, dim, DarcyProblem(CoefficientSpec(kind="threshold")))
        layout = SlabLayout(family.interior_shape, comm.getSize())
        first, last = layout.planes[rank]
        chain = ChainSolver(
            method,
            pc,
            rtol=1e-8,
            grid=family.interior_shape,
            multigrid=family.multigrid_settings(),  # 2D: forward/backward Gauss-Seidel
            comm=comm,
        )
        runs = []
        for index in range(2):
            a, b = family.diffusion_system(family.sample(5, index))
            rows = diffusion_rows(a[first : last + 2], family.h, first, n)
            b = b.reshape(family.interior_shape)[first:last].ravel()
            result = chain.solve(rows, b)
            x = gather_natural(comm, result.x, layout.sizes)
            runs.append(
                {
                    "iterations": result.iterations,
                    "converged": bool(result.converged),
                    "x": x.tolist() if rank == 0 else None,
                }
            )
        report.append(
            {"case": [dim, n, method, pc], "pc": chain.pc, "note": chain.note, "runs": runs}
        )
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1])
