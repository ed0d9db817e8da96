"""`solve_sequence`: the one harness through which every method solves a chain of systems.

Timing (`seconds`) covers what a method must do per system once the matrix values are in
PETSc: preconditioner set-up, recycle-space refresh and the iterations. Filling the Mat and
recomputing the true residual afterwards are excluded, and identical for all methods.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from petsc4py import PETSc

from solvers.baselines import make_ksp
from solvers.grids import FALLBACK_PC, infer_grid
from solvers.kernels import single_threaded_blas
from solvers.multigrid import galerkin_products
from solvers.petsc import (
    MatrixSlot,
    SelfFilling,
    rigid_body_modes,
    true_relative_residual,
    vec_from_array,
)
from solvers.registry import METHODS, PRECONDITIONERS, unknown
from solvers.settings import DEFAULTS

if TYPE_CHECKING:
    from solvers.multigrid import GridHierarchy, MGSettings

_prefixes = itertools.count()
_REASONS = {v: k for k, v in vars(PETSc.KSP.ConvergedReason).items() if k.isupper()}


@dataclass
class SolveResult:
    """One system's outcome; `converged` means the recomputed residual met the tolerance."""

    x: np.ndarray
    iterations: int
    residual: float  # true ||b - A x|| / ||b||, recomputed after the solve
    converged: bool
    reason: str
    seconds: float


def reason_name(code: int) -> str:
    return _REASONS.get(code, str(code))


class _KSPRunner:
    def __init__(self, ksp: PETSc.KSP, rtol: float):
        self.ksp, self.rtol = ksp, rtol
        self.x: PETSc.Vec | None = None
        self.r: PETSc.Vec | None = None  # work vector of the residual check
        self.d: PETSc.Vec | None = None  # a direct solve's refinement step

    @property
    def pc(self) -> PETSc.PC:
        return self.ksp.getPC()

    def solve(self, A: PETSc.Mat, P: PETSc.Mat, b: PETSc.Vec, x0: np.ndarray | None) -> SolveResult:
        if self.x is None or self.x.getSize() != b.getSize():
            self.x, self.r, self.d = b.duplicate(), b.duplicate(), None
        x = self.x
        if self.ksp.getType() == "preonly":
            x0 = None  # a direct solve uses no initial guess (PETSc rejects one)
        if x0 is None:
            x.zeroEntries()
        else:
            x.setArray(x0)
        self.ksp.setInitialGuessNonzero(x0 is not None)
        start = time.perf_counter()
        self.ksp.setOperators(A, P)
        self.ksp.solve(b, x)
        seconds = time.perf_counter() - start
        its = self.ksp.getIterationNumber()
        reason = int(self.ksp.getConvergedReason())
        residual = true_relative_residual(A, b, x, self.r)
        # A recurrence can drift from the true residual: polish from the current iterate.
        # Only the solves are timed; the residual checks are not (for every method alike).
        for _ in range(2):
            if reason <= 0 or residual <= self.rtol:
                break
            start = time.perf_counter()
            if self.ksp.getType() == "preonly":
                # a factorisation takes no initial guess: one step of iterative refinement
                # instead, x += A^{-1} (b - A x), with the residual the check left in r
                self.d = self.d if self.d is not None else x.duplicate()
                self.ksp.setInitialGuessNonzero(False)
                self.ksp.solve(self.r, self.d)
                x.axpy(1.0, self.d)
            else:
                self.ksp.setInitialGuessNonzero(True)
                self.ksp.solve(b, x)
            seconds += time.perf_counter() - start
            its += self.ksp.getIterationNumber()
            reason = int(self.ksp.getConvergedReason())
            residual = true_relative_residual(A, b, x, self.r)
        converged = reason > 0 and residual <= self.rtol
        return SolveResult(
            x.getArray(readonly=True).copy(), its, residual, converged, reason_name(reason), seconds
        )


