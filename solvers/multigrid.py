"""Geometric multigrid (`pc: mg`): PETSc's PCMG on DMDAs of the families' node grid.

**The grid as DMDAs.** The finest DMDA is the families' node grid itself, boundary nodes
included (n + 2 vertices per axis); each coarser one has half the cells of the one above,
or (c + 1) / 2 of an odd count c (uneven halving; `solvers.grids` states the
levels rule). From the first uneven halving down, the interpolations are our own tensor
products of 1D linear interpolation at the nodes' true positions (`positions_interpolation`);
above it, on uniform levels, they are PETSc's. PETSc's Q1 interpolation between two
of them (`DMCreateInterpolation`) is restricted to the interior nodes, rows and columns
(`MatCreateSubMatrix`): dropping the coarse boundary columns is exact because the unknowns
vanish there (Dirichlet values are lifted into b), and what is left is the classical
bilinear (trilinear) interpolation of the vertex-centred Dirichlet problem.

**Ordering.** A single-process DMDA numbers its nodes naturally with its FIRST dimension
fastest; our unknowns are in C order with the LAST array axis fastest. So the DMDA is created
with the sizes reversed (DMDA x = our last axis) and the interior index sets are read in C
order: no permutation, and `tests/test_multigrid.py` checks the mapping on a rectangular grid.

**Galerkin.** Only the finest operator is ours (the assembled matrix, or the family's
preconditioning matrix, e.g. Helmholtz's shifted Laplacian); every coarser one is
R A P with R = P^T (`-pc_mg_galerkin both`). Rediscretising a jumping coefficient (Darcy's
12 / 3 threshold) on a coarse grid would average it wrongly, while the Galerkin product is
the coarse operator that is exact in energy for the interpolated space, so it follows the
jumps wherever P lets it. PCMG applies the hierarchy to the preconditioning matrix (PETSc's
default `PCSetUseAmat(false)`), so with A != P the V-cycle approximates P^{-1}.

**Reuse.** The DMDAs, the interpolations and the PCMG levels are built once per chain (one
`ChainSolver`), and the MatrixSlot refills the same fine Mat in place sample after sample, so
PETSc sees a new matrix state with the same nonzero state: PCMG then redoes only the numeric
PtAP of each level (MAT_REUSE_MATRIX), the smoothers' eigenvalue estimates and the coarse LU's
numeric factorisation; the symbolic PtAP and the coarse symbolic factorisation happen once.

**Smoother and cycle** (`MGSettings`, defaults chosen by measurement: docs/benchmarks.md,
"Multigrid smoothers", `benchmarks/mg_smoothers.py`): one symmetric Gauss-Seidel sweep
(Richardson + PETSc's SSOR, omega = 1) before and after the coarse correction, a V-cycle.
It beat Chebyshev(2)/Jacobi, whose eigenvalue estimates (10 GMRES steps per level) are
redone for every sample, in time per sample on 2D and 3D Darcy 12 / 3, and a W-cycle saved
no iterations worth its cost. The V-cycle with a symmetric smoother is a symmetric positive
definite preconditioner for an SPD operator, so CG and recycling CG can use it. Families
choose their own (`Family.multigrid_smoother`): Helmholtz and 2D Darcy run `gs`, one forward
Gauss-Seidel sweep down and one backward up, which is still symmetric and was faster there.
The coarsest level is factorised (LU, nested dissection).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from petsc4py import PETSc

from solvers.grids import FALLBACK_PC, Coarsening, coarse_nodes, coarsen, is_exact_step

#: smoother name -> (KSP type, PC type) of every level but the coarsest
SMOOTHERS: dict[str, tuple[str, str]] = {
    "chebyshev": ("chebyshev", "jacobi"),  # Chebyshev polynomial in D^{-1} A
    "sor": ("richardson", "sor"),  # symmetric Gauss-Seidel (SSOR, omega = 1) sweeps
    "chebyshev-sor": ("chebyshev", "sor"),  # PETSc's own default
    # Gauss-Seidel forward before the coarse correction and backward after it: the V-cycle
    # stays symmetric at half the sweeps of "sor" (each half-sweep is a full SSOR there)
    "gs": ("richardson", "sor"),
}
#: smoother name -> (PCSOR option of the down smoother, of the up smoother), where they differ
SWEEP_DIRECTIONS: dict[str, tuple[str, str]] = {"gs": ("pc_sor_forward", "pc_sor_backward")}
#: the same on several ranks: PETSc's parallel SOR sweeps each rank's rows only
LOCAL_SWEEP_DIRECTIONS: dict[str, tuple[str, str]] = {
    "gs": ("pc_sor_local_forward", "pc_sor_local_backward")
}
CYCLES = {"v": PETSc.PC.MGCycleType.V, "w": PETSc.PC.MGCycleType.W}
#: PETSc's algorithm for the Galerkin products P^T A P, by dimension (`galerkin_products`);
#: where absent, PETSc's default
GALERKIN_ALGORITHM: dict[int, str] = {3: "rap"}


@dataclass(frozen=True)
class MGSettings:
    """How the PCMG cycle smooths: `sweeps` smoother iterations before and after each coarse
    correction, a V or W cycle, and at most `max_levels` levels (None: as many as the levels
    rule gives)."""

    smoother: str = "sor"
    sweeps: int = 1
    cycle: str = "v"
    max_levels: int | None = None
    #: what the unknowns are: the interior nodes of a node grid, or the cells of a
    #: cell-centred one (`solvers.cells`)
    layout: str = "nodes"

    def __post_init__(self) -> None:
        if self.smoother not in SMOOTHERS:
            allowed = ", ".join(SMOOTHERS)
            raise ValueError(f"unknown smoother {self.smoother!r} (allowed: {allowed})")
        if self.cycle not in CYCLES:
            raise ValueError(f"unknown cycle {self.cycle!r} (allowed: {', '.join(CYCLES)})")
        if self.layout not in ("nodes", "cells"):
            raise ValueError(f"unknown layout {self.layout!r} (allowed: nodes, cells)")
        if self.sweeps < 1 or (self.max_levels is not None and self.max_levels < 1):
            raise ValueError("sweeps and max_levels must be at least 1")


def _interior(sizes: tuple[int, ...], dof: int = 1) -> PETSc.IS:
    """The interior nodes of a node grid of `sizes` (our axis order), as natural indices of
    the DMDA created with those sizes reversed, in C order of the interior array; with `dof`
    unknowns per node (interleaved, as a DMDA numbers them), each node's `dof` indices."""
    index = np.arange(math.prod(sizes) * dof, dtype=PETSc.IntType).reshape(*sizes, dof)
    inner = index[(slice(1, -1),) * len(sizes)].ravel()
    return PETSc.IS().createGeneral(inner, comm=PETSc.COMM_SELF)


