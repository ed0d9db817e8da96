"""The solver defaults, in one place: what a recipe's `solver:` section means when it says
nothing, and what `ChainSolver`, `solve_sequence`, `make_ksp` and the benchmarks run unless
told otherwise. Imports nothing (recipe validation reads it without starting PETSc).

Why these values: rtol 1e-8 is the relative residual every dataset is solved to and every
comparison in docs/benchmarks.md uses; GCRO-DR(40, 20) is the restart length and recycled-space
size measured best on the sorted chains ("Recycling against baselines"); 10000 iterations is a
ceiling that no converging solve in the benchmarks approaches, so hitting it means a failure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SolverSettings:
    """Tolerance and sizes of an iterative solve (a direct solve reads none but `rtol`'s
    check of its residual)."""

    #: ||b - A x||_2 <= rtol ||b||_2, the one convergence test of every method
    rtol: float = 1e-8
    #: the iteration limit of one solve
    max_iterations: int = 10000
    #: GMRES's and GCRO-DR's cycle length (GCRO-DR's includes its recycled vectors)
    restart: int = 40
    #: vectors GCRO-DR carries from one solve to the next
    recycle: int = 20
    #: vectors recycling CG carries (its own measured default: solvers/rcg.py)
    rcg_recycle: int = 10


DEFAULTS = SolverSettings()
