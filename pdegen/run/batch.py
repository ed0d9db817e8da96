"""Solve one batch (a contiguous segment of the sorted chain) and package it as a shard.

A pure function of (recipe, batch number, sample indices): engines decide only where it runs.
"""

from __future__ import annotations

import ctypes
import functools
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from pdegen.dataset.shards import ShardContent
from pdegen.families import Family, family_from_recipe
from pdegen.recipe.schema import Recipe
from solvers.kernels import single_threaded_blas
from solvers.registry import METHODS, PRECONDITIONERS
from solvers.sequence import ChainSolver, SolveResult


def package_versions() -> dict[str, str]:
    """The versions every shard records (a copy: read once per process, since reading
    package metadata costs about 12 ms, once per batch before)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    from petsc4py import PETSc

    versions = {
        "python": platform.python_version(),
        "petsc": ".".join(map(str, PETSc.Sys.getVersion())),
    }
    for name in ("pdegen", "numpy", "scipy", "h5py", "petsc4py", "mpi4py", "dask"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def without_hugepage_advice() -> None:
    """Stop numpy advising the kernel to back large arrays with transparent huge pages.

    Why: a batch allocates and frees arrays of megabytes per sample (fields, matrix values,
    the shard's stacked fields), and with the kernel's default `defrag = madvise` every such
    fault can stall in direct memory compaction once memory is fragmented. Measured on the
    421 x 421 Darcy batch (docs/benchmarks.md, "Where a sample's time goes"): everything but
    the solve went from 37 to 21 ms per sample, stacking 50 fields from 250 to 30 ms. PETSc's
    own memory is not numpy's and is unaffected. Numpy reads NUMPY_MADVISE_HUGEPAGE only when
    it is imported, so the setting is made here, in every process that solves.
    """
    setter = getattr(np._core.multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


#: glibc mallopt parameters (malloc.h) and the values `keep_freed_memory` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 1024**2  # glibc's upper limit for it on 64-bit systems
_TRIM_THRESHOLD = 256 * 1024**2


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc's malloc serve arrays of up to 32 MB from its heap and keep what is freed
    (up to 256 MB at the heap's top) instead of returning it to the kernel at once.

    Why: each sample allocates and frees the same few arrays of megabytes (the field draw,
    the matrix values, the solution). By default glibc maps every such array afresh and
    unmaps it when freed, so each sample faults every page of them in again, zeroed by the
    kernel: about 470 faults more per 421 x 421 Darcy sample, and 1.1 of its 4.3 ms of
    assembly (docs/benchmarks.md, "Where a sample's time goes"); glibc's adaptive mmap
    threshold did not prevent it. The price is memory held between samples, which the next
    sample reuses. Returns whether it took effect (a C library other than glibc: False,
    nothing changed).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def solver_note(recipe: Recipe, family: Family | None = None) -> str | None:
    """One line when the recipe's solver cannot run as named on its grid (`pc: mg` on a
    grid that coarsens too little runs `gamg`: `solvers.grids`), else None."""
    family = family or family_from_recipe(recipe)
    ranks = recipe.solver.ranks_per_sample
    if ranks > 1:
        from pdegen.recipe.ranks import solver_across_ranks
        from solvers.registry import parallel_solver

        method, pc = solver_across_ranks(family, recipe.solver.method, recipe.solver.pc, ranks)
        _, note = parallel_solver(method, pc, ranks)
        runs = f"each sample solved by {ranks} ranks together with {method} + {pc}"
        coarse = family.coarsening().note if pc == "mg" else None
        return "; ".join(part for part in (runs, note, coarse) if part)
    method, pc = family.resolve_for(recipe.solver.method, recipe.solver.pc)
    entry = PRECONDITIONERS[pc]
    if not entry.geometric or METHODS[method].direct:
        return None
    return family.coarsening().note


def _declared(family: Family, kind: str, names: tuple[str, ...], got: dict) -> None:
    """A family must produce exactly the fields it declares: they are what the shard's
    layout, the loader and `inspect` are told (a family bug otherwise, not a user error)."""
    if set(got) != set(names):
        raise ValueError(
            f"family {family.name} produced {kind} {sorted(got)}, but declares {sorted(names)}"
        )


#: where `solve_rows` sends each sample's fields: (row, sample index, inputs, outputs,
#: converged), the fields in the family's declared order
RowSink = Callable[[int, int, dict[str, np.ndarray], dict[str, np.ndarray], bool], None]


def shard_axes(family: Family) -> dict[str, tuple[str, ...]]:
    """The axis names of every stored field: "sample", then the family's declared axes."""
    return {name: ("sample", *names) for name, names in family.field_axes().items()}


