"""Channel flow past random cylinders: incompressible Navier-Stokes on a rectangle's MAC grid.

    u_t + (u . grad) u = nu Laplacian u - grad p,   div u = 0

in the channel [0, L] x [0, 1] (lengths in channel heights): a parabolic inflow of mean
speed U on the left side, u = 6 U y (1 - y), v = 0; no-slip walls at y = 0 and 1; an outflow
on the right side (zero normal derivative of the velocity, zero pressure); 1 to `count`
solid cylinders with random centres and radii, as a mask of grid cells
(`pdegen.discretisation.mac_rectangle` says why a mask and not cut cells). The Reynolds
number Re = U D / nu, D the diameter of the sample's largest cylinder, is drawn per sample:
past a single cylinder a steady pair of eddies below Re of about 47 and a von Karman street
of shed vortices above it, so a range such as [20, 200] gives both.

Space and time as in `cavity`: the MAC grid (square cells, h = 1 / `grid.n`), central
differences for the convection linearised about the last step (Oseen), backward Euler (or
`scheme: bdf2`), and an incremental pressure-correction projection. Per step: a nonsymmetric
momentum solve through the recipe's chain and a pressure solve whose matrix (fixed by the
sample's obstacles) keeps one Cholesky factorisation for the whole trajectory. The fluid
starts at rest with the inflow switched on impulsively; the first projection makes it the
potential-like flow that satisfies the inflow.

Stored at the cell centres (the layout of The Well and CFDBench; no extrapolation to walls):
velocity_x, velocity_y (the means of each cell's two faces along the component) and pressure
(zero in the solid cells and on the outflow side), frames at fixed times; the input `obstacle`
is the cell mask, 1 inside the cylinders.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import numpy as np
import scipy.ndimage

from pdegen.discretisation.fields import sample_rng
from pdegen.discretisation.mac_rectangle import MacRectangle
from pdegen.discretisation.timestepping import backward_difference
from pdegen.errors import RecipeError
from pdegen.families.base import Family
from pdegen.families.cavity import ProjectionMarch
from pdegen.families.declarations import SPACE_AXES, TIME_AXIS, FieldAxes, Sample
from pdegen.specs import RangeSpec, nested, rule

#: the fewest cells across a cylinder's radius a recipe may ask for
MIN_CELLS_PER_RADIUS = 2


@dataclasses.dataclass(frozen=True)
class CylindersSpec:
    """1 to `count` cylinders per sample (uniformly), each with a radius from `radius`, its
    centre's x from `centre_x` and its y uniform where the cylinder keeps `clearance` from
    both walls (overlaps allowed: they make other shapes); lengths in channel heights."""

    count: int = rule(3, ge=1, le=32)
    radius: RangeSpec = nested(RangeSpec, min=0.05, max=0.1)
    centre_x: RangeSpec = nested(RangeSpec, min=0.5, max=1.5)
    clearance: float = rule(0.1, ge=0.0)


@dataclasses.dataclass(frozen=True)
class ChannelProblem:
    #: the channel's length in channel heights (its cells: length x grid.n)
    length: float = rule(4.0, gt=0.0)
    reynolds: RangeSpec = nested(RangeSpec, min=20.0, max=200.0)
    #: the inflow's mean speed U (its peak: 1.5 U)
    inflow: float = rule(1.0, gt=0.0)
    cylinders: CylindersSpec = nested(CylindersSpec)
    t_end: float = rule(8.0, gt=0.0)
    frames: int = rule(16, ge=1, le=100000)
    dt: float = rule(0.01, gt=0.0)
    #: `euler`: backward Euler (first order); `bdf2`: second order in the velocity
    scheme: Literal["euler", "bdf2"] = "euler"


class Channel(ProjectionMarch, Family):
    name = "channel"
    discretisation = (
        "the marker-and-cell (MAC) grid on the channel's square cells, the cylinders a mask "
        "of solid cells (staircase no-slip), convection w . grad u by central differences "
        "about a known velocity (Oseen), an incremental pressure-correction projection; the "
        "stored fields at the cell centres"
    )
    Problem = ChannelProblem
    grid_dims = (2,)
    stores_boundary_nodes = False
    layouts = ("cells",)  # its own grid is cell-centred
    inputs = {"obstacle": FieldAxes(dims=(2,))}
    outputs = {
        "velocity_x": FieldAxes(time=True, dims=(2,)),
        "velocity_y": FieldAxes(time=True, dims=(2,)),
        "pressure": FieldAxes(time=True, dims=(2,)),
    }
    params = ("reynolds", "viscosity", "diameter")
    # as `cavity`'s momentum step (docs/benchmarks.md, "Cavity flow" and "Channel flow")
    auto_solvers = {2: ("gmres", "ilu")}
    iterative_pc = "ilu"
    symmetric = False
    positive_definite = False
    #: as `cavity`: GAMG fails on the nonsymmetric momentum operator; no node grid for `mg`
    preconditioners = frozenset({"none", "jacobi", "sor", "bjacobi", "asm", "ilu", "lu"})

    def __init__(self, n: int, dim: int, problem: ChannelProblem):
        self.n, self.dim, self.problem = n, dim, problem
        self.h = 1.0 / n
        self.nx = max(2, round(problem.length * n))
        self.x = (np.arange(self.nx) + 0.5) * self.h
        self.y = (np.arange(n) + 0.5) * self.h

    @classmethod
    def check(cls, recipe) -> None:
        p, n = recipe.problem, recipe.grid.n
        c = p.cylinders
        if not 0 < p.reynolds.min <= p.reynolds.max:
            raise RecipeError(
                "problem.reynolds.min, problem.reynolds.max: need 0 < min <= max, got "
                f"[{p.reynolds.min:g}, {p.reynolds.max:g}]"
            )
        cells = p.length * n
        if abs(cells - round(cells)) > 1e-9 * cells:
            raise RecipeError(
                f"problem.length: {p.length:g} x grid.n {n} = {cells:g} cells along the "
                "channel; choose a length that makes a whole number of cells"
            )
        if not 0 < c.radius.min <= c.radius.max:
            raise RecipeError(
                "problem.cylinders.radius.min, problem.cylinders.radius.max: need 0 < min <= "
                f"max, got [{c.radius.min:g}, {c.radius.max:g}]"
            )
        if c.radius.min * n < MIN_CELLS_PER_RADIUS:
            raise RecipeError(
                f"problem.cylinders.radius.min: {c.radius.min:g} is {c.radius.min * n:.3g} cells "
                f"on grid.n {n}; at least {MIN_CELLS_PER_RADIUS} cells per radius are allowed "
                f"(radius.min >= {MIN_CELLS_PER_RADIUS / n:g}, or a larger grid.n)"
            )
        if c.clearance * n < 1.0:
            raise RecipeError(
                f"problem.cylinders.clearance: {c.clearance:g} is {c.clearance * n:.3g} cells on "
                f"grid.n {n}; at least 1 cell is allowed (clearance >= {1 / n:g}: the gap "
                "along each wall that keeps the channel open)"
            )
        if 2 * (c.radius.max + c.clearance) >= 1.0:
            raise RecipeError(
                "problem.cylinders.radius.max, problem.cylinders.clearance: a cylinder of "
                f"radius {c.radius.max:g} with clearance {c.clearance:g} from both walls does "
                "not fit the channel's height 1 (need radius.max + clearance < 0.5)"
            )
        first, last = c.clearance + c.radius.max, p.length - 1.0 - c.radius.max
        allowed = (
            f"(allowed: {first:g} <= min <= max <= {last:g}: every cylinder at least "
            f"clearance {c.clearance:g} from the inflow and ending 1 channel height before the "
            f"outflow at length {p.length:g})"
        )
        if not first <= c.centre_x.min <= last:
            raise RecipeError(f"problem.cylinders.centre_x.min: {c.centre_x.min:g} {allowed}")
        if not c.centre_x.min <= c.centre_x.max <= last:
            raise RecipeError(f"problem.cylinders.centre_x.max: {c.centre_x.max:g} {allowed}")

    # -- the grid: cell centres of a rectangle ----------------------------------------------

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.nx, self.n)

    @property
    def coordinates(self) -> dict[str, np.ndarray]:
        return {TIME_AXIS: self.times, SPACE_AXES[0]: self.x, SPACE_AXES[1]: self.y}

    def interior(self, array: np.ndarray) -> np.ndarray:
        return array  # no boundary nodes: the sides lie between cells

    def grid_words(self) -> str:
        return f"{self.nx}×{self.n} cell-centred grid"

    def describe_domain(self) -> str:
        p = self.problem
        return (
            f"Domain: the channel [0, {p.length:g}] × [0, 1] (lengths in channel heights), "
            f"{self.nx} × {self.n} square cells (h = 1/{self.n}), fields at the cell centres; "
            f"a parabolic inflow of mean speed {p.inflow:g} on x = 0, no-slip walls on y = 0 "
            f"and 1, an outflow on x = {p.length:g} (zero normal derivatives, zero pressure), "
            f"1 to {p.cylinders.count} solid cylinders as a mask of cells."
        )

    # -- the unknowns: the velocities (the pressure is the projection's) --------------------

    @property
    def unknowns(self) -> int:
        """u on nx x n faces (the outflow side's included), v on nx x (n - 1)."""
        return self.nx * (2 * self.n - 1)

    @property
    def interior_shape(self) -> tuple[int, ...]:
        return (self.unknowns,)  # not a node grid: `pc: mg` is not offered

    @property
    def matrix_entries(self) -> int:
        return 5 * self.unknowns

    # -- samples ----------------------------------------------------------------------------

    def cylinders(self, rng: np.random.Generator) -> list[tuple[float, float, float]]:
        """(x, y, radius) of each of the sample's cylinders."""
        c = self.problem.cylinders
        out = []
        for _ in range(int(rng.integers(1, c.count + 1))):
            radius = c.radius.draw(rng)
            x = c.centre_x.draw(rng)
            y = float(rng.uniform(c.clearance + radius, 1.0 - c.clearance - radius))
            out.append((x, y, radius))
        return out

    def obstacle(self, cylinders) -> np.ndarray:
        """1.0 in the cells whose centre lies inside a cylinder, and in the fluid cells that
        overlapping cylinders wall in (no path through cell faces to the inflow: a pocket of
        still fluid whose pressure no boundary fixes, so the pressure matrix would be
        singular); 0.0 elsewhere. The walls' clearance (at least a cell, checked) keeps the
        channel itself open."""
        X, Y = np.meshgrid(self.x, self.y, indexing="ij")
        inside = np.zeros(self.grid_shape, dtype=bool)
        for x, y, radius in cylinders:
            inside |= (X - x) ** 2 + (Y - y) ** 2 < radius**2
        labels, _ = scipy.ndimage.label(~inside)  # 4-connected: through faces
        open_labels = np.unique(labels[0][labels[0] > 0])  # those that reach the inflow
        return (~np.isin(labels, open_labels)).astype(float)

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        p = self.problem
        reynolds = p.reynolds.draw(rng)
        cylinders = self.cylinders(rng)
        diameter = 2.0 * max(radius for *_, radius in cylinders)
        nu = p.inflow * diameter / reynolds
        params = {"reynolds": reynolds, "viscosity": nu, "diameter": diameter}
        return Sample(index, {"obstacle": self.obstacle(cylinders)}, params)

    def grid(self, sample: Sample) -> MacRectangle:
        return MacRectangle(self.nx, self.n, self.h, solid=sample.inputs["obstacle"] > 0.5)

    def sides(self, grid: MacRectangle) -> dict:
        """The velocity data on the sides: the parabolic inflow, zero on the walls."""
        y = grid.centres(1)
        inflow = 6.0 * self.problem.inflow * y * (1.0 - y)
        mu, nx, ny = grid.u.shape[0], grid.nx, grid.ny
        return {
            "u": {"left": inflow, "bottom": np.zeros(mu), "top": np.zeros(mu)},
            "v": {"left": np.zeros(ny - 1), "bottom": np.zeros(nx), "top": np.zeros(nx)},
        }

    def poiseuille(self, grid: MacRectangle) -> np.ndarray:
        """The fully developed flow on the faces, zero on the closed ones."""
        y = grid.centres(1)
        u = np.broadcast_to(6.0 * self.problem.inflow * y * (1.0 - y), grid.u.shape)
        return np.concatenate([u.ravel(), np.zeros(grid.v.size)]) * grid.open

    def system(self, sample: Sample):
        """A momentum step's system, linearised about the fully developed flow (benchmarks
        and the contract tests look at one operator)."""
        grid = self.grid(sample)
        w = self.poiseuille(grid)
        cells = np.zeros(grid.nx * grid.ny)
        nu = sample.params["viscosity"]
        return grid.momentum(w, cells, self.problem.dt, nu, self.sides(grid))

    def features(self, sample: Sample) -> np.ndarray:
        """The obstacle mask (downsampled) and log Re: what moves the operator."""
        mask = self.downsample(sample.inputs["obstacle"]).ravel()
        return np.concatenate([mask, [math.log(sample.params["reynolds"])]])

    # -- the march --------------------------------------------------------------------------

    def trajectory(self, sample: Sample, solve, pressure_solve) -> tuple[list, list]:
        """The frames (face velocities, cell pressures) and every solve's result;
        `solve(A, b, x0)` for the momentum steps, `pressure_solve(L, b)` for the pressure."""
        grid = self.grid(sample)
        sides = self.sides(grid)
        nu = sample.params["viscosity"]
        bdf2 = self.problem.scheme == "bdf2"
        state = (np.zeros(grid.size), np.zeros(grid.nx * grid.ny), None, None)

        def advance(state, t: float, step: float):
            """(u, p, the velocity a step before (BDF2), that step) -> the next state."""
            u, p, previous, previous_step = state
            terms = backward_difference(u, previous, step, previous_step)
            A, b = grid.momentum(u, p, step, nu, sides, terms=terms)
            momentum = solve(A, b, u)
            u_star = np.where(grid.open, momentum.x, 0.0)
            new, p, pressure = grid.project(u_star, p, step / terms[0], sides, pressure_solve)
            return (new, p, u if bdf2 else None, step), (momentum, pressure)

        frames, pairs = self.time_stepping.march(state, advance, record=lambda s: s[:2])
        return frames, [r for pair in pairs for r in pair]

    @functools.cached_property
    def pressure_chain(self):
        """The pressure solve's own chain: a Cholesky factorisation per sample (its
        obstacles fix the matrix), kept for every step of the trajectory."""
        from solvers import ChainSolver

        return ChainSolver("direct", "cholesky", rtol=1e-12)

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        pressure = self.pressure_chain
        frames, results = self.trajectory(sample, chain.solve, lambda L, b: pressure.solve(L, b))
        grid = self.grid(sample)
        sides = self.sides(grid)
        fields = {name: [np.zeros(self.grid_shape)] for name in self.output_names}
        for u, p in frames[1:]:
            ux, uy = grid.cell_fields(u, sides)
            fields["velocity_x"].append(ux)
            fields["velocity_y"].append(uy)
            fields["pressure"].append(p.reshape(self.grid_shape))
        return {name: np.asarray(v) for name, v in fields.items()}, results

    def solution_vector(self, outputs: dict[str, np.ndarray]) -> None:
        """None: the stored cell means do not determine the face velocities."""
        return None


__all__ = ["Channel", "ChannelProblem", "CylindersSpec"]
