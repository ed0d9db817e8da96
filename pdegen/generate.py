"""recipe -> plan -> batches on an engine -> shards -> index, resuming from finished shards."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdegen.engines import Job, make_engine
from pdegen.errors import PdegenError
from pdegen.families import family_from_recipe
from pdegen.plan import Plan, load_or_make_plan, recipe_sha256
from pdegen.progress import Progress
from pdegen.recipe import Recipe
from pdegen.shards import (
    INDEX_NAME,
    read_index,
    remove_stale_temporaries,
    verified_entry,
    write_index,
)


@dataclass
class Summary:
    directory: Path
    samples: int
    unconverged: int
    resumed_samples: int
    seconds: float
    solve_seconds: float
    ordering_seconds: float
    mean_iterations: float
    engine: str = "serial"
    workers: int = 1
    peak_rss_mib: float = 0.0

    @property
    def samples_per_second(self) -> float:
        solved = self.samples - self.resumed_samples
        return solved / self.seconds if self.seconds > 0 else float("nan")

    def lines(self) -> list[str]:
        out = [
            f"dataset: {self.directory}",
            f"samples: {self.samples} ({self.unconverged} did not converge and are flagged)",
            f"time: {self.seconds:.2f} s ({self.samples_per_second:.1f} samples/s on "
            f"{self.engine} with {self.workers} worker(s); solves {self.solve_seconds:.2f} s, "
            f"ordering {self.ordering_seconds:.2f} s)",
            f"iterations per sample: {self.mean_iterations:.1f}",
        ]
        if self.peak_rss_mib:
            out.append(f"memory: peak RSS {self.peak_rss_mib:.0f} MiB in the busiest worker")
        if self.resumed_samples:
            out.append(f"resumed: {self.resumed_samples} samples were already complete")
        return out


def prepare_directory(directory: Path, recipe: Recipe) -> None:
    """Check the target before writing anything; create it. One-line errors."""
    if directory.exists() and not directory.is_dir():
        raise PdegenError(f"{directory}: output path exists and is not a directory")
    index_path = directory / INDEX_NAME
    if index_path.is_file():
        try:
            same = read_index(directory).get("recipe_sha256") == recipe_sha256(recipe)
        except (OSError, ValueError):
            same = False
        if not same:
            raise PdegenError(
                f"{directory}: holds a dataset made from a different recipe "
                "(choose another --out, or delete it)"
            )
    parent = directory.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise PdegenError(
            f"{directory}: cannot create the output directory (no write permission in {parent})"
        )
    directory.mkdir(parents=True, exist_ok=True)


def _plan_job(recipe: Recipe, directory: Path, retries: int) -> tuple[Job, dict[int, dict]]:
    """Root only: the plan, and which batches are already complete (verified)."""
    prepare_directory(directory, recipe)
    remove_stale_temporaries(directory)
    sha = recipe_sha256(recipe)
    plan = load_or_make_plan(directory, recipe, family_from_recipe(recipe))
    old = {}
    if (directory / INDEX_NAME).is_file():
        old = {e["batch"]: e for e in read_index(directory)["shards"]}
    complete = {}
    for batch, indices in enumerate(plan.batches):
        entry = verified_entry(directory, batch, indices, sha, old.get(batch))
        if entry is not None:
            complete[batch] = entry
    todo = [b for b in range(len(plan.batches)) if b not in complete]
    return Job(recipe, directory, plan, todo, sha, retries), complete


def generate(
    recipe: Recipe,
    out: str | Path | None = None,
    progress: bool = True,
    engine: str = "serial",
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = 2,
) -> Summary | None:
    """Generate (or finish) the dataset a recipe describes.

    Returns the summary on the root process (None on other MPI ranks). Raises PdegenError
    naming every batch that failed after its retries; the finished shards are kept and a rerun
    solves only what is missing.
    """
    start = time.perf_counter()
    directory = Path(out) if out is not None else recipe.dataset_dir()
    with make_engine(engine, workers, scheduler) as runner:
        planned = None
        if runner.is_root:
            try:
                planned = _plan_job(recipe, directory, retries)
            except PdegenError as err:
                planned = err
        planned = runner.broadcast(planned)
        if isinstance(planned, PdegenError):
            raise planned
        job, complete = planned
        resumed = sum(len(job.plan.batches[b]) for b in complete)
        bar = Progress(
            recipe.samples, initial=resumed, label=recipe.name, enabled=progress and runner.is_root
        )
        done, failed = runner.run(job, lambda outcome: bar.advance(outcome.samples))
        bar.close()
        if not runner.is_root:
            return None
    for outcome in done:
        complete[outcome.entry["batch"]] = outcome.entry
    if failed:
        lines = "; ".join(f.line() for f in failed)
        raise PdegenError(
            f"{len(failed)} of {len(job.plan.batches)} batches failed ({lines}); "
            "finished shards are kept, rerun to retry the rest"
        )
    entries = [complete[b] for b in range(len(job.plan.batches))]
    write_index(
        directory,
        {
            "dataset": recipe.name,
            "family": recipe.family,
            "recipe_sha256": job.recipe_sha256,
            "samples": recipe.samples,
            "ordering_seconds": job.plan.ordering_seconds,
            "chain_length": job.plan.chain_length,
            "shards": entries,
        },
    )
    peak = max((o.peak_rss_mib for o in done), default=0.0)
    return _summarise(directory, resumed, time.perf_counter() - start, job.plan, runner, peak)


def _summarise(
    directory: Path, resumed: int, seconds: float, plan: Plan, runner, peak: float
) -> Summary:
    from pdegen.loader import open_dataset

    with open_dataset(directory, include_unconverged=True) as ds:
        stats = ds.stats()
    return Summary(
        directory,
        len(stats["converged"]),
        int(np.sum(~stats["converged"])),
        resumed,
        seconds,
        float(np.sum(stats["seconds"])),
        plan.ordering_seconds,
        float(np.mean(stats["iterations"])),
        runner.name,
        runner.workers,
        peak,
    )


__all__ = ["Summary", "generate", "prepare_directory"]