def solve_batch(
    recipe: Recipe,
    batch: int,
    indices: list[int],
    on_result: Callable[[int, SampleOutcome], None] | None = None,
    recipe_sha256: str = "",
) -> ShardContent:
    """Solve the samples `indices` in that order (a segment of the sorted chain), carrying the
    recycled space from each to the next, and package them as shard `batch`, in memory:
    every field held and stacked (for tests and tools; the engines stream the rows into the
    file instead, `pdegen.run.engines.base.run_batch`)."""
    held: tuple[dict[str, list], dict[str, list]] = ({}, {})  # inputs, outputs

    def hold(row, index, inputs, outputs, converged) -> None:
        for kept, fields in zip(held, (inputs, outputs), strict=True):
            for name, array in fields.items():
                kept.setdefault(name, []).append(array)

    content = solve_rows(recipe, batch, indices, hold, on_result, recipe_sha256)
    content.inputs, content.outputs = (
        {name: np.stack(arrays) for name, arrays in kept.items()} for kept in held
    )
    return content


def solve_rows(
    recipe: Recipe,
    batch: int,
    indices: list[int],
    rows: RowSink,
    on_result: Callable[[int, SampleOutcome], None] | None = None,
    recipe_sha256: str = "",
    family: Family | None = None,
) -> ShardContent:
    """Solve the samples `indices` in that order, handing each sample's fields to `rows` as
    soon as it is solved (they are not kept); returns the shard's content without its
    fields: parameters, solver statistics, grid and attributes. `family`: the recipe's, if
    the caller has built it already. (Samples solved across several ranks:
    `pdegen.run.group.solve_rows_across`.)

    BLAS runs on one thread for the whole batch, in every engine: a Dask worker is started
    with one (its nanny's OPENBLAS_NUM_THREADS=1), while the serial engine's process, each
    local worker (forked from the run's process) and each MPI rank would otherwise run as
    many as there are cores. OpenBLAS rounds a long dot
    product differently on 1 and 2 threads (the near-null space did, `rigid_body_modes`),
    so a dataset's bits would depend on the engine; and one thread per core is what pdegen
    runs anyway (more oversubscribe the ranks)."""
    with single_threaded_blas():
        return _solve_rows(recipe, batch, indices, rows, on_result, recipe_sha256, family)


def _chain(family: Family, s, method: str, pc: str, **extra) -> ChainSolver:
    """The chain solver a batch hands each sample (a family with linear systems)."""
    return ChainSolver(
        method,
        pc=pc,
        rtol=s.rtol,
        restart=s.restart,
        recycle=s.recycle,
        warm_start=s.warm_start,
        max_iterations=s.max_iterations,
        grid=family.interior_shape,
        multigrid=family.multigrid_settings(),
        **family.vector_layout(),
        **extra,
    )


