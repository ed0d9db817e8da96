"""The interface every PDE family implements, the grid they share, and the family contract.

A family declares, as class attributes, what the rest of pdegen must know without a list of
families of its own: the fields it stores and their axes (`inputs`, `outputs`, `params`), the
properties of its operator (`symmetric`, `positive_definite`, `shared_operator`) and the
solvers `auto` picks. The declarations are checked when the class is defined
(`__init_subclass__`), so a family that contradicts itself fails on import, not in a worker;
recipe validation reads them to reject a solver the operator cannot take
(`Family.settle_solver`), the shard writer labels each stored array's axes from them, and the
loader and `pdegen inspect` read those labels back.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from pdegen.discretisation.fields import gaussian_random_field
from pdegen.discretisation.timestepping import TimeStepping
from pdegen.errors import RecipeError
from pdegen.families.residuals import StepResidual, linear_residual
from pdegen.specs import CoefficientSpec, FieldSpec, SolverSpec
from solvers.registry import (
    METHODS,
    POSITIVE_DEFINITE,
    PRECONDITIONERS,
    SYMMETRIC,
    Method,
    Preconditioner,
    describe_operator,
)

FEATURE_POINTS = 32  # ordering compares fields on at most this many nodes per axis
SPACE_AXES = ("x", "y", "z")
TIME_AXIS = "t"
#: keys the loader adds to every item itself, which no field or parameter may take
RESERVED_NAMES = frozenset({"index"})


@dataclass(frozen=True)
class FieldAxes:
    """The axes of one stored field of one sample: an optional leading time axis, then space.

    A field exists on the node grid of every dimension in `dims` (a 3D-only component such as
    a velocity's z part says `dims=(3,)`).
    """

    time: bool = False
    dims: tuple[int, ...] = (2, 3)

    def names(self, dim: int) -> tuple[str, ...]:
        """Axis names in array order: ("t",) when the field is a trajectory, then x, y (, z)."""
        return ((TIME_AXIS,) if self.time else ()) + SPACE_AXES[:dim]


@dataclass
class Sample:
    """One sample's inputs on the node grid, plus its scalar parameters.

    `inputs` are stored in a shard's /inputs group, `params` (scalars) in /params; their names
    are the family's declared `inputs` and `params`.
    """

    index: int
    inputs: dict[str, np.ndarray]
    params: dict[str, float] = field(default_factory=dict)


class Family(abc.ABC):
    """A parameterised PDE discretised on the node grid of the unit square or cube."""

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
    #: the fastest (method, preconditioner) measured per dimension, which `method: auto`
    #: runs (docs/benchmarks.md)
    auto_solvers: ClassVar[dict[int, tuple[str, str]]] = {2: ("direct", "lu"), 3: ("gmres", "ilu")}
    #: per dimension, (n, (method, preconditioner)): what `method: auto` runs instead of
    #: `auto_solvers` on grids of at least n interior nodes per axis that geometric multigrid
    #: coarsens (`solvers.grids.coarsen(...).usable`): the crossovers measured in
    #: docs/benchmarks.md, "auto by size"
    auto_multigrid: ClassVar[dict[int, tuple[int, tuple[str, str]]]] = {}
    #: the preconditioner `pc: auto` means for an iterative method named explicitly
    iterative_pc: ClassVar[str] = "ilu"
    #: the smoother of `pc: mg`'s V-cycle (a name of `solvers.multigrid.SMOOTHERS`), or one
    #: per dimension, measured per family (docs/benchmarks.md, "Multigrid smoothers" and the
    #: Helmholtz section)
    multigrid_smoother: ClassVar[str | dict[int, str]] = "sor"
    #: every sample has the same matrix (many right-hand sides), and `system` returns the very
    #: same matrix object each time, so the solve keeps one factorisation or preconditioner;
    #: ordering the chain then gains a recycling method nothing (`resolve_ordering`)
    shared_operator: ClassVar[bool] = False
    #: properties of the operator, which methods and preconditioners require
    #: (`solvers.registry`: CG and Cholesky need both): checked at recipe load
    symmetric: ClassVar[bool] = False
    positive_definite: ClassVar[bool] = False
    #: extra per-sample /stats columns, name -> numpy dtype, that `sample_stats` fills from
    #: a sample's solve results (the Newton families: Newton iterations; docs/format.md)
    stats_columns: ClassVar[dict[str, str]] = {}
    #: the preconditioners its operator can take when fewer than its properties allow (a
    #: saddle point's zero block rules out point-wise and node-grid ones); None: all of them
    preconditioners: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None) is not None:  # a concrete family, not a shared base
            _check_declarations(cls)

    def __init__(self, n: int, dim: int, problem: Any):
        self.n, self.dim, self.problem = n, dim, problem
        self.h = 1.0 / (n + 1)
        self.x = np.linspace(0.0, 1.0, n + 2)

    @classmethod
    def from_recipe(cls, recipe) -> Family:
        return cls(recipe.grid.n, recipe.grid.dim, recipe.problem)

    @classmethod
    def check(cls, recipe) -> None:
        """Cross-field recipe checks; raise RecipeError naming the field."""
        return None  # most families need none beyond the schema

    # -- the operator and the solver ----------------------------------------------------

    @classmethod
    def operator_properties(cls) -> frozenset[str]:
        """What the operator is, in `solvers.registry` terms (symmetric, positive_definite)."""
        flags = ((SYMMETRIC, cls.symmetric), (POSITIVE_DEFINITE, cls.positive_definite))
        return frozenset(name for name, on in flags if on)

    @classmethod
    def supports(cls, entry: Method | Preconditioner) -> bool:
        """Whether a registered method or preconditioner can take this family's operator."""
        if isinstance(entry, Preconditioner):
            names = [k for k, e in PRECONDITIONERS.items() if e is entry]
            if cls.preconditioners is not None and not set(names) & cls.preconditioners:
                return False
            if entry.split and not cls.has_field_splits():
                return False
        return entry.requires <= cls.operator_properties()

    @classmethod
    def has_field_splits(cls) -> bool:
        """Whether the family hands its unknowns' blocks to a block preconditioner."""
        return cls.field_splits is not Family.field_splits

    @classmethod
    def resolve_solver(
        cls, method: str, pc: str, dim: int, n: int | None = None
    ) -> tuple[str, str]:
        """(method, preconditioner) to run for the recipe's names.

        `method: auto` runs the family's fastest measured pair for its dimension and grid
        size `n` (and its preconditioner too when `pc: auto`): multigrid-preconditioned
        Krylov above the measured crossover on grids multigrid coarsens (`auto_multigrid`),
        else `auto_solvers`; `pc: auto` with a named iterative method means the family's usual
        preconditioner for it; a direct solve factorises with Cholesky when the operator
        allows it and LU otherwise, unless the recipe names a factorisation.
        """
        auto_method, auto_pc = cls.auto_solvers[dim]
        if n is not None and dim in cls.auto_multigrid:
            from solvers.grids import coarsen

            smallest, pair = cls.auto_multigrid[dim]
            if n >= smallest and coarsen((n,) * dim).usable:
                auto_method, auto_pc = pair
        if method == "auto":
            method = auto_method
            if pc == "auto":
                pc = auto_pc
        if METHODS[method].direct:
            if pc not in PRECONDITIONERS or not PRECONDITIONERS[pc].factorisation:
                pc = "cholesky" if cls.supports(PRECONDITIONERS["cholesky"]) else "lu"
        elif pc == "auto":
            pc = cls.iterative_pc
        return method, pc

    def resolve_for(self, method: str, pc: str) -> tuple[str, str]:
        """(method, preconditioner) that this family's recipe runs: `resolve_solver` on its
        grid. A family whose fastest measured method depends on its problem's parameters as
        well as on the grid overrides this (reaction-diffusion: the time step against its
        reaction's stiffness); the choice must not change what `resolve_ordering` gives."""
        return self.resolve_solver(method, pc, self.dim, self.n)

    @classmethod
    def resolve_ordering(cls, solver: SolverSpec, dim: int, n: int | None = None) -> str:
        """The ordering `auto` means: sort the chain only when something carries from one
        solve to the next and depends on which system came before. A recycling method's space
        does when the operators differ (not when every sample shares one matrix: the space
        then belongs to that matrix whatever the order); a warm start always does."""
        if solver.ordering != "auto":
            return solver.ordering
        method, _ = cls.resolve_solver(solver.method, solver.pc, dim, n)
        carries = METHODS[method].recycles and not cls.shared_operator
        return "greedy" if carries or solver.warm_start else "none"

    @classmethod
    def settle_solver(cls, solver: SolverSpec, dim: int, n: int | None = None) -> SolverSpec:
        """The recipe's solver section checked against the operator, its ordering resolved.

        A method or preconditioner whose requirements the operator does not meet (CG,
        recycling CG, ICC or Cholesky on an indefinite or nonsymmetric operator) is rejected
        here, in one line naming the field, instead of failing sample by sample at solve time.
        """
        for where, name, table in (
            ("method", solver.method, METHODS),
            ("pc", solver.pc, PRECONDITIONERS),
        ):
            if name == "auto" or cls.supports(table[name]):
                continue
            allowed = ["auto", *(n for n, e in table.items() if cls.supports(e))]
            if table[name].requires <= cls.operator_properties():  # the family's own limit
                raise RecipeError(
                    f"solver.{where}: {name!r} does not apply to {cls.name}'s operator"
                    f"{_why_not(cls, table[name])} (allowed: {', '.join(allowed)})"
                )
            raise RecipeError(
                f"solver.{where}: {name!r} needs a {describe_operator(table[name].requires)} "
                f"operator; {cls.name}'s is {describe_operator(cls.operator_properties())} "
                f"(allowed: {', '.join(allowed)})"
            )
        if (
            solver.method != "auto"
            and METHODS[solver.method].direct
            and solver.pc != "auto"
            and not PRECONDITIONERS[solver.pc].factorisation
        ):  # a direct solve factorises: another preconditioner would be dropped unseen
            factorisations = [
                p for p, e in PRECONDITIONERS.items() if e.factorisation and cls.supports(e)
            ]
            raise RecipeError(
                f"solver.pc: {solver.pc!r} is not a factorisation, and method "
                f"{solver.method!r} runs one (allowed: auto, {', '.join(factorisations)})"
            )
        method, pc = cls.resolve_solver(solver.method, solver.pc, dim, n)
        pcs = METHODS[method].pcs
        if pcs is not None and pc not in pcs:
            named = repr(solver.pc) if solver.pc == pc else f"{solver.pc!r} ({pc!r} here)"
            usable = ["auto"] * (cls.iterative_pc in pcs) + [
                p for p, e in PRECONDITIONERS.items() if p in pcs and cls.supports(e)
            ]
            raise RecipeError(
                f"solver.pc: {named} cannot precondition {method!r}, which needs a symmetric "
                f"positive definite preconditioner (allowed: {', '.join(usable)})"
            )
        return dataclasses.replace(solver, ordering=cls.resolve_ordering(solver, dim, n))

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
        return (self.n + 2,) * self.dim

    @property
    def interior_shape(self) -> tuple[int, ...]:
        """The unknowns as an array: the interior nodes, C order (what `pc: mg` coarsens)."""
        return (self.n,) * self.dim

    @property
    def unknowns(self) -> int:
        return self.n**self.dim

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
        return array[(slice(1, -1),) * self.dim]

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

    def multigrid_settings(self):
        """The `solvers.multigrid.MGSettings` that `pc: mg` runs with for this family."""
        from solvers.multigrid import MGSettings  # starts PETSc: not at recipe validation

        smoother = self.multigrid_smoother
        if isinstance(smoother, dict):
            smoother = smoother[self.dim]
        return MGSettings(smoother=smoother)

    def preconditioner_operator(self, sample: Sample, A: sp.csr_matrix) -> sp.csr_matrix | None:
        """The matrix a preconditioner that asks for one (`Preconditioner.own_operator`:
        `pc: mg`) is built on instead of A, with A's sparsity; None (the default): A itself.
        Helmholtz returns its shifted Laplacian here."""
        return None

    def field_splits(self) -> dict[str, np.ndarray] | None:
        """The unknowns of each block of a block system, by name, in the order of the blocks
        (`pc: fieldsplit` builds on them; families that do not define it cannot take it)."""
        return None

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
        u = np.array(np.broadcast_to(self.boundary_values(sample), self.grid_shape))
        u[(slice(1, -1),) * self.dim] = x.reshape((self.n,) * self.dim)
        return u

    def solution_vector(self, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
        """The unknowns x of A x = b from one sample's output fields (what `pdegen check
        --deep` re-verifies): the interior nodes of `solution`; elasticity interleaves its
        displacement components; None where the stored fields do not determine them (Stokes
        stores interpolations of its staggered unknowns)."""
        return self.interior(outputs["solution"]).ravel()

    def describe_discretisation(self) -> str:
        """The card's discretisation paragraph: the family's `discretisation`, and for a
        trajectory its time stepping (scheme, step, frames), read from `time_stepping`."""
        text = f"Discretisation: {self.discretisation}."
        stepping = self.time_stepping
        if stepping is None:
            return text
        times = stepping.frame_times
        frames = (
            f"{len(times)} frames at t = {times[0]:g}, {times[1]:g}, ..., {times[-1]:g}"
            if len(times) > 2
            else f"{len(times)} frames at t = {', '.join(f'{t:g}' for t in times)}"
        )
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

    def residual_tolerance(self, rtol: float) -> str:
        """The tolerance `stored_residuals`' bounds stem from, as `check` names it."""
        return f"solver.rtol {rtol:g}"

    def nodal_frames(self, frames: list[np.ndarray]) -> np.ndarray:
        """A trajectory's frames of interior unknowns as one array on the full node grid
        (time first, zero on the boundary)."""
        out = np.zeros((len(frames), *self.grid_shape))
        out[(slice(None),) + (slice(1, -1),) * self.dim] = np.reshape(
            frames, (len(frames), *self.interior_shape)
        )
        return out

    def zero_boundary(self, field_: np.ndarray) -> np.ndarray:
        """`field_` with its boundary nodes set to zero (an initial state of a problem whose
        boundary holds u = 0), by a product with a 0/1 mask, in place."""
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


def _why_not(cls: type[Family], entry: Preconditioner) -> str:
    """Why a preconditioner the operator's properties allow is refused: the family's own
    declarations (`preconditioners`, `field_splits`)."""
    if entry.split and not cls.has_field_splits():
        return ": it needs the blocks of a block system, which this family does not declare"
    return ""


def _check_declarations(cls: type[Family]) -> None:
    """Reject a family whose declarations contradict themselves, when the class is defined.

    The loader merges a sample's inputs, outputs and parameters into one dict, so a name used
    twice would silently overwrite one of them; an `auto` solver the family's own operator
    cannot take would fail every sample. Both are programming errors: TypeError on import.
    """
    where = f"family {cls.__name__}"
    if not isinstance(cls.name, str) or not cls.name:
        raise TypeError(f"{where}: name must be a non-empty string")
    if not dataclasses.is_dataclass(getattr(cls, "Problem", None)):
        raise TypeError(f"{where}: Problem must be the dataclass of its recipe section")
    for flag in ("symmetric", "positive_definite", "shared_operator"):
        if not isinstance(getattr(cls, flag), bool):
            raise TypeError(f"{where}: {flag} must be True or False")
    if not isinstance(getattr(cls, "inputs", None), dict):
        raise TypeError(f"{where}: inputs must map each input field to its FieldAxes")
    if not isinstance(cls.outputs, dict) or not cls.outputs:
        raise TypeError(f"{where}: outputs must map at least one output field to its FieldAxes")
    if not isinstance(cls.params, tuple) or not all(isinstance(p, str) for p in cls.params):
        raise TypeError(f"{where}: params must be a tuple of parameter names")
    seen: dict[str, str] = {name: "reserved by the loader" for name in RESERVED_NAMES}
    declared = [("input", k) for k in cls.inputs] + [("output", k) for k in cls.outputs]
    for kind, name in [*declared, *(("parameter", p) for p in cls.params)]:
        if not (isinstance(name, str) and name.isidentifier()):
            raise TypeError(f"{where}: {kind} name {name!r} must be an identifier")
        if name in seen:
            raise TypeError(
                f"{where}: {name!r} is declared as {kind} but is already {seen[name]} "
                "(the loader merges inputs, outputs and parameters into one item)"
            )
        seen[name] = f"an {kind}" if kind[0] in "io" else f"a {kind}"
    for kind, fields in (("input", cls.inputs), ("output", cls.outputs)):
        for name, axes in fields.items():
            if not isinstance(axes, FieldAxes) or not set(axes.dims) <= {2, 3} or not axes.dims:
                raise TypeError(f"{where}: {kind} {name!r} must be a FieldAxes for dims 2, 3")
    times = any(a.time for a in (*cls.inputs.values(), *cls.outputs.values()))
    if not isinstance(getattr(cls, "discretisation", None), str):
        raise TypeError(f"{where}: discretisation must say how the PDE is discretised")
    if times != (cls.time_stepping is not Family.time_stepping):
        raise TypeError(
            f"{where}: a family declares `time_stepping` exactly when a field has a time axis"
        )
    if set(cls.auto_solvers) != {2, 3}:
        raise TypeError(f"{where}: auto_solvers must name a (method, pc) for dims 2 and 3")
    smoother = cls.multigrid_smoother
    by_dim = smoother if isinstance(smoother, dict) else {2: smoother, 3: smoother}
    if set(by_dim) != {2, 3} or not all(isinstance(v, str) for v in by_dim.values()):
        raise TypeError(f"{where}: multigrid_smoother must be one name or a name for dims 2 and 3")
    choices = [(f"auto_solvers[{d}]", m, pc) for d, (m, pc) in cls.auto_solvers.items()]
    for label, method, pc in [*choices, ("iterative_pc", None, cls.iterative_pc)]:
        if method is not None and (method not in METHODS or not cls.supports(METHODS[method])):
            raise TypeError(f"{where}: {label}: method {method!r} is not usable here")
        if pc not in PRECONDITIONERS or not cls.supports(PRECONDITIONERS[pc]):
            raise TypeError(f"{where}: {label}: preconditioner {pc!r} is not usable here")
        if method is not None and METHODS[method].direct != PRECONDITIONERS[pc].factorisation:
            raise TypeError(f"{where}: {label}: {method!r} cannot run with pc {pc!r}")
