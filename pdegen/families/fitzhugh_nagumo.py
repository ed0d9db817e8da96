"""FitzHugh-Nagumo diffusion-reaction, PDEBench's 2D diffusion-reaction set:

    u_t = Du Laplacian(u) + u - u^3 - k - v,    v_t = Dv Laplacian(v) + u - v,

on the square [-L/2, L/2]^2 (PDEBench: [-1, 1]^2, `grid.length: 2`) with no-flux walls,
Du = 1e-3, Dv = 5e-3, k = 5e-3, t in [0, 5], 101 frames, each species starting from i.i.d.
N(0, 1) values per cell (PDEBench's `rng.standard_normal`).

The grid is PDEBench's: n cells per axis (`grid.n`), the fields at the cell centres
x_i = -L/2 + (i + 1/2) h, h = L / n; the Laplacian is the cell-centred five-point one with
zero flux through the walls (a wall's ghost value equals the cell's), symmetric negative
semi-definite, with the constants as its null space.

Time stepping is CNAB2: Crank-Nicolson for the diffusion, second-order Adams-Bashforth for the
reaction (forward Euler at the first step), second order in time (tested). Every step solves

    (I - dt/2 D Laplacian) w^{n+1} = (I + dt/2 D Laplacian) w^n + dt (3/2 R^n - 1/2 R^{n-1})

for w = (u, v), D = diag(Du, Dv): one symmetric positive definite matrix (block diagonal, the
two species' blocks) for every step of every sample, handed to the chain solver as the same
object each step, so its factorisation is made once per sample and kept (`auto`: Cholesky).
PDEBench integrates the same semi-discretisation with scipy's RK45 at its default tolerances
(rtol 1e-3); these frames are the accurate solution of the equations as written.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.timestepping import TimeStepping
from pdegen.families.base import Family, describe_frames
from pdegen.families.cell_square import CellCentredSquare
from pdegen.families.declarations import FieldAxes, Sample
from pdegen.families.residuals import StepResidual, relative_difference, scipy_lu_solve
from pdegen.specs import rule


@dataclasses.dataclass(frozen=True)
class FitzHughNagumoProblem:
    du: float = rule(1e-3, gt=0.0)
    dv: float = rule(5e-3, gt=0.0)
    k: float = 5e-3
    t_end: float = rule(5.0, gt=0.0)
    frames: int = rule(100, ge=1, le=100000)
    #: the internal step (frames land on its multiples, or equal steps no longer than it)
    dt: float = rule(0.005, gt=0.0)
    #: the initial values' standard deviation (PDEBench: 1)
    scale: float = rule(1.0, gt=0.0)


#: `check --deep`'s bound on a re-run frame, in units of the storage's roundoff per step
REFRAME_FACTOR = 100.0


def neumann_laplacian_1d(n: int, h: float) -> sp.csr_matrix:
    """The cell-centred second difference with zero flux through both ends."""
    main = np.full(n, -2.0)
    main[[0, -1]] = -1.0
    off = np.ones(n - 1)
    return sp.diags([off, main, off], [-1, 0, 1], format="csr") / h**2


class FitzHughNagumo(CellCentredSquare, Family):
    name = "fitzhugh-nagumo"
    discretisation = (
        "cell-centred second-order finite differences with zero flux through the walls "
        "(PDEBench's grid), Crank-Nicolson for the diffusion and second-order Adams-Bashforth "
        "for the reaction (CNAB2), one factorised block-diagonal matrix for every step"
    )
    Problem = FitzHughNagumoProblem
    inputs = {"initial_u": FieldAxes(dims=(2,)), "initial_v": FieldAxes(dims=(2,))}
    outputs = {"u": FieldAxes(time=True, dims=(2,)), "v": FieldAxes(time=True, dims=(2,))}
    auto_solvers = {2: ("direct", "cholesky")}
    iterative_pc = "icc"
    symmetric = True
    positive_definite = True

    # -- the grid (`CellCentredSquare`) ----------------------------------------------------

    @property
    def unknowns(self) -> int:
        return 2 * self.n**2

    @property
    def matrix_entries(self) -> int:
        return 5 * self.unknowns

    def describe_domain(self) -> str:
        return f"{self.square_words()}, zero flux through the walls."

    @property
    def time_stepping(self) -> TimeStepping:
        p = self.problem
        times = np.linspace(0.0, p.t_end, p.frames + 1)
        return TimeStepping("cnab2", p.dt, times, initial_input="initial_u", trajectory="u")

    @property
    def solves_per_sample(self) -> int:
        return self.time_stepping.steps

    def describe_discretisation(self) -> str:
        stepping = self.time_stepping
        return (
            f"Discretisation: {self.discretisation}. Time stepping: {stepping.description}, "
            f"internal step dt = {stepping.dt:g} ({stepping.steps} steps); `u` and `v` store "
            f"{describe_frames(stepping.frame_times)}, frame 0 the initial states."
        )

    # -- the equations ----------------------------------------------------------------------

    def laplacian(self) -> sp.csr_matrix:
        one = neumann_laplacian_1d(self.n, self.h)
        eye = sp.identity(self.n, format="csr")
        return (sp.kron(one, eye) + sp.kron(eye, one)).tocsr()

    def matrices(self, step: float) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(I - step/2 D Laplacian, I + step/2 D Laplacian) on w = (u, v)."""
        lap = self.laplacian()
        p = self.problem
        diffusion = sp.block_diag([p.du * lap, p.dv * lap], format="csr")
        eye = sp.identity(2 * self.n**2, format="csr")
        left = (eye - 0.5 * step * diffusion).tocsr()
        left.sort_indices()
        return left, (eye + 0.5 * step * diffusion).tocsr()

    @staticmethod
    def stacked(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The unknowns w = (u, v) of both species' fields, as the steps solve for them."""
        return np.concatenate([u.ravel(), v.ravel()])

    def reaction(self, w: np.ndarray) -> np.ndarray:
        m = self.n**2
        u, v = w[:m], w[m:]
        return np.concatenate([u - u**3 - self.problem.k - v, u - v])

    def trajectory(self, w0: np.ndarray, solve) -> tuple[list[np.ndarray], list]:
        """CNAB2 from w0 = (u, v) flattened; `solve(A, b, x0)` returns a SolveResult. The
        matrices are built per step size (the march's steps are equal within an interval
        and, on the usual recipes, dt itself everywhere)."""
        built: dict[float, tuple] = {}
        previous: np.ndarray | None = None  # the last step's reaction (Adams-Bashforth)

        def advance(w: np.ndarray, t: float, step: float):
            if step not in built:
                built[step] = self.matrices(step)
            left, right = built[step]
            r = self.reaction(w)
            nonlocal previous
            extrapolated = r if previous is None else 1.5 * r - 0.5 * previous
            previous = r
            result = solve(left, right @ w + step * extrapolated, w)
            return result.x, result

        return self.time_stepping.march(w0.copy(), advance)

    # -- samples ----------------------------------------------------------------------------

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        shape = self.grid_shape
        u0 = rng.standard_normal(shape) * self.problem.scale
        v0 = rng.standard_normal(shape) * self.problem.scale
        return Sample(index, {"initial_u": u0, "initial_v": v0})

    def system(self, sample: Sample):
        """The first step's system (ordering and benchmarks look at one operator)."""
        left, right = self.matrices(self.problem.dt)
        w0 = self.stacked(sample.inputs["initial_u"], sample.inputs["initial_v"])
        return left, right @ w0 + self.problem.dt * self.reaction(w0)

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        w0 = self.stacked(sample.inputs["initial_u"], sample.inputs["initial_v"])
        frames, results = self.trajectory(w0, chain.solve)
        m, shape = self.n**2, (len(frames), *self.grid_shape)
        stacked = np.asarray(frames)
        return {"u": stacked[:, :m].reshape(shape), "v": stacked[:, m:].reshape(shape)}, results

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual]:
        """For `check --deep`: a frame is every few steps of a two-step scheme, so no step's
        system can be re-assembled from the stored frames; instead the sample is run again
        from its stored initial states with scipy's sparse LU (a second implementation of
        every step's solve, no PETSc) and compared with every stored frame of u and v:
        relative L2 difference, bound REFRAME_FACTOR x eps x the steps up to that frame (the
        stored initial state's rounding and the solves' carried through a dissipative
        march; a wrong frame differs by order one)."""
        w0 = self.stacked(sample.inputs["initial_u"], sample.inputs["initial_v"])
        frames, _ = self.trajectory(w0, scipy_lu_solve())
        per_frame = self.time_stepping.steps / self.problem.frames
        out = []
        for k in range(1, len(frames)):
            stored = self.stacked(outputs["u"][k], outputs["v"][k])
            relative = relative_difference(frames[k], stored)
            out.append((k, relative, REFRAME_FACTOR * eps * k * per_frame))
        return out

    def residual_tolerance(self, rtol: float) -> str:
        return f"{REFRAME_FACTOR:g} x the storage's roundoff per step, re-run with scipy"

    def features(self, sample: Sample) -> np.ndarray:
        return self.downsample(sample.inputs["initial_u"]).ravel()


__all__ = ["FitzHughNagumo", "FitzHughNagumoProblem", "neumann_laplacian_1d"]