def _solve_rows(recipe, batch, indices, rows, on_result, recipe_sha256, family) -> ShardContent:
    without_hugepage_advice()
    keep_freed_memory()
    family = family or family_from_recipe(recipe)
    method, pc = family.resolve_for(recipe.solver.method, recipe.solver.pc)
    chain = None if METHODS[method].integrator else _chain(family, recipe.solver, method, pc)
    if chain is not None:
        pc = chain.pc  # what runs: `mg` becomes `gamg` on a grid that coarsens too little
    sample_params, outcomes, extras = [], [], []
    for position, index in enumerate(indices):
        sample = family.sample(recipe.seed, index)
        _declared(family, "inputs", family.input_names, sample.inputs)
        _declared(family, "parameters", family.params, sample.params)
        fields, results = family.solve_sample(sample, chain)
        kept = (sample_params, outcomes, extras)
        outcome = record_sample(family, position, index, sample, fields, results, rows, kept)
        if on_result is not None:
            on_result(position, outcome)
    return package_shard(
        recipe, family, batch, indices, sample_params, outcomes, extras, method, pc, recipe_sha256
    )


def record_sample(
    family: Family,
    position: int,
    index: int,
    sample,
    fields: dict[str, np.ndarray],
    results: list[SolveResult],
    rows: RowSink,
    kept: tuple[list, list, list],
) -> SampleOutcome:
    """Hand one solved sample's fields to `rows` (they are not kept) and keep its parameters,
    outcome and the family's own statistics in `kept` (three lists, for `package_shard`)."""
    _declared(family, "outputs", family.output_names, fields)
    outcome = SampleOutcome.from_results(results)
    rows(
        position,
        index,
        {name: sample.inputs[name] for name in family.input_names},
        {name: fields[name] for name in family.output_names},
        outcome.converged,
    )
    sample_params, outcomes, extras = kept
    sample_params.append(sample.params)
    outcomes.append(outcome)
    extras.append(family.sample_stats(results))
    return outcome


def package_shard(
    recipe: Recipe,
    family: Family,
    batch: int,
    indices: list[int],
    sample_params: list[dict[str, float]],
    outcomes: list[SampleOutcome],
    extras: list[dict[str, float]],
    method: str,
    pc: str,
    recipe_sha256: str,
) -> ShardContent:
    """A batch's shard content without its fields: parameters, per-sample solver statistics
    (`outcomes`, the family's own columns in `extras`), grid and attributes."""
    params = {"index": np.asarray(indices, dtype=np.int64)}
    for name in family.params:
        params[name] = np.asarray([p[name] for p in sample_params], dtype=np.float64)
    stats = {
        "iterations": np.asarray([o.iterations for o in outcomes], dtype=np.int32),
        "residual": np.asarray([o.residual for o in outcomes]),
        "converged": np.asarray([o.converged for o in outcomes], dtype=bool),
        "reason": np.asarray([o.reason for o in outcomes], dtype="S32"),
        "seconds": np.asarray([o.seconds for o in outcomes]),
        "solves": np.asarray([o.solves for o in outcomes], dtype=np.int32),
        "chain_position": np.arange(len(indices), dtype=np.int32),
    }
    for name, dtype in family.stats_columns.items():  # the family's own (Newton iterations)
        stats[name] = np.asarray([extra[name] for extra in extras], dtype=dtype)
    attrs = {
        "family": recipe.family,
        "dataset": recipe.name,
        "recipe": recipe.to_json(),
        "recipe_sha256": recipe_sha256,
        "method": method,
        "pc": pc,
        "versions": json.dumps(package_versions(), sort_keys=True),
    }
    return ShardContent(
        batch,
        {},
        {},
        params,
        stats,
        family.coordinates,
        attrs,
        shard_axes(family),
        dtype=recipe.output.dtype,
        compression=recipe.output.compression,
    )


@dataclass
class SampleOutcome:
    """A sample's solver statistics over all its solves (one, or one per time step)."""

    iterations: int
    residual: float  # the worst true relative residual
    converged: bool  # every solve converged
    reason: str  # the first failure's reason, else the last solve's
    seconds: float
    solves: int

    @classmethod
    def from_results(cls, results: list[SolveResult]) -> SampleOutcome:
        failed = [r for r in results if not r.converged]
        return cls(
            sum(r.iterations for r in results),
            max(r.residual for r in results),
            not failed,
            (failed or results)[-1 if not failed else 0].reason,
            sum(r.seconds for r in results),
            len(results),
        )
