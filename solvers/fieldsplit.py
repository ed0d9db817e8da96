"""`pc: fieldsplit`: PETSc's PCFIELDSPLIT as the block preconditioner of a saddle point.

For K = [[A, B^T], [B, 0]] (velocity, pressure) the preconditioner is block diagonal,
diag(A~^-1, S~^-1) (PCFIELDSPLIT, Schur type, `-pc_fieldsplit_schur_fact_type diag`), with:
- A~^-1: one application of `velocity_pc` to A (`preonly`, so the outer Krylov method sees a
  fixed linear operator): PETSc's algebraic multigrid by default, an exact sparse LU where a
  family measured it faster (2D Stokes);
- S~: the pressure block of the preconditioning matrix (`-pc_fieldsplit_schur_precondition
  a11`), where the family puts minus its (1/nu)-scaled pressure mass matrix, a diagonal
  matrix spectrally equivalent to the Schur complement S = -B A^-1 B^T on a stable
  discretisation (Silvester and Wathen, SIAM J. Numer. Anal. 31, 1994; Elman, Silvester and
  Wathen, "Finite Elements and Fast Iterative Solvers", ch. 4), solved exactly by Jacobi.
PETSc scales the Schur block by -1 in the diagonal factorisation
(`-pc_fieldsplit_schur_scale`, default -1), so the preconditioner diag(A~, M/nu)^-1 is
symmetric positive definite: what MINRES needs (docs/benchmarks.md, "Stokes", measures the
velocity preconditioners).
"""

from __future__ import annotations

import numpy as np
from petsc4py import PETSc

#: what preconditions the velocity block unless the caller names one: the scalable choice
#: (a family may measure better: `Stokes.velocity_pc`, docs/benchmarks.md, "Stokes")
VELOCITY_PC = "gamg"


def configure_fieldsplit(
    pc: PETSc.PC, splits: dict[str, np.ndarray], velocity_pc: str = VELOCITY_PC
) -> None:
    """Make `pc` the block diagonal Schur preconditioner over `splits` (name -> unknowns,
    the primal block first, the constraint block second).

    The sub-solvers are named in the options database under the PC's prefix and stay there
    for the PC's life: PCFIELDSPLIT creates them at its first set-up and reads them then.
    """
    if len(splits) != 2:
        raise ValueError(f"fieldsplit needs two blocks (primal, constraint), got {list(splits)}")
    pc.setType("fieldsplit")
    pc.setFieldSplitIS(
        *[
            (name, PETSc.IS().createGeneral(np.asarray(rows, dtype=PETSc.IntType), comm=pc.comm))
            for name, rows in splits.items()
        ]
    )
    pc.setFieldSplitType(PETSc.PC.CompositeType.SCHUR)
    pc.setFieldSplitSchurFactType(PETSc.PC.FieldSplitSchurFactType.DIAG)
    pc.setFieldSplitSchurPreType(PETSc.PC.FieldSplitSchurPreType.A11)
    primal, constraint = splits
    prefix = pc.getOptionsPrefix() or ""
    db = PETSc.Options()
    for block, sub_pc in ((primal, velocity_pc), (constraint, "jacobi")):
        db.setValue(f"{prefix}fieldsplit_{block}_ksp_type", "preonly")
        db.setValue(f"{prefix}fieldsplit_{block}_pc_type", sub_pc)
    pc.setFromOptions()