def node_grid(shape: tuple[int, ...], comm=PETSc.COMM_SELF, dof: int = 1) -> PETSc.DMDA:
    """The DMDA of the node grid whose interior is `shape` (our axis order): one vertex per
    node (`dof` unknowns on it, interleaved), boundary nodes included, sizes reversed so that
    DMDA x is our last (fastest) axis."""
    if comm.getSize() != 1:
        raise ValueError("the multigrid hierarchy is built per process (COMM_SELF)")
    da = PETSc.DMDA().create(
        dim=len(shape),
        dof=dof,
        sizes=tuple(n + 2 for n in reversed(shape)),
        stencil_width=1,
        stencil_type=PETSc.DMDA.StencilType.STAR,
        comm=comm,
    )
    da.setUp()
    return da


def linear_interpolation_1d(fine: np.ndarray, coarse: np.ndarray) -> sp.csr_matrix:
    """Linear interpolation along one axis from the coarse level's interior nodes to the fine
    level's, (fine interior) x (coarse interior), the end values zero (the Dirichlet unknowns
    vanish there). `fine` and `coarse` are the node positions, ends included, in integer
    units of the finest spacing (exact weights: 1/2, 1/3, ...); every coarse node is a fine
    node, so a fine node on one gets weight 1 and the others interpolate between the two
    coarse nodes around them."""
    x = fine[1:-1]
    cell = np.searchsorted(coarse, x, side="right") - 1  # the coarse cell holding each node
    left, right = coarse[cell], coarse[np.minimum(cell + 1, coarse.size - 1)]
    t = (x - left) / np.maximum(right - left, 1)
    rows = np.tile(np.arange(x.size), 2)
    cols = np.concatenate([cell - 1, cell])  # coarse interior index of the two ends
    weights = np.concatenate([1.0 - t, t])
    keep = (cols >= 0) & (cols < coarse.size - 2) & (weights != 0.0)
    return sp.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(x.size, coarse.size - 2))


