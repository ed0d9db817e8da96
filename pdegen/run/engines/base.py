"""What every engine runs: a job (recipe, directory, plan, batches to do) and one batch task.

Engines decide only where `run_batch` runs, never what it computes: the plan fixes the
samples, their order and the batches, so any engine with any number of workers writes the
same shards.
"""

from __future__ import annotations

import resource
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdegen.dataset.shards import ShardWriter, part_path
from pdegen.families import family_from_recipe
from pdegen.recipe.schema import Recipe
from pdegen.run.batch import shard_axes, solve_rows
from pdegen.run.incidents import BATCH_RETRIED, Incident
from pdegen.run.plan import Plan


@dataclass
class Job:
    recipe: Recipe
    directory: Path
    plan: Plan
    todo: list[int]  # batch numbers still to solve
    recipe_sha256: str
    retries: int = 2
    #: this `generate` call's own name, in its Dask task keys and events (a shared external
    #: scheduler may serve several runs)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


def one_line(error: BaseException | str) -> str:
    """An error on one line: its type and message; of a message over several lines (PETSc's)
    the first and the last."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(error).__name__ if not isinstance(error, str) else ""
    return lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"


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
        return (
            f"batch {self.batch} (samples {shown}) failed after {self.attempts} attempts: "
            f"{one_line(self.error)}"
        )


@dataclass
class BatchDone:
    #: the index entry of the file it wrote: its shard's, or its part of a shard of several
    entry: dict[str, Any]
    seconds: float
    peak_rss_mib: float
    samples: int = 0
    worker: str = ""
    batch: int = -1
    #: the errors of the attempts that failed before this one (in-process retries)
    retried_after: list[str] = field(default_factory=list)


class SampleError(RuntimeError):
    """A batch's solve raised. `details` is the original traceback as text: it survives the
    pickling that takes an exception from a Dask worker to the client (a chained cause and
    its frames do not)."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def batch_file(job: Job, batch: int) -> tuple[int, Path | None]:
    """(the number the file records, its path or None for the shard's own) of the file batch
    `batch` writes: its shard, if the shard is this one batch, else its part of the shard
    (`pdegen.dataset.parts`), merged by the root once the shard's batches are all done."""
    shard = job.plan.shard_of(batch)
    if job.plan.whole_shard(shard):
        return shard, None
    path = part_path(job.directory, batch)
    path.parent.mkdir(exist_ok=True)
    return batch, path


def run_batch(job: Job, batch: int, group=None) -> BatchDone | None:
    """Solve one batch and write its file atomically (on whichever process runs this): its
    shard, or its part of a shard of several batches (`batch_file`).

    `group`: the PETSc communicator of the ranks that solve each sample together
    (`pdegen.run.group`); all of them call this, the first writes the file and gets the
    outcome (its peak memory the largest of the group's), the others get None."""
    across = group is not None and group.getSize() > 1
    if across and group.getRank() != 0:
        from pdegen.run.group import solve_rows_across

        family = family_from_recipe(job.recipe)
        indices = job.plan.batches[batch]
        solve_rows_across(job.recipe, batch, indices, None, "", family, group)
        _group_peak(group)
        return None
    start = time.perf_counter()
    indices = job.plan.batches[batch]
    recipe = job.recipe
    family = family_from_recipe(recipe)
    number, path = batch_file(job, batch)
    writer = ShardWriter(
        Path(job.directory),
        number,
        len(indices),
        recipe.to_json(),
        shard_axes(family),
        recipe.output.dtype,
        recipe.output.compression,
        path,
    )
    with writer:  # the rows go to the file as they are solved; renamed once complete
        try:
            if across:
                from pdegen.run.group import solve_rows_across

                content = solve_rows_across(
                    recipe, number, indices, writer.add, job.recipe_sha256, family, group
                )
            else:
                content = solve_rows(
                    recipe,
                    number,
                    indices,
                    writer.add,
                    recipe_sha256=job.recipe_sha256,
                    family=family,
                )
        except Exception as err:  # name the batch; the engine decides whether to retry
            raise SampleError(f"{type(err).__name__}: {err}", traceback.format_exc()) from err
        entry = writer.finish(content)
    peak = _group_peak(group)
    return BatchDone(entry, time.perf_counter() - start, peak, len(indices), batch=batch)


def _group_peak(group) -> float:
    """This process's peak resident memory (MiB), or on a group of ranks the largest of
    theirs (a collective: every rank of the group calls it)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if group is None or group.getSize() == 1:
        return peak
    from mpi4py import MPI

    return group.tompi4py().allreduce(peak, op=MPI.MAX)


def run_with_retries(job: Job, batch: int) -> BatchDone | BatchFailure:
    """In-process retries (serial, local and MPI engines; Dask retries through its scheduler). A
    batch that succeeds after failed attempts carries their errors (`retried_after`)."""
    error = trace = ""
    errors = []
    for _ in range(job.retries + 1):
        try:
            done = run_batch(job, batch)
            done.retried_after = errors
            return done
        except Exception as err:
            trace = traceback.format_exc()
            error = str(err) or trace.strip().splitlines()[-1]
            errors.append(one_line(error))
    return BatchFailure(batch, job.plan.batches[batch], job.retries + 1, error, trace)


def retried_incidents(done: list[BatchDone], where: str) -> list[Incident]:
    """One `Incident` per failed attempt of a batch that then succeeded in this process."""
    return [
        Incident(BATCH_RETRIED, outcome.worker or where, error, (outcome.batch,))
        for outcome in done
        for error in outcome.retried_after
    ]
