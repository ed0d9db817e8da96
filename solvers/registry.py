"""The solver choices a user can name (methods, preconditioners, orderings), declared once.

Recipe validation (`pdegen.recipe.schema`, which adds "auto"), the solve harness
(`solvers.sequence`, `solvers.baselines`, `solvers.petsc`), ordering (`solvers.ordering`), the
family contract (`pdegen.families.base`) and the tests all read these tables, so a new method,
preconditioner or ordering is one entry here plus the code that runs it. Each entry carries
what its readers need to decide without a list of names of their own: which operators it is
valid for, whether it carries information from one system to the next, whether it is a
factorisation. Nothing here imports PETSc, so a recipe is validated without starting it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Properties of an operator that a method or preconditioner can rely on; families declare
#: theirs (`Family.symmetric`, `Family.positive_definite`).
SYMMETRIC = "symmetric"
POSITIVE_DEFINITE = "positive_definite"
SPD = frozenset({SYMMETRIC, POSITIVE_DEFINITE})


@dataclass(frozen=True)
class Method:
    """A method of the solve harness (`solvers.sequence.ChainSolver`)."""

    summary: str
    #: the operator properties it relies on (CG's recurrences need symmetry and positivity)
    requires: frozenset[str] = frozenset()
    #: built by `solvers.baselines.make_ksp` as a PETSc KSP (False: runs outside PETSc's KSP)
    ksp: bool = True
    #: carries information (a recycled space) from one system to the next, so the order of
    #: the chain matters to it
    recycles: bool = False
    #: a factorisation: its preconditioner must be one (`Preconditioner.factorisation`)
    direct: bool = False
    #: the preconditioners it can run with, when not every one (MINRES's recurrence needs a
    #: symmetric positive definite preconditioner); None: any
    pcs: frozenset[str] | None = None
    #: a time integrator of its own that solves no linear system (`solvers.spectral`): it
    #: runs only for families that have none (`Family.linear_systems`), and those run only it
    integrator: bool = False


@dataclass(frozen=True)
class Preconditioner:
    """A preconditioner, by its pdegen name."""

    petsc_type: str  # PCType
    summary: str
    requires: frozenset[str] = frozenset()
    #: an exact factorisation, which is what `method: direct` runs
    factorisation: bool = False
    #: built on the node grid (geometric multigrid): the harness needs the grid's shape,
    #: which pdegen passes (`ChainSolver(grid=...)`) and bare matrices let it infer
    geometric: bool = False
    #: built on the family's preconditioning matrix where it has one
    #: (`Family.preconditioner_operator`: Helmholtz's shifted Laplacian), not on A itself
    own_operator: bool = False
    #: a block preconditioner over the family's blocks of unknowns (`Family.field_splits`):
    #: only for families that declare them
    split: bool = False


@dataclass(frozen=True)
class Ordering:
    """A way of ordering the systems into a chain (`solvers.ordering.order_systems`)."""

    summary: str


METHODS: dict[str, Method] = {
    "gcrodr": Method("GCRO-DR, GMRES with deflated restarting and recycling", recycles=True),
    "rcg": Method("recycling (deflated) conjugate gradients", requires=SPD, recycles=True),
    "gmres": Method("PETSc's restarted GMRES, right-preconditioned"),
    "cg": Method("PETSc's conjugate gradients", requires=SPD),
    "minres": Method(
        "PETSc's MINRES, for symmetric indefinite operators",
        requires=frozenset({SYMMETRIC}),
        pcs=frozenset({"none", "jacobi", "icc", "gamg", "mg", "fieldsplit"}),
    ),
    "direct": Method("a sparse factorisation (PETSc LU or Cholesky)", direct=True),
    "gcrotmk": Method("scipy's GCROT(m, k), carrying its recycle space", ksp=False, recycles=True),
    "spectral": Method(
        "Fourier pseudo-spectral in space, ETDRK4 in time (periodic families)",
        ksp=False,
        integrator=True,
    ),
}

PRECONDITIONERS: dict[str, Preconditioner] = {
    "none": Preconditioner("none", "no preconditioning"),
    "jacobi": Preconditioner("jacobi", "diagonal scaling"),
    "sor": Preconditioner("sor", "symmetric successive over-relaxation"),
    "bjacobi": Preconditioner("bjacobi", "block Jacobi"),
    "asm": Preconditioner("asm", "additive Schwarz"),
    "ilu": Preconditioner("ilu", "incomplete LU, ILU(0)"),
    "icc": Preconditioner("icc", "incomplete Cholesky, ICC(0)", requires=SPD),
    "gamg": Preconditioner("gamg", "PETSc's algebraic multigrid"),
    "mg": Preconditioner(
        "mg",
        "geometric multigrid on the node grid (Galerkin PCMG; Helmholtz: on the shifted Laplacian)",
        geometric=True,
        own_operator=True,
    ),
    "fieldsplit": Preconditioner(
        "fieldsplit",
        "block diagonal Schur-complement preconditioner over the family's blocks (PCFIELDSPLIT)",
        own_operator=True,
        split=True,
    ),
    "lu": Preconditioner("lu", "sparse LU (nested dissection)", factorisation=True),
    "cholesky": Preconditioner(
        "cholesky", "sparse Cholesky (nested dissection)", requires=SPD, factorisation=True
    ),
}

ORDERINGS: dict[str, Ordering] = {
    "none": Ordering("generation order"),
    "greedy": Ordering("nearest-neighbour chain on exact distances, O(N^2 d)"),
    "fast": Ordering("nearest-neighbour chain through a KD-tree on 8 principal components"),
}


#: the methods that run on a parallel communicator (PETSc's own KSPs)
PARALLEL_METHODS = ("cg", "gmres", "minres", "gcrodr", "rcg")
#: preconditioners that become another in parallel: name -> (PETSc type, sub-PC, the words)
PARALLEL_SUBSTITUTES = {
    "ilu": ("bjacobi", "ilu", "block Jacobi with one ILU(0) block per rank"),
    "icc": ("bjacobi", "icc", "block Jacobi with one ICC(0) block per rank"),
}
#: preconditioners that keep their name but sweep each rank's rows only
LOCAL_SWEEPS = ("sor", "mg")


def parallel_solver(method: str, pc: str, ranks: int) -> tuple[str, str | None]:
    """(the PC type that runs, a one-line note of what changes meaning, None if nothing) for
    `method` + `pc` on `ranks` ranks; ValueError, in one line, for what cannot run there."""
    if method not in PARALLEL_METHODS:
        if METHODS[method].direct:
            why = (
                "a sparse factorisation needs a parallel direct package (MUMPS, SuperLU_dist) "
                "this PETSc build lacks"
            )
        elif METHODS[method].integrator:
            why = "it integrates the periodic families, which solve each sample on one rank"
        else:
            why = "scipy's GCROT(m, k) works on one process's arrays"
        raise ValueError(
            f"method {method!r} cannot solve one system across {ranks} ranks: {why} "
            f"(allowed: {', '.join(PARALLEL_METHODS)})"
        )
    if pc in PRECONDITIONERS and PRECONDITIONERS[pc].factorisation:
        raise ValueError(
            f"pc {pc!r} cannot run across {ranks} ranks: a parallel factorisation needs MUMPS "
            "or SuperLU_dist, which this PETSc build lacks (mg, gamg, bjacobi, asm, jacobi run)"
        )
    if pc in PARALLEL_SUBSTITUTES:
        return PARALLEL_SUBSTITUTES[pc][0], (
            f"pc {pc} runs as {PARALLEL_SUBSTITUTES[pc][2]} on {ranks} ranks (PETSc has no "
            "parallel incomplete factorisation)"
        )
    if pc in LOCAL_SWEEPS:
        return pc, (
            f"pc {pc}'s Gauss-Seidel sweeps run on each rank's rows on {ranks} ranks "
            "(processor-local), so iterations differ from one rank's"
        )
    return pc, None


def describe_operator(properties: frozenset[str] | set[str]) -> str:
    """Words for an operator with these properties, for error messages."""
    definite = POSITIVE_DEFINITE in properties
    if SYMMETRIC in properties:
        return "symmetric positive definite" if definite else "symmetric but not positive definite"
    return "nonsymmetric" + (" (positive definite)" if definite else "")


def unknown(kind: str, name: object, table: dict) -> ValueError:
    """The error for a name that is not registered, listing the ones that are."""
    return ValueError(f"unknown {kind} {name!r} (allowed: {', '.join(table)})")


__all__ = [
    "METHODS",
    "ORDERINGS",
    "POSITIVE_DEFINITE",
    "PRECONDITIONERS",
    "SPD",
    "SYMMETRIC",
    "Method",
    "Ordering",
    "Preconditioner",
    "PARALLEL_METHODS",
    "describe_operator",
    "parallel_solver",
    "unknown",
]