def interpolation_rows(
    fine: list[np.ndarray], coarse: list[np.ndarray], rows: tuple[int, int], dof: int = 1
) -> sp.csr_matrix:
    """The rows of the first-axis planes [first, last) of the interpolation between two
    levels given their node positions per axis: the tensor product of
    `linear_interpolation_1d` in C order (the first axis slowest), with `dof` interleaved
    unknowns per node interpolated alike (solvers.grids, "Uneven halving"); all coarse
    columns. One rank's slab of it across ranks (`solvers.distributed`), all of it here."""
    first, last = rows
    P = linear_interpolation_1d(fine[0], coarse[0])[first:last]
    for f, c in zip(fine[1:], coarse[1:], strict=True):
        P = sp.kron(P, linear_interpolation_1d(f, c), format="csr")
    if dof > 1:
        P = sp.kron(P, sp.identity(dof), format="csr")
    P = sp.csr_matrix(P)
    P.sort_indices()
    return P


def positions_interpolation(
    fine: list[np.ndarray], coarse: list[np.ndarray], dof: int = 1
) -> PETSc.Mat:
    """The whole interpolation between two levels (`interpolation_rows`), a sequential Mat."""
    P = interpolation_rows(fine, coarse, (0, fine[0].size - 2), dof)
    return PETSc.Mat().createAIJ(
        size=P.shape,
        csr=(P.indptr.astype(PETSc.IntType), P.indices.astype(PETSc.IntType), P.data),
        comm=PETSc.COMM_SELF,
    )


def coarser_positions(positions: np.ndarray, coarse_cells: int) -> np.ndarray:
    """The coarse level's node positions along an axis: every r-th fine node for an exact
    ratio r, or for uneven halving every other one and the last, counted from the end
    instead where the last cell is the shorter (so that a short cell left by an earlier
    uneven step merges, and cells stay within 2:1: `solvers.grids`)."""
    step = coarse_nodes(positions.size - 1, coarse_cells)
    if step is not None:
        return positions[step]
    cells = np.diff(positions)
    if cells[-1] < cells[0]:  # a short last cell from an earlier uneven step: merge it
        return np.concatenate([positions[:1], positions[1::2]])
    return np.concatenate([positions[0:-1:2], positions[-1:]])


def hierarchy_positions(
    shapes: tuple[tuple[int, ...], ...], finest: list[np.ndarray] | None = None
) -> list[list[np.ndarray]]:
    """Node positions (ends included, in units of the finest spacing) per level and axis of
    a hierarchy whose interior shapes are `shapes`, finest first (`coarser_positions`).
    `finest`: the finest level's positions per axis where they are not the uniform nodes
    0 .. n + 1 (a cell grid's centres between its walls: `solvers.cells`)."""
    positions = [finest or [np.arange(n + 2) for n in shapes[0]]]
    for coarse in shapes[1:]:
        positions.append(
            [coarser_positions(p, c + 1) for p, c in zip(positions[-1], coarse, strict=True)]
        )
    return positions


class Levels:
    """What PCMG and its callers read of a hierarchy, whoever builds its interpolations:
    the levels rule's `coarsening` (`solvers.grids`), its level count and shapes."""

    coarsening: Coarsening

    @property
    def levels(self) -> int:
        return self.coarsening.levels

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return self.coarsening.shapes


