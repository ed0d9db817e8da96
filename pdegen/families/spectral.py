"""The periodic families: Fourier pseudo-spectral in space, ETDRK4 in time.

A periodic family's sample is a trajectory u(t) on the torus [0, L_1) x ... (`grid.length`),
marched by `solvers.spectral` (ETDRK4 with the stiff linear part integrated exactly, 2/3
dealiasing of the nonlinear products), with no linear system to solve: the family runs the
registered method `spectral`, and `auto` resolves to it.

The internal step. Each frame interval is stepped by h = dt / 2^j with the smallest j >= 0
for which h times the family's rate (`step_rate`: the advection speed over the grid spacing,
or a reaction rate) is at most `cfl`, read from the state at the interval's start; the
steps between two frames are equal and land on the frame time exactly
(`solvers.stepping.substeps`). Powers of two keep the set of step sizes small, so ETDRK4's
coefficients (a contour integral per Fourier mode) are computed once per size and shared by
every sample with the same linear part. `/stats/iterations` holds a sample's steps,
`/stats/smallest_step` the smallest h it took.

What `/stats/spectral_tail` says: the largest, over the frames, relative L2 norm of the
modes in the upper half of the dealiased band (max_i |k_i| / (n_i / 3) >= 1/2) and above it.
Frame 0 is left out: it is the drawn state, exact at the points whatever its law's spectrum.
A resolved solution's spectrum decays exponentially, so the tail is tiny (1e-8 and below);
a tail of 1e-3 or more means the grid does not resolve the solution (raise grid.n, the
viscosity, or store fewer points: `stored_points`).

Resolution. The solve runs on `grid.n` points per axis; `stored_points` (a divisor of it)
stores every (n / stored_points)-th point, as FNO stores its 256^2 solves at 64^2.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, ClassVar

import numpy as np

from pdegen.discretisation.fields import (
    periodic_gaussian_random_field,
    sample_rng,
    sine_modes_field,
)
from pdegen.discretisation.timestepping import TimeStepping
from pdegen.errors import RecipeError
from pdegen.families.base import Family, describe_frames
from pdegen.families.declarations import SPACE_AXES, TIME_AXIS, Sample
from pdegen.families.residuals import StepResidual, relative_difference
from pdegen.specs import GridSpec, PeriodicFieldSpec, RangeSpec, rule
from solvers.spectral import ETDRK4, PeriodicGrid
from solvers.stepping import MarchSteps, substeps

#: the smallest step is dt / 2^MAX_HALVINGS; a state that needs a smaller one has blown up
MAX_HALVINGS = 24
#: the modes counted in `spectral_tail`: the upper half of the dealiased band, and above
TAIL_START = 0.5
#: from the drawn state, the span of the first INITIAL_LAYER_STEPS steps is stepped
#: INITIAL_LAYER_REFINEMENT times finer: ETDRK4 loses its order in the initial layer of
#: non-smooth data (PDEBench's kinks and windows, a GRF's algebraic spectrum); measured on
#: fisher-kpp's recipe: 6.7e-4 -> 2.9e-6 worst frame error for 15% more steps
#: (docs/benchmarks.md, "The periodic families")
INITIAL_LAYER_REFINEMENT = 16
INITIAL_LAYER_STEPS = 4
#: how far a re-integrated frame may lie from the stored one, in units of the storage's
#: unit roundoff per step (`stored_residuals`)
REINTEGRATION_FACTOR = 100.0


@dataclasses.dataclass(frozen=True)
class SpectralMarch:
    """The recipe fields every periodic family shares: the frames and the internal step."""

    t_end: float = rule(1.0, gt=0.0)
    #: frame intervals: frames at k t_end / frames, k = 0 .. frames (frame 0 the start)
    frames: int = rule(10, ge=1, le=100000)
    #: the largest internal step (None: one frame interval)
    dt: float | None = rule(None, gt=0.0)
    cfl: float = rule(0.25, gt=0.0, le=4.0)
    #: points per axis stored (a divisor of grid.n; None: every point)
    stored_points: int | None = rule(None, ge=4)


@dataclasses.dataclass
class SpectralSample(Sample):
    """A sample whose solve runs on a finer grid than the one stored: `solve_inputs` are the
    inputs on the solve grid (the same arrays as `inputs` when every point is stored)."""

    solve_inputs: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class SpectralFamily(Family):
    """The shared part of the periodic families (`solvers.spectral`)."""

    periodic = True
    why_no_cells = (
        "its grid is the torus's points j L / n, which no wall bounds: cells there would be "
        "the same points shifted by half a step"
    )
    any_length = True
    stores_boundary_nodes = False
    linear_systems = False
    grid_dims: ClassVar[tuple[int, ...]] = (1,)
    auto_solvers = {1: ("spectral", "none")}
    iterative_pc = "none"
    preconditioners = frozenset({"none"})
    stats_columns = {"spectral_tail": "float64", "smallest_step": "float64"}
    #: the trajectory's output name and the input it starts from
    trajectory: ClassVar[str] = "solution"
    initial_name: ClassVar[str] = "initial"

    def __init__(self, n: int, dim: int, problem: Any, lengths: tuple[float, ...] | None = None):
        self.n, self.dim, self.problem = n, dim, problem
        self.lengths = tuple(lengths or (1.0,) * dim)
        self.grid = PeriodicGrid((n,) * dim, self.lengths)
        self.stride = max(1, n // (problem.stored_points or n))  # a divisor (`check`)
        self.h = min(self.lengths) / n
        self.x = self.grid.coordinates[0]
        self._coefficients: dict[Any, dict] = {}  # ETDRK4's per linear part, per step

    @classmethod
    def from_recipe(cls, recipe) -> Family:
        return cls(recipe.grid.n, recipe.grid.dim, recipe.problem, recipe.grid.lengths)

    @classmethod
    def check_grid(cls, grid: GridSpec) -> GridSpec:
        """Besides the base checks: an even number of points per axis (before the family is
        built: its FFT grid needs it)."""
        grid = super().check_grid(grid)
        if grid.n % 2:
            raise RecipeError(
                f"grid.n: {grid.n} points per axis cannot be transformed here (allowed: even "
                "numbers from 4: the 2/3 rule and the real FFT's Nyquist mode need them)"
            )
        return grid

    @classmethod
    def check(cls, recipe) -> None:
        p, n = recipe.problem, recipe.grid.n
        if p.stored_points is not None and (n % p.stored_points or p.stored_points % 2):
            raise RecipeError(
                f"problem.stored_points: {p.stored_points} must be an even divisor of grid.n "
                f"{n} (every (n / stored_points)-th point is stored)"
            )
        step = p.dt if p.dt is not None else p.t_end / p.frames
        if step * 2.0**-MAX_HALVINGS == 0.0 or not math.isfinite(p.t_end / step):
            where = "problem.dt" if p.dt is not None else "problem.t_end"
            value = p.dt if p.dt is not None else p.t_end
            raise RecipeError(
                f"{where}: {value:g} is too small: the internal step {step:g} cannot be "
                f"halved {MAX_HALVINGS} times in floating point"
            )
        for where, spec in _periodic_fields(p):
            if spec.law == "sines" and recipe.grid.dim != 1:
                raise RecipeError(f"{where}.law: sines is PDEBench's 1D law (allowed: grf)")
            if spec.law == "sines" and 2 * spec.max_wavenumber >= n / 1.5:
                raise RecipeError(
                    f"{where}.max_wavenumber: {spec.max_wavenumber} is not resolved by grid.n "
                    f"{n} (at most {math.ceil(n / 3) - 1} inside the dealiased band)"
                )
            if spec.law == "grf" and spec.sigma is None and not _scale_ok(spec, recipe.grid.dim):
                name = next(
                    (f for f in ("alpha", "tau") if _scale_ok(_default(spec, f), recipe.grid.dim)),
                    "alpha",
                )
                raise RecipeError(
                    f"{where}.{name}: {getattr(spec, name):g} makes the default sigma = "
                    f"tau^(alpha - d/2) overflow (alpha {spec.alpha:g}, tau {spec.tau:g}; "
                    "lower it, or give sigma)"
                )

    # -- the grid and the frames ------------------------------------------------------------

    @property
    def coordinates(self) -> dict[str, np.ndarray]:
        """The frame times, then the stored points j L / n of every axis."""
        space = {
            name: c[:: self.stride]
            for name, c in zip(SPACE_AXES, self.grid.coordinates, strict=False)
        }
        return {TIME_AXIS: self.times, **space}

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.n // self.stride,) * self.dim

    @property
    def interior_shape(self) -> tuple[int, ...]:
        return (self.n,) * self.dim

    @property
    def matrix_entries(self) -> int:
        return 0  # no linear system

    def interior(self, array: np.ndarray) -> np.ndarray:
        return array  # no boundary nodes on a torus

    def stored(self, array: np.ndarray) -> np.ndarray:
        """An array on the solve grid at the stored points (its trailing `dim` axes)."""
        if self.stride == 1:
            return array
        index = (Ellipsis,) + (slice(None, None, self.stride),) * self.dim
        return np.ascontiguousarray(array[index])

    @property
    def max_step(self) -> float:
        p = self.problem
        return p.dt if p.dt is not None else p.t_end / p.frames

    @property
    def warmup(self) -> float:
        """Time marched before frame 0 (and not stored): 0 unless the family has a warm-up."""
        return float(getattr(self.problem, "warmup", 0.0))

    @property
    def solves_per_sample(self) -> int:
        """One result per frame interval, and one for the warm-up where there is one."""
        return self.problem.frames + (self.warmup > 0)

    @property
    def time_stepping(self) -> TimeStepping:
        p = self.problem
        times = np.linspace(0.0, p.t_end, p.frames + 1)
        initial = None if self.warmup > 0 else self.initial_name
        return TimeStepping(
            "etdrk4", self.max_step, times, initial_input=initial, trajectory=self.trajectory
        )

    def grid_words(self) -> str:
        return f"{'×'.join(map(str, self.grid_shape))} periodic grid"

    def describe_domain(self) -> str:
        shape = {1: "interval", 2: "rectangle", 3: "box"}[self.dim]
        sides = " × ".join(f"[0, {L:g})" for L in self.lengths)
        stored = self.n // self.stride
        return (
            f"Domain: the periodic {shape} {sides}, {stored} points per axis at x_j = j L / "
            f"{stored} (the point at L is the one at 0, not stored twice)."
        )

    def describe_discretisation(self) -> str:
        stepping, p = self.time_stepping, self.problem
        times = stepping.frame_times
        stored = self.n // self.stride
        where = "" if self.stride == 1 else f", stored at every {self.stride}th point ({stored})"
        warm = f" after a warm-up of {self.warmup:g} time units (not stored)" if self.warmup else ""
        return (
            f"Discretisation: {self.discretisation}, on {self.n} points per axis of the periodic "
            f"domain of length {', '.join(f'{L:g}' for L in self.lengths)}{where}. Time "
            f"stepping: {stepping.description}, internal step dt = {self.max_step:g} "
            f"({stepping.steps} steps) at most, halved at each frame interval's start until "
            f"it is within CFL {p.cfl:g} of the state there (each sample's steps in "
            f"/stats/iterations); `{self.trajectory}` stores "
            f"{describe_frames(times)}{warm}."
        )

    # -- what each family defines -----------------------------------------------------------

    def draw(self, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """The sample's inputs on the solve grid (the initial state first) and its
        parameters, drawn from `rng` in a fixed order."""
        raise NotImplementedError

    def equation(self, inputs: dict[str, np.ndarray], params: dict[str, float]) -> ETDRK4:
        """The ETDRK4 integrator of this sample's equation (`solvers.spectral`)."""
        raise NotImplementedError

    def linear_key(self, params: dict[str, float]) -> Any:
        """What the equation's linear part depends on (its viscosity, say): samples with
        equal keys share ETDRK4's coefficients."""
        return None

    def integrator(self, inputs: dict[str, np.ndarray], params: dict[str, float]) -> ETDRK4:
        """`equation`, its coefficients shared with the samples of the same `linear_key`."""
        stepper = self.equation(inputs, params)
        stepper.cache = self.coefficients_cache(self.linear_key(params))
        return stepper

    def step_rate(self, u_hat: np.ndarray, params: dict[str, float]) -> float:
        """1 / (the time scale the explicit part must resolve) at state u_hat: the step h is
        kept to h * rate <= cfl. Advection by u: max |u_i| / h_i."""
        raise NotImplementedError

    def initial_state(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return inputs[self.initial_name]

    # -- samples ---------------------------------------------------------------------------

    def field(self, rng: np.random.Generator, spec: PeriodicFieldSpec) -> np.ndarray:
        """One draw of the periodic field `spec` on the solve grid."""
        if spec.law == "sines":
            u = sine_modes_field(
                rng, self.x, self.lengths[0], spec.modes, spec.max_wavenumber,
                spec.absolute, spec.window,
            )  # fmt: skip
        else:
            u = periodic_gaussian_random_field(
                rng, self.grid.shape, spec.alpha, spec.tau, spec.sigma, self.lengths
            )
        if spec.rescale:
            low, high = float(u.min()), float(u.max())
            u = (u - low) / (high - low) if high > low else np.full_like(u, 0.5)
        if spec.scale != 1.0:
            u = u * spec.scale
        return u

    def sample(self, seed: int, index: int) -> Sample:
        inputs, params = self.draw(sample_rng(seed, index))
        stored = {name: self.stored(array) for name, array in inputs.items()}
        return SpectralSample(index, stored, params, solve_inputs=inputs)

    def system(self, sample: Sample):
        raise NotImplementedError(f"{self.name} is integrated spectrally: it has no system")

    def features(self, sample: Sample) -> np.ndarray:
        return self.downsample(sample.inputs[self.initial_name]).ravel()

    def coefficients_cache(self, key: Any) -> dict:
        """ETDRK4's coefficients for the linear part `key`, shared by the samples that have
        it (a recipe with a fixed viscosity computes them once per step size)."""
        if key not in self._coefficients:
            if len(self._coefficients) >= 4:  # per-sample viscosities: do not hoard them
                self._coefficients.pop(next(iter(self._coefficients)))
            self._coefficients[key] = {}
        return self._coefficients[key]

    # -- the march -----------------------------------------------------------------------

    def step_limit(self, u_hat: np.ndarray, params: dict[str, float]) -> float:
        """The largest internal step the state u_hat allows: cfl / `step_rate`."""
        rate = self.step_rate(u_hat, params)
        return self.problem.cfl / rate if rate > 0 else math.inf

    def advective_limit(self, speed: float, diffusivity: float = 0.0, hyper: float = 0.0) -> float:
        """The largest step for advection at `speed` whose modes are each either resolved
        or damped within the step by the exact linear part (diffusivity D k^2, hyper-
        diffusivity H k^4). Resolved: h speed k <= C, with C = cfl x 2 pi / 3 at the top of
        the dealiased band (k_max = 2 pi n / 3 L), which is h <= cfl h_x / speed there.
        Damped: D k^2 h >= 1, from k = (D h)^(-1/2) up; every mode is one or the other when
        (D h)^(-1/2) <= C / (h speed), that is h <= D C^2 / speed^2 (with H k^4: h <=
        H^(1/3) (C / speed)^(4/3)). The step is the larger of the two rules. Why: a viscous
        Burgers or Navier-Stokes solve on a fine grid would otherwise be held to the
        advective limit of modes its viscosity erases in one step (FNO's Burgers at 8192
        points: over 100x the steps its error needs; docs/benchmarks.md)."""
        if speed == 0.0:
            return math.inf
        resolved = self.problem.cfl * self.h / speed
        top = self.problem.cfl * 2.0 * math.pi / 3.0
        damped = diffusivity * top**2 / speed**2
        if hyper > 0.0:
            damped = max(damped, hyper ** (1.0 / 3.0) * (top / speed) ** (4.0 / 3.0))
        return max(resolved, damped)

    def step_for(self, u_hat: np.ndarray, params: dict[str, float]) -> float | None:
        """The internal step for the interval starting at u_hat: dt / 2^j for the smallest
        j >= 0 within `step_limit` (None: no step will do)."""
        limit = self.step_limit(u_hat, params)
        if math.isnan(limit) or limit <= 0:
            return None
        h = self.max_step
        for _ in range(MAX_HALVINGS + 1):
            if h <= limit:
                return h
            h /= 2.0
        return None

    def march(
        self, integrator: ETDRK4, u_hat: np.ndarray, params: dict[str, float],
        start: float, end: float, drawn: bool = False,
    ) -> tuple[np.ndarray, MarchSteps]:  # fmt: skip
        """u_hat at `end` from `start`, and what it took. From the `drawn` state itself the
        first INITIAL_LAYER_STEPS steps' span is stepped INITIAL_LAYER_REFINEMENT times finer
        (the initial layer), the rest of the interval by the rule's step."""
        begun = time.perf_counter()
        h = self.step_for(u_hat, params)
        if h is None:
            failed = MarchSteps(0, math.nan, False, "DIVERGED_STEP_SIZE", 0.0)
            return np.full_like(u_hat, np.nan), failed
        pieces = [(start, end, h)]
        layer = start + INITIAL_LAYER_STEPS * h
        if drawn:
            fine = h / INITIAL_LAYER_REFINEMENT
            pieces = (
                [(start, end, fine)] if layer >= end else [(start, layer, fine), (layer, end, h)]
            )
        count, smallest = 0, math.inf
        for a, b, size in pieces:
            steps, step = substeps(a, b, size)
            for j in range(steps):
                u_hat = integrator.step(u_hat, a + j * step, step)
            count, smallest = count + steps, min(smallest, step)
        finite = bool(np.all(np.isfinite(u_hat)))
        reason = "CONVERGED_STEPS" if finite else "DIVERGED_NONFINITE"
        return u_hat, MarchSteps(count, smallest, finite, reason, time.perf_counter() - begun)

    def warm_up(
        self, integrator: ETDRK4, u_hat: np.ndarray, params: dict[str, float]
    ) -> tuple[np.ndarray, MarchSteps]:
        """March from -warmup to 0 in pieces no longer than a frame interval, the step chosen
        afresh for each (a rough random start needs small steps only at first), as one
        result: its steps summed, its smallest step."""
        interval = self.problem.t_end / self.problem.frames
        pieces = max(1, math.ceil(self.warmup / interval))
        edges = np.linspace(-self.warmup, 0.0, pieces + 1)
        steps, smallest, seconds = 0, math.inf, 0.0
        for k in range(pieces):
            u_hat, result = self.march(
                integrator, u_hat, params, edges[k], edges[k + 1], drawn=k == 0
            )
            steps, seconds = steps + result.iterations, seconds + result.seconds
            smallest = min(smallest, result.step)
            if not result.converged:
                return u_hat, dataclasses.replace(result, iterations=steps, seconds=seconds)
        return u_hat, MarchSteps(steps, smallest, True, "CONVERGED_STEPS", seconds)

    def tail(self, u_hat: np.ndarray) -> float:
        """The relative L2 norm of the modes at and above the upper half of the dealiased
        band (`spectral_tail`, module docstring); real-FFT weights counted."""
        weights, band = self._tail_weights
        energy = weights * np.abs(u_hat) ** 2
        total = float(energy.sum())
        return math.sqrt(float(energy[band].sum()) / total) if total > 0 else 0.0

    @functools.cached_property
    def _tail_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(each real-FFT mode's weight in the L2 norm, the modes `tail` counts): the grid's
        alone, so made once per family, not per frame."""
        shape = self.grid.forward(np.zeros(self.grid.shape)).shape
        weights = np.full(shape, 2.0)  # a mode and its conjugate, but k = 0 and Nyquist
        weights[..., 0] = 1.0
        if self.grid.shape[-1] % 2 == 0:
            weights[..., -1] = 1.0
        band = np.zeros(shape, dtype=bool)
        for k, n in zip(self.grid.frequencies(), self.grid.shape, strict=True):
            band = band | (np.abs(k) >= TAIL_START * n / 3.0)
        return weights, band

    def trajectory_from(
        self, inputs: dict[str, np.ndarray], params: dict[str, float]
    ) -> tuple[np.ndarray, list[MarchSteps]]:
        """The stored frames (time first, at the stored points) and one result per frame
        interval; after a failed interval the later frames are NaN and not attempted."""
        integrator = self.integrator(inputs, params)
        u_hat = self.grid.forward(self.initial_state(inputs))
        results: list[MarchSteps] = []
        if self.warmup > 0:
            u_hat, warm = self.warm_up(integrator, u_hat, params)
            results.append(warm)
        times = self.time_stepping.frame_times
        spectra = [u_hat]
        for k in range(len(times) - 1):
            if results and not results[-1].converged:
                spectra.append(np.full_like(u_hat, np.nan))
                results.append(MarchSteps(0, math.nan, False, "NOT_SOLVED", 0.0))
                continue
            drawn = k == 0 and self.warmup == 0
            u_hat, result = self.march(integrator, u_hat, params, times[k], times[k + 1], drawn)
            spectra.append(u_hat)
            results.append(result)
        # the dynamics' resolution: frame 0 is the drawn state, exact at the points however
        # rough its law (FNO's vorticity has an algebraic spectrum)
        tails = [self.tail(s) for s in spectra[1:] if np.all(np.isfinite(s))]
        results[-1].tail = max(tails, default=math.nan)
        frames = np.stack([self.stored(self.grid.inverse(s)) for s in spectra])
        if self.warmup == 0:  # frame 0 is the drawn state itself, not its FFT round trip
            frames[0] = self.stored(self.initial_state(inputs))
        return frames, results

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        inputs = getattr(sample, "solve_inputs", None) or sample.inputs
        frames, results = self.trajectory_from(inputs, sample.params)
        return {self.trajectory: frames}, results

    def sample_stats(self, results: list) -> dict[str, float]:
        steps = [r.step for r in results if r.iterations > 0]
        return {
            "spectral_tail": results[-1].tail,
            "smallest_step": min(steps, default=math.nan),
        }

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual] | None:
        """For `check --deep`: every stored frame interval re-integrated from the stored
        frame, against the next stored frame: relative difference ||u' - u^{n+1}|| /
        ||u^{n+1}||, bound REINTEGRATION_FACTOR x eps x the interval's steps (the stored
        frame's rounding carried through the steps; a wrong frame differs by order one).
        None where the stored points are not the solve grid's (nothing to restart from)."""
        if self.stride != 1:
            return None
        frames = outputs[self.trajectory]
        integrator = self.integrator(sample.inputs, sample.params)
        times = self.time_stepping.frame_times
        out = []
        for k in range(len(frames) - 1):
            drawn = k == 0 and self.warmup == 0  # as the writer stepped it
            start = self.grid.forward(frames[k])
            u_hat, result = self.march(
                integrator, start, sample.params, times[k], times[k + 1], drawn
            )
            relative = relative_difference(self.grid.inverse(u_hat), frames[k + 1])
            bound = REINTEGRATION_FACTOR * eps * max(1, result.iterations)
            out.append((k + 1, relative, bound))
        return out

    def why_no_residuals(self) -> str:
        return (
            f"{self.name} stores one point in {self.stride} per axis of its solve grid, so "
            "no frame can be re-integrated: only its inputs were re-checked"
        )

    def residual_tolerance(self, rtol: float) -> str:
        return f"{REINTEGRATION_FACTOR:g} x the storage's roundoff per step, re-integrated"


def _scale_ok(spec: PeriodicFieldSpec, dim: int) -> bool:
    """Whether the default sigma = tau^(alpha - d/2) and its square are finite."""
    try:
        return math.isfinite((spec.tau ** (spec.alpha - dim / 2)) ** 2)
    except OverflowError:
        return False


def _default(spec: PeriodicFieldSpec, name: str) -> PeriodicFieldSpec:
    """`spec` with `name` at its default: which field alone repairs it, to name it."""
    return dataclasses.replace(spec, **{name: getattr(PeriodicFieldSpec(), name)})


def _periodic_fields(problem: Any):
    for f in dataclasses.fields(problem):
        value = getattr(problem, f.name)
        if isinstance(value, PeriodicFieldSpec):
            yield f"problem.{f.name}", value


def viscosity_range(default: float) -> Any:
    """A recipe's `viscosity:` field: a constant (min = max) or a per-sample range."""
    return dataclasses.field(default_factory=lambda: RangeSpec(default, default))
