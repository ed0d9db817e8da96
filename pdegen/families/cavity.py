"""Lid-driven cavity flow: incompressible Navier-Stokes on the MAC grid, by projection.

    u_t + (u . grad) u = div(nu grad u) - grad p,   div u = 0

in the unit square or cube, no-slip walls, the top wall y = 1 (the lid) sliding along x at
speed U; fluid at rest at t = 0, the lid started impulsively (Ghia, Ghia and Shin's problem in
2D; the lid-driven cube in 3D). The Reynolds number
Re = U / nu_0 is drawn per sample, and the viscosity is nu_0 times the `viscosity` field
(constant 1 by default; a log-normal random field optionally), stored on the nodes.

Space: `Stokes`' marker-and-cell grid (n + 1 cells per axis, velocities on the faces,
pressure at the cell centres, the viscous operator with the walls' tangential condition by
reflection), whose geometry this family inherits, in 2D or 3D. Convection is the advective
form w . grad u with central differences, w the previous step's velocity averaged to each face
(Picard/Oseen linearisation).

Time: backward Euler with the convection linearised about the last step, and the incremental
pressure-correction projection (Chorin, Van Kan):
1. momentum: (I/dt - div(nu grad) + w . grad) u* = u^n / dt - grad p^n (+ the lid's terms):
   a nonsymmetric matrix that changes at every step (w does), the sequence Krylov recycling
   is for; it goes through the recipe's chain solver;
2. pressure: -Laplacian phi = -div u* / dt with zero flux through the walls (one cell
   pinned): the same symmetric positive definite matrix at every step of every sample,
   factorised once per batch (Cholesky, a chain solver of its own);
3. u^{n+1} = u* - dt grad phi, p^{n+1} = p^n + phi: discretely divergence-free (to the
   pressure solve's rounding, tested).
A steady state of the march is the discrete steady Navier-Stokes solution (u* = u^{n+1} =
u^n, phi = 0), which is what the Ghia comparison tests. First order in time (measured);
`scheme: bdf2` replaces backward Euler by BDF2 (the convection linearised about 2u^n -
u^(n-1), the projection with dt * 2/3), second order in the velocity (measured). The
coupled Oseen step (the saddle point with its pressure, by a Schur-complement block
preconditioner) was measured 10x slower per sample (docs/benchmarks.md, "Cavity flow").

Stored: velocity_x, velocity_y and pressure interpolated to the node grid (`Stokes`), frames at
fixed times, frame 0 the fluid at rest.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.mac_rectangle import SummedPattern
from pdegen.discretisation.timestepping import TimeStepping, backward_difference
from pdegen.errors import RecipeError
from pdegen.families.base import describe_frames
from pdegen.families.declarations import FieldAxes, Sample
from pdegen.families.stokes import (
    Stokes,
    ViscositySpec,
    _at,
    _face_shape,
    _gradient,
    _pair_mean,
)
from pdegen.specs import RangeSpec, nested, rule


@dataclasses.dataclass(frozen=True)
class CavityProblem:
    reynolds: RangeSpec = nested(RangeSpec, min=100.0, max=1000.0)
    lid_speed: RangeSpec = nested(RangeSpec, min=1.0, max=1.0)
    #: the viscosity's shape: nu = (lid speed / Re) times this field
    viscosity: ViscositySpec = nested(ViscositySpec, kind="constant")
    t_end: float = rule(8.0, gt=0.0)
    frames: int = rule(16, ge=1, le=100000)
    dt: float = rule(0.01, gt=0.0)
    #: `euler`: backward Euler (first order); `bdf2`: second order in the velocity
    scheme: Literal["euler", "bdf2"] = "euler"
    #: stop marching once max |u^{n+1} - u^n| / (dt U) falls below this (the change per unit
    #: time relative to the lid speed): the later frames hold the steady state; None: march
    #: to t_end
    steady: float | None = rule(None, gt=0.0)


#: the recipe's `scheme` -> the time stepping's name (`SCHEME_NAMES`)
SCHEMES = {"euler": "oseen-projection", "bdf2": "oseen-projection-bdf2"}


class SteadyAt:
    """The momentum solve of the step after which the march was steady (every field of its
    `solvers.sequence.SolveResult`), and that time. Not a subclass: loading a recipe must not
    import PETSc (tests/test_architecture.py)."""

    def __init__(self, result, steady_time: float):
        self.__dict__.update(vars(result))
        self.steady_time = steady_time


class ProjectionMarch:
    """The time stepping that `cavity` and `channel` share: frames at fixed times from rest,
    a momentum and a pressure solve per step, by the recipe's `scheme`. Goes before the
    family's other bases."""

    problem: CavityProblem
    discretisation: str

    @property
    def time_stepping(self) -> TimeStepping:
        p = self.problem
        times = np.linspace(0.0, p.t_end, p.frames + 1)
        return TimeStepping(SCHEMES[p.scheme], p.dt, times, trajectory="velocity_x")

    @property
    def solves_per_sample(self) -> int:
        """Two per step: the momentum solve and the pressure solve (at most, where the march
        stops at a steady state: the steps after it are not taken)."""
        return 2 * self.time_stepping.steps

    def steady_words(self) -> str:
        """What the card adds about an early stop ("" where there is none)."""
        return ""

    def describe_discretisation(self) -> str:
        stepping = self.time_stepping
        return (
            f"Discretisation: {self.discretisation}. Time stepping: {stepping.description}, "
            f"internal step dt = {stepping.dt:g} ({stepping.steps} steps), a momentum solve "
            f"and a pressure solve each; the fields store "
            f"{describe_frames(stepping.frame_times)}, frame 0 the fluid at rest."
            f"{self.steady_words()}"
        )