class GridHierarchy(Levels):
    """The interior interpolations between the node grid and its coarsenings (PETSc's
    DMDA ones on uniform levels, our own from the first uneven halving down).

    `interpolations[l - 1]` maps level l - 1 to level l in PCMG's numbering (0 the coarsest),
    as `PCMGSetInterpolation(pc, l, P)` takes it. Built once and shared by every solve of a
    chain: PCMG keeps references to the same Mats, which is what lets it reuse the symbolic
    Galerkin products.
    """

    def __init__(self, shape: tuple[int, ...], max_levels: int | None = None, dof: int = 1):
        self.coarsening: Coarsening = coarsen(shape, max_levels)
        #: unknowns per node, interleaved (2: the real and imaginary parts of `pc: csl`)
        self.dof = dof
        if self.coarsening.levels < 2:
            raise ValueError(self.coarsening.note or f"the {shape} grid does not coarsen")
        # finest first; each level made at its own size (an uneven step ends the uniform
        # levels), and DMCreateInterpolation reads the ratio from the two sizes
        shapes = self.coarsening.shapes
        #: node positions per level and axis, ends included, in units of the finest spacing
        self.positions: list[list[np.ndarray]] = hierarchy_positions(shapes)
        uniform = True  # every level so far has uniform cells: PETSc's DMDA interpolation
        interpolations = []
        for level, (fine, coarse) in enumerate(zip(shapes[:-1], shapes[1:], strict=True)):
            uniform = uniform and is_exact_step(fine, coarse)
            if not uniform:
                interpolations.append(
                    positions_interpolation(self.positions[level], self.positions[level + 1], dof)
                )
                continue
            fine_dm, coarse_dm = node_grid(fine, dof=dof), node_grid(coarse, dof=dof)
            full, _ = coarse_dm.createInterpolation(fine_dm)
            rows = _interior(tuple(reversed(fine_dm.getSizes())), dof)
            cols = _interior(tuple(reversed(coarse_dm.getSizes())), dof)
            interpolations.append(full.createSubMatrix(rows, cols))
            full.destroy()
        self.interpolations: list[PETSc.Mat] = interpolations[::-1]  # coarsest first


@contextlib.contextmanager
def galerkin_products(hierarchy: GridHierarchy | None, operator: PETSc.Mat) -> Iterator[None]:
    """While PCMG builds its coarse operators from `operator` (inside the solve that first
    sets it up), have PETSc form them by `GALERKIN_ALGORITHM` for the hierarchy's dimension.

    Why: in 3D PETSc's default SeqAIJ PtAP took a quarter of a 64^3 Darcy solve (35 of 145
    ms per sample, 27-point coarse operators from 7-point ones); "rap", which forms R = P^T
    once and then R (A P), took 22 ms, and the solve 9% less time, for 44 MB more per worker
    (docs/benchmarks.md, "Galerkin products"). In 2D it saved nothing (9-point operators) and
    cost 23 MB, so 2D keeps the default. PETSc reads the choice (`-matptap_via`, the option
    of MatPtAP's callers, unprefixed: the product Mat has no prefix, so a KSP's prefixed
    `options` cannot set it) when it forms a product's symbolic part, so it is in the options
    database only during our solves; a value the user set there (or in PETSC_OPTIONS) is
    left as it is. "rap" is a SeqAIJ algorithm: other matrix types keep PETSc's default.
    """
    algorithm = None if hierarchy is None else GALERKIN_ALGORITHM.get(len(hierarchy.shapes[0]))
    db = PETSc.Options()
    if algorithm is None or operator.getType() != "seqaij" or db.hasName("matptap_via"):
        yield
        return
    db.setValue("matptap_via", algorithm)
    try:
        yield
    finally:
        db.delValue("matptap_via")


def _set_options(obj, values: dict[str, str]) -> None:
    """Apply PETSc options to one object through the options database (for settings that
    petsc4py has no method for), removing them again so they reach nothing else."""
    prefix = obj.getOptionsPrefix() or ""
    db = PETSc.Options()
    for key, value in values.items():
        db.setValue(prefix + key, value)
    try:
        obj.setFromOptions()
    finally:
        for key in values:
            db.delValue(prefix + key)


