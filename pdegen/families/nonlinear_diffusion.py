"""Nonlinear diffusion -div(a(x) k(u) grad u) = f, u = 0 on the boundary, solved by Newton.

The scheme is the conservative (2d+1)-point stencil of `pdegen.discretisation.operators` with
the face conductance a_f k(u_f): a_f the harmonic mean of the two nodal coefficients (as the linear
diffusion operator, for coefficients that jump) and k evaluated at the arithmetic mean
u_f = (u_i + u_j) / 2 of the two nodal values. The flux through the face between nodes i and
j (j the upper neighbour along an axis) is a_f k(u_f) (u_i - u_j) / h^2, so

    F(u)_i = sum over the faces of i of  +-a_f k(u_f) (u_i - u_j) / h^2  -  f_i = 0.

Second order in h for smooth a, k and u (tested against a manufactured solution, 2D and 3D).

The laws (`problem.k`): `quadratic` k(u) = 1 + u^2, `exponential` k(u) = exp(beta u). With
the Kirchhoff transform w = K(u) = int_0^u k, the equation is -div(a grad w) = f: every source
has a solution for the quadratic law (K maps onto the reals), but for the exponential law
only where w > -1/beta everywhere, so a strong negative source has none and its Newton solve
fails (flagged, not stored as good). The default source (sigma 500, so that u is of order 1
and k(u) far from k(0)) suits the quadratic law; with the exponential law and beta = 1 about
half of its samples have no solution (measured), so lower `source.sigma` (200: all solved in
the samples we tried) or beta.

The Jacobian is exact: differentiating a face's flux gives, besides the linear diffusion
matrix of the conductances a_f k(u_f), the term w_f = a_f k'(u_f) (u_i - u_j) / (2 h^2) in
both rows of the face, with the same sign for both columns of a row. That term is what makes
Newton converge quadratically, and it is NOT symmetric (row i gets +w_f at column j, row j gets
-w_f at column i), so the operator is declared nonsymmetric: CG, recycling CG, ICC and
Cholesky are refused, GMRES, GCRO-DR and LU are what runs. (A Picard linearisation, k frozen
at the last iterate, would be symmetric positive definite but converge only linearly; the
issue asks for Newton.) At u = 0, Newton's usual first iterate, w_f = 0 because u has no
gradient: the first Newton system is the linear diffusion matrix with conductance a_f k(0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.operators import (
    _along,
    _axis_slices,
    cell_face_coefficients,
    face_coefficients,
    stencil_matrix,
)
from pdegen.families.base import FieldAxes, Sample
from pdegen.families.newton import NewtonFamily
from pdegen.families.residuals import ROUNDING_FACTOR, StepResidual
from pdegen.specs import CoefficientSpec, FieldSpec, NewtonSpec, nested, rule


@dataclasses.dataclass(frozen=True)
class NonlinearDiffusionProblem:
    coefficient: CoefficientSpec = nested(CoefficientSpec, kind="lognormal", sigma=1.0)
    source: FieldSpec = nested(FieldSpec, sigma=500.0)  # u of order 1: k(u) far from k(0)
    k: Literal["quadratic", "exponential"] = "quadratic"
    beta: float = rule(1.0, gt=0.0, le=10.0)
    newton: NewtonSpec = nested(NewtonSpec)


def conductivity_law(name: str, beta: float = 1.0) -> tuple[Callable, Callable]:
    """(k, k') of a documented law."""
    if name == "quadratic":
        return (lambda u: 1.0 + u * u), (lambda u: 2.0 * u)
    if name == "exponential":
        return (lambda u: np.exp(beta * u)), (lambda u: beta * np.exp(beta * u))
    raise ValueError(f"unknown law {name!r} (allowed: quadratic, exponential)")


class NonlinearDiffusion(NewtonFamily):
    name = "nonlinear-diffusion"
    discretisation = (
        "second-order finite differences on the node grid: the conservative (2d+1)-point "
        "stencil with face conductance a_f k(u_f), a_f the harmonic face mean and u_f the "
        "arithmetic mean of the two nodal values, solved by Newton with its exact Jacobian"
    )
    #: on `grid.layout: cells` (`Family.use_cells`)
    discretisation_on_cells = (
        "second-order finite volumes on the cell-centred grid: the conservative (2d+1)-point "
        "stencil with face conductance a_f k(u_f), a_f the harmonic mean of the neighbouring "
        "cells' coefficients (2 a at a wall, half a cell away) and u_f the arithmetic mean of "
        "the two values across the face (the wall's u = 0 at a wall), solved by Newton with "
        "its exact Jacobian"
    )
    layouts = ("nodes", "cells")
    Problem = NonlinearDiffusionProblem
    inputs = {"coefficient": FieldAxes(), "source": FieldAxes()}
    # docs/benchmarks.md, "Newton families": LU beats GMRES + ILU 3-4x in 2D, loses 7-100x
    # in 3D; GMRES + geometric multigrid beats both from 63^2 and 31^3 on where it coarsens
    auto_solvers = {2: ("direct", "lu"), 3: ("gmres", "ilu")}
    auto_multigrid = {2: (63, ("gmres", "mg")), 3: (31, ("gmres", "mg"))}
    iterative_pc = "ilu"
    symmetric = False  # the exact Jacobian's k'(u) grad u term (module docstring)

    def __init__(self, n: int, dim: int, problem: NonlinearDiffusionProblem):
        super().__init__(n, dim, problem)
        self.k, self.dk = conductivity_law(problem.k, problem.beta)

    # -- the discrete equation ------------------------------------------------------------

    def _full(self, u: np.ndarray) -> np.ndarray:
        """The unknowns with a layer of zeros (the Dirichlet value) around them: the node
        grid's boundary nodes, or on cells the walls, each face's outer side."""
        full = np.zeros((self.n + 2,) * self.dim)
        full[(slice(1, -1),) * self.dim] = u.reshape(self.interior_shape)
        return full

    def _faces(self, faces_a: list[np.ndarray], u: np.ndarray):
        """Per axis: (a_f, u_lo - u_hi, u_f) on every face of the interior lines."""
        full = self._full(u)
        out = []
        for ax, af in enumerate(faces_a):
            lo = full[_axis_slices(self.dim, ax, slice(None, -1))]
            hi = full[_axis_slices(self.dim, ax, slice(1, None))]
            out.append((af, lo - hi, 0.5 * (lo + hi)))
        return out

    def residual(self, faces_a: list[np.ndarray], f: np.ndarray, u: np.ndarray) -> np.ndarray:
        """F(u) on the interior nodes (C order); `faces_a` from `face_coefficients(a)`, f the
        source at the interior nodes."""
        scale = 1.0 / self.h**2
        r = -np.asarray(f, dtype=float).reshape(self.interior_shape).copy()
        for ax, (af, du, ubar) in enumerate(self._faces(faces_a, u)):
            flux = af * self.k(ubar) * du * scale
            r += flux[_along(self.dim, ax, slice(1, None))]
            r -= flux[_along(self.dim, ax, slice(None, -1))]
        return r.ravel()

    def jacobian(self, faces_a: list[np.ndarray], u: np.ndarray) -> sp.csr_matrix:
        """dF/du, exactly (module docstring), with the fixed (2d+1)-point pattern."""
        scale = 1.0 / self.h**2
        diagonal = np.zeros(self.interior_shape)
        lower, upper = [], []
        for ax, (af, du, ubar) in enumerate(self._faces(faces_a, u)):
            c = af * self.k(ubar) * scale
            w = 0.5 * af * self.dk(ubar) * du * scale
            up, down = _along(self.dim, ax, slice(1, None)), _along(self.dim, ax, slice(None, -1))
            diagonal += c[up] + w[up] + c[down] - w[down]
            inner = _along(self.dim, ax, slice(1, -1))
            upper.append(-c[inner] + w[inner])  # row i, column j = i + 1
            lower.append(-c[inner] - w[inner])  # row j, column i
        return stencil_matrix(diagonal, lower, upper)

    def newton_problem(self, a: np.ndarray, f: np.ndarray):
        """(F, J) for explicit nodal fields a and f on the full node grid."""
        faces = cell_face_coefficients if self.on_cells else face_coefficients
        faces_a = faces(np.asarray(a, dtype=float))
        f_in = self.interior(np.asarray(f, dtype=float)).ravel()
        return (lambda u: self.residual(faces_a, f_in, u)), (lambda u: self.jacobian(faces_a, u))

    # -- samples ----------------------------------------------------------------------------

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        p = self.problem
        a = self.coefficient(rng, p.coefficient)
        return Sample(index, {"coefficient": a, "source": self.grf(rng, p.source)})

    def solve_fields(self, a: np.ndarray, f: np.ndarray, chain):
        """Newton from u = 0 for explicit fields; returns the NewtonResult."""
        F, J = self.newton_problem(a, f)
        return self.newton(chain).solve(F, J, np.zeros(self.unknowns))

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        result = self.solve_fields(sample.inputs["coefficient"], sample.inputs["source"], chain)
        return {"solution": self.solution_field(sample, result.x)}, [result]

    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        """The second Newton system J(u_1) dx = F(u_1), u_1 the first Newton iterate from 0
        (the first system, at u = 0, is symmetric: module docstring); for inspection and
        benchmarks, solved here with scipy's direct solver."""
        from scipy.sparse.linalg import spsolve

        F, J = self.newton_problem(sample.inputs["coefficient"], sample.inputs["source"])
        u0 = np.zeros(self.unknowns)
        u1 = u0 - spsolve(J(u0).tocsc(), F(u0))
        return J(u1), F(u1)

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual]:
        """||F(u)|| / ||F(0)|| = ||F(u)|| / ||f|| of the stored solution (`NewtonFamily`)."""
        F, J = self.newton_problem(sample.inputs["coefficient"], sample.inputs["source"])
        u = self.interior(outputs["solution"]).ravel()
        slack = ROUNDING_FACTOR * eps
        first = float(np.linalg.norm(F(np.zeros_like(u))))
        residual = float(np.linalg.norm(F(u)))
        relative = residual / first if first else (0.0 if residual == 0.0 else np.inf)
        return [(None, relative, self.newton_bound(first, J(u), u, slack))]

    def features(self, sample: Sample) -> np.ndarray:
        """The coefficient and the source: both move the Jacobian (through u)."""
        return np.concatenate(
            [self.downsample(sample.inputs[k]).ravel() for k in ("coefficient", "source")]
        )
