"""Geometric multigrid on cell-centred grids (issue 27, point 2, the solver's half).

The unknowns are the n^d cell centres of the unit square or cube, C order, with the walls on
the cells' outer faces (Dirichlet values there, not unknowns:
`pdegen.discretisation.operators.cell_diffusion_operator`).

**How it coarsens.** Along an axis the n centres are the interior nodes of a node grid whose
first and last intervals are half as long (the walls are half a cell from the centres next to
them), and each level halves that node grid the way `solvers.grids` halves one: every other
point, exactly where the intervals pair up, else every other point and the last ("uneven
halving"), while an axis keeps at least `UNEVEN_MIN` points: 128 -> 64 -> 32 -> ... -> 2,
100 -> 50 -> 25 -> 12 -> ... -> 1. Every coarse point is a fine point; the interpolation is
linear at the points' true positions with the walls as points of value zero
(`solvers.multigrid.linear_interpolation_1d`, positions in units of half a cell), the tensor
product over the axes; the coarse operators are PETSc's Galerkin products P^T A P, so it
serves any operator on the grid, Darcy's jumping coefficients included, with 9-point coarse
stencils in 2D. Steps by 3 (which the node grid's rule took until issue 27) are not taken:
on the centres they stopped 128
at a 42^2 level after one step (11-12 CG iterations against 9 here) and left 64 with one
level (GAMG instead, 2.6x slower); halving alone was faster at every size measured.

**Why not cell-centred coarsening** (pairs of cells merged, bilinear interpolation from the
coarse centres, 3/4 and 1/4): it converges in 8 CG iterations against 9-10 here, but its
coarse cells are not centred on fine ones, so each Galerkin coarse operator has 25 points in
2D instead of 9, and a solve cost 1.35-1.7x more at 64^2 to 256^2 cells (measured,
docs/benchmarks.md, "Multigrid on cell-centred grids"). Piecewise-constant interpolation
keeps 5 points but took 38-56 CG iterations with V-cycles (18-21 with W-cycles), 2-3x slower.
"""

from __future__ import annotations

import functools

import numpy as np
from petsc4py import PETSc

from solvers.grids import CellCoarsening, coarsen_cells
from solvers.multigrid import Levels, hierarchy_positions, positions_interpolation


def cell_positions(shapes: tuple[tuple[int, ...], ...]) -> list[list[np.ndarray]]:
    """Per level and axis, the points the interpolation reads, walls included, in units of
    half the finest cell: the walls 0 and 2 n around the centres 1, 3, ..., 2 n - 1 on the
    finest level, each coarser level a subset (`solvers.multigrid.hierarchy_positions`)."""
    walls_and_centres = [np.concatenate([[0], np.arange(1, 2 * n, 2), [2 * n]]) for n in shapes[0]]
    return hierarchy_positions(shapes, walls_and_centres)


class CellHierarchy(Levels):
    """The interpolations between a cell grid and its coarsenings, coarsest first (as
    `solvers.multigrid.GridHierarchy`'s, which `attach_multigrid` takes alike)."""

    def __init__(self, shape: tuple[int, ...], max_levels: int | None = None, dof: int = 1):
        self.coarsening: CellCoarsening = coarsen_cells(shape, max_levels)
        self.dof = dof
        if self.coarsening.levels < 2:
            raise ValueError(self.coarsening.note or f"the {shape} cell grid does not coarsen")
        positions = cell_positions(self.coarsening.shapes)
        interpolations = [
            positions_interpolation(fine, coarse, dof)
            for fine, coarse in zip(positions[:-1], positions[1:], strict=True)
        ]
        self.interpolations: list[PETSc.Mat] = interpolations[::-1]


@functools.lru_cache(maxsize=4)
def shared_cell_hierarchy(
    shape: tuple[int, ...], max_levels: int | None = None, dof: int = 1
) -> CellHierarchy:
    """The `CellHierarchy` of `shape`, built once per process (as `shared_hierarchy`)."""
    return CellHierarchy(shape, max_levels, dof)