def attach_multigrid(
    pc: PETSc.PC, hierarchy: GridHierarchy, settings: MGSettings | None = None
) -> None:
    """Make `pc` a Galerkin PCMG on `hierarchy` with the smoother and cycle of `settings`.
    On several ranks (a `solvers.distributed.DistributedHierarchy`) the smoothers sweep each
    rank's rows and the coarsest level is factorised redundantly on every rank. Any object
    with `levels` and `interpolations` (coarsest first) serves as `hierarchy`."""
    settings = settings or MGSettings()
    parallel = pc.getComm().getSize() > 1
    levels = hierarchy.levels
    pc.setType("mg")
    pc.setMGLevels(levels)
    pc.setMGType(PETSc.PC.MGType.MULTIPLICATIVE)
    pc.setMGCycleType(CYCLES[settings.cycle])
    for level, interpolation in enumerate(hierarchy.interpolations, start=1):
        pc.setMGInterpolation(level, interpolation)  # restriction defaults to its transpose
    _set_options(pc, {"pc_mg_galerkin": "both"})
    ksp_type, pc_type = SMOOTHERS[settings.smoother]
    directions = (LOCAL_SWEEP_DIRECTIONS if parallel else SWEEP_DIRECTIONS).get(settings.smoother)
    for level in range(1, levels):
        if directions is None:
            smoothers = [(pc.getMGSmoother(level), None)]
        else:  # distinct down and up smoothers (PCMGGetSmootherUp makes the up one its own)
            down, up = pc.getMGSmootherDown(level), pc.getMGSmootherUp(level)
            smoothers = list(zip((down, up), directions, strict=True))
        for smoother, direction in smoothers:
            smoother.setType(ksp_type)
            smoother.getPC().setType(pc_type)
            smoother.setTolerances(max_it=settings.sweeps)
            if direction is not None:
                _set_options(smoother.getPC(), {direction: ""})
    coarse = pc.getMGCoarseSolve()
    coarse.setType("preonly")
    if parallel:  # every rank factorises the gathered coarse matrix (no parallel LU here;
        # PCREDUNDANT's inner solve is PETSc's LU, nested dissection by default)
        coarse.getPC().setType("redundant")
        return
    coarse.getPC().setType("lu")
    coarse.getPC().setFactorOrdering("nd")


def configure_multigrid(
    pc: PETSc.PC,
    shape: tuple[int, ...],
    settings: MGSettings | None = None,
    dof: int = 1,
    build: Callable[..., GridHierarchy] | None = None,
    coarsening: Callable[..., Coarsening] | None = None,
) -> tuple[GridHierarchy | None, str | None]:
    """`pc: mg` for the interior grid `shape`: (hierarchy, None), or, when the grid coarsens
    too little (`solvers.grids`), `FALLBACK_PC` on the same operator and (None, the note).
    `build(shape, max_levels, dof)` makes the hierarchy: this process's shared one by
    default; across ranks, `solvers.distributed.DistributedHierarchy` on their communicator;
    on a cell grid, `solvers.cells.shared_cell_hierarchy`. `coarsening(shape, max_levels)`:
    its levels rule (`solvers.grids.coarsen` by default; `solvers.cells.coarsen_cells`)."""
    settings = settings or MGSettings()
    plan = (coarsening or coarsen)(shape, settings.max_levels)
    if not plan.usable:
        pc.setType(FALLBACK_PC)
        return None, plan.note
    hierarchy = (build or shared_hierarchy)(tuple(shape), settings.max_levels, dof)
    attach_multigrid(pc, hierarchy, settings)
    return hierarchy, None


@functools.lru_cache(maxsize=4)
def shared_hierarchy(
    shape: tuple[int, ...], max_levels: int | None = None, dof: int = 1
) -> GridHierarchy:
    """The `GridHierarchy` of `shape`, built once per process and shared by every chain
    (batch) on that grid. Why: it depends on the grid alone, and building it (DMDAs, their
    coarsenings, the interpolations) took 44 ms per 64^3 batch, 2.2 ms of each of its 20
    samples. PCMG only reads the interpolations; the Galerkin products it builds from them
    belong to each chain's own PC."""
    return GridHierarchy(shape, max_levels, dof)


__all__ = [
    "CYCLES",
    "SMOOTHERS",
    "GridHierarchy",
    "MGSettings",
    "attach_multigrid",
    "interpolation_rows",
    "linear_interpolation_1d",
    "positions_interpolation",
    "shared_hierarchy",
    "configure_multigrid",
    "galerkin_products",
    "node_grid",
]
