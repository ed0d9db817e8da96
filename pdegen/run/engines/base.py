"""What every engine runs: a job (recipe, directory, plan, batches to do) and one batch task.

Engines decide only where `run_batch` runs, never what it computes: the plan fixes the
samples, their order and the batches, so any engine with any number of workers writes the
same shards.
"""

from __future__ import annotations

import resource
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdegen.dataset.shards import ShardWriter
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import Recipe
from pdegen.run.batch import shard_axes, solve_rows
from pdegen.run.plan import Plan


@dataclass
class Job:
    recipe: Recipe
    directory: Path
    plan: Plan
    todo: list[int]  # batch numbers still to solve
    recipe_sha256: str
    retries: int = 2


@dataclass
class BatchFailure:
    """A batch that failed every attempt: reported by batch and samples, never dropped."""

    batch: int
    indices: list[int]
    attempts: int
    error: str
    traceback: str = ""  # the last attempt's, for the failure report (failures.log)

    def line(self) -> str:
        shown = ", ".join(map(str, self.indices[:8])) + (", ..." if len(self.indices) > 8 else "")
        lines = [ln.strip() for ln in self.error.splitlines() if ln.strip()]
        # PETSc errors span many lines: keep the first and the message (the last), on one line
        error = lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"
        return (
            f"batch {self.batch} (samples {shown}) failed after {self.attempts} attempts: {error}"
        )


@dataclass
class BatchDone:
    entry: dict[str, Any]
    seconds: float
    peak_rss_mib: float
    samples: int = 0
    worker: str = ""


class SampleError(RuntimeError):
    """A batch's solve raised. `details` is the original traceback as text: it survives the
    pickling that takes an exception from a Dask worker to the client (a chained cause and
    its frames do not)."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def run_batch(job: Job, batch: int) -> BatchDone:
    """Solve one batch and write its shard atomically (on whichever process runs this)."""
    start = time.perf_counter()
    indices = job.plan.batches[batch]
    recipe = job.recipe
    family = family_from_recipe(recipe)
    writer = ShardWriter(
        Path(job.directory),
        batch,
        len(indices),
        recipe.to_json(),
        shard_axes(family),
        recipe.output.dtype,
        recipe.output.compression,
    )
    with writer:  # the rows go to the file as they are solved; renamed once complete
        try:
            content = solve_rows(
                recipe, batch, indices, writer.add, recipe_sha256=job.recipe_sha256, family=family
            )
        except Exception as err:  # name the batch; the engine decides whether to retry
            raise SampleError(f"{type(err).__name__}: {err}", traceback.format_exc()) from err
        entry = writer.finish(content)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return BatchDone(entry, time.perf_counter() - start, peak, len(indices))


def run_with_retries(job: Job, batch: int) -> BatchDone | BatchFailure:
    """In-process retries (serial and MPI engines; Dask retries through its scheduler)."""
    error = trace = ""
    for _ in range(job.retries + 1):
        try:
            return run_batch(job, batch)
        except Exception as err:
            trace = traceback.format_exc()
            error = str(err) or trace.strip().splitlines()[-1]
    return BatchFailure(batch, job.plan.batches[batch], job.retries + 1, error, trace)
