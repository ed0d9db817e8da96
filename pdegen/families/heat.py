"""Heat u_t = div(a grad u) + f with u = 0 on the boundary, by implicit time stepping.

With A the conservative diffusion matrix and theta = 1 (backward Euler) or 1/2
(Crank-Nicolson), each step solves
    (I + theta dt A) u^{n+1} = (I - (1 - theta) dt A) u^n + dt f,
so all steps of one trajectory share one symmetric positive definite matrix: the chain solver
is handed the same matrix object each step and keeps its factorisation, preconditioner or
recycled space. Both schemes are unconditionally stable: for f = 0 the discrete energy
||u^n|| never grows (the amplification factors of A's eigenvalues lie in [-1, 1]).
Crank-Nicolson is second order in time, backward Euler first order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.timestepping import THETA, TimeStepping, uniform_frames
from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.families.residuals import StepResidual, linear_residual
from pdegen.specs import CoefficientSpec, FieldSpec, nested, rule


@dataclasses.dataclass(frozen=True)
class HeatProblem:
    coefficient: CoefficientSpec = nested(CoefficientSpec, kind="lognormal", sigma=1.0)
    initial: FieldSpec = nested(FieldSpec, sigma=5.0)
    source: float = 0.0
    scheme: Literal["backward-euler", "crank-nicolson"] = "crank-nicolson"
    dt: float = rule(0.002, gt=0.0)
    steps: int = rule(20, ge=1, le=100000)


class Heat(Family):
    name = "heat"
    discretisation = (
        "second-order finite differences in space (the conservative (2d+1)-point stencil of "
        "div(a grad u) with harmonic face means, u = 0 on the boundary nodes), marched in time "
        "by the theta scheme below with one symmetric positive definite matrix per trajectory"
    )
    #: on `grid.layout: cells` (`Family.use_cells`)
    discretisation_on_cells = (
        "second-order finite volumes in space (the conservative (2d+1)-point stencil of "
        "div(a grad u) on the cell-centred grid, harmonic means of the neighbouring cells' "
        "coefficients at their shared faces, u = 0 on the walls half a cell from the outer "
        "centres), marched in time by the theta scheme below with one symmetric positive "
        "definite matrix per trajectory"
    )
    layouts = ("nodes", "cells")
    Problem = HeatProblem
    inputs = {"coefficient": FieldAxes(), "initial": FieldAxes()}
    outputs = {"solution": FieldAxes(time=True)}  # the trajectory, u[t] at time t * dt
    # measured: docs/benchmarks.md, "Recycling against baselines"
    auto_solvers = {2: ("direct", "cholesky"), 3: ("cg", "ilu")}
    # per implicit step, measured ("Heat's implicit step" in docs/benchmarks.md): the one
    # factorisation of a trajectory wins in 2D up to 511^2, CG + mg from 1023^2 (2.1x at 10
    # steps); in 3D CG + mg overtakes CG + ILU at 62^3 (1.04x there, halved unevenly; ILU
    # 1.05x faster at 55^3: "Uneven halving instead of steps by 3") and is 1.7x faster at 96^3
    auto_multigrid = {2: (1023, ("cg", "mg")), 3: (62, ("cg", "mg"))}
    iterative_pc = "jacobi"
    symmetric = True
    positive_definite = True

    @property
    def time_stepping(self) -> TimeStepping:
        """A theta scheme stepped by dt, a frame after every step, frame 0 the initial state."""
        p = self.problem
        return TimeStepping(p.scheme, p.dt, uniform_frames(p.dt, p.steps), initial_input="initial")

    @property
    def theta(self) -> float:
        return THETA[self.problem.scheme]

    def stepping_matrices(self, a: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(I + theta dt A, I - (1 - theta) dt A) for the coefficient a."""
        A = self.diffusion_matrix(a)
        eye = sp.identity(A.shape[0], format="csr")
        dt = self.problem.dt
        left = (eye + self.theta * dt * A).tocsr()
        right = (eye - (1.0 - self.theta) * dt * A).tocsr()
        left.sort_indices()
        return left, right

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        a = self.coefficient(rng, self.problem.coefficient)
        u0 = self.zero_boundary(self.grf(rng, self.problem.initial))  # like every later state
        return Sample(index, {"coefficient": a, "initial": u0})

    def system(self, sample: Sample):
        """The first step's system (ordering and benchmarks look at one operator)."""
        left, right = self.stepping_matrices(sample.inputs["coefficient"])
        u0 = self.interior(sample.inputs["initial"]).ravel()
        return left, right @ u0 + self.problem.dt * self.problem.source

    def trajectory(self, a: np.ndarray, u0: np.ndarray, solve) -> tuple[np.ndarray, list]:
        """March from the nodal initial field u0; `solve(A, b, x0)` returns a SolveResult."""
        left, right = self.stepping_matrices(a)
        force = self.problem.dt * self.problem.source

        def advance(u: np.ndarray, t: float, step: float):
            result = solve(left, right @ u + force, u)
            return result.x, result

        frames, results = self.time_stepping.march(self.interior(u0).ravel().copy(), advance)
        return self.nodal_frames(frames), results

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        """A trajectory: each step starts from the previous state (the natural first guess of
        time stepping, used by every method alike)."""
        u, results = self.trajectory(
            sample.inputs["coefficient"], sample.inputs["initial"], chain.solve
        )
        return {"solution": u}, results

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual]:
        """Every stored frame pair: (I + theta dt A) u^{n+1} = (I - (1-theta) dt A) u^n + dt f,
        from the stored frame n (frame 0 is the initial state: `check` compares them)."""
        left, right = self.stepping_matrices(sample.inputs["coefficient"])
        force = self.problem.dt * self.problem.source
        frames = [self.interior(u).ravel() for u in outputs["solution"]]
        absolute = abs(right)
        out = []
        for n in range(len(frames) - 1):
            b = right @ frames[n] + force
            # || |R| |u^n| || + || dt f ||: how far rounding u^n and a can move b
            magnitude = float(np.linalg.norm(absolute @ np.abs(frames[n])))
            magnitude += abs(force) * math.sqrt(frames[n].size)
            out.append((n + 1, *linear_residual(left, frames[n + 1], b, magnitude, rtol, eps)))
        return out

    def features(self, sample: Sample) -> np.ndarray:
        return self.downsample(sample.inputs["coefficient"]).ravel()
