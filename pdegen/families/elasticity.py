"""Linear elasticity -div(sigma(u)) = f, sigma = 2 mu eps(u) + lambda tr(eps(u)) I.

A body in the unit square or cube with a random Young's modulus E (a lognormal or
thresholded Gaussian random field, nodal) and one Poisson ratio nu per recipe, 0 <= nu < 1/2
(mu = E / (2 (1 + nu)), lambda = E nu / ((1 + nu) (1 - 2 nu)); nu -> 1/2 is the
incompressible limit, where lambda is infinite). The displacement is zero on the clamped
faces (`clamped`: every face, or some of them) and the other faces are traction-free,
sigma n = 0. A body clamped nowhere is refused: the rigid-body motions (translations and
rotations, d (d + 1) / 2 of them) then have zero strain, so the operator is singular.

The body force f is gravity, f = -g e_d (the last axis: y in 2D, z in 3D), or a random field
per component (independent GRFs, stored as inputs `force_x`, `force_y` (, `force_z`)).

The discretisation is Q1 finite elements on the node grid (`pdegen.discretisation.fem`: why, and how
E enters per element), symmetric positive definite once any face is clamped, second order at
the nodes (tests/test_elasticity.py measures it against manufactured solutions, clamped and
mixed). Unknowns are the displacements of the nodes not on a clamped face, interleaved
(node-major, components fastest), so PETSc sees block size d; in 2D the family also hands
the solver those nodes' coordinates (`vector_layout`), and GAMG takes their rigid-body modes
as its near-null space. What each choice costs is measured in docs/benchmarks.md,
"Elasticity": the modes halve GAMG's iterations in 2D and 3D, pay in 2D, but cost more set-up
than they save in 3D, where GAMG gets the block size only (its default near-null space, the
d translations); a scalar near-null space (block size 1) is 1.7 to 14 times slower.
Geometric multigrid (`pc: mg`) is scalar (one unknown per node) and is refused for this
family.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fem import mass, stiffness_matrix
from pdegen.discretisation.fields import sample_rng
from pdegen.errors import RecipeError
from pdegen.families.base import SPACE_AXES, Family, FieldAxes, Sample
from pdegen.specs import CoefficientSpec, FieldSpec, nested, rule
from solvers.registry import PRECONDITIONERS

FACES = ("x0", "x1", "y0", "y1", "z0", "z1")  # axis, then 0: the face at 0, 1: at 1
COMPONENTS = ("displacement_x", "displacement_y", "displacement_z")
FORCES = ("force_x", "force_y", "force_z")


@dataclasses.dataclass(frozen=True)
class ElasticityProblem:
    youngs_modulus: CoefficientSpec = nested(CoefficientSpec, kind="lognormal")
    poisson_ratio: float = rule(0.3, ge=0.0, lt=0.5)
    clamped: str = "all"
    body_force: Literal["gravity", "random"] = "gravity"
    gravity: float = 1.0
    force: FieldSpec = nested(FieldSpec)


def clamped_faces(text: str, dim: int) -> tuple[str, ...]:
    """The faces `problem.clamped` names: `all`, or faces x0 x1 y0 y1 (z0 z1 in 3D) separated
    by spaces, commas or '+'. Raises RecipeError naming the field."""
    faces = FACES[: 2 * dim]
    words = text.replace(",", " ").replace("+", " ").split()
    if words == ["all"]:
        return faces
    if words in ([], ["none"]):
        raise RecipeError(
            f"problem.clamped: {text!r} clamps no face: with traction on every face the "
            "rigid-body motions have zero strain and the operator is singular (clamp at "
            f"least one face: all, or some of {', '.join(faces)})"
        )
    bad = [w for w in words if w not in faces]
    if bad:
        shown = bad[0] if len(bad[0]) <= 20 else bad[0][:20] + "..."
        raise RecipeError(
            f"problem.clamped: {shown!r} is not a face of the unit "
            f"{'square' if dim == 2 else 'cube'} (allowed: all, or faces among "
            f"{', '.join(faces)})"
        )
    return tuple(f for f in faces if f in words)


class Elasticity(Family):
    name = "elasticity"
    why_no_cells = "its Q1 finite elements have their unknowns at the element vertices, the nodes"
    discretisation = (
        "Q1 (bilinear or trilinear) finite elements on the node grid with a nodal Young's "
        "modulus (`pdegen/discretisation/fem.py`), the displacement interleaved per node, "
        "zero on the clamped faces and traction-free elsewhere"
    )
    Problem = ElasticityProblem
    inputs = {
        "youngs_modulus": FieldAxes(),
        "force_x": FieldAxes(),  # the force fields: only with body_force: random
        "force_y": FieldAxes(),
        "force_z": FieldAxes(dims=(3,)),
    }
    outputs = {
        "displacement_x": FieldAxes(),
        "displacement_y": FieldAxes(),
        "displacement_z": FieldAxes(dims=(3,)),
    }
    #: CG + GAMG: fastest at 255^2 (4.7x Cholesky) and from 31^3 on (a 3D Cholesky takes a
    #: minute from n = 23), within noise of Cholesky and ICC at 63^2 (docs/benchmarks.md)
    auto_solvers = {2: ("cg", "gamg"), 3: ("cg", "gamg")}
    iterative_pc = "gamg"
    #: per dimension, whether GAMG gets the rigid-body modes (translations and rotations) as
    #: its near-null space, or, False, only the block size d (so its default near-null space,
    #: the d translations). Measured (docs/benchmarks.md, "Elasticity"): the modes halve the
    #: iterations in 2D and 3D, and win in time in 2D (1.14x at 255^2), but in 3D their
    #: six vectors per aggregate make GAMG's set-up cost more than the iterations saved
    #: (translations 1.14x, 1.16x, 1.57x faster at n = 15, 31, 47)
    rigid_body_modes: ClassVar[dict[int, bool]] = {2: True, 3: False}
    symmetric = True
    positive_definite = True

    def __init__(self, n: int, dim: int, problem: ElasticityProblem):
        super().__init__(n, dim, problem)
        self.faces = clamped_faces(problem.clamped, dim)

    @classmethod
    def check(cls, recipe) -> None:
        clamped_faces(recipe.problem.clamped, recipe.grid.dim)
        pc = recipe.solver.pc
        if pc in PRECONDITIONERS and PRECONDITIONERS[pc].geometric:
            raise RecipeError(
                f"solver.pc: {pc!r} is scalar geometric multigrid (one unknown per node); "
                "elasticity has d displacement components per node: use gamg, which gets "
                "the rigid-body modes as its near-null space"
            )

    # -- the grid ----------------------------------------------------------------------

    @functools.cached_property
    def free(self) -> np.ndarray:
        """Boolean mask over the node grid: the nodes whose displacement is unknown (not on a
        clamped face)."""
        mask = np.ones(self.grid_shape, dtype=bool)
        for face in self.faces:
            axis, side = SPACE_AXES.index(face[0]), int(face[1])
            index = [slice(None)] * self.dim
            index[axis] = -1 if side else 0
            mask[tuple(index)] = False
        return mask

    @property
    def input_names(self) -> tuple[str, ...]:
        """Young's modulus, and the force components when the force is random."""
        forces = FORCES[: self.dim] if self.problem.body_force == "random" else ()
        return ("youngs_modulus", *forces)

    @property
    def unknowns(self) -> int:
        """d per free node, counted without building the mask (the memory estimate asks
        before anything is allocated): each clamped face removes one plane of nodes."""
        planes = [sum(face[0] == axis for face in self.faces) for axis in SPACE_AXES[: self.dim]]
        return self.dim * math.prod(self.n + 2 - c for c in planes)

    @property
    def matrix_entries(self) -> int:
        """At most 3^d d entries per row: a node couples to its 3^d neighbours' components."""
        return 3**self.dim * self.dim * self.unknowns

    def vector_layout(self) -> dict[str, Any]:
        """Block size d, and in 2D the rigid-body modes for GAMG (`rigid_body_modes`)."""
        if self.rigid_body_modes[self.dim]:
            return {"block_size": self.dim, "rigid_body_coordinates": self.rigid_body_coordinates()}
        return {"block_size": self.dim}

    def rigid_body_coordinates(self) -> np.ndarray:
        """(nodes, d): the coordinates of the free nodes, in the order of the unknowns."""
        nodes = np.flatnonzero(self.free)
        return np.stack([self.x[i] for i in np.unravel_index(nodes, self.grid_shape)], axis=1)

    # -- assembly ----------------------------------------------------------------------

    def operator(self, E: np.ndarray, free: np.ndarray | None = None) -> sp.csr_matrix:
        """The stiffness matrix for the nodal Young's modulus E on the free nodes (`free`
        overrides the recipe's mask: all True is the unconstrained body)."""
        E = np.asarray(E, dtype=float)
        if E.shape != self.grid_shape:
            raise ValueError(f"Young's modulus shape {E.shape} != grid shape {self.grid_shape}")
        mask = self.free if free is None else free
        return stiffness_matrix(E, self.problem.poisson_ratio, self.h, mask)

    def load(
        self,
        f: np.ndarray,
        traction: Mapping[str, np.ndarray] | None = None,
        free: np.ndarray | None = None,
    ) -> np.ndarray:
        """The load vector of nodal body forces f, shape (d, *grid) (or (d,) for a constant
        force), plus surface tractions: `traction[face]` holds the nodal traction vector on
        a face that is not clamped, shape (d, *face grid), for sigma n = t there (the samples
        are traction-free, t = 0; the manufactured-solution tests need t)."""
        mask = self.free if free is None else free
        f = np.asarray(f, dtype=float)
        if f.ndim == 1:
            f = f.reshape(self.dim, *([1] * self.dim)) * np.ones(self.grid_shape)
        loads = np.stack([mass(f[a], self.h) for a in range(self.dim)])
        for face, t in (traction or {}).items():
            axis, side = SPACE_AXES.index(face[0]), int(face[1])
            index = [slice(None)] * (self.dim + 1)
            index[axis + 1] = -1 if side else 0
            surface = np.stack([mass(np.asarray(t[a], float), self.h) for a in range(self.dim)])
            loads[tuple(index)] += surface
        return loads.reshape(self.dim, -1)[:, mask.ravel()].T.ravel()

    def assemble(
        self,
        E: np.ndarray,
        f: np.ndarray,
        traction: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """System for explicit nodal fields on the full node grid: Young's modulus E, body
        force f ((d, *grid), or (d,) when constant) and optional face tractions (`load`)."""
        return self.operator(E), self.load(f, traction)

    # -- samples -----------------------------------------------------------------------

    def body_force(self, sample: Sample) -> np.ndarray:
        if self.problem.body_force == "random":
            return np.stack([sample.inputs[name] for name in FORCES[: self.dim]])
        gravity = np.zeros(self.dim)
        gravity[-1] = -self.problem.gravity
        return gravity

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        inputs = {"youngs_modulus": self.coefficient(rng, self.problem.youngs_modulus)}
        if self.problem.body_force == "random":
            for name in FORCES[: self.dim]:
                inputs[name] = self.grf(rng, self.problem.force)
        return Sample(index, inputs)

    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        return self.assemble(sample.inputs["youngs_modulus"], self.body_force(sample))

    def displacement(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The solution vector as one nodal field per component, zero on clamped nodes."""
        nodal = x.reshape(-1, self.dim)
        out = {}
        for a, name in enumerate(COMPONENTS[: self.dim]):
            u = np.zeros(self.grid_shape)
            u[self.free] = nodal[:, a]
            out[name] = u
        return out

    def solution_vector(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The inverse of `displacement`: the free nodes' components, interleaved."""
        names = COMPONENTS[: self.dim]
        return np.stack([outputs[name][self.free] for name in names], axis=1).ravel()

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        A, b = self.system(sample)
        result = chain.solve(A, b)
        return self.displacement(result.x), [result]

    def features(self, sample: Sample) -> np.ndarray:
        """The downsampled log Young's modulus (and force): what moves the spectrum."""
        parts = [np.log(self.downsample(sample.inputs["youngs_modulus"])).ravel()]
        parts += [self.downsample(sample.inputs[k]).ravel() for k in self.input_names[1:]]
        return np.concatenate(parts)
