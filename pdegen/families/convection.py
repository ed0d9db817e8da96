"""Convection-diffusion -eps Laplacian u + v . grad u = f with Dirichlet values g.

The velocity is divergence-free, the curl of a random stream function (a Gaussian random
field), rescaled so that its largest nodal speed is `speed`: the Peclet number is then set by
the recipe, not by chance. Upwinding (default) keeps the scheme monotone at any Peclet number;
central differences are second order but are rejected by the recipe check when the cell
Peclet number speed h / (2 eps) exceeds 1, where they oscillate. The matrix is not symmetric.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.operators import (
    boundary_lift,
    convection_lift,
    convection_operator,
    diffusion_operator,
)
from pdegen.errors import RecipeError
from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.specs import FieldSpec, nested, rule


@dataclasses.dataclass(frozen=True)
class ConvectionProblem:
    epsilon: float = rule(0.01, gt=0.0)
    speed: float = rule(1.0, ge=0.0)
    stream_function: FieldSpec = nested(FieldSpec, alpha=2.5, tau=3.0)
    scheme: Literal["upwind", "central"] = "upwind"
    source: float = 1.0


class ConvectionDiffusion(Family):
    name = "convection-diffusion"
    discretisation = (
        "finite differences on the node grid: the (2d+1)-point Laplacian for the diffusion "
        "and first-order upwind (default) or second-order central differences for v . grad u, "
        "Dirichlet values lifted into the right-hand side; a nonsymmetric matrix"
    )
    Problem = ConvectionProblem
    inputs = {
        "velocity_x": FieldAxes(),
        "velocity_y": FieldAxes(),
        "velocity_z": FieldAxes(dims=(3,)),
    }
    # measured: docs/benchmarks.md, "Recycling against baselines"
    auto_solvers = {2: ("direct", "lu"), 3: ("gmres", "ilu")}
    iterative_pc = "ilu"
    why_no_cells = (
        "its upwind and central differences read the velocity and the Dirichlet values at "
        "the nodes; on cells they would be a finite-volume scheme of their own (face fluxes)"
    )

    @classmethod
    def check(cls, recipe) -> None:
        p = recipe.problem
        peclet = p.speed / (recipe.grid.n + 1) / (2 * p.epsilon)
        if p.scheme == "central" and peclet > 1:
            raise RecipeError(
                f"problem.scheme: central differences oscillate at cell Peclet number "
                f"{peclet:.2f} > 1 (use scheme: upwind, or raise grid.n or problem.epsilon)"
            )

    def assemble(
        self, velocity: list[np.ndarray], f: np.ndarray | float, g: np.ndarray | float = 0.0
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        eps = self.problem.epsilon
        D, faces = diffusion_operator(np.full(self.grid_shape, eps), self.h)
        C, weights = convection_operator(velocity, self.h, self.problem.scheme)
        A = (D + C).tocsr()
        A.sort_indices()
        return A, self.right_hand_side(
            f, g, lambda g: boundary_lift(faces, g, self.h) + convection_lift(weights, g)
        )

    def velocity(self, psi: np.ndarray) -> list[np.ndarray]:
        """Divergence-free velocity from a stream function: (d psi/dy, -d psi/dx) in 2D; in 3D
        the curl of (psi, psi, psi) rotated per axis."""
        grads = np.gradient(psi, self.h)
        if self.dim == 2:
            v = [grads[1], -grads[0]]
        else:
            v = [grads[1] - grads[2], grads[2] - grads[0], grads[0] - grads[1]]
        peak = np.sqrt(sum(c**2 for c in v)).max()
        scale = self.problem.speed / peak if peak > 0 else 0.0
        return [scale * c for c in v]

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        psi = self.grf(rng, self.problem.stream_function)
        v = self.velocity(psi)
        return Sample(index, {f"velocity_{axis}": c for axis, c in zip("xyz", v, strict=False)})

    def system(self, sample: Sample):
        v = [sample.inputs[f"velocity_{axis}"] for axis in "xyz"[: self.dim]]
        return self.assemble(v, self.problem.source)
