"""How much memory a recipe needs, estimated before anything runs, and what this machine has.

A recipe can be valid field by field and still ask for more memory than the machine holds:
`grid.n: 4096` in 3D is 69 billion unknowns, `samples: 10**12` makes the plan step hold a
feature vector per sample, `problem.steps: 100000` a trajectory of 100001 frames per sample.
Without a check such a run starts, creates its output directory and dies minutes later
(MemoryError in a worker, the kernel's OOM killer, or a machine that swaps to a halt).
`check_memory` refuses it at recipe load with the estimate and the field to change:
"grid.n: 4096 in 3D needs about X GiB of memory, this machine has Y GiB (...)". The field is
grid.n when even the smallest settings of everything else (one sample, one per shard, the
smallest Krylov space, one time step, default modes) would not fit; otherwise it is the
field behind the largest part of the estimate that is not the grid's.

The estimate (`estimate`) is the peak of one process, in bytes:

    BASE + max(plan, batch)

BASE is the interpreter with numpy, scipy, h5py, PETSc and Dask imported. `plan` is the root
process sampling every input and ordering the chain (`pdegen.run.plan`); `batch` is one worker
solving one batch (`pdegen.run.batch`). In the serial engine one process does both, one after the
other; under the local, Dask and MPI engines the root plans and each worker solves. With N = n^d
unknowns, G = (n+2)^d nodes, nnz = (2d+1) N stencil entries (the family's `unknowns` and
`matrix_entries`: elasticity has d unknowns per free node and up to 3^d d entries per row),
T frames per output (steps + 1 for a trajectory, else 1), b = min(batch_size, samples),
S = samples and 8-byte floats:

    batch = MATRIX_BYTES_PER_NNZ nnz        the scipy matrix (its pattern is shared), its
                                           values' assembly and PETSc's copy
          + VECTORS_PER_UNKNOWN 8 N         right-hand side, solution, PETSc work vectors
          + preconditioner                 ILU/ICC(0): 12 nnz; ASM 24 nnz; GAMG 40 nnz
          + factor                         direct solve / lu, cholesky: 12 bytes per factor
                                           entry, nested dissection fill (below)
          + Krylov workspace               GCRO-DR (2m + 1 + 4k) 8N + 6 m^2 8 (m = restart,
                                           k = min(recycle, m - 1)); GMRES (m + 4) 8N +
                                           3 m^2 8; recycling CG 4 (k + max(k, 10)) 8N; CG 6 8N
          + a field draw                   (d + 3) M^d 8 + 3 G 8, M = modes (default: its points)
          + trajectory                     2 T 8N (the frames list and its reshaped copy)
          + one sample's fields            2 (inputs + T G) 8 (on their way to the shard, which
                                           is written sample by sample)
          + BOOKKEEPING_PER_SAMPLE b       each sample's outcome, parameters and statistics,
                                           held until the batch is finished
    plan  = 2 S F 8                        feature vectors (F per sample), list and stack
          + S^2 8                          greedy ordering's Gram matrix (S <= 20000), or
            3 S F 8                        the fast ordering's projections
          + one sample's inputs and a field draw

The number of input fields and F come from the family itself: one sample of its default
problem on two tiny grids (features grow linearly with the downsampled node count).

Direct factors by nested dissection (PETSc's "nd" ordering, which `solvers.petsc` sets) hold
about FILL_2D N log2 N entries in 2D and FILL_3D N^(4/3) in 3D for Cholesky, twice that for
LU (L and U). PETSc's own count (MatGetInfo nz_used) on these stencils gave 1.39 to 1.61
N log2 N for 2D n = 63..511 and 3.6 to 5.0 N^(4/3) for 3D n = 15..46, both still growing
with n; the constants are rounded up (nested dissection's model-problem asymptote in 2D is
31/16 = 1.94). The other constants were fitted to the peak RSS of serial runs (CG, GMRES with
ILU, GCRO-DR, recycling CG, GAMG, Cholesky, LU, heat trajectories), which the estimate
matched within 0.85 to 1.3 times; tests/test_resources.py checks two of them.

"This machine has" is the physical memory (sysconf), or the cgroup's memory limit when one
is set and lower (containers, SLURM and PBS jobs): the most the run could ever use here.
MemAvailable is not used: it changes from second to second with other processes, which
would make a recipe valid or not by chance, and the check refuses only what can never fit.
The estimate is for one process: a run on w workers (local, Dask) needs about w times the
batch part, which `generate` knows and recipe loading does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdegen.errors import RecipeError
from pdegen.families import family_from_recipe
from pdegen.families.base import FEATURE_POINTS
from pdegen.messages import show
from pdegen.recipe.sharding import batch_size_of
from pdegen.specs import field_specs

GIB = 1024**3
BASE_BYTES = 150 * 1024**2
MATRIX_BYTES_PER_NNZ = 32  # CSR values and indices, the value arrays of assembly, PETSc's copy
VECTORS_PER_UNKNOWN = 16
BOOKKEEPING_PER_SAMPLE = 1024  # measured 0.7 KiB (tracemalloc, 200 against 1200 samples)
FILL_2D = 1.8
FILL_3D = 6.0
GREEDY_GRAM_LIMIT = 20000  # solvers.ordering._greedy forms the Gram matrix up to this many
#: across ranks, what the solver's parts hold together against one rank's: parallel AIJ
#: matrices keep an off-diagonal block and ghost values, PETSc's parallel PtAP its own
#: intermediates, and each rank its slab's cached pattern; measured on 128^3 and 192^3 Darcy
#: (CG + mg, k = 2 against 1: docs/benchmarks.md, "One sample across ranks")
PARALLEL_SOLVER_BYTES = 1.45
# mg: interpolations, Galerkin operators (9- or 27-point on 1/4 or 1/8 of the unknowns per
# level), their PtAP work and the coarse LU, about what gamg holds
PC_BYTES_PER_NNZ = {"ilu": 12, "icc": 12, "bjacobi": 12, "asm": 24, "gamg": 40, "mg": 40}


@dataclass(frozen=True)
class Part:
    """One term of the estimate: the recipe field that drives it, and what it holds."""

    field: str
    value: str  # the field's value as the message shows it ("4096 in 3D")
    what: str
    bytes: float
    #: shared out over the ranks of a group when one sample is solved across several
    #: (`solver.ranks_per_sample`: the matrix, preconditioner and Krylov vectors); the
    #: whole-sample parts (the draw, the fields, the gathered solution) stay on its first rank
    divided: bool = False


@dataclass(frozen=True)
class Estimate:
    plan: tuple[Part, ...]
    batch: tuple[Part, ...]

    @property
    def total(self) -> float:
        return BASE_BYTES + max(sum(p.bytes for p in self.plan), sum(p.bytes for p in self.batch))


@functools.cache
def machine_memory() -> int | None:
    """Bytes of memory this process could ever use: physical memory, or the cgroup limit
    when lower; None when neither can be read (the check is then skipped). Read once: it
    does not change while a process runs."""
    found = []
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not POSIX, or unknown
        found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    limit = _cgroup_limit()
    if limit is not None:
        found.append(limit)
    return min(found) if found else None


def _cgroup_limit() -> int | None:
    """memory.max (cgroup v2) or memory.limit_in_bytes (v1) of this process's cgroup."""
    candidates = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                candidates.append(Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max")
            elif "memory" in controllers.split(","):
                candidates.append(
                    Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes"
                )
    except (OSError, ValueError):
        pass
    candidates += [
        Path("/sys/fs/cgroup/memory.max"),
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ]
    for path in candidates:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 writes a huge number for "no limit"
            return int(text)
        if text == "max":
            return None
    return None


def check_memory(recipe, available: int | None = None) -> None:
    """Refuse a recipe whose estimate exceeds this machine's memory, naming the field behind
    the largest part of it. `available` overrides the machine's memory (bytes)."""
    available = machine_memory() if available is None else available
    if available is None:
        return
    est = estimate(recipe)
    if est.total <= available:
        return
    # Which field to name: if the run does not fit even at the smallest settings of every
    # other field (one sample, one per shard, the smallest Krylov space, one time step,
    # default modes), the grid itself is too large; otherwise the excess comes from one of
    # those fields: name the largest part that is not the grid's.
    if estimate(_smallest(recipe)).total > available:
        part = max((p for p in est.batch + est.plan if p.field == "grid.n"), key=_bytes)
    else:
        part = max((p for p in est.batch + est.plan if p.field != "grid.n"), key=_bytes)
    across = ""
    ranks = smallest_ranks(recipe, available)
    if ranks is not None and part.field == "grid.n":
        across = (
            f"; solved across ranks (the mpi engine) it fits from solver.ranks_per_sample: "
            f"{ranks}, about {_gib(estimate(_with_ranks(recipe, ranks)).total)} GiB on a "
            "group's first rank"
        )
    raise RecipeError(
        f"{part.field}: {part.value} needs about {_gib(est.total)} GiB of memory, this "
        f"machine has {_gib(available)} GiB ({_gib(part.bytes)} GiB of it for {part.what})" + across
    )


def rank_need(recipe, first: bool, planner: bool) -> float:
    """The estimated peak of one rank of an MPI job: a group's first rank holds the whole
    sample besides its share of the solver, the others their share alone; only the planning
    rank (world rank 0) plans."""
    est = estimate(recipe)
    batch = sum(p.bytes for p in est.batch if first or p.divided)
    plan = sum(p.bytes for p in est.plan) if planner else 0.0
    return BASE_BYTES + max(plan, batch)


def _with_ranks(recipe, ranks: int):
    return recipe.replace(solver=dataclasses.replace(recipe.solver, ranks_per_sample=ranks))


def smallest_ranks(recipe, share: float) -> int | None:
    """The fewest ranks per sample whose estimate per rank (a group's first rank, which
    also holds the whole sample's fields) fits `share` bytes: more than the recipe's own,
    at most the grid's planes; None where the family solves each sample on one rank or no
    count fits (the whole-sample part alone is too large). Solved for directly: the shared
    part falls as 1 / k, the rest does not."""
    family = family_from_recipe(recipe)
    if not family.solves_across_ranks() or family.on_cells:  # cells: one rank a sample
        return None
    at_two = estimate(_with_ranks(recipe, 2))
    whole = sum(p.bytes for p in at_two.batch if not p.divided)
    shared = 2 * sum(p.bytes for p in at_two.batch if p.divided)  # k times its share
    plan = sum(p.bytes for p in at_two.plan)
    room = share - BASE_BYTES - whole
    if BASE_BYTES + plan > share or room <= 0:
        return None
    ranks = max(recipe.solver.ranks_per_sample + 1, 2, math.ceil(shared / room))
    while ranks <= recipe.grid.n and estimate(_with_ranks(recipe, ranks)).total > share:
        ranks += 1  # rounding: at most a step or two
    return ranks if ranks <= recipe.grid.n else None


def _bytes(part: Part) -> float:
    return part.bytes


def _smallest(recipe):
    """The recipe with every field but the grid at its least demanding allowed value."""
    problem = recipe.problem
    for where, spec in field_specs(problem, "problem"):
        if spec.modes is not None:
            problem = _replace_at(
                problem, where.split(".")[1:], dataclasses.replace(spec, modes=None)
            )
    if hasattr(problem, "steps"):
        problem = dataclasses.replace(problem, steps=1)
    return recipe.replace(
        samples=1,
        problem=problem,
        solver=dataclasses.replace(recipe.solver, restart=2, recycle=0),
        output=dataclasses.replace(recipe.output, shard_size=1),
    )


def _replace_at(spec, path: list[str], value):
    if not path:
        return value
    inner = _replace_at(getattr(spec, path[0]), path[1:], value)
    return dataclasses.replace(spec, **{path[0]: inner})


def _gib(n: float) -> str:
    if n > 1e300:  # samples: 10**4000 is a valid integer, and too large for a float
        return "more than 1e+290"
    x = n / GIB
    return f"{x:.3g}" if x < 1e6 else f"{x:.2e}"


def estimate(recipe) -> Estimate:
    """The peak memory of one process running `recipe` (see the module docstring)."""
    family = family_from_recipe(recipe)
    n, d = recipe.grid.n, recipe.grid.dim
    N, G = family.unknowns, math.prod(family.grid_shape)  # n^d for a scalar family
    nnz = family.matrix_entries  # (2d + 1) N for the stencil families
    grid = f"{n} in {d}D"
    frames = math.prod(len(c) for axis, c in family.coordinates.items() if axis not in "xyz")
    per_node, feat_slope, feat_const = _sample_structure(type(family), d)
    inputs = per_node * G * 8
    side = family.grid_shape[0]
    step = max(1, math.ceil(side / FEATURE_POINTS))
    features = feat_slope * math.ceil(side / step) ** d + feat_const

    modes_field, modes = "grid.n", max(family.grid_shape)  # the default: one per point
    for where, spec in field_specs(recipe.problem, "problem"):
        if spec.modes is not None and spec.modes > modes:
            modes_field, modes = f"{where}.modes", spec.modes
    draw = (d + 3) * modes**d * 8
    modes_value = grid if modes_field == "grid.n" else show(modes)
    one_sample = Part("grid.n", grid, f"one sample's {per_node:g} input fields", inputs + 3 * G * 8)
    field_draw = Part(modes_field, modes_value, f"a random field of {modes}^{d} modes", draw)

    s = recipe.solver
    ranks = s.ranks_per_sample
    if ranks > 1:
        from pdegen.recipe.ranks import solver_across_ranks

        method, pc = solver_across_ranks(family, s.method, s.pc, ranks)
    else:
        method, pc = family.resolve_for(s.method, s.pc)
    batch = [
        Part(
            "grid.n",
            grid,
            f"the matrix and vectors of {N:,} unknowns",
            MATRIX_BYTES_PER_NNZ * nnz
            + VECTORS_PER_UNKNOWN * 8 * N
            + PC_BYTES_PER_NNZ.get(pc, 0) * nnz,
            divided=True,
        ),
        one_sample,
        field_draw,
    ]
    if method == "direct" or pc in ("lu", "cholesky"):
        # the fill grows with the nodes; a block of b unknowns per node (damped Helmholtz's
        # real and imaginary parts) stores b^2 entries where a scalar unknown stores one
        b = family.unknowns_per_node
        nodes = N / b
        fill = FILL_2D * nodes * math.log2(max(nodes, 2)) if d == 2 else FILL_3D * nodes ** (4 / 3)
        fill *= b * b
        if pc == "lu":  # L and U; Cholesky keeps one triangle
            fill *= 2
        batch.append(Part("grid.n", grid, "the direct factorisation", 12 * fill, divided=True))
    m, k = s.restart, max(1, min(s.recycle, s.restart - 1))
    if method == "gcrodr":
        by = ("solver.restart", m) if 2 * m + 1 >= 4 * k else ("solver.recycle", s.recycle)
        work = (2 * m + 1 + 4 * k) * 8 * N + 6 * m**2 * 8
        batch.append(Part(by[0], show(by[1]), "GCRO-DR's basis vectors", work, divided=True))
    elif method == "gmres":
        work = (m + 4) * 8 * N + 3 * m**2 * 8
        batch.append(Part("solver.restart", show(m), "GMRES's basis vectors", work, divided=True))
    elif method == "rcg":
        work = 4 * (s.recycle + max(s.recycle, 10)) * 8 * N
        batch.append(
            Part("solver.recycle", show(s.recycle), "recycled CG's blocks", work, divided=True)
        )
    elif method == "cg":
        batch.append(Part("grid.n", grid, "CG's vectors", 6 * 8 * N, divided=True))
    if frames > 1:
        steps = getattr(recipe.problem, "steps", frames - 1)
        batch.append(
            Part(
                "problem.steps", show(steps), f"a trajectory of {frames} frames", 2 * frames * 8 * N
            )
        )
    # one sample's fields as they go to the shard (`pdegen.dataset.shards.ShardWriter`): a shard's
    # samples are written as they are solved, not held, so the shard size costs nothing here
    by = ("problem.steps", show(frames - 1)) if frames > 1 else ("grid.n", grid)
    batch.append(Part(*by, "one sample's fields", 2 * (inputs + frames * G * 8)))
    batch_size = batch_size_of(recipe)
    held = min(batch_size, recipe.samples)
    by = ("samples" if batch_size > recipe.samples else "solver.batch_size",)
    what = f"the statistics and parameters of a batch's {show(held)} samples"
    batch.append(Part(*by, show(held), what, BOOKKEEPING_PER_SAMPLE * held))

    if ranks > 1:  # the first rank of a group: its share of the solver, the whole sample
        share = PARALLEL_SOLVER_BYTES / ranks
        batch = [dataclasses.replace(p, bytes=p.bytes * share) if p.divided else p for p in batch]
    S = recipe.samples
    plan = [
        Part(
            "samples", show(S), f"the ordering features of {show(S)} samples", 2 * S * features * 8
        ),
        one_sample,
        field_draw,
    ]
    if s.ordering == "greedy" and 2 < S <= GREEDY_GRAM_LIMIT:
        plan.append(Part("samples", show(S), "the greedy ordering's Gram matrix", S**2 * 8))
    elif s.ordering == "fast":
        plan.append(
            Part("samples", show(S), "the fast ordering's projections", 3 * S * features * 8)
        )
    return Estimate(tuple(plan), tuple(batch))


@functools.cache
def _sample_structure(family_cls: type, dim: int) -> tuple[float, float, float]:
    """(input fields per node, feature slope, feature constant) of a family, measured on two
    tiny grids with the family's default problem: the number of inputs and the length of
    the feature vector depend only on the family and dimension, not on the recipe's values.
    Features are linear in the (downsampled) node count: slope * points + constant."""
    lengths = []
    per_node = 0.0
    points = []
    for n in (4, 6):  # even: the periodic families' FFTs need it
        family = family_cls(n, dim, family_cls.Problem())
        with np.errstate(all="ignore"):
            sample = family.sample(0, 0)
            lengths.append(len(family.features(sample)))
        points.append(math.prod(family.grid_shape))
        per_node = sum(v.size for v in sample.inputs.values()) / points[-1]
    slope = (lengths[1] - lengths[0]) / (points[1] - points[0])
    return per_node, slope, lengths[0] - slope * points[0]
