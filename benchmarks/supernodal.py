"""CHOLMOD (supernodal Cholesky, SuiteSparse) against PETSc's own Cholesky, through the one
solve harness (`ChainSolver("direct", ...)`, symbolic factorisation reused along the chain),
on Darcy 12 / 3 in 2D and 3D: 4 samples per size, seconds per sample after the first.

Needs a PETSc configured with SuiteSparse, which pdegen's own build is not (docs/benchmarks.md,
"Supernodal direct solvers" says why and how this was measured): build one into a scratch
environment with Debian's libsuitesparse-dev and

    PETSC_CONFIGURE_OPTIONS="<pdegen's options> --with-suitesparse-include=/usr/include/suitesparse
      --with-suitesparse-lib=[-lspqr,-lumfpack,-lklu,-lcholmod,-lbtf,-lccolamd,-lcolamd,-lcamd,-lamd,-lsuitesparseconfig]"
    pip wheel --no-cache-dir --no-deps petsc==3.26.1    (then petsc4py against it)

and run this file with that environment's Python and PYTHONPATH=<the repository>.
"""

from __future__ import annotations

import sys

import numpy as np
from petsc4py import PETSc

from pdegen.families import Darcy
from pdegen.families.darcy import DarcyProblem
from pdegen.specs import CoefficientSpec
from solvers import ChainSolver

THRESHOLD = CoefficientSpec(kind="threshold", alpha=2.0, tau=3.0, high=12.0, low=3.0)
CASES = [(2, n) for n in (127, 255, 419, 511, 1023)] + [(3, n) for n in (15, 31)]
SOLVERS = {"petsc": ("cholesky", None), "cholmod": ("cholesky", "cholmod")}


def main() -> None:
    if not PETSc.Sys.hasExternalPackage("cholmod"):
        sys.exit("this PETSc has no SuiteSparse: see this file's docstring")
    print("| dim | n | PETSc Cholesky | CHOLMOD | PETSc / CHOLMOD |\n|---|---|---|---|---|")
    for dim, n in CASES:
        family = Darcy(n, dim, DarcyProblem(THRESHOLD))
        systems = [family.system(family.sample(0, i)) for i in range(4)]
        after = {}
        for label, (pc, package) in SOLVERS.items():
            options = {"pc_factor_mat_solver_type": package} if package else None
            chain = ChainSolver("direct", pc, rtol=1e-8, options=options)
            results = [chain.solve(A, b) for A, b in systems]
            assert all(r.converged for r in results), label
            after[label] = float(np.mean([r.seconds for r in results[1:]]))
        ratio = after["petsc"] / after["cholmod"]
        print(
            f"| {dim}D | {n} | {after['petsc'] * 1e3:.1f} ms | {after['cholmod'] * 1e3:.1f} ms "
            f"| {ratio:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
