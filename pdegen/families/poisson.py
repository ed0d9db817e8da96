"""Poisson -Laplacian u = f with a random source and random Dirichlet boundary values.

The operator is the same for every sample, so the samples are many right-hand sides of one
matrix: the family says so (`shared_operator`), returns the very same matrix object each time,
and the solve harness then keeps one factorisation (or one preconditioner) for all of them
instead of treating the samples as unrelated systems.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.operators import (
    boundary_lift,
    diffusion_operator,
    face_coefficients,
)
from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.specs import FieldSpec, nested


@dataclasses.dataclass(frozen=True)
class PoissonProblem:
    source: FieldSpec = nested(FieldSpec, alpha=2.0, tau=3.0, sigma=50.0)
    boundary: FieldSpec = nested(FieldSpec, alpha=2.5, tau=3.0, sigma=5.0)


class Poisson(Family):
    name = "poisson"
    discretisation = (
        "second-order finite differences on the node grid: the (2d+1)-point Laplacian "
        "stencil, one matrix for every sample, the random Dirichlet values lifted into the "
        "right-hand side (`pdegen/discretisation/operators.py`)"
    )
    Problem = PoissonProblem
    inputs = {"source": FieldAxes(), "boundary": FieldAxes()}
    # measured: docs/benchmarks.md, "Recycling against baselines"
    auto_solvers = {2: ("direct", "cholesky"), 3: ("direct", "cholesky")}
    # the shared factorisation's two triangular solves per sample against CG + mg (whose
    # hierarchy and coarse operators are built once as well), per sample after the first:
    # in 3D mg wins from 30^3 (6.0 against 8.4 ms at 31^3, 66.8 against 220 ms at 63^3) and
    # loses below (2.4 against 1.5 ms at 23^3); in 2D the solves win at every size (100
    # against 397 ms at 1023^2). docs/benchmarks.md, "auto by size"
    auto_multigrid = {3: (31, ("cg", "mg"))}
    iterative_pc = "gamg"
    shared_operator = True
    why_no_cells = (
        "its input is the random Dirichlet values on the boundary nodes, and a cell grid "
        "stores only centres, its walls being faces"
    )
    symmetric = True
    positive_definite = True

    @functools.cached_property
    def _operator(self) -> tuple[sp.csr_matrix, list[np.ndarray]]:
        return diffusion_operator(np.ones(self.grid_shape), self.h)

    def assemble(self, f: np.ndarray, g: np.ndarray | float = 0.0):
        A, faces = self._operator
        return A, self.right_hand_side(f, g, lambda g: boundary_lift(faces, g, self.h))

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        source = self.grf(rng, self.problem.source)
        boundary = self.grf(rng, self.problem.boundary)
        boundary[(slice(1, -1),) * self.dim] = 0.0  # only boundary nodes carry data
        return Sample(index, {"source": source, "boundary": boundary})

    def system(self, sample: Sample):
        return self.assemble(sample.inputs["source"], sample.inputs["boundary"])

    def diffusion_system(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """(a = 1, b) of `system` without assembling the matrix, for a sample solved across
        ranks (`Family.diffusion_system`): the unit coefficient's faces are ones."""
        ones = np.ones(self.grid_shape)
        faces = face_coefficients(ones)
        b = self.right_hand_side(
            sample.inputs["source"],
            sample.inputs["boundary"],
            lambda g: boundary_lift(faces, g, self.h),
        )
        return ones, b

    def boundary_values(self, sample: Sample) -> np.ndarray:
        return sample.inputs["boundary"]
