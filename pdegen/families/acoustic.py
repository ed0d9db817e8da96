"""Acoustic waves in a random medium: The Well's acoustic scattering, in second-order form.

The Well's first-order system p_t + K div u = 0, u_t + grad p / rho = 0 eliminates to

    (1/K) p_tt = div((1/rho) grad p)

for the pressure p, with density rho and bulk modulus K drawn per sample (the laws of
`MediumSpec`: The Well's smooth and discontinuous layers, elliptical inclusions of log-uniform
contrast, a maze of near-rigid walls, or a log-normal Gaussian random field). The domain is the
square [-L/2, L/2]^2 (The Well: [-1, 1]^2, `grid.length: 2`), n cells per axis, p at the cell
centres. The walls are rigid (zero normal velocity, so zero flux of grad p: they reflect),
optionally lined with an absorbing layer: a damping term sigma(x) p_t / K whose rate grows
quadratically from 0 to `absorbing_strength` across the `absorbing` width next to the walls.

Space: M p'' + C p' + S p = 0 with M = diag(1/K), C = diag(sigma/K) and S the cell-centred
five-point operator of -div((1/rho) grad) with zero flux through the walls, its face
coefficient 2 / (rho_left + rho_right) (the staggered grid's face density is the mean of the
two cells'; this is exactly what The Well's staggered scheme eliminates to). S is symmetric
positive semi-definite (the constants are its null space), M positive diagonal.

Time, by `scheme`:
- `newmark`: Newmark's average acceleration (beta = 1/4, gamma = 1/2), unconditionally stable
  and second order. Each step solves (M + dt/2 C + dt^2/4 S) a = -C v* - S p* for the new
  acceleration: one symmetric positive definite matrix per sample, handed to the chain solver
  as the same object every step, so a factorisation, a preconditioner or a recycled space is
  made once per sample and carried across its steps. Without absorption it conserves the
  discrete energy v^T M v / 2 + p^T S p / 2 to the solve tolerance (tested); with it the
  energy never grows.
- `leapfrog`: the explicit central difference p^{n+1} = 2 p^n - p^{n-1} - dt^2 M^{-1} S p^n
  (damping centred), second order, no linear solve; stable for dt < 2 / sqrt(lambda_max(M^-1
  S)). It steps at `cfl` times a lower bound of that limit over every medium the laws give
  (Gershgorin's theorem: `stability_limit`), the same step for every sample (smaller for a
  sample stiffer than the laws' bounds: a log-normal draw beyond 3 sigma), landing on every
  frame time. It is the staggered leapfrog of The Well's first-order system with the
  velocity eliminated.

Frames at fixed times 0, t_end / frames, ..., t_end; frame 0 is the initial pressure (rings, as
The Well's), starting at rest.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import (
    gaussian_random_field,
    grf_pointwise_std_bound,
    sample_rng,
)
from pdegen.discretisation.operators import diagonal_places, on_pattern, stencil_matrix
from pdegen.discretisation.timestepping import TimeStepping
from pdegen.errors import RecipeError
from pdegen.families.base import Family, describe_frames
from pdegen.families.cell_square import CellCentredSquare
from pdegen.families.declarations import FieldAxes, Sample
from pdegen.families.residuals import StepResidual, relative_difference, scipy_lu_solve
from pdegen.specs import RangeSpec, nested, rule
from solvers.stepping import MarchSteps

#: `check --deep`'s bound on a re-run frame, in units of the storage's roundoff per step
REFRAME_FACTOR = 1000.0
#: and at most this, so that a frame changed by a percent is caught however many steps
REFRAME_CAP = 1e-3


@dataclasses.dataclass(frozen=True)
class MediumSpec:
    """A positive material field (density or bulk modulus) by `law`:

    - `constant`: `value` everywhere;
    - `lognormal`: value * exp(g), g a Gaussian random field (alpha, tau, sigma as `FieldSpec`);
    - `layers` / `discontinuous-layers`: 2 to `layers` bands across a random direction within
      30 degrees of the y axis, log-values ln(value) + U(`log_contrast`), joined smoothly (tanh
      over `transition` of the length) or by jumps (The Well's two layered laws);
    - `inclusions`: `value` with 0 to `inclusions` random ellipses (semi-axes 5-20% of the
      length, any angle), each value * exp(U(`log_contrast`)) (The Well: ln rho ~ U(-1, 10));
    - `maze`: a random maze of `maze_cells` x `maze_cells` rooms (a depth-first spanning tree),
      `wall` on its walls and `value` in its paths (The Well: rho 1e6 in walls, 3 in paths).
    """

    law: Literal[
        "constant", "lognormal", "layers", "discontinuous-layers", "inclusions", "maze"
    ] = "constant"
    value: float = rule(1.0, gt=0.0)
    alpha: float = rule(2.0, gt=1.0)  # in 2D the field's variance is finite for alpha > 1
    tau: float = rule(3.0, gt=0.0)
    sigma: float = rule(1.0, gt=0.0)
    layers: int = rule(5, ge=2, le=64)
    transition: float = rule(0.02, gt=0.0, le=1.0)
    log_contrast: RangeSpec = nested(RangeSpec, min=0.0, max=1.0)
    inclusions: int = rule(14, ge=0, le=256)
    maze_cells: int = rule(6, ge=2, le=64)
    wall: float = rule(1e6, gt=0.0)


@dataclasses.dataclass(frozen=True)
class RingsSpec:
    """The initial pressure: 1 to `count` rings exp(-((|x - c| - r) / w)^2), amplitudes
    U(0.5, 1) with random signs, centres anywhere in the domain, radii U(`radius`) and width
    `width`, both as fractions of the length (The Well's initial pressure rings)."""

    count: int = rule(3, ge=1, le=64)
    radius: RangeSpec = nested(RangeSpec, min=0.05, max=0.25)
    width: float = rule(0.05, gt=0.0, le=1.0)


@dataclasses.dataclass(frozen=True)
class AcousticProblem:
    density: MediumSpec = nested(MediumSpec, law="inclusions")
    bulk_modulus: MediumSpec = nested(MediumSpec, value=4.0)
    initial: RingsSpec = nested(RingsSpec)
    scheme: Literal["newmark", "leapfrog"] = "newmark"
    t_end: float = rule(2.0, gt=0.0)
    frames: int = rule(100, ge=1, le=100000)
    #: Newmark's step (frames land on its multiples, or equal steps no longer than it)
    dt: float = rule(0.005, gt=0.0)
    #: leapfrog's step as a fraction of the media's stability limit (`stability_limit`)
    cfl: float = rule(0.5, gt=0.0, lt=1.0)
    #: the absorbing layer's width as a fraction of the length (0: reflecting walls only)
    absorbing: float = rule(0.0, ge=0.0, lt=0.5)
    #: the damping rate sigma at the walls (1 / time units)
    absorbing_strength: float = rule(40.0, ge=0.0)
    #: cells per shortest wavelength the recipe must give (`shortest_wavelength`)
    min_points_per_wavelength: float = rule(5.0, ge=2.0)


class Medium:
    """One sample's matrices: M = diag(1/K), C = diag(sigma/K), S = -div((1/rho) grad)."""

    def __init__(self, density: np.ndarray, bulk: np.ndarray, h: float, damping: np.ndarray):
        self.mass = 1.0 / bulk.ravel()
        self.damping = damping.ravel() / bulk.ravel()
        self.stiffness = stiffness_operator(density, h)
        self.diagonal = diagonal_places(density.ndim, density.shape[0])

    def newmark_matrix(self, step: float) -> sp.csr_matrix:
        """M + step/2 C + step^2/4 S, on S's shared stencil pattern."""
        N = on_pattern(self.stiffness, self.stiffness.data * (step**2 / 4.0))
        N.data[self.diagonal] += self.mass + 0.5 * step * self.damping
        return N

    def acceleration(self, p: np.ndarray, v: np.ndarray) -> np.ndarray:
        """p'' = -M^-1 (C v + S p): M is diagonal, so no solve (a march's first step)."""
        return -(self.damping * v + self.stiffness @ p) / self.mass

    def newmark_predictor(self, p, v, a, step: float) -> tuple[np.ndarray, ...]:
        """(p*, v*, the right-hand side -C v* - S p* of the new acceleration's system)."""
        p_star = p + step * v + 0.25 * step**2 * a
        v_star = v + 0.5 * step * a
        return p_star, v_star, -(self.damping * v_star) - self.stiffness @ p_star

    def energy(self, p: np.ndarray, v: np.ndarray) -> float:
        """v^T M v / 2 + p^T S p / 2, which Newmark conserves without damping."""
        return 0.5 * float(v @ (self.mass * v)) + 0.5 * float(p @ (self.stiffness @ p))

    def stable_step(self) -> float:
        """2 / sqrt of Gershgorin's bound on the largest eigenvalue of M^-1 S."""
        row_sums = np.asarray(abs(self.stiffness).sum(axis=1)).ravel()
        bound = float(np.max(row_sums / self.mass))
        return 2.0 / math.sqrt(bound) if bound > 0 else math.inf


#: the shortest wavelength of a Gaussian ring profile exp(-(r / w)^2) that carries 1% of the
#: peak amplitude, in units of w: its spectrum is exp(-k^2 w^2 / 4), 0.01 at k w = 2 sqrt(ln 100)
RING_WAVELENGTH = 2 * math.pi / (2 * math.sqrt(math.log(100.0)))


#: |log| of the largest and smallest values a medium may take (1e300, 1e-300)
LOG_LIMIT = 300 * math.log(10.0)


def medium_log_bounds(spec: MediumSpec, modes: int = 64) -> tuple[float, float]:
    """The logs of the smallest and largest value `spec`'s law gives (a lognormal field's at 3
    sigma over `modes` modes per axis, the grid's; a maze's paths only: its near-rigid walls
    reflect what reaches them). In logs, so that no recipe overflows the check itself."""
    low, high = spec.log_contrast.min, spec.log_contrast.max
    if spec.law in ("constant", "maze"):
        low = high = 0.0
    elif spec.law == "lognormal":
        bound = grf_pointwise_std_bound(2, spec.alpha, spec.tau, spec.sigma, max(modes, 64))
        spread = 3 * bound
        low, high = -spread, spread
    elif spec.law == "inclusions":  # the background too
        low, high = min(low, 0.0), max(high, 0.0)
    return math.log(spec.value) + low, math.log(spec.value) + high


def medium_bounds(spec: MediumSpec) -> tuple[float, float]:
    """The smallest and largest value of `spec`'s law (`medium_log_bounds`)."""
    low, high = medium_log_bounds(spec)
    return math.exp(low), math.exp(high)


def law_log_range(spec: MediumSpec, modes: int = 64) -> tuple[float, float]:
    """The logs of every value `spec`'s law can put in a cell, a maze's walls included (what
    stability depends on; a lognormal field's at 3 sigma)."""
    low, high = medium_log_bounds(spec, modes)
    if spec.law == "maze":
        low, high = min(low, math.log(spec.wall)), max(high, math.log(spec.wall))
    return low, high


def stability_limit(problem: AcousticProblem, h: float, n: int) -> float:
    """A lower bound of leapfrog's stability limit 2 / sqrt(lambda_max(M^-1 S)) for every
    medium the laws give: Gershgorin bounds lambda_max by K_max 8 / (rho_min h^2) (four faces,
    each coefficient at most 1 / rho_min, on each side of the row), so the limit is at least
    h sqrt(rho_min / (2 K_max))."""
    rho_low, _ = law_log_range(problem.density, n)
    _, k_high = law_log_range(problem.bulk_modulus, n)
    return h * math.exp(0.5 * (rho_low - k_high)) / math.sqrt(2.0)


def shortest_wavelength(problem: AcousticProblem, length: float, n: int) -> float:
    """The rings' shortest wavelength (`RING_WAVELENGTH` widths) where the medium is slowest:
    a frequency keeps its value across interfaces, so a wave leaving the fastest medium
    shortens by c_min / c_max in the slowest (c = sqrt(K / rho))."""
    rho_low, rho_high = medium_log_bounds(problem.density, n)
    k_low, k_high = medium_log_bounds(problem.bulk_modulus, n)
    ratio = math.exp(0.5 * ((k_low - rho_high) - (k_high - rho_low)))
    return RING_WAVELENGTH * problem.initial.width * length * ratio


def stiffness_operator(density: np.ndarray, h: float) -> sp.csr_matrix:
    """-div((1/rho) grad) on the cell-centred grid with zero flux through the walls: face
    coefficient 2 / (rho_left + rho_right) between neighbouring cells, no coupling across a
    wall. The cells' neighbour structure is the node grid's interior stencil, so the matrix
    is assembled on its shared pattern (`stencil_matrix`)."""
    diagonal = np.zeros(density.shape)
    faces = []
    for axis in range(density.ndim):
        lower = tuple(slice(0, -1) if d == axis else slice(None) for d in range(density.ndim))
        upper = tuple(slice(1, None) if d == axis else slice(None) for d in range(density.ndim))
        face = 2.0 / (density[lower] + density[upper]) / h**2
        diagonal[lower] += face
        diagonal[upper] += face
        faces.append(-face)
    return stencil_matrix(diagonal, faces, faces)


class Acoustic(CellCentredSquare, Family):
    name = "acoustic"
    discretisation = (
        "cell-centred second-order finite differences of (1/K) p_tt = div((1/rho) grad p) "
        "with rigid (zero-flux) walls, face densities the mean of the two cells', and the "
        "time scheme below"
    )
    Problem = AcousticProblem
    inputs = {
        "density": FieldAxes(dims=(2,)),
        "bulk_modulus": FieldAxes(dims=(2,)),
        "initial_pressure": FieldAxes(dims=(2,)),
    }
    outputs = {"pressure": FieldAxes(time=True, dims=(2,))}
    # Newmark's solves, measured (docs/benchmarks.md, "Acoustic waves"): the one Cholesky
    # factorisation of a sample kept for all its steps, ahead of CG + ICC and CG + Jacobi
    auto_solvers = {2: ("direct", "cholesky")}
    iterative_pc = "icc"
    symmetric = True
    positive_definite = True

    @classmethod
    def check(cls, recipe) -> None:
        cls.check_square(recipe)
        p = recipe.problem
        n, length = recipe.grid.n, recipe.grid.lengths[0]
        for name in ("density", "bulk_modulus"):
            spec = getattr(p, name)
            blocks = 2 * spec.maze_cells + 1
            if spec.law == "maze" and n < 2 * blocks:
                raise RecipeError(
                    f"problem.{name}.maze_cells: {spec.maze_cells} rooms need at least "
                    f"{2 * blocks} cells per axis (two per wall or path block): lower it or "
                    f"raise grid.n (now {n})"
                )
            c = spec.log_contrast
            if not c.min <= c.max:
                raise RecipeError(
                    f"problem.{name}.log_contrast.min, problem.{name}.log_contrast.max: need "
                    f"min <= max, got [{c.min:g}, {c.max:g}]"
                )
            low, high = law_log_range(spec, n)
            if not -LOG_LIMIT <= low <= high <= LOG_LIMIT:
                raise RecipeError(
                    f"problem.{name}.value, problem.{name}.log_contrast.min, "
                    f"problem.{name}.log_contrast.max: the law's values exp({low:.3g}) .. "
                    f"exp({high:.3g}) leave 1e-300 .. 1e300"
                )
        r = p.initial.radius
        if not 0 < r.min <= r.max:
            raise RecipeError(
                "problem.initial.radius.min, problem.initial.radius.max: need 0 < min <= max, "
                f"got [{r.min:g}, {r.max:g}]"
            )
        ppw = shortest_wavelength(p, length, n) / (length / n)
        if ppw < p.min_points_per_wavelength:
            raise RecipeError(
                f"problem.min_points_per_wavelength: the rings' shortest wavelength in the "
                f"slowest medium gets {ppw:.1f} cells (need at least "
                f"{p.min_points_per_wavelength:g}): widen problem.initial.width, narrow the "
                "media's contrast, or raise grid.n"
            )

    # -- the grid (`CellCentredSquare`) ----------------------------------------------------

    @property
    def unknowns(self) -> int:
        return self.n**2

    @property
    def matrix_entries(self) -> int:
        return 5 * self.unknowns

    def describe_domain(self) -> str:
        walls = "rigid (reflecting) walls"
        if self.problem.absorbing > 0:
            walls += f" lined with an absorbing layer {self.problem.absorbing:g} of the length wide"
        return f"{self.square_words()}, {walls}."

    @property
    def time_stepping(self) -> TimeStepping:
        """Newmark at `dt`; leapfrog at the recipe's step (`leapfrog_step`)."""
        p = self.problem
        times = np.linspace(0.0, p.t_end, p.frames + 1)
        step = p.dt if p.scheme == "newmark" else self.leapfrog_step()[1]
        return TimeStepping(
            p.scheme, step, times, initial_input="initial_pressure", trajectory="pressure"
        )

    @property
    def solves_per_sample(self) -> int:
        """Newmark: one solve per step; leapfrog: one result per frame interval (its steps)."""
        return self.time_stepping.steps if self.problem.scheme == "newmark" else self.problem.frames

    def describe_discretisation(self) -> str:
        stepping = self.time_stepping
        if self.problem.scheme == "newmark":
            how = (
                "one symmetric positive definite solve per step with the same matrix "
                "throughout a sample"
            )
        else:
            how = (
                f"{self.problem.cfl:g} times the media's stability limit (smaller for a "
                "sample stiffer than the laws' bounds), no linear solve: the solver settings "
                "are not used"
            )
        return (
            f"Discretisation: {self.discretisation}. Time stepping: {stepping.description}, "
            f"internal step dt = {stepping.dt:g} ({stepping.steps} steps), {how}; `pressure` "
            f"stores {describe_frames(stepping.frame_times)}, frame 0 the initial pressure, "
            "starting at rest."
        )

    # -- random inputs ----------------------------------------------------------------------

    def unit_coordinates(self) -> np.ndarray:
        """The cell centres mapped to [0, 1] (where the random laws are defined)."""
        return (self.x + self.length / 2) / self.length

    def medium(self, rng: np.random.Generator, spec: MediumSpec) -> np.ndarray:
        """One draw of `spec`'s law on the cell centres (`MediumSpec`)."""
        s = self.unit_coordinates()
        X, Y = np.meshgrid(s, s, indexing="ij")
        if spec.law == "constant":
            return np.full(self.grid_shape, spec.value)
        if spec.law == "lognormal":
            g = gaussian_random_field(rng, [s, s], spec.alpha, spec.tau, spec.sigma)
            return spec.value * np.exp(g)
        if spec.law in ("layers", "discontinuous-layers"):
            count = int(rng.integers(2, spec.layers + 1))
            angle = rng.uniform(-math.pi / 6, math.pi / 6)
            across = Y * math.cos(angle) + (X - 0.5) * math.sin(angle)
            interfaces = np.sort(rng.uniform(across.min(), across.max(), count - 1))
            logs = np.log(spec.value) + rng.uniform(
                spec.log_contrast.min, spec.log_contrast.max, count
            )
            log_field = np.full(self.grid_shape, logs[0])
            for j, position in enumerate(interfaces):
                jump = logs[j + 1] - logs[j]
                if spec.law == "layers":
                    step = 0.5 * (1.0 + np.tanh((across - position) / spec.transition))
                else:
                    step = (across >= position).astype(float)
                log_field = log_field + jump * step
            return np.exp(log_field)
        if spec.law == "inclusions":
            out = np.full(self.grid_shape, spec.value)
            for _ in range(int(rng.integers(0, spec.inclusions + 1))):
                cx, cy = rng.uniform(0.0, 1.0, 2)
                a, b = rng.uniform(0.05, 0.2, 2)
                theta = rng.uniform(0.0, math.pi)
                contrast = rng.uniform(spec.log_contrast.min, spec.log_contrast.max)
                u = (X - cx) * math.cos(theta) + (Y - cy) * math.sin(theta)
                v = -(X - cx) * math.sin(theta) + (Y - cy) * math.cos(theta)
                out[(u / a) ** 2 + (v / b) ** 2 <= 1.0] = spec.value * math.exp(contrast)
            return out
        walls = maze_walls(rng, spec.maze_cells)  # (2m + 1)^2 blocks, True on a wall
        blocks = walls.shape[0]
        cell = np.minimum((s * blocks).astype(int), blocks - 1)
        return np.where(walls[np.ix_(cell, cell)], spec.wall, spec.value)

    def initial_pressure(self, rng: np.random.Generator) -> np.ndarray:
        spec = self.problem.initial
        X, Y = np.meshgrid(self.x, self.x, indexing="ij")
        half = self.length / 2
        p = np.zeros(self.grid_shape)
        for _ in range(int(rng.integers(1, spec.count + 1))):
            cx, cy = rng.uniform(-half, half, 2)
            radius = spec.radius.draw(rng) * self.length
            amplitude = rng.uniform(0.5, 1.0) * rng.choice((-1.0, 1.0))
            distance = np.hypot(X - cx, Y - cy)
            p += amplitude * np.exp(-(((distance - radius) / (spec.width * self.length)) ** 2))
        return p

    def sample(self, seed: int, index: int) -> Sample:
        rng = sample_rng(seed, index)
        p = self.problem
        density = self.medium(rng, p.density)
        bulk = self.medium(rng, p.bulk_modulus)
        return Sample(
            index,
            {
                "density": density,
                "bulk_modulus": bulk,
                "initial_pressure": self.initial_pressure(rng),
            },
        )

    # -- the equations ----------------------------------------------------------------------

    def damping(self) -> np.ndarray:
        """sigma at the cell centres: 0 inside, rising as (depth / width)^2 to
        `absorbing_strength` at the walls across the absorbing layer."""
        p = self.problem
        out = np.zeros(self.grid_shape)
        if p.absorbing <= 0 or p.absorbing_strength <= 0:
            return out
        width = p.absorbing * self.length
        depth = np.clip(width - (self.length / 2 - np.abs(self.x)), 0.0, None) / width
        ramp = depth**2
        return p.absorbing_strength * np.maximum(ramp[:, None], ramp[None, :])

    def build_medium(self, inputs: dict[str, np.ndarray]) -> Medium:
        return Medium(inputs["density"], inputs["bulk_modulus"], self.h, self.damping())

    def trajectory(
        self, medium: Medium, p0: np.ndarray, v0: np.ndarray | None, solve
    ) -> tuple[list[np.ndarray], list]:
        """The frames of p from (p0, v0) (v0 None: at rest); `solve(A, b, x0)` returns a
        SolveResult (Newmark's solves; leapfrog calls none)."""
        p = p0.ravel().astype(float).copy()
        v = np.zeros_like(p) if v0 is None else v0.ravel().astype(float).copy()
        if self.problem.scheme == "leapfrog":
            return self.leapfrog(medium, p, v)
        return self.newmark(medium, p, v, solve)

    def newmark(
        self,
        medium: Medium,
        p: np.ndarray,
        v: np.ndarray,
        solve,
        record: Callable[[tuple[np.ndarray, ...]], Any] = lambda state: state[0].copy(),
    ):
        """Newmark's march from (p, v); `record(state)` of each frame's (p, v, a)."""
        a = medium.acceleration(p, v)
        built: dict[float, object] = {}

        def advance(state, t: float, step: float):
            p, v, a = state
            # one matrix per step size: frame intervals off dt's multiples give equal steps
            # that differ in their last bits from interval to interval, which are the same step
            key = float(f"{step:.12g}")
            if key not in built:
                built[key] = medium.newmark_matrix(step)
            p_star, v_star, rhs = medium.newmark_predictor(p, v, a, step)
            result = solve(built[key], rhs, a)
            a = result.x
            return (p_star + 0.25 * step**2 * a, v_star + 0.5 * step * a, a), result

        return self.time_stepping.march((p, v, a), advance, record=record)

    def leapfrog_step(self, medium: Medium | None = None) -> tuple[int, float]:
        """(steps per frame interval, step): the frame interval in equal steps no longer than
        `cfl` times the stability limit, the same step throughout a trajectory. The limit is
        the recipe's (`stability_limit`, the same for every sample), or the sample's own
        Gershgorin bound where its medium is stiffer than the laws' bounds say (a log-normal
        draw beyond 3 sigma)."""
        limit = stability_limit(self.problem, self.h, self.n)
        if medium is not None:
            limit = min(limit, medium.stable_step())
        span = self.problem.t_end / self.problem.frames
        if not (limit > 0 and math.isfinite(span / limit)):
            # media beyond 1e-300 .. 1e300: `check` refuses them, but the memory estimate
            # asks for the steps before `check` runs
            return 1, span
        count = max(1, math.ceil(span / (self.problem.cfl * limit)))
        return count, span / count

    def leapfrog(self, medium: Medium, p: np.ndarray, v: np.ndarray):
        M, C, S = medium.mass, medium.damping, medium.stiffness
        count, step = self.leapfrog_step(medium)
        a = medium.acceleration(p, v)
        previous = p - step * v + 0.5 * step**2 * a  # p at -step, to second order
        damp = 0.5 * step * C
        frames, results = [p.copy()], []
        for _ in range(self.problem.frames):
            start = time.perf_counter()
            for _ in range(count):
                after = (2 * M * p - (M - damp) * previous - step**2 * (S @ p)) / (M + damp)
                previous, p = p, after
            finite = bool(np.all(np.isfinite(p)))
            reason = "EXPLICIT" if finite else "DIVERGED_NANORINF"
            seconds = time.perf_counter() - start
            results.append(MarchSteps(count, step, finite, reason, seconds))
            frames.append(p.copy())
        return frames, results

    def system(self, sample: Sample):
        """The first Newmark step's system (ordering and benchmarks look at one operator)."""
        medium = self.build_medium(sample.inputs)
        p = sample.inputs["initial_pressure"].ravel()
        v = np.zeros_like(p)
        step = self.problem.dt
        *_, rhs = medium.newmark_predictor(p, v, medium.acceleration(p, v), step)
        return medium.newmark_matrix(step), rhs

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        medium = self.build_medium(sample.inputs)
        frames, results = self.trajectory(
            medium, sample.inputs["initial_pressure"], None, chain.solve
        )
        return {"pressure": np.asarray(frames).reshape(len(frames), *self.grid_shape)}, results

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual]:
        """For `check --deep`: a frame is many steps of a two-level scheme (the velocity and
        acceleration are not stored), so the sample is run again from its stored inputs with
        scipy's sparse LU for Newmark's solves (a second implementation of every solve, no
        PETSc), and compared with every stored frame: relative L2 difference, bound
        REFRAME_FACTOR x max(eps, rtol) x the steps up to that frame (the solves' tolerance
        and the storage's rounding carried through a non-dissipative march; a wrong frame
        differs by order one)."""
        medium = self.build_medium(sample.inputs)
        initial = sample.inputs["initial_pressure"]
        frames, results = self.trajectory(medium, initial, None, scipy_lu_solve())
        steps = (
            self.time_stepping.steps
            if self.problem.scheme == "newmark"
            else sum(r.iterations for r in results)
        )
        per_frame = steps / self.problem.frames
        unit = max(eps, rtol) if self.problem.scheme == "newmark" else eps  # leapfrog: no solve
        out = []
        for k in range(1, len(frames)):
            relative = relative_difference(frames[k], outputs["pressure"][k].ravel())
            bound = min(REFRAME_CAP, REFRAME_FACTOR * unit * k * per_frame)
            out.append((k, relative, bound))
        return out

    def residual_tolerance(self, rtol: float) -> str:
        return (
            f"{REFRAME_FACTOR:g} x roundoff (Newmark: x max(roundoff, rtol)) per step, at most "
            f"{REFRAME_CAP:g}, re-run with scipy"
        )

    def features(self, sample: Sample) -> np.ndarray:
        """log density and log bulk modulus, downsampled: both move the operator."""
        parts = [np.log(sample.inputs[name]) for name in ("density", "bulk_modulus")]
        return np.concatenate([self.downsample(part).ravel() for part in parts])


def maze_walls(rng: np.random.Generator, rooms: int) -> np.ndarray:
    """A perfect maze of rooms x rooms as (2 rooms + 1)^2 blocks, True on walls: a random
    depth-first spanning tree of the rooms, each tree edge an opening in the wall between
    two rooms (every path block reachable from every other, tested)."""
    size = 2 * rooms + 1
    walls = np.ones((size, size), dtype=bool)
    visited = np.zeros((rooms, rooms), dtype=bool)
    stack = [(int(rng.integers(rooms)), int(rng.integers(rooms)))]
    visited[stack[0]] = True
    walls[2 * stack[0][0] + 1, 2 * stack[0][1] + 1] = False
    while stack:
        i, j = stack[-1]
        options = [
            (i + di, j + dj)
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))
            if 0 <= i + di < rooms and 0 <= j + dj < rooms and not visited[i + di, j + dj]
        ]
        if not options:
            stack.pop()
            continue
        ni, nj = options[int(rng.integers(len(options)))]
        visited[ni, nj] = True
        walls[2 * ni + 1, 2 * nj + 1] = False
        walls[i + ni + 1, j + nj + 1] = False  # the wall block between the two rooms
        stack.append((ni, nj))
    return walls


__all__ = ["Acoustic", "AcousticProblem", "MediumSpec", "RingsSpec", "maze_walls"]