class _GcrotmkRunner:
    """scipy's GCROT(m, k), carrying its recycle space CU from system to system, with the same
    PETSc preconditioner as the other methods. Iterations are preconditioner applications."""

    def __init__(self, pc: str, rtol: float, max_iterations: int, restart: int, recycle: int):
        from solvers.petsc import configure_pc

        self.pcname, self.rtol, self.max_iterations = pc, rtol, max_iterations
        self.restart, self.recycle = restart, recycle
        self.CU: list = []
        self.pc = PETSc.PC().create(PETSc.COMM_SELF)
        # its own prefix: options set for it (multigrid's) must reach nothing else
        self.pc.setOptionsPrefix(f"pdegengcrot{next(_prefixes)}_")
        configure_pc(self.pc, pc)

    def solve(self, A: PETSc.Mat, P: PETSc.Mat, b: PETSc.Vec, x0: np.ndarray | None) -> SolveResult:
        from scipy.sparse.linalg import LinearOperator, gcrotmk

        n = b.getSize()
        xin, yout = b.duplicate(), b.duplicate()
        count = [0]

        def apply(op):
            def run(v):
                xin.setArray(np.ravel(v))
                op(xin, yout)
                return yout.getArray(readonly=True).copy()

            return run

        def precondition(v):
            count[0] += 1
            return apply(self.pc.apply)(v)

        start = time.perf_counter()
        self.pc.setOperators(A, P)
        self.pc.setUp()
        op = LinearOperator((n, n), matvec=apply(A.mult), dtype=float)
        M = LinearOperator((n, n), matvec=precondition, dtype=float)
        b_arr = b.getArray(readonly=True).copy()
        outer = max(1, self.max_iterations // max(1, self.restart))
        x, info = gcrotmk(
            op,
            b_arr,
            x0=x0,
            rtol=self.rtol,
            atol=0.0,
            maxiter=outer,
            M=M,
            m=self.restart,
            k=self.recycle,
            CU=self.CU,
            discard_C=True,
        )
        seconds = time.perf_counter() - start
        xv = vec_from_array(x)
        residual = true_relative_residual(A, b, xv)
        converged = info == 0 and residual <= self.rtol
        codes = PETSc.KSP.ConvergedReason
        reason = reason_name(codes.CONVERGED_RTOL if info == 0 else codes.DIVERGED_MAX_IT)
        return SolveResult(x, count[0], residual, converged, reason, seconds)


#: what `ChainSolver.solve` takes as a matrix (`MatrixSlot.load`)
Matrix = sp.spmatrix | PETSc.Mat | SelfFilling
#: (A, b), or (A, b, P) with P the matrix the preconditioner is built on
System = tuple[Matrix, np.ndarray] | tuple[Matrix, np.ndarray, Matrix]


class ChainSolver:
    """Solves systems one after another, carrying recycled information from each to the next.

    For chains whose systems are not known in advance (a time step's right-hand side depends
    on the previous solution): call `solve(A, b)` per system. `solve_sequence` is a loop over
    this. Passing the same matrix object again tells PETSc the operator is unchanged, so
    factorisations, preconditioners and GCRO-DR's C = A U are kept.

    `grid` is the shape of the unknowns as an array (the interior nodes of the families' node
    grid, C order), which a geometric preconditioner (`pc: mg`) is built on; without it the
    grid is inferred from the first matrix's stencil (`solvers.grids.infer_grid`). The
    multigrid hierarchy is built once, here or at the first solve, and reused by every solve
    of the chain. On a grid that coarsens too little `mg` runs `gamg` instead: `pc` then
    names what runs and `note` says why. `multigrid` (`solvers.multigrid.MGSettings`)
    overrides the measured smoother and cycle.

    A vector-valued operator with d unknowns per node, interleaved (elasticity), passes
    `block_size` d (PETSc's block size of the matrix) and, for GAMG, `rigid_body_coordinates`
    (nodes, d), the coordinates of the nodes in the order of the unknowns: the matrix then
    carries their rigid-body modes as its near-null space (`MatSetNearNullSpace`), which GAMG
    builds its coarse spaces from. Both are set once: the nodes never change along a chain.
    """

    def __init__(
        self,
        method: str = "gcrodr",
        pc: str = "jacobi",
        rtol: float = DEFAULTS.rtol,
        restart: int = DEFAULTS.restart,
        recycle: int = DEFAULTS.recycle,
        warm_start: bool = False,
        max_iterations: int = DEFAULTS.max_iterations,
        guess: str | None = None,
        options: dict[str, str] | None = None,
        grid: tuple[int, ...] | None = None,
        multigrid: MGSettings | None = None,
        block_size: int | None = None,
        rigid_body_coordinates: np.ndarray | None = None,
        comm=PETSc.COMM_SELF,
    ):
        if method not in METHODS:
            raise unknown("method", method, METHODS)
        #: the ranks that solve each system together (`solvers.distributed`: matrices and
        #: right-hand sides are then each rank's rows, `grid` the whole grid's shape)
        self.comm = comm
        petsc_pc, parallel_note = pc, None
        if comm.getSize() > 1:
            from solvers.registry import parallel_solver

            petsc_pc, parallel_note = parallel_solver(method, pc, comm.getSize())
            if rigid_body_coordinates is not None:
                raise ValueError("a near-null space across ranks is not supported")
        if METHODS[method].integrator:  # solves no linear system: the family runs it
            usable = {k: v for k, v in METHODS.items() if not v.integrator}
            raise ValueError(
                f"method {method!r} integrates the periodic families (solvers.spectral) and "
                f"solves no linear system (allowed: {', '.join(usable)})"
            )
        if not METHODS[method].ksp:  # scipy's gcrotmk, with a PETSc preconditioner
            self._runner = _GcrotmkRunner(pc, rtol, max_iterations, restart, recycle)
        else:
            ksp = make_ksp(method, pc, rtol, max_iterations, restart, recycle, guess, options, comm)
            if petsc_pc != pc:  # ILU/ICC across ranks: one block per rank (parallel_solver)
                _use_block_jacobi(ksp.getPC(), pc)
            self._runner = _KSPRunner(ksp, rtol)
        # a direct solve factorises whatever `pc` says; an iterative one has a known `pc` here
        entry = PRECONDITIONERS.get(pc) if not METHODS[method].direct else None
        #: the preconditioner that runs (`gamg` where `mg`'s grid coarsens too little,
        #: `bjacobi` for ILU or ICC across ranks)
        self.pc = petsc_pc
        #: why `pc` is not what was asked for, or what it means across ranks, in one line
        #: (None when it is just that)
        self.note: str | None = parallel_note
        #: the multigrid hierarchy of `pc: mg` (None before the first solve without `grid`)
        self.hierarchy: GridHierarchy | None = None
        self._wants_operator = entry is not None and entry.own_operator
        self._wants_splits = entry is not None and entry.split
        self._needs_grid = entry is not None and entry.geometric
        self._multigrid = multigrid
        self.warm_start = warm_start
        if rigid_body_coordinates is not None:
            block_size = block_size or np.shape(rigid_body_coordinates)[1]
        #: the near-null space attached to every Mat of the chain (None: PETSc's default)
        self.near_null_space = (
            rigid_body_modes(rigid_body_coordinates) if rigid_body_coordinates is not None else None
        )
        #: unknowns per node, interleaved: the dofs of `pc: mg`'s hierarchy as well
        self.block_size = block_size or 1
        layout = {
            "block_size": self.block_size,
            "near_null_space": self.near_null_space,
            "comm": comm,
        }
        self._slot, self._pslot = MatrixSlot(**layout), MatrixSlot(**layout)
        self._previous: np.ndarray | None = None
        if self._needs_grid and grid is not None:
            self._build_hierarchy(tuple(grid))
        elif self._needs_grid and comm.getSize() > 1:  # inferring it reads row 0: one rank's
            raise ValueError(f"pc {pc} across ranks needs ChainSolver(grid=<the whole grid>)")

    @property
    def wants_preconditioner_operator(self) -> bool:
        """Whether the preconditioner is built on a family's preconditioning matrix where it
        has one (`Preconditioner.own_operator`): pass it as `solve(..., P=...)`."""
        return self._wants_operator

    @property
    def wants_field_splits(self) -> bool:
        """Whether the preconditioner is a block one (`pc: fieldsplit`) still waiting for its
        blocks: pass them to `use_field_splits` before the first solve."""
        return self._wants_splits

    def use_field_splits(self, splits: dict[str, np.ndarray], velocity_pc: str | None = None):
        """Build the block preconditioner on these blocks of unknowns (name -> indices, the
        primal block first: `solvers.fieldsplit`); once per chain, the blocks never change."""
        from solvers.fieldsplit import VELOCITY_PC, configure_fieldsplit

        configure_fieldsplit(self._runner.pc, splits, velocity_pc or VELOCITY_PC)
        self._wants_splits = False

    def use_factor_ordering(self, ordering: str, nonzero_diagonal: bool = False) -> None:
        """For a factorisation, the fill-reducing ordering (PETSc MatOrderingType) instead of
        nested dissection, and `nonzero_diagonal`: permute rows so no diagonal entry is zero
        (PCFactorReorderForNonzeroDiagonal), for PETSc's LU, which does not pivot, on a
        saddle point's zero block; a no-op for other preconditioners."""
        pc = self._runner.pc
        if pc.getType() in ("lu", "cholesky"):
            pc.setFactorOrdering(ordering, nzdiag=0.0 if nonzero_diagonal else None)

    def _build_hierarchy(self, grid: tuple[int, ...]) -> None:
        from solvers.multigrid import configure_multigrid

        build = coarsening = None
        if self._multigrid is not None and self._multigrid.layout == "cells":
            from solvers.cells import coarsen_cells, shared_cell_hierarchy

            build, coarsening = shared_cell_hierarchy, coarsen_cells
        if self.comm.getSize() > 1 and coarsening is not None:
            raise ValueError("pc mg on a cell grid runs on one rank (no slab hierarchy of cells)")
        if self.comm.getSize() > 1:  # every level dealt over the ranks in slabs
            from solvers.distributed import DistributedHierarchy

            def build(shape, max_levels, dof):
                return DistributedHierarchy(shape, self.comm, max_levels, dof)

        self.hierarchy, fallback = configure_multigrid(
            self._runner.pc, grid, self._multigrid, self.block_size, build, coarsening
        )
        if fallback is not None:
            self.pc, self.note = FALLBACK_PC, fallback
        self._needs_grid = False

    def _infer_grid(self, mat: PETSc.Mat) -> None:
        cols, _ = mat.getRow(0)
        grid = infer_grid(mat.getSize()[0], cols.tolist())
        if grid is None:
            raise ValueError(
                f"pc {self.pc}: the grid of this {mat.getSize()[0]}-unknown matrix cannot be "
                "read from its stencil; pass ChainSolver(grid=<shape of the unknowns>)"
            )
        self._build_hierarchy(grid)

    @property
    def context(self) -> object | None:
        """Our solver object behind a `python` KSP (GCRODR, RecycledCG), for inspecting or
        seeding its recycled space; None for PETSc's own methods and gcrotmk."""
        ksp = getattr(self._runner, "ksp", None)
        return ksp.getPythonContext() if ksp is not None and ksp.getType() == "python" else None

    def solve(
        self,
        A: Matrix,
        b: np.ndarray | PETSc.Vec,
        x0: np.ndarray | None = None,
        P: Matrix | None = None,
    ) -> SolveResult:
        """Solve A x = b; `x0` (or, with warm starts, the last solution) is the first guess.
        `P` (same sparsity from system to system, like A) is the matrix the preconditioner is
        built on, A when None; the residual and convergence are always those of A."""
        if self._wants_splits:
            raise ValueError(f"pc {self.pc}: call use_field_splits(...) before the first solve")
        mat = self._slot.load(A)
        pmat = mat if P is None else self._pslot.load(P)
        if self._needs_grid:
            self._infer_grid(mat)
        bvec = (
            b if isinstance(b, PETSc.Vec) else vec_from_array(np.asarray(b, dtype=float), self.comm)
        )
        if x0 is None and self.warm_start:
            x0 = self._previous
        # One BLAS thread for every method (PETSc's vector kernels call the system BLAS too):
        # the same sums in the same order on every engine, and no method gets extra threads.
        with single_threaded_blas(), galerkin_products(self.hierarchy, pmat):
            result = self._runner.solve(mat, pmat, bvec, x0)
        if result.converged:
            self._previous = result.x
        return result


def _use_block_jacobi(pc: PETSc.PC, block_pc: str) -> None:
    """Block Jacobi with one `block_pc` (ilu, icc) block per rank: what an incomplete
    factorisation means on a parallel matrix (`solvers.distributed.parallel_solver`)."""
    from solvers.multigrid import _set_options

    pc.setType("bjacobi")
    _set_options(pc, {"sub_pc_type": block_pc})


def solve_sequence(
    systems: Iterable[System],
    method: str = "gcrodr",
    pc: str = "jacobi",
    rtol: float = DEFAULTS.rtol,
    restart: int = DEFAULTS.restart,
    recycle: int = DEFAULTS.recycle,
    warm_start: bool = False,
    max_iterations: int = DEFAULTS.max_iterations,
    guess: str | None = None,
    options: dict[str, str] | None = None,
    on_result: Callable[[int, SolveResult], None] | None = None,
    grid: tuple[int, ...] | None = None,
    multigrid: MGSettings | None = None,
) -> list[SolveResult]:
    """Solve the systems in the order given, carrying recycled information between them.

    `systems` may be a generator (systems are assembled lazily, one held at a time).
    `warm_start` starts each solve from the previous converged solution (off by default so
    that recycling is measured on its own). `guess` selects PETSc's initial-guess builders
    ("fischer", "pod") for the PETSc methods. `options` go to PETSc's options database.
    A system (A, b, P) builds the preconditioner on P; `grid` and `multigrid` are those of
    `ChainSolver`.
    """
    chain = ChainSolver(
        method,
        pc,
        rtol,
        restart,
        recycle,
        warm_start,
        max_iterations,
        guess,
        options,
        grid=grid,
        multigrid=multigrid,
    )
    results: list[SolveResult] = []
    for i, (A, b, *P) in enumerate(systems):
        results.append(chain.solve(A, b, P=P[0] if P else None))
        if on_result is not None:
            on_result(i, results[-1])
    return results