class Cavity(ProjectionMarch, Stokes):
    name = "cavity"
    discretisation = (
        "the marker-and-cell (MAC) grid of `stokes`, convection w . grad u by central "
        "differences about a known velocity (Oseen), an incremental pressure-correction "
        "projection; the stored fields are interpolated to the nodes"
    )
    Problem = CavityProblem
    grid_dims = (2, 3)
    inputs = {"viscosity": FieldAxes()}
    outputs = {
        "velocity_x": FieldAxes(time=True),
        "velocity_y": FieldAxes(time=True),
        "velocity_z": FieldAxes(time=True, dims=(3,)),
        "pressure": FieldAxes(time=True),
    }
    params = ("reynolds", "lid_speed")
    #: the time the march became steady (`problem.steady`), NaN where it was not asked for or
    #: not reached by t_end
    stats_columns = {"steady_time": "float64"}
    # the momentum step's solver, measured (docs/benchmarks.md, "Cavity flow"): warm-started
    # from the last velocity it needs 4-14 GMRES iterations, which recycling does not reduce
    auto_solvers = {2: ("gmres", "ilu"), 3: ("gmres", "ilu")}
    iterative_pc = "ilu"
    symmetric = False  # convection: the momentum matrix is nonsymmetric
    positive_definite = False
    #: not `gamg`: on the nonsymmetric momentum operator it left 16 of 20 steps unconverged
    #: at 5000 iterations (docs/benchmarks.md, "Cavity flow"); not `mg` or `icc` (no node grid
    #: of unknowns; not symmetric), not `fieldsplit` (one block)
    preconditioners = frozenset({"none", "jacobi", "sor", "bjacobi", "asm", "ilu", "lu"})

    @classmethod
    def check(cls, recipe) -> None:
        p = recipe.problem
        for name in ("reynolds", "lid_speed"):
            r = getattr(p, name)
            if not 0 < r.min <= r.max:
                raise RecipeError(
                    f"problem.{name}.min, problem.{name}.max: need 0 < min <= max, got "
                    f"[{r.min:g}, {r.max:g}]"
                )

    # -- the unknowns: the velocities only (the pressure is the projection's) ----------------

    @property
    def unknowns(self) -> int:
        return self.velocity_unknowns

    @property
    def interior_shape(self) -> tuple[int, ...]:
        return (self.velocity_unknowns,)

    @property
    def matrix_entries(self) -> int:
        return (2 * self.dim + 1) * self.velocity_unknowns

    @property
    def stops_early(self) -> bool:
        return self.problem.steady is not None

    def sample_stats(self, results: list) -> dict[str, float]:
        times = [r.steady_time for r in results if isinstance(r, SteadyAt)]
        return {"steady_time": times[0] if times else math.nan}

    def steady_words(self) -> str:
        if not self.stops_early:
            return ""
        return (
            f" The march stops once max |u^(n+1) - u^n| / (dt U) < {self.problem.steady:g} "
            "(the steady state; `/stats/steady_time` says when), and the later frames hold "
            "that state."
        )

    # -- samples ----------------------------------------------------------------------------

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        p = self.problem
        reynolds = p.reynolds.draw(rng)
        lid = p.lid_speed.draw(rng)
        shape = self.viscosity(rng, p.viscosity)
        nu = (lid / reynolds) * shape
        return Sample(index, {"viscosity": nu}, {"reynolds": reynolds, "lid_speed": lid})

    def system(self, sample: Sample):
        """A momentum step's system, linearised about the lid's shear profile u = U y, v = 0
        (benchmarks and the contract tests look at one operator; from rest the convection
        would vanish and the matrix would be symmetric, which no later step is)."""
        lid = sample.params["lid_speed"]
        march = Projection(self, sample.inputs["viscosity"], lid)
        heights = (np.arange(self.n + 1) + 0.5) * self.h  # y of the x-faces' centres
        shape = [1] * self.dim
        shape[1] = self.n + 1
        shear = np.broadcast_to(lid * heights.reshape(shape), self.face_shapes[0])
        others = [np.zeros(math.prod(s)) for s in self.face_shapes[1:]]
        u = np.concatenate([shear.ravel(), *others])
        return march.momentum(u, np.zeros(self.cells), self.problem.dt)

    def features(self, sample: Sample) -> np.ndarray:
        """log viscosity (downsampled) and the lid speed: what moves the operator."""
        nu = np.log(sample.inputs["viscosity"])
        return np.concatenate([self.downsample(nu).ravel(), [sample.params["lid_speed"]]])

    # -- the march --------------------------------------------------------------------------

    def trajectory(
        self, sample: Sample, solve, pressure_solve, forcing=None, start=None
    ) -> tuple[list, list]:
        """The frames (face velocities, cell pressures) and every solve's result;
        `solve(A, b, x0)` for the momentum steps, `pressure_solve(L, b)` for the pressure.
        `forcing(t)` (the face values of a body force, tests only) and `start` (face
        velocities, cell pressures; default: at rest) serve manufactured solutions."""
        lid = sample.params["lid_speed"]
        march = Projection(self, sample.inputs["viscosity"], lid, forcing)
        u, p = start or (np.zeros(self.velocity_unknowns), np.zeros(self.cells))
        tolerance = self.problem.steady
        bdf2 = self.problem.scheme == "bdf2"
        steady = False

        def advance(state, t: float, step: float):
            """(u, p, the velocity a step before (BDF2), that step) -> the next state."""
            nonlocal steady
            if steady:  # the steady state, to `problem.steady`: nothing left to solve
                return state, ()
            u, p, previous, previous_step = state
            terms = backward_difference(u, previous, step, previous_step)
            A, b = march.momentum(u, p, step, t + step, terms)
            momentum = solve(A, b, u)
            new, p, pressure = march.project(momentum.x, p, step / terms[0], pressure_solve)
            solved = momentum.converged and pressure.converged  # a failed solve: no stop
            if (
                solved
                and tolerance is not None
                and np.max(np.abs(new - u)) < tolerance * step * lid
            ):
                steady = True
                momentum = SteadyAt(momentum, t + step)
            return (new, p, u if bdf2 else None, step), (momentum, pressure)

        state = (u, p, None, None)
        frames, pairs = self.time_stepping.march(state, advance, record=lambda s: s[:2])
        results = [r for pair in pairs for r in pair]
        return frames, results

    @functools.cached_property
    def pressure_chain(self):
        """The pressure solve's own chain: one Cholesky factorisation of the constant
        pressure matrix for the family's life (a batch)."""
        from solvers import ChainSolver

        return ChainSolver("direct", "cholesky", rtol=1e-12)

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        pressure = self.pressure_chain
        frames, results = self.trajectory(sample, chain.solve, lambda L, b: pressure.solve(L, b))
        # frame 0: the fluid at rest, the lid not yet moving (it starts impulsively)
        fields = {name: [np.zeros(self.grid_shape)] for name in self.output_names}
        lid_nodes = [slice(1, -1)] * self.dim
        lid_nodes[1] = -1  # the top wall's nodes, its edges left to the side walls
        for u, p in frames[1:]:
            cells = p.reshape((self.n + 1,) * self.dim)
            nodal = self.node_fields(*self.split(u), cells - p.mean())
            nodal["velocity_x"][tuple(lid_nodes)] = sample.params["lid_speed"]
            for name in fields:
                fields[name].append(nodal[name])
        return {name: np.asarray(v) for name, v in fields.items()}, results

    @property
    def cells(self) -> int:
        return (self.n + 1) ** self.dim

    def cell_divergence(self, u: np.ndarray) -> np.ndarray:
        """div u at the cell centres (walls: zero normal velocity)."""
        return self.divergence(*self.split(u))


