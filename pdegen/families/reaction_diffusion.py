"""Reaction-diffusion trajectories u_t = div(a grad u) + r(u), u = 0 on the boundary.

The reactions (`problem.reaction`):
- `allen-cahn`: r(u) = (u - u^3) / epsilon^2, phases u = +-1 separated by interfaces of width
  about epsilon; from a small random initial state (spinodal decomposition) the phases form
  within a few epsilon^2 of time and then coarsen. The recipe check asks for
  epsilon >= h (at least one grid spacing per interface width).
- `fisher-kpp`: r(u) = rate u (1 - u), a front invading u = 0 behind which u = 1; its initial
  state is the logistic 1 / (1 + exp(-field)) of the random field, so it lies in (0, 1).
Zero Dirichlet boundary for both (the initial state is set to 0 on the boundary, like heat's).

Time stepping is the theta scheme (theta = 1 backward Euler, first order; theta = 1/2
Crank-Nicolson, second order; both tested under dt refinement): with A the conservative
diffusion matrix of `pdegen.discretisation.operators` and G(u) = -A u + r(u), each step solves

    F(v) = v - u^n - dt (theta G(v) + (1 - theta) G(u^n)) = 0

for v = u^{n+1} by Newton (`solvers.newton`, from v = u^n), whose Jacobian

    J(v) = I + theta dt (A - diag r'(v))

changes at every Newton step and every time step (unlike heat's one matrix per trajectory):
what a recycling method or a kept factorisation can reuse across them is what the benchmarks
measure. J is symmetric, since A is, but positive definite only when theta dt max r' < 1 +
theta dt lambda_min(A): for Allen-Cahn, max r' = 1 / epsilon^2 (at u = 0), so any step with
theta dt > epsilon^2 can meet an indefinite Jacobian near u = 0 (it turns definite as u
reaches +-1, where r' = -2 / epsilon^2). The default dt = 0.001 < epsilon^2 = 0.0016 keeps
every Jacobian definite (and each step's Newton solve to 3-4 iterations: a step of 0.002
takes 18 at the first step, which jumps across the whole phase separation), but a recipe may
choose otherwise, and a family's declaration holds for every recipe: symmetric, not positive
definite. CG, recycling CG, ICC and Cholesky are refused; GMRES, GCRO-DR and LU run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.operators import diagonal_places, on_pattern
from pdegen.discretisation.timestepping import THETA, TimeStepping, uniform_frames
from pdegen.errors import RecipeError
from pdegen.families.base import FieldAxes, Sample
from pdegen.families.newton import NewtonFamily
from pdegen.families.residuals import ROUNDING_FACTOR, StepResidual
from pdegen.specs import CoefficientSpec, FieldSpec, NewtonSpec, nested, rule

#: (t) -> source on the full node grid: a manufactured forcing (tests), added to r(u)
Forcing = Callable[[float], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ReactionDiffusionProblem:
    coefficient: CoefficientSpec = nested(CoefficientSpec, kind="lognormal", sigma=1.0)
    initial: FieldSpec = nested(FieldSpec, sigma=1.0)
    reaction: Literal["allen-cahn", "fisher-kpp"] = "allen-cahn"
    epsilon: float = rule(0.04, gt=0.0)
    rate: float = rule(50.0, gt=0.0)
    scheme: Literal["backward-euler", "crank-nicolson"] = "backward-euler"
    dt: float = rule(0.001, gt=0.0)
    steps: int = rule(20, ge=1, le=100000)
    newton: NewtonSpec = nested(NewtonSpec)


def reaction_law(problem: ReactionDiffusionProblem) -> tuple[Callable, Callable]:
    """(r, r') of the recipe's reaction."""
    if problem.reaction == "allen-cahn":
        square = problem.epsilon**2  # divided by at use: no error for a recipe the check refuses
        return (lambda u: (u - u**3) / square), (lambda u: (1.0 - 3.0 * u**2) / square)
    rate = problem.rate
    return (lambda u: rate * u * (1.0 - u)), (lambda u: rate * (1.0 - 2.0 * u))


class ReactionDiffusion(NewtonFamily):
    name = "reaction-diffusion"
    discretisation = (
        "second-order finite differences in space (the conservative (2d+1)-point stencil of "
        "div(a grad u) with harmonic face means, u = 0 on the boundary nodes) plus the pointwise "
        "reaction, marched in time by the theta scheme below with one Newton solve per step"
    )
    #: on `grid.layout: cells` (`Family.use_cells`)
    discretisation_on_cells = (
        "second-order finite volumes in space (the conservative (2d+1)-point stencil of "
        "div(a grad u) on the cell-centred grid, harmonic face means, u = 0 on the walls half "
        "a cell from the outer centres) plus the pointwise reaction at the centres, marched in "
        "time by the theta scheme below with one Newton solve per step"
    )
    layouts = ("nodes", "cells")
    Problem = ReactionDiffusionProblem
    inputs = {"coefficient": FieldAxes(), "initial": FieldAxes()}
    outputs = {"solution": FieldAxes(time=True)}  # the trajectory, u[t] at time t * dt
    # docs/benchmarks.md, "Newton families": when every step's Jacobian is definite (the
    # default recipe) GMRES + ILU is fastest in 2D (1.5-1.8x over LU at 64^2) and GMRES + mg
    # at 128^2; in 3D LU loses 16x. Where a Jacobian can be indefinite, 2D runs LU instead
    # (`resolve_for`): 4.5x faster there, and GMRES + ILU and multigrid fail samples
    auto_solvers = {2: ("gmres", "ilu"), 3: ("gmres", "ilu")}
    auto_multigrid = {2: (127, ("gmres", "mg"))}
    iterative_pc = "ilu"
    symmetric = True  # symmetric, definite only for small enough dt (module docstring)

    def __init__(self, n: int, dim: int, problem: ReactionDiffusionProblem):
        super().__init__(n, dim, problem)
        self.r, self.dr = reaction_law(problem)

    @classmethod
    def check(cls, recipe) -> None:
        cells = recipe.grid.layout == "cells"  # h = 1/n there, 1/(n + 1) on the nodes
        p, h = recipe.problem, 1.0 / (recipe.grid.n + (0 if cells else 1))
        need = 1.0 / p.epsilon - (0.0 if cells else 1.0)  # n for h = epsilon (inf: denormal)
        if p.reaction == "allen-cahn" and p.epsilon < h:
            raise RecipeError(
                f"problem.epsilon: {p.epsilon:g} is below the grid spacing {h:.4g}: the "
                "interfaces are not resolved (raise it"
                + (f", or raise grid.n to at least {math.ceil(need)}" if need < 1e9 else "")
                + ")"
            )
        stiffness = p.epsilon**-2.0 if p.reaction == "allen-cahn" else p.rate
        if not math.isfinite(p.dt * (p.steps + 1) * stiffness):
            raise RecipeError(
                f"problem.dt: {p.dt:g} is too large: dt x steps x the reaction's stiffness "
                f"({stiffness:g}) overflows (lower dt or steps)"
            )

    @property
    def definite_steps(self) -> bool:
        """Whether every step's Jacobian I + theta dt (A - diag r'(u)) is positive definite
        whatever the state: theta dt max r' < 1, with max r' = 1 / epsilon^2 for Allen-Cahn
        and rate for Fisher-KPP (both at u = 0, for states in [-1, 1] and [0, 1])."""
        p = self.problem
        step = self.theta * p.dt  # compared without dividing: epsilon may be denormal
        return step < p.epsilon**2 if p.reaction == "allen-cahn" else step * p.rate < 1.0

    def resolve_for(self, method: str, pc: str) -> tuple[str, str]:
        """`method: auto` in 2D runs LU where a step's Jacobian can be indefinite: the one
        measured pair that converged every sample there, and the fastest (docs/benchmarks.md,
        reaction2d-indefinite). Neither choice carries anything, so the ordering is unchanged."""
        if method == "auto" and self.dim == 2 and not self.definite_steps:
            pc = "lu" if pc == "auto" else pc
            return self.resolve_solver("direct", pc, self.dim, self.n, self.multigrid_layout)
        return super().resolve_for(method, pc)

    @property
    def time_stepping(self) -> TimeStepping:
        """A theta scheme stepped by dt (one Newton solve per step), a frame after every
        step, frame 0 the initial state."""
        p = self.problem
        return TimeStepping(p.scheme, p.dt, uniform_frames(p.dt, p.steps), initial_input="initial")

    @property
    def theta(self) -> float:
        return THETA[self.problem.scheme]

    # -- the discrete equations -----------------------------------------------------------

    def stepping(self, a: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        """(A, M = I + theta dt A, the positions of the diagonal in the CSR data)."""
        A = self.diffusion_matrix(a)
        diagonal = diagonal_places(self.dim, self.n)
        M = on_pattern(A, A.data * (self.theta * self.problem.dt))
        M.data[diagonal] += 1.0
        return A, M, diagonal

    def step_problem(self, A, M, diagonal, u, t: float, forcing: Forcing | None = None):
        """(F, J) of the step from state u at time t to t + dt."""
        dt, theta = self.problem.dt, self.theta
        c = -u + (1.0 - theta) * dt * (A @ u - self.r(u))
        if forcing is not None:
            s = [self.interior(forcing(time)).ravel() for time in (t, t + dt)]
            c -= dt * ((1.0 - theta) * s[0] + theta * s[1])

        def residual(v: np.ndarray) -> np.ndarray:
            return M @ v - theta * dt * self.r(v) + c

        def jacobian(v: np.ndarray) -> sp.csr_matrix:
            J = on_pattern(M, M.data.copy())  # the shared pattern, known to the solver
            J.data[diagonal] -= theta * dt * self.dr(v)
            return J

        return residual, jacobian

    def initial_state(self, field_: np.ndarray) -> np.ndarray:
        """The stored initial state from the random field: zero on the boundary; for
        Fisher-KPP the logistic of the field, in (0, 1)."""
        if self.problem.reaction == "fisher-kpp":
            field_ = 1.0 / (1.0 + np.exp(-field_))
        return self.zero_boundary(field_)

    def trajectory(
        self, a: np.ndarray, u0: np.ndarray, chain, forcing: Forcing | None = None
    ) -> tuple[np.ndarray, list]:
        """March from the nodal initial state u0: one Newton solve (NewtonResult) per step,
        each from the previous state (`NewtonFamily.newton_march`, which stops at a failed
        step)."""
        A, M, diagonal = self.stepping(a)
        frames, results = self.newton_march(
            self.interior(np.asarray(u0, dtype=float)).ravel(),
            lambda u, t, step: self.step_problem(A, M, diagonal, u, t, forcing),
            self.newton(chain).solve,
        )
        return self.nodal_frames(frames), results

    # -- samples ----------------------------------------------------------------------------

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        a = self.coefficient(rng, self.problem.coefficient)
        u0 = self.initial_state(self.grf(rng, self.problem.initial))
        return Sample(index, {"coefficient": a, "initial": u0})

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        u, results = self.trajectory(sample.inputs["coefficient"], sample.inputs["initial"], chain)
        return {"solution": u}, results

    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        """The first Newton system of the first step, J(u^0) dx = F(u^0) (inspection,
        ordering and benchmarks look at one operator)."""
        A, M, diagonal = self.stepping(sample.inputs["coefficient"])
        u0 = self.interior(sample.inputs["initial"]).ravel()
        F, J = self.step_problem(A, M, diagonal, u0, 0.0)
        return J(u0), F(u0)

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual]:
        """Per stored step n -> n + 1: ||F_n(u^{n+1})|| / ||F_n(u^n)|| (`NewtonFamily`)."""
        A, M, diagonal = self.stepping(sample.inputs["coefficient"])
        frames = [self.interior(u).ravel() for u in outputs["solution"]]
        slack = ROUNDING_FACTOR * eps
        out = []
        for n in range(len(frames) - 1):
            F, J = self.step_problem(A, M, diagonal, frames[n], n * self.problem.dt)
            first = float(np.linalg.norm(F(frames[n])))
            residual = float(np.linalg.norm(F(frames[n + 1])))
            relative = residual / first if first else (0.0 if residual == 0.0 else np.inf)
            bound = self.newton_bound(first, J(frames[n + 1]), frames[n + 1], slack)
            out.append((n + 1, relative, bound))
        return out

    def features(self, sample: Sample) -> np.ndarray:
        return np.concatenate(
            [self.downsample(sample.inputs[k]).ravel() for k in ("coefficient", "initial")]
        )
