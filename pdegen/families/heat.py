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
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pdegen.families.base import Family, FieldAxes, Sample
from pdegen.fields import sample_rng
from pdegen.operators import diffusion_operator
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
    Problem = HeatProblem
    inputs = {"coefficient": FieldAxes(), "initial": FieldAxes()}
    outputs = {"solution": FieldAxes(time=True)}  # the trajectory, u[t] at time t * dt
    auto_solvers = {2: ("direct", "cholesky"), 3: ("cg", "ilu")}  # docs/benchmarks.md
    # per implicit step, measured ("Heat's implicit step" in docs/benchmarks.md): the one
    # factorisation of a trajectory wins in 2D up to 511^2, CG + mg from 1023^2 (2.1x at 10
    # steps); in 3D CG + mg overtakes CG + ILU at 64^3 and is 1.7x faster at 96^3
    auto_multigrid = {2: (1023, ("cg", "mg")), 3: (63, ("cg", "mg"))}
    iterative_pc = "jacobi"
    symmetric = True
    positive_definite = True

    @property
    def theta(self) -> float:
        return 1.0 if self.problem.scheme == "backward-euler" else 0.5

    @property
    def times(self) -> np.ndarray:
        return self.problem.dt * np.arange(self.problem.steps + 1)

    def stepping_matrices(self, a: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(I + theta dt A, I - (1 - theta) dt A) for the coefficient a."""
        A, _ = diffusion_operator(np.asarray(a, dtype=float), self.h)
        eye = sp.identity(A.shape[0], format="csr")
        dt = self.problem.dt
        left = (eye + self.theta * dt * A).tocsr()
        right = (eye - (1.0 - self.theta) * dt * A).tocsr()
        left.sort_indices()
        return left, right

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        a = self.coefficient(rng, self.problem.coefficient)
        u0 = self.grf(rng, self.problem.initial)
        u0 *= _interior_mask(u0.shape)  # zero on the boundary, like every later state
        return Sample(index, {"coefficient": a, "initial": u0})

    def system(self, sample: Sample):
        """The first step's system (ordering and benchmarks look at one operator)."""
        left, right = self.stepping_matrices(sample.inputs["coefficient"])
        u0 = self.interior(sample.inputs["initial"]).ravel()
        return left, right @ u0 + self.problem.dt * self.problem.source

    def trajectory(self, a: np.ndarray, u0: np.ndarray, solve) -> tuple[np.ndarray, list]:
        """March from the nodal initial field u0; `solve(A, b, x0)` returns a SolveResult."""
        left, right = self.stepping_matrices(a)
        u = self.interior(u0).ravel().copy()
        frames = [u.copy()]
        results = []
        force = self.problem.dt * self.problem.source
        for _ in range(self.problem.steps):
            result = solve(left, right @ u + force, u)
            results.append(result)
            u = result.x
            frames.append(u.copy())
        shape = (self.problem.steps + 1, *self.grid_shape)
        out = np.zeros(shape)
        out[(slice(None),) + (slice(1, -1),) * self.dim] = np.reshape(
            frames, (self.problem.steps + 1,) + (self.n,) * self.dim
        )
        return out, results

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        """A trajectory: each step starts from the previous state (the natural first guess of
        time stepping, used by every method alike)."""
        u, results = self.trajectory(
            sample.inputs["coefficient"], sample.inputs["initial"], chain.solve
        )
        return {"solution": u}, results

    def features(self, sample: Sample) -> np.ndarray:
        return self.downsample(sample.inputs["coefficient"]).ravel()


def _interior_mask(shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape)
    mask[tuple(slice(1, -1) for _ in shape)] = 1.0
    return mask