class Projection:
    """One sample's operators: the viscous block, the gradient, the pressure matrix, and the
    lid's terms; `momentum` assembles a step's Oseen system, `project` the correction."""

    def __init__(self, family: Cavity, nu: np.ndarray, lid: float, forcing=None):
        self.family, self.lid, self.forcing = family, lid, forcing
        n, h, dim = family.n, family.h, family.dim
        self.n, self.h, self.dim = n, h, dim
        self.viscous = family.velocity_operator(np.asarray(nu, dtype=float)).tocoo()
        self.gradient = _gradient(n, dim)  # p_right - p_left per interior face (unscaled)
        self.gradient_t = self.gradient.T.tocsr()
        # the lid: u's flux through the top wall, 2 nu_wall (U - u) after scaling by h^2
        top = _at(dim, 1, -1)  # the x-faces next to the lid
        wall = family.shear_viscosity(np.asarray(nu, dtype=float), 0, 1)[top]
        lid_rows = np.zeros(family.face_shapes[0])
        lid_rows[top] = 2.0 * wall * lid
        others = [np.zeros(math.prod(s)) for s in family.face_shapes[1:]]
        self.lid_terms = np.concatenate([lid_rows.ravel(), *others])
        size = family.velocity_unknowns
        diagonal = np.arange(size)
        rows, cols = _convection_pattern(n, dim)
        self.matrix = SummedPattern(
            np.concatenate([self.viscous.row, rows, diagonal]),
            np.concatenate([self.viscous.col, cols, diagonal]),
            size,
        )

    def momentum(self, u: np.ndarray, p: np.ndarray, step: float, t: float = 0.0, terms=None):
        """(a0 h^2/dt I + A + h^2 N(w)) u* = h^2/dt history - h G p + lid terms (+ h^2 f(t),
        the body force at the new time, where there is one); (a0, history, w) are `terms`
        (`backward_difference`), backward Euler from u (1, u, u) by default."""
        n, h = self.n, self.h
        a0, history, w = terms or (1.0, u, u)
        values, lid_convection = _convection_values(self.family.split(w), n, h, self.lid)
        mass = np.full(self.family.velocity_unknowns, a0 * h**2 / step)
        A = self.matrix.csr(np.concatenate([self.viscous.data, values, mass]))
        b = (h**2 / step) * history - h * (self.gradient @ p) + self.lid_terms + lid_convection
        if self.forcing is not None:
            b = b + h**2 * self.forcing(t)
        return A, b

    def project(self, u_star: np.ndarray, p: np.ndarray, step: float, solve):
        """Correct u* to divergence-free: -Lap phi = -div u* / dt (zero flux through the
        walls, cell `Stokes.pinned` at zero), u = u* - dt grad phi, p = p + phi; `step` is
        dt / a0 for a backward-difference step."""
        L = _pressure_matrix(self.n, self.dim)
        rhs = (self.h / step) * (self.gradient_t @ u_star)
        rhs = np.delete(rhs, Stokes.pinned)
        result = solve(L, rhs)
        phi = np.insert(result.x, Stokes.pinned, 0.0)
        u = u_star - (step / self.h) * (self.gradient @ phi)
        return u, p + phi, result


