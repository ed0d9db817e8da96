"""Solve one batch (a contiguous segment of the sorted chain) and package it as a shard.

A pure function of (recipe, batch number, sample indices): engines decide only where it runs.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from importlib import metadata

import numpy as np

from pdegen.families import Family, family_from_recipe
from pdegen.recipe import Recipe
from pdegen.shards import ShardContent
from solvers.sequence import SolveResult, solve_sequence


def package_versions() -> dict[str, str]:
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


def resolve_method(recipe: Recipe, family: Family) -> str:
    """The method to use: the recipe's, or for "auto" the family's measured fastest."""
    method = recipe.solver.method
    return family.default_method if method == "auto" else method


def solve_batch(
    recipe: Recipe,
    batch: int,
    indices: list[int],
    on_result: Callable[[int, SolveResult], None] | None = None,
    recipe_sha256: str = "",
) -> ShardContent:
    family = family_from_recipe(recipe)
    samples = [family.sample(recipe.seed, i) for i in indices]
    method = resolve_method(recipe, family)
    s = recipe.solver
    results = solve_sequence(
        (family.system(sample) for sample in samples),
        method=method,
        pc=s.pc,
        rtol=s.rtol,
        restart=s.restart,
        recycle=s.recycle,
        warm_start=s.warm_start,
        max_iterations=s.max_iterations,
        on_result=on_result,
    )
    inputs = {name: np.stack([smp.inputs[name] for smp in samples]) for name in samples[0].inputs}
    outputs = {
        "solution": np.stack(
            [family.solution_field(smp, res.x) for smp, res in zip(samples, results, strict=True)]
        )
    }
    params = {"index": np.asarray(indices, dtype=np.int64)}
    for name in samples[0].params:
        params[name] = np.asarray([smp.params[name] for smp in samples])
    stats = {
        "iterations": np.asarray([r.iterations for r in results], dtype=np.int32),
        "residual": np.asarray([r.residual for r in results]),
        "converged": np.asarray([r.converged for r in results], dtype=bool),
        "reason": np.asarray([r.reason for r in results], dtype="S32"),
        "seconds": np.asarray([r.seconds for r in results]),
        "chain_position": np.arange(len(indices), dtype=np.int32),
    }
    attrs = {
        "family": recipe.family,
        "dataset": recipe.name,
        "recipe": recipe.to_json(),
        "recipe_sha256": recipe_sha256,
        "method": method,
        "versions": json.dumps(package_versions(), sort_keys=True),
    }
    return ShardContent(batch, inputs, outputs, params, stats, family.coordinates, attrs)
