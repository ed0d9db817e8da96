"""Diffusion-sorption, PDEBench's 1D set: u_t = D / R(u) u_xx on (0, 1), nonlinear, by Newton.

The retardation factor is Freundlich's, as PDEBench codes it (`src/sim_diff_sorp.py`, read at
its commit 9754b4c):

    R(u) = 1 + ((1 - phi) / phi) rho_s k_f n_f (u + 1e-6)^(n_f - 1),

D = 5e-4, phi = 0.29, rho_s = 2880, k_f = 3.5e-4, n_f = 0.874 (the 1e-6 keeps R finite at
u = 0, where (u)^(n_f - 1) is singular). PDEBench's grid and boundary values, which its
paper words differently: 1024 cells on [0, 1], the fields at the cell centres; the left
ghost cell (at x = -h/2) holds u = 1 (an inflow); the right ghost cell holds
g = D (u_{N-2} - u_{N-1}) / h, which is -D u_x (the paper writes u = D u_x; the code's sign
makes it an outflow). Each sample starts from one constant, uniform on (0, 0.2) (PDEBench:
`ones * uniform(0, 0.2)`), stored as the input field `initial`; frames every 5 time units to
t = 500 (101 frames, PDEBench's released file).

With A the cell-centred second difference including the right ghost's linear coupling, and c
the left ghost's constant, G(u) = D (A u + c) / R(u). Time stepping is the theta scheme
(backward Euler by default: the start, a jump from the constant to the left boundary's 1,
would ring under Crank-Nicolson), each step solving

    F(v) = v - u^n - dt (theta G(v) + (1 - theta) G(u^n)) = 0

by Newton (PETSc SNES, `solvers.newton`) through the chain solver, whose Jacobian
I - theta dt (D diag(1/R(v)) A + D diag(d(1/R)/du (A v + c))) is tridiagonal and nonsymmetric:
`auto` factorises it (LU). PDEBench integrates its semi-discretisation with scipy's RK45 at
rtol 1e-3; here the same semi-discretisation is stepped implicitly with Newton to 1e-8.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.operators import on_pattern
from pdegen.discretisation.timestepping import THETA, TimeStepping
from pdegen.families.declarations import TIME_AXIS, FieldAxes, Sample
from pdegen.families.newton import NewtonFamily
from pdegen.families.residuals import StepResidual, relative_difference
from pdegen.specs import NewtonSpec, nested, rule

#: PDEBench's guard against the singular power at u = 0
SINGULARITY_GUARD = 1e-6
#: `check --deep`: a re-run frame's bound, in units of (Newton rtol + roundoff) per step
RERUN_FACTOR = 100.0


@dataclasses.dataclass(frozen=True)
class DiffusionSorptionProblem:
    diffusivity: float = rule(5e-4, gt=0.0)
    porosity: float = rule(0.29, gt=0.0, lt=1.0)
    density: float = rule(2880.0, gt=0.0)
    freundlich_k: float = rule(3.5e-4, ge=0.0)
    freundlich_n: float = rule(0.874, gt=0.0)
    #: the initial constant is uniform on (0, initial_max)
    initial_max: float = rule(0.2, gt=0.0)
    scheme: Literal["backward-euler", "crank-nicolson"] = "backward-euler"
    t_end: float = rule(500.0, gt=0.0)
    frames: int = rule(100, ge=1, le=100000)
    dt: float = rule(0.5, gt=0.0)
    newton: NewtonSpec = nested(NewtonSpec)


class DiffusionSorption(NewtonFamily):
    name = "diffusion-sorption"
    discretisation = (
        "cell-centred second-order finite differences on PDEBench's grid (the left ghost cell "
        "holding 1, the right one -D u_x), the retardation 1/R(u) pointwise, marched by the "
        "theta scheme below with one Newton solve per step"
    )
    Problem = DiffusionSorptionProblem
    grid_dims = (1,)
    inputs = {"initial": FieldAxes(dims=(1,))}
    outputs = {"solution": FieldAxes(time=True, dims=(1,))}
    auto_solvers = {1: ("direct", "lu")}
    iterative_pc = "ilu"
    stores_boundary_nodes = False
    layouts = ("cells",)  # its own grid is cell-centred

    def __init__(self, n: int, dim: int, problem: DiffusionSorptionProblem):
        self.n, self.dim, self.problem = n, dim, problem
        self.h = 1.0 / n
        self.x = (np.arange(n) + 0.5) * self.h

    # -- the grid ---------------------------------------------------------------------------

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.n,)

    @property
    def coordinates(self) -> dict[str, np.ndarray]:
        return {TIME_AXIS: self.times, "x": self.x}

    def interior(self, array: np.ndarray) -> np.ndarray:
        return array  # cells: the boundary lies on the ghost cells

    def grid_words(self) -> str:
        return f"{self.n}-cell grid"

    def describe_domain(self) -> str:
        return (
            f"Domain: the interval [0, 1], {self.n} cells (h = {self.h:g}), fields at the cell "
            "centres; the boundary values live on ghost cells (module text above)."
        )

    @property
    def time_stepping(self) -> TimeStepping:
        p = self.problem
        times = np.linspace(0.0, p.t_end, p.frames + 1)
        return TimeStepping(p.scheme, p.dt, times, initial_input="initial")

    @property
    def solves_per_sample(self) -> int:
        return self.time_stepping.steps

    # -- the equations ----------------------------------------------------------------------

    def operator(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """(A, c): u_xx ~ A u + c, with PDEBench's ghost cells."""
        A, c, _, _ = self._operator
        return A, c

    @functools.cached_property
    def _operator(self) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
        """(A, c, each stored value's row, where the diagonal sits in A's values): built
        once per family, since every step's Jacobian is a new set of values on A's pattern."""
        n, h, D = self.n, self.h, self.problem.diffusivity
        main = np.full(n, -2.0)
        lower, upper = np.ones(n - 1), np.ones(n - 1)
        # the right ghost g = D (u_{N-2} - u_{N-1}) / h enters the last row as g / h^2
        main[-1] -= D / h
        lower[-1] += D / h
        A = sp.diags([lower, main, upper], [-1, 0, 1], format="csr") / h**2
        A.sort_indices()
        c = np.zeros(n)
        c[0] = 1.0 / h**2  # the left ghost's u = 1
        rows = np.repeat(np.arange(n), np.diff(A.indptr))
        return A, c, rows, np.flatnonzero(A.indices == rows)

    def inverse_retardation(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1 / R(u), d(1 / R)/du)."""
        p = self.problem
        scale = (1.0 - p.porosity) / p.porosity * p.density * p.freundlich_k * p.freundlich_n
        power = (u + SINGULARITY_GUARD) ** (p.freundlich_n - 1.0)
        R = 1.0 + scale * power
        dR = scale * (p.freundlich_n - 1.0) * power / (u + SINGULARITY_GUARD)
        return 1.0 / R, -dR / R**2

    def rate(self, A, c, u: np.ndarray) -> np.ndarray:
        """G(u) = D (A u + c) / R(u)."""
        inverse, _ = self.inverse_retardation(u)
        return self.problem.diffusivity * inverse * (A @ u + c)

    def step_problem(self, A, c, u: np.ndarray, step: float):
        """(F, J) of the step from u by `step`."""
        theta, D = THETA[self.problem.scheme], self.problem.diffusivity
        explicit = -u - (1.0 - theta) * step * self.rate(A, c, u)
        _, _, rows, diagonal = self._operator  # A's pattern

        def residual(v: np.ndarray) -> np.ndarray:
            return v - theta * step * self.rate(A, c, v) + explicit

        def jacobian(v: np.ndarray) -> sp.csr_matrix:
            inverse, d_inverse = self.inverse_retardation(v)
            data = A.data * (D * inverse)[rows]
            data[diagonal] += D * d_inverse * (A @ v + c)
            data *= -theta * step
            data[diagonal] += 1.0
            return on_pattern(A, data)

        return residual, jacobian

    def trajectory(self, u0: np.ndarray, newton_solve) -> tuple[list[np.ndarray], list]:
        """March from u0, one Newton solve per step (`NewtonFamily.newton_march`)."""
        A, c = self.operator()
        return self.newton_march(u0, lambda u, t, step: self.step_problem(A, c, u, step),
                                 newton_solve)  # fmt: skip

    # -- samples ----------------------------------------------------------------------------

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        value = rng.uniform(0.0, self.problem.initial_max)
        return Sample(index, {"initial": np.full(self.n, value)})

    def system(self, sample: Sample):
        """The first Newton system of the first step (ordering and benchmarks)."""
        A, c = self.operator()
        u0 = sample.inputs["initial"]
        F, J = self.step_problem(A, c, u0, self.problem.dt)
        return J(u0), F(u0)

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        newton = self.newton(chain)
        frames, results = self.trajectory(sample.inputs["initial"], newton.solve)
        return {"solution": np.asarray(frames)}, results

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual]:
        """For `check --deep`: frames are every (t_end / frames) / dt steps, so the sample is
        run again from its stored initial state with a Newton method of numpy and scipy's
        sparse LU (a second implementation: no PETSc), to the recipe's Newton tolerances, and
        compared with every stored frame: relative L2 difference, bound RERUN_FACTOR x (the
        Newton rtol + the storage's roundoff) x the steps up to that frame."""
        from scipy.sparse.linalg import spsolve

        spec = self.problem.newton

        def newton_solve(F, J, x0):
            from types import SimpleNamespace

            x = x0.copy()
            first = float(np.linalg.norm(F(x)))
            for _ in range(spec.max_it):
                r = F(x)
                if np.linalg.norm(r) <= max(spec.rtol * first * 1e-2, spec.atol * 1e-2):
                    break
                x = x - spsolve(J(x).tocsc(), r)
            return SimpleNamespace(x=x, converged=True)

        frames, _ = self.trajectory(sample.inputs["initial"], newton_solve)
        per_frame = self.time_stepping.steps / self.problem.frames
        stored = outputs["solution"]
        out = []
        for k in range(1, len(frames)):
            relative = relative_difference(frames[k], stored[k])
            out.append((k, relative, RERUN_FACTOR * (spec.rtol + eps) * k * per_frame))
        return out

    def residual_tolerance(self, rtol: float) -> str:
        return f"{RERUN_FACTOR:g} x (Newton's rtol + the storage's roundoff) per step, re-run"

    def features(self, sample: Sample) -> np.ndarray:
        return self.downsample(sample.inputs["initial"]).ravel()


__all__ = ["DiffusionSorption", "DiffusionSorptionProblem"]
