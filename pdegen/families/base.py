"""The interface every PDE family implements and the grid they share.

A family declares, as class attributes, what the rest of pdegen must know without a list of
families of its own: the fields it stores and their axes (`inputs`, `outputs`, `params`), its
discretisation and time stepping, the properties of its operator and the solvers `auto` picks
(`pdegen.families.solver_choice`, which `Family` inherits). The declarations are checked when
the class is defined (`pdegen.families.declarations`), so a family that contradicts itself
fails on import, not in a worker; recipe validation reads them to reject a solver the operator
cannot take (`Family.settle_solver`), the shard writer labels each stored array's axes from
them, and the loader and `pdegen inspect` read those labels back.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import gaussian_random_field
from pdegen.discretisation.operators import cell_diffusion_operator, diffusion_operator
from pdegen.discretisation.timestepping import TimeStepping
from pdegen.errors import RecipeError
from pdegen.families.declarations import (
    SPACE_AXES,
    TIME_AXIS,
    FieldAxes,
    Sample,
    check_declarations,
)
from pdegen.families.residuals import StepResidual, linear_residual
from pdegen.families.solver_choice import SolverChoice
from pdegen.messages import show
from pdegen.specs import CoefficientSpec, FieldSpec, GridSpec

FEATURE_POINTS = 32  # ordering compares fields on at most this many nodes per axis


def describe_frames(times: np.ndarray) -> str:
    """'N frames at t = 0, 0.1, ..., 2' for the card."""
    if len(times) > 2:
        return f"{len(times)} frames at t = {times[0]:g}, {times[1]:g}, ..., {times[-1]:g}"
    return f"{len(times)} frames at t = {', '.join(f'{t:g}' for t in times)}"


class Family(SolverChoice, abc.ABC):
    """A parameterised PDE on a grid: by default the node grid of the unit square or cube,
    boundary nodes included; the periodic families (`pdegen.families.spectral`) and PDEBench's
    cell-centred ones override the grid's coordinates and shape."""

    name: ClassVar[str]
    Problem: ClassVar[type]  # the dataclass of the recipe's `problem:` section
    #: how the PDE is discretised, in one sentence for the dataset card (each family its own:
    #: finite differences, finite elements or a staggered grid; time stepping is added from
    #: `time_stepping`)
    discretisation: ClassVar[str]
    #: the input fields a sample draws (/inputs), with their axes
    inputs: ClassVar[dict[str, FieldAxes]]
    #: the fields a solve produces (/outputs), with their axes
    outputs: ClassVar[dict[str, FieldAxes]] = {"solution": FieldAxes()}
    #: the scalar parameters a sample draws (/params, besides the generation index)
    params: ClassVar[tuple[str, ...]] = ()
    #: extra per-sample /stats columns, name -> numpy dtype, that `sample_stats` fills from
    #: a sample's solve results (the Newton families: Newton iterations; docs/format.md)
    stats_columns: ClassVar[dict[str, str]] = {}
    #: the grid dimensions the family is defined in (`grid.dim`)
    grid_dims: ClassVar[tuple[int, ...]] = (2, 3)
    #: its axes are periodic (the spectral families); otherwise each is the unit interval
    #: with boundary nodes
    periodic: ClassVar[bool] = False
    #: its domain may have any length per axis (`grid.length`); otherwise the unit one
    any_length: ClassVar[bool] = False
    #: its stored fields include the boundary nodes, holding the Dirichlet values
    #: (`boundary_values`, which `check` verifies); False for periodic and cell-centred grids
    stores_boundary_nodes: ClassVar[bool] = True
    #: the `grid.layout`s a recipe may name, its default first (what a recipe that leaves
    #: it out gets): the node grid; both for a family that also solves on cells
    #: (`use_cells`); "cells" alone for the families whose own grid is cell-centred
    #: (PDEBench's and The Well's); the periodic families' points j L / n count as nodes
    layouts: ClassVar[tuple[str, ...]] = ("nodes",)
    #: why a node-only family has no cell layout, for the refusal of `grid.layout: cells`
    #: (issue 27 asks each family that has none to say why)
    why_no_cells: ClassVar[str] = ""
    #: whether `use_cells` moved this instance from the node grid to the cell grid
    on_cells: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None) is not None:  # a concrete family, not a shared base
            check_declarations(cls, Family)

    def __init__(self, n: int, dim: int, problem: Any):
        self.n, self.dim, self.problem = n, dim, problem
        self.h = 1.0 / (n + 1)
        self.x = np.linspace(0.0, 1.0, n + 2)

    @classmethod
    def from_recipe(cls, recipe) -> Family:
        family = cls(recipe.grid.n, recipe.grid.dim, recipe.problem)
        if recipe.grid.layout == "cells" and cls.layouts[0] != "cells":  # a choice, not its own
            family.use_cells()
        return family

    def use_cells(self) -> None:
        """Make this instance cell-centred (`grid.layout: cells`): n cells per axis of the
        unit square or cube, h = 1/n, the values at the centres (i + 1/2) h, the walls on the
        cells' outer faces; the stored fields are the n^d centres, with no boundary nodes
        (so `pdegen check` verifies no boundary values there, and the loader's stride reads
        every stride-th centre). The family's own operator follows `self.on_cells`."""
        if "cells" not in self.layouts or self.layouts[0] == "cells":
            raise ValueError(f"{self.name} has no choice of a cell-centred layout")
        self.on_cells = True
        self.h = 1.0 / self.n
        self.x = (np.arange(self.n) + 0.5) * self.h
        self.stores_boundary_nodes = False  # this instance's: the class keeps the node grid's

    @classmethod
    def check_grid(cls, grid: GridSpec) -> GridSpec:
        """The recipe's grid checked against what the family solves on, its `periodic`
        resolved (omitted: the family's own); RecipeError naming the field otherwise."""
        if grid.dim not in cls.grid_dims:
            allowed = ", ".join(map(str, cls.grid_dims))
            raise RecipeError(
                f"grid.dim: {grid.dim} is not allowed for {cls.name} (allowed: {allowed})"
            )
        for name in ("periodic", "length"):
            value = getattr(grid, name)
            if isinstance(value, tuple) and len(value) != grid.dim:
                raise RecipeError(
                    f"grid.{name}: {len(value)} values for a {grid.dim}D grid (give one value "
                    "for every axis, or one per axis)"
                )
        if grid.periodic is None:
            grid = dataclasses.replace(grid, periodic=cls.periodic)
        if any(p != cls.periodic for p in grid.periodic_axes):
            kind = "periodic on every axis" if cls.periodic else "bounded by boundary nodes"
            raise RecipeError(
                f"grid.periodic: {show(grid.periodic)} is not allowed: {cls.name} is {kind} "
                f"(allowed: {str(cls.periodic).lower()}, or leave it out)"
            )
        if grid.layout is None:
            grid = dataclasses.replace(grid, layout=cls.layouts[0])
        if grid.layout not in cls.layouts:
            why = f": {cls.why_no_cells}" if cls.why_no_cells and grid.layout == "cells" else ""
            raise RecipeError(
                f"grid.layout: {grid.layout!r} is not allowed for {cls.name} (allowed: "
                f"{', '.join(cls.layouts)}, or leave it out){why}"
            )
        if not cls.any_length and any(length != 1.0 for length in grid.lengths):
            raise RecipeError(
                f"grid.length: {show(grid.length)} is not allowed: {cls.name} is defined on the "
                "unit interval, square or cube (allowed: 1)"
            )
        return grid

    @classmethod
    def check(cls, recipe) -> None:
        """Cross-field recipe checks; raise RecipeError naming the field."""
        return None  # most families need none beyond the schema

    # -- the grid and the stored fields -------------------------------------------------

    @property
    def time_stepping(self) -> TimeStepping | None:
        """How a trajectory is marched and recorded (`pdegen.discretisation.timestepping`);
        None for a family whose samples are steady solves. Every consumer (the march, `check
        --deep`, the card, The Well export) reads this declaration, never the family's name."""
        return None

    @property
    def times(self) -> np.ndarray:
        """The times of a trajectory's frames (`time_stepping.frame_times`)."""
        stepping = self.time_stepping
        if stepping is None:
            raise NotImplementedError(f"{type(self).__name__} declares no time stepping")
        return stepping.frame_times

    @property
    def coordinates(self) -> dict[str, np.ndarray]:
        """1D coordinates of every axis a stored field has (boundary nodes included): the
        time of each frame when a field is a trajectory, then x, y (, z)."""
        axes = {a for names in self.field_axes().values() for a in names}
        times = {TIME_AXIS: self.times} if TIME_AXIS in axes else {}
        return {**times, **{name: self.x for name in SPACE_AXES[: self.dim]}}

    @property
    def solves_per_sample(self) -> int:
        """The solve results one sample records (`/stats/solves`, which `check` verifies):
        one per frame interval of a trajectory, else one."""
        return len(self.times) - 1 if self.time_stepping is not None else 1

    @property
    def stops_early(self) -> bool:
        """Whether a trajectory may end before its last frame time (a march to a steady
        state): `solves_per_sample` is then the most a sample records."""
        return False

    @property
    def input_names(self) -> tuple[str, ...]:
        """The declared inputs that exist at this grid dimension."""
        return tuple(k for k, v in self.inputs.items() if self.dim in v.dims)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(k for k, v in self.outputs.items() if self.dim in v.dims)

    def field_axes(self) -> dict[str, tuple[str, ...]]:
        """Per-sample axis names of every stored field at this dimension, inputs then outputs."""
        fields = {**self.inputs, **self.outputs}
        return {k: fields[k].names(self.dim) for k in (*self.input_names, *self.output_names)}

    def field_shape(self, name: str) -> tuple[int, ...]:
        """The shape of one sample's field `name` (its axes' coordinate counts)."""
        coordinates = self.coordinates
        return tuple(coordinates[axis].size for axis in self.field_axes()[name])

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """The stored fields' shape: every node, the boundary's included, or every cell."""
        return (self.n,) * self.dim if self.on_cells else (self.n + 2,) * self.dim

    @property
    def interior_shape(self) -> tuple[int, ...]:
        """The unknowns as an array: the interior nodes, C order (what `pc: mg` coarsens)."""
        return (self.n,) * self.dim

    @classmethod
    def multigrid_layout_of(cls, layout: str | None) -> str:
        """The grid rule `pc: mg` coarsens by for a recipe's `grid.layout` (what `auto`'s
        size test and the hierarchy both follow): "cells" where the recipe chose the cell
        layout (`use_cells`); "nodes" otherwise, the families whose own grid is cell-centred
        included (their `pc: mg` keeps the node rule it was measured with)."""
        return "cells" if layout == "cells" and cls.layouts[0] != "cells" else "nodes"

    @property
    def multigrid_layout(self) -> str:
        """`multigrid_layout_of` this instance's grid: "cells" after `use_cells`."""
        return "cells" if self.on_cells else "nodes"

    def diffusion_matrix(self, a: np.ndarray) -> sp.csr_matrix:
        """-div(a grad .) with u = 0 on the boundary, for `a` on the stored grid: on the
        node grid the conservative stencil of the interior nodes (`diffusion_operator`), on
        cells the cell-centred one with the walls half a cell out (`cell_diffusion_operator`);
        one sparsity pattern either way (`stencil_pattern`), so a family that moves only its
        diagonal (a time step's identity, a reaction) does it the same on both layouts."""
        a = np.asarray(a, dtype=float)
        return (
            cell_diffusion_operator(a, self.h)
            if self.on_cells
            else diffusion_operator(a, self.h)[0]
        )

    def coarsening(self, max_levels: int | None = None):
        """The multigrid levels `pc: mg` builds on this grid (`solvers.grids`), at most
        `max_levels`: the node grid's levels rule, or on cells `coarsen_cells`; its `note`
        says a fallback."""
        from solvers.grids import coarsen, coarsen_cells

        return (coarsen_cells if self.on_cells else coarsen)(self.interior_shape, max_levels)

    @property
    def unknowns(self) -> int:
        return self.n**self.dim

    @property
    def dirichlet_outputs(self) -> tuple[str, ...]:
        """The outputs whose boundary nodes hold `boundary_values` (what `pdegen check`
        verifies there): `solution` here; damped Helmholtz adds its imaginary part."""
        return ("solution",)

    @property
    def unknowns_per_node(self) -> int:
        """Unknowns solved for per node, interleaved (the memory estimate's factor fill grows
        with their square): 1 here, 2 for damped Helmholtz's real and imaginary parts."""
        return 1

    @property
    def matrix_entries(self) -> int:
        """The stored entries of the system matrix, for the memory estimate
        (`pdegen.recipe.resources`): a (2d + 1)-point stencil per unknown here."""
        return (2 * self.dim + 1) * self.unknowns

    def grf(self, rng: np.random.Generator, spec: FieldSpec) -> np.ndarray:
        field_ = gaussian_random_field(
            rng, [self.x] * self.dim, spec.alpha, spec.tau, spec.sigma, spec.modes
        )
        field_ += spec.mean  # in place: the draw is this function's own array
        return field_

    def coefficient(self, rng: np.random.Generator, spec: CoefficientSpec) -> np.ndarray:
        field_ = self.grf(rng, spec)
        if spec.kind == "threshold":
            # levels[mask] by np.take: the values (and dtype) of np.where(field_ >= 0, high,
            # low), which broadcasts its scalar arms: 0.14 against 0.71 ms at 421 x 421
            levels = np.array([spec.low, spec.high], dtype=np.result_type(spec.low, spec.high))
            return np.take(levels, (field_ >= 0.0).view(np.uint8))
        return spec.scale * np.exp(field_)

    def interior(self, array: np.ndarray) -> np.ndarray:
        """The unknowns' part of a field on the grid: its interior nodes, or every cell."""
        return array if self.on_cells else array[(slice(1, -1),) * self.dim]

    def right_hand_side(self, f: np.ndarray | float, g: np.ndarray | float, lift) -> np.ndarray:
        """f at the interior nodes plus `lift(g)`, the Dirichlet values' contribution (skipped
        when g is zero); f and g are scalars or arrays on the node grid."""
        b = self.interior(np.broadcast_to(np.asarray(f, dtype=float), self.grid_shape)).copy()
        g = np.asarray(g, dtype=float)
        if g.ndim == 0 and g == 0.0:  # the usual zero boundary: no scan of a broadcast grid
            return b.ravel()
        g = np.broadcast_to(g, self.grid_shape)
        if np.any(g):
            b += lift(g)
        return b.ravel()

    @abc.abstractmethod
    def sample(self, seed: int, index: int) -> Sample:
        """Draw sample `index` from its own generator
        (`pdegen.discretisation.fields.sample_rng`)."""

    @abc.abstractmethod
    def system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        """A x = b for one sample (CSR with the family's fixed sparsity pattern)."""

    def preconditioner_operator(self, sample: Sample, A: sp.csr_matrix) -> sp.csr_matrix | None:
        """The matrix a preconditioner that asks for one (`Preconditioner.own_operator`:
        `pc: mg`) is built on instead of A, with A's sparsity; None (the default): A itself.
        Helmholtz returns its shifted Laplacian here."""
        return None

    def diffusion_system(self, sample: Sample) -> tuple[np.ndarray, np.ndarray] | None:
        """For a family whose one system is -div(a grad u) = f with Dirichlet values
        (`pdegen.discretisation.operators.diffusion_operator`): the coefficient a on the node
        grid and the right-hand side b (interior nodes, C order), from which each rank of a
        group assembles its own rows (`diffusion_rows`) when one sample is solved across
        several ranks (`solver.ranks_per_sample`, `pdegen.run.group`). None (the default):
        the family solves each sample on one rank."""
        return None

    @classmethod
    def solves_across_ranks(cls) -> bool:
        """Whether one sample can be solved across several ranks (`diffusion_system`)."""
        return cls.diffusion_system is not Family.diffusion_system

    def vector_layout(self) -> dict[str, Any]:
        """How the solver is to see a vector-valued operator (d unknowns per node,
        interleaved: elasticity), as `solvers.ChainSolver` keywords: `block_size` d, and
        `rigid_body_coordinates` (nodes, d) where GAMG is to get the rigid-body modes as its
        near-null space. {} (the default): one scalar unknown per node."""
        return {}

    def boundary_values(self, sample: Sample) -> np.ndarray | float:
        return 0.0

    def solution_field(self, sample: Sample, x: np.ndarray) -> np.ndarray:
        """The solution on the full node grid, Dirichlet values on the boundary."""
        if self.on_cells:  # the walls hold the Dirichlet values; the centres are all unknowns
            return np.array(x).reshape(self.grid_shape)
        u = np.array(np.broadcast_to(self.boundary_values(sample), self.grid_shape))
        u[(slice(1, -1),) * self.dim] = x.reshape((self.n,) * self.dim)
        return u

    def solution_vector(self, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
        """The unknowns x of A x = b from one sample's output fields (what `pdegen check
        --deep` re-verifies): the interior nodes of `solution`; elasticity interleaves its
        displacement components; None where the stored fields do not determine them (Stokes
        stores interpolations of its staggered unknowns)."""
        return self.interior(outputs["solution"]).ravel()

    def grid_words(self) -> str:
        """The grid in a few words, for the card's first line."""
        return f"{'×'.join(map(str, self.grid_shape))} {'cell' if self.on_cells else 'node'} grid"

    def describe_domain(self) -> str:
        """The card's domain sentence."""
        shape = {1: "interval", 2: "square", 3: "cube"}[self.dim]
        if self.on_cells:
            return (
                f"Domain: the unit {shape}, {self.n} cells per axis (h = 1/{self.n}), fields "
                "stored at the cell centres (i + 1/2) h; the walls, where the Dirichlet "
                "values hold, lie on the outer cells' faces."
            )
        return (
            f"Domain: the unit {shape}, {self.n + 2} nodes per axis including the boundary "
            f"(spacing h = 1/{self.n + 1}), fields stored at every node with their boundary "
            "values."
        )

    def describe_discretisation(self) -> str:
        """The card's discretisation paragraph: the family's `discretisation`, and for a
        trajectory its time stepping (scheme, step, frames), read from `time_stepping`."""
        said = getattr(self, "discretisation_on_cells", None) if self.on_cells else None
        text = f"Discretisation: {said or self.discretisation}."
        stepping = self.time_stepping
        if stepping is None:
            return text
        frames = describe_frames(stepping.frame_times)
        first = (
            f", frame 0 the initial state `{stepping.initial_input}`"
            if stepping.initial_frame and stepping.initial_input
            else ""
        )
        return (
            f"{text} Time stepping: {stepping.description}, internal step dt = "
            f"{stepping.dt:g} ({stepping.steps} steps); `{stepping.trajectory}` stores "
            f"{frames}{first}."
        )

    def stored_residuals(
        self, sample: Sample, outputs: dict[str, np.ndarray], rtol: float, eps: float
    ) -> list[StepResidual] | None:
        """For `pdegen check --deep`: (step or None, relative residual, bound) of every solve
        behind the stored outputs, re-evaluated from the stored inputs with their storage's
        unit roundoff `eps` (`pdegen.families.residuals`). Here one linear system, A x = b;
        None where the stored fields do not determine the unknowns (`solution_vector`)."""
        u = self.solution_vector(outputs)
        if u is None:
            return None
        A, b = self.system(sample)
        return [(None, *linear_residual(A, u, b, float(np.linalg.norm(b)), rtol, eps))]

    def why_no_residuals(self) -> str:
        """What `check --deep` says where `stored_residuals` is None."""
        return (
            f"{self.name} stores fields interpolated from its unknowns, so only its inputs "
            "were re-checked"
        )

    def residual_tolerance(self, rtol: float) -> str:
        """The tolerance `stored_residuals`' bounds stem from, as `check` names it."""
        return f"solver.rtol {rtol:g}"

    def nodal_frames(self, frames: list[np.ndarray]) -> np.ndarray:
        """A trajectory's frames of interior unknowns as one array on the stored grid (time
        first): the full node grid, zero on the boundary, or the cells as they are."""
        if self.on_cells:
            return np.reshape(frames, (len(frames), *self.grid_shape))
        out = np.zeros((len(frames), *self.grid_shape))
        out[(slice(None),) + (slice(1, -1),) * self.dim] = np.reshape(
            frames, (len(frames), *self.interior_shape)
        )
        return out

    def zero_boundary(self, field_: np.ndarray) -> np.ndarray:
        """`field_` with its boundary nodes set to zero (an initial state of a problem whose
        boundary holds u = 0), by a product with a 0/1 mask, in place; a cell grid stores no
        boundary (its walls are faces), so there it is `field_` as drawn."""
        if self.on_cells:
            return field_
        mask = np.zeros(field_.shape)
        mask[(slice(1, -1),) * field_.ndim] = 1.0
        field_ *= mask
        return field_

    def solver_system(self, sample: Sample) -> tuple[sp.csr_matrix, np.ndarray]:
        """The system `solve_sample` hands the solver: `system`'s. A family whose matrix can
        fill the solver's Mat in place returns that instead (Darcy: a
        `pdegen.discretisation.operators.DiffusionMatrix`, the same values); everything that
        reads the matrix itself (checks, oracles, `pdegen check --deep`) calls `system`."""
        return self.system(sample)

    def solve_sample(self, sample: Sample, chain) -> tuple[dict[str, np.ndarray], list]:
        """Solve one sample with a `solvers.ChainSolver`; returns its output fields and the
        results of every solve it took (one here; a trajectory takes one per step)."""
        A, b = self.solver_system(sample)
        P = self.preconditioner_operator(sample, A) if chain.wants_preconditioner_operator else None
        result = chain.solve(A, b, P=P)
        return {"solution": self.solution_field(sample, result.x)}, [result]

    def sample_stats(self, results: list) -> dict[str, float]:
        """The `stats_columns` of one sample, from the results `solve_sample` returned."""
        return {}

    def downsample(self, array: np.ndarray) -> np.ndarray:
        step = max(1, int(np.ceil(array.shape[0] / FEATURE_POINTS)))
        return array[(slice(None, None, step),) * array.ndim]

    def features(self, sample: Sample) -> np.ndarray:
        """What ordering compares: nearby vectors should mean nearby operators."""
        return np.concatenate([self.downsample(v).ravel() for v in sample.inputs.values()])
