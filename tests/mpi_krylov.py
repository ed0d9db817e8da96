"""Run under `mpirun -n P`: our Krylov methods on one matrix distributed over all ranks.

Solves a short chain of Darcy systems with GCRO-DR and recycling CG (compiled loops, whose
inner products are reduced across ranks) and writes, on rank 0, each solution gathered in
global order with its iteration count, as JSON to the path given.
"""

import json
import sys

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from pdegen.families import Darcy
from pdegen.specs import CoefficientSpec
from solvers import native
from solvers.baselines import make_ksp


def distributed(A, b):
    """The rows this rank owns, as a parallel AIJ Mat and Vec."""
    mat = PETSc.Mat().createAIJ(size=A.shape, comm=PETSc.COMM_WORLD)
    mat.setPreallocationNNZ(7)
    start, end = mat.getOwnershipRange()
    local = A[start:end].tocsr()
    local.sort_indices()
    mat.setValuesCSR(
        local.indptr.astype(PETSc.IntType), local.indices.astype(PETSc.IntType), local.data
    )
    mat.assemble()
    vec = mat.createVecLeft()
    vec.array[:] = b[start:end]
    return mat, vec


def main(out: str) -> None:
    comm = MPI.COMM_WORLD
    family = Darcy.square(24, CoefficientSpec(kind="lognormal"))
    systems = [family.system(family.sample(0, i)) for i in range(3)]
    report = {"native": native.kernels() is not None, "ranks": comm.size, "runs": {}}
    for method, pc in (("gcrodr", "jacobi"), ("gcrodr", "bjacobi"), ("rcg", "jacobi")):
        ksp = make_ksp(method, pc, 1e-8, 2000, 30, 8, comm=PETSc.COMM_WORLD)
        runs = []
        for A, b in systems:
            mat, rhs = distributed(A, b)
            ksp.setOperators(mat)
            x = rhs.duplicate()
            ksp.solve(rhs, x)
            parts = comm.gather(x.getArray().copy(), root=0)
            runs.append(
                {
                    "reason": int(ksp.getConvergedReason()),
                    "iterations": ksp.getIterationNumber(),
                    "x": np.concatenate(parts).tolist() if comm.rank == 0 else None,
                }
            )
        report["runs"][f"{method}+{pc}"] = runs
    if comm.rank == 0:
        with open(out, "w") as handle:
            json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1])