@functools.lru_cache(maxsize=4)
def _pressure_matrix(n: int, dim: int) -> sp.csr_matrix:
    """G^T G over the cells, the pinned cell's row and column removed: h^2 times minus the
    cell-centred Laplacian with zero flux through the walls; the same object for every step
    (so the chain keeps its factorisation)."""
    G = _gradient(n, dim)
    L = (G.T @ G).tocsr()
    keep = np.ones(L.shape[0], dtype=bool)
    keep[Stokes.pinned] = False
    L = L[keep][:, keep].tocsr()
    L.sort_indices()
    return L


@functools.lru_cache(maxsize=4)
def _convection_pattern(n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the convection entries, in the order `_convection_values` fills
    them: per velocity component, the diagonal, then along each axis the next and the previous
    face (absent neighbours point at the face itself with a zero)."""
    rows, cols = [], []
    offset = 0
    for axis in range(dim):
        shape = _face_shape(n, dim, axis)
        index = offset + np.arange(math.prod(shape)).reshape(shape)
        rows.append(index.ravel())
        cols.append(index.ravel())
        for along in range(dim):
            for step in (1, -1):
                places = [np.arange(size) for size in shape]
                places[along] = np.clip(places[along] + step, 0, shape[along] - 1)
                rows.append(index.ravel())
                cols.append(index[np.ix_(*places)].ravel())
        offset += index.size
    return np.concatenate(rows), np.concatenate(cols)


def _convection_values(
    velocity: list[np.ndarray], n: int, h: float, lid: float
) -> tuple[np.ndarray, np.ndarray]:
    """h^2 (w . grad) by central differences in `_convection_pattern`'s order, and the
    right-hand side's lid term. On the faces of component a, w_a is that component itself and
    w_b (b != a) the mean of the four b-velocities around the face (zero beyond the walls).
    Walls: the normal velocity is zero; the tangential one is reflected (ghost = 2 wall value -
    first value), the wall value U on the lid (y = 1, x-velocity), 0 elsewhere."""
    dim = len(velocity)
    half = 0.5 * h
    values, rhs = [], []
    for a, u in enumerate(velocity):
        diag = np.zeros_like(u)
        lid_term = np.zeros_like(u)
        blocks = [diag]
        for b in range(dim):
            if b == a:
                w = u
            else:
                padded = np.pad(velocity[b], [(1, 1) if d == b else (0, 0) for d in range(dim)])
                w = _pair_mean(_pair_mean(padded, b), a)
            ahead, behind = half * w, -half * w  # the next and the previous face along b
            first, last = _at(dim, b, 0), _at(dim, b, -1)
            if b == a:  # beyond: the walls' normal velocity, zero
                ahead[last] = 0.0
                behind[first] = 0.0
            else:  # beyond: the ghost face, reflected
                diag[first] -= behind[first]
                behind[first] = 0.0
                diag[last] -= ahead[last]
                if a == 0 and b == 1:  # the lid: ghost = 2 U - u, its U to the right side
                    lid_term[last] = -2.0 * lid * ahead[last]
                ahead[last] = 0.0
            blocks += [ahead, behind]
        values.append(np.concatenate([block.ravel() for block in blocks]))
        rhs.append(lid_term.ravel())
    return np.concatenate(values), np.concatenate(rhs)


__all__ = ["Cavity", "CavityProblem", "Projection"]
