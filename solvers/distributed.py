"""One system across the ranks of a communicator (several ranks per sample, issue 26).

**Layout.** The unknowns keep their natural C order (the first axis slowest), and each rank
owns a contiguous slab of planes along the first axis (`SlabLayout`): PETSc's row ownership
of a parallel AIJ matrix is contiguous, so the slab of rank r is exactly its block of rows,
the solution gathers to the root by concatenation, and no permutation to PETSc's DMDA order
is needed. Why slabs and not a DMDA's boxes: the families assemble their operators as numpy
stencils in natural order, and a slab of planes is a node sub-grid that the same stencil code
assembles (`pdegen.discretisation.operators.diffusion_rows`). Slabs limit a sample to as many
ranks as its grid has planes (128 planes: 128 ranks), far beyond what one sample needs; the
halo a slab exchanges (two planes) grows with N^(d-1) instead of a box's smaller surface,
which matters only at hundreds of ranks per sample.

**Multigrid.** The levels are the sequential hierarchy's (`solvers.grids.coarsen`), each
level's planes dealt to the ranks the same way; the interpolations are the tensor products of
1D linear interpolation at the nodes' positions (`solvers.multigrid.positions_interpolation`,
which equals PETSc's DMDA interpolation on uniform levels), each rank building only its rows
(`interpolation_rows`):
kron(P_0[first:last], P_1, ...). PCMG forms the Galerkin coarse operators in parallel (MPIAIJ
PtAP) and solves the coarsest level redundantly: every rank factorises the gathered coarse
matrix (`PCREDUNDANT` with LU), since this PETSc has no parallel direct solver.

**What changes meaning in parallel** (`solvers.registry.parallel_solver`, stated in one
line, never silently): ILU and ICC become block Jacobi with one ILU(0) / ICC(0) block per
rank; SOR and the multigrid smoothers sweep each rank's rows (processor-local Gauss-Seidel),
so iterations differ from one rank's; direct factorisations need a parallel package this
build lacks, and scipy's GCROT(m, k) works on one process's arrays: those are refused for
k > 1. Our GCRO-DR and recycling CG run: their compiled loops sum inner products over the
operator's communicator (`solvers.kernels.Workspace`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from petsc4py import PETSc

from solvers.grids import Coarsening, coarsen
from solvers.multigrid import Levels, hierarchy_positions
from solvers.multigrid import interpolation_rows as local_interpolation


def plane_ranges(planes: int, ranks: int) -> list[tuple[int, int]]:
    """Contiguous [first, last) plane ranges of `planes` planes over `ranks` ranks, the
    first `planes % ranks` ranks one plane more (empty ranges when planes < ranks)."""
    base, extra = divmod(planes, ranks)
    bounds = np.cumsum([0] + [base + (r < extra) for r in range(ranks)])
    return [(int(bounds[r]), int(bounds[r + 1])) for r in range(ranks)]


@dataclass(frozen=True)
class SlabLayout:
    """Which rows of a grid's unknowns each rank owns: slabs of planes along the first axis
    of the interior `shape` (C order), with `dof` interleaved unknowns per node."""

    shape: tuple[int, ...]
    ranks: int
    dof: int = 1

    @property
    def planes(self) -> list[tuple[int, int]]:
        return plane_ranges(self.shape[0], self.ranks)

    @property
    def per_plane(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dof

    @property
    def sizes(self) -> list[int]:
        """Unknowns owned per rank, in rank order (PETSc's local sizes, Gatherv's counts)."""
        return [(last - first) * self.per_plane for first, last in self.planes]


def parallel_aij(local: sp.csr_matrix, rows: int, cols: int, comm) -> PETSc.Mat:
    """A parallel AIJ Mat from this rank's rows (global column indices); `rows` and `cols`
    are this rank's local sizes of the row and column layouts."""
    local = sp.csr_matrix(local)
    local.sum_duplicates()
    mat = PETSc.Mat().createAIJ(
        size=((rows, PETSc.DETERMINE), (cols, PETSc.DETERMINE)),
        csr=(
            local.indptr.astype(PETSc.IntType),
            local.indices.astype(PETSc.IntType),
            local.data.astype(PETSc.ScalarType),
        ),
        comm=comm,
    )
    mat.assemble()
    return mat


class DistributedHierarchy(Levels):
    """The multigrid hierarchy of `solvers.multigrid.GridHierarchy` with every level dealt
    over the ranks of `comm` in slabs (module notes): `interpolations[l - 1]` maps level l - 1
    to level l in PCMG's numbering, coarsest first, as parallel AIJ Mats."""

    def __init__(self, shape: tuple[int, ...], comm, max_levels: int | None = None, dof: int = 1):
        self.coarsening: Coarsening = coarsen(tuple(shape), max_levels)
        self.dof = dof
        if self.coarsening.levels < 2:
            raise ValueError(self.coarsening.note or f"the {shape} grid does not coarsen")
        rank, ranks = comm.getRank(), comm.getSize()
        shapes = self.coarsening.shapes
        self.positions = hierarchy_positions(shapes)
        self.layouts = [SlabLayout(s, ranks, dof) for s in shapes]
        interpolations = []
        for level in range(len(shapes) - 1):
            fine, coarse = self.layouts[level], self.layouts[level + 1]
            rows = local_interpolation(
                self.positions[level], self.positions[level + 1], fine.planes[rank], dof
            )
            interpolations.append(parallel_aij(rows, fine.sizes[rank], coarse.sizes[rank], comm))
        self.interpolations: list[PETSc.Mat] = interpolations[::-1]


def gather_natural(comm, local: np.ndarray, sizes: list[int], root: int = 0) -> np.ndarray | None:
    """The slabs of every rank (`SlabLayout.sizes`), concatenated in rank order on `root`:
    the whole vector in natural order there, None elsewhere."""
    local = np.ascontiguousarray(local, dtype=np.float64)
    mpi = comm.tompi4py()
    whole = np.empty(sum(sizes)) if mpi.Get_rank() == root else None
    mpi.Gatherv(local, (whole, sizes) if whole is not None else None, root=root)
    return whole


def send_planes(comm, whole: np.ndarray | None, bounds: list[tuple[int, int]], shape, root=0):
    """Each rank's planes [first, last) of an array that only `root` holds (`whole`), whose
    planes have the shape `shape` (the array's shape after its first axis): root sends every
    other rank its part, point to point (the parts may overlap, which Scatterv forbids)."""
    mpi = comm.tompi4py()
    rank = mpi.Get_rank()
    if rank == root:
        requests = [
            mpi.Isend(np.ascontiguousarray(whole[first:last]), dest=r, tag=71)
            for r, (first, last) in enumerate(bounds)
            if r != root
        ]
        first, last = bounds[root]
        mine = np.array(whole[first:last])
        from mpi4py import MPI

        MPI.Request.Waitall(requests)
        return mine
    first, last = bounds[rank]
    mine = np.empty((last - first, *shape))
    mpi.Recv(mine, source=root, tag=71)
    return mine


__all__ = [
    "DistributedHierarchy",
    "SlabLayout",
    "gather_natural",
    "local_interpolation",
    "parallel_aij",
    "plane_ranges",
    "send_planes",
]
