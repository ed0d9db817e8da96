"""Darcy flow -div(a grad u) = f in the unit square or cube, u = 0 on the boundary.

a is a thresholded or lognormal Gaussian random field (the neural-operator Darcy benchmark
uses thresholding to 12 / 3 with alpha = 2, tau = 3); the discretisation is the conservative
stencil of `pdegen.discretisation.operators` (harmonic face means), symmetric positive definite.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.operators import (
    DiffusionMatrix,
    boundary_lift,
    diffusion_operator,
)
from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.specs import CoefficientSpec, nested


@dataclasses.dataclass(frozen=True)
class DarcyProblem:
    coefficient: CoefficientSpec = nested(CoefficientSpec)
    source: float = 1.0


class Darcy(Family):
    name = "darcy"
    discretisation = (
        "second-order finite differences on the node grid: the conservative (2d+1)-point "
        "stencil of -div(a grad u) with harmonic means of the coefficient at cell faces "
        "(`pdegen/discretisation/operators.py`), u = 0 on the boundary nodes"
    )
    #: on `grid.layout: cells` (`Family.use_cells`)
    discretisation_on_cells = (
        "second-order finite volumes on the cell-centred grid: the conservative (2d+1)-point "
        "stencil of -div(a grad u) with harmonic means of the neighbouring cells' coefficients "
        "at their shared faces and u = 0 on the walls, half a cell from the outer centres "
        "(`pdegen/discretisation/operators.py`, `cell_diffusion_operator`)"
    )
    layouts = ("nodes", "cells")
    Problem = DarcyProblem
    inputs = {"coefficient": FieldAxes()}
    # measured: docs/benchmarks.md, "Recycling against baselines"
    auto_solvers = {2: ("direct", "cholesky"), 3: ("cg", "ilu")}
    # "auto by size"; 2D from 126 (128 points per axis, halved unevenly: CG + mg 7.2 ms per
    # sample against Cholesky's 12.7, docs/benchmarks.md, "Uneven halving")
    auto_multigrid = {2: (126, ("cg", "mg")), 3: (31, ("cg", "mg"))}
    iterative_pc = "jacobi"
    #: 2D: forward Gauss-Seidel down, backward up (half the sweeps of SSOR; still a symmetric
    #: V-cycle for CG): 2 more CG iterations but 4-15% less time from 127^2 to 1023^2; 3D:
    #: SSOR, which GS did not beat (docs/benchmarks.md, "Multigrid smoothers")
    multigrid_smoother = {2: "gs", 3: "sor"}
    symmetric = True
    positive_definite = True

    def assemble(
        self, a: np.ndarray, f: np.ndarray | float, g: np.ndarray | float = 0.0
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """System for explicit nodal fields on the full node grid: coefficient a, source f
        (read at interior nodes) and Dirichlet values g (read at boundary nodes)."""
        if self.on_cells:  # u = 0 on the walls: g has no place on a cell grid
            if np.any(np.asarray(g) != 0.0):
                raise ValueError("Dirichlet values on a cell grid: the walls hold u = 0 only")
            A = self.diffusion_matrix(self._coefficient_on_grid(a))
            return A, self.right_hand_side(f, 0.0, None)
        A, faces = diffusion_operator(self._coefficient_on_grid(a), self.h)
        return A, self.right_hand_side(f, g, lambda g: boundary_lift(faces, g, self.h))

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        return Sample(index, {"coefficient": self.coefficient(rng, self.problem.coefficient)})

    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(sample.inputs["coefficient"], self.problem.source)

    def solver_system(self, sample: Sample) -> tuple[DiffusionMatrix, np.ndarray]:
        """`system`'s matrix as one that fills the solver's Mat in place (u = 0 on the
        boundary, so the right-hand side needs no face coefficients). A subclass that
        changes `system` gets its own."""
        if type(self).system is not Darcy.system:
            return self.system(sample)
        a = self._coefficient_on_grid(sample.inputs["coefficient"])
        matrix = DiffusionMatrix(a, self.h, cells=self.on_cells)
        return matrix, self.right_hand_side(self.problem.source, 0.0, None)

    def diffusion_system(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) of `system`, for a sample solved across ranks (`Family.diffusion_system`);
        the node grid's only (a cell grid is solved on one rank: `pdegen.recipe.ranks`)."""
        if self.on_cells:
            raise ValueError("a cell-centred Darcy sample is solved on one rank")
        a = self._coefficient_on_grid(sample.inputs["coefficient"])
        return a, self.right_hand_side(self.problem.source, 0.0, None)

    def _coefficient_on_grid(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=float)
        if a.shape != self.grid_shape:
            raise ValueError(f"coefficient shape {a.shape} != grid shape {self.grid_shape}")
        return a

    @classmethod
    def square(
        cls, n: int, coefficient: CoefficientSpec | None = None, source: float = 1.0
    ) -> Darcy:
        """The 2D family on an n x n interior grid (for examples and tests)."""
        return cls(n, 2, DarcyProblem(coefficient or CoefficientSpec(), source))
